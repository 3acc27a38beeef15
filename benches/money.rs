//! `cargo bench --bench money`: the money routes under 32 concurrent keep-alive clients, with
//! `GET /health` measured in the same run as the yardstick.
//!
//! Setup, all through the HTTP API: 32 users registered by email, each with a budget and an
//! actual for all 34 allocation types this month; then the POST measurements, which also fill
//! the database (every expense linked to an allocation type, issue 13's worst case): 10,000
//! `POST /api/v1/transactions` for user 0 dated this month (the month
//! `GET /transactions` lists), then 10,016 over all 32 users dated last month. Then `ROUNDS`
//! rounds, each of:
//!
//! - a bare tiny_http_fork server (2 threads, 200 "ok"), 32 clients: issue 11's ceiling;
//! - `GET /health`, 32 clients: the baseline;
//! - `GET /api/v1/allocations` warm, 32 clients (client k reads user k; every view was computed
//!   before, so each request is a cache hit);
//! - `GET /api/v1/transactions?limit=50`, 32 clients, all on user 0's month of 10,000 rows;
//! - `GET /api/v1/allocations` cold, in bursts: each client first writes for its own user
//!   (`POST /allocations/actual`, untimed), then the 32 clients send their GET at the same
//!   moment, so every GET is the first after a write and misses the cache;
//! - `GET /health` in the same bursts without the write, the baseline for the cold throughput.
//!
//! The server's cache counters show whether warm reads all hit and cold reads all missed. Each
//! read measurement also records the CPU time this process (server and bench clients) spent per
//! request, a cost that busy neighbours on a shared machine disturb far less than throughput.
//! Prints every round, the median round, the POST stragglers, the targets and whether each was
//! met. Exits 1 if any request got an unexpected status; a missed target is reported, not a
//! failure. `BENCH_HTTP_WORKERS` sets the server's `HTTP_WORKERS` (default two per core, its default).
//!
//! First, on a server of its own, the rollover comparison (issue 13): `ROLLOVER_USERS` users
//! with rollover on for all 34 types from 24 months back and as many without, all with a
//! budget and an actual for every type and month of those 24; warm `GET /allocations` (cache
//! hits) and `GET /allocations/summary` (never cached: the settings, one range query and the
//! fold on every request) of both sides in the same rounds, with their ratios. The target: with
//! rollover within 20% of without. `BENCH_ROLLOVER_ONLY=1` runs only this part;
//! `BENCH_ROLLOVER_PER_CLIENT` (default 500) and `BENCH_ROLLOVER_ROUNDS` (default `ROUNDS`)
//! shorten it.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{BenchServer, Client, Reply, Run};
use wealthcoach::budget::period::Period;

/// Concurrent keep-alive clients in every measurement.
const CLIENTS: usize = 32;
/// Rounds of the read measurements; the median round is reported.
const ROUNDS: usize = 5;
/// Requests per client and round: `GET /health`, warm `GET /allocations`, the list.
const HEALTH_PER_CLIENT: usize = 1_000;
const WARM_PER_CLIENT: usize = 500;
const LIST_PER_CLIENT: usize = 200;
/// Cold bursts per round: each client writes, then all read at once.
const BURSTS: usize = 100;
/// User 0's rows this month; then this many posts per client over all users, last month.
const MAIN_USER_TRANSACTIONS: usize = 10_000;
const SPREAD_PER_CLIENT: usize = 313;

/// The targets.
const WARM_P99_MS: f64 = 5.0;
const COLD_P99_MS: f64 = 20.0;
const POSTS_PER_SECOND: f64 = 2_000.0;
const RATIO: f64 = 0.25;
/// Issue 11's bars, against a bare tiny_http_fork server measured in the same rounds.
const HEALTH_OF_BARE: f64 = 0.70;
const WARM_OF_HEALTH: f64 = 0.60;
const LIST_OF_HEALTH: f64 = 0.50;
const POSTS_PER_SECOND_11: f64 = 5_000.0;
const POST_P99_MS: f64 = 20.0;
/// Threads of the bare server: what the issue's comparison used.
const BARE_THREADS: usize = 2;

const CATEGORIES: [&str; 8] = [
    "groceries",
    "rent",
    "transport",
    "dining",
    "utilities",
    "health",
    "shopping",
    "travel",
];

fn expect(reply: std::io::Result<Reply>, status: u16, what: &str) -> Result<Reply, String> {
    let reply = reply.map_err(|e| format!("{what}: {e}"))?;
    if reply.status != status {
        return Err(format!("{what}: {} {}", reply.status, reply.text()));
    }
    Ok(reply)
}

/// One registered user.
#[derive(Clone)]
struct User {
    token: String,
}

fn register(client: &mut Client, state: &mut (usize, Vec<User>)) -> Result<(), String> {
    let (thread, users) = state;
    let email = format!("money-{thread}-{}@example.com", users.len());
    let reply = support::register(client, &email)?;
    users.push(User {
        token: reply.json_str("access_token")?,
    });
    Ok(())
}

/// A client's work list for seeding allocations: (token, type ids, writes done).
struct Seeder {
    token: String,
    types: Vec<String>,
    done: usize,
}

/// Sets one budget or one actual: each type gets its budget, then its actual.
fn seed_allocation(client: &mut Client, s: &mut Seeder) -> Result<(), String> {
    let type_id = &s.types[s.done / 2];
    let n = s.done / 2;
    let (path, body) = if s.done.is_multiple_of(2) {
        let amount = format!("{}.{:02}", 500 + 250 * (n % 9), (n * 17) % 100);
        (
            "/api/v1/allocations/budget",
            format!(r#"{{"allocation_type_id":"{type_id}","budget_amount":{amount}}}"#),
        )
    } else {
        let amount = format!("{}.{:02}", 300 + 200 * (n % 11), (n * 29) % 100);
        (
            "/api/v1/allocations/actual",
            format!(
                r#"{{"allocation_type_id":"{type_id}","actual_amount":{amount},"notes":"bench"}}"#
            ),
        )
    };
    expect(client.post_json_auth(path, &s.token, &body), 200, path)?;
    s.done += 1;
    Ok(())
}

/// A client posting transactions for one user into one month.
struct Poster {
    token: String,
    thread: usize,
    month: Period,
    sent: usize,
    /// The catalogue's allocation types: every expense is linked to one (issue 13), so each
    /// POST also moves a `spent_amount` and checks its category's alert.
    types: std::sync::Arc<Vec<String>>,
}

/// The body of a client's `i`th transaction: mostly expenses, each linked to an allocation
/// type, spread over the month's first 28 days at distinct times.
fn transaction_body(thread: usize, i: usize, month: Period, types: &[String]) -> String {
    let n = thread * 7919 + i;
    let kind = if n.is_multiple_of(10) {
        "income"
    } else {
        "expense"
    };
    let category = CATEGORIES[n % CATEGORIES.len()];
    let amount = format!("{}.{:02}", 1 + (n * 37) % 4999, (n * 13) % 100);
    let date = format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month.year,
        month.month,
        1 + (n * 11) % 28,
        (n / 28) % 24,
        (n * 7) % 60,
        (n * 31) % 60,
    );
    let link = match kind {
        "expense" => format!(r#","allocation_type_id":"{}""#, types[n % types.len()]),
        _ => String::new(),
    };
    format!(
        r#"{{"type":"{kind}","category":"{category}","amount":{amount},"label":"bench {thread}-{i}","transaction_date":"{date}"{link}}}"#
    )
}

fn post_transaction(client: &mut Client, p: &mut Poster) -> Result<(), String> {
    let body = transaction_body(p.thread, p.sent, p.month, &p.types);
    expect(
        client.post_json_auth("/api/v1/transactions", &p.token, &body),
        201,
        "POST /transactions",
    )?;
    p.sent += 1;
    Ok(())
}

/// A bare tiny_http_fork server on `BARE_THREADS` threads that answers every request with
/// 200 "ok": the ceiling our `/health` is compared with. It lives until the process ends.
fn start_bare() -> std::net::SocketAddr {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bare server");
    let addr = *server
        .server_addr()
        .to_ip()
        .expect("the bare server listens on an IP address");
    let server = std::sync::Arc::new(server);
    for _ in 0..BARE_THREADS {
        let server = server.clone();
        std::thread::spawn(move || {
            // A request tiny_http could not read is dropped, as any server would.
            while let Ok(next) = server.recv() {
                if let Ok(rq) = next {
                    let _ = rq.respond(tiny_http::Response::from_string("ok"));
                }
            }
        });
    }
    addr
}

fn health(client: &mut Client, _: &mut ()) -> Result<(), String> {
    expect(client.get("/health"), 200, "GET /health").map(drop)
}

/// An authenticated GET during the setup, as JSON; panics unless it answers 200 with JSON.
fn fetch_json(client: &mut Client, user: &User, path: &str) -> serde_json::Value {
    let reply = expect(client.get_auth(path, &user.token), 200, path)
        .unwrap_or_else(|e| panic!("setup: {e}"));
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("setup: {path}: {e}"))
}

/// A user's allocation summary of this month, the month, and the catalogue's type ids in order.
fn catalogue(client: &mut Client, user: &User) -> (serde_json::Value, Period, Vec<String>) {
    let summary = fetch_json(client, user, "/api/v1/allocations");
    let this_month = Period {
        year: summary["year"]
            .as_i64()
            .and_then(|y| i32::try_from(y).ok())
            .expect("year"),
        month: summary["month"]
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .expect("month"),
    };
    let types: Vec<String> = summary["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .flat_map(|c| c["allocation_types"].as_array().expect("types").iter())
        .map(|t| t["id"].as_str().expect("type id").to_string())
        .collect();
    (summary, this_month, types)
}

/// An authenticated GET that must answer 200.
fn get_ok(client: &mut Client, user: &User, path: &str) -> Result<(), String> {
    expect(client.get_auth(path, &user.token), 200, path).map(drop)
}

fn get_allocations(client: &mut Client, user: &mut User) -> Result<(), String> {
    get_ok(client, user, "/api/v1/allocations")
}

fn list_transactions(client: &mut Client, user: &mut User) -> Result<(), String> {
    get_ok(client, user, "/api/v1/transactions?limit=50")
}

/// The untimed write before a cold read: adds one paisa to one of the user's actuals.
fn touch_allocation(
    client: &mut Client,
    (user, types): &mut (User, Vec<String>),
    round: usize,
) -> Result<(), String> {
    let body = format!(
        r#"{{"allocation_type_id":"{}","actual_amount":0.01,"mode":"add"}}"#,
        types[round % types.len()]
    );
    expect(
        client.post_json_auth("/api/v1/allocations/actual", &user.token, &body),
        200,
        "POST /allocations/actual",
    )
    .map(drop)
}

fn cold_allocations(
    client: &mut Client,
    (user, _): &mut (User, Vec<String>),
) -> Result<(), String> {
    get_allocations(client, user)
}

/// How many requests took over 100 ms and over 500 ms: a few very slow ones among fast ones
/// point at a waiter starved in a queue, many at once at a stall everyone waited out.
fn print_stragglers<S>(run: &Run<S>) {
    let over = |ms: u64| {
        let limit = Duration::from_millis(ms);
        run.latencies.len() - run.latencies.partition_point(|d| *d <= limit)
    };
    println!(
        "    {} took over 100 ms, {} over 500 ms; p99.9 {:.1} ms",
        over(100),
        over(500),
        run.millis(99.9)
    );
}

/// A run and the CPU time this process (server and bench clients together) spent during it,
/// which neighbours on a shared machine disturb far less than they disturb the wall time.
struct Measured<S> {
    run: Run<S>,
    cpu: Duration,
}

impl<S> Measured<S> {
    fn cpu_micros_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.run.ok().max(1) as f64
    }
}

fn process_cpu() -> Duration {
    support::ProcStats::of("self").map_or(Duration::ZERO, |s| s.cpu)
}

fn measure<S>(run: impl FnOnce() -> Run<S>) -> Measured<S> {
    let before = process_cpu();
    let run = run();
    Measured {
        run,
        cpu: process_cpu().saturating_sub(before),
    }
}

/// The median round by throughput, and the median CPU per request over all rounds.
fn median<S>(rounds: &[Measured<S>]) -> (&Run<S>, f64) {
    let mut by_throughput: Vec<&Run<S>> = rounds.iter().map(|m| &m.run).collect();
    by_throughput.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
    let mut cpu: Vec<f64> = rounds
        .iter()
        .map(Measured::cpu_micros_per_request)
        .collect();
    cpu.sort_by(f64::total_cmp);
    (by_throughput[rounds.len() / 2], cpu[rounds.len() / 2])
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// Collects failures of one run, printing nothing more (each run prints its own).
#[derive(Default)]
struct Failures(usize);

impl Failures {
    fn add<S>(&mut self, run: &Run<S>) {
        self.0 += run.failed();
    }
}

fn cache_counters(server: &BenchServer) -> (u64, u64) {
    let m = &server.app().metrics;
    (
        m.cache_hits.load(Ordering::Relaxed),
        m.cache_misses.load(Ordering::Relaxed),
    )
}

/// One wrk run's figures: requests per second, p99 in ms, non-2xx answers and socket errors.
struct WrkRun {
    rps: f64,
    p99_ms: f64,
    bad: u64,
}

/// `wrk -t2 -c32 -d10s --latency` (issue 11's settings) against `url`; `None` without wrk.
fn wrk(url: &str, token: Option<&str>, script: Option<&std::path::Path>) -> Option<WrkRun> {
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", "-c32", "-d10s", "--latency"]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    let p99 = field("99%")?;
    let p99_ms = match p99.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => {
            let v: f64 = p99[..i].parse().ok()?;
            match &p99[i..] {
                "us" => v / 1000.0,
                "ms" => v,
                "s" => v * 1000.0,
                _ => return None,
            }
        }
        None => return None,
    };
    // "Socket errors: connect 0, read 0, write 0, timeout 0"
    let socket_errors: u64 = field("Socket errors:").map_or(0, |v| {
        v.split(',')
            .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").map_or(0, |v| v.parse().unwrap_or(1));
    Some(WrkRun {
        rps: field("Requests/sec:")?.parse().ok()?,
        p99_ms,
        bad: socket_errors + non_2xx,
    })
}

/// Issue 11's table, measured with wrk as the issue did, in the same run as everything else:
/// the bare server, /health, warm /allocations, the list and POSTs (into `post_month`, so the
/// list's month is untouched), with their ratios and the bars. `None` when wrk is missing.
fn wrk_table(
    bare: std::net::SocketAddr,
    addr: std::net::SocketAddr,
    token: &str,
    post_month: Period,
    link: &str,
) -> Option<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("money-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let script = dir.join("post.lua");
    // Distinct bodies (amount and label move with a counter), dated in `post_month`, each
    // expense linked to the allocation type `link` (issue 13's bar is for linked POSTs).
    let lua = format!(
        r#"local n = 0
request = function()
  n = n + 1
  local body = string.format('{{"type":"expense","category":"groceries","amount":%d.%02d,"label":"wrk %d","transaction_date":"{}-{:02}-%02dT10:00:00Z","allocation_type_id":"{link}"}}', 1 + n % 900, n % 100, n, 1 + n % 28)
  return wrk.format("POST", "/api/v1/transactions", {{["Content-Type"]="application/json", ["Authorization"]="Bearer {token}"}}, body)
end
"#,
        post_month.year, post_month.month
    );
    std::fs::write(&script, lua).ok()?;
    let bare_run = wrk(&format!("http://{bare}/"), None, None)?;
    let health = wrk(&format!("http://{addr}/health"), None, None)?;
    let warm = wrk(
        &format!("http://{addr}/api/v1/allocations"),
        Some(token),
        None,
    )?;
    let list = wrk(
        &format!("http://{addr}/api/v1/transactions?limit=50"),
        Some(token),
        None,
    )?;
    let post = wrk(&format!("http://{addr}/"), None, Some(&script))?;
    let _ = std::fs::remove_dir_all(&dir);
    let cell = |r: &WrkRun| format!("{:.0} req/s, p99 {:.1} ms", r.rps, r.p99_ms);
    let of = |a: &WrkRun, b: &WrkRun| a.rps / b.rps;
    let bad = [&bare_run, &health, &warm, &list, &post]
        .iter()
        .map(|r| r.bad)
        .sum::<u64>();
    Some(vec![
        String::new(),
        "issue 11's table, wrk -t2 -c32 -d10s --latency (same run):".into(),
        format!("  bare tiny_http_fork, 2 threads: {}", cell(&bare_run)),
        format!(
            "  GET /health: {} = {:.1}% of bare (bar >= {:.0}%): {}",
            cell(&health),
            of(&health, &bare_run) * 100.0,
            HEALTH_OF_BARE * 100.0,
            verdict(of(&health, &bare_run) >= HEALTH_OF_BARE)
        ),
        format!(
            "  GET /allocations warm: {} = {:.1}% of /health (bars p99 <= {WARM_P99_MS} ms, >= {:.0}%): {}",
            cell(&warm),
            of(&warm, &health) * 100.0,
            WARM_OF_HEALTH * 100.0,
            verdict(warm.p99_ms <= WARM_P99_MS && of(&warm, &health) >= WARM_OF_HEALTH)
        ),
        format!(
            "  GET /transactions?limit=50: {} = {:.1}% of /health (bar >= {:.0}%): {}",
            cell(&list),
            of(&list, &health) * 100.0,
            LIST_OF_HEALTH * 100.0,
            verdict(of(&list, &health) >= LIST_OF_HEALTH)
        ),
        format!(
            "  POST /transactions, linked: {} (bars >= {POSTS_PER_SECOND_11:.0}/s, p99 <= {POST_P99_MS} ms): {}",
            cell(&post),
            verdict(post.rps >= POSTS_PER_SECOND_11 && post.p99_ms <= POST_P99_MS)
        ),
        format!(
            "  non-2xx answers and socket errors under wrk: {bad}, {}",
            verdict(bad == 0)
        ),
    ])
}

/// Months of history and users per side in the rollover comparison.
const ROLLOVER_MONTHS: usize = 24;
const ROLLOVER_USERS: usize = 4;
/// With rollover, at least this share of the throughput without.
const ROLLOVER_RATIO: f64 = 0.80;

/// A number from the environment, or `default`.
fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A client's work list for seeding months of history: a budget, then an actual, for every
/// type of every month.
struct HistorySeeder {
    token: String,
    types: Vec<String>,
    months: Vec<Period>,
    done: usize,
}

fn seed_history(client: &mut Client, s: &mut HistorySeeder) -> Result<(), String> {
    let per_month = 2 * s.types.len();
    let month = s.months[s.done / per_month];
    let k = s.done % per_month;
    let (type_id, n) = (&s.types[k / 2], s.done / 2);
    let when = format!(r#""month":{},"year":{}"#, month.month, month.year);
    let (path, body) = if k.is_multiple_of(2) {
        let amount = format!("{}.{:02}", 500 + 250 * (n % 9), (n * 17) % 100);
        (
            "/api/v1/allocations/budget",
            format!(r#"{{"allocation_type_id":"{type_id}","budget_amount":{amount},{when}}}"#),
        )
    } else {
        // Some months over budget, so `both` carries debts too.
        let amount = format!("{}.{:02}", 300 + 200 * (n % 11), (n * 29) % 100);
        (
            "/api/v1/allocations/actual",
            format!(r#"{{"allocation_type_id":"{type_id}","actual_amount":{amount},{when}}}"#),
        )
    };
    expect(client.post_json_auth(path, &s.token, &body), 200, path)?;
    s.done += 1;
    Ok(())
}

/// Rollover on for every type from `from`: `surplus` and `both` in turn, every third capped.
fn roll_every_type(client: &mut Client, user: &User, types: &[String], from: Period) {
    let bearer = format!("Bearer {}", user.token);
    for (i, type_id) in types.iter().enumerate() {
        let mode = if i.is_multiple_of(2) {
            "surplus"
        } else {
            "both"
        };
        let cap = if i % 3 == 0 { r#","cap":1500"# } else { "" };
        let body = format!(
            r#"{{"allocation_type_id":"{type_id}","mode":"{mode}"{cap},"month":{},"year":{}}}"#,
            from.month, from.year
        );
        let reply = client.send_with(
            "PUT",
            "/api/v1/allocations/rollover",
            &[("Authorization", &bearer)],
            Some(&body),
        );
        expect(reply, 200, "PUT /allocations/rollover").unwrap_or_else(|e| panic!("setup: {e}"));
    }
}

fn get_summary(client: &mut Client, user: &mut User) -> Result<(), String> {
    get_ok(client, user, "/api/v1/allocations/summary")
}

/// Issue 13's rollover comparison, on a server of its own (see the top of this file).
/// Returns the number of requests that failed.
fn rollover_comparison(workers: &str) -> usize {
    let per_client = env_number("BENCH_ROLLOVER_PER_CLIENT", WARM_PER_CLIENT);
    let rounds = env_number("BENCH_ROLLOVER_ROUNDS", ROUNDS).max(1);
    println!(
        "rollover comparison: {ROLLOVER_USERS} users with rollover on every type, {ROLLOVER_USERS} \
         without, {ROLLOVER_MONTHS} months of history, {CLIENTS} clients, {rounds} rounds"
    );
    let server = BenchServer::start(&[("HTTP_WORKERS", workers)]);
    let addr = server.addr();
    let mut failures = Failures::default();
    let states = (0..2).map(|t| (100 + t, Vec::new())).collect();
    let run = support::run(addr, states, ROLLOVER_USERS, register);
    assert!(
        run.failures.is_empty(),
        "registration failed: {:?}",
        run.failures
    );
    let users: Vec<User> = run.states.into_iter().flat_map(|(_, u)| u).collect();
    let (rolled, plain) = users.split_at(ROLLOVER_USERS);

    let mut client = Client::connect(addr).expect("connect");
    let (_, this_month, types) = catalogue(&mut client, &users[0]);
    let mut months = vec![this_month];
    while months.len() < ROLLOVER_MONTHS {
        let last = months[months.len() - 1];
        months.push(last.prev());
    }
    months.reverse();
    let seeders = users
        .iter()
        .map(|u| HistorySeeder {
            token: u.token.clone(),
            types: types.clone(),
            months: months.clone(),
            done: 0,
        })
        .collect();
    let per_user = 2 * types.len() * months.len();
    let started = Instant::now();
    let run = support::run(addr, seeders, per_user, seed_history);
    failures.add(&run);
    println!(
        "seeded {} allocation writes in {:.1} s",
        run.ok(),
        started.elapsed().as_secs_f64()
    );
    for u in rolled {
        roll_every_type(&mut client, u, &types, months[0]);
    }
    // Both sides answer (and are cached) before the timing; the rollover side carries.
    for (side, want_carry) in [(rolled, true), (plain, false)] {
        for u in side {
            let view = fetch_json(&mut client, u, "/api/v1/allocations");
            let carries = view["total_carry_in"] != serde_json::json!(0);
            assert_eq!(
                carries, want_carry,
                "setup: total_carry_in {}",
                view["total_carry_in"]
            );
        }
    }
    drop(client);

    let clients = |side: &[User]| -> Vec<User> {
        (0..CLIENTS).map(|i| side[i % side.len()].clone()).collect()
    };
    let (mut warm, mut summary) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 1..=rounds {
        println!("round {round}");
        for (i, (side, label)) in [(rolled, "rollover"), (plain, "none")]
            .into_iter()
            .enumerate()
        {
            let w = measure(|| support::run(addr, clients(side), per_client, get_allocations));
            w.run.print(&format!("  warm /allocations {label}"));
            let s = measure(|| support::run(addr, clients(side), per_client, get_summary));
            s.run.print(&format!("  /summary {label}"));
            failures.add(&w.run);
            failures.add(&s.run);
            warm[i].push(w);
            summary[i].push(s);
        }
    }
    drop(server);
    println!("rollover comparison, median round of {rounds}:");
    for (label, [with, without]) in [
        ("GET /allocations warm (cache hits)", &warm),
        (
            "GET /allocations/summary (computed on every request)",
            &summary,
        ),
    ] {
        let (with, without) = (median(with).0.throughput(), median(without).0.throughput());
        let ratio = with / without;
        println!(
            "  {label}: {with:.0} req/s with rollover, {without:.0} req/s without, ratio {ratio:.3} \
             (target >= {ROLLOVER_RATIO:.2}): {}",
            verdict(ratio >= ROLLOVER_RATIO)
        );
    }
    failures.0
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // The server's default, two per core.
    let workers =
        std::env::var("BENCH_HTTP_WORKERS").unwrap_or_else(|_| (2 * cores).max(2).to_string());
    println!(
        "money benchmark: {CLIENTS} clients, HTTP_WORKERS={workers}, {cores} cores, {ROUNDS} rounds"
    );
    let rollover_failures = rollover_comparison(&workers);
    if std::env::var_os("BENCH_ROLLOVER_ONLY").is_some() {
        if rollover_failures > 0 {
            println!("FAILED: {rollover_failures} requests got an unexpected status");
            std::process::exit(1);
        }
        return;
    }
    let server = BenchServer::start(&[("HTTP_WORKERS", &workers)]);
    let addr = server.addr();
    let mut failures = Failures(rollover_failures);

    // Users, by email (argon2id: the slow part of the setup).
    let started = Instant::now();
    let states = (0..4).map(|t| (t, Vec::new())).collect();
    let run = support::run(addr, states, CLIENTS / 4, register);
    run.print("register (argon2id)");
    assert!(run.failures.is_empty(), "registration failed; see above");
    let users: Vec<User> = run.states.into_iter().flat_map(|(_, u)| u).collect();
    println!(
        "registered {} users in {:.2} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );

    // The catalogue's type ids and this month, from the API itself.
    let mut client = Client::connect(addr).expect("connect");
    let (summary, this_month, types) = catalogue(&mut client, &users[0]);
    println!(
        "month {}-{:02}, {} allocation types",
        this_month.year,
        this_month.month,
        types.len(),
    );

    // A budget and an actual for every type, for every user.
    let seeders = users
        .iter()
        .map(|u| Seeder {
            token: u.token.clone(),
            types: types.clone(),
            done: 0,
        })
        .collect();
    let run = support::run(addr, seeders, 2 * types.len(), seed_allocation);
    run.print("POST /allocations/*");
    failures.add(&run);

    // POST /transactions, one user: 32 clients fill user 0's month with 10,000 rows.
    let linked = std::sync::Arc::new(types.clone());
    let per_client = MAIN_USER_TRANSACTIONS / CLIENTS;
    let posters = (0..CLIENTS)
        .map(|t| Poster {
            token: users[0].token.clone(),
            thread: t,
            month: this_month,
            sent: 0,
            types: linked.clone(),
        })
        .collect();
    let post_one = support::run(addr, posters, per_client, post_transaction);
    post_one.print("POST /transactions 1u");
    failures.add(&post_one);
    let mut top_up = Poster {
        token: users[0].token.clone(),
        thread: CLIENTS,
        month: this_month,
        sent: 0,
        types: linked.clone(),
    };
    for _ in CLIENTS * per_client..MAIN_USER_TRANSACTIONS {
        if let Err(e) = post_transaction(&mut client, &mut top_up) {
            println!("    FAILED {e}");
            failures.0 += 1;
        }
    }

    // POST /transactions, 32 users: each client its own user, dated last month.
    let posters = users
        .iter()
        .enumerate()
        .map(|(t, u)| Poster {
            token: u.token.clone(),
            thread: t,
            month: this_month.prev(),
            sent: 0,
            types: linked.clone(),
        })
        .collect();
    let post_spread = support::run(addr, posters, SPREAD_PER_CLIENT, post_transaction);
    post_spread.print("POST /transactions 32u");
    failures.add(&post_spread);

    // Check what the reads will see: 10,000 rows this month, a page of 50.
    let balance = fetch_json(&mut client, &users[0], "/api/v1/transactions/balance");
    let page = fetch_json(&mut client, &users[0], "/api/v1/transactions?limit=50");
    println!(
        "user 0: {} transactions this month, a page of {} ({} bytes of JSON)",
        balance["transaction_count"],
        page.as_array().map_or(0, Vec::len),
        page.to_string().len(),
    );
    // Every user's view computed once, so the warm reads hit.
    for u in &users {
        let view = fetch_json(&mut client, u, "/api/v1/allocations");
        assert_ne!(
            view["total_actual"], summary["total_actual"],
            "the seeding did not show"
        );
    }
    println!(
        "GET /allocations: {} bytes of JSON per user",
        fetch_json(&mut client, &users[0], "/api/v1/allocations")
            .to_string()
            .len()
    );
    drop(client);

    let (mut health_runs, mut warm_runs, mut list_runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cold_runs, mut health_burst_runs) = (Vec::new(), Vec::new());
    let bare = start_bare();
    let mut bare_runs = Vec::new();
    let (mut warm_misses, mut cold_hits) = (0, 0);
    let mut cold_states: Vec<(User, Vec<String>)> =
        users.iter().map(|u| (u.clone(), types.clone())).collect();
    let main_user = vec![users[0].clone(); CLIENTS];
    for round in 1..=ROUNDS {
        println!("round {round}");
        let b = measure(|| support::run(bare, vec![(); CLIENTS], HEALTH_PER_CLIENT, health));
        b.run.print("  bare tiny_http, 2 threads");
        failures.add(&b.run);
        bare_runs.push(b);
        let h = measure(|| support::run(addr, vec![(); CLIENTS], HEALTH_PER_CLIENT, health));
        h.run.print("  GET /health");

        let (_, misses0) = cache_counters(&server);
        let w = measure(|| support::run(addr, users.clone(), WARM_PER_CLIENT, get_allocations));
        let (_, misses1) = cache_counters(&server);
        warm_misses += misses1 - misses0;
        w.run.print("  GET /allocations warm");
        if misses1 > misses0 {
            println!("    {} of these missed the cache", misses1 - misses0);
        }

        let l =
            measure(|| support::run(addr, main_user.clone(), LIST_PER_CLIENT, list_transactions));
        l.run.print("  GET /transactions?l=50");

        let (hits0, _) = cache_counters(&server);
        let c = measure(|| {
            support::bursts(
                addr,
                cold_states,
                BURSTS,
                touch_allocation,
                cold_allocations,
            )
        });
        let (hits1, _) = cache_counters(&server);
        cold_hits += hits1 - hits0;
        c.run.print("  GET /allocations cold");
        if hits1 > hits0 {
            println!("    {} of these hit the cache", hits1 - hits0);
        }
        cold_states = c.run.states.clone();

        let hb =
            measure(|| support::bursts(addr, vec![(); CLIENTS], BURSTS, |_, _, _| Ok(()), health));
        hb.run.print("  GET /health bursts");

        for m in [&h, &hb] {
            failures.add(&m.run);
        }
        for m in [&w, &l] {
            failures.add(&m.run);
        }
        failures.add(&c.run);
        health_runs.push(h);
        warm_runs.push(w);
        list_runs.push(l);
        cold_runs.push(c);
        health_burst_runs.push(hb);
    }
    let wrk = wrk_table(bare, addr, &users[0].token, this_month.prev(), &types[0]);
    drop(server);

    let ((h, h_cpu), (w, w_cpu)) = (median(&health_runs), median(&warm_runs));
    let ((l, l_cpu), (c, c_cpu)) = (median(&list_runs), median(&cold_runs));
    let (hb, _) = median(&health_burst_runs);
    let (bare_run, _) = median(&bare_runs);
    println!();
    println!("median round of {ROUNDS}, by throughput (each line its own median round):");
    bare_run.print("bare tiny_http, 2 threads");
    h.print("GET /health");
    w.print("GET /allocations warm");
    l.print("GET /transactions?l=50");
    c.print("GET /allocations cold");
    hb.print("GET /health bursts");
    println!(
        "CPU per request, server and bench clients together, median round: GET /health \
         {h_cpu:.0} us, GET /allocations warm {w_cpu:.0} us, GET /transactions?limit=50 \
         {l_cpu:.0} us, GET /allocations cold {c_cpu:.0} us (with its untimed write)"
    );
    println!("POST, once per run:");
    for (label, run) in [("1u", &post_one), ("32u", &post_spread)] {
        run.print(&format!("POST /transactions {label}"));
        print_stragglers(run);
    }
    println!(
        "cache: {warm_misses} of {} warm reads missed (each cold burst leaves {CLIENTS} dead \
         views of older generations behind; {} were left by the end); {cold_hits} cold reads \
         hit (want 0)",
        ROUNDS * CLIENTS * WARM_PER_CLIENT,
        ROUNDS * BURSTS * CLIENTS,
    );

    println!();
    println!("targets:");
    let (warm_p99, cold_p99) = (w.millis(99.0), c.millis(99.0));
    println!(
        "  GET /allocations warm p99 <= {WARM_P99_MS} ms at {CLIENTS} clients: {:.2} ms, {}",
        warm_p99,
        verdict(warm_p99 <= WARM_P99_MS)
    );
    println!(
        "  GET /allocations cold p99 <= {COLD_P99_MS} ms at {CLIENTS} clients: {:.2} ms, {}",
        cold_p99,
        verdict(cold_p99 <= COLD_P99_MS)
    );
    let spread = post_spread.throughput();
    println!(
        "  POST /transactions >= {POSTS_PER_SECOND:.0}/s sustained at {CLIENTS} clients: \
         {spread:.0}/s over 32 users ({:.0}/s on one user), {}",
        post_one.throughput(),
        verdict(spread >= POSTS_PER_SECOND)
    );
    let health = h.throughput();
    let (rw, rl) = (w.throughput() / health, l.throughput() / health);
    let rc = c.throughput() / hb.throughput();
    println!(
        "  GET /allocations (warm) / GET /health throughput >= {:.0}%: {:.1}%, {}",
        RATIO * 100.0,
        rw * 100.0,
        verdict(rw >= RATIO)
    );
    println!(
        "  GET /transactions?limit=50 / GET /health throughput >= {:.0}%: {:.1}%, {}",
        RATIO * 100.0,
        rl * 100.0,
        verdict(rl >= RATIO)
    );
    println!(
        "  (not a target) GET /allocations cold / GET /health, both in bursts of {CLIENTS}: \
         {:.1}%; cold / continuous health: {:.1}%",
        rc * 100.0,
        c.throughput() / health * 100.0
    );
    println!(
        "  (not a target) the same ratios by CPU per request, which neighbours disturb less: \
         allocations warm {:.1}%, transactions?limit=50 {:.1}%",
        h_cpu / w_cpu * 100.0,
        h_cpu / l_cpu * 100.0
    );

    println!("issue 11 bars (same run; the 64-connection bar is benches/burst.rs):");
    let of_bare = health / bare_run.throughput();
    println!(
        "  GET /health >= {:.0}% of the bare server's req/s: {:.1}% ({health:.0} of {:.0}/s), {}",
        HEALTH_OF_BARE * 100.0,
        of_bare * 100.0,
        bare_run.throughput(),
        verdict(of_bare >= HEALTH_OF_BARE)
    );
    println!(
        "  GET /allocations warm p99 <= {WARM_P99_MS} ms and >= {:.0}% of /health: {warm_p99:.2} ms, \
         {:.1}%, {}",
        WARM_OF_HEALTH * 100.0,
        rw * 100.0,
        verdict(warm_p99 <= WARM_P99_MS && rw >= WARM_OF_HEALTH)
    );
    println!(
        "  GET /transactions?limit=50 >= {:.0}% of /health: {:.1}%, {}",
        LIST_OF_HEALTH * 100.0,
        rl * 100.0,
        verdict(rl >= LIST_OF_HEALTH)
    );
    let post_p99 = post_spread.millis(99.0);
    println!(
        "  POST /transactions >= {POSTS_PER_SECOND_11:.0}/s and p99 <= {POST_P99_MS} ms: \
         {spread:.0}/s, p99 {post_p99:.2} ms, {}",
        verdict(spread >= POSTS_PER_SECOND_11 && post_p99 <= POST_P99_MS)
    );
    println!("  no non-2xx answers: {}", verdict(failures.0 == 0));
    match &wrk {
        Some(lines) => lines.iter().for_each(|l| println!("{l}")),
        None => println!(
            "(wrk is not installed: the issue's wrk table is skipped; apt-get install wrk)"
        ),
    }

    if cold_hits > 0 {
        println!("WARNING: {cold_hits} cold reads hit the cache: the cold figures are too kind");
    }
    if failures.0 > 0 {
        println!(
            "FAILED: {} requests got an unexpected status or were not sent (see FAILED lines)",
            failures.0
        );
        std::process::exit(1);
    }
}
