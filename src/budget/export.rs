//! The user's rows in the tables budget owns, for the data export: money in major units,
//! stored idempotent responses (and their request hashes) left out.

use rusqlite::Connection;
use rusqlite::types::{FromSql, ValueRef};
use serde_json::Value;

use super::money::Money;
use crate::db::user_rows;
use crate::error::Result;

const MONEY_COLUMNS: &[&str] = &[
    "amount",
    "budget_amount",
    "recorded_amount",
    "spent_amount",
    "total_income",
    "total_expense",
    "cap",
];

/// Integer paise in a money column become the contract's exact major-unit number.
pub(crate) fn in_major_units(mut rows: Vec<Value>) -> Vec<Value> {
    for row in rows.iter_mut().filter_map(Value::as_object_mut) {
        for (name, v) in row.iter_mut() {
            if MONEY_COLUMNS.contains(&name.as_str())
                && let Some(n) = v.as_i64()
            {
                // Read as a column of the table would be, so the export shows what is stored.
                let money = Money::column_result(ValueRef::Integer(n)).ok();
                *v = money
                    .and_then(|m| serde_json::to_value(m).ok())
                    .unwrap_or(Value::Null);
            }
        }
    }
    rows
}

pub(crate) fn export(c: &Connection, user: &str) -> Result<Vec<(&'static str, Vec<Value>)>> {
    let own = |table| user_rows(c, table, "user_id", user, &[]).map(in_major_units);
    Ok(vec![
        ("user_allocations", own("user_allocations")?),
        ("allocation_rollover", own("allocation_rollover")?),
        ("monthly_budgets", own("monthly_budgets")?),
        ("transactions", own("transactions")?),
        (
            "idempotency_keys",
            user_rows(
                c,
                "idempotency_keys",
                "user_id",
                user,
                &["request_hash", "response_body"],
            )?,
        ),
    ])
}
