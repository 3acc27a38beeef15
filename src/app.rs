//! `App`: everything both listeners share, built once at start and passed around in an `Arc`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::sms::SmsSender;
use crate::auth::tokens::Keys;
use crate::budget::cache::ViewCache;
use crate::budget::catalog::Catalog;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::limiter::RateLimiter;
use crate::metrics::Metrics;
use crate::notify::hub::Hub;

pub struct App {
    pub(crate) config: Config,
    pub db: Db,
    pub metrics: Metrics,
    pub clock: Clock,
    pub(crate) keys: Keys,
    pub(crate) sms: Box<dyn SmsSender>,
    pub(crate) limiter: RateLimiter,
    /// Access tokens logged out before their expiry (by `jti`); they live no longer than
    /// an access token does.
    pub revoked_access: moka::sync::Cache<String, ()>,
    /// Bearer checks' user rows, remembered for a second (`auth::recent`).
    pub(crate) recent_checks: std::sync::Arc<crate::auth::recent::Recent>,
    /// Access tokens already verified (signature, claims), see `tokens::VerifiedAccess`.
    pub(crate) verified_access: crate::auth::tokens::VerifiedAccess,
    /// The allocation catalogue, loaded once at start. Shared, so a group-commit job (which
    /// must own what it uses) can hold it too.
    pub(crate) catalog: std::sync::Arc<Catalog>,
    /// Computed month views, per user.
    pub(crate) views: ViewCache,
    /// Events for the users' notification sockets.
    pub events: Hub,
    /// The sync epoch and the cursor key.
    pub(crate) sync: crate::sync::Keys,
    /// The users' change counters as the writer last left them (`sync::known`).
    pub(crate) known: std::sync::Arc<crate::sync::known::Known>,
    /// Model answers by cache key (user, model, question and context), for `QUERY_CACHE_TTL`.
    pub(crate) answers: moka::sync::Cache<String, std::sync::Arc<String>>,
    /// Whether the coach offers its tools upstream (`OPENAI_TOOLS`, and the auto back-off).
    pub chat_tools: crate::chat::toolloop::ToolSwitch,
    stopping: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl App {
    pub(crate) fn new(config: Config, db: Db) -> Result<App, String> {
        let secret = config
            .tokens
            .secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        let catalog = db
            .read(|c| Ok(Catalog::load(c)?))
            .map_err(|e| format!("cannot load the allocation catalogue: {e:?}"))?;
        let sync = db
            .read(|c| crate::sync::Keys::load(c, &secret))
            .map_err(|e| format!("cannot read the sync epoch: {e:?}"))?;
        let known = std::sync::Arc::new(crate::sync::known::Known::new());
        let listener = known.clone();
        if !db
            .watch()
            .listen("sync_counters", move |c, rows| listener.heard(c, rows))
        {
            return Err("the sync counters already have a listener (one App per Db)".into());
        }
        let recent_checks = std::sync::Arc::new(crate::auth::recent::Recent::new());
        let listener = recent_checks.clone();
        if !db.watch().listen("users", move |_, _| listener.changed()) {
            return Err("users already has a listener (one App per Db)".into());
        }
        Ok(App {
            sync,
            known,
            recent_checks,
            catalog: std::sync::Arc::new(catalog),
            views: ViewCache::new(config.cache.enabled),
            events: Hub::default(),
            chat_tools: crate::chat::toolloop::ToolSwitch::new(&config.llm),
            answers: moka::sync::Cache::builder()
                .time_to_live(config.cache.query_ttl)
                .max_capacity(32 * 1024 * 1024)
                .weigher(|k: &String, v: &std::sync::Arc<String>| {
                    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                })
                .build(),
            keys: Keys::new(&secret),
            sms: crate::auth::sms::from_config(&config),
            limiter: RateLimiter::default(),
            verified_access: crate::auth::tokens::VerifiedAccess::new(config.tokens.access_ttl),
            revoked_access: moka::sync::Cache::builder()
                .time_to_live(config.tokens.access_ttl)
                .max_capacity(1_000_000)
                .build(),
            config,
            db,
            metrics: Metrics::new(),
            clock: Clock::default(),
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
        })
    }

    /// Graceful stop has begun: loops finish what they hold and exit.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub(crate) fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Something the process cannot recover from (the accept loop died): `main` exits
    /// non-zero and systemd restarts the service.
    pub(crate) fn fail(&self, why: String) {
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
    pub(crate) fn cache_entries(&self) -> u64 {
        self.views.entries()
    }
}
