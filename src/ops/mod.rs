//! Operations: health, readiness, metrics, stats and the API documentation.

pub mod docs;
pub(crate) mod health;
pub(crate) mod observe;
pub mod systemd;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::{Route, route};

pub fn routes() -> Vec<Route<App>> {
    vec![
        health::__path_root::route(health::root).exempt(),
        health::__path_health::route(health::health).exempt(),
        health::__path_api_health::route(health::api_health).exempt(),
        health::__path_detailed::route(health::detailed).exempt(),
        health::__path_ready::route(health::ready).exempt(),
        observe::__path_metrics_json::route(observe::metrics_json).exempt(),
        observe::__path_metrics_prometheus::route(observe::metrics_prometheus).exempt(),
        observe::__path_stats::route(observe::stats).exempt(),
        docs::__path_openapi_json::route(docs::openapi_json).exempt(),
        docs::__path_swagger::route(docs::swagger).exempt(),
        route("GET", "/docs/{file}", docs::swagger)
            .exempt()
            .undocumented(),
    ]
}
