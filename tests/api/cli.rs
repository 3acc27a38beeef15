//! Black-box tests of the command line: the built `wealthcoach` binary run as a child process
//! with its settings in the environment, its own temporary folder and ports the OS picked.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{TempDir, wait_until};
use rusqlite::{Connection, OpenFlags};

const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");
/// 40 characters, not a published default.
const STRONG_SECRET: &str = "k7Qm2vX9pL4rT8wZ1nB6cF3hJ5dS0gY2aE7uR9iO";
/// The longest any single command may take before the test gives up on it.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The status of `GET path`, or `None` if nothing answered properly (not listening yet, reset).
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(3))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // The status line is all we need; stop as soon as it is in.
    while !raw.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let line = text.lines().next()?;
    if !line.starts_with("HTTP/1.") {
        return None;
    }
    line.split(' ').nth(1)?.parse().ok()
}

/// A child process that is killed (and reaped) when the test lets go of it, pass or fail.
struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits at most `limit` for the child to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(limit, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }

    /// Sends SIGTERM and waits at most `limit` for the exit.
    fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        self.wait_exit(limit)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a finished one-shot command left behind.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The stderr lines that mention `word`.
    fn stderr_lines_naming(&self, word: &str) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains(word)).collect()
    }
}

/// A running `serve`: its HTTP address and the file its output goes to.
struct Server {
    guard: ChildGuard,
    http: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn status(&self, path: &str) -> Option<u16> {
        http_status(self.http, path)
    }

    /// Waits at most `limit` for `path` to answer 200; fails with the server's log if not.
    fn expect_ok(&mut self, path: &str, limit: Duration) {
        let up = wait_until(limit, || self.status(path) == Some(200));
        if !up {
            let exited = self.guard.child.try_wait().ok().flatten();
            panic!(
                "{path} did not answer 200 within {limit:?} (exited: {exited:?}); log:\n{}",
                self.log_text()
            );
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code, which must come within a few seconds.
    fn stop(mut self) -> i32 {
        let status = self.guard.terminate(Duration::from_secs(10));
        let status = status
            .unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM; log:\n{}", self.log_text()));
        status
            .code()
            .expect("exited with a code, not killed by a signal")
    }
}

/// One test's world: a temporary folder holding the database, and the settings to pass.
struct Setup {
    dir: TempDir,
    db: PathBuf,
    vars: Vec<(String, String)>,
    runs: usize,
}

impl Setup {
    /// Only the database and the ports: everything else at its (development) default.
    fn bare() -> Setup {
        let dir = TempDir::new();
        let db = dir.0.join("x.db");
        let mut s = Setup {
            dir,
            db,
            vars: Vec::new(),
            runs: 0,
        };
        let url = s.db.to_str().expect("utf-8 temp path").to_string();
        s.set("DATABASE_URL", &url);
        s.new_ports();
        s
    }

    /// The usual test settings.
    fn test() -> Setup {
        let mut s = Setup::bare();
        s.set("ENVIRONMENT", "test")
            .set("JWT_SECRET_KEY", STRONG_SECRET)
            .set("HOST", "127.0.0.1")
            .set("LOG_LEVEL", "warning")
            .set("SHUTDOWN_TIMEOUT_SECONDS", "3");
        s
    }

    fn set(&mut self, key: &str, value: &str) -> &mut Setup {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_string(), value.to_string()));
        self
    }

    fn unset(&mut self, key: &str) -> &mut Setup {
        self.vars.retain(|(k, _)| k != key);
        self
    }

    /// Fresh PORT and WS_PORT, e.g. for a second server beside the first.
    fn new_ports(&mut self) -> &mut Setup {
        let [http, ws] = common::free_ports();
        self.set("PORT", &http.to_string())
            .set("WS_PORT", &ws.to_string())
    }

    fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn http_addr(&self) -> SocketAddr {
        let port = self.var("PORT").expect("PORT set");
        SocketAddr::from(([127, 0, 0, 1], port.parse().expect("numeric PORT")))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// The binary with exactly these settings (plus PATH), run inside the temporary folder so
    /// no stray `.env` is read.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir.0)
            .stdin(Stdio::null());
        c
    }

    /// Runs a command that is expected to finish, collecting its output (bounded in time).
    fn run(&self, args: &[&str]) -> Outcome {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wealthcoach");
        let mut guard = ChildGuard { child };
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_string(&mut text);
                }
                text
            })
        };
        let out = drain(guard.child.stdout.take().map(|p| Box::new(p) as _));
        let err = drain(guard.child.stderr.take().map(|p| Box::new(p) as _));
        let status = guard.wait_exit(COMMAND_LIMIT);
        assert!(
            status.is_some(),
            "`wealthcoach {}` did not finish within {COMMAND_LIMIT:?}",
            args.join(" ")
        );
        drop(guard);
        Outcome {
            code: status.and_then(|s| s.code()),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }

    /// Starts `serve` in the background, its output going to a log file in the folder.
    fn spawn_server(&mut self) -> Server {
        self.runs += 1;
        let log = self.path(&format!("serve-{}.log", self.runs));
        let file = std::fs::File::create(&log).expect("create log file");
        let child = self
            .command(&["serve"])
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .expect("spawn wealthcoach serve");
        Server {
            guard: ChildGuard { child },
            http: self.http_addr(),
            log,
        }
    }

    /// `serve`, waited on until `/api/v1/ready` answers 200.
    fn start_ready(&mut self) -> Server {
        let mut s = self.spawn_server();
        s.expect_ok("/api/v1/ready", Duration::from_secs(10));
        s
    }

    /// Names in the folder that start with `prefix`.
    fn files_starting_with(&self, prefix: &str) -> Vec<String> {
        std::fs::read_dir(&self.dir.0)
            .expect("read temp dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
    }
}

fn open_read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// The one value `sql` selects from the database at `path`, read-only.
fn query_one<T: rusqlite::types::FromSql>(path: &Path, sql: &str) -> T {
    open_read_only(path)
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql} on {}: {e}", path.display()))
}

fn user_count(path: &Path) -> u64 {
    query_one::<i64>(path, "SELECT count(*) FROM users") as u64
}

fn integrity(path: &Path) -> String {
    query_one(path, "PRAGMA integrity_check")
}

fn migration_count(path: &Path) -> u64 {
    query_one::<i64>(path, "SELECT count(*) FROM schema_migrations") as u64
}

/// Inserts `n` users through a connection of our own, starting at number `from`.
fn insert_users(conn: &Connection, from: u64, n: u64) {
    for i in from..from + n {
        conn.execute(
            "INSERT INTO users (id, mobile_number, password_hash, full_name) \
             VALUES (?1, ?2, 'not-a-hash', 'Load Test')",
            (
                format!("user-{i}"),
                format!("+91{:010}", 7_000_000_000u64 + i),
            ),
        )
        .expect("insert a user");
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    crate::internals::random::fill(&mut v);
    v
}

/// A migrated database at `setup.db` with `users` rows, each padded with about `pad` bytes,
/// every page in the main file (no WAL).
fn make_database(setup: &Setup, users: u64, pad: i64) {
    let m = setup.run(&["migrate"]);
    assert_eq!(m.code, Some(0), "{m:?}");
    let mut conn = Connection::open(&setup.db).expect("open the migrated database");
    let tx = conn.transaction().expect("begin");
    insert_users(&tx, 0, users);
    tx.execute(
        "UPDATE users SET password_hash = substr(hex(zeroblob(?1)), 1, ?1)",
        [pad.max(1)],
    )
    .expect("pad rows");
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    drop(conn);
}

/// `wealthcoach backup <folder>/b.db`, which must succeed; returns the backup's path.
fn backup_here(s: &Setup) -> PathBuf {
    let path = s.path("b.db");
    let out = s.run(&["backup", path.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("integrity ok"), "{out:?}");
    path
}

// --- 1. the command line itself -----------------------------------------------------------

#[test]
fn help_lists_every_command_and_an_unknown_command_exits_2() {
    let s = Setup::test();
    let help = s.run(&["--help"]);
    assert_eq!(help.code, Some(0), "{help:?}");
    for cmd in ["serve", "migrate", "backup", "restore", "check-config"] {
        assert!(
            help.stdout.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help does not list {cmd}:\n{}",
            help.stdout
        );
    }

    let bad = s.run(&["frobnicate"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("unknown command"), "{bad:?}");
    assert!(bad.stderr.contains("frobnicate"), "{bad:?}");

    // backup and restore need their file argument.
    for cmd in ["backup", "restore"] {
        let r = s.run(&[cmd]);
        assert_eq!(r.code, Some(2), "{cmd} without a file: {r:?}");
        assert!(r.stderr.contains("usage"), "{r:?}");
    }
    assert!(
        !s.db.exists(),
        "help and usage errors must not create a database"
    );
}

// --- 2. production refuses weak settings --------------------------------------------------

/// One setting changed: set to a value, or removed with `None`.
type Change<'a> = (&'a str, Option<&'a str>);

/// Runs `args` in production with `change` made to a config that is otherwise good (its
/// secret 40 random characters).
fn production(change: Option<Change>, args: &[&str]) -> (Setup, Outcome) {
    let mut s = Setup::test();
    s.set("ENVIRONMENT", "production")
        // 16 distinct characters for sure (production wants them), then 24 random ones.
        .set(
            "JWT_SECRET_KEY",
            &format!("0123456789abcdef{}", crate::internals::random::hex(12)),
        )
        .set("SMS_PROVIDER", "webhook")
        .set("SMS_WEBHOOK_URL", "http://127.0.0.1:9/x");
    match change {
        Some((k, Some(v))) => s.set(k, v),
        Some((k, None)) => s.unset(k),
        None => &mut s,
    };
    let out = s.run(args);
    (s, out)
}

#[test]
fn production_refuses_weak_settings_naming_each() {
    let repetitive = "a".repeat(32);
    let weak: [Change; 4] = [
        ("JWT_SECRET_KEY", Some("short")),
        // Long enough, but 1 distinct character of the 16 required.
        ("JWT_SECRET_KEY", Some(&repetitive)),
        ("SMS_PROVIDER", None),
        ("DEBUG", Some("true")),
    ];
    for change in weak {
        let named = change.0;
        for cmd in ["check-config", "serve"] {
            let (s, out) = production(Some(change), &[cmd]);
            assert_eq!(out.code, Some(2), "{cmd} with {change:?}: {out:?}");
            assert!(
                out.stderr_lines_naming(named)
                    .iter()
                    .any(|l| l.starts_with(&format!("configuration error: {named}"))),
                "{cmd} with {change:?} does not name {named}: {out:?}"
            );
            // Only the one bad setting is reported: the rest of the config is good.
            assert_eq!(
                out.stderr_lines_naming("configuration error").len(),
                1,
                "{out:?}"
            );
            // ("short" itself is an English word in the message, so only the real one.)
            let secret = s.var("JWT_SECRET_KEY").expect("secret set");
            assert!(
                secret.len() < 32 || !out.stderr.contains(secret),
                "secret leaked: {out:?}"
            );
            assert!(
                !s.db.exists(),
                "{cmd} must not touch the database when it refuses"
            );
        }
    }
}

#[test]
fn a_good_production_config_passes_check_config_without_printing_the_secret() {
    let (s, out) = production(None, &["check-config"]);
    let secret = s.var("JWT_SECRET_KEY").expect("secret set");
    assert_eq!(secret.len(), 40);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("configuration ok"), "{out:?}");
    for line in [
        "ENVIRONMENT=production",
        "JWT_SECRET_KEY=set",
        "SMS_PROVIDER=webhook",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.trim() == line),
            "missing {line}: {out:?}"
        );
    }
    let db_line = format!("DATABASE={}", s.db.display());
    assert!(out.stdout.lines().any(|l| l.trim() == db_line), "{out:?}");
    assert!(!out.stdout.contains(secret), "secret in stdout");
    assert!(!out.stderr.contains(secret), "secret in stderr");
    assert!(!s.db.exists(), "check-config must not create the database");
}

// --- 3. development defaults --------------------------------------------------------------

#[test]
fn serve_on_development_defaults_answers_quickly_and_keeps_its_generated_secret() {
    let mut s = Setup::bare();
    let spawned = Instant::now();
    let mut server = s.spawn_server();
    server.expect_ok("/health", Duration::from_secs(2));
    let took = spawned.elapsed();
    assert!(took <= Duration::from_secs(2), "/health took {took:?}");

    let secret_path = s.path(".jwt_secret");
    let meta = std::fs::metadata(&secret_path).expect("the generated secret file exists");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the secret file must be private"
    );
    let first = std::fs::read_to_string(&secret_path).expect("read secret");
    assert!(
        first.trim().len() >= 32,
        "secret too short: {}",
        first.len()
    );
    assert_eq!(server.stop(), 0);

    s.new_ports();
    let mut again = s.spawn_server();
    again.expect_ok("/health", Duration::from_secs(5));
    let second = std::fs::read_to_string(&secret_path).expect("read secret again");
    assert_eq!(first, second, "a restart must reuse the development secret");
    assert_eq!(
        std::fs::metadata(&secret_path)
            .expect("secret file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(again.stop(), 0);
}

// --- 4. signals and the single-server lock ------------------------------------------------

#[test]
fn sigterm_exits_0_and_a_second_server_on_the_same_database_is_refused() {
    let mut s = Setup::test();
    let mut first = s.start_ready();

    s.new_ports();
    let second = s.run(&["serve"]);
    assert_ne!(second.code, Some(0), "{second:?}");
    assert!(second.code.is_some(), "{second:?}");
    assert!(
        second.stderr.contains("in use by a running server"),
        "{second:?}"
    );
    // The refused server did not disturb the first one.
    first.expect_ok("/api/v1/ready", Duration::from_secs(2));

    let started = Instant::now();
    assert_eq!(first.stop(), 0);
    assert!(started.elapsed() < Duration::from_secs(5), "slow shutdown");

    // With the first one gone, the lock is free again.
    let third = s.start_ready();
    assert_eq!(third.status("/health"), Some(200));
    assert_eq!(third.stop(), 0);
}

// --- 5. backup while writing, then restore ------------------------------------------------

/// Raises the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Writes users one autocommit insert at a time until told to stop; returns the count.
/// Numbers start at `from` so they never collide with rows already there.
fn spawn_writer(
    db: PathBuf,
    from: u64,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let conn = Connection::open(&db).expect("writer opens the database");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        // Commits without an fsync each (as the server makes them), so they come quickly, and
        // no checkpoints from this side: those pause the writes and let a copy slip through.
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")
            .expect("writer pragmas");
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            insert_users(&conn, from + n, 1);
            n += 1;
            committed.store(n, Ordering::SeqCst);
        }
        n
    })
}

#[test]
fn backup_during_writes_is_consistent_and_restore_puts_it_back() {
    let mut s = Setup::test();
    // Big enough (20 MB) that the copy takes a while: SQLite restarts a backup made in steps
    // whenever another connection commits between two of them, and under steady writes such a
    // backup of a large database never finished. It must.
    const BASE: u64 = 10_000;
    make_database(&s, BASE, 2_000);
    let pages: i64 = query_one(&s.db, "PRAGMA page_count");
    assert!(pages > 4_000, "only {pages} pages");
    let server = s.start_ready();

    let stop = Arc::new(AtomicBool::new(false));
    // Should an assertion fail, the writer still stops.
    let _stop_writer = StopOnDrop(stop.clone());
    let committed = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(s.db.clone(), BASE, stop.clone(), committed.clone());
    let writing = wait_until(Duration::from_secs(10), || {
        committed.load(Ordering::SeqCst) >= 200
    });
    assert!(
        writing,
        "the writer committed only {committed:?} rows in 10 s"
    );

    let backup = s.path("b.db");
    let before_backup = committed.load(Ordering::SeqCst);
    let out = s.run(&["backup", backup.to_str().expect("utf-8")]);
    let after_backup = committed.load(Ordering::SeqCst);
    // Keep writing a little past the backup so the live database moves on without it.
    let target = after_backup + 100;
    wait_until(Duration::from_secs(10), || {
        committed.load(Ordering::SeqCst) >= target
    });
    stop.store(true, Ordering::Relaxed);
    let total = BASE + writer.join().expect("writer thread");

    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("integrity ok"), "{out:?}");
    assert_eq!(integrity(&backup), "ok");
    let in_backup = user_count(&backup);
    assert!(
        (BASE + before_backup..=BASE + after_backup).contains(&in_backup),
        "backup has {} new rows; {before_backup} were committed before it started \
         and {after_backup} when it finished",
        in_backup.saturating_sub(BASE)
    );
    assert!(in_backup < total, "{in_backup} of {total}");
    assert_eq!(
        user_count(&s.db),
        total,
        "every committed insert is in the live db"
    );
    assert!(
        s.files_starting_with("b.db.tmp").is_empty(),
        "the backup left its temporary file behind"
    );

    assert_eq!(server.stop(), 0);

    let t0 = unix_now();
    let out = s.run(&["restore", backup.to_str().expect("utf-8")]);
    let t1 = unix_now();
    assert_eq!(out.code, Some(0), "{out:?}");
    let kept = s.files_starting_with("x.db.pre-restore-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let stamp: u64 = kept[0]["x.db.pre-restore-".len()..]
        .parse()
        .expect("unix time suffix");
    assert!((t0..=t1).contains(&stamp), "{stamp} not in {t0}..={t1}");
    assert!(out.stdout.contains(&kept[0]), "{out:?}");
    let kept = s.path(&kept[0]);
    assert_eq!(user_count(&kept), total, "the kept database lost rows");
    assert_eq!(user_count(&s.db), in_backup, "restored row count");
    assert_eq!(integrity(&s.db), "ok");

    s.new_ports();
    let restored = s.start_ready();
    assert_eq!(restored.status("/api/v1/ready"), Some(200));
    assert_eq!(restored.stop(), 0);
    assert_eq!(user_count(&s.db), in_backup);
}

// --- 6. restore refuses -------------------------------------------------------------------

/// `args` must fail with exit code 1 and `words` in the message, keeping nothing aside and,
/// given `original`, leaving the database byte for byte as it was.
fn refused(s: &Setup, args: &[&str], words: &str, original: Option<&[u8]>) -> Outcome {
    let out = s.run(args);
    assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
    assert!(out.stderr.starts_with("error: "), "{args:?}: {out:?}");
    assert!(out.stderr.contains(words), "{args:?}: {out:?}");
    if let Some(original) = original {
        assert!(read(&s.db) == original, "{args:?} changed the database");
    }
    assert!(
        s.files_starting_with("x.db.pre-restore-").is_empty(),
        "{args:?} moved the database aside"
    );
    out
}

#[test]
fn restore_refuses_a_damaged_file_and_leaves_the_database_alone() {
    let s = Setup::test();
    make_database(&s, 25, 10);
    let original = read(&s.db);

    let garbage = s.path("garbage.db");
    std::fs::write(&garbage, random_bytes(64 * 1024)).expect("write garbage");
    let empty = s.path("empty.db");
    std::fs::write(&empty, b"").expect("write empty");
    let mut half = read(&s.db);
    half.truncate(half.len() / 2);
    let truncated = s.path("truncated.db");
    std::fs::write(&truncated, &half).expect("write truncated");

    for bad in [&garbage, &empty, &truncated] {
        // The message names the refused file.
        let bad = bad.to_str().expect("utf-8");
        refused(&s, &["restore", bad], bad, Some(&original));
    }
    assert_eq!(user_count(&s.db), 25);
}

#[test]
fn restore_refuses_while_the_server_runs() {
    let mut s = Setup::test();
    make_database(&s, 10, 10);
    let backup = backup_here(&s);

    let mut server = s.start_ready();
    let backup = backup.to_str().expect("utf-8");
    refused(&s, &["restore", backup], "stop the server", None);
    server.expect_ok("/api/v1/ready", Duration::from_secs(2));
    assert_eq!(server.stop(), 0);
    assert_eq!(user_count(&s.db), 10);
}

#[test]
fn backup_and_restore_refuse_the_database_itself() {
    let s = Setup::test();
    make_database(&s, 7, 10);
    let original = read(&s.db);
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&s.db).expect("db"));
    let before = inode();

    // The same file under other spellings (relative to the working folder, with `..`), and
    // the files SQLite keeps beside it.
    let dotted = s
        .dir
        .0
        .join("..")
        .join(s.dir.0.file_name().expect("name"))
        .join("x.db");
    let dotted = dotted.to_str().expect("utf-8");
    let itself = "is the database itself";
    for dest in ["x.db", "./x.db", dotted, "x.db-wal", "x.db.lock"] {
        refused(&s, &["backup", dest], itself, Some(&original));
        assert_eq!(inode(), before, "backup {dest} replaced the database file");
        assert!(!s.path("x.db-wal").exists());
    }
    for src in ["x.db", "./x.db", dotted] {
        refused(&s, &["restore", src], itself, Some(&original));
    }
    assert_eq!(user_count(&s.db), 7);
}

#[test]
fn back_to_back_restores_keep_every_previous_database() {
    let s = Setup::test();
    make_database(&s, 5, 10);
    let backup = backup_here(&s);
    let backup = backup.to_str().expect("utf-8");
    insert_users(&Connection::open(&s.db).expect("open"), 100, 3);

    // Restores a second apart get different names anyway; those within one second must too.
    for _ in 0..2 {
        let out = s.run(&["restore", backup]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let mut kept = s.files_starting_with("x.db.pre-restore-");
    kept.retain(|n| !n.ends_with("-wal") && !n.ends_with("-shm"));
    let mut counts: Vec<u64> = kept.iter().map(|n| user_count(&s.path(n))).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        vec![5, 8],
        "the database from before the first restore must survive the second: {kept:?}"
    );
    assert_eq!(user_count(&s.db), 5);
}

/// The inbox is in the backup: a notification deleted after it comes back with the restore.
#[test]
fn a_notification_survives_backup_and_restore() {
    let s = Setup::test();
    make_database(&s, 1, 10);
    let row = "SELECT id || ' ' || user_id || ' ' || type || ' ' || payload || ' ' || \
               dedupe_key || ' ' || created_at || ' ' || ifnull(read_at, '-') FROM notifications";
    Connection::open(&s.db)
        .expect("open")
        .execute(
            "INSERT INTO notifications (user_id, type, payload, dedupe_key, created_at)
             VALUES ('user-0', 'budget_alert', '{\"actual\":120.5}', 'k', '2026-01-02T03:04:05Z')",
            [],
        )
        .expect("insert a notification");
    let stored: String = query_one(&s.db, row);
    let backup = backup_here(&s);
    assert_eq!(query_one::<String>(&backup, row), stored);
    Connection::open(&s.db)
        .expect("open")
        .execute("DELETE FROM notifications", [])
        .expect("delete");

    let out = s.run(&["restore", backup.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(query_one::<String>(&s.db, row), stored);
    assert_eq!(
        stored,
        "1 user-0 budget_alert {\"actual\":120.5} k 2026-01-02T03:04:05Z -"
    );
}

// --- 7. damaged database at start-up ------------------------------------------------------

/// `serve` on whatever is at the database path: must refuse, leaving the file as it was.
fn serve_refuses_and_keeps(s: &Setup, expected_words: &str) -> Outcome {
    let before = read(&s.db);
    let out = s.run(&["serve"]);
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "serve must refuse: {out:?}"
    );
    assert!(out.stderr.contains(expected_words), "{out:?}");
    assert_eq!(read(&s.db), before, "the damaged file was modified");
    assert!(
        http_status(s.http_addr(), "/health").is_none(),
        "nothing may be left listening"
    );
    out
}

#[test]
fn serve_refuses_a_file_that_is_not_sqlite_and_leaves_it_untouched() {
    let s = Setup::test();
    std::fs::write(&s.db, random_bytes(32 * 1024)).expect("write random bytes");
    let out = serve_refuses_and_keeps(&s, "is not a SQLite database");
    assert!(
        out.stderr.contains(s.db.to_str().expect("utf-8")),
        "{out:?}"
    );
    // migrate is just as careful.
    let m = s.run(&["migrate"]);
    assert_eq!(m.code, Some(1), "{m:?}");
    assert!(m.stderr.contains("is not a SQLite database"), "{m:?}");
}

#[test]
fn serve_refuses_a_truncated_database_and_leaves_it_untouched() {
    let s = Setup::test();
    make_database(&s, 300, 100);
    // The live file is in WAL mode; a backup is a rollback-journal file, which the server would
    // switch to WAL (a header write) if it opened the file before checking it.
    let backup = backup_here(&s);
    for whole in [read(&s.db), read(&backup)] {
        // Whatever the last run left beside the file (an empty WAL) goes too.
        let _ = std::fs::remove_file(s.path("x.db-wal"));
        let _ = std::fs::remove_file(s.path("x.db-shm"));
        let half = &whole[..whole.len() / 2];
        std::fs::write(&s.db, half).expect("write the truncated copy");
        let out = serve_refuses_and_keeps(&s, &s.db.display().to_string());
        assert!(
            ["malformed", "damaged", "integrity"]
                .iter()
                .any(|w| out.stderr.contains(w)),
            "the message must say the database is damaged: {out:?}"
        );
        assert_eq!(read(&s.db), half);
    }
}

#[test]
fn migrate_creates_a_fresh_database_and_is_idempotent() {
    let mut s = Setup::test();
    let nested = s.dir.0.join("deep").join("er").join("fresh.db");
    s.set("DATABASE_URL", nested.to_str().expect("utf-8"));
    let first = s.run(&["migrate"]);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(first.stdout.contains("up to date"), "{first:?}");
    assert!(
        nested.exists(),
        "migrate did not create {}",
        nested.display()
    );
    let applied = migration_count(&nested);
    assert!(applied >= 1, "no migrations recorded");
    assert_eq!(integrity(&nested), "ok");
    // The file stands on its own: a plain copy of it (without the WAL) is the whole database.
    let copy = s.path("copy.db");
    std::fs::copy(&nested, &copy).expect("copy the database file");
    assert_eq!(
        migration_count(&copy),
        applied,
        "migrate left its work in the WAL"
    );

    let second = s.run(&["migrate"]);
    assert_eq!(second.code, Some(0), "{second:?}");
    assert_eq!(
        migration_count(&nested),
        applied,
        "migrations applied twice"
    );
    assert_eq!(user_count(&nested), 0);
}

// --- sync: a restore renews the epoch ---------------------------------------------------

/// `GET /api/v1/sync` on a child server: (status, body).
fn sync_call(addr: SocketAddr, token: &str, cursor: Option<&str>) -> (u16, serde_json::Value) {
    let path = match cursor {
        Some(c) => format!("/api/v1/sync?cursor={c}"),
        None => "/api/v1/sync".to_string(),
    };
    let r = common::get_auth(addr, &path, token);
    (r.status, r.json())
}

#[test]
fn a_cursor_from_before_a_restore_is_reset_and_a_fresh_pull_is_complete() {
    let mut s = Setup::test();
    let server = s.start_ready();
    let u = common::register_user(s.http_addr(), "restore-sync@example.com", "Sync User");
    let prefs = serde_json::json!({"theme": "dark"});
    let r = common::Call::new(s.http_addr(), "PATCH", "/api/v1/users/me/preferences")
        .auth(&u.token)
        .json(&prefs)
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    let backup = s.path("sync-b.db");
    let out = s.run(&["backup", backup.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let (status, page) = sync_call(s.http_addr(), &u.token, None);
    assert_eq!(status, 200);
    let cursor = page["cursor"].as_str().expect("cursor").to_string();
    assert_eq!(server.stop(), 0);

    let out = s.run(&["restore", backup.to_str().expect("utf-8")]);
    assert_eq!(out.code, Some(0), "{out:?}");
    s.new_ports();
    let restored = s.start_ready();
    let (status, body) = sync_call(s.http_addr(), &u.token, Some(&cursor));
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["code"], "cursor_reset");
    let (status, fresh) = sync_call(s.http_addr(), &u.token, None);
    assert_eq!(status, 200);
    assert_eq!(fresh["changes"]["preferences"]["theme"], "dark", "{fresh}");
    assert_eq!(fresh["has_more"], false);
    assert_eq!(restored.stop(), 0);
}
