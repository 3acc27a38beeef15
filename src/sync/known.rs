//! The users' change counters, kept in memory so that the common poll, a pull whose cursor is
//! already the user's counter, answers without reading the database.
//!
//! Fed from three sides:
//! - the writer: after every write transaction, the counters it changed (`db::Watch`), read
//!   under the writer's lock, so the value is the committed one and is taken as it is; this
//!   happens before the writer's callers get their answer, so a pull right after a write
//!   sees it;
//! - every pull that read the counter from the database, and the once-a-second look of the
//!   `sync` push: their snapshot may be older than a commit the writer already reported, so
//!   they only ever raise the value (a counter only grows while the server runs).
//!
//! Entries live one second. That bounds how long a write this process does not see could
//! hide behind an up-to-date answer (there is none today: the operator's `user` commands,
//! which write on their own connection, change no synced row; `restore` runs with the server
//! stopped). Such an answer only returns the cursor the client sent, so a late one misses
//! nothing: the change comes with the next pull.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries kept before new users are left out (a left-out user's pull reads the database).
const MAX_USERS: usize = 200_000;
/// Stale entries are swept when the map has doubled since the last sweep, or reached this.
const FIRST_SWEEP: usize = 1024;

/// A plain map under a mutex, not a `moka` cache: the writer records here after every commit,
/// and each `moka` insert could walk every thread that ever touched a `moka` cache
/// (crossbeam-epoch's collection): with a thousand chat sockets open, 19% of the group-commit
/// thread's samples in a burst of questions (`perf`, benches/chat.rs).
pub(crate) struct Known {
    counters: Mutex<Counters>,
}

struct Counters {
    by_user: HashMap<String, Seen>,
    sweep_at: usize,
}

#[derive(Clone, Copy)]
struct Seen {
    seq: i64,
    at: Instant,
}

impl Seen {
    fn fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.at) < FRESH_FOR
    }
}

impl Counters {
    fn put(&mut self, user: &str, seq: i64, now: Instant) {
        if let Some(seen) = self.by_user.get_mut(user) {
            *seen = Seen { seq, at: now };
            return;
        }
        if self.by_user.len() >= self.sweep_at {
            self.by_user.retain(|_, seen| seen.fresh(now));
            self.sweep_at = (self.by_user.len() * 2).clamp(FIRST_SWEEP, MAX_USERS);
        }
        if self.by_user.len() < MAX_USERS {
            self.by_user.insert(user.to_owned(), Seen { seq, at: now });
        }
    }
}

impl Known {
    pub(crate) fn new() -> Known {
        Known {
            counters: Mutex::new(Counters {
                by_user: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic elsewhere cannot leave the map half-changed: every change is one statement.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's counter as last seen, if seen within the second.
    pub(crate) fn get(&self, user: &str) -> Option<i64> {
        let now = Instant::now();
        let counters = self.lock();
        let seen = counters.by_user.get(user)?;
        seen.fresh(now).then_some(seen.seq)
    }

    /// Records `seq`, read in some snapshot, unless a larger value is already known.
    pub(crate) fn observe(&self, user: &str, seq: i64) {
        let now = Instant::now();
        let mut counters = self.lock();
        match counters.by_user.get(user) {
            Some(seen) if seen.fresh(now) && seen.seq >= seq => {}
            _ => counters.put(user, seq, now),
        }
    }

    /// The writer's listener: reads the changed counter rows (by rowid) on the writer's
    /// connection, right after its transaction. A deleted row (a deleted account) is skipped.
    pub(crate) fn heard(&self, writer: &Connection, rowids: &[i64]) {
        let read = |rowid: i64| -> rusqlite::Result<Option<(String, i64)>> {
            writer
                .prepare_cached("SELECT user_id, seq FROM sync_counters WHERE rowid = ?1")?
                .query_row([rowid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        };
        for &rowid in rowids {
            match read(rowid) {
                Ok(Some((user, seq))) => self.lock().put(&user, seq, Instant::now()),
                Ok(None) => {}
                Err(e) => {
                    // Without the new value a pull could answer from an old one for up to
                    // FRESH_FOR; forget everything so every pull reads the database instead.
                    log::warn!("sync: cannot read a changed counter: {e}");
                    self.lock().by_user.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_larger_value_wins_whatever_the_order() {
        let k = Known::new();
        assert_eq!(k.get("u"), None);
        k.observe("u", 5);
        k.observe("u", 3);
        assert_eq!(k.get("u"), Some(5));
        k.observe("u", 9);
        assert_eq!(k.get("u"), Some(9));
        assert_eq!(k.get("v"), None);
    }

    #[test]
    fn a_value_older_than_a_second_is_not_known_and_is_swept_away() {
        let k = Known::new();
        let long_ago = Instant::now()
            .checked_sub(FRESH_FOR * 2)
            .expect("the clock is past two seconds");
        {
            let mut c = k.lock();
            for i in 0..FIRST_SWEEP {
                c.by_user.insert(
                    format!("old{i}"),
                    Seen {
                        seq: 4,
                        at: long_ago,
                    },
                );
            }
        }
        assert_eq!(k.get("old1"), None);
        // A stale entry does not hold back a smaller value.
        k.observe("old2", 3);
        assert_eq!(k.get("old2"), Some(3));
        // The next new user finds the map full of stale entries and sweeps them.
        k.observe("new", 1);
        let c = k.lock();
        assert_eq!(c.by_user.len(), 2, "old2 (fresh again) and new stay");
        assert!(c.by_user.contains_key("old2") && c.by_user.contains_key("new"));
        assert_eq!(c.sweep_at, FIRST_SWEEP);
    }

    #[test]
    fn the_writer_is_heard_through_the_counter_rows() {
        let c = crate::db::testing::memory();
        c.execute_batch(
            "INSERT INTO users (id, email, password_hash, full_name) VALUES ('u', 'u@x', 'h', 'U');
             INSERT INTO chat_sessions (id, user_id) VALUES ('s', 'u');
             INSERT INTO chat_sessions (id, user_id) VALUES ('s2', 'u');",
        )
        .unwrap();
        let k = Known::new();
        let rowid: i64 = c
            .query_row(
                "SELECT rowid FROM sync_counters WHERE user_id = 'u'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        k.observe("u", 7);
        k.heard(&c, &[rowid, rowid + 100]);
        // The writer's value is the committed one, even when lower (a test rolled it back).
        assert_eq!(k.get("u"), Some(2));
    }
}
