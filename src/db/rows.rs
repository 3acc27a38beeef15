//! A user's rows of one table as JSON, for the data export. The mechanism only: each module
//! exports its own tables with it (`auth::users::export`, `budget::export`, ...).

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use crate::error::Result;

/// Every row of `table` whose `owner` column is `user`, one JSON object per row, without the
/// `hidden` columns and without blobs. `table` and `owner` are the caller's names, never input.
pub(crate) fn user_rows(
    c: &Connection,
    table: &str,
    owner: &str,
    user: &str,
    hidden: &[&str],
) -> Result<Vec<Value>> {
    let mut stmt = c.prepare(&format!("SELECT * FROM {table} WHERE {owner} = ?1"))?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut q = stmt.query([user])?;
    while let Some(r) = q.next()? {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            if hidden.contains(&name.as_str()) {
                continue;
            }
            let v = match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => Value::from(f),
                ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(_) => continue,
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}
