//! What a user tells us about themselves: the onboarding profile and app preferences, and
//! their rows for the data export (gathered by the top-level export module).

pub(crate) mod export;
pub(crate) mod handlers;
pub(crate) mod onboarding;
pub(crate) mod preferences;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::Route;

pub fn routes() -> Vec<Route<App>> {
    vec![
        handlers::__path_submit::route(handlers::submit),
        handlers::__path_status::route(handlers::status),
        handlers::__path_profile::route(handlers::profile),
        handlers::__path_get_preferences::route(handlers::get_preferences),
        handlers::__path_patch_preferences::route(handlers::patch_preferences),
    ]
}
