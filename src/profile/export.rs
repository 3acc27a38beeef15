//! `/users/me/export`: every row that belongs to the user, as one JSON document. Secrets
//! (password, token and code hashes, stored responses) are left out; money is in major units.

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

use crate::budget::money::Money;
use crate::error::Result;

/// (table, the column that names the owner). Every user-owned table is listed; a test checks
/// that each table with a `user_id` column appears here.
pub const TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("user_profiles", "user_id"),
    ("user_preferences", "user_id"),
    ("user_allocations", "user_id"),
    ("monthly_budgets", "user_id"),
    ("transactions", "user_id"),
    ("chat_sessions", "user_id"),
    ("chat_messages", "user_id"),
    ("llm_usage_daily", "user_id"),
    ("refresh_tokens", "user_id"),
    ("idempotency_keys", "user_id"),
];

const SECRET_COLUMNS: &[&str] = &[
    "password_hash",
    "token_hash",
    "request_hash",
    "response_body",
];
const MONEY_COLUMNS: &[&str] = &[
    "amount",
    "budget_amount",
    "actual_amount",
    "total_income",
    "total_expense",
];

fn rows(c: &Connection, table: &str, owner: &str, user: &str) -> Result<Vec<Value>> {
    let mut stmt = c.prepare(&format!("SELECT * FROM {table} WHERE {owner} = ?1"))?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut q = stmt.query([user])?;
    while let Some(r) = q.next()? {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            if SECRET_COLUMNS.contains(&name.as_str()) {
                continue;
            }
            let v = match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(_) if MONEY_COLUMNS.contains(&name.as_str()) => {
                    serde_json::to_value(r.get::<_, Money>(i)?).unwrap_or(Value::Null)
                }
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

pub fn export(c: &Connection, user: &str, now: &str) -> Result<Value> {
    let mut doc = Map::new();
    doc.insert("exported_at".into(), Value::from(now));
    doc.insert("user_id".into(), Value::from(user));
    for (table, owner) in TABLES {
        doc.insert((*table).into(), Value::Array(rows(c, table, owner, user)?));
    }
    Ok(Value::Object(doc))
}
