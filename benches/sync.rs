//! `cargo bench --bench sync`: sync for offline clients (issue 16).
//!
//! One user with `SYNC_BENCH_CHANGES` (default 10,000) transactions, written straight into the
//! database in one transaction (the triggers stamp each as a change, as for any write). Then:
//!
//! - a full pull of all of them in pages of 500 (`GET /sync?limit=500`, following `cursor`),
//!   timed, checking every row came exactly once;
//! - `GET /health` and an empty delta pull (`GET /sync?cursor=<latest>`) with
//!   `SYNC_BENCH_CLIENTS` (default 8) keep-alive clients, `SYNC_BENCH_PER_CLIENT` (default
//!   20,000: a few seconds a phase, longer than the noise) requests each, and their ratio
//!   (target: the pull at ≥ 60% of /health);
//! - `GET /allocations` with `If-None-Match` (every answer a 304), with the view cache's hit and
//!   miss counters before and after: no miss means the ETag's counter came from the cache,
//!   not from the database.
//!
//! Exits 1 if a request got an unexpected status; a missed target is reported, not a failure.

mod support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use support::{BenchServer, Client};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let changes = env_or("SYNC_BENCH_CHANGES", 10_000);
    let clients = env_or("SYNC_BENCH_CLIENTS", 8);
    let per_client = env_or("SYNC_BENCH_PER_CLIENT", 20_000);
    let server = BenchServer::start(&[]);
    let mut c = Client::connect(server.addr()).expect("connect");
    let reg = support::register(&mut c, "sync-bench@example.com").expect("register");
    let token = reg.json_str("access_token").expect("token");
    let me = c.get_auth("/api/v1/users/me", &token).expect("me");
    let user = me.json_str("user_id").expect("user_id");
    server
        .app()
        .db
        .write(|tx| {
            let mut stmt = tx.prepare(
                "INSERT INTO transactions (id, user_id, type, category, amount, label,
                     transaction_date, year, month)
                 VALUES (lower(hex(randomblob(16))), ?1, 'expense', 'food', 100, ?2,
                     '2025-10-02T00:00:00Z', 2025, 10)",
            )?;
            for i in 0..changes {
                stmt.execute(rusqlite::params![user, format!("b{i}")])?;
            }
            Ok(())
        })
        .expect("fill");

    // The full pull, in pages of 500.
    let started = Instant::now();
    let (mut cursor, mut pages, mut ids) = (String::new(), 0, HashSet::new());
    let mut bad = false;
    loop {
        let q = if cursor.is_empty() {
            "/api/v1/sync?limit=500".to_string()
        } else {
            format!("/api/v1/sync?limit=500&cursor={cursor}")
        };
        let r = c.get_auth(&q, &token).expect("pull");
        if r.status != 200 {
            println!("FAILED pull: {} {}", r.status, r.text());
            std::process::exit(1);
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        for t in v["changes"]["transactions"]["upserted"]
            .as_array()
            .expect("upserted")
        {
            bad |= !ids.insert(t["id"].as_str().expect("id").to_string());
        }
        pages += 1;
        cursor = v["cursor"].as_str().expect("cursor").to_string();
        if v["has_more"] == false {
            break;
        }
    }
    let full = started.elapsed();
    println!(
        "full pull: {} changes in {pages} pages of 500: {:.3} s ({:.1} ms a page){}",
        ids.len(),
        full.as_secs_f64(),
        full.as_secs_f64() * 1000.0 / pages as f64,
        if bad || ids.len() != changes {
            "  WRONG ROWS"
        } else {
            ""
        }
    );

    let addr = server.addr();
    let health = support::run(addr, vec![(); clients], per_client, |c, _| {
        let r = c.get("/health").map_err(|e| e.to_string())?;
        (r.status == 200)
            .then_some(())
            .ok_or(format!("{}", r.status))
    });
    health.print("GET /health");
    let empty_path = format!("/api/v1/sync?cursor={cursor}");
    let empty = support::run(addr, vec![(); clients], per_client, |c, _| {
        let r = c.get_auth(&empty_path, &token).map_err(|e| e.to_string())?;
        (r.status == 200)
            .then_some(())
            .ok_or(format!("{}", r.status))
    });
    empty.print("GET /sync (empty)");
    let ratio = empty.throughput() / health.throughput();
    println!(
        "empty delta pull at {:.0}% of /health (target ≥ 60%): {}",
        ratio * 100.0,
        if ratio >= 0.6 { "met" } else { "MISSED" }
    );

    let etag = etag_of(addr, "/api/v1/allocations", &token);
    let metrics = &server.app().metrics;
    let (hits, misses) = (
        metrics.cache_hits.load(Ordering::Relaxed),
        metrics.cache_misses.load(Ordering::Relaxed),
    );
    let not_modified = support::run(addr, vec![(); clients], per_client, |c, _| {
        let bearer = format!("Bearer {token}");
        let r = c
            .send_with(
                "GET",
                "/api/v1/allocations",
                &[("Authorization", &bearer), ("If-None-Match", &etag)],
                None,
            )
            .map_err(|e| e.to_string())?;
        (r.status == 304)
            .then_some(())
            .ok_or(format!("{}", r.status))
    });
    not_modified.print("GET /allocations 304");
    println!(
        "304s: view cache {} hits, {} misses during the run (0 misses: no database read for the tag)",
        metrics.cache_hits.load(Ordering::Relaxed) - hits,
        metrics.cache_misses.load(Ordering::Relaxed) - misses
    );
    if health.failed() + empty.failed() + not_modified.failed() > 0 || bad {
        std::process::exit(1);
    }
}

/// The `ETag` a GET answers with (the bench client keeps no headers): one raw request.
fn etag_of(addr: std::net::SocketAddr, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_string())
        })
        .expect("an ETag header")
}
