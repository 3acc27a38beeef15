//! Recurring transactions and bills: rules, their occurrence dates (`schedule`, a pure
//! function), skips and the upcoming view (`rules`), posting an occurrence (`post`, for
//! confirm and the ticker alike), the `ticker` thread that auto-posts and reminds, and the
//! routes.

pub(crate) mod post;
pub(crate) mod routes;
pub(crate) mod rules;
pub(crate) mod schedule;
pub mod ticker;

use rusqlite::Connection;
use serde_json::Value;

use crate::api::ApiPath;
use crate::app::App;
use crate::budget::export::in_major_units;
use crate::db::user_rows;
use crate::error::Result;
use crate::http::Route;
use routes as r;

pub fn routes() -> Vec<Route<App>> {
    vec![
        r::__path_create_recurring::route(r::create_recurring),
        r::__path_list_recurring::route(r::list_recurring),
        r::__path_upcoming_recurring::route(r::upcoming_recurring),
        r::__path_get_recurring::route(r::get_recurring),
        r::__path_patch_recurring::route(r::patch_recurring),
        r::__path_delete_recurring::route(r::delete_recurring),
        r::__path_skip_recurring::route(r::skip_recurring),
        r::__path_confirm_recurring::route(r::confirm_recurring),
    ]
}

/// The user's rules and skips for the data export, money in major units.
pub(crate) fn export(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
    Ok(vec![
        (
            "recurring",
            in_major_units(user_rows(c, "recurring", "user_id", user, &[])?),
        ),
        (
            "recurring_skips",
            user_rows(c, "recurring_skips", "user_id", user, &[])?,
        ),
    ])
}
