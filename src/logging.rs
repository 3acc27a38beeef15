//! A plain logger for journald and terminals: one line per event, level first, no colours,
//! to stderr. Secrets never reach it: callers log paths without queries and no codes.
//!
//! A line costs no system call where it is logged: it is formatted on the caller's thread and
//! appended to a bounded buffer, and one writer thread writes whatever has gathered with one
//! `write` (a batch) to stderr. Under load that is one system call for many access-log lines,
//! where it was one per request. If the buffer is full (stderr is slower than the lines come,
//! or blocked) the line is dropped and counted ([`dropped_lines`], in `/metrics`), and the
//! writer says how many it lost once it can write again: logging never makes a request wait
//! on stderr. [`flush`] waits (bounded) until every line logged before it is written; a clean
//! shutdown calls it, so nothing queued is lost.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The buffer's size when no other is asked for (`LOG_BUFFER_BYTES`): about 8,000 access-log
/// lines.
pub const DEFAULT_BUFFER_BYTES: usize = 1024 * 1024;

/// How long `log::logger().flush()` waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// The writer's pause after each batch: the most a line waits before it is written, if the
/// writer is not already busy.
const GATHER: Duration = Duration::from_millis(1);

/// Lines dropped because the buffer was full, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The one installed logger's buffer, for [`flush`].
static SHARED: OnceLock<&'static Shared> = OnceLock::new();

/// Lines logged and not yet written.
struct Pending {
    bytes: Vec<u8>,
    /// Lines appended since start, and lines the writer has written (or dropped writing).
    queued: u64,
    written: u64,
    /// The writer sleeps on `appended` (so a line must wake it), and callers of `flush` wait
    /// on `written`: without either, nobody pays for a wake-up call.
    writer_asleep: bool,
    flushers: usize,
}

struct Shared {
    pending: Mutex<Pending>,
    capacity: usize,
    /// Signalled when lines are appended (the writer waits on it).
    appended: Condvar,
    /// Signalled when a batch is written (flushers wait on it).
    written: Condvar,
}

struct Logger {
    level: log::LevelFilter,
    shared: &'static Shared,
}

thread_local! {
    /// Each thread formats its lines in its own reused buffer, outside the lock.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
            && (metadata.target().starts_with("wealthcoach")
                || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let format = |line: &mut Vec<u8>| {
            line.clear();
            let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
            let _ = writeln!(line, "{ts} {:<5} {}", record.level(), record.args());
            self.shared.push(line);
        };
        // A `Display` that logs would find the buffer taken: it gets a fresh one.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => format(&mut line),
            Err(_) => format(&mut Vec::new()),
        });
    }

    fn flush(&self) {
        self.shared.flush(FLUSH_WAIT);
    }
}

impl Shared {
    /// Appends a whole line, or drops and counts it if the buffer has no room for it.
    fn push(&self, line: &[u8]) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.bytes.len() + line.len() > self.capacity {
            drop(p);
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.bytes.extend_from_slice(line);
        p.queued += 1;
        let wake = std::mem::take(&mut p.writer_asleep);
        drop(p);
        if wake {
            self.appended.notify_one();
        }
    }

    /// Waits until every line appended before this call is written, at most `limit`.
    fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let target = p.queued;
        p.flushers += 1;
        let mut done = true;
        while p.written < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                done = false;
                break;
            }
            p = match self.written.wait_timeout(p, left) {
                Ok((p, _)) => p,
                Err(e) => e.into_inner().0,
            };
        }
        p.flushers -= 1;
        done
    }

    /// The writer thread: takes everything gathered (swapping buffers, so the lock is held for
    /// a moment only), writes it with one call, and reports lines it had to drop.
    fn write_forever(&self, mut out: impl Write) {
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut reported = 0;
        loop {
            let upto = {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                while p.bytes.is_empty() {
                    p.writer_asleep = true;
                    p = self.appended.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                std::mem::swap(&mut p.bytes, &mut batch);
                p.queued
            };
            // Said before the batch, so the lines a stop writes last stay last.
            let dropped = DROPPED.load(Ordering::Relaxed);
            if dropped > reported {
                let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
                let notice = format!(
                    "{ts} WARN  {} log lines were dropped: the log could not keep up \
                     ({dropped} since start)\n",
                    dropped - reported
                );
                let _ = out.write_all(notice.as_bytes());
                reported = dropped;
            }
            // A failed write loses the batch; there is nowhere else to say so.
            let _ = out.write_all(&batch).and_then(|_| out.flush());
            batch.clear();
            // A burst can grow the spare buffer up to the capacity; do not keep that.
            batch.shrink_to(64 * 1024);
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.written = upto;
            let flushers = p.flushers > 0;
            drop(p);
            if flushers {
                self.written.notify_all();
            }
            // Let lines gather: under load the writer then wakes at most this often, and
            // writes each time what many requests logged in the meantime.
            std::thread::sleep(GATHER);
        }
    }
}

/// Installs the logger once, with a buffer of `buffer_bytes`; later calls (tests starting
/// several servers) keep the first.
pub fn init_buffered(level: log::LevelFilter, buffer_bytes: usize) {
    if SHARED.get().is_some() {
        return;
    }
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        pending: Mutex::new(Pending {
            bytes: Vec::new(),
            queued: 0,
            written: 0,
            writer_asleep: false,
            flushers: 0,
        }),
        capacity: buffer_bytes,
        appended: Condvar::new(),
        written: Condvar::new(),
    }));
    if log::set_boxed_logger(Box::new(Logger { level, shared })).is_err() {
        return;
    }
    let _ = SHARED.set(shared);
    log::set_max_level(level);
    let started = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || shared.write_forever(std::io::stderr()));
    if let Err(e) = started {
        // Nothing would ever write; say so the only way left.
        eprintln!("cannot start the log writer: {e}");
    }
}

/// Installs the logger once with the default buffer.
pub fn init(level: log::LevelFilter) {
    init_buffered(level, DEFAULT_BUFFER_BYTES);
}

/// Waits (at most `limit`) until every line logged before the call is written; false if the
/// time ran out (stderr blocked). Without our logger installed there is nothing to wait for.
pub fn flush(limit: Duration) -> bool {
    SHARED.get().is_none_or(|s| s.flush(limit))
}

/// Lines dropped since start because the log could not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}
