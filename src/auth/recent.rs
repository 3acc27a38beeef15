//! Bearer checks remembered for a second, so that a client's requests in a row read the
//! `users` row once a second rather than once each (the read was most of a warm request's
//! database time: README, Performance).
//!
//! An entry is the user row that a check read for one access token (by `jti`) that was not
//! revoked. It is used only while both hold:
//! - it is younger than [`FRESH`], counted from before its read;
//! - no write of this process touched `users` since its read, and no token was logged out:
//!   the writer reports every commit that changed `users` (`db::Watch`) before its caller gets
//!   an answer, a logout reports itself after its commit (`revocation::remember`), and either
//!   bumps a generation that every entry is checked against. So a logout (one token or all), a
//!   password change, a deletion or a deactivation holds from the very next request, even
//!   when the revocation cache has dropped the token.
//!
//! Writes made by another process are the one thing the second covers: `wealthcoach user
//! activate|deactivate` returns only after [`FRESH`] has passed since its commit, so once the
//! operator sees it done, no server answers from a row read before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::users::User;

/// How long an entry may be used; the `user` commands wait this out (and a margin).
pub const FRESH: Duration = Duration::from_secs(1);
const MAX_TOKENS: u64 = 200_000;

struct Entry {
    read_at: Instant,
    generation: u64,
    user: User,
}

pub(crate) struct Recent {
    generation: AtomicU64,
    entries: Cache<String, Arc<Entry>>,
}

/// Taken before a check reads the database, handed back with what it read.
#[derive(Clone, Copy)]
pub(crate) struct Before {
    read_at: Instant,
    generation: u64,
}

impl Recent {
    pub(crate) fn new() -> Recent {
        Recent {
            generation: AtomicU64::new(0),
            entries: Cache::builder()
                .max_capacity(MAX_TOKENS)
                .time_to_live(FRESH)
                .build(),
        }
    }

    /// The user row a check of `jti` read within the second, if no write touched `users` and
    /// no token was logged out since.
    pub(crate) fn get(&self, jti: &str) -> Option<User> {
        let e = self.entries.get(jti)?;
        let fresh =
            e.read_at.elapsed() < FRESH && e.generation == self.generation.load(Ordering::Acquire);
        fresh.then(|| e.user.clone())
    }

    pub(crate) fn before_read(&self) -> Before {
        Before {
            read_at: Instant::now(),
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    /// Remembers what a check of `jti` read (a live user; the token not revoked).
    pub(crate) fn put(&self, jti: &str, before: Before, user: &User) {
        self.entries.insert(
            jti.to_string(),
            Arc::new(Entry {
                read_at: before.read_at,
                generation: before.generation,
                user: user.clone(),
            }),
        );
    }

    /// A write touched `users` (the writer's listener) or a token was logged out: every entry
    /// read before this is stale.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            id: "u".into(),
            mobile_e164: None,
            mobile_display: None,
            email: Some("u@example.com".into()),
            full_name: name.into(),
            password_hash: None,
            is_active: true,
            token_version: 0,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn an_entry_serves_until_users_change_even_if_put_after_the_change() {
        let r = Recent::new();
        assert!(r.get("j").is_none());
        let before = r.before_read();
        r.put("j", before, &user("A"));
        assert_eq!(r.get("j").map(|u| u.full_name), Some("A".to_string()));
        assert!(r.get("other").is_none());
        // A read that began before a write and is stored after it is never used.
        let before = r.before_read();
        r.changed();
        r.put("j", before, &user("stale"));
        assert!(r.get("j").is_none());
        let before = r.before_read();
        r.put("j", before, &user("B"));
        assert_eq!(r.get("j").map(|u| u.full_name), Some("B".to_string()));
    }

    #[test]
    fn an_entry_read_more_than_a_second_ago_is_not_used() {
        let r = Recent::new();
        let mut before = r.before_read();
        before.read_at = before
            .read_at
            .checked_sub(FRESH)
            .expect("an uptime over a second");
        r.put("j", before, &user("old"));
        assert!(r.get("j").is_none());
    }
}
