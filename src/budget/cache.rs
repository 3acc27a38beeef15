//! The cache of computed answers (allocation summary, monthly budget, transaction pages), as
//! the JSON bytes we send. Each view is stored with the user's write generation: every write
//! bumps it after committing, and a view of an older generation is never served, so a read
//! after a write never gets a view computed before it, even if a slow reader stores a stale
//! one late. Whatever writes a user's budget rows or transactions must call `invalidate_user`
//! after its commit (the money handlers' `write` does).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::period::Period;
use super::transactions::Filter;
use crate::error::Result;
use crate::metrics::Metrics;

/// A cached answer of one user: a month view, or one page of the transaction list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum View {
    Allocations(Period),
    Monthly(Period),
    /// `GET /transactions` with these filters. The app reads the same first page again on
    /// every screen it opens; under perf a page cost ~35% of its request in SQLite row
    /// reads and ~10% in JSON (README "Performance").
    Transactions(Box<Filter>),
    /// The user's sync change counter (decimal), which the ETags of the views above are made
    /// from (`crate::sync::etag`): invalidated with them, so a 304 reads no row.
    SyncCounter,
    /// `GET /recurring/upcoming`: the window around this local date. Rule writes go through
    /// the money handlers' `write`, so they invalidate it like any budget write.
    Upcoming {
        today: jiff::civil::Date,
        days: u32,
    },
}

type Key = (String, View);

/// A computed view and the write generation it was computed at.
type Stamped = (u64, Arc<Vec<u8>>);

pub(crate) struct ViewCache {
    enabled: bool,
    // The generation lives in the value, not the key: with it in the key (as before) every
    // write left the user's earlier views behind as entries nobody could reach again, about
    // 10 KB per allocation summary, kept until their 10 minutes of idleness or the 64 MB cap.
    // tests/soak.rs saw the server's RSS climb 5 MB a minute under a steady mix of writes and
    // reads. Now a newer view replaces the older one under the same key.
    views: moka::sync::Cache<Key, Stamped>,
    generations: Mutex<HashMap<String, u64>>,
}

impl ViewCache {
    pub(crate) fn new(enabled: bool) -> ViewCache {
        ViewCache {
            enabled,
            views: moka::sync::Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|_k: &Key, v: &Stamped| u32::try_from(v.1.len()).unwrap_or(u32::MAX))
                .time_to_idle(Duration::from_secs(600))
                .build(),
            generations: Mutex::new(HashMap::new()),
        }
    }

    fn generation(&self, user: &str) -> u64 {
        let g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        g.get(user).copied().unwrap_or(0)
    }

    /// Call after a write for this user has committed.
    pub(crate) fn invalidate_user(&self, user: &str) {
        let mut g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        *g.entry(user.to_string()).or_insert(0) += 1;
    }

    pub(crate) fn get_or_compute(
        &self,
        metrics: &Metrics,
        user: &str,
        view: View,
        compute: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<Vec<u8>>> {
        if !self.enabled {
            return compute().map(Arc::new);
        }
        let generation = self.generation(user);
        let key = (user.to_string(), view);
        if let Some((stored, hit)) = self.views.get(&key)
            && stored == generation
        {
            metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let value = Arc::new(compute()?);
        // A slow reader may overwrite a newer view with its older one here; the next read
        // then sees the old generation and computes again, so nothing stale is ever served.
        self.views.insert(key, (generation, value.clone()));
        Ok(value)
    }

    pub(crate) fn entries(&self) -> u64 {
        // moka counts entries lazily: without this, /health/detailed reported 0 until its
        // housekeeping happened to run.
        self.views.run_pending_tasks();
        self.views.entry_count()
    }
}
