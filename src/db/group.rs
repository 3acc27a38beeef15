//! Group commit for writes that many threads make at once and that need not run on the
//! caller's thread (the chat's question and answer saves).
//!
//! Every `Db::write` caller takes the writer's mutex in turn. On 2 cores with a thousand
//! threads runnable (a burst of chat questions, each with its socket thread and its upstream
//! reader), each hand-over waits for the next owner to be scheduled: benches/chat.rs saw
//! 1,000 one-row writes take over 2 s that way, a convoy, not SQLite. Here one thread takes
//! whatever jobs are queued, runs each inside its own savepoint of one transaction, commits
//! once, and answers each job on its own channel, so the waiters wake in parallel.

use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// A write run by the group's thread.
pub type Job = Box<dyn FnOnce(&Transaction<'_>) -> Result<()> + Send>;

struct Queued {
    job: Job,
    done: SyncSender<Result<()>>,
}

/// The queue into the group's thread. Dropping it lets the thread finish what is queued and
/// end.
pub(crate) struct Group {
    queue: Mutex<std::sync::mpsc::Sender<Queued>>,
}

/// Most jobs in one transaction: a bound on how long one commit holds the writer.
const MAX_BATCH: usize = 256;

impl Group {
    pub(crate) fn start(writer: Arc<Mutex<Connection>>) -> std::io::Result<Group> {
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
                    run(&writer, batch);
                }
            })?;
        Ok(Group {
            queue: Mutex::new(tx),
        })
    }

    /// Queues `job`; the receiver gets its outcome once its transaction committed (or failed).
    pub(crate) fn submit(&self, job: Job) -> Receiver<Result<()>> {
        let (done, outcome) = sync_channel(1);
        let queued = Queued { job, done };
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(queued);
        if let Err(std::sync::mpsc::SendError(q)) = sent {
            let _ = q
                .done
                .send(Err(Error::internal("the database writer has stopped")));
        }
        outcome
    }
}

/// One transaction for the batch; each job in a savepoint, so a failing job rolls back only
/// its own changes. Outcomes are sent after the commit: an `Ok` means committed.
fn run(writer: &Mutex<Connection>, batch: Vec<Queued>) {
    let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            for q in batch {
                let _ = q.done.send(Err(Error::internal(format!("begin: {e}"))));
            }
            return;
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for q in batch {
        let outcome = in_savepoint(&tx, q.job);
        outcomes.push((q.done, outcome));
    }
    if let Err(e) = tx.commit() {
        for (done, _) in outcomes {
            let _ = done.send(Err(Error::internal(format!("commit: {e}"))));
        }
        return;
    }
    drop(conn);
    for (done, outcome) in outcomes {
        let _ = done.send(outcome);
    }
}

fn in_savepoint(tx: &Transaction<'_>, job: Job) -> Result<()> {
    tx.execute_batch("SAVEPOINT job")?;
    match job(tx) {
        Ok(()) => {
            tx.execute_batch("RELEASE job")?;
            Ok(())
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
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
        let group = Group::start(writer.clone()).unwrap();
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
            outcomes.push(group.submit(Box::new(move |tx: &Transaction<'_>| {
                tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                if v == 7 {
                    // Half-done work of a failing job must not survive.
                    tx.execute("INSERT INTO t (v) VALUES (?1)", [1000 + v])?;
                    return Err(Error::internal("refused"));
                }
                Ok(())
            })));
        }
        for (v, o) in outcomes.into_iter().enumerate() {
            let got = o.recv().unwrap();
            assert_eq!(got.is_ok(), v != 7, "job {v}: {got:?}");
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
                group.submit(Box::new(move |tx: &Transaction<'_>| {
                    tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                    Ok(())
                }))
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
