//! `cargo bench --bench replication`: `POST /api/v1/transactions` from 16 clients for a fixed
//! time against the built server, replication off and on in one run (Litestream 0.5.17 with
//! the shipped deploy/litestream.yml, moto's S3 on loopback; tools from ci/replication-deps.sh's
//! venv, `WEALTHCOACH_REPLICATION_VENV`). Prints POST throughput and p50/p99, the largest WAL
//! file seen, Litestream's peak RSS and S3 PUTs per minute (Litestream's own counter). Each
//! request is a new connection (`Connection: close`), the same in both modes.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/reliability_support/mod.rs"]
mod reliability_support;
#[path = "../tests/replication_support/mod.rs"]
mod replication_support;

use std::time::{Duration, Instant};

use reliability_support::{Server, TempDir};
use replication_support::*;

const CLIENTS: usize = 16;
const SECONDS: u64 = 20;

struct Figures {
    posts: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_wal: u64,
    rss_kb: u64,
    puts_per_minute: f64,
}

fn run(tools: &Tools, moto: &Moto, tmp: &TempDir, on: bool) -> Figures {
    let tag = if on { "on" } else { "off" };
    let logs = tmp.path(&format!("logs-{tag}"));
    std::fs::create_dir_all(&logs).expect("logs");
    let site = Site::new(
        tmp.path(&format!("vm-{tag}")),
        tools,
        &format!("http://{}", moto.addr()),
        tag,
        tag,
    );
    let mut env = site.server_env();
    if !on {
        env.retain(|(k, _)| !k.starts_with("REPLICA_") && !k.starts_with("LITESTREAM_"));
    }
    let lite = on.then(|| Litestream::start(&site, &logs, tag));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(&logs, &refs, "server");
    let user = common::register_user(server.addr, &format!("bench-{tag}@example.com"), "Bench");
    std::thread::sleep(Duration::from_secs(2));
    let puts_before = site.puts();
    let wal = site.dir.join("wealthcoach.db-wal");
    let writers: Vec<Writer> = (0..CLIENTS)
        .map(|c| {
            Writer::start(
                server.addr,
                &user.token,
                &format!("bench {tag} c{c}"),
                (2034, 1 + c as u32 % 12),
                Duration::ZERO,
                false,
            )
        })
        .collect();
    let started = Instant::now();
    let (mut max_wal, mut rss_kb) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(SECONDS) {
        max_wal = max_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        rss_kb = rss_kb.max(lite.as_ref().map(Litestream::rss_kb).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for w in writers {
        let log = w.finish();
        assert!(log.failures.is_empty(), "{tag}: {:?}", &log.failures[..1]);
        latencies.extend(log.latencies);
    }
    let puts = site.puts() - puts_before;
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Figures {
        posts: latencies.len(),
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(percentile(&latencies, 50)),
        p99_ms: ms(percentile(&latencies, 99)),
        max_wal,
        rss_kb,
        puts_per_minute: puts * 60.0 / elapsed.as_secs_f64(),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here
    }
    let Some(tools) = tools("bench replication") else {
        return;
    };
    let tmp = TempDir::new("bench-repl");
    let logs = tmp.path("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let moto = Moto::start(&tools, &logs);
    println!(
        "POST /api/v1/transactions, {CLIENTS} clients, {SECONDS} s each, one connection a request"
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>10} {:>12} {:>10}",
        "replication", "posts", "per s", "p50 ms", "p99 ms", "max WAL", "litestream", "PUT/min"
    );
    for on in [false, true] {
        let f = run(&tools, &moto, &tmp, on);
        println!(
            "{:<12} {:>8} {:>8.0} {:>8.2} {:>8.2} {:>9.1}M {:>11.1}M {:>10.0}",
            if on { "on" } else { "off" },
            f.posts,
            f.per_second,
            f.p50_ms,
            f.p99_ms,
            f.max_wal as f64 / 1e6,
            f.rss_kb as f64 / 1e3,
            f.puts_per_minute
        );
    }
}
