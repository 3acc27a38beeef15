//! What a user tells us about themselves: the onboarding profile, app preferences, and the
//! export of everything we hold about them.

pub(crate) mod export;
pub(crate) mod onboarding;
pub(crate) mod preferences;
pub mod routes;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::Route;

pub fn routes() -> Vec<Route<App>> {
    vec![
        routes::__path_submit::route(routes::submit),
        routes::__path_status::route(routes::status),
        routes::__path_profile::route(routes::profile),
        routes::__path_get_preferences::route(routes::get_preferences),
        routes::__path_patch_preferences::route(routes::patch_preferences),
        routes::__path_export::route(routes::export),
    ]
}
