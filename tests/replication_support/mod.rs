//! The outside world of tests/replication.rs: moto's S3 server on loopback, a TCP forwarder in
//! front of it (closed = S3 refusing), Litestream 0.5.17 run with the SHIPPED
//! deploy/litestream.yml, the SHIPPED deploy/replica-restore, and one "VM" (a data folder with
//! its database, control socket and metrics port). Tools come from the venv that
//! ci/replication-deps.sh fills.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::common::{skip_unless_ci, wait_until};
use crate::reliability_support::{Exchange, SECRET, exchange, post_keyed};

pub const BUCKET: &str = "wealthcoach-replica";
/// Health is polled this often (seconds) by the server under test (R1's setting).
pub const POLL_SECONDS: &str = "1";
/// Health says "lagging" once the last sync is older than this (seconds).
pub const LAG_SECONDS: &str = "3";

/// Prints a measured figure with one prefix so it can be copied out of the output; straight to
/// stderr, past the harness's capture.
pub fn figure(line: &str) {
    let _ = writeln!(std::io::stderr(), "replication: {line}");
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The litestream.yml the deploy ships (installed as /etc/wealthcoach/litestream.yml).
pub fn shipped_config() -> PathBuf {
    repo("deploy/litestream.yml")
}

/// The venv ci/replication-deps.sh fills.
#[derive(Clone)]
pub struct Tools {
    pub litestream: PathBuf,
    pub moto: PathBuf,
}

/// The tools, or `None` after a SKIPPED note (a failure under CI).
pub fn tools(test: &str) -> Option<Tools> {
    let venv = match std::env::var_os("WEALTHCOACH_REPLICATION_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/wealthcoach/replication-venv"),
    };
    let t = Tools {
        litestream: venv.join("bin/litestream"),
        moto: venv.join("bin/moto_server"),
    };
    if t.litestream.is_file() && t.moto.is_file() {
        return Some(t);
    }
    skip_unless_ci(
        test,
        &format!("no litestream/moto_server in {}", venv.display()),
        "WEALTHCOACH_REPLICATION_VENV=<dir> bash ci/replication-deps.sh",
    );
    None
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid} failed");
}

/// Serialises the tests of one binary: they measure time, and two at once on 2 cores would
/// measure each other.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- moto ----

/// `moto_server` on 127.0.0.1 with a port it picked, and one bucket.
pub struct Moto {
    child: Child,
    pub port: u16,
    paused: bool,
}

impl Moto {
    pub fn start(tools: &Tools, logs: &Path) -> Moto {
        let log = logs.join("moto.log");
        let file = std::fs::File::create(&log).expect("moto log");
        let child = Command::new(&tools.moto)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .spawn()
            .expect("spawn moto_server");
        let mut m = Moto {
            child,
            port: 0,
            paused: false,
        };
        let mut port = None;
        let up = wait_until(Duration::from_secs(90), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            port = text
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok());
            port.is_some() || !matches!(m.child.try_wait(), Ok(None))
        });
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        m.port = port.unwrap_or_else(|| panic!("moto did not start (up={up}):\n{}", log_text()));
        // One path-style PUT creates the bucket (moto checks no signature by default).
        let r = exchange(m.addr(), "PUT", &format!("/{BUCKET}"), &[], Some(b""));
        match r {
            Exchange::Answered(r) if r.status == 200 => {}
            other => panic!("create bucket: {other:?}"),
        }
        m
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGSTOP: the kernel still accepts connections, nothing answers (a hung S3).
    pub fn pause(&mut self) {
        signal(self.child.id(), "-STOP");
        self.paused = true;
    }

    pub fn resume(&mut self) {
        signal(self.child.id(), "-CONT");
        self.paused = false;
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if self.paused {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- a TCP forwarder the test can close ----

struct FwdState {
    listener: Option<TcpListener>,
    live: Vec<TcpStream>,
}

/// 127.0.0.1:port → target. `close()` drops the listener and cuts every live connection (S3
/// refusing connections); `open()` binds the same port again.
pub struct Forwarder {
    pub port: u16,
    target: SocketAddr,
    state: Arc<Mutex<FwdState>>,
    quit: Arc<AtomicBool>,
    pub connections: Arc<AtomicU64>,
}

fn listen(port: u16) -> TcpListener {
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind the forwarder");
    l.set_nonblocking(true).expect("nonblocking");
    l
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Forwarder {
    pub fn start(target: SocketAddr) -> Forwarder {
        let l = listen(0);
        let port = l.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(FwdState {
            listener: Some(l),
            live: Vec::new(),
        }));
        let quit = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (st, q, n) = (state.clone(), quit.clone(), connections.clone());
        thread::spawn(move || {
            while !q.load(Ordering::Relaxed) {
                let accepted = {
                    let s = st.lock().unwrap_or_else(|p| p.into_inner());
                    s.listener.as_ref().and_then(|l| l.accept().ok())
                };
                let Some((client, _)) = accepted else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                n.fetch_add(1, Ordering::Relaxed);
                let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                if s.listener.is_none() {
                    continue; // closed meanwhile: drop both
                }
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                s.live.push(client.try_clone().expect("clone"));
                s.live.push(server.try_clone().expect("clone"));
                thread::spawn(move || pipe(client, server));
                thread::spawn(move || pipe(s2, c2));
            }
        });
        Forwarder {
            port,
            target,
            state,
            quit,
            connections,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.listener = None;
        for c in s.live.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn open(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.live.retain(|c| c.peer_addr().is_ok());
        s.listener = Some(listen(self.port));
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        self.close();
    }
}

// ---- one VM ----

/// A VM's data folder: the database, Litestream's socket, its metrics port, and the replica
/// path it writes (and the one it restores from).
pub struct Site {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub socket: PathBuf,
    pub metrics: SocketAddr,
    pub endpoint: String,
    pub replica_path: String,
    pub restore_from: String,
    pub litestream_bin: PathBuf,
}

impl Site {
    pub fn new(
        dir: PathBuf,
        tools: &Tools,
        endpoint: &str,
        replica_path: &str,
        restore_from: &str,
    ) -> Site {
        std::fs::create_dir_all(&dir).expect("site dir");
        let [metrics] = crate::common::free_ports::<1>();
        Site {
            db: dir.join("wealthcoach.db"),
            socket: dir.join("litestream.sock"),
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics)),
            dir,
            endpoint: endpoint.to_string(),
            replica_path: replica_path.to_string(),
            restore_from: restore_from.to_string(),
            litestream_bin: tools.litestream.clone(),
        }
    }

    pub fn db_url(&self) -> String {
        self.db.to_str().expect("utf-8 path").to_string()
    }

    /// What the env file of this VM holds for Litestream, replica-restore and the server.
    pub fn env(&self) -> Vec<(String, String)> {
        let pairs = [
            ("DATABASE_URL", self.db_url()),
            ("LITESTREAM_DB", self.db_url()),
            ("LITESTREAM_SOCKET", self.socket.display().to_string()),
            ("LITESTREAM_METRICS_ADDR", self.metrics.to_string()),
            ("LITESTREAM_CONFIG", shipped_config().display().to_string()),
            ("LITESTREAM_BIN", self.litestream_bin.display().to_string()),
            ("LITESTREAM_ACCESS_KEY_ID", "test".into()),
            ("LITESTREAM_SECRET_ACCESS_KEY", "test".into()),
            ("REPLICA_BUCKET", BUCKET.into()),
            ("REPLICA_PATH", self.replica_path.clone()),
            ("REPLICA_RESTORE_FROM", self.restore_from.clone()),
            ("REPLICA_ENDPOINT", self.endpoint.clone()),
            ("REPLICA_REGION", "us-east-1".into()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The server's settings: the env file plus test mode, a fixed secret and a fast poll.
    pub fn server_env(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        for (k, v) in [
            ("ENVIRONMENT", "test"),
            ("JWT_SECRET_KEY", SECRET),
            ("DB_SYNCHRONOUS", "NORMAL"),
            ("LOG_LEVEL", "warning"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "3"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "1440"),
            ("REPLICA_POLL_SECONDS", POLL_SECONDS),
            ("REPLICA_LAG_SECONDS", LAG_SECONDS),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        env
    }

    /// deploy/replica-restore as ExecStartPre runs it; its exit status and wall time.
    pub fn replica_restore(&self) -> (std::process::Output, Duration) {
        let started = Instant::now();
        let out = Command::new(repo("deploy/replica-restore"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env())
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .output()
            .expect("run deploy/replica-restore");
        (out, started.elapsed())
    }

    /// `litestream restore` of this site's replica path into `out` (a peek at the replica).
    pub fn restore_replica_to(&self, out: &Path, integrity: &str) -> Result<(), String> {
        let _ = std::fs::remove_file(out);
        let o = Command::new(&self.litestream_bin)
            .args(["restore", "-config"])
            .arg(shipped_config())
            .args(["-integrity-check", integrity, "-o"])
            .arg(out)
            .arg(&self.db)
            .envs(self.env())
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .output()
            .expect("run litestream restore");
        if o.status.success() && out.exists() {
            Ok(())
        } else {
            Err(format!(
                "litestream restore: {} {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    }

    /// Litestream's metrics (a Prometheus text page), as name{labels} → value.
    pub fn metrics(&self) -> HashMap<String, f64> {
        let mut out = HashMap::new();
        if let Exchange::Answered(r) = exchange(self.metrics, "GET", "/metrics", &[], None) {
            for line in r.text().lines().filter(|l| !l.starts_with('#')) {
                if let Some((k, v)) = line.rsplit_once(' ')
                    && let Ok(v) = v.parse::<f64>()
                {
                    out.insert(k.to_string(), v);
                }
            }
        }
        out
    }

    /// The number of S3 PUTs Litestream made since it started.
    pub fn puts(&self) -> f64 {
        self.metrics()
            .iter()
            .filter(|(k, _)| {
                k.starts_with("litestream_replica_operation_total")
                    && k.contains("operation=\"PUT\"")
            })
            .map(|(_, v)| *v)
            .sum()
    }
}

// ---- Litestream ----

/// `litestream replicate` with the shipped yml and a site's env; its json log on stderr.
pub struct Litestream {
    child: Child,
    pub log: PathBuf,
}

impl Litestream {
    pub fn start(site: &Site, logs: &Path, name: &str) -> Litestream {
        let log = logs.join(format!("litestream-{name}.log"));
        let file = std::fs::File::create(&log).expect("litestream log");
        let child = Command::new(&site.litestream_bin)
            .args(["replicate", "-config"])
            .arg(shipped_config())
            .envs(site.env())
            // Litestream refuses to start with it set (it is, on these machines).
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .spawn()
            .expect("spawn litestream");
        let mut l = Litestream { child, log };
        let up = wait_until(Duration::from_secs(30), || {
            l.log_text().contains("control socket listening") || !l.alive()
        });
        assert!(
            up && l.alive(),
            "litestream did not start:\n{}",
            l.log_text()
        );
        l
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL without waiting (pair with `reap`), so two processes can die together.
    pub fn send_kill9(&mut self) {
        let _ = self.child.kill();
    }

    pub fn reap(&mut self) {
        let _ = self.child.wait();
    }

    pub fn kill9(&mut self) {
        self.send_kill9();
        self.reap();
    }

    /// SIGTERM and wait (Litestream's shutdown sync takes up to 30 s).
    pub fn terminate(&mut self) {
        signal(self.child.id(), "-TERM");
        let done = wait_until(Duration::from_secs(45), || !self.alive());
        assert!(done, "litestream did not stop within 45 s of SIGTERM");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory (kB) now, from /proc.
    pub fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Litestream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The snapshot lines of Litestream logs: "snapshot complete" and every line that gives a
/// reason for a new snapshot ("...snapshotting", "wal truncated by another process",
/// "detected database behind replica", or a `reason` field).
pub fn snapshot_lines(logs: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut complete, mut reasons) = (Vec::new(), Vec::new());
    for line in logs.iter().flat_map(|l| l.lines()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let msg = v["msg"].as_str().unwrap_or_default();
        if msg == "snapshot complete" {
            complete.push(line.to_string());
        } else if msg.contains("snapshotting")
            || msg.contains("truncated by another process")
            || msg.contains("behind replica")
            || v.get("reason").is_some()
        {
            reasons.push(line.to_string());
        }
    }
    (complete, reasons)
}

// ---- writes and what became of them ----

/// One acknowledged `POST /transactions`.
#[derive(Clone, Debug)]
pub struct Ack {
    pub label: String,
    pub id: String,
    pub paise: i64,
    pub at: Instant,
}

#[derive(Default)]
pub struct WriterLog {
    pub acked: Vec<Ack>,
    /// Labels of writes sent without a complete answer (may or may not be stored).
    pub unanswered: Vec<String>,
    /// Writes answered with a non-2xx, or not answered while the server was meant to be up.
    pub failures: Vec<String>,
    /// Round-trip times of the acknowledged writes.
    pub latencies: Vec<Duration>,
}

/// A client writing transactions into one month at a steady rate, to whichever server `addr`
/// names (`None`: paused, e.g. across a restart).
pub struct Writer {
    pub addr: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<WriterLog>>,
}

pub fn tx_body(label: &str, paise: i64, year: i32, month: u32, n: u64) -> Value {
    json!({"type": "expense", "category": "replication",
           "amount": format!("{}.{:02}", paise / 100, paise % 100), "label": label,
           "transaction_date": format!("{year}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
               1 + n / 86_400 % 28, n / 3600 % 24, n / 60 % 60, n % 60)})
}

/// One POST; Some(ack) on 2xx.
pub fn write_one(
    addr: SocketAddr,
    token: &str,
    label: &str,
    paise: i64,
    period: (i32, u32),
    n: u64,
) -> Result<Ack, Exchange> {
    let body = tx_body(label, paise, period.0, period.1, n);
    match post_keyed(
        addr,
        token,
        &format!("key-{}", label.replace(' ', "-")),
        &body,
    ) {
        Exchange::Answered(r) if (200..300).contains(&r.status) => Ok(Ack {
            label: label.to_string(),
            id: r.json()["id"].as_str().expect("id").to_string(),
            paise,
            at: Instant::now(),
        }),
        other => Err(other),
    }
}

impl Writer {
    /// `tag` makes labels unique in the run; `every` is the pace; `tolerate` lets writes fail
    /// (restarts) without counting them as failures.
    pub fn start(
        addr: SocketAddr,
        token: &str,
        tag: &str,
        period: (i32, u32),
        every: Duration,
        tolerate: bool,
    ) -> Writer {
        let shared = Arc::new(Mutex::new(Some(addr)));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s, token, tag) = (
            shared.clone(),
            stop.clone(),
            token.to_string(),
            tag.to_string(),
        );
        let handle = thread::spawn(move || {
            let mut log = WriterLog::default();
            let mut next = Instant::now();
            for n in 0u64.. {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                next += every;
                let target = *a.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(addr) = target {
                    let label = format!("{tag} n{n}");
                    let paise = 100 + (n as i64 * 7919) % 90_000;
                    let sent = Instant::now();
                    match write_one(addr, &token, &label, paise, period, n) {
                        Ok(ack) => {
                            log.latencies.push(sent.elapsed());
                            log.acked.push(ack);
                        }
                        Err(Exchange::Answered(r)) if !tolerate || r.status != 503 => {
                            log.failures
                                .push(format!("{label}: {} {}", r.status, r.text()));
                        }
                        Err(Exchange::Answered(_)) => {}
                        Err(Exchange::NotSent(e)) => {
                            if !tolerate {
                                log.failures.push(format!("{label}: not sent: {e}"));
                            }
                        }
                        Err(Exchange::NoAnswer(e)) => {
                            log.unanswered.push(label.clone());
                            if !tolerate {
                                log.failures.push(format!("{label}: no answer: {e}"));
                            }
                        }
                    }
                }
                let now = Instant::now();
                if next > now {
                    thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            log
        });
        Writer {
            addr: shared,
            stop,
            handle: Some(handle),
        }
    }

    pub fn point_at(&self, addr: Option<SocketAddr>) {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    pub fn finish(mut self) -> WriterLog {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("writer thread")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// id → (label, amount in paise) of every transaction in a database file (read-only).
pub fn stored_transactions(db: &Path) -> HashMap<String, (String, i64)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let mut stmt = conn
        .prepare("SELECT id, label, amount FROM transactions")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .and_then(|rows| rows.collect::<rusqlite::Result<HashMap<_, _>>>())
        .unwrap_or_else(|e| panic!("read {}: {e}", db.display()))
}

/// Acknowledged writes missing from `stored` (by id, label and amount).
pub fn missing<'a>(acked: &'a [Ack], stored: &HashMap<String, (String, i64)>) -> Vec<&'a Ack> {
    acked
        .iter()
        .filter(|a| stored.get(&a.id) != Some(&(a.label.clone(), a.paise)))
        .collect()
}

/// `replication.status` of /api/v1/health/detailed (R1's field), `None` without it.
pub fn replication_status(addr: SocketAddr) -> Option<String> {
    match exchange(addr, "GET", "/api/v1/health/detailed", &[], None) {
        Exchange::Answered(r) if r.status == 200 => r.json()["replication"]["status"]
            .as_str()
            .map(str::to_string),
        _ => None,
    }
}

/// Waits until `replication.status` satisfies `want`; the time it took, or a panic naming
/// `what`.
pub fn await_status(
    addr: SocketAddr,
    limit: Duration,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut last = None;
    let ok = wait_until(limit, || {
        last = replication_status(addr);
        last.as_deref().is_some_and(&want)
    });
    assert!(ok, "{what}: replication.status is {last:?} after {limit:?}");
    started.elapsed()
}

/// The p-th percentile (0–100) of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> T {
    let i = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}
