//! `/users/me/export`: every row that belongs to the user, as one JSON document. Each module
//! exports the tables it owns; secrets (password, token and code hashes, stored responses)
//! are left out there, and money is in major units.

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::db::user_rows;
use crate::error::Result;

/// The user's rows in the tables profile owns.
fn own(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
    Ok(vec![
        (
            "user_profiles",
            user_rows(c, "user_profiles", "user_id", user, &[])?,
        ),
        (
            "user_preferences",
            user_rows(c, "user_preferences", "user_id", user, &[])?,
        ),
    ])
}

/// Every user-owned table must be in one of these; tests/money_api.rs checks that each table
/// with a `user_id` column appears in the document.
pub(crate) fn export(c: &Connection, user: &str, now: &str) -> Result<Value> {
    let mut doc = Map::new();
    doc.insert("exported_at".into(), Value::from(now));
    doc.insert("user_id".into(), Value::from(user));
    let parts = [
        crate::auth::users::export(c, user)?,
        own(c, user)?,
        crate::budget::export::export(c, user)?,
        crate::chat::records::export(c, user)?,
    ];
    for (table, rows) in parts.into_iter().flatten() {
        doc.insert(table.into(), Value::Array(rows));
    }
    Ok(Value::Object(doc))
}
