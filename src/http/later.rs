//! Answers given after the handler returned. A handler whose work waits on another thread
//! (`POST /transactions` waits for the database's group commit) returns `Resp::later`: its
//! handler thread goes back to reading requests instead of sleeping until the commit, so
//! more writes reach one commit (benches/money.rs). When the work is done, its answer is
//! built and written on the answer thread: one thread is enough, as all that is left is a
//! small closure and one write.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::response::Resp;
use crate::error::Error;

/// What is left once the work is done: the answer, built with the server's state `S`.
pub(crate) type Work<S> = Box<dyn FnOnce(&S) -> Result<Resp, Error> + Send>;

/// Starts the work, on the handler thread right after the handler returned. It must hand
/// `Later` to whatever finishes the work, which calls `Later::finish` exactly once.
pub(crate) type Start<S> = Box<dyn FnOnce(&S, Later<S>) + Send>;

/// The right to answer one request. Dropped without `finish` (the work was lost: the
/// database writer stopped), it answers 500 rather than leave the client waiting.
pub(crate) struct Later<S: 'static> {
    finish: Option<Box<dyn FnOnce(Work<S>) + Send>>,
}

impl<S: 'static> Later<S> {
    pub(crate) fn new(finish: impl FnOnce(Work<S>) + Send + 'static) -> Later<S> {
        Later {
            finish: Some(Box::new(finish)),
        }
    }

    /// Hands `work` to the thread that answers the request, which builds the answer and
    /// writes it: the answer thread, or the handler thread waiting for it (`Answers::open`).
    /// `work` runs there, not on the caller's thread (the database's group thread), so what
    /// it costs delays no commit.
    pub(crate) fn finish(mut self, work: impl FnOnce(&S) -> Result<Resp, Error> + Send + 'static) {
        if let Some(finish) = self.finish.take() {
            finish(Box::new(work));
        }
    }
}

impl<S: 'static> Drop for Later<S> {
    fn drop(&mut self) {
        if let Some(finish) = self.finish.take() {
            finish(Box::new(|_| {
                Err(Error::internal(
                    "the work behind a request stopped before it answered",
                ))
            }));
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The answer thread and its queue.
pub(crate) struct Answers {
    queue: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    open: Arc<Opened>,
}

/// Requests handed to the answer thread and not answered yet, and their connections.
#[derive(Default)]
struct Opened {
    count: AtomicUsize,
    peers: Mutex<HashSet<SocketAddr>>,
}

/// One request handed to the answer thread and not answered yet; dropped with its answer.
pub(crate) struct Open {
    opened: Arc<Opened>,
    peer: SocketAddr,
}

impl Drop for Open {
    fn drop(&mut self) {
        lock(&self.opened.peers).remove(&self.peer);
        self.opened.count.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Answers {
    pub(crate) fn start() -> std::io::Result<Answers> {
        let (tx, rx) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("http-answer".into())
            .spawn(move || drain(rx))?;
        Ok(Answers {
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            open: Arc::new(Opened::default()),
        })
    }

    /// The answer thread's turn to answer a request from `peer`, held until the returned
    /// guard is dropped (with the answer); `None` while another request of the same
    /// connection holds it. tiny_http writes a connection's answers in request order, so an
    /// answer written before the one ahead of it waits for it: were both on this one thread,
    /// the later one first, it would wait forever. A request refused here is answered by
    /// the thread that handled it, which waits for its work (as every request did before).
    pub(crate) fn open(&self, peer: SocketAddr) -> Option<Open> {
        if !lock(&self.open.peers).insert(peer) {
            return None;
        }
        self.open.count.fetch_add(1, Ordering::SeqCst);
        Some(Open {
            opened: self.open.clone(),
            peer,
        })
    }

    /// Runs `job` on the answer thread; on the caller's thread if that one is gone, so an
    /// answer is never dropped.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let sender = lock(&self.queue).clone();
        let job: Job = Box::new(job);
        let unsent = match sender {
            Some(s) => s.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = unsent {
            job();
        }
    }

    /// Waits (until `deadline`) for every open request to be answered, then stops the
    /// thread. Work finishing after the deadline is answered on the thread that finishes it.
    pub(crate) fn close(&self, deadline: Instant) {
        while self.open.count.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(lock(&self.queue).take());
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() && t.join().is_err() {
                log::error!("the answer thread panicked");
            }
        }
    }
}

fn drain(rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        // A panic here would lose every answer queued behind it.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("writing a deferred answer panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Later whose finish runs its work on the answer thread and records the status.
    fn later(answers: &Arc<Answers>, got: &Arc<Mutex<Vec<u16>>>) -> Later<()> {
        let (answers, got) = (answers.clone(), got.clone());
        // Each its own connection.
        static PORT: AtomicUsize = AtomicUsize::new(1);
        let port = PORT.fetch_add(1, Ordering::SeqCst) as u16;
        let open = answers.open(SocketAddr::from(([127, 0, 0, 1], port)));
        Later::new(move |work: Work<()>| {
            answers.run(move || {
                let _answered = open;
                let status = match work(&()) {
                    Ok(r) => r.status,
                    Err(e) => e.status(),
                };
                got.lock().unwrap().push(status);
            })
        })
    }

    #[test]
    fn every_later_is_answered_once_finished_or_dropped() {
        let answers = Arc::new(Answers::start().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        later(&answers, &got).finish(|_| Ok(Resp::empty(201)));
        drop(later(&answers, &got));
        let from_thread = later(&answers, &got);
        std::thread::spawn(move || from_thread.finish(|_| Ok(Resp::empty(200))))
            .join()
            .unwrap();
        answers.close(Instant::now() + Duration::from_secs(5));
        let mut got = got.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![200, 201, 500]);
    }

    #[test]
    fn one_request_per_connection_at_a_time() {
        let answers = Answers::start().unwrap();
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 1], 4001)),
            SocketAddr::from(([127, 0, 0, 1], 4002)),
        );
        let first = answers.open(a).expect("a free connection");
        assert!(
            answers.open(a).is_none(),
            "the same connection waits its turn"
        );
        let other = answers.open(b).expect("another connection is not held up");
        drop(first);
        assert!(answers.open(a).is_some(), "free again once answered");
        drop(other);
        answers.close(Instant::now() + Duration::from_secs(5));
    }

    #[test]
    fn close_waits_for_a_request_answered_late() {
        let answers = Arc::new(Answers::start().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let late = later(&answers, &got);
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            late.finish(|_| Ok(Resp::empty(201)));
        });
        answers.close(Instant::now() + Duration::from_secs(10));
        assert_eq!(*got.lock().unwrap(), vec![201]);
        finisher.join().unwrap();
    }

    #[test]
    fn after_close_work_runs_on_the_finishing_thread_and_a_panic_loses_nothing_else() {
        let answers = Arc::new(Answers::start().unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        answers.run(|| panic!("one answer's bug"));
        let r = ran.clone();
        answers.run(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        answers.close(Instant::now() + Duration::from_secs(5));
        let here = std::thread::current().id();
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        answers.run(move || *s.lock().unwrap() = Some(std::thread::current().id()));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(*seen.lock().unwrap(), Some(here));
    }
}
