//! The slow pool: threads for the routes that wait on the outside world (a chat answer that
//! streams for seconds, an SMS gateway call), so the handler threads never wait on them.
//! Bounded: at most `max` such requests at once, queued and running together, so a request
//! handed over never waits for a thread; past that, the caller is refused a slot (and answers
//! 503). Threads are started as needed up to `max` and kept until the pool closes.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request's remaining work: its handler, and writing its answer.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct SlowPool {
    max: usize,
    inner: Mutex<Inner>,
    ready: Condvar,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Job>,
    /// Jobs queued or running: each holds a slot.
    busy: usize,
    /// Threads waiting for a job.
    idle: usize,
    threads: Vec<JoinHandle<()>>,
    closing: bool,
}

/// The right to hand one job to the pool; dropped unused, it gives the slot back.
pub(crate) struct Slot {
    pool: Arc<SlowPool>,
    /// Still this slot's to give back: its job has not gone to a thread.
    held: bool,
}

impl SlowPool {
    pub(crate) fn new(max: usize) -> SlowPool {
        SlowPool {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot, or `None` when `max` jobs are already queued or running.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Slot> {
        let mut inner = self.lock();
        if inner.busy >= self.max || inner.closing {
            return None;
        }
        inner.busy += 1;
        Some(Slot {
            pool: self.clone(),
            held: true,
        })
    }

    /// Jobs queued or running now.
    #[cfg(test)]
    fn busy(&self) -> usize {
        self.lock().busy
    }

    /// Lets the threads finish what is queued, then waits for them until `deadline`.
    pub(crate) fn close(&self, deadline: Instant) {
        let threads = {
            let mut inner = self.lock();
            inner.closing = true;
            std::mem::take(&mut inner.threads)
        };
        self.ready.notify_all();
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn work(&self) {
        let mut inner = self.lock();
        loop {
            if let Some(job) = inner.queue.pop_front() {
                drop(inner);
                run(job);
                inner = self.lock();
                inner.busy -= 1;
                continue;
            }
            if inner.closing {
                return;
            }
            inner.idle += 1;
            inner = self.ready.wait(inner).unwrap_or_else(|e| e.into_inner());
            inner.idle -= 1;
        }
    }
}

/// A panic in a job (the handler's own are caught before) must not take its thread, nor its
/// slot, with it.
fn run(job: Job) {
    if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
        log::error!("a slow request panicked while writing its answer");
    }
}

impl Slot {
    /// Runs `job` on a pool thread, starting one if every thread has work. If no thread can be
    /// started (the process is out of threads), the caller runs it, as before the pool.
    pub(crate) fn run(mut self, job: Job) {
        let pool = self.pool.clone();
        let mut inner = pool.lock();
        inner.queue.push_back(job);
        if inner.queue.len() > inner.idle && inner.threads.len() < pool.max {
            let n = inner.threads.len();
            let this = pool.clone();
            match std::thread::Builder::new()
                .name(format!("http-slow-{n}"))
                .spawn(move || this.work())
            {
                Ok(t) => inner.threads.push(t),
                Err(e) => {
                    log::warn!("could not start a slow-pool thread ({e}); running on this one");
                    let job = inner.queue.pop_back();
                    drop(inner);
                    if let Some(job) = job {
                        run(job);
                    }
                    // Dropping the slot gives it back.
                    return;
                }
            }
        }
        drop(inner);
        pool.ready.notify_one();
        // The thread that runs the job gives the slot back.
        self.held = false;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held {
            self.pool.lock().busy -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// Waits until the pool has `n` jobs queued or running.
    fn settle(pool: &SlowPool, n: usize) {
        let start = Instant::now();
        while pool.busy() != n {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "busy {}",
                pool.busy()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn bounded_slots_run_at_once_and_come_back() {
        let pool = Arc::new(SlowPool::new(3));
        let (go, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let (done, finished) = mpsc::channel::<usize>();
        for i in 0..3 {
            let (wait, done) = (wait.clone(), done.clone());
            let slot = pool.reserve().expect("a free slot");
            slot.run(Box::new(move || {
                let _ = done.send(i);
                let _ = wait.lock().map(|w| w.recv());
                let _ = done.send(10 + i);
            }));
        }
        // All three started at once: none waits behind another.
        let mut started: Vec<usize> = (0..3)
            .map(|_| {
                finished
                    .recv_timeout(Duration::from_secs(5))
                    .expect("started")
            })
            .collect();
        started.sort_unstable();
        assert_eq!(started, [0, 1, 2]);
        assert!(pool.reserve().is_none(), "a fourth is refused");
        // A slot reserved and dropped unused is given back.
        for _ in 0..3 {
            let _ = go.send(());
        }
        settle(&pool, 0);
        drop(pool.reserve().expect("free again"));
        assert_eq!(pool.busy(), 0);
        // A job that panics gives its slot back and leaves its thread working.
        pool.reserve()
            .expect("slot")
            .run(Box::new(|| panic!("boom")));
        settle(&pool, 0);
        let (tx, rx) = mpsc::channel();
        pool.reserve()
            .expect("slot")
            .run(Box::new(move || tx.send(()).unwrap_or(())));
        rx.recv_timeout(Duration::from_secs(5)).expect("ran");
        assert!(pool.lock().threads.len() <= 3);
        pool.close(Instant::now() + Duration::from_secs(5));
        assert!(pool.reserve().is_none(), "closed");
    }
}
