//! `App`: everything both listeners share, built once at start and passed around in an `Arc`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::error::Error;
use crate::http::router::Route;
use crate::http::{Req, Router};
use crate::ops::metrics::Metrics;

pub struct App {
    pub config: Config,
    pub db: Db,
    pub router: Router,
    pub metrics: Metrics,
    pub clock: Clock,
    stopping: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl App {
    pub fn new(config: Config, db: Db) -> App {
        App {
            config,
            db,
            router: crate::routes(),
            metrics: Metrics::new(),
            clock: Clock::default(),
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }

    /// Graceful stop has begun: loops finish what they hold and exit.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Something the process cannot recover from (the accept loop died): `main` exits
    /// non-zero and systemd restarts the service.
    pub fn fail(&self, why: String) {
        log::error!("fatal: {why}");
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(why);
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Entries in the in-process caches, for `/health/detailed`.
    pub fn cache_entries(&self) -> u64 {
        0
    }

    /// Checks that run after routing and before the handler (rate limits live here).
    pub fn before_handler(&self, _route: &Route, _req: &Req) -> Result<(), Error> {
        Ok(())
    }
}
