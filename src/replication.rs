//! Continuous replication is Litestream's job (a separate process, `REPLICA_BUCKET` set); this
//! module only watches it and checks its work:
//! - [`Monitor`]: a thread asks Litestream's control socket `GET /list` every
//!   `REPLICA_POLL_SECONDS` (HTTP over a Unix socket, 1 s timeouts) and keeps what it heard, for
//!   `/api/v1/health/detailed`, `/metrics` and the checkpoint thread (`db`), which must leave
//!   the WAL to Litestream while it answers.
//! - [`answers`]: is a Litestream running on this socket right now (for `restore`)?
//! - [`drill`]: `wealthcoach replica-drill`, a restore of the replica into a temporary file,
//!   compared with the live database, its verdict kept in `<db dir>/replica-drill.json`.
//!
//! How "last sync" is known: Litestream's `/list` answers
//! `{"databases":[{"path":…,"status":"replicating","last_sync_at":"<RFC 3339>"}]}`, where
//! `last_sync_at` is the last successful upload to the replica (absent before the first one);
//! its age is the replication lag as seen from here.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Config, ReplicationSettings};

/// Litestream's control socket gets this long to answer, per read and per write.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(1);
/// An answer larger than this is not Litestream's.
const MAX_ANSWER: usize = 1024 * 1024;
/// At most one WARN line per this while replication is not ok.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The drill's verdict, beside the database.
const DRILL_FILE: &str = "replica-drill.json";

/// One database in Litestream's `GET /list` (`DatabaseSummary` in its server.go).
#[derive(Deserialize, Debug)]
struct ListedDb {
    path: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    last_sync_at: Option<String>,
}

#[derive(Deserialize, Debug)]
struct ListAnswer {
    databases: Vec<ListedDb>,
}

/// `GET <path>` over the Unix socket: the body of a 200, or why there was none.
fn get(socket: &Path, path: &str) -> Result<Vec<u8>, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(SOCKET_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(SOCKET_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: litestream\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    // The whole answer within the timeout, not one timeout per trickled byte.
    let deadline = Instant::now() + SOCKET_TIMEOUT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no complete answer within 1 s".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
        if raw.len() > MAX_ANSWER {
            return Err("answer too large".into());
        }
    }
    http_body(&raw)
}

/// The body of a complete HTTP/1.1 answer that must be a 200 (plain or chunked).
fn http_body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP head")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .ok_or("not HTTP")?;
    if status != "200" {
        return Err(format!("status {status}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        dechunk(body)
    } else {
        Ok(body.to_vec())
    }
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("short chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("short chunk")?;
    }
}

/// Does a Litestream answer `GET /list` on `socket` right now?
pub(crate) fn answers(socket: &Path) -> bool {
    get(socket, "/list").is_ok()
}

/// Litestream's `last_sync_at` for our database: the entry whose path is ours, or the only
/// entry when the paths are spelt differently (a relative `DATABASE_URL`).
fn last_sync(body: &[u8], db: &Path) -> Result<Option<jiff::Timestamp>, String> {
    let list: ListAnswer =
        serde_json::from_slice(body).map_err(|e| format!("not Litestream's /list: {e}"))?;
    let ours = std::fs::canonicalize(db).ok();
    let same = |p: &str| {
        Path::new(p) == db
            || ours
                .as_ref()
                .is_some_and(|o| std::fs::canonicalize(p).ok().as_ref() == Some(o))
    };
    let entry = match list.databases.iter().find(|d| same(&d.path)) {
        Some(e) => e,
        None if list.databases.len() == 1 => &list.databases[0],
        None => return Err(format!("{} is not in Litestream's /list", db.display())),
    };
    if entry.status == "stopped" {
        return Err(format!("Litestream has stopped {}", entry.path));
    }
    match &entry.last_sync_at {
        None => Ok(None),
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map(Some)
            .map_err(|e| format!("last_sync_at {t:?}: {e}")),
    }
}

/// `ok`, `lagging`, `down` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Lagging,
    Down,
    Off,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Lagging => "lagging",
            Status::Down => "down",
            Status::Off => "off",
        }
    }
}

/// What the last poll heard.
#[derive(Default)]
struct Heard {
    /// `Err` = no usable answer (why); `None` = not polled yet.
    last: Option<Result<Option<jiff::Timestamp>, String>>,
    /// When the socket last answered.
    answered_at: Option<Instant>,
}

/// The replication state the server knows, shared by the poller, health and the checkpoint
/// thread.
pub(crate) struct Monitor {
    enabled: bool,
    socket: PathBuf,
    db: PathBuf,
    poll: Duration,
    lag: Duration,
    started: Instant,
    heard: Mutex<Heard>,
}

/// The `replication` object of `/api/v1/health/detailed`, also read by `/metrics`.
#[derive(Serialize, ToSchema, Debug, Clone)]
pub(crate) struct Report {
    /// `ok`, `lagging` (the last upload is older than `REPLICA_LAG_SECONDS`, or none yet),
    /// `down` (Litestream's socket did not answer the last poll) or `off` (no `REPLICA_BUCKET`).
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
    /// Seconds since Litestream's last successful upload; null when unknown or off.
    pub(crate) last_sync_age_seconds: Option<f64>,
    /// Size of the database's `-wal` file.
    pub(crate) wal_bytes: u64,
    /// The last `wealthcoach replica-drill`; null before the first.
    pub(crate) drill: Option<Drill>,
}

/// `replica-drill.json`: the last drill's verdict.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub(crate) struct Drill {
    pub(crate) ok: bool,
    pub(crate) at: String,
    pub(crate) detail: String,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn dir_of(db: &Path) -> PathBuf {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Bytes in `<db>-wal` (0 when there is none).
pub(crate) fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(with_suffix(db, "-wal")).map_or(0, |m| m.len())
}

/// The last drill's verdict: `None` before the first; a file that does not parse says so.
fn read_drill(db: &Path) -> Option<Drill> {
    let path = dir_of(db).join(DRILL_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(unreadable(&path, &e.to_string())),
    };
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| unreadable(&path, &e.to_string())))
}

fn unreadable(path: &Path, why: &str) -> Drill {
    let at = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map_or_else(String::new, |t| t.to_string());
    Drill {
        ok: false,
        at,
        detail: format!("unreadable {}: {why}", path.display()),
    }
}

impl Monitor {
    pub(crate) fn new(settings: &ReplicationSettings, db: &Path) -> Monitor {
        Monitor {
            enabled: settings.enabled(),
            socket: settings.socket.clone(),
            db: db.to_path_buf(),
            poll: settings.poll,
            lag: settings.lag,
            started: Instant::now(),
            heard: Mutex::new(Heard::default()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long the socket has not answered (since start if it never did); zero while it does.
    pub(crate) fn silent_for(&self) -> Duration {
        let h = self.heard();
        match (&h.last, h.answered_at) {
            (Some(Ok(_)), _) => Duration::ZERO,
            (_, Some(at)) => at.elapsed(),
            (_, None) => self.started.elapsed(),
        }
    }

    /// Asks the socket once and keeps the answer.
    pub(crate) fn poll_once(&self) {
        let heard = get(&self.socket, "/list").and_then(|body| last_sync(&body, &self.db));
        let mut h = self.heard();
        if heard.is_ok() {
            h.answered_at = Some(Instant::now());
        }
        h.last = Some(heard);
    }

    /// Status and age now (the age keeps growing between polls).
    fn status(&self) -> (Status, Option<f64>, Option<String>) {
        if !self.enabled {
            return (Status::Off, None, None);
        }
        let h = self.heard();
        match &h.last {
            None => (Status::Down, None, Some("not polled yet".into())),
            Some(Err(e)) => (Status::Down, None, Some(e.clone())),
            Some(Ok(None)) => (
                Status::Lagging,
                None,
                Some("Litestream has not uploaded anything yet".into()),
            ),
            Some(Ok(Some(at))) => {
                let age = jiff::Timestamp::now().duration_since(*at).as_secs_f64();
                let age = (age.max(0.0) * 1000.0).round() / 1000.0;
                if age > self.lag.as_secs_f64() {
                    (
                        Status::Lagging,
                        Some(age),
                        Some(format!("last upload {age:.1} s ago")),
                    )
                } else {
                    (Status::Ok, Some(age), None)
                }
            }
        }
    }

    pub(crate) fn report(&self) -> Report {
        let (status, age, _) = self.status();
        Report {
            status: status.as_str(),
            last_sync_age_seconds: age,
            wal_bytes: wal_bytes(&self.db),
            drill: read_drill(&self.db),
        }
    }
}

/// Starts the poller when replication is on; it ends when `stop` is set.
pub(crate) fn spawn(monitor: Arc<Monitor>, stop: Arc<AtomicBool>) {
    if !monitor.enabled {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("replication".into())
        .spawn(move || {
            let mut last_warn: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                monitor.poll_once();
                if let (status, _, Some(why)) = monitor.status()
                    && status != Status::Ok
                    && last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY)
                {
                    log::warn!(
                        "replication {}: {why} (Litestream socket {}, WAL {} bytes)",
                        status.as_str(),
                        monitor.socket.display(),
                        wal_bytes(&monitor.db)
                    );
                    last_warn = Some(Instant::now());
                }
                let next = Instant::now() + monitor.poll;
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the replication poller: {e}");
    }
}

/// Rows per table of ours (Litestream's `_litestream_*` and SQLite's own left out).
fn row_counts(path: &Path) -> Result<Vec<(String, i64)>, String> {
    use rusqlite::{Connection, OpenFlags};
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let err = |e: rusqlite::Error| format!("{}: {e}", path.display());
    c.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    // One read transaction: every count from the same moment.
    c.execute_batch("BEGIN").map_err(err)?;
    let names: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             AND name NOT LIKE '\\_litestream\\_%' ESCAPE '\\' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(err)?;
    let mut out = Vec::new();
    for name in names {
        let n: i64 = c
            .query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        out.push((name, n));
    }
    Ok(out)
}

/// The copy passes when it has every table of the live database and no table has fewer rows
/// live than in the copy (rows written after the restore point may be missing from the copy).
fn compare(copy: &[(String, i64)], live: &[(String, i64)]) -> Result<String, String> {
    let mut behind = 0i64;
    let mut rows = 0i64;
    for (table, n_live) in live {
        let Some((_, n_copy)) = copy.iter().find(|(t, _)| t == table) else {
            return Err(format!("table {table} is missing from the restored copy"));
        };
        if n_copy > n_live {
            return Err(format!(
                "table {table}: {n_copy} rows in the restored copy, only {n_live} live"
            ));
        }
        behind += n_live - n_copy;
        rows += n_copy;
    }
    Ok(format!(
        "restored {} tables, {rows} rows; live has {behind} more (written since)",
        live.len()
    ))
}

/// `litestream restore` of our database into `out`, with the replica settings in the child's
/// environment (litestream.yml reads them as `${VAR}`).
fn litestream_restore(r: &ReplicationSettings, db: &Path, out: &Path) -> Result<(), String> {
    let mut cmd = std::process::Command::new(&r.bin);
    cmd.arg("restore");
    if let Some(cfg) = &r.config_file {
        cmd.arg("-config").arg(cfg);
    }
    cmd.arg("-o")
        .arg(out)
        .args(["-integrity-check", "full"])
        .arg(db);
    let vars = [
        ("REPLICA_BUCKET", r.bucket.clone()),
        ("REPLICA_PATH", r.path.clone()),
        ("REPLICA_ENDPOINT", r.endpoint.clone()),
        ("REPLICA_REGION", r.region.clone()),
        (
            "LITESTREAM_ACCESS_KEY_ID",
            r.access_key_id.as_ref().map(|s| s.expose().to_string()),
        ),
        (
            "LITESTREAM_SECRET_ACCESS_KEY",
            r.secret_access_key.as_ref().map(|s| s.expose().to_string()),
        ),
        ("LITESTREAM_DB", Some(db.display().to_string())),
        ("LITESTREAM_SOCKET", Some(r.socket.display().to_string())),
    ];
    for (k, v) in vars {
        cmd.env(k, v.unwrap_or_default());
    }
    let done = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", r.bin.display()))?;
    if done.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&done.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!(
        "litestream restore failed ({}): {}",
        done.status,
        last.unwrap_or("no output")
    ))
}

fn drill_verdict(config: &Config, tmp: &Path) -> Result<String, String> {
    let r = &config.replication;
    if !r.enabled() {
        return Err("replication is off (REPLICA_BUCKET is empty)".into());
    }
    let db = &config.db.path;
    let started = Instant::now();
    litestream_restore(r, db, tmp)?;
    if !tmp.exists() {
        return Err("litestream restore wrote no file (is the replica empty?)".into());
    }
    let took = started.elapsed().as_secs_f64();
    let copy = row_counts(tmp)?;
    let live = row_counts(db)?;
    compare(&copy, &live).map(|d| format!("{d}; restore took {took:.2} s"))
}

/// `wealthcoach replica-drill`: restores the replica to a temporary file beside the database,
/// compares row counts with the live database, records the verdict in
/// `<db dir>/replica-drill.json` and removes the copy. Returns the verdict.
pub fn drill(config: &Config) -> Result<String, String> {
    let dir = dir_of(&config.db.path);
    let tmp = dir.join(format!(".replica-drill-{}.db", std::process::id()));
    let cleanup = |p: &Path| {
        for suffix in ["", "-wal", "-shm", ".tmp", "-txid"] {
            let _ = std::fs::remove_file(with_suffix(p, suffix));
        }
    };
    cleanup(&tmp);
    let verdict = drill_verdict(config, &tmp);
    cleanup(&tmp);
    let record = Drill {
        ok: verdict.is_ok(),
        at: jiff::Timestamp::now().to_string(),
        detail: match &verdict {
            Ok(d) | Err(d) => d.clone(),
        },
    };
    write_drill(&dir, &record)?;
    verdict
}

/// Writes the verdict whole (temporary file, then rename), so health never reads half of it.
fn write_drill(dir: &Path, record: &Drill) -> Result<(), String> {
    let path = dir.join(DRILL_FILE);
    let tmp = dir.join(format!(".{DRILL_FILE}.tmp-{}", std::process::id()));
    let text = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(http_body(plain).expect("plain"), b"{}");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(http_body(chunked).expect("chunked"), b"{\"a\":1}");
        assert!(http_body(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(http_body(b"garbage").is_err());
    }

    #[test]
    fn last_sync_is_our_entry_of_the_list() {
        let body = br#"{"databases":[{"path":"/a/x.db","status":"replicating","last_sync_at":"2026-08-20T10:00:00.123456789+02:00"},{"path":"/b/y.db","status":"replicating"}]}"#;
        let t = last_sync(body, Path::new("/a/x.db")).expect("listed");
        assert_eq!(
            t.expect("synced").to_string(),
            "2026-08-20T08:00:00.123456789Z"
        );
        assert_eq!(last_sync(body, Path::new("/b/y.db")).expect("listed"), None);
        assert!(last_sync(body, Path::new("/c/z.db")).is_err());
        let stopped = br#"{"databases":[{"path":"/a/x.db","status":"stopped"}]}"#;
        assert!(last_sync(stopped, Path::new("/a/x.db")).is_err());
    }

    #[test]
    fn compare_allows_more_live_rows_never_fewer() {
        let copy = vec![("a".to_string(), 3), ("b".to_string(), 1)];
        let live = vec![("a".to_string(), 5), ("b".to_string(), 1)];
        assert!(compare(&copy, &live).expect("ok").contains("2 more"));
        assert!(compare(&live, &copy).is_err());
        assert!(compare(&copy[..1], &live).is_err());
    }
}
