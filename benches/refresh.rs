//! `cargo bench --bench refresh`: 1,000 `POST /api/v1/auth/refresh` at concurrency 100 (100
//! users, each client thread refreshing its own token chain 10 times over one keep-alive
//! connection), the same 1,000 at concurrency 10, and 1,000 `GET /health` at concurrency 100
//! as the yardstick. Exits 1 if any request did not get 200.
//!
//! `BENCH_HTTP_WORKERS` sets the server's `HTTP_WORKERS` (default two per core, the server's default).

mod support;

use std::time::{Duration, Instant};

use support::{BenchServer, Client, Run};

const REQUESTS: usize = 1_000;
const TARGET: Duration = Duration::from_secs(1);
const ROUNDS: usize = 5;

/// Registers one user per step, by email, and keeps its refresh token.
fn register(client: &mut Client, state: &mut (usize, Vec<String>)) -> Result<(), String> {
    let (thread, tokens) = state;
    let body = serde_json::json!({
        "email": format!("bench-{thread}-{}@example.com", tokens.len()),
        "password": "Secret#123",
        "full_name": "Bench User",
    });
    let reply = client
        .post_json("/api/v1/auth/register", &body.to_string())
        .map_err(|e| format!("register: {e}"))?;
    if reply.status != 201 {
        return Err(format!("register: {} {}", reply.status, reply.text()));
    }
    tokens.push(reply.json_str("refresh_token")?);
    Ok(())
}

/// Presents the thread's current refresh token and keeps the new one.
fn refresh(client: &mut Client, token: &mut String) -> Result<(), String> {
    let body = serde_json::json!({ "refresh_token": token.as_str() });
    let reply = client
        .post_json("/api/v1/auth/refresh", &body.to_string())
        .map_err(|e| format!("refresh: {e}"))?;
    if reply.status != 200 {
        return Err(format!("refresh: {} {}", reply.status, reply.text()));
    }
    *token = reply.json_str("refresh_token")?;
    Ok(())
}

fn health(client: &mut Client, _: &mut ()) -> Result<(), String> {
    let reply = client.get("/health").map_err(|e| format!("health: {e}"))?;
    if reply.status != 200 {
        return Err(format!("health: {} {}", reply.status, reply.text()));
    }
    Ok(())
}

/// `count` refresh tokens of fresh users, registered over `threads` connections.
fn fresh_tokens(server: &BenchServer, threads: usize, count: usize) -> Vec<String> {
    let per_thread = count.div_ceil(threads);
    let states = (0..threads).map(|t| (t, Vec::new())).collect();
    let run = support::run(server.addr(), states, per_thread, register);
    run.print("register (argon2id)");
    assert!(
        run.failures.is_empty(),
        "registration failed; see FAILED lines above"
    );
    let tokens: Vec<String> = run.states.into_iter().flat_map(|(_, t)| t).collect();
    tokens.into_iter().take(count).collect()
}

/// Rotates one token chain `n` times straight through the database writer on this thread,
/// no HTTP: what each refresh holds the single writer lock for. Sorted times per rotation.
fn writer_alone(server: &BenchServer, mut token: String, n: usize) -> Vec<Duration> {
    use wealthcoach::auth::{Ctx, tokens};
    let app = server.app();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        match app
            .db
            .write_or_refuse(|tx| tokens::rotate(&Ctx::of(app), tx, &token))
        {
            Ok(pair) => token = pair.refresh_token,
            Err(e) => panic!("rotation {i} failed: {e:?}"),
        }
        times.push(started.elapsed());
    }
    times.sort_unstable();
    times
}

/// The median of some runs, by wall time.
fn median<S>(runs: &[Run<S>]) -> &Run<S> {
    let mut sorted: Vec<&Run<S>> = runs.iter().collect();
    sorted.sort_by_key(|r| r.wall);
    sorted[sorted.len() / 2]
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // The server's default, two per core.
    let workers =
        std::env::var("BENCH_HTTP_WORKERS").unwrap_or_else(|_| (2 * cores).max(2).to_string());
    println!("refresh benchmark: HTTP_WORKERS={workers}, {cores} cores, {ROUNDS} rounds");
    let server = BenchServer::start(&[("HTTP_WORKERS", &workers)]);

    let started = Instant::now();
    let mut c100_tokens = fresh_tokens(&server, 5, 110);
    println!(
        "registered {} users in {:.2} s",
        c100_tokens.len(),
        started.elapsed().as_secs_f64()
    );
    let mut c10_tokens = c100_tokens.split_off(100);

    // Rounds alternate the three loads so a noisy neighbour hits them alike; each refresh
    // round continues the token chains where the last one stopped.
    let (mut health_runs, mut c100_runs, mut c10_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        println!("round {round}");
        let h = support::run(server.addr(), vec![(); 100], REQUESTS / 100, health);
        h.print("  GET /health c=100");
        let r100 = support::run(server.addr(), c100_tokens, REQUESTS / 100, refresh);
        r100.print("  refresh c=100");
        let r10 = support::run(server.addr(), c10_tokens, REQUESTS / 10, refresh);
        r10.print("  refresh c=10");
        (c100_tokens, c10_tokens) = (r100.states.clone(), r10.states.clone());
        health_runs.push(h);
        c100_runs.push(r100);
        c10_runs.push(r10);
    }
    let alone = writer_alone(&server, c10_tokens.swap_remove(0), REQUESTS);
    drop(server);

    let (h, r100, r10) = (median(&health_runs), median(&c100_runs), median(&c10_runs));
    println!();
    println!("median round of {ROUNDS}, by wall time:");
    h.print("GET /health c=100");
    r100.print("refresh c=100");
    r10.print("refresh c=10");
    println!(
        "refresh/health at c=100: throughput ratio {:.1}x (wall {:.3} s / {:.3} s)",
        r100.wall.as_secs_f64() / h.wall.as_secs_f64(),
        r100.wall.as_secs_f64(),
        h.wall.as_secs_f64(),
    );
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = alone.iter().sum::<Duration>() / alone.len() as u32;
    let stalls: Vec<&Duration> = alone.iter().filter(|d| d.as_millis() >= 2).collect();
    println!(
        "{REQUESTS} refreshes through the writer alone (one thread, no HTTP): p50 {:.0} us, \
         mean {:.0} us (a cap of {:.0}/s; c=100 got {:.0}% of it); {} took 2 ms or more, \
         {:.0} ms in all",
        micros(support::percentile(&alone, 50.0).unwrap_or_default()),
        micros(mean),
        1.0 / mean.as_secs_f64(),
        100.0 * r100.throughput() * mean.as_secs_f64(),
        stalls.len(),
        stalls.iter().copied().sum::<Duration>().as_secs_f64() * 1000.0,
    );
    let worst = c100_runs.iter().map(|r| r.wall).max().unwrap_or_default();
    println!(
        "target: 1,000 refreshes at c=100 well under {} s: {} (median {:.3} s, slowest round {:.3} s)",
        TARGET.as_secs(),
        if worst < TARGET { "met" } else { "MISSED" },
        r100.wall.as_secs_f64(),
        worst.as_secs_f64(),
    );

    let failed = health_runs.iter().map(Run::failed).sum::<usize>()
        + c100_runs
            .iter()
            .chain(&c10_runs)
            .map(Run::failed)
            .sum::<usize>();
    if failed > 0 {
        println!("FAILED: {failed} requests did not get 200 or were not sent (see FAILED lines)");
        std::process::exit(1);
    }
}
