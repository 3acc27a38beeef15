//! Shared by the reliability tests (`crash`, `disk_full`): the built `wealthcoach` binary run
//! as a child process on 127.0.0.1 with ports the OS handed out, a raw HTTP/1.1 client that
//! tells "never sent" from "sent but never answered", and the month-totals invariant read
//! through the public API.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

pub use crate::common::wait_until;
use crate::common::{Call, CallError, register_user};

pub const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");
/// 40 characters, fixed so tokens stay valid across restarts.
pub const SECRET: &str = "r3liabil1ty-t3st-s3cret-Qw8Zx2Lp5Nv7Kd9M";
pub const TXS: &str = "/api/v1/transactions";
pub const ACTUAL: &str = "/api/v1/allocations/actual";

/// How long one request may take before the client gives up (a loaded 2-core machine).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a (re)started server may take to answer `/api/v1/ready`.
const READY_LIMIT: Duration = Duration::from_secs(45);

/// A folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "wealthcoach-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Two distinct ports that were free a moment ago: both are held until both are read, so they
/// cannot be the same port.
pub fn free_port_pair() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("local addr").port();
    (port(&a), port(&b))
}

/// A deterministic generator (splitmix64): the same seed gives the same kill moments and the
/// same mix of requests, so a failure can be replayed with its seed.
#[derive(Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

pub use crate::common::Reply;

/// What became of one request.
#[derive(Clone, Debug)]
pub enum Exchange {
    /// A complete response.
    Answered(Reply),
    /// The connection was refused: not a byte of the request left this process.
    NotSent(String),
    /// Connected, but no complete response came back: the server may or may not have acted.
    NoAnswer(String),
}

impl Exchange {
    /// The reply, or a panic naming `what`.
    pub fn reply(self, what: &str) -> Reply {
        match self {
            Exchange::Answered(r) => r,
            other => panic!("{what}: no answer: {other:?}"),
        }
    }
}

/// One request with `Connection: close`, read to the end of its body.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Exchange {
    // Every request but a GET says its length, even when it has no body.
    let body = body.or((method != "GET").then_some(&[][..]));
    let mut call = Call::new(addr, method, path)
        .headers(headers)
        .timeout(REQUEST_TIMEOUT);
    if let Some(b) = body {
        call = call.body(b);
    }
    match call.try_send() {
        Err(CallError::NotSent(e)) => Exchange::NotSent(e),
        Err(CallError::NoAnswer(e)) => Exchange::NoAnswer(e),
        Ok(r) if !r.complete => Exchange::NoAnswer(format!("status {}, body cut short", r.status)),
        Ok(r) => Exchange::Answered(r),
    }
}

/// A JSON request with the bearer token (`None`: no body).
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Exchange {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    let text = body.map(Value::to_string);
    if text.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    headers.extend_from_slice(extra);
    exchange(
        addr,
        method,
        path,
        &headers,
        text.as_deref().map(str::as_bytes),
    )
}

/// A call that must answer `status`; its JSON body.
pub fn expect(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    status: u16,
) -> Value {
    let r = call(addr, method, path, token, body, &[]).reply(&format!("{method} {path}"));
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    r.json()
}

/// POST /transactions under an `Idempotency-Key`.
pub fn post_keyed(addr: SocketAddr, token: &str, key: &str, body: &Value) -> Exchange {
    call(
        addr,
        "POST",
        TXS,
        token,
        Some(body),
        &[("Idempotency-Key", key)],
    )
}

/// Registers by email; the access token.
pub fn register(addr: SocketAddr, email: &str) -> String {
    register_user(addr, email, "Reliability Tester").token
}

/// A JSON amount in paise, read from its exact decimal text.
pub fn to_paise(v: &Value) -> i64 {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not an amount: {other}"),
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.as_str()),
    };
    let (units, cents) = digits.split_once('.').unwrap_or((digits, "0"));
    let cents = cents.trim_end_matches('0');
    assert!(
        cents.len() <= 2,
        "an amount with more than 2 decimals: {text}"
    );
    let units: i64 = units.parse().unwrap_or_else(|_| panic!("amount {text}"));
    let cents: i64 = format!("{cents:0<2}")
        .parse()
        .unwrap_or_else(|_| panic!("amount {text}"));
    let p = units * 100 + cents;
    if negative { -p } else { p }
}

/// One listed transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub id: String,
    pub label: String,
    pub income: bool,
    pub paise: i64,
}

/// Every transaction `GET /transactions?<query>` lists, 200 a page.
pub fn list_all(addr: SocketAddr, token: &str, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let path = format!("{TXS}?{query}&limit=200&offset={}", all.len());
        let page = expect(addr, "GET", &path, token, None, 200);
        let page = page.as_array().expect("a bare array").clone();
        let n = page.len();
        all.extend(page);
        if n < 200 {
            return all;
        }
    }
}

/// Every transaction of a month.
pub fn list_month(addr: SocketAddr, token: &str, year: i32, month: u32) -> Vec<Listed> {
    list_all(addr, token, &format!("month={month}&year={year}"))
        .iter()
        .map(|x| Listed {
            id: x["id"].as_str().expect("id").to_string(),
            label: x["label"].as_str().expect("label").to_string(),
            income: x["type"] == "income",
            paise: to_paise(&x["amount"]),
        })
        .collect()
}

/// The invariant: the balance route's totals equal the sums of the month's listed
/// transactions, and `transaction_count` their number. Returns the listed rows.
pub fn check_invariant(addr: SocketAddr, token: &str, year: i32, month: u32) -> Vec<Listed> {
    let path = format!("{TXS}/balance?month={month}&year={year}");
    let b = expect(addr, "GET", &path, token, None, 200);
    let rows = list_month(addr, token, year, month);
    let sum = |income: bool| -> i64 {
        rows.iter()
            .filter(|r| r.income == income)
            .map(|r| r.paise)
            .sum()
    };
    let (income, expense) = (sum(true), sum(false));
    let at = format!("{year}-{month:02}");
    assert_eq!(to_paise(&b["total_income"]), income, "{at}: income vs rows");
    assert_eq!(
        to_paise(&b["total_expense"]),
        expense,
        "{at}: expense vs rows"
    );
    assert_eq!(
        to_paise(&b["current_balance"]),
        income - expense,
        "{at}: balance"
    );
    assert_eq!(
        b["transaction_count"].as_u64(),
        Some(rows.len() as u64),
        "{at}: transaction_count vs rows"
    );
    let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        rows.len(),
        "{at}: a row listed twice across pages"
    );
    rows
}

/// `total_actual` of a month's allocation summary, in paise.
pub fn allocations_actual(addr: SocketAddr, token: &str, year: i32, month: u32) -> i64 {
    let path = format!("/api/v1/allocations?month={month}&year={year}");
    let v = expect(addr, "GET", &path, token, None, 200);
    to_paise(&v["total_actual"])
}

/// The id of the first allocation type of the first category.
pub fn first_type_id(addr: SocketAddr, token: &str) -> String {
    let v = expect(
        addr,
        "GET",
        "/api/v1/allocations?month=1&year=2030",
        token,
        None,
        200,
    );
    v["categories"][0]["allocation_types"][0]["id"]
        .as_str()
        .expect("an allocation type id")
        .to_string()
}

/// `PRAGMA integrity_check` through a read-only connection of our own; "ok" when sound.
pub fn integrity_check(db: &Path) -> String {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .expect("prepare integrity_check");
    let lines = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .unwrap_or_else(|e| panic!("integrity_check on {}: {e}", db.display()));
    lines.join("; ")
}

/// The settings both tests give the server: test mode, a fixed secret, the database and
/// its `DB_SYNCHRONOUS`; callers add their own.
pub fn server_vars<'a>(database_url: &'a str, sync: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ENVIRONMENT", "test"),
        ("JWT_SECRET_KEY", SECRET),
        ("DATABASE_URL", database_url),
        ("DB_SYNCHRONOUS", sync),
        ("LOG_LEVEL", "warning"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "3"),
    ]
}

/// A `wealthcoach serve` child process, killed and reaped when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts `serve` in `dir` with exactly `vars` (plus PATH, HOST and fresh ports) and
    /// waits for `/api/v1/ready`. Tries new ports up to three times, in case another test
    /// took the ones picked.
    pub fn start(dir: &Path, vars: &[(&str, &str)], log_name: &str) -> Server {
        Server::start_under(&[], dir, vars, log_name)
    }

    /// [`Server::start`] with `wrapper` (a program and its arguments) running the server,
    /// e.g. strace injecting faults. The wrapper must end when its child does and the child
    /// when the wrapper is killed, since only the wrapper's pid is known here.
    pub fn start_under(
        wrapper: &[&str],
        dir: &Path,
        vars: &[(&str, &str)],
        log_name: &str,
    ) -> Server {
        let mut last_log = String::new();
        for attempt in 0..3 {
            let (http, ws) = free_port_pair();
            let log = dir.join(format!("{log_name}-{attempt}.log"));
            let file = std::fs::File::create(&log).expect("create the server log");
            let mut command = match wrapper.split_first() {
                Some((program, args)) => {
                    let mut c = Command::new(program);
                    c.args(args).arg(BIN);
                    c
                }
                None => Command::new(BIN),
            };
            let child = command
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(vars.iter().copied())
                .env("HOST", "127.0.0.1")
                .env("PORT", http.to_string())
                .env("WS_PORT", ws.to_string())
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("clone the log handle"))
                .stderr(file)
                .spawn()
                .expect("spawn wealthcoach serve");
            let mut s = Server {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], http)),
                log,
            };
            let ready = wait_until(READY_LIMIT, || {
                s.status("/api/v1/ready") == Some(200) || !s.alive()
            });
            if ready && s.alive() {
                return s;
            }
            last_log = s.log_text();
            s.kill9();
        }
        panic!("the server did not become ready in three tries; last log:\n{last_log}");
    }

    /// The status of `GET path`, or `None` without a complete answer.
    pub fn status(&self, path: &str) -> Option<u16> {
        match exchange(self.addr, "GET", path, &[], None) {
            Exchange::Answered(r) => Some(r.status),
            _ => None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL (`kill -9`), then reap, so the file lock and sockets are gone on return.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and the exit code, which must come within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        let mut code = None;
        let exited = wait_until(limit, || match self.child.try_wait() {
            Ok(Some(status)) => {
                code = status.code();
                true
            }
            _ => false,
        });
        assert!(exited, "no exit within {limit:?} of SIGTERM");
        code
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.alive() {
            self.kill9();
        }
    }
}
