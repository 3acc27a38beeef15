//! Group commit for writes that many threads make at once and that need not run on the
//! caller's thread (`POST /transactions`, through `Db::write_in_group`).
//!
//! Every `Db::write` caller takes the writer's mutex in turn, and each hand-over waits for the
//! next owner to be scheduled; under load that queue, not SQLite, sets the pace (benches/chat.rs
//! saw 1,000 one-row writes take over 2 s that way). Here one thread takes whatever jobs are
//! queued, runs each inside its own savepoint of one transaction, commits once, and answers
//! each job on its own channel, so the waiters wake in parallel.

use std::sync::mpsc::{Receiver, channel, sync_channel};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::Watch;
use crate::error::{Error, Result};

/// What a job hands back when it ran: called once the batch committed (`Ok`) or failed.
pub type Deliver = Box<dyn FnOnce(Result<()>) + Send>;

/// A write run by the group's thread: `Ok` with its delivery, or its own error (its
/// savepoint is then rolled back and the error delivered at once).
pub type Job = Box<dyn FnOnce(&Transaction<'_>) -> std::result::Result<Deliver, Failed> + Send>;

/// A job that failed, with the delivery of its error.
pub struct Failed(pub Box<dyn FnOnce() + Send>);

struct Queued {
    job: Job,
    /// Delivers an error to a job that could not run (the batch could not begin).
    fail: Box<dyn FnOnce(Error) + Send>,
}

/// The queue into the group's thread. Dropping it lets the thread finish what is queued and
/// end.
pub(crate) struct Group {
    queue: Mutex<std::sync::mpsc::Sender<Queued>>,
}

/// Most jobs in one transaction: a bound on how long one commit holds the writer.
const MAX_BATCH: usize = 256;

impl Group {
    pub(crate) fn start(
        writer: Arc<Mutex<Connection>>,
        watch: Arc<Watch>,
    ) -> std::io::Result<Group> {
        let (tx, rx) = channel::<Queued>();
        std::thread::Builder::new()
            .name("db-group".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(q) => batch.push(q),
                            Err(_) => break,
                        }
                    }
                    run(&writer, &watch, batch);
                }
            })?;
        Ok(Group {
            queue: Mutex::new(tx),
        })
    }

    /// Queues `f`; the receiver gets its value once its transaction committed, or its error.
    pub(crate) fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Receiver<Result<T>> {
        let (done, outcome) = sync_channel::<Result<T>>(1);
        self.submit_then(f, move |r| {
            let _ = done.send(r);
        });
        outcome
    }

    /// Queues `f`; `then` gets its value once its transaction committed, or its error. `then`
    /// runs on the group's thread, between two batches: it must only hand the outcome on. If
    /// the group's thread is gone, `then` is dropped uncalled.
    pub(crate) fn submit_then<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
        then: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        // One of the three paths below calls `then`: it is shared, and taken once.
        let then = Arc::new(Mutex::new(Some(then)));
        let (ran, failed, unrun) = (then.clone(), then.clone(), then);
        let fail = Box::new(move |e: Error| tell(&unrun, Err(e)));
        let job: Job = Box::new(move |tx| match f(tx) {
            Ok(v) => Ok(Box::new(move |committed: Result<()>| {
                tell(&ran, committed.map(|()| v));
            })),
            Err(e) => Err(Failed(Box::new(move || tell(&failed, Err(e))))),
        });
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Queued { job, fail });
        if sent.is_err() {
            // The thread is gone (the database is closing): the job was dropped, and `then`
            // with it.
            log::error!("a write was queued after the database writer stopped");
        }
    }
}

/// Calls the shared `then` of a job if no other path has.
fn tell<T, F: FnOnce(Result<T>)>(then: &Mutex<Option<F>>, r: Result<T>) {
    let taken = then.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(then) = taken {
        then(r);
    }
}

/// One transaction for the batch; each job in a savepoint, so a failing job rolls back only
/// its own changes. Outcomes are sent after the commit: an `Ok` means committed.
fn run(writer: &Mutex<Connection>, watch: &Watch, batch: Vec<Queued>) {
    let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            for q in batch {
                (q.fail)(same_error(&e));
            }
            return;
        }
    };
    let mut delivered = Vec::with_capacity(batch.len());
    let mut queued = batch.into_iter();
    while let Some(q) = queued.next() {
        if let Some(deliver) = in_savepoint(&tx, q) {
            delivered.push(deliver);
        }
        // Some errors (a full disk, I/O) make SQLite roll back the whole transaction: the
        // jobs that ran are undone, and the rest must not run outside a transaction.
        if tx.is_autocommit() {
            let gone = || Error::Unavailable {
                code: "database_busy",
                detail: "The write was rolled back; please retry".into(),
            };
            delivered.into_iter().for_each(|d| d(Err(gone())));
            queued.for_each(|q| (q.fail)(gone()));
            return;
        }
    }
    let committed = tx.commit();
    // Before the callers hear of their commit, so a pull right after sees it.
    watch.after(&conn);
    drop(conn);
    for deliver in delivered {
        deliver(committed.as_ref().map(|_| ()).map_err(same_error));
    }
}

/// The error each caller of a failed batch gets: what `Error::from` makes of SQLite's code
/// (a full disk is 507 `storage_full`, not a 500), once per caller.
fn same_error(e: &rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            Error::from(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        other => Error::internal(other),
    }
}

/// Runs the job in its own savepoint; its delivery when it succeeded. A job that failed is
/// rolled back to its savepoint and told at once.
fn in_savepoint(tx: &Transaction<'_>, q: Queued) -> Option<Deliver> {
    if let Err(e) = run_cached(tx, &["SAVEPOINT job"]) {
        (q.fail)(same_error(&e));
        return None;
    }
    match (q.job)(tx) {
        Ok(deliver) => match run_cached(tx, &["RELEASE job"]) {
            Ok(()) => Some(deliver),
            Err(e) => {
                deliver(Err(same_error(&e)));
                let _ = run_cached(tx, &["ROLLBACK TO job", "RELEASE job"]);
                None
            }
        },
        Err(failed) => {
            if let Err(e) = run_cached(tx, &["ROLLBACK TO job", "RELEASE job"]) {
                log::error!("group commit: rollback to a savepoint: {e}");
            }
            failed.0();
            None
        }
    }
}

/// Runs each statement from the connection's statement cache: `execute_batch` would compile
/// them again for every job.
fn run_cached(tx: &Transaction<'_>, statements: &[&str]) -> rusqlite::Result<()> {
    for sql in statements {
        tx.prepare_cached(sql)?.execute([])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer holding table `t` (seq, v), and a group on it.
    fn table() -> (Arc<Mutex<Connection>>, Group) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (seq INTEGER PRIMARY KEY, v INTEGER)")
            .unwrap();
        let writer = Arc::new(Mutex::new(conn));
        let group = Group::start(
            writer.clone(),
            Arc::new(Watch::install(&writer.lock().unwrap(), &["t"]).unwrap()),
        )
        .unwrap();
        (writer, group)
    }

    fn count(c: &Mutex<Connection>, v: i64) -> i64 {
        c.lock()
            .unwrap()
            .query_row("SELECT count(*) FROM t WHERE v = ?1", [v], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_failing_job_rolls_back_alone_and_the_rest_commit_in_order() {
        let (writer, group) = table();
        let mut outcomes = Vec::new();
        for v in 0..50i64 {
            outcomes.push(group.submit(move |tx: &Transaction<'_>| {
                tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                if v == 7 {
                    // Half-done work of a failing job must not survive.
                    tx.execute("INSERT INTO t (v) VALUES (?1)", [1000 + v])?;
                    return Err(Error::internal("refused"));
                }
                Ok(v * 10)
            }));
        }
        for (v, o) in outcomes.into_iter().enumerate() {
            let got = o.recv().unwrap();
            match got {
                Ok(x) => assert_eq!(x, v as i64 * 10, "job {v}'s own value"),
                Err(e) => assert_eq!(v, 7, "job {v} failed: {e:?}"),
            }
        }
        assert_eq!(count(&writer, 7), 0);
        assert_eq!(count(&writer, 1007), 0);
        let order: Vec<i64> = {
            let c = writer.lock().unwrap();
            let mut s = c.prepare("SELECT v FROM t ORDER BY seq").unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let want: Vec<i64> = (0..50).filter(|v| *v != 7).collect();
        assert_eq!(order, want);
    }

    #[test]
    fn jobs_queued_before_the_group_is_dropped_still_commit() {
        let (writer, group) = table();
        let outcomes: Vec<_> = (0..20i64)
            .map(|v| {
                group.submit(move |tx: &Transaction<'_>| {
                    tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                    Ok(())
                })
            })
            .collect();
        drop(group);
        for o in outcomes {
            assert!(o.recv().unwrap().is_ok());
        }
        let n: i64 = writer
            .lock()
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 20);
    }
}
