//! Recurring rules under load (issue 14), two numbers:
//!
//! 1. A tick of the recurring ticker with nothing due, with `BENCH_RECURRING_USERS` users
//!    (10,000) of `BENCH_RECURRING_RULES` rules each (5), their `next_action` in the future as
//!    the ticker leaves them: `ticker::tick` is timed directly, `BENCH_TICKS` times (1,000);
//!    p50 and p99 must stay ≤ 5 ms.
//! 2. `GET /recurring/upcoming` for a user with 50 rules against `GET /allocations` for the
//!    same user, in the same run: `BENCH_RECURRING_CLIENTS` client threads (8) of
//!    `BENCH_RECURRING_REQUESTS` requests each (1,000); upcoming must answer at ≥ 50% of the
//!    allocations throughput. `BENCH_CACHE=false` measures both without the view cache.
//!
//! The users and their rules of part 1 are written straight into the database (the API would
//! spend its time in argon2id); the user of part 2 and its rules go through the API.
//! `cargo bench --bench recurring`; small: `BENCH_RECURRING_USERS=200 BENCH_TICKS=50 ...`.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{BenchServer, Client, percentile};
use wealthcoach::recurring::ticker;

const TICK_BUDGET_MS: f64 = 5.0;
const UPCOMING_RATIO: f64 = 0.50;
const RULES_OF_THE_VIEW_USER: usize = 50;
const FREQUENCIES: [&str; 7] = [
    "weekly",
    "every_other_week",
    "monthly",
    "every_other_month",
    "quarterly",
    "half_yearly",
    "yearly",
];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `users` users with `rules` rules each, written in one transaction, each rule's
/// `next_action` between tomorrow and a month on (nothing due today).
fn seed_rules(server: &BenchServer, users: usize, rules: usize) {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    server
        .app()
        .db
        .write(|tx| {
            let mut user = tx.prepare(
                "INSERT INTO users (id, email, password_hash, full_name) VALUES (?1, ?2, 'x', 'Bench')",
            )?;
            let mut rule = tx.prepare(
                "INSERT INTO recurring (id, user_id, type, category, label, amount, frequency,
                     start_date, auto_post, remind_days_before, next_action, created_at, updated_at)
                 VALUES (?1, ?2, 'expense', 'bills', ?3, 125050, ?4, ?5, ?6, 2, ?7,
                         '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
            )?;
            for u in 0..users {
                let id = format!("bench-user-{u:06}");
                user.execute(rusqlite::params![id, format!("{id}@example.com")])?;
                for r in 0..rules {
                    let k = u * rules + r;
                    let next = today
                        .checked_add(jiff::Span::new().days(1 + (k % 30) as i64))
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
                    rule.execute(rusqlite::params![
                        format!("bench-rule-{k:08}"),
                        id,
                        format!("Rule {r}"),
                        FREQUENCIES[k % FREQUENCIES.len()],
                        today.to_string(),
                        k.is_multiple_of(2),
                        next.to_string(),
                    ])?;
                }
            }
            Ok(())
        })
        .expect("seed the rules");
}

fn time_ticks(server: &BenchServer, ticks: usize) -> (f64, f64) {
    let mut times = Vec::with_capacity(ticks);
    for _ in 0..ticks {
        let started = Instant::now();
        let report = ticker::tick(server.app()).expect("a tick");
        times.push(started.elapsed());
        assert_eq!(report, ticker::Report::default(), "nothing was due");
    }
    times.sort();
    let ms = |p| percentile(&times, p).map_or(f64::NAN, |d: Duration| d.as_secs_f64() * 1e3);
    (ms(50.0), ms(99.0))
}

/// A registered user with 50 rules of every frequency, some started months ago; its token.
fn view_user(server: &BenchServer) -> String {
    let mut client = Client::connect(server.addr()).expect("connect");
    let reply = support::register(&mut client, "bench-upcoming@example.com").expect("register");
    let token = reply.json_str("access_token").expect("access_token");
    for i in 0..RULES_OF_THE_VIEW_USER {
        let body = json!({"type": "expense", "category": "bills", "label": format!("Bill {i}"),
            "amount": "1250.50", "frequency": FREQUENCIES[i % FREQUENCIES.len()],
            "start_date": format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28)});
        let r = client
            .post_json_auth("/api/v1/recurring", &token, &body.to_string())
            .expect("create a rule");
        assert_eq!(r.status, 201, "{}", r.text());
    }
    token
}

fn throughput(server: &BenchServer, token: &str, path: &str, clients: usize, each: usize) -> f64 {
    let states = vec![token.to_string(); clients];
    let run = support::run(server.addr(), states, each, |client, token| {
        let r = client.get_auth(path, token).map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("{path}: {} {}", r.status, r.text()));
        }
        Ok(())
    });
    run.print(path);
    assert!(run.failures.is_empty(), "{path} failed; see above");
    run.throughput()
}

fn main() {
    let users = env_number("BENCH_RECURRING_USERS", 10_000);
    let rules = env_number("BENCH_RECURRING_RULES", 5);
    let ticks = env_number("BENCH_TICKS", 1_000);
    let clients = env_number("BENCH_RECURRING_CLIENTS", 8);
    let each = env_number("BENCH_RECURRING_REQUESTS", 1_000);
    let cache = std::env::var("BENCH_CACHE").unwrap_or_else(|_| "true".into());
    // The thread's own ticks stay out of the way: it ticks once at start-up, then in a day.
    let server = BenchServer::start(&[
        ("RECURRING_TICK_SECONDS", "86400"),
        ("CACHE_ENABLED", &cache),
    ]);
    let mut met = true;

    let started = Instant::now();
    seed_rules(&server, users, rules);
    println!(
        "seeded {users} users x {rules} rules in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (p50, p99) = time_ticks(&server, ticks);
    let ok = p99 <= TICK_BUDGET_MS;
    met &= ok;
    println!(
        "tick with nothing due ({} rules): {ticks} ticks, p50 {p50:.3} ms, p99 {p99:.3} ms \
         (budget {TICK_BUDGET_MS} ms): {}",
        users * rules,
        if ok { "met" } else { "NOT MET" }
    );

    let token = view_user(&server);
    let allocations = throughput(&server, &token, "/api/v1/allocations", clients, each);
    let upcoming = throughput(
        &server,
        &token,
        "/api/v1/recurring/upcoming?days=30",
        clients,
        each,
    );
    let ratio = upcoming / allocations;
    let ok = ratio >= UPCOMING_RATIO;
    met &= ok;
    println!(
        "upcoming ({RULES_OF_THE_VIEW_USER} rules) / allocations throughput, cache {cache}: \
         {upcoming:.0} / {allocations:.0} req/s = {:.0}% (at least {:.0}%): {}",
        ratio * 100.0,
        UPCOMING_RATIO * 100.0,
        if ok { "met" } else { "NOT MET" }
    );
    if !met {
        std::process::exit(1);
    }
}
