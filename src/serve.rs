//! Wiring: the route table of the whole API, and what the HTTP server needs from `App`
//! (`http::State`). Here, not in `app.rs` or `http/`, so neither of those depends on the other.

use crate::app::App;
use crate::config::Config;
use crate::http::{Req, Router, State};
use crate::limiter::RateLimiter;
use crate::metrics::Metrics;

/// Every route of the HTTP API, gathered from the modules that own them.
pub fn routes() -> Router<App> {
    let mut routes = crate::ops::routes();
    routes.extend(crate::auth::routes());
    routes.extend(crate::budget::routes());
    routes.extend(crate::recurring::routes());
    routes.extend(crate::profile::routes());
    routes.extend(crate::chat::routes());
    routes.extend(crate::export::routes());
    routes.extend(crate::sync::routes());
    routes.extend(crate::notify::routes());
    Router::new(routes)
}

impl State for App {
    fn config(&self) -> &Config {
        &self.config
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn is_stopping(&self) -> bool {
        App::is_stopping(self)
    }

    fn fail(&self, why: String) {
        App::fail(self, why)
    }

    fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    fn now(&self) -> i64 {
        self.clock.unix()
    }

    fn bearer_user(&self, req: &Req) -> Option<String> {
        crate::auth::bearer(req)
            .and_then(|t| {
                let now = self.clock.unix();
                crate::auth::tokens::verify(&self.keys, now, t, crate::auth::tokens::Kind::Access)
                    .ok()
            })
            .map(|v| v.claims.user_id)
    }
}
