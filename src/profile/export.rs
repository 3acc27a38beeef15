//! The profile's part of `/users/me/export` (gathered by `crate::export`).

use rusqlite::Connection;
use serde_json::Value;

use crate::db::user_rows;
use crate::error::Result;

/// The user's rows in the tables profile owns.
pub(crate) fn rows(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
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
