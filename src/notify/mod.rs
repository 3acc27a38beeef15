//! The inbox: notifications are stored (so a phone that was asleep still sees them), listed
//! and marked read over HTTP, pushed on `/ws/notifications` with their id, and kept 90 days.
//!
//! A writer stores one with `store::notify` inside its own database transaction (a
//! `dedupe_key` makes "at most once" a constraint) and publishes `Stored::event` after the
//! commit (`hub`: the in-process fan-out to the user's open sockets). Owns the
//! `notifications` table.

pub(crate) mod handlers;
pub mod hub;
pub(crate) mod store;
pub(crate) mod sweep;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::Route;

pub fn routes() -> Vec<Route<App>> {
    vec![
        handlers::__path_list_notifications::route(handlers::list_notifications),
        handlers::__path_mark_read::route(handlers::mark_read),
    ]
}
