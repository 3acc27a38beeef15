//! The `notifications` table: the only SQL on it. Writers store a notification with `notify`
//! inside their own database transaction and publish `Stored::event` once it committed.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::db::user_rows;
use crate::error::{Error, Result};
use crate::notify::hub::Event;

/// Notifications older than this are deleted by the daily sweep.
pub(crate) const KEEP_DAYS: i64 = 90;

/// One stored notification, as `GET /notifications` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Notification)]
pub(crate) struct Stored {
    /// Grows with every notification: the paging cursor (`after`).
    pub(crate) id: i64,
    /// `budget_alert`, `bill_due`, `bill_posted`.
    #[serde(rename = "type")]
    #[schema(rename = "type", example = "budget_alert")]
    pub(crate) kind: String,
    /// What the type says; a `budget_alert` has `category`, `month`, `year`, `budget` and
    /// `actual` (rupees).
    #[schema(value_type = Object)]
    pub(crate) payload: Map<String, Value>,
    /// UTC, `2026-12-04T19:08:17Z`.
    pub(crate) created_at: String,
    /// When it was marked read; null while unread.
    #[schema(required = true)]
    pub(crate) read_at: Option<String>,
}

impl Stored {
    /// The frame `/ws/notifications` pushes for it.
    pub(crate) fn event(&self) -> Event {
        Event::Notification {
            kind: self.kind.clone(),
            id: self.id,
            payload: self.payload.clone(),
        }
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Stored> {
        let text: String = r.get(2)?;
        // Written by `notify` from a JSON object; anything else would be a bug or a hand edit.
        let payload = match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Ok(Stored {
            id: r.get(0)?,
            kind: r.get(1)?,
            payload,
            created_at: r.get(3)?,
            read_at: r.get(4)?,
        })
    }
}

const COLUMNS: &str = "id, type, payload, created_at, read_at";

/// Stores a notification for `user` inside the caller's transaction. With a `dedupe_key` the
/// user gets at most one notification under it: `None` when one already exists (stored now or
/// earlier, even if since read), so the caller publishes nothing.
pub(crate) fn notify(
    tx: &Transaction<'_>,
    user: &str,
    kind: &str,
    payload: Value,
    dedupe_key: Option<&str>,
    now: &str,
) -> Result<Option<Stored>> {
    let Value::Object(payload) = payload else {
        return Err(Error::internal(
            "a notification's payload must be an object",
        ));
    };
    // The frame is `{"type", "id", ...payload}`: a payload of those names would clash.
    if payload.contains_key("type") || payload.contains_key("id") {
        return Err(Error::internal("a notification's payload names type or id"));
    }
    let text = serde_json::to_string(&payload).map_err(Error::internal)?;
    let id: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO notifications (user_id, type, payload, dedupe_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (user_id, dedupe_key) DO NOTHING
             RETURNING id",
        )?
        .query_row(params![user, kind, text, dedupe_key, now], |r| r.get(0))
        .optional()?;
    Ok(id.map(|id| Stored {
        id,
        kind: kind.to_string(),
        payload,
        created_at: now.to_string(),
        read_at: None,
    }))
}

/// What `GET /notifications` asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    /// Only ids above this.
    pub(crate) after: i64,
    pub(crate) limit: u32,
    pub(crate) unread_only: bool,
}

/// The page, oldest first.
pub(crate) fn list(c: &Connection, user: &str, page: Page) -> Result<Vec<Stored>> {
    let unread = if page.unread_only {
        " AND read_at IS NULL"
    } else {
        ""
    };
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications
             WHERE user_id = ?1 AND id > ?2{unread} ORDER BY id LIMIT ?3"
        ))?
        .query_map(params![user, page.after, page.limit], Stored::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn unread_count(c: &Connection, user: &str) -> Result<i64> {
    Ok(c.prepare_cached(
        "SELECT count(*) FROM notifications WHERE user_id = ?1 AND read_at IS NULL",
    )?
    .query_row([user], |r| r.get(0))?)
}

/// Which notifications `POST /notifications/read` marks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selection {
    All,
    Ids(Vec<i64>),
}

/// Marks the user's unread notifications in `which` as read at `now`; the number newly
/// marked. Ids of other users' notifications (or of none) match nothing.
pub(crate) fn mark_read(
    tx: &Transaction<'_>,
    user: &str,
    which: &Selection,
    now: &str,
) -> Result<usize> {
    let n = match which {
        Selection::All => tx
            .prepare_cached(
                "UPDATE notifications SET read_at = ?2 WHERE user_id = ?1 AND read_at IS NULL",
            )?
            .execute(params![user, now])?,
        Selection::Ids(ids) => {
            // One statement whatever the number of ids: they go in as one JSON array.
            let list = serde_json::to_string(ids).map_err(Error::internal)?;
            tx.prepare_cached(
                "UPDATE notifications SET read_at = ?2
                 WHERE user_id = ?1 AND read_at IS NULL
                   AND id IN (SELECT value FROM json_each(?3))",
            )?
            .execute(params![user, now, list])?
        }
    };
    Ok(n)
}

/// The user's notifications whose change (`sync`'s counter) is in `(after, upto]`, in change
/// order: what `/sync` sends of them.
pub(crate) fn changed(c: &Connection, user: &str, after: i64, upto: i64) -> Result<Vec<Stored>> {
    let rows = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notifications
             WHERE user_id = ?1 AND change_seq > ?2 AND change_seq <= ?3 ORDER BY change_seq"
        ))?
        .query_map(params![user, after, upto], Stored::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes every notification created before `cutoff` (an ISO UTC time); how many went.
pub(crate) fn sweep(tx: &Transaction<'_>, cutoff: &str) -> Result<usize> {
    Ok(tx
        .prepare_cached("DELETE FROM notifications WHERE created_at < ?1")?
        .execute([cutoff])?)
}

/// The user's notifications for the data export, each payload as the JSON object it is.
pub(crate) fn export(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
    let mut rows = user_rows(c, "notifications", "user_id", user, &[])?;
    for row in rows.iter_mut().filter_map(Value::as_object_mut) {
        if let Some(p) = row.get_mut("payload")
            && let Some(parsed) = p.as_str().and_then(|s| serde_json::from_str(s).ok())
        {
            *p = parsed;
        }
    }
    Ok(vec![("notifications", rows)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;
    use serde_json::json;

    fn user(c: &Connection, id: &str) {
        c.execute(
            "INSERT INTO users (id, email, password_hash, full_name) VALUES (?1, ?1, 'x', 'T')",
            [id],
        )
        .expect("user");
    }

    #[test]
    fn a_dedupe_key_stores_once_per_user_and_the_frame_is_flat() {
        let mut c = memory();
        user(&c, "a");
        user(&c, "b");
        let tx = c.transaction().expect("tx");
        let t = "2026-01-01T00:00:00Z";
        let p = || json!({"category": "spending", "budget": 100});
        let first = notify(&tx, "a", "budget_alert", p(), Some("k"), t).expect("notify");
        let first = first.expect("stored");
        assert_eq!(
            notify(&tx, "a", "budget_alert", p(), Some("k"), t).ok(),
            Some(None)
        );
        assert!(
            notify(&tx, "b", "budget_alert", p(), Some("k"), t)
                .expect("b")
                .is_some()
        );
        // No key: every call stores.
        let n1 = notify(&tx, "a", "bill_due", json!({}), None, t).expect("1");
        let n2 = notify(&tx, "a", "bill_due", json!({}), None, t).expect("2");
        assert!(n1.is_some() && n2.is_some());
        assert_eq!(
            serde_json::to_value(first.event()).expect("json"),
            json!({"type": "budget_alert", "id": first.id, "category": "spending", "budget": 100})
        );
        for bad in [json!([1]), json!({"id": 1}), json!({"type": "x"})] {
            assert!(notify(&tx, "a", "x", bad, None, t).is_err());
        }
    }

    #[test]
    fn the_sweep_deletes_only_what_is_older_than_the_cutoff() {
        let mut c = memory();
        user(&c, "a");
        let tx = c.transaction().expect("tx");
        for t in ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"] {
            notify(&tx, "a", "x", json!({}), None, t).expect("notify");
        }
        assert_eq!(sweep(&tx, "2026-01-01T00:00:01Z").ok(), Some(1));
        let unread = unread_count(&tx, "a").expect("count");
        let left = list(
            &tx,
            "a",
            Page {
                after: 0,
                limit: 10,
                unread_only: false,
            },
        )
        .expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].created_at, "2026-01-01T00:00:01Z");
        assert_eq!(unread, 1);
    }
}
