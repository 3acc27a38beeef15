//! Sync for offline clients: a per-user change counter, tombstones and an epoch (all kept by
//! the triggers of `sql/0010_sync.sql`, so every write path advances the counter by
//! construction), `GET /sync` over them, ETags on the cached month views, and the `sync` push
//! on `/ws/notifications`.
//!
//! Owns `sync_counters`, `sync_tombstones`, `sync_meta` and the `change_seq` column of every
//! synced table; it reads the synced rows through their owners' row mappers.

pub(crate) mod cursor;
pub(crate) mod etag;
pub(crate) mod known;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod routes;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::api::ApiPath;
use crate::app::App;
use crate::db::user_rows;
use crate::error::Result;
use crate::http::Route;

/// Tombstones are kept this long (swept daily with the notifications).
pub(crate) const TOMBSTONE_DAYS: i64 = 90;

pub fn routes() -> Vec<Route<App>> {
    vec![routes::__path_get_sync::route(routes::get_sync)]
}

/// What cursors are made with: the database's epoch and a key derived from the JWT secret.
pub(crate) struct Keys {
    pub(crate) epoch: String,
    mac: [u8; 32],
}

impl Keys {
    pub(crate) fn load(c: &Connection, secret: &str) -> Result<Keys> {
        Ok(Keys {
            epoch: epoch(c)?,
            mac: hmac_sha256::HMAC::mac(b"wealthcoach sync cursor v1", secret.as_bytes()),
        })
    }
}

/// The database's epoch (`sync_meta`), written by the migration and by `wealthcoach restore`.
pub(crate) fn epoch(c: &Connection) -> Result<String> {
    Ok(c.query_row("SELECT epoch FROM sync_meta WHERE id = 1", [], |r| r.get(0))?)
}

/// The user's counter and the newest swept tombstone's value; (0, 0) before any change.
pub(crate) fn counter(c: &Connection, user: &str) -> Result<(i64, i64)> {
    Ok(
        c.prepare_cached("SELECT seq, expired_below FROM sync_counters WHERE user_id = ?1")?
            .query_row([user], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0)),
    )
}

/// Deletes the tombstones written before `cutoff` (ISO UTC), remembering per user the newest
/// value swept, below which a cursor may have missed a deletion; how many went.
pub(crate) fn sweep(tx: &Transaction<'_>, cutoff: &str) -> Result<usize> {
    tx.prepare_cached(
        "UPDATE sync_counters SET expired_below = max(expired_below,
             (SELECT max(t.change_seq) FROM sync_tombstones t
              WHERE t.user_id = sync_counters.user_id AND t.deleted_at < ?1))
         WHERE user_id IN (SELECT user_id FROM sync_tombstones WHERE deleted_at < ?1)",
    )?
    .execute([cutoff])?;
    Ok(tx
        .prepare_cached("DELETE FROM sync_tombstones WHERE deleted_at < ?1")?
        .execute(params![cutoff])?)
}

/// The user's counter and tombstones for the data export: bookkeeping without secrets (ids,
/// kinds, counter values, times), exported so the document holds every row the user owns.
pub(crate) fn export(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
    Ok(vec![
        (
            "sync_counters",
            user_rows(c, "sync_counters", "user_id", user, &[])?,
        ),
        (
            "sync_tombstones",
            user_rows(c, "sync_tombstones", "user_id", user, &[])?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;

    fn seq_of(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    #[test]
    fn every_change_gets_the_next_value_and_a_delete_leaves_a_tombstone() {
        let c = memory();
        c.execute_batch(
            "INSERT INTO users (id, email, password_hash, full_name) VALUES ('u', 'u@x', 'h', 'U');
             INSERT INTO transactions (id, user_id, type, category, amount, label, transaction_date, year, month)
                 VALUES ('t', 'u', 'income', 'c', 100, 'l', '2025-10-01T00:00:00Z', 2025, 10);
             UPDATE transactions SET amount = 200 WHERE id = 't';
             UPDATE transactions SET label = 'm' WHERE id = 't';",
        )
        .unwrap();
        assert_eq!(counter(&c, "u").unwrap(), (3, 0));
        assert_eq!(seq_of(&c, "SELECT change_seq FROM transactions"), 3);
        assert_eq!(seq_of(&c, "SELECT version FROM transactions"), 3);
        c.execute_batch("DELETE FROM transactions WHERE id = 't'")
            .unwrap();
        assert_eq!(counter(&c, "u").unwrap().0, 4);
        let t: (i64, String, String) = c
            .query_row(
                "SELECT change_seq, kind, row_id FROM sync_tombstones",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(t, (4, "transactions".into(), "t".into()));
        // Deleting the account cascades through the triggers and leaves nothing behind.
        c.execute_batch(
            "INSERT INTO transactions (id, user_id, type, category, amount, label, transaction_date, year, month)
                 VALUES ('t2', 'u', 'income', 'c', 100, 'l', '2025-10-01T00:00:00Z', 2025, 10);
             DELETE FROM users WHERE id = 'u';",
        )
        .unwrap();
        assert_eq!(seq_of(&c, "SELECT count(*) FROM sync_counters"), 0);
        assert_eq!(seq_of(&c, "SELECT count(*) FROM sync_tombstones"), 0);
    }

    #[test]
    fn the_sweep_moves_the_expiry_line_to_the_newest_swept_tombstone() {
        let c = memory();
        c.execute_batch(
            "INSERT INTO users (id, email, password_hash, full_name) VALUES ('u', 'u@x', 'h', 'U');
             INSERT INTO chat_sessions (id, user_id) VALUES ('s', 'u');
             DELETE FROM chat_sessions;",
        )
        .unwrap();
        let mut c = c;
        let tx = c.transaction().unwrap();
        assert_eq!(sweep(&tx, "2000-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(sweep(&tx, "2999-01-01T00:00:00Z").unwrap(), 1);
        assert_eq!(counter(&tx, "u").unwrap(), (2, 2));
    }
}
