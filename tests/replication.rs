//! Disaster recovery with Litestream 0.5.17 against a real S3 API (moto) on loopback (issue 12,
//! part 4). Each test runs the built server, Litestream with the shipped deploy/litestream.yml
//! and, on a "new VM", the shipped deploy/replica-restore (the server unit's ExecStartPre).
//!
//! - VM loss, seeded rounds: writes, kill -9 of both processes, the data folder deleted, a
//!   restore into a fresh folder from the old replica path (the new VM replicates to a new
//!   path), server up: every write acknowledged >= 1 s before the kill is there, the month's
//!   totals hold, the refresh token from before the kill works. RPO per round, p50/p95/max.
//! - Restore time (empty folder → /api/v1/ready 200) for the test database and one >= 100 MB.
//! - Faults: S3 refusing (a forwarder closed), S3 hung (moto SIGSTOPped), Litestream killed.
//! - Restarts under load cause no new snapshot; `wealthcoach restore` with replication on.
//!
//! Figures are printed as `replication: ...` lines. Without the venv of
//! ci/replication-deps.sh every test prints SKIPPED (and fails under CI=true).
//! `WEALTHCOACH_REPLICATION_ROUNDS` (default 20) and `WEALTHCOACH_REPLICATION_SEED` set the
//! VM-loss rounds and seed.

mod common;
mod reliability_support;
mod replication_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use reliability_support::{BIN, SeededRng, Server, TempDir, check_invariant};
use replication_support::*;
use serde_json::json;

const DEFAULT_ROUNDS: usize = 20;
const DEFAULT_SEED: u64 = 0x5EED_D15A_57E2;
/// Writes acknowledged at least this long before the kill must survive it.
const RPO_BOUND: Duration = Duration::from_secs(1);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            let v = v.trim().to_string();
            match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => v.parse().ok(),
            }
            .unwrap_or_else(|| panic!("{name}={v:?}: want a number"))
        })
        .unwrap_or(default)
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn start_server(site: &Site, logs: &Path, name: &str) -> Server {
    let env = site.server_env();
    Server::start(logs, &as_refs(&env), name)
}

/// POST /auth/refresh with `refresh`; the new refresh token (both rotate).
fn refresh(addr: SocketAddr, refresh: &str, what: &str) -> String {
    let body = json!({ "refresh_token": refresh }).to_string();
    let r = reliability_support::exchange(
        addr,
        "POST",
        "/api/v1/auth/refresh",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
    .reply(what);
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    r.json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string()
}

fn register_full(addr: SocketAddr, email: &str) -> (String, String) {
    let u = common::register_user(addr, email, "Replication Tester");
    (u.token, u.refresh)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn summary(name: &str, values: &mut [Duration]) -> String {
    values.sort_unstable();
    format!(
        "{name} p50 {:.3} s, p95 {:.3} s, max {:.3} s ({} values)",
        secs(percentile(values, 50)),
        secs(percentile(values, 95)),
        secs(percentile(values, 100)),
        values.len()
    )
}

/// Each round writes into its own month, so its checks see only its own writes.
fn period(round: usize) -> (i32, u32) {
    (2031 + (round / 12) as i32, (round % 12) as u32 + 1)
}

#[test]
fn vm_loss_rounds_keep_every_write_acknowledged_a_second_before_the_kill() {
    let test = "vm_loss_rounds";
    let Some(tools) = tools(test) else { return };
    let _one = one_at_a_time();
    let rounds = env_number("WEALTHCOACH_REPLICATION_ROUNDS", DEFAULT_ROUNDS as u64) as usize;
    let seed = env_number("WEALTHCOACH_REPLICATION_SEED", DEFAULT_SEED);
    figure(&format!("vm loss: {rounds} rounds, seed {seed:#x}"));
    let started = Instant::now();
    let tmp = TempDir::new("repl-vm");
    let logs = tmp.path("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let moto = Moto::start(&tools, &logs);
    let endpoint = format!("http://{}", moto.addr());
    let mut rng = SeededRng::new(seed);

    // VM 0: an empty replica path to restore from (nothing there: starts empty).
    let mut site = Site::new(tmp.path("vm0"), &tools, &endpoint, "vm0", "none");
    let (out, _) = site.replica_restore();
    assert!(out.status.success(), "first restore: {out:?}");
    assert!(!site.db.exists(), "nothing to restore, yet a database");
    let mut lite = Litestream::start(&site, &logs, "vm0");
    let mut server = start_server(&site, &logs, "vm0");
    let (token, mut refresh_token) = register_full(server.addr, "vm-loss@example.com");

    let (mut rpos, mut restore_times) = (Vec::new(), Vec::new());
    let mut all_acked: Vec<(usize, Ack)> = Vec::new();
    let mut survived_total = 0usize;
    for round in 0..rounds {
        // A refresh token obtained now (>= 1 s before the kill) must work on the next VM.
        refresh_token = refresh(
            server.addr,
            &refresh_token,
            &format!("round {round}: refresh"),
        );
        let write_for = Duration::from_millis(rng.range(1500, 3000));
        let writer = Writer::start(
            server.addr,
            &token,
            &format!("vm r{round}"),
            period(round),
            Duration::from_millis(8),
            true,
        );
        std::thread::sleep(write_for);
        // The VM dies: both processes at once.
        let killed_at = Instant::now();
        lite.send_kill9();
        server.kill9();
        lite.reap();
        let log = writer.finish();
        assert!(
            log.failures.is_empty(),
            "round {round}: writes refused before the kill: {:?}",
            &log.failures[..log.failures.len().min(5)]
        );
        std::fs::remove_dir_all(&site.dir).expect("delete the data folder");

        // The new VM: restore from the old path, replicate to a new one.
        let next = Site::new(
            tmp.path(&format!("vm{}", round + 1)),
            &tools,
            &endpoint,
            &format!("vm{}", round + 1),
            &site.replica_path,
        );
        site = next;
        let t0 = Instant::now();
        let (out, took) = site.replica_restore();
        assert!(
            out.status.success() && site.db.exists(),
            "round {round}: replica-restore failed in {took:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lite = Litestream::start(&site, &logs, &format!("vm{}", round + 1));
        server = start_server(&site, &logs, &format!("vm{}", round + 1));
        let restore_time = t0.elapsed();
        restore_times.push(restore_time);

        let (year, month) = period(round);
        let rows = check_invariant(server.addr, &token, year, month);
        let stored: std::collections::HashMap<String, (String, i64)> = rows
            .iter()
            .map(|r| (r.id.clone(), (r.label.clone(), r.paise)))
            .collect();
        let lost = missing(&log.acked, &stored);
        for a in &lost {
            let age = killed_at.saturating_duration_since(a.at);
            assert!(
                age < RPO_BOUND,
                "round {round}: {} ({}) acknowledged {:.3} s before the kill is lost",
                a.label,
                a.id,
                secs(age)
            );
        }
        let rpo = lost
            .iter()
            .map(|a| killed_at.saturating_duration_since(a.at))
            .max()
            .unwrap_or_default();
        rpos.push(rpo);
        // Nothing nobody wrote, and no acknowledged write stored with other values.
        let attempted: std::collections::HashSet<&str> = log
            .acked
            .iter()
            .map(|a| a.label.as_str())
            .chain(log.unanswered.iter().map(String::as_str))
            .collect();
        for r in &rows {
            assert!(
                attempted.contains(r.label.as_str()),
                "round {round}: a row nobody wrote: {r:?}"
            );
        }
        refresh_token = refresh(
            server.addr,
            &refresh_token,
            &format!("round {round}: the refresh token from before the kill"),
        );
        survived_total += log.acked.len() - lost.len();
        figure(&format!(
            "vm loss round {round:>2}: wrote {:.2} s, {} acknowledged, {} lost (all < 1 s \
             old), RPO {:.3} s, restore to ready {:.3} s (replica-restore {:.3} s)",
            secs(write_for),
            log.acked.len(),
            lost.len(),
            secs(rpo),
            secs(restore_time),
            secs(took)
        ));
        let kept: std::collections::HashSet<&String> = stored.keys().collect();
        all_acked.extend(
            log.acked
                .into_iter()
                .filter(|a| kept.contains(&a.id))
                .map(|a| (round, a)),
        );
    }
    // Later losses took nothing from earlier rounds.
    for round in 0..rounds {
        let (year, month) = period(round);
        let rows = check_invariant(server.addr, &token, year, month);
        let ids: std::collections::HashSet<String> = rows.into_iter().map(|r| r.id).collect();
        for (_, a) in all_acked.iter().filter(|(r, _)| *r == round) {
            assert!(
                ids.contains(&a.id),
                "round {round}: {} gone at the end",
                a.label
            );
        }
    }
    let db_bytes = std::fs::metadata(&site.db).map(|m| m.len()).unwrap_or(0);
    figure(&format!(
        "vm loss: {rounds} rounds in {:.1} s, {survived_total} acknowledged writes kept; {}",
        secs(started.elapsed()),
        summary("RPO", &mut rpos)
    ));
    figure(&format!(
        "restore time (test database, {:.1} MB): {}",
        db_bytes as f64 / 1e6,
        summary("empty folder -> /api/v1/ready 200", &mut restore_times)
    ));
    assert!(
        percentile(&rpos, 100) <= RPO_BOUND,
        "max RPO over 1 s: {rpos:?}"
    );
    assert!(survived_total > 0, "no write acknowledged: proved nothing");
}

/// One running VM against moto behind a forwarder, with a registered user.
struct Stack {
    tmp: TempDir,
    logs: std::path::PathBuf,
    moto: Moto,
    fwd: Forwarder,
    site: Site,
    lite: Litestream,
    server: Server,
    token: String,
    refresh: String,
}

impl Stack {
    fn start(tools: &Tools, tag: &str) -> Stack {
        let tmp = TempDir::new(tag);
        let logs = tmp.path("logs");
        std::fs::create_dir_all(&logs).expect("logs dir");
        let moto = Moto::start(tools, &logs);
        let fwd = Forwarder::start(moto.addr());
        let site = Site::new(tmp.path("vm"), tools, &fwd.endpoint(), tag, tag);
        let lite = Litestream::start(&site, &logs, "0");
        let server = start_server(&site, &logs, "server-0");
        let (token, refresh) = register_full(server.addr, &format!("{tag}@example.com"));
        Stack {
            tmp,
            logs,
            moto,
            fwd,
            site,
            lite,
            server,
            token,
            refresh,
        }
    }

    /// Polls the replica until every id in `ids` is in a restore of it; the time it took.
    fn replica_has(&self, ids: &[&str], limit: Duration, integrity: &str) -> Option<Duration> {
        let started = Instant::now();
        let out = self.tmp.path("peek.db");
        let mut last = String::new();
        let ok = common::wait_until(limit, || {
            match self.site.restore_replica_to(&out, integrity) {
                Ok(()) => {
                    let stored = stored_transactions(&out);
                    ids.iter().all(|id| stored.contains_key(*id))
                }
                Err(e) => {
                    last = e;
                    false
                }
            }
        });
        if !ok {
            eprintln!("replica check gave up; last error: {last}");
        }
        ok.then(|| started.elapsed())
    }

    fn litestream_logs(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.logs)
            .expect("logs")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("litestream-"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    S3Refusing,
    S3Hung,
    LitestreamKilled,
}

/// Shortest outage: long enough for Litestream's retries to back off.
const OUTAGE_MIN: Duration = Duration::from_secs(8);

fn fault_run(fault: Fault) {
    let test = format!("fault {fault:?}");
    let Some(tools) = tools(&test) else { return };
    let _one = one_at_a_time();
    let mut s = Stack::start(&tools, &format!("fault-{fault:?}").to_lowercase());
    let period = (2032, 3);
    let writer = Writer::start(
        s.server.addr,
        &s.token,
        "fault",
        period,
        Duration::from_millis(20),
        false,
    );
    await_status(
        s.server.addr,
        Duration::from_secs(30),
        &format!("{test}: replication.status \"ok\" before the fault"),
        |st| st == "ok",
    );
    std::thread::sleep(Duration::from_secs(1));

    let fault_at = Instant::now();
    match fault {
        Fault::S3Refusing => s.fwd.close(),
        Fault::S3Hung => s.moto.pause(),
        Fault::LitestreamKilled => s.lite.kill9(),
    }
    // The API keeps answering during the fault (the writer records any non-2xx).
    let not_ok = await_status(
        s.server.addr,
        Duration::from_secs(15),
        &format!("{test}: replication.status not \"ok\" within 15 s of the fault"),
        |st| st != "ok",
    );
    figure(&format!(
        "{test}: health not ok {:.1} s after the fault",
        secs(not_ok)
    ));
    for _ in 0..5 {
        assert_eq!(s.server.status("/api/v1/ready"), Some(200), "{test}: ready");
    }
    let left = OUTAGE_MIN.saturating_sub(fault_at.elapsed());
    std::thread::sleep(left);
    let outage = fault_at.elapsed();

    let back_at = Instant::now();
    match fault {
        Fault::S3Refusing => s.fwd.open(),
        Fault::S3Hung => s.moto.resume(),
        Fault::LitestreamKilled => s.lite = Litestream::start(&s.site, &s.logs, "1"),
    }
    // Catch-up: a write made right after recovery reaches the replica.
    let marker = write_one(
        s.server.addr,
        &s.token,
        "fault marker",
        4242,
        period,
        99_999,
    )
    .unwrap_or_else(|e| panic!("{test}: marker write: {e:?}"));
    let catch_up = s
        .replica_has(&[marker.id.as_str()], Duration::from_secs(150), "none")
        .unwrap_or_else(|| panic!("{test}: the replica did not catch up within 150 s"));
    let catch_up = catch_up + marker.at.saturating_duration_since(back_at);
    let ok_again = await_status(
        s.server.addr,
        Duration::from_secs(60),
        &format!("{test}: replication.status \"ok\" after recovery"),
        |st| st == "ok",
    );
    let log = writer.finish();
    assert!(
        log.failures.is_empty(),
        "{test}: the API did not answer 2xx: {:?}",
        &log.failures[..log.failures.len().min(5)]
    );
    assert!(
        log.acked.len() > 100,
        "{test}: too few writes: {}",
        log.acked.len()
    );
    // Every acknowledged write is in the local database.
    let local = stored_transactions(&s.site.db);
    let gone = missing(&log.acked, &local);
    assert!(
        gone.is_empty(),
        "{test}: acknowledged writes missing locally: {gone:?}"
    );
    check_invariant(s.server.addr, &s.token, period.0, period.1);
    // ... and in the replica.
    let mut ids: Vec<&str> = log.acked.iter().map(|a| a.id.as_str()).collect();
    ids.push(&marker.id);
    let all_in = s.replica_has(&ids, Duration::from_secs(60), "full");
    assert!(
        all_in.is_some(),
        "{test}: not every acknowledged write reached the replica"
    );
    figure(&format!(
        "{test}: outage {:.1} s, {} writes all 2xx and all replicated; catch-up after recovery \
         {:.1} s, health ok again after {:.1} s",
        secs(outage),
        log.acked.len(),
        secs(catch_up),
        secs(ok_again)
    ));
    let _ = &s.refresh;
}

#[test]
fn fault_s3_refusing_connections() {
    fault_run(Fault::S3Refusing);
}

#[test]
fn fault_s3_hung() {
    fault_run(Fault::S3Hung);
}

#[test]
fn fault_litestream_killed() {
    fault_run(Fault::LitestreamKilled);
}

#[test]
fn restarts_under_load_take_no_new_snapshot() {
    let test = "restarts_under_load";
    let Some(tools) = tools(test) else { return };
    let _one = one_at_a_time();
    let mut s = Stack::start(&tools, "restarts");
    let writer = Writer::start(
        s.server.addr,
        &s.token,
        "restart",
        (2032, 5),
        Duration::from_millis(5),
        true,
    );
    std::thread::sleep(Duration::from_secs(3));
    // A server restart (Litestream keeps running).
    writer.point_at(None);
    assert_eq!(s.server.terminate(Duration::from_secs(20)), Some(0));
    s.server = start_server(&s.site, &s.logs, "server-1");
    writer.point_at(Some(s.server.addr));
    std::thread::sleep(Duration::from_secs(3));
    // Both units stopped and started: the server stops first, Litestream last; Litestream
    // starts first.
    writer.point_at(None);
    assert_eq!(s.server.terminate(Duration::from_secs(20)), Some(0));
    s.lite.terminate();
    s.lite = Litestream::start(&s.site, &s.logs, "1");
    s.server = start_server(&s.site, &s.logs, "server-2");
    writer.point_at(Some(s.server.addr));
    std::thread::sleep(Duration::from_secs(3));
    let log = writer.finish();
    assert!(log.failures.is_empty(), "{test}: {:?}", log.failures);
    let local = stored_transactions(&s.site.db);
    assert!(
        missing(&log.acked, &local).is_empty(),
        "{test}: acknowledged writes lost"
    );
    // Let Litestream see the last frames, then read its logs.
    std::thread::sleep(Duration::from_secs(2));
    let (complete, reasons) = snapshot_lines(&s.litestream_logs());
    figure(&format!(
        "{test}: {} writes over a server restart and a stop/start of both; snapshots: {} \
         complete, {} with a reason",
        log.acked.len(),
        complete.len(),
        reasons.len()
    ));
    assert!(
        reasons.is_empty() && complete.len() <= 1,
        "{test}: Litestream took snapshots beyond its first:\n{}\n{}",
        complete.join("\n"),
        reasons.join("\n")
    );
}

/// `wealthcoach <args>` with a site's settings; exit status and output.
fn cli(site: &Site, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(site.server_env())
        .output()
        .expect("run wealthcoach")
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_default()
}

#[test]
fn restore_command_with_replication_on() {
    let test = "restore_command";
    let Some(tools) = tools(test) else { return };
    let _one = one_at_a_time();
    let mut s = Stack::start(&tools, "restorecmd");
    let (a_period, b_period, c_period) = ((2033, 1), (2033, 2), (2033, 3));
    let write_set = |addr, tag: &str, period, n: u64| -> Vec<Ack> {
        (0..n)
            .map(|i| {
                write_one(
                    addr,
                    &s.token,
                    &format!("{tag} {i}"),
                    100 + i as i64,
                    period,
                    i,
                )
                .unwrap_or_else(|e| panic!("{test}: write {tag} {i}: {e:?}"))
            })
            .collect()
    };
    let a = write_set(s.server.addr, "set-a", a_period, 20);
    let backup = s.tmp.path("backup.db");
    let out = cli(&s.site, &["backup", backup.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{test}: backup: {out:?}");
    let b = write_set(s.server.addr, "set-b", b_period, 20);
    assert_eq!(s.server.terminate(Duration::from_secs(20)), Some(0));

    // Litestream still runs: restore must refuse and leave the database alone.
    let (db_before, wal_before) = (
        file_bytes(&s.site.db),
        file_bytes(&s.site.dir.join("wealthcoach.db-wal")),
    );
    let out = cli(&s.site, &["restore", backup.to_str().expect("utf-8")]);
    let unchanged = file_bytes(&s.site.db) == db_before
        && file_bytes(&s.site.dir.join("wealthcoach.db-wal")) == wal_before;
    assert!(
        !out.status.success(),
        "{test}: restore ran while Litestream runs: {out:?}"
    );
    assert!(unchanged, "{test}: a refused restore changed the database");
    // Stopped (server first, Litestream last), the restore goes through.
    s.lite.terminate();
    let out = cli(&s.site, &["restore", backup.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{test}: restore with both stopped: {out:?}"
    );
    s.lite = Litestream::start(&s.site, &s.logs, "1");
    s.server = start_server(&s.site, &s.logs, "server-1");
    let c = write_set(s.server.addr, "set-c", c_period, 10);
    std::thread::sleep(Duration::from_millis(1500));

    // The VM is lost; a new one restores from the replica and must have the restored data.
    s.lite.send_kill9();
    s.server.kill9();
    s.lite.reap();
    std::fs::remove_dir_all(&s.site.dir).expect("delete the data folder");
    let site = Site::new(
        s.tmp.path("vm2"),
        &tools,
        &s.fwd.endpoint(),
        "restorecmd-2",
        &s.site.replica_path,
    );
    let (out, _) = site.replica_restore();
    assert!(
        out.status.success() && site.db.exists(),
        "{test}: replica-restore: {out:?}"
    );
    let server = start_server(&site, &s.logs, "server-2");
    let ids = |period: (i32, u32)| -> Vec<String> {
        check_invariant(server.addr, &s.token, period.0, period.1)
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let mut want_a: Vec<String> = a.iter().map(|x| x.id.clone()).collect();
    let mut got_a = ids(a_period);
    want_a.sort();
    got_a.sort();
    assert_eq!(got_a, want_a, "{test}: the backup's rows after VM loss");
    assert!(
        ids(b_period).is_empty(),
        "{test}: rows written after the backup came back ({} of {})",
        ids(b_period).len(),
        b.len()
    );
    assert_eq!(
        ids(c_period).len(),
        c.len(),
        "{test}: rows written after the restore"
    );
    figure(&format!(
        "{test}: restored backup ({} rows) survived VM loss; {} later rows gone, {} newer kept",
        a.len(),
        b.len(),
        c.len()
    ));
}

#[test]
fn restore_time_of_a_database_over_100_mb() {
    let test = "restore_time_100mb";
    let Some(tools) = tools(test) else { return };
    let _one = one_at_a_time();
    let tmp = TempDir::new("repl-big");
    let logs = tmp.path("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let moto = Moto::start(&tools, &logs);
    let endpoint = format!("http://{}", moto.addr());
    let site = Site::new(tmp.path("vm"), &tools, &endpoint, "big", "big");
    // The server makes the schema and a user; rows are then bulk-inserted in SQLite.
    let mut server = start_server(&site, &logs, "server-0");
    let (token, _) = register_full(server.addr, "big@example.com");
    let user_id = common::get_auth(server.addr, "/api/v1/users/me", &token).json()["user_id"]
        .as_str()
        .expect("user_id")
        .to_string();
    assert_eq!(server.terminate(Duration::from_secs(20)), Some(0));
    let rows: i64 = 220_000;
    let generated = Instant::now();
    {
        let conn = rusqlite::Connection::open(&site.db).expect("open");
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO transactions (id, user_id, type, category, amount, label,
                                       transaction_date, year, month)
             SELECT printf('bulk-%08d', i), ?2, 'expense', 'bulk', 100 + i % 1000,
                    printf('bulk row %d %s', i, hex(randomblob(150))),
                    '2029-06-15T00:00:00Z', 2029, 6 FROM n",
            rusqlite::params![rows, user_id],
        )
        .expect("bulk insert");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    let bytes = std::fs::metadata(&site.db).expect("db").len();
    assert!(bytes >= 100_000_000, "{test}: only {bytes} bytes");
    // Litestream snapshots it into the replica.
    let mut lite = Litestream::start(&site, &logs, "0");
    let snap = common::wait_until(Duration::from_secs(180), || {
        lite.log_text().contains("snapshot complete")
    });
    assert!(snap, "{test}: no snapshot in 180 s:\n{}", lite.log_text());
    let snapshot_took = generated.elapsed();
    lite.terminate();

    let fresh = Site::new(tmp.path("vm2"), &tools, &endpoint, "big-2", "big");
    let t0 = Instant::now();
    let (out, took) = fresh.replica_restore();
    assert!(
        out.status.success() && fresh.db.exists(),
        "{test}: replica-restore: {out:?}"
    );
    let server = start_server(&fresh, &logs, "server-1");
    let ready = t0.elapsed();
    assert_eq!(server.status("/api/v1/ready"), Some(200));
    // Balances come from the app's own running totals, which the bulk rows bypassed: count
    // the rows in the restored file instead.
    let conn = rusqlite::Connection::open_with_flags(
        &fresh.db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the restored file");
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM transactions WHERE category = 'bulk'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, rows, "{test}: rows after restore");
    figure(&format!(
        "restore time (generated database, {:.1} MB, {rows} transactions): empty folder -> \
         /api/v1/ready 200 {:.2} s (replica-restore with -integrity-check full {:.2} s); \
         generate + first snapshot {:.1} s",
        bytes as f64 / 1e6,
        secs(ready),
        secs(took),
        secs(snapshot_took)
    ));
}
