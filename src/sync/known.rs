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

use std::time::Duration;

use moka::ops::compute::Op;
use moka::sync::Cache;
use rusqlite::{Connection, OptionalExtension};

const FRESH_FOR: Duration = Duration::from_secs(1);
const MAX_USERS: u64 = 200_000;

pub(crate) struct Known {
    counters: Cache<String, i64>,
}

impl Known {
    pub(crate) fn new() -> Known {
        Known {
            counters: Cache::builder()
                .max_capacity(MAX_USERS)
                .time_to_live(FRESH_FOR)
                .build(),
        }
    }

    /// The user's counter as last seen, if seen within the second.
    pub(crate) fn get(&self, user: &str) -> Option<i64> {
        self.counters.get(user)
    }

    /// Records `seq`, read in some snapshot, unless a larger value is already known.
    pub(crate) fn observe(&self, user: &str, seq: i64) {
        self.counters
            .entry_by_ref(user)
            .and_compute_with(|held| match held {
                Some(e) if *e.value() >= seq => Op::Nop,
                _ => Op::Put(seq),
            });
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
                Ok(Some((user, seq))) => self.counters.insert(user, seq),
                Ok(None) => {}
                Err(e) => {
                    // Without the new value a pull could answer from an old one for up to
                    // FRESH_FOR; forget everything so every pull reads the database instead.
                    log::warn!("sync: cannot read a changed counter: {e}");
                    self.counters.invalidate_all();
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
