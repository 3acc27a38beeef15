//! Crash safety: the built server is killed with SIGKILL (`kill -9`) at a seeded random moment
//! while 8 clients are writing, then restarted on the same database file, round after round.
//!
//! After every kill, before the restart: `PRAGMA integrity_check` on the file is `ok`.
//! After every restart, for the writes of that round (each round writes into its own month):
//! - every write that was answered 2xx is there: the transaction is listed once under its
//!   label with the id it was answered with, and replaying its Idempotency-Key returns the
//!   first answer byte for byte; every acknowledged allocation "add" is in the month's total;
//! - a write refused with an answer, or never sent (connection refused), is not there;
//! - a write that got no answer is there once or not at all: if listed, its key replays to
//!   the listed id; if not, the replay creates it; either way it is then listed exactly once;
//! - the month's totals (balance route) equal the sum of its listed transactions and
//!   `transaction_count` their number, before and after those replays;
//! - about half of the expenses are linked to an allocation type: that type's `spent_amount`
//!   equals the sum of the month's expenses linked to it, before and after the replays, and
//!   the linked rows are exactly the linked writes that are there.
//!
//! The recurring ticker gets the same treatment (`kill_9_mid_tick_...`): killed while it posts
//! due occurrences, every occurrence is posted exactly once after the restarts.
//!
//! `WEALTHCOACH_CRASH_ROUNDS` sets the number of rounds (default 20; 6 for the ticker),
//! `WEALTHCOACH_CRASH_SEED` the seed (each test has its own default).
//!
//! What this proves is survival of a *process* crash: the kernel keeps everything the process
//! wrote. It says nothing about a power loss or an OS crash, which needs a VM or a device
//! that drops unsynced writes (dm-flakey, dm-log-writes).

mod common;
mod reliability_support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use reliability_support::*;
use serde_json::{Value, json};

const THREADS: u64 = 8;
const DEFAULT_ROUNDS: usize = 20;
/// Every acknowledged transaction is looked up by label; this many (about) are also replayed.
const REPLAYS_PER_ROUND: usize = 150;
/// The kill comes this long (milliseconds) after the clients start, drawn from the seed.
const KILL_AFTER_MS: (u64, u64) = (40, 1400);

fn rounds() -> usize {
    match std::env::var("WEALTHCOACH_CRASH_ROUNDS") {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("WEALTHCOACH_CRASH_ROUNDS={v:?}: want a positive number")),
        Err(_) => DEFAULT_ROUNDS,
    }
}

fn seed(default: u64) -> u64 {
    match std::env::var("WEALTHCOACH_CRASH_SEED") {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            };
            parsed.unwrap_or_else(|| panic!("WEALTHCOACH_CRASH_SEED={v:?}: want a number"))
        }
        Err(_) => default,
    }
}

/// Each round writes into its own month, so its checks see only its own writes.
fn period(round: usize) -> (i32, u32) {
    let i = round % (12 * 60);
    (2030 + (i / 12) as i32, (i % 12) as u32 + 1)
}

#[derive(Debug)]
enum Write {
    /// POST /transactions under an Idempotency-Key; `label` is unique in the whole run.
    Transaction {
        key: String,
        label: String,
        body: Value,
        paise: i64,
        income: bool,
        /// Linked to the round's linked allocation type.
        linked: bool,
    },
    /// POST /allocations/actual, mode "add".
    Add { paise: i64 },
}

#[derive(Debug)]
struct Attempt {
    write: Write,
    outcome: Exchange,
}

/// What the clients of one round saw, counted.
#[derive(Default, Debug)]
struct Tally {
    acked: usize,
    refused: usize,
    not_sent: usize,
    unanswered: usize,
    /// Unanswered writes that turned out to be committed.
    unanswered_committed: usize,
    /// Rounds in which an unanswered allocation "add" was applied: a client cannot tell, and
    /// the route takes no Idempotency-Key, so a retry would count it twice.
    rounds_with_unanswered_add_applied: usize,
    /// Acknowledged transactions whose key was replayed.
    replayed: usize,
    /// Linked expenses kept (acknowledged or completed by their replay).
    linked: usize,
    /// Rounds in which a WAL checkpoint wrote to the main file while the clients wrote.
    rounds_with_checkpoint: usize,
}

/// Size and modification time of a file, to see whether anything wrote to it.
fn file_stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// The allocation types of the run: `add` gets the "add" writes, `linked` the linked expenses.
#[derive(Clone, Copy)]
struct Types<'a> {
    add: &'a str,
    linked: &'a str,
}

/// One client: writes until `stop` is set or the server stops answering.
fn client(
    addr: SocketAddr,
    token: &str,
    types: Types<'_>,
    seed: u64,
    round: usize,
    thread: u64,
    stop: &AtomicBool,
) -> Vec<Attempt> {
    let mut rng = SeededRng::new(seed ^ ((round as u64) << 20) ^ (thread << 8));
    let (year, month) = period(round);
    let mut attempts = Vec::new();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let paise = rng.range(1, 100_000) as i64;
        let write = if rng.range(0, 4) == 0 {
            Write::Add {
                paise: 1 + paise % 500,
            }
        } else {
            let income = rng.range(0, 2) == 0;
            let label = format!("crash r{round} t{thread} n{n}");
            // A distinct second of the month per attempt keeps the listing order total.
            let date = format!(
                "{year}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
                thread + 1,
                n / 3600 % 24,
                n / 60 % 60,
                n % 60
            );
            let mut body = json!({"type": if income { "income" } else { "expense" },
                              "category": "crash", "amount": format!("{}.{:02}", paise / 100, paise % 100),
                              "label": label, "transaction_date": date});
            let linked = !income && rng.range(0, 2) == 0;
            if linked {
                body["allocation_type_id"] = json!(types.linked);
            }
            Write::Transaction {
                key: format!("crash-{seed:x}-r{round}-t{thread}-n{n}"),
                label,
                body,
                paise,
                income,
                linked,
            }
        };
        let outcome = match &write {
            Write::Transaction { key, body, .. } => post_keyed(addr, token, key, body),
            Write::Add { paise } => {
                let body = json!({"allocation_type_id": types.add, "mode": "add",
                                  "actual_amount": format!("{}.{:02}", paise / 100, paise % 100),
                                  "month": month, "year": year});
                call(addr, "POST", ACTUAL, token, Some(&body), &[])
            }
        };
        let answered = matches!(outcome, Exchange::Answered(_));
        attempts.push(Attempt { write, outcome });
        if !answered {
            // The server is gone (or going): nothing more from this client this round.
            break;
        }
    }
    attempts
}

/// Drives one round of writes against `server` and kills it; returns what the clients saw.
fn write_and_kill(
    server: &mut Server,
    token: &str,
    types: Types<'_>,
    seed: u64,
    round: usize,
    kill_after: Duration,
) -> Vec<Attempt> {
    let stop = AtomicBool::new(false);
    let addr = server.addr;
    thread::scope(|s| {
        let clients: Vec<_> = (0..THREADS)
            .map(|t| {
                let stop = &stop;
                s.spawn(move || client(addr, token, types, seed, round, t, stop))
            })
            .collect();
        thread::sleep(kill_after);
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("client thread"))
            .collect()
    })
}

/// A write answered with an error before the kill: only a retryable 503 is acceptable.
fn assert_transient(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: refused: {}", r.text());
}

/// A type's (recorded_amount, spent_amount) in a month's allocation summary, in paise.
fn type_figures(addr: SocketAddr, token: &str, year: i32, month: u32, type_id: &str) -> (i64, i64) {
    let path = format!("/api/v1/allocations?month={month}&year={year}");
    let v = expect(addr, "GET", &path, token, None, 200);
    let line = v["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .flat_map(|c| c["allocation_types"].as_array().expect("types").iter())
        .find(|t| t["id"] == type_id)
        .unwrap_or_else(|| panic!("no type {type_id}"));
    (
        to_paise(&line["recorded_amount"]),
        to_paise(&line["spent_amount"]),
    )
}

/// The spending invariant for one type and month: its `spent_amount` equals the sum of the
/// month's expenses linked to it (listed page by page with the filter). Their labels.
fn check_spent(addr: SocketAddr, token: &str, year: i32, month: u32, type_id: &str) -> Vec<String> {
    let (mut labels, mut sum) = (Vec::new(), 0);
    for page in 0.. {
        let path = format!(
            "/api/v1/transactions?month={month}&year={year}&allocation_type_id={type_id}&limit=200&offset={}",
            page * 200
        );
        let rows = expect(addr, "GET", &path, token, None, 200);
        let rows = rows.as_array().expect("a bare array");
        for r in rows {
            assert_eq!(
                r["type"], "expense",
                "{year}-{month:02}: a linked income {r}"
            );
            assert_eq!(r["allocation_type_id"], type_id);
            sum += to_paise(&r["amount"]);
            labels.push(r["label"].as_str().expect("label").to_string());
        }
        if rows.len() < 200 {
            break;
        }
    }
    let (_, spent) = type_figures(addr, token, year, month, type_id);
    assert_eq!(
        spent, sum,
        "{year}-{month:02}: spent_amount vs the linked expenses"
    );
    labels.sort_unstable();
    labels
}

/// Every check of one round against the restarted server.
fn verify_round(
    addr: SocketAddr,
    token: &str,
    types: Types<'_>,
    round: usize,
    attempts: &[Attempt],
) -> Tally {
    let (year, month) = period(round);
    let at = |what: &str| format!("round {round} ({year}-{month:02}): {what}");
    let before = check_invariant(addr, token, year, month);
    let linked_before = check_spent(addr, token, year, month, types.linked);
    let mut listed: HashMap<&str, Vec<&Listed>> = HashMap::new();
    for row in &before {
        listed.entry(row.label.as_str()).or_default().push(row);
    }
    let mut tally = Tally::default();
    let acked = attempts
        .iter()
        .filter(|a| matches!(&a.outcome, Exchange::Answered(r) if (200..300).contains(&r.status)))
        .count();
    // Replays are writes: at most about REPLAYS_PER_ROUND of them, spread evenly.
    let replay_every = acked.div_ceil(REPLAYS_PER_ROUND).max(1);
    let (mut added_acked, mut added_unknown) = (0i64, 0i64);
    let mut expected_labels = Vec::new();
    // Linked writes: all of them, and those listed before the replays.
    let (mut linked_writes, mut linked_listed) = (HashSet::new(), Vec::new());
    for a in attempts {
        match (&a.write, &a.outcome) {
            (Write::Add { paise }, Exchange::Answered(r)) if (200..300).contains(&r.status) => {
                tally.acked += 1;
                added_acked += paise;
            }
            (Write::Add { .. }, Exchange::Answered(r)) => {
                assert_transient(r, &at("allocation add"));
                tally.refused += 1;
            }
            (Write::Add { .. }, Exchange::NotSent(_)) => tally.not_sent += 1,
            (Write::Add { paise }, Exchange::NoAnswer(_)) => {
                tally.unanswered += 1;
                added_unknown += paise;
            }
            (
                Write::Transaction {
                    key,
                    label,
                    body,
                    paise,
                    income,
                    linked,
                },
                outcome,
            ) => {
                let found = listed.remove(label.as_str()).unwrap_or_default();
                assert!(found.len() <= 1, "{}", at(&format!("{label} listed twice")));
                let row = found.first().copied();
                if *linked {
                    linked_writes.insert(label.as_str());
                    if row.is_some() {
                        linked_listed.push(label.clone());
                    }
                }
                if let Some(row) = row {
                    assert_eq!(
                        (row.paise, row.income),
                        (*paise, *income),
                        "{}",
                        at(&format!("{label} stored with other values"))
                    );
                }
                match outcome {
                    Exchange::Answered(r) if (200..300).contains(&r.status) => {
                        tally.acked += 1;
                        let id = r.json()["id"].as_str().expect("id").to_string();
                        let row = row.unwrap_or_else(|| {
                            panic!("{}", at(&format!("acknowledged {label} ({id}) is lost")))
                        });
                        assert_eq!(row.id, id, "{}", at(&format!("{label}: another id")));
                        // Listed with its id above; the replay also proves its idempotency
                        // row (same transaction) survived, byte for byte.
                        if tally.acked.is_multiple_of(replay_every) {
                            tally.replayed += 1;
                            let again = post_keyed(addr, token, key, body).reply("replay");
                            assert_eq!(again.status, r.status, "{}", at(&again.text()));
                            assert_eq!(
                                again.body,
                                r.body,
                                "{}",
                                at(&format!(
                                    "{label}: the replay differs from the first answer"
                                ))
                            );
                        }
                        expected_labels.push(label.clone());
                    }
                    Exchange::Answered(r) => {
                        assert_transient(r, &at(label));
                        tally.refused += 1;
                        assert!(
                            row.is_none(),
                            "{}",
                            at(&format!("{label} refused with {} but stored", r.status))
                        );
                    }
                    Exchange::NotSent(_) => {
                        tally.not_sent += 1;
                        assert!(row.is_none(), "{}", at(&format!("{label} never sent")));
                    }
                    Exchange::NoAnswer(_) => {
                        tally.unanswered += 1;
                        let again = post_keyed(addr, token, key, body).reply("replay");
                        assert_eq!(again.status, 201, "{}", at(&again.text()));
                        let id = again.json()["id"].as_str().expect("id").to_string();
                        if let Some(row) = row {
                            tally.unanswered_committed += 1;
                            assert_eq!(
                                row.id,
                                id,
                                "{}",
                                at(&format!(
                                    "{label}: committed, but its key replays to another id"
                                ))
                            );
                        }
                        expected_labels.push(label.clone());
                    }
                }
            }
        }
    }
    let strangers: Vec<&&str> = listed.keys().collect();
    assert!(
        strangers.is_empty(),
        "{}",
        at(&format!("rows nobody wrote: {strangers:?}"))
    );

    // The unanswered ones are now completed by their replays: each listed exactly once.
    let after = check_invariant(addr, token, year, month);
    assert_eq!(
        after.len(),
        expected_labels.len(),
        "{}",
        at("rows after replays")
    );
    let mut labels: Vec<&str> = after.iter().map(|r| r.label.as_str()).collect();
    labels.sort_unstable();
    expected_labels.sort_unstable();
    assert_eq!(labels, expected_labels, "{}", at("labels after replays"));

    // The linked rows are the linked writes that are there, before and after the replays, and
    // spent_amount (checked in check_spent) is their sum.
    linked_listed.sort_unstable();
    assert_eq!(
        linked_before,
        linked_listed,
        "{}",
        at("linked rows before replays")
    );
    let linked_after = check_spent(addr, token, year, month, types.linked);
    let linked_expected: Vec<String> = expected_labels
        .iter()
        .filter(|l| linked_writes.contains(l.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        linked_after,
        linked_expected,
        "{}",
        at("linked rows after replays")
    );
    tally.linked += linked_after.len();

    // total_actual now holds the linked spending too: the adds are the type's recorded amount.
    let (actual, _) = type_figures(addr, token, year, month, types.add);
    assert!(
        actual >= added_acked && actual <= added_acked + added_unknown,
        "{}",
        at(&format!(
            "allocation total {actual} paise, acknowledged adds {added_acked}, unanswered {added_unknown}"
        ))
    );
    tally.rounds_with_unanswered_add_applied = usize::from(actual > added_acked);
    tally
}

/// The first allocation type of the third category (not the category of `first_type_id`).
fn linked_type_id(addr: SocketAddr, token: &str) -> String {
    let v = expect(
        addr,
        "GET",
        "/api/v1/allocations?month=1&year=2030",
        token,
        None,
        200,
    );
    v["categories"][2]["allocation_types"][0]["id"]
        .as_str()
        .expect("an allocation type id")
        .to_string()
}

/// The whole run for one `DB_SYNCHRONOUS` setting.
fn crash_rounds(sync: &str, default_seed: u64) {
    let started = Instant::now();
    let (rounds, seed) = (rounds(), seed(default_seed));
    println!("DB_SYNCHRONOUS={sync}: {rounds} rounds, seed {seed:#x}");
    let dir = TempDir::new("crash");
    let db = dir.path("crash.db");
    let url = db.to_str().expect("utf-8 temp path").to_string();
    let mut vars = server_vars(&url, sync);
    // Long local runs (many rounds) outlive the default 30 minutes of one token.
    vars.push(("ACCESS_TOKEN_EXPIRE_MINUTES", "1440"));
    let mut server = Server::start(&dir.0, &vars, "serve-0");
    let token = register(
        server.addr,
        &format!("crash-{}@example.com", sync.to_lowercase()),
    );
    let add_type = first_type_id(server.addr, &token);
    let linked_type = linked_type_id(server.addr, &token);
    let types = Types {
        add: &add_type,
        linked: &linked_type,
    };
    let mut rng = SeededRng::new(seed);
    let mut total = Tally::default();
    let mut acked_labels: Vec<(usize, String)> = Vec::new();

    for round in 0..rounds {
        let kill_after = Duration::from_millis(rng.range(KILL_AFTER_MS.0, KILL_AFTER_MS.1));
        let main_file_before = file_stamp(&db);
        let attempts = write_and_kill(&mut server, &token, types, seed, round, kill_after);
        // The main file changes only when a checkpoint copies WAL frames into it.
        let checkpointed = file_stamp(&db) != main_file_before;
        total.rounds_with_checkpoint += usize::from(checkpointed);
        let integrity = integrity_check(&db);
        assert_eq!(integrity, "ok", "round {round}: after kill -9");

        server = Server::start(&dir.0, &vars, &format!("serve-{}", round + 1));
        let t = verify_round(server.addr, &token, types, round, &attempts);
        println!(
            "round {round:>3}: kill after {:>4} ms{}: {:>3} acknowledged, {} refused, \
             {} unanswered ({} of them committed), {} not sent",
            kill_after.as_millis(),
            if checkpointed {
                " (checkpoint ran)"
            } else {
                ""
            },
            t.acked,
            t.refused,
            t.unanswered,
            t.unanswered_committed,
            t.not_sent
        );
        for a in &attempts {
            if let (Write::Transaction { label, .. }, Exchange::Answered(r)) =
                (&a.write, &a.outcome)
                && (200..300).contains(&r.status)
            {
                acked_labels.push((round, label.clone()));
            }
        }
        total.acked += t.acked;
        total.replayed += t.replayed;
        total.linked += t.linked;
        total.refused += t.refused;
        total.unanswered += t.unanswered;
        total.unanswered_committed += t.unanswered_committed;
        total.not_sent += t.not_sent;
        total.rounds_with_unanswered_add_applied += t.rounds_with_unanswered_add_applied;
    }

    // Later crashes did not take anything from earlier rounds.
    let mut by_round: HashMap<usize, HashSet<String>> = HashMap::new();
    for round in 0..rounds {
        let (year, month) = period(round);
        let rows = check_invariant(server.addr, &token, year, month);
        check_spent(server.addr, &token, year, month, &linked_type);
        by_round.insert(round, rows.into_iter().map(|r| r.label).collect());
    }
    for (round, label) in &acked_labels {
        assert!(
            by_round[round].contains(label),
            "acknowledged {label} of round {round} is gone at the end"
        );
    }
    let code = server.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "graceful stop at the end");
    assert_eq!(integrity_check(&db), "ok", "after the final graceful stop");

    println!(
        "DB_SYNCHRONOUS={sync}: {rounds} kills in {:.1} s ({} with a checkpoint during the \
         writes): {} acknowledged writes all kept ({} replayed, {} linked expenses kept), {} refused, {} unanswered \
         ({} committed), {} never sent; unanswered allocation adds applied in {} rounds",
        started.elapsed().as_secs_f64(),
        total.rounds_with_checkpoint,
        total.acked,
        total.replayed,
        total.linked,
        total.refused,
        total.unanswered,
        total.unanswered_committed,
        total.not_sent,
        total.rounds_with_unanswered_add_applied
    );
    assert!(
        total.acked > 0,
        "no write was ever acknowledged: the test proved nothing"
    );
    assert!(total.linked > 0, "no linked expense was ever kept");
    assert!(
        total.unanswered > 0,
        "no kill ever caught a request in flight: the test proved little"
    );
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_write_synchronous_normal() {
    crash_rounds("NORMAL", 0x5EED_C0A5_0001);
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_write_synchronous_full() {
    crash_rounds("FULL", 0x5EED_C0A5_0002);
}

// ---- The recurring ticker under kill -9 (issue 14) ----

/// Auto-posted rules created per round, each due today.
const TICKER_RULES_PER_ROUND: usize = 150;
/// Rounds of the ticker test, unless `WEALTHCOACH_CRASH_ROUNDS` says otherwise.
const TICKER_ROUNDS: usize = 6;
/// The second kill of a round comes this long (milliseconds) after the restarted server is
/// ready, while its start-up tick is posting what the first kill left.
const TICKER_KILL_AFTER_MS: (u64, u64) = (0, 120);

/// Every transaction of the user dated `today` (UTC, the server's zone).
fn transactions_of_day(addr: SocketAddr, token: &str, today: &str) -> Vec<Value> {
    list_all(addr, token, &format!("from={today}&to={today}"))
}

fn next_week(today: &str) -> String {
    let d: jiff::civil::Date = today.parse().expect("date");
    d.checked_add(jiff::Span::new().days(7))
        .expect("a week on")
        .to_string()
}

/// (rules, posted occurrences) in the database file of a stopped server.
fn ticker_counts(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).expect("open the database");
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect("count") };
    (
        count("SELECT count(*) FROM recurring"),
        count("SELECT count(*) FROM transactions WHERE recurring_id IS NOT NULL"),
    )
}

/// Every rule the user has is posted for today exactly once, with its own amount and link,
/// once the restarted ticker caught up; the month's totals and the linked type's
/// `spent_amount` add up.
fn verify_ticker(addr: SocketAddr, token: &str, today: &str, linked: &str, rules: usize) {
    let caught_up = wait_until(Duration::from_secs(60), || {
        transactions_of_day(addr, token, today).len() >= rules
    });
    assert!(
        caught_up,
        "the ticker did not post every rule after the restart"
    );
    let listed = expect(addr, "GET", "/api/v1/recurring", token, None, 200);
    let listed = listed["rules"].as_array().expect("rules").clone();
    assert_eq!(listed.len(), rules);
    let posted = transactions_of_day(addr, token, today);
    let mut by_rule: HashMap<String, Vec<&Value>> = HashMap::new();
    for t in &posted {
        let rule = t["recurring_id"].as_str().expect("posted by a rule");
        assert_eq!(t["occurrence_date"], today, "{t}");
        by_rule.entry(rule.to_string()).or_default().push(t);
    }
    assert_eq!(posted.len(), rules, "one transaction per rule");
    for r in &listed {
        let id = r["id"].as_str().expect("id");
        let rows = by_rule.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(rows.len(), 1, "rule {id}: posted {} times", rows.len());
        assert_eq!(to_paise(&rows[0]["amount"]), to_paise(&r["amount"]));
        assert_eq!(rows[0]["allocation_type_id"], r["allocation_type_id"]);
        // Today's is posted: the next one is a week on.
        assert_eq!(r["next_date"], next_week(today), "{r}");
    }
    let year: i32 = today[..4].parse().expect("year");
    let month: u32 = today[5..7].parse().expect("month");
    check_invariant(addr, token, year, month);
    check_spent(addr, token, year, month, linked);
}

/// Each round creates rules due today (the ticker, every second, posts some of them), is
/// killed, restarts, and is killed again while its start-up tick posts the rest; after the
/// next restart every rule is posted exactly once and the totals hold.
#[test]
fn kill_9_mid_tick_posts_every_due_occurrence_exactly_once() {
    let rounds = std::env::var("WEALTHCOACH_CRASH_ROUNDS")
        .map(|_| rounds())
        .unwrap_or(TICKER_ROUNDS);
    let seed = seed(0x5EED_71C4_0001);
    let dir = TempDir::new("crash-ticker");
    let db = dir.path("ticker.db");
    let url = db.to_str().expect("utf-8 temp path").to_string();
    let mut vars = server_vars(&url, "FULL");
    vars.push(("RECURRING_TICK_SECONDS", "1"));
    vars.push(("ACCESS_TOKEN_EXPIRE_MINUTES", "1440"));
    let mut server = Server::start(&dir.0, &vars, "ticker-0");
    let token = register(server.addr, "crash-ticker@example.com");
    let linked = linked_type_id(server.addr, &token);
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let mut rng = SeededRng::new(seed);
    let mut mid_tick_kills = 0;
    println!("ticker: {rounds} rounds, seed {seed:#x}");
    for round in 0..rounds {
        for i in 0..TICKER_RULES_PER_ROUND {
            let mut body = json!({"type": "expense", "category": "bills",
                "label": format!("r{round}-{i}"), "amount": format!("{}.{:02}", 100 + i, round),
                "frequency": "weekly", "start_date": today, "auto_post": true});
            if i % 2 == 0 {
                body["allocation_type_id"] = json!(linked);
            }
            expect(
                server.addr,
                "POST",
                "/api/v1/recurring",
                &token,
                Some(&body),
                201,
            );
        }
        server.kill9();
        let (rules, first) = ticker_counts(&db);
        server = Server::start(&dir.0, &vars, &format!("ticker-{round}-a"));
        let kill_after = rng.range(TICKER_KILL_AFTER_MS.0, TICKER_KILL_AFTER_MS.1);
        thread::sleep(Duration::from_millis(kill_after));
        server.kill9();
        assert_eq!(integrity_check(&db), "ok", "round {round}: after kill -9");
        let (_, second) = ticker_counts(&db);
        mid_tick_kills += usize::from(second < rules);
        server = Server::start(&dir.0, &vars, &format!("ticker-{round}-b"));
        verify_ticker(server.addr, &token, &today, &linked, rules as usize);
        println!(
            "round {round}: {rules} rules; posted {first} at the first kill, {second} at the \
             second ({kill_after} ms after ready), all {rules} exactly once after the restart"
        );
    }
    println!("{mid_tick_kills} of {rounds} second kills came before the ticker was done");
    assert!(
        mid_tick_kills > 0,
        "no kill came while the ticker was posting: the test proved little"
    );
    let code = server.terminate(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "graceful stop (SIGTERM) with the ticker running"
    );
    assert_eq!(integrity_check(&db), "ok", "after the final graceful stop");
}

/// Sync (API.md "Sync for offline clients"): a pull from a cursor taken before the crash
/// misses no write that was acknowledged before kill -9, and shows nothing twice.
#[test]
fn kill_9_then_a_pull_from_an_old_cursor_misses_no_acknowledged_write() {
    let dir = TempDir::new("crash-sync");
    let db = dir.path("crash.db");
    let url = db.to_str().expect("utf-8 temp path").to_string();
    let vars = server_vars(&url, "NORMAL");
    let mut server = Server::start(&dir.0, &vars, "serve-0");
    let token = register(server.addr, "crash-sync@example.com");
    let first = expect(server.addr, "GET", "/api/v1/sync", &token, None, 200);
    let cursor = first["cursor"].as_str().expect("cursor").to_string();

    let stop = AtomicBool::new(false);
    let acked: Vec<String> = thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (addr, token, stop) = (server.addr, token.as_str(), &stop);
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let body = json!({"type": "expense", "category": "food", "amount": "1",
                                          "label": format!("w{w}-{i}"), "transaction_date": "2025-10-02"});
                        match call(addr, "POST", "/api/v1/transactions", token, Some(&body), &[]) {
                            Exchange::Answered(r) if r.status == 201 => {
                                ids.push(r.json()["id"].as_str().expect("id").to_string());
                            }
                            Exchange::Answered(_) => {}
                            _ => break,
                        }
                    }
                    ids
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(700));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        writers
            .into_iter()
            .flat_map(|w| w.join().expect("writer"))
            .collect()
    });
    assert!(
        !acked.is_empty(),
        "no write was acknowledged before the kill"
    );
    assert_eq!(integrity_check(&db), "ok");

    let server = Server::start(&dir.0, &vars, "serve-1");
    let mut seen: Vec<String> = Vec::new();
    let mut at = cursor;
    loop {
        let page = expect(
            server.addr,
            "GET",
            &format!("/api/v1/sync?cursor={at}&limit=100"),
            &token,
            None,
            200,
        );
        for t in page["changes"]["transactions"]["upserted"]
            .as_array()
            .expect("upserted")
        {
            seen.push(t["id"].as_str().expect("id").to_string());
        }
        at = page["cursor"].as_str().expect("cursor").to_string();
        if page["has_more"] == false {
            break;
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row came twice");
    for id in &acked {
        assert!(
            unique.contains(id),
            "acknowledged {id} missing from the pull"
        );
    }
    println!(
        "{} acknowledged before kill -9, {} pulled after",
        acked.len(),
        seen.len()
    );
}
