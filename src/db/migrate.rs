//! Numbered migrations from `sql/`, embedded in the binary and applied at start, each in its
//! own transaction and recorded in `schema_migrations` so it runs once.

use rusqlite::{Connection, TransactionBehavior, params};

/// (version, name, SQL), in order: every `sql/NNNN_name.sql`, gathered by `build.rs`. Add a
/// new file with the next number; never edit an applied one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Applies what is missing; returns the versions it applied.
pub(crate) fn apply_migrations(conn: &mut Connection) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             name TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
         )",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            params![version, name],
        )?;
        tx.commit()?;
        log::info!("applied migration {version:04} {name}");
        applied.push(*version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_seed_the_catalogue() {
        let mut c = Connection::open_in_memory().expect("memory db");
        c.execute_batch("PRAGMA foreign_keys = ON").expect("pragma");
        let first = apply_migrations(&mut c).expect("apply");
        assert_eq!(first, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let every: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(first, every);
        let second = apply_migrations(&mut c).expect("apply again");
        assert!(second.is_empty());
        let (cats, types, bp): (i64, i64, i64) = c
            .query_row(
                "SELECT (SELECT count(*) FROM allocation_categories),
                        (SELECT count(*) FROM allocation_types),
                        (SELECT sum(target_percentage_bp) FROM allocation_categories)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("counts");
        assert_eq!((cats, types, bp), (6, 34, 9000));
    }

    /// Issue 13's upgrade: a database made by the schema before 0007, with allocation rows and
    /// transactions, keeps every row and figure; what was `actual_amount` is `recorded_amount`,
    /// nothing is spent or linked yet, and the month totals are untouched.
    #[test]
    fn the_budgets_upgrade_keeps_every_row_and_figure() {
        let mut c = Connection::open_in_memory().expect("memory db");
        c.execute_batch("PRAGMA foreign_keys = ON").expect("pragma");
        c.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))",
        )
        .expect("table");
        for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 <= 6) {
            c.execute_batch(sql).expect("old migration");
            c.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                params![version, name],
            )
            .expect("record");
        }
        let ty: String = c
            .query_row(
                "SELECT id FROM allocation_types ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("a type");
        c.execute_batch(&format!(
            "INSERT INTO users (id, email, password_hash, full_name) VALUES ('u1', 'u@x.com', 'h', 'U');
             INSERT INTO user_allocations (id, user_id, allocation_type_id, year, month, budget_amount,
                                           actual_amount, notes)
                 VALUES ('a1', 'u1', '{ty}', 2025, 10, 50000, 12345, 'kept');
             INSERT INTO transactions (id, user_id, type, category, amount, label, transaction_date,
                                       year, month)
                 VALUES ('t1', 'u1', 'expense', 'food', 999, 'lunch', '2025-10-05T00:00:00Z', 2025, 10);
             INSERT INTO monthly_budgets (user_id, year, month, total_expense, transaction_count)
                 VALUES ('u1', 2025, 10, 999, 1);"
        ))
        .expect("old rows");

        let applied = apply_migrations(&mut c).expect("upgrade");
        assert_eq!(applied, vec![7, 8, 9, 10, 11]);
        let row: (i64, i64, i64, String) = c
            .query_row(
                "SELECT budget_amount, recorded_amount, spent_amount, notes FROM user_allocations
                 WHERE id = 'a1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("allocation row");
        assert_eq!(row, (50000, 12345, 0, "kept".to_string()));
        let tx: (i64, Option<String>, i64) = c
            .query_row(
                "SELECT amount, allocation_type_id, version FROM transactions WHERE id = 't1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("transaction");
        assert_eq!(tx, (999, None, 1));
        let totals: (i64, i64) = c
            .query_row(
                "SELECT total_expense, transaction_count FROM monthly_budgets WHERE user_id = 'u1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("totals");
        assert_eq!(totals, (999, 1));
    }

    #[test]
    fn versions_are_increasing() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
    }
}
