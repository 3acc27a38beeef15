//! The cache of computed month views (allocation summary, monthly budget), as the JSON bytes
//! we send. Keys carry the user's write generation: every write bumps it after committing, so
//! a read after a write never gets a view computed before it, even if a slow reader stores a
//! stale one late.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::period::Period;
use crate::error::Result;
use crate::ops::metrics::Metrics;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Allocations,
    Monthly,
}

type Key = (String, u64, Period, View);

pub struct ViewCache {
    enabled: bool,
    views: moka::sync::Cache<Key, Arc<Vec<u8>>>,
    generations: Mutex<HashMap<String, u64>>,
}

impl ViewCache {
    pub fn new(enabled: bool) -> ViewCache {
        ViewCache {
            enabled,
            views: moka::sync::Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|_k: &Key, v: &Arc<Vec<u8>>| u32::try_from(v.len()).unwrap_or(u32::MAX))
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
    pub fn invalidate_user(&self, user: &str) {
        let mut g = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        *g.entry(user.to_string()).or_insert(0) += 1;
    }

    pub fn get_or_compute(
        &self,
        metrics: &Metrics,
        user: &str,
        period: Period,
        view: View,
        compute: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Arc<Vec<u8>>> {
        if !self.enabled {
            return compute().map(Arc::new);
        }
        let key = (user.to_string(), self.generation(user), period, view);
        if let Some(hit) = self.views.get(&key) {
            metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let value = Arc::new(compute()?);
        self.views.insert(key, value.clone());
        Ok(value)
    }

    pub fn entries(&self) -> u64 {
        // moka counts entries lazily: without this, /health/detailed reported 0 until its
        // housekeeping happened to run.
        self.views.run_pending_tasks();
        self.views.entry_count()
    }
}
