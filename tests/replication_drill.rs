//! Issue 12: `wealthcoach replica-drill` against the REAL Litestream 0.5.17 (from
//! ci/replication-deps.sh's venv, `WEALTHCOACH_REPLICATION_VENV`, default
//! `$HOME/.cache/wealthcoach/replication-venv`) replicating to a file replica. SKIPPED without
//! the venv, a failure under CI. The S3 runs (moto) are tests/replication.rs's.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{ChildGuard, TempDir, register_user, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");
const INSTALL: &str = "WEALTHCOACH_REPLICATION_VENV=<dir> ci/replication-deps.sh";

fn litestream() -> Option<PathBuf> {
    let venv = std::env::var("WEALTHCOACH_REPLICATION_VENV")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/wealthcoach/replication-venv")
        });
    let bin = venv.join("bin/litestream");
    bin.is_file().then_some(bin)
}

/// The settings of the server and its commands: replication on, Litestream's socket and config
/// in the test's folder.
fn vars(dir: &Path, litestream: &Path, config: &Path, ports: [u16; 2]) -> Vec<(String, String)> {
    let p = |x: &Path| x.display().to_string();
    [
        ("DATABASE_URL", p(&dir.join("live.db"))),
        ("ENVIRONMENT", "test".into()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", ports[0].to_string()),
        ("WS_PORT", ports[1].to_string()),
        (
            "JWT_SECRET_KEY",
            "k7Qm2vX9pL4rT8wZ1nB6cF3hJ5dS0gY2aE7uR9iO".into(),
        ),
        ("LOG_LEVEL", "warning".into()),
        ("REPLICA_BUCKET", "unused-file-replica".into()),
        ("REPLICA_PATH", "vm1".into()),
        ("LITESTREAM_ACCESS_KEY_ID", "test".into()),
        ("LITESTREAM_SECRET_ACCESS_KEY", "test".into()),
        ("LITESTREAM_SOCKET", p(&dir.join("ls.sock"))),
        ("LITESTREAM_BIN", p(litestream)),
        ("LITESTREAM_CONFIG", p(config)),
        ("REPLICA_POLL_SECONDS", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `wealthcoach` with exactly `vars` (AWS_CA_BUNDLE, set on these machines, makes Litestream
/// refuse to start: it is not passed on).
fn command(dir: &Path, vars: &[(String, String)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .current_dir(dir);
    c
}

/// Runs `wealthcoach args`, which must exit with `code`.
fn run(dir: &Path, vars: &[(String, String)], args: &[&str], code: i32) {
    let out: Output = command(dir, vars, args).output().expect("run wealthcoach");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yml(dir: &Path, replica: &Path) -> PathBuf {
    let path = dir.join(format!(
        "litestream-{}.yml",
        replica.file_name().expect("name").to_string_lossy()
    ));
    let text = format!(
        "socket:\n  enabled: true\n  path: {sock}\n\
         dbs:\n  - path: {db}\n    monitor-interval: 250ms\n    replica:\n      type: file\n      \
         path: {replica}\n      sync-interval: 250ms\n",
        sock = dir.join("ls.sock").display(),
        db = dir.join("live.db").display(),
        replica = replica.display(),
    );
    std::fs::write(&path, text).expect("write litestream.yml");
    path
}

fn replication(addr: SocketAddr) -> Value {
    let r = common::get(addr, "/api/v1/health/detailed");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["replication"].clone()
}

fn verdict(dir: &Path) -> Value {
    let text = std::fs::read(dir.join("replica-drill.json")).expect("replica-drill.json");
    serde_json::from_slice(&text).expect("JSON")
}

#[test]
fn the_drill_restores_the_real_replica_compares_rows_and_reports_in_health() {
    let test = "the_drill_restores_the_real_replica_compares_rows_and_reports_in_health";
    let Some(ls) = litestream() else {
        common::skip_unless_ci(test, "no Litestream in the replication venv", INSTALL);
        return;
    };
    let dir = TempDir::new();
    let config = yml(&dir.0, &dir.0.join("replica"));
    let ports = common::free_ports::<2>();
    let vars = vars(&dir.0, &ls, &config, ports);
    run(&dir.0, &vars, &["migrate"], 0);

    let _litestream = ChildGuard(
        Command::new(&ls)
            .args(["replicate", "-config"])
            .arg(&config)
            .env_remove("AWS_CA_BUNDLE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start litestream"),
    );
    let _server = ChildGuard(
        command(&dir.0, &vars, &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server"),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let up = wait_until(Duration::from_secs(20), || {
        common::Call::new(addr, "GET", "/api/v1/ready")
            .timeout(Duration::from_secs(1))
            .try_send()
            .is_ok_and(|r| r.status == 200)
    });
    assert!(up, "the server did not come up");
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(20), || {
        last = replication(addr);
        last["status"] == "ok"
    });
    assert!(ok, "replication never ok with the real Litestream: {last}");
    assert!(last["drill"].is_null(), "{last}");

    for i in 0..3 {
        register_user(addr, &format!("drill{i}@example.com"), "Drill User");
    }
    // Two uploads at 250 ms, with room for a loaded machine.
    std::thread::sleep(Duration::from_secs(2));

    run(&dir.0, &vars, &["replica-drill"], 0);
    let v = verdict(&dir.0);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["at"].as_str().is_some_and(|a| a.ends_with('Z')), "{v}");
    let shown = replication(addr)["drill"].clone();
    assert_eq!(shown, v, "health shows the file");
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".replica-drill"))
        .collect();
    assert!(leftovers.is_empty(), "temporary copy left: {leftovers:?}");

    // A replica with nothing in it: the drill fails, says why, and health shows it.
    let mut empty = vars.clone();
    let other = yml(&dir.0, &dir.0.join("empty-replica"));
    empty.retain(|(k, _)| k != "LITESTREAM_CONFIG");
    empty.push(("LITESTREAM_CONFIG".into(), other.display().to_string()));
    run(&dir.0, &empty, &["replica-drill"], 1);
    let v = verdict(&dir.0);
    assert_eq!(v["ok"], false, "{v}");
    assert!(!v["detail"].as_str().unwrap_or("").is_empty(), "{v}");
    assert_eq!(replication(addr)["drill"], v);
}
