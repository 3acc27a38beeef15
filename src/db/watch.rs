//! Hearing which rows of one table the writer changed, right after each write transaction:
//! SQLite's update hook on the writer connection notes the rowids (triggers' changes
//! included), and [`Watch::after`] hands them, with the connection, to the one listener.
//!
//! Only this process's writes are heard: an operator command on its own connection
//! (`wealthcoach user deactivate`) is not, so a listener's copy may lag those.

use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::Connection;
use rusqlite::hooks::Action;

type Listener = Box<dyn Fn(&Connection, &[i64]) + Send + Sync>;

pub(crate) struct Watch {
    table: &'static str,
    changed: Arc<Mutex<Vec<i64>>>,
    listener: OnceLock<Listener>,
}

impl Watch {
    /// Installs the hook on `writer`; rows of `table` are noted from now on.
    pub(crate) fn install(writer: &Connection, table: &'static str) -> rusqlite::Result<Watch> {
        let changed = Arc::new(Mutex::new(Vec::new()));
        let noted = changed.clone();
        writer.update_hook(Some(move |_: Action, db: &str, name: &str, rowid: i64| {
            if db == "main" && name == table {
                let mut rows = noted.lock().unwrap_or_else(|p| p.into_inner());
                // A bulk write changes the same counter row again and again.
                if rows.last() != Some(&rowid) {
                    rows.push(rowid);
                }
            }
        }))?;
        Ok(Watch {
            table,
            changed,
            listener: OnceLock::new(),
        })
    }

    /// Sets the listener (once; a second call is ignored and returns false).
    pub(crate) fn listen(&self, f: impl Fn(&Connection, &[i64]) + Send + Sync + 'static) -> bool {
        self.listener.set(Box::new(f)).is_ok()
    }

    /// Called on the writer, under its mutex, after every transaction, committed or not: a
    /// rolled-back row reads as its committed value, which the listener may hear again.
    pub(crate) fn after(&self, writer: &Connection) {
        let rows = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|p| p.into_inner()));
        if rows.is_empty() {
            return;
        }
        match self.listener.get() {
            Some(f) => f(writer, &rows),
            None => log::trace!("{} rows changed, nobody listening", self.table),
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
        let watch = Watch::install(&c, "t").unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let h = heard.clone();
        assert!(watch.listen(move |c, rows| {
            for r in rows {
                let v: i64 = c
                    .query_row("SELECT v FROM t WHERE rowid = ?1", [r], |x| x.get(0))
                    .unwrap();
                h.lock().unwrap().push((*r, v));
            }
        }));
        assert!(!watch.listen(|_, _| {}));
        c.execute_batch("INSERT INTO other VALUES (2), (2), (2); INSERT INTO other VALUES (7);")
            .unwrap();
        watch.after(&c);
        // Three bumps of one row, heard once with its latest value; no row 7 in `t`.
        assert_eq!(*heard.lock().unwrap(), vec![(2, 3)]);
        watch.after(&c);
        assert_eq!(heard.lock().unwrap().len(), 1, "nothing new, nothing heard");
    }
}
