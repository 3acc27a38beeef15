//! Issue 12, the server's side of replication, against a FAKE Litestream: a Unix-socket HTTP
//! server answering `GET /list` as Litestream 0.5.17's control socket does (server.go
//! `handleList`; the exact bytes seen from the real binary: `{"databases":[{"path":"/tmp/x.db",
//! "status":"replicating","last_sync_at":"2026-12-04T16:59:57.13941986Z"}]}` + newline, with
//! `Content-Type: application/json`, `Date` and `Content-Length`). Litestream is the outside
//! world here; the real one is tests/replication.rs's.

use crate::common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{TempDir, TestApp, get, spawn_app_with, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");

/// What the fake says its last successful upload was.
#[derive(Clone)]
enum LastSync {
    /// Just now, at every request (a healthy Litestream).
    Fresh,
    /// This many seconds ago.
    Ago(i64),
    /// No upload yet: the field is left out, as Go's `omitempty` does.
    Never,
}

/// A fake Litestream control socket; stops listening (and removes the socket) when dropped.
struct FakeLitestream {
    socket: PathBuf,
    last_sync: Arc<Mutex<LastSync>>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl FakeLitestream {
    fn start(socket: &Path, db: &Path) -> FakeLitestream {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the fake socket");
        let last_sync = Arc::new(Mutex::new(LastSync::Fresh));
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (ls, st, sv) = (last_sync.clone(), stop.clone(), served.clone());
        let db = db.display().to_string();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mode = ls.lock().expect("lock").clone();
                if answer(&mut conn, &db, &mode) {
                    sv.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        FakeLitestream {
            socket: socket.to_path_buf(),
            last_sync,
            stop,
            served,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: LastSync) {
        *self.last_sync.lock().expect("lock") = mode;
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for FakeLitestream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// One request, answered like Go's net/http + `writeJSON` would; says whether it was /list.
fn answer(conn: &mut UnixStream, db: &str, mode: &LastSync) -> bool {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let is_list = head.starts_with("GET /list ");
    let body = if is_list {
        let now = jiff::Timestamp::now();
        let at = match mode {
            LastSync::Fresh => Some(now),
            LastSync::Ago(s) => Some(now - jiff::SignedDuration::from_secs(*s)),
            LastSync::Never => None,
        };
        let mut entry = serde_json::json!({"path": db, "status": "replicating"});
        if let Some(at) = at {
            entry["last_sync_at"] = Value::from(at.to_string());
        }
        format!("{}\n", serde_json::json!({ "databases": [entry] }))
    } else {
        "404 page not found\n".to_string()
    };
    let status = if is_list { "200 OK" } else { "404 Not Found" };
    let kind = if is_list {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nDate: Fri, 04 Dec 2026 16:59:57 GMT\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes());
    is_list
}

/// Settings that turn replication on (the fake ignores the bucket; nothing leaves the machine).
fn replication_on(socket: &str) -> Vec<(&str, &str)> {
    vec![
        ("REPLICA_BUCKET", "test-bucket"),
        ("REPLICA_PATH", "vm1"),
        ("REPLICA_ENDPOINT", "http://127.0.0.1:9"),
        ("REPLICA_REGION", "us-east-1"),
        ("LITESTREAM_ACCESS_KEY_ID", "test"),
        ("LITESTREAM_SECRET_ACCESS_KEY", "test-secret-not-printed"),
        ("LITESTREAM_SOCKET", socket),
        ("REPLICA_POLL_SECONDS", "1"),
        ("REPLICA_LAG_SECONDS", "5"),
    ]
}

/// A folder for the socket that outlives the app's (the app picks its own temp folder).
fn socket_in(dir: &TempDir) -> String {
    dir.0.join("ls.sock").display().to_string()
}

fn replication(t: &TestApp) -> Value {
    let r = get(t.http, "/api/v1/health/detailed");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["replication"].clone()
}

fn metric(t: &TestApp, name: &str) -> String {
    let r = get(t.http, "/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn wait_status(t: &TestApp, want: &str) -> Value {
    let mut last = Value::Null;
    let seen = wait_until(Duration::from_secs(10), || {
        last = replication(t);
        last["status"] == want
    });
    assert!(seen, "status never became {want}: {last}");
    last
}

#[test]
fn replication_is_off_without_a_bucket_and_health_says_so() {
    let t = spawn_app_with(&[]);
    let r = replication(&t);
    assert_eq!(r["status"], "off", "{r}");
    assert!(r["last_sync_age_seconds"].is_null(), "{r}");
    assert!(r["drill"].is_null(), "{r}");
    assert!(r["wal_bytes"].is_u64(), "{r}");
    assert_eq!(metric(&t, "wealthcoach_replication_up"), "0");
    assert_eq!(
        metric(&t, "wealthcoach_replication_last_sync_age_seconds"),
        "NaN"
    );
    let wal: u64 = metric(&t, "wealthcoach_wal_bytes")
        .parse()
        .expect("integer");
    let file = std::fs::metadata(t.db_path().with_extension("db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, file);
    // Ready does not look at replication.
    assert_eq!(get(t.http, "/api/v1/ready").status, 200);
}

#[test]
fn status_follows_the_socket_ok_lagging_down_and_back() {
    let sockdir = TempDir::new();
    let sock = socket_in(&sockdir);
    let t = spawn_app_with(&replication_on(&sock));
    // Nothing listens yet: down, and /ready does not care.
    let r = wait_status(&t, "down");
    assert!(r["last_sync_age_seconds"].is_null(), "{r}");
    assert_eq!(get(t.http, "/api/v1/ready").status, 200);
    assert_eq!(metric(&t, "wealthcoach_replication_up"), "0");

    let fake = FakeLitestream::start(Path::new(&sock), &t.db_path());
    let r = wait_status(&t, "ok");
    let age = r["last_sync_age_seconds"].as_f64().expect("a number");
    assert!((0.0..3.0).contains(&age), "{r}");
    assert_eq!(metric(&t, "wealthcoach_replication_up"), "1");
    let m: f64 = metric(&t, "wealthcoach_replication_last_sync_age_seconds")
        .parse()
        .expect("a number");
    assert!((0.0..3.0).contains(&m), "{m}");
    assert!(fake.served() >= 1);

    // Uploads stopped 30 s ago: lagging, with the age.
    fake.set(LastSync::Ago(30));
    let r = wait_status(&t, "lagging");
    let age = r["last_sync_age_seconds"].as_f64().expect("a number");
    assert!((30.0..40.0).contains(&age), "{r}");
    assert_eq!(metric(&t, "wealthcoach_replication_up"), "0");

    // Answering but never uploaded: lagging, age unknown.
    fake.set(LastSync::Never);
    let r = wait_until(Duration::from_secs(10), || {
        replication(&t)["last_sync_age_seconds"].is_null()
    });
    assert!(r);
    assert_eq!(replication(&t)["status"], "lagging");

    // Litestream gone: down; back: ok.
    drop(fake);
    wait_status(&t, "down");
    let _fake = FakeLitestream::start(Path::new(&sock), &t.db_path());
    wait_status(&t, "ok");
}

#[test]
fn the_drill_verdict_file_shows_in_health_and_garbage_is_not_ok() {
    let t = spawn_app_with(&[]);
    let file = t.dir.0.join("replica-drill.json");
    std::fs::write(
        &file,
        r#"{"ok":true,"at":"2026-12-04T17:00:02Z","detail":"restored 15 tables"}"#,
    )
    .expect("write");
    let d = replication(&t)["drill"].clone();
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(d["at"], "2026-12-04T17:00:02Z");
    assert_eq!(d["detail"], "restored 15 tables");
    std::fs::write(&file, "{not json").expect("write");
    let d = replication(&t)["drill"].clone();
    assert_eq!(d["ok"], false, "{d}");
    assert!(
        d["detail"]
            .as_str()
            .expect("text")
            .starts_with("unreadable"),
        "{d}"
    );
    assert!(d["at"].is_string(), "{d}");
}

/// Bytes in the database's WAL file.
fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

#[test]
fn the_checkpoint_thread_leaves_the_wal_to_litestream_while_it_answers() {
    let sockdir = TempDir::new();
    let sock = socket_in(&sockdir);
    let t = spawn_app_with(&replication_on(&sock));
    let fake = FakeLitestream::start(Path::new(&sock), &t.db_path());
    wait_status(&t, "ok");
    // 24 MiB of pages, well past the 16 MiB at which the old thread truncated within 1 s.
    t.app()
        .db
        .write(|tx| {
            tx.execute_batch(
                "CREATE TABLE scratch (b BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6144)
                 INSERT INTO scratch SELECT randomblob(4000) FROM n;",
            )?;
            Ok(())
        })
        .expect("write");
    let grown = wal_len(&t.db_path());
    assert!(grown > 16 * 1024 * 1024, "WAL {grown} bytes");
    // Several checkpoint ticks and polls later the WAL is untouched (Litestream's to fold).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(wal_len(&t.db_path()), grown);
    let r = replication(&t);
    assert_eq!(r["wal_bytes"].as_u64(), Some(grown), "{r}");
    assert!(fake.served() >= 2);
    // Litestream gone for less than 5 minutes: still no truncation.
    drop(fake);
    wait_status(&t, "down");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(wal_len(&t.db_path()), grown);
}

/// The built binary with exactly these settings, in `dir` (so no stray .env is read).
fn run(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run wealthcoach")
}

/// The command's stdout, once it exited with `code` (else its output in the failure).
fn exited(out: &Output, code: i32) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn check_config_and_serve_name_each_missing_replication_setting() {
    let dir = TempDir::new();
    let db = dir.0.join("x.db").display().to_string();
    let base = [
        ("DATABASE_URL", db.as_str()),
        ("ENVIRONMENT", "test"),
        ("PORT", "0"),
        ("WS_PORT", "0"),
    ];
    let mut vars = base.to_vec();
    vars.push(("REPLICA_BUCKET", "b"));
    for args in [&["check-config"][..], &["serve"][..]] {
        let out = run(&dir.0, &vars, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for name in [
            "REPLICA_PATH",
            "LITESTREAM_ACCESS_KEY_ID",
            "LITESTREAM_SECRET_ACCESS_KEY",
        ] {
            assert!(
                err.lines()
                    .any(|l| l.starts_with(&format!("configuration error: {name}"))),
                "{args:?} does not name {name}: {err}"
            );
        }
    }
    assert!(
        !Path::new(&db).exists(),
        "serve must refuse before the database"
    );
    let sock = dir.0.join("ls.sock").display().to_string();
    let mut complete = base.to_vec();
    complete.extend(replication_on(&sock));
    let text = exited(&run(&dir.0, &complete, &["check-config"]), 0);
    assert!(text.contains("REPLICA_BUCKET=test-bucket"), "{text}");
    assert!(text.contains("LITESTREAM_SECRET_ACCESS_KEY=set"), "{text}");
    assert!(!text.contains("test-secret-not-printed"), "{text}");
}

#[test]
fn restore_is_refused_while_litestream_answers_and_clears_its_state_after() {
    let dir = TempDir::new();
    let db = dir.0.join("x.db");
    let db_url = db.display().to_string();
    let sock = dir.0.join("ls.sock").display().to_string();
    let mut vars = vec![("DATABASE_URL", db_url.as_str()), ("ENVIRONMENT", "test")];
    vars.extend(replication_on(&sock));
    exited(&run(&dir.0, &vars, &["migrate"]), 0);
    let backup = dir.0.join("copy.db");
    exited(
        &run(&dir.0, &vars, &["backup", backup.to_str().expect("utf-8")]),
        0,
    );
    let state = dir.0.join(".x.db-litestream");
    std::fs::create_dir_all(state.join("ltx/0")).expect("mkdir");
    std::fs::write(state.join("ltx/0/0000000000000001.ltx"), b"x").expect("write");
    let before = std::fs::read(&db).expect("read db");
    let listing = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    let fake = FakeLitestream::start(Path::new(&sock), &db);
    let files_before = listing(&dir.0);
    let out = run(&dir.0, &vars, &["restore", backup.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Litestream is running"), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(
        std::fs::read(&db).expect("read db"),
        before,
        "file untouched"
    );
    assert_eq!(listing(&dir.0), files_before, "nothing set aside or staged");
    assert!(state.exists(), "Litestream's state untouched while it runs");
    assert!(fake.served() >= 1);

    drop(fake);
    let text = exited(
        &run(&dir.0, &vars, &["restore", backup.to_str().expect("utf-8")]),
        0,
    );
    assert!(text.contains("previous database is kept"), "{text}");
    assert!(
        !state.exists(),
        "Litestream's state for the old file removed"
    );
    // The backup's content is in place; only the sync epoch is new (a restore resets every
    // client's cursor, API.md "Sync for offline clients").
    let dump = |p: &Path| -> (Vec<String>, String) {
        let c = rusqlite::Connection::open(p).expect("open");
        let mut stmt = c
            .prepare("SELECT id FROM allocation_types ORDER BY id")
            .expect("prepare");
        let ids = stmt
            .query_map([], |r| r.get(0))
            .expect("catalogue")
            .collect::<Result<Vec<String>, _>>()
            .expect("rows");
        let epoch = c
            .query_row("SELECT epoch FROM sync_meta", [], |r| r.get(0))
            .expect("epoch");
        (ids, epoch)
    };
    let (restored, backed_up) = (dump(&db), dump(&backup));
    assert_eq!(restored.0, backed_up.0, "the backup's rows");
    assert_eq!(restored.0.len(), 34, "the catalogue as backed up");
    assert_ne!(restored.1, backed_up.1, "a new sync epoch");
}

/// A database that `deploy/replica-restore` brought back from the replica gets a new sync
/// epoch at the next start (so every cursor from before the VM loss is 410 `cursor_reset`),
/// once: the marker the script leaves beside it is consumed.
#[test]
fn a_replica_restore_renews_the_sync_epoch_once() {
    let dir = TempDir::new();
    let db = dir.0.join("r.db");
    let db_url = db.display().to_string();
    let vars = [("DATABASE_URL", db_url.as_str()), ("ENVIRONMENT", "test")];
    let epoch = || -> String {
        rusqlite::Connection::open(&db)
            .expect("open")
            .query_row("SELECT epoch FROM sync_meta", [], |r| r.get(0))
            .expect("epoch")
    };
    exited(&run(&dir.0, &vars, &["migrate"]), 0);
    let first = epoch();
    exited(&run(&dir.0, &vars, &["migrate"]), 0);
    assert_eq!(epoch(), first, "an ordinary start keeps the epoch");

    let marker = dir.0.join("r.db.replica-restored");
    std::fs::write(&marker, b"").expect("marker");
    exited(&run(&dir.0, &vars, &["migrate"]), 0);
    let renewed = epoch();
    assert_ne!(renewed, first, "a new epoch after a replica restore");
    assert!(!marker.exists(), "the marker is consumed");
    exited(&run(&dir.0, &vars, &["migrate"]), 0);
    assert_eq!(epoch(), renewed, "renewed once, not at every start");
    let script = include_str!("../../deploy/replica-restore");
    assert!(
        script.contains(r#": >"$db.replica-restored""#),
        "replica-restore leaves the marker"
    );
}
