//! Operations: health, readiness, metrics, stats and the API documentation.

pub mod docs;
pub mod health;
pub mod observe;
pub mod systemd;

use crate::app::App;
use crate::http::{Route, route};

pub fn routes() -> Vec<Route<App>> {
    vec![
        route("GET", "/", health::root).exempt(),
        route("GET", "/health", health::health).exempt(),
        route("GET", "/api/v1/health", health::api_health).exempt(),
        route("GET", "/api/v1/health/detailed", health::detailed).exempt(),
        route("GET", "/api/v1/ready", health::ready).exempt(),
        route("GET", "/api/v1/metrics", observe::metrics_json).exempt(),
        route("GET", "/metrics", observe::metrics_prometheus).exempt(),
        route("GET", "/api/v1/stats", observe::stats).exempt(),
        route("GET", "/openapi.json", docs::openapi_json).exempt(),
        route("GET", "/docs", docs::swagger).exempt(),
        route("GET", "/docs/{file}", docs::swagger)
            .exempt()
            .undocumented(),
    ]
}
