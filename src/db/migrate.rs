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
        assert_eq!(first, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
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

    #[test]
    fn versions_are_increasing() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
    }
}
