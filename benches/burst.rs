//! `cargo bench --bench burst`: 64 new connections at the same moment, 20 times, and the
//! worst wait of any of them (issue 11, item 3).
//!
//! The release server runs as a child process (`support::ServerProcess`, its defaults apart
//! from the bench settings), so its threads and memory are its own. Each round, 64 client
//! threads wait at a barrier, then each connects, sends `GET /health` on a keep-alive
//! HTTP/1.1 connection and reads the answer's head; the wait is from before `connect` to the
//! head. Every connection stays open until the whole round is answered (an open keep-alive
//! connection holds one of tiny_http's reader threads, which is what made new ones wait), then
//! all close. Rounds 5, 10 and 15 come after a 6 s pause, longer than the 5 s after which
//! tiny_http lets an idle reader thread above its minimum exit; the others after 200 ms.
//!
//! Prints each round's worst and the number over 50 ms, the worst of all, and the server's
//! threads and RSS. A wait over 10 s counts as 10 s. `BENCH_READER_THREADS` sets the server's
//! `HTTP_READER_THREADS` (default: the server's own default). Exits 1 if a request failed.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::ServerProcess;

const CONNECTIONS: usize = 64;
const ROUNDS: usize = 20;
/// Rounds that follow a pause longer than tiny_http's 5 s idle-thread timeout.
const AFTER_PAUSE: [usize; 3] = [5, 10, 15];
const LONG_PAUSE: Duration = Duration::from_secs(6);
const SHORT_PAUSE: Duration = Duration::from_millis(200);
const LIMIT: Duration = Duration::from_secs(10);
/// The target: no new connection waits longer than this.
const TARGET_MS: f64 = 50.0;

/// One connection: its wait for the head of the answer, and the open stream.
fn one(addr: SocketAddr) -> Result<(Duration, TcpStream), String> {
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, LIMIT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(LIMIT))
        .map_err(|e| e.to_string())?;
    (&stream)
        .write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut reader = BufReader::new(&stream);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("read after {:?}: {e}", started.elapsed()))?;
    let waited = started.elapsed();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("status line {status:?}"));
    }
    Ok((waited, stream))
}

/// One round: the waits of all connections (a failure counts as `LIMIT`), and the failures.
fn round(addr: SocketAddr) -> (Vec<Duration>, usize) {
    let barrier = Arc::new(Barrier::new(CONNECTIONS));
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                one(addr)
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err("client panicked".into())))
        .collect();
    let mut waits = Vec::new();
    let mut failed = 0;
    let mut open = Vec::new();
    for r in results {
        match r {
            Ok((wait, stream)) => {
                waits.push(wait);
                open.push(stream);
            }
            Err(e) => {
                eprintln!("  failed: {e}");
                failed += 1;
                waits.push(LIMIT);
            }
        }
    }
    drop(open);
    (waits, failed)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    support::raise_fd_limit(4096);
    let readers = std::env::var("BENCH_READER_THREADS").ok();
    let mut extra = Vec::new();
    if let Some(n) = readers.as_deref() {
        extra.push(("HTTP_READER_THREADS", n));
    }
    let server = ServerProcess::start(&extra);
    let addr = server.http_addr();
    let before = server.stats().unwrap_or_default();
    println!(
        "{CONNECTIONS} connections at once, {ROUNDS} rounds; HTTP_READER_THREADS {}; \
         server at start: {} threads, RSS {:.1} MB",
        readers.as_deref().unwrap_or("default"),
        before.threads,
        before.rss_mb()
    );
    let mut worst = Duration::ZERO;
    let mut slow_total = 0;
    let mut failed_total = 0;
    for r in 0..ROUNDS {
        let pause = if AFTER_PAUSE.contains(&r) {
            LONG_PAUSE
        } else {
            SHORT_PAUSE
        };
        if r > 0 {
            std::thread::sleep(pause);
        }
        let (waits, failed) = round(addr);
        let round_worst = waits.iter().copied().max().unwrap_or_default();
        let slow = waits.iter().filter(|w| ms(**w) > TARGET_MS).count();
        worst = worst.max(round_worst);
        slow_total += slow;
        failed_total += failed;
        let stats = server.stats().unwrap_or_default();
        println!(
            "round {r:>2} (after {:>5.1} s): worst {:>8.1} ms, over {TARGET_MS} ms: {slow:>2}, \
             server threads {}, RSS {:.1} MB",
            if r == 0 { 0.0 } else { pause.as_secs_f64() },
            ms(round_worst),
            stats.threads,
            stats.rss_mb()
        );
    }
    let after = server.stats().unwrap_or_default();
    println!(
        "worst wait {:.1} ms over {} connections; {slow_total} over {TARGET_MS} ms; \
         {failed_total} failed; server: {} threads, RSS {:.1} MB, peak {:.1} MB",
        ms(worst),
        CONNECTIONS * ROUNDS,
        after.threads,
        after.rss_mb(),
        after.hwm_mb()
    );
    println!(
        "target: worst wait <= {TARGET_MS} ms: {}",
        if ms(worst) <= TARGET_MS {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(server);
    if failed_total > 0 {
        std::process::exit(1);
    }
}
