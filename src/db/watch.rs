//! Hearing which rows of some tables the writer changed, right after each write transaction:
//! SQLite's update hook on the writer connection notes the rowids (triggers' changes
//! included), and [`Watch::after`] hands them, with the connection, to each table's listener.
//!
//! Only this process's writes are heard: an operator command on its own connection
//! (`wealthcoach user deactivate`) is not, so a listener's copy may lag those.

use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::hooks::Action;
use rusqlite::{Connection, OptionalExtension};

type Listener = Box<dyn Fn(&Connection, &[i64]) + Send + Sync>;

pub(crate) struct Watch {
    tables: &'static [&'static str],
    /// Per table (in the order of `tables`), the rowids changed since the last `after`.
    changed: Arc<Mutex<Vec<Vec<i64>>>>,
    listeners: Vec<OnceLock<Listener>>,
}

impl Watch {
    /// Installs the hook on `writer`; rows of `tables` are noted from now on.
    pub(crate) fn install(
        writer: &Connection,
        tables: &'static [&'static str],
    ) -> rusqlite::Result<Watch> {
        // SQLite calls the hook for rowid tables only: a WITHOUT ROWID table (or a missing
        // one) would be silently never heard.
        for table in tables {
            let rowid: Option<bool> = writer
                .query_row(
                    "SELECT wr = 0 FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .optional()?;
            if rowid != Some(true) {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "{table}: not a rowid table of main, cannot be watched"
                )));
            }
        }
        let changed = Arc::new(Mutex::new(vec![Vec::new(); tables.len()]));
        let noted = changed.clone();
        writer.update_hook(Some(move |_: Action, db: &str, name: &str, rowid: i64| {
            if db != "main" {
                return;
            }
            if let Some(i) = tables.iter().position(|t| *t == name) {
                let mut all = noted.lock().unwrap_or_else(|p| p.into_inner());
                let rows = &mut all[i];
                // A bulk write changes the same counter row again and again.
                if rows.last() != Some(&rowid) {
                    rows.push(rowid);
                }
            }
        }))?;
        Ok(Watch {
            tables,
            changed,
            listeners: tables.iter().map(|_| OnceLock::new()).collect(),
        })
    }

    /// Sets the listener of `table` (once; false if it had one or is not watched).
    pub(crate) fn listen(
        &self,
        table: &str,
        f: impl Fn(&Connection, &[i64]) + Send + Sync + 'static,
    ) -> bool {
        match self.tables.iter().position(|t| *t == table) {
            Some(i) => self.listeners[i].set(Box::new(f)).is_ok(),
            None => false,
        }
    }

    /// Called on the writer, under its mutex, after every transaction, committed or not: a
    /// rolled-back row reads as its committed value, which the listener may hear again.
    pub(crate) fn after(&self, writer: &Connection) {
        let all = {
            let mut held = self.changed.lock().unwrap_or_else(|p| p.into_inner());
            if held.iter().all(Vec::is_empty) {
                return;
            }
            std::mem::replace(&mut *held, vec![Vec::new(); self.tables.len()])
        };
        for (i, rows) in all.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            match self.listeners[i].get() {
                Some(f) => f(writer, rows),
                None => log::trace!("{} rows changed, nobody listening", self.tables[i]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_changed_by_statements_and_triggers_reach_the_listener_once_per_write() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);
             CREATE TABLE other (x INTEGER);
             CREATE TRIGGER bump AFTER INSERT ON other BEGIN
                 UPDATE t SET v = v + 1 WHERE id = NEW.x;
             END;
             INSERT INTO t VALUES (1, 0), (2, 0);",
        )
        .unwrap();
        let watch = Watch::install(&c, &["t", "other"]).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        let inserted = Arc::new(Mutex::new(0));
        let i = inserted.clone();
        assert!(watch.listen("other", move |_, rows| *i.lock().unwrap() += rows.len()));
        assert!(watch.listen("t", move |c, rows| {
            for r in rows {
                let v: i64 = c
                    .query_row("SELECT v FROM t WHERE rowid = ?1", [r], |x| x.get(0))
                    .unwrap();
                h.lock().unwrap().push((*r, v));
            }
        }));
        assert!(!watch.listen("t", |_, _| {}));
        assert!(!watch.listen("unwatched", |_, _| {}));
        c.execute_batch("CREATE TABLE wr (k TEXT PRIMARY KEY) WITHOUT ROWID")
            .unwrap();
        assert!(Watch::install(&c, &["wr"]).is_err(), "never heard: refused");
        assert!(Watch::install(&c, &["missing"]).is_err());
        c.execute_batch("INSERT INTO other VALUES (2), (2), (2); INSERT INTO other VALUES (7);")
            .unwrap();
        watch.after(&c);
        // Three bumps of one row, heard once with its latest value; no row 7 in `t`.
        assert_eq!(*heard.lock().unwrap(), vec![(2, 3)]);
        assert_eq!(*inserted.lock().unwrap(), 4);
        watch.after(&c);
        assert_eq!(heard.lock().unwrap().len(), 1, "nothing new, nothing heard");
    }
}
