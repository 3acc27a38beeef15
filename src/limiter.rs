//! Fixed-window request counters per key (a user, or a client address), for the limits of
//! API.md "Cross-cutting". A leaf: `App` holds the one shared instance, and the policy (which
//! quotas, on which key) is `http::ratelimit`; the WebSocket admission counts here too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// One limit: at most `limit` requests per `window` seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quota {
    pub(crate) limit: u32,
    pub(crate) window: i64,
}

/// Refused: the quota that was full and when its window ends (unix seconds).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) limit: u32,
    pub(crate) reset_at: i64,
    pub(crate) retry_after: i64,
}

#[derive(Default)]
pub(crate) struct RateLimiter {
    /// (key, window length) → (window start, count).
    counters: Mutex<HashMap<(String, i64), (i64, u32)>>,
    calls: AtomicU64,
}

impl RateLimiter {
    /// Counts one request against every quota, or refuses without counting.
    pub(crate) fn check(&self, key: &str, quotas: &[Quota], now: i64) -> Result<(), Refusal> {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for q in quotas {
            let start = now - now.rem_euclid(q.window);
            if let Some((s, n)) = map.get(&(key.to_string(), q.window))
                && *s == start
                && *n >= q.limit
            {
                return Err(Refusal {
                    limit: q.limit,
                    reset_at: start + q.window,
                    retry_after: (start + q.window - now).max(1),
                });
            }
        }
        for q in quotas {
            let start = now - now.rem_euclid(q.window);
            let entry = map.entry((key.to_string(), q.window)).or_insert((start, 0));
            if entry.0 != start {
                *entry = (start, 0);
            }
            entry.1 += 1;
        }
        // Now and then, forget keys whose windows have passed, so memory stays bounded.
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            map.retain(|(_, window), (start, _)| *start + *window > now);
        }
        Ok(())
    }
}

/// The key for a client address: IPv6 clients by their /64, which one host usually owns.
pub(crate) fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_over_the_limit_until_the_window_ends() {
        let l = RateLimiter::default();
        let q = [Quota {
            limit: 2,
            window: 60,
        }];
        assert!(l.check("a", &q, 120).is_ok());
        assert!(l.check("a", &q, 121).is_ok());
        let r = l.check("a", &q, 130).expect_err("third is refused");
        assert_eq!(
            r,
            Refusal {
                limit: 2,
                reset_at: 180,
                retry_after: 50
            }
        );
        assert!(l.check("b", &q, 130).is_ok(), "keys are independent");
        assert!(l.check("a", &q, 180).is_ok(), "a new window");
    }

    #[test]
    fn a_refusal_counts_nothing() {
        let l = RateLimiter::default();
        let q = [
            Quota {
                limit: 1,
                window: 60,
            },
            Quota {
                limit: 100,
                window: 3600,
            },
        ];
        assert!(l.check("a", &q, 0).is_ok());
        for _ in 0..10 {
            assert!(l.check("a", &q, 1).is_err());
        }
        assert!(
            l.check(
                "a",
                &[Quota {
                    limit: 2,
                    window: 3600
                }],
                61
            )
            .is_ok()
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
    }
}
