//! What a user tells us about themselves: the onboarding profile, app preferences, and the
//! export of everything we hold about them.

pub mod export;
pub mod onboarding;
pub mod preferences;
pub mod routes;

use crate::app::App;
use crate::http::{Route, route};

pub fn routes() -> Vec<Route<App>> {
    vec![
        route("POST", "/api/v1/onboarding/submit", routes::submit),
        route("GET", "/api/v1/onboarding/status", routes::status),
        route("GET", "/api/v1/onboarding/profile", routes::profile),
        route(
            "GET",
            "/api/v1/users/me/preferences",
            routes::get_preferences,
        ),
        route(
            "PATCH",
            "/api/v1/users/me/preferences",
            routes::patch_preferences,
        ),
        route("GET", "/api/v1/users/me/export", routes::export),
    ]
}
