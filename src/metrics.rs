//! Request counters and latency percentiles, kept in process and read by `/api/v1/metrics`
//! (JSON) and `/metrics` (Prometheus text).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The latest request latencies, for percentiles over recent traffic.
const WINDOW: usize = 4096;

pub struct Metrics {
    started: Instant,
    pub requests_total: AtomicU64,
    pub(crate) requests_success: AtomicU64,
    pub(crate) requests_errors: AtomicU64,
    pub(crate) requests_rate_limited: AtomicU64,
    /// Latencies in microseconds, a ring of the last `WINDOW`.
    latencies: Mutex<(Vec<u32>, usize)>,
    pub(crate) ws_connections: AtomicI64,
    pub(crate) llm_requests: AtomicU64,
    pub(crate) llm_tokens: AtomicU64,
    pub(crate) llm_errors: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            requests_total: AtomicU64::new(0),
            requests_success: AtomicU64::new(0),
            requests_errors: AtomicU64::new(0),
            requests_rate_limited: AtomicU64::new(0),
            latencies: Mutex::new((Vec::with_capacity(WINDOW), 0)),
            ws_connections: AtomicI64::new(0),
            llm_requests: AtomicU64::new(0),
            llm_tokens: AtomicU64::new(0),
            llm_errors: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if status < 400 {
            self.requests_success.fetch_add(1, Ordering::Relaxed);
        } else {
            self.requests_errors.fetch_add(1, Ordering::Relaxed);
        }
        if status == 429 {
            self.requests_rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        let mut guard = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let (ring, next) = &mut *guard;
        if ring.len() < WINDOW {
            ring.push(micros);
        } else {
            ring[*next] = micros;
        }
        *next = (*next + 1) % WINDOW;
    }

    /// Milliseconds, nearest-rank over the window; zeros before any request.
    pub(crate) fn latency_ms(&self) -> Percentiles {
        let mut v = {
            let guard = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
            guard.0.clone()
        };
        percentiles(&mut v)
    }

    pub(crate) fn cache_hit_rate(&self) -> f64 {
        let h = self.cache_hits.load(Ordering::Relaxed) as f64;
        let m = self.cache_misses.load(Ordering::Relaxed) as f64;
        if h + m == 0.0 {
            0.0
        } else {
            ((h / (h + m)) * 10_000.0).round() / 10_000.0
        }
    }
}

pub(crate) fn percentiles(v: &mut [u32]) -> Percentiles {
    if v.is_empty() {
        return Percentiles {
            p50: 0.0,
            p95: 0.0,
            p99: 0.0,
        };
    }
    v.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        (f64::from(v[rank - 1]) / 1000.0 * 1000.0).round() / 1000.0
    };
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let p = percentiles(&mut v);
        assert_eq!((p.p50, p.p95, p.p99), (50.0, 95.0, 99.0));
    }

    #[test]
    fn counts_split_success_and_errors() {
        let m = Metrics::new();
        m.record(200, Duration::from_millis(1));
        m.record(404, Duration::from_millis(3));
        m.record(429, Duration::from_millis(2));
        assert_eq!(m.requests_total.load(Ordering::Relaxed), 3);
        assert_eq!(m.requests_success.load(Ordering::Relaxed), 1);
        assert_eq!(m.requests_errors.load(Ordering::Relaxed), 2);
        assert_eq!(m.latency_ms().p99, 3.0);
    }
}
