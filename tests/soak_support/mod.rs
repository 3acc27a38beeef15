//! What `tests/soak.rs` stands on: the built `wealthcoach` binary as a child process (so
//! `/proc/<pid>` describes the server alone), a keep-alive HTTP/1.1 client that names every
//! way a request can fail, WebSocket clients for the chat and the notifications, the `/proc`
//! sampler, and small helpers for money, months, percentiles and random choices.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_wealthcoach");

/// How long one read or write on a socket may block. A loaded 2-core machine with argon2 in
/// a debug build can stall a request for seconds; a minute means "it is stuck".
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fresh server may take to answer `/api/v1/ready`.
const READY_LIMIT: Duration = Duration::from_secs(60);

// --- random choices -----------------------------------------------------------------------

/// wyrand, seeded per client, so a run's mix of requests can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let wide = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        (wide >> 64) as u64 ^ wide as u64
    }

    /// In `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A seed from the clock, printed by the test so a run can be repeated.
pub fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

// --- the scratch folder and the child server ------------------------------------------------

/// A folder of our own under the temp dir. Removed when dropped, except after a failure, so
/// the server's log and database are still there to look at.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "wealthcoach-{tag}-{}-{}",
            std::process::id(),
            clock_seed() % 1_000_000_007
        ));
        std::fs::create_dir_all(&path).expect("create the scratch folder");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("soak: kept {} for a look", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port on 127.0.0.1")
}

/// `wealthcoach serve` as a child, killed and reaped when dropped.
pub struct Child {
    child: std::process::Child,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub log: PathBuf,
}

impl Child {
    /// Starts the server in `dir` with only `vars` (plus PATH and fresh ports on 127.0.0.1),
    /// and waits until it is ready. Ports are picked by binding port 0 and letting go, so
    /// another process may take one first: then it tries again with new ones, three times.
    pub fn start(dir: &Path, vars: &[(&str, String)]) -> Child {
        let mut last_log = String::new();
        for attempt in 1..=3 {
            let (http, ws) = (unused_port(), unused_port());
            let log = dir.join(format!("server-{attempt}.log"));
            let out = std::fs::File::create(&log).expect("create the server log");
            let err = out.try_clone().expect("clone the log handle");
            let child = Command::new(BIN)
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
                .env("HOST", "127.0.0.1")
                .env("PORT", http.to_string())
                .env("WS_PORT", ws.to_string())
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("spawn wealthcoach serve");
            let mut server = Child {
                child,
                http: SocketAddr::from(([127, 0, 0, 1], http)),
                ws: SocketAddr::from(([127, 0, 0, 1], ws)),
                log,
            };
            let deadline = Instant::now() + READY_LIMIT;
            while Instant::now() < deadline && server.alive() {
                let mut probe = Http::new(server.http);
                if let Ok(a) = probe.send("GET", "/api/v1/ready", &[], None, true)
                    && a.status == 200
                {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_log = server.log_text();
        }
        panic!("the server never became ready (three tries); last log:\n{last_log}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code if it comes within `limit` (`None`: still running, or
    /// killed by a signal).
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// --- /proc ------------------------------------------------------------------------------

/// One look at the server process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the load started (negative before it).
    pub at: f64,
    pub rss_kb: u64,
    pub threads: u64,
    pub fds: u64,
    /// The database and its WAL on disk, filled in by callers that know the path.
    pub db_kb: u64,
}

/// `VmRSS` and `Threads` from `/proc/<pid>/status`, and the entries of `/proc/<pid>/fd`.
pub fn sample(pid: u32, at: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at,
        rss_kb: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds,
        db_kb: 0,
    })
}

/// The size of a SQLite database with its `-wal` file, in kB.
pub fn db_kb(db: &Path) -> u64 {
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    (size(db.to_path_buf()) + size(PathBuf::from(wal))) / 1024
}

// --- HTTP/1.1 ---------------------------------------------------------------------------

/// A complete response.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.snippet()
            )
        })
    }

    /// The first 300 characters of the body, for messages.
    pub fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

/// One client's connection to the HTTP port, kept alive between requests unless a request
/// or its answer says `Connection: close`.
pub struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, conn: None }
    }

    /// Lets the connection go (the server's thread for it should then end).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn connection(&mut self) -> Result<&mut BufReader<TcpStream>, String> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
                .map_err(|e| format!("connect: {e}"))?;
            let _ = s.set_nodelay(true);
            s.set_read_timeout(Some(IO_TIMEOUT))
                .and_then(|_| s.set_write_timeout(Some(IO_TIMEOUT)))
                .map_err(|e| format!("socket options: {e}"))?;
            self.conn = Some(BufReader::with_capacity(16 * 1024, s));
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Sends one request and reads its whole answer. `close` asks the server to close the
    /// connection after it. Any failure drops the connection and says what happened.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        close: bool,
    ) -> Result<Answer, String> {
        let addr = self.addr;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        let result = self.round_trip(&bytes);
        let keep = matches!(&result, Ok(a) if !close && a.keeps_connection());
        if !keep {
            self.disconnect();
        }
        result
    }

    /// Writes a whole request and reads the answer.
    fn round_trip(&mut self, request: &[u8]) -> Result<Answer, String> {
        // A failure on a kept-alive connection says so: it would point at the server closing
        // idle connections, not at this request.
        let on = if self.conn.is_some() {
            "a reused connection"
        } else {
            "a new connection"
        };
        let conn = self.connection()?;
        conn.get_mut()
            .write_all(request)
            .map_err(|e| format!("write on {on}: {e}"))?;
        read_answer(conn).map_err(|e| format!("{e} (on {on})"))
    }
}

impl Answer {
    /// Whether the server will take another request on this connection.
    fn keeps_connection(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            && (self.header("content-length").is_some()
                || self
                    .header("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked")))
    }
}

/// One response off a kept-alive connection (the one reader in tests/common); a body cut
/// short is an error here, where a load client must not panic.
fn read_answer(r: &mut impl BufRead) -> Result<Answer, String> {
    let reply = crate::common::try_read_reply(r)?;
    if !reply.complete {
        return Err(format!("status {}: body cut short", reply.status));
    }
    Ok(Answer {
        status: reply.status,
        headers: reply.headers,
        body: reply.body,
    })
}

/// The `data:` events of a server-sent event stream, as JSON.
pub fn sse_events(body: &[u8]) -> Result<Vec<Value>, String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).map_err(|e| format!("event {d:?}: {e}")))
        .collect()
}

// --- the WebSocket chat ---------------------------------------------------------------

/// How one WebSocket chat goes.
#[derive(Clone, Copy, Debug, Default)]
pub struct WsPlan {
    /// Authenticate with a first `authenticate` message instead of `?token=`.
    pub auth_by_message: bool,
    /// Ping once before asking.
    pub ping: bool,
    /// Send `cancel` after the first delta.
    pub cancel: bool,
}

/// What came back.
#[derive(Debug, Default)]
pub struct WsChat {
    pub deltas: usize,
    pub content: String,
    pub cancelled: bool,
    pub cached: bool,
}

/// Connects and upgrades, with the same timeouts as the HTTP client.
fn ws_connect(addr: SocketAddr, target: &str) -> Result<tungstenite::WebSocket<TcpStream>, String> {
    let stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket options: {e}"))?;
    let (ws, _) = tungstenite::client::client(format!("ws://{addr}{target}"), stream)
        .map_err(|e| format!("upgrade: {e}"))?;
    Ok(ws)
}

fn ws_frame(ws: &mut tungstenite::WebSocket<TcpStream>) -> Result<Value, String> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                return serde_json::from_str(t.as_str())
                    .map_err(|e| format!("a frame that is not JSON ({e}): {}", t.as_str()));
            }
            Ok(Message::Close(c)) => return Err(format!("closed by the server: {c:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn ws_send(ws: &mut tungstenite::WebSocket<TcpStream>, v: Value) -> Result<(), String> {
    ws.send(Message::text(v.to_string()))
        .map_err(|e| format!("send: {e}"))
}

/// Connects to `/ws/chat`, asks `question`, reads the answer to its final frame (cancelling
/// after the first delta if the plan says so) and closes with a full close handshake. Every
/// frame is checked: no `error` frame, no fallback, each `content` the previous one plus its
/// `delta`, and the final `content` equal to the deltas joined.
pub fn ws_chat(
    addr: SocketAddr,
    token: &str,
    question: &str,
    plan: WsPlan,
) -> Result<WsChat, String> {
    let target = if plan.auth_by_message {
        "/ws/chat".to_string()
    } else {
        format!("/ws/chat?token={token}")
    };
    let mut ws = ws_connect(addr, &target)?;
    if plan.auth_by_message {
        ws_send(&mut ws, json!({"type": "authenticate", "token": token}))?;
    }
    let hello = ws_frame(&mut ws)?;
    if hello["type"] != "connected" || !hello["session_id"].is_string() {
        return Err(format!("expected the connected frame, got {hello}"));
    }
    if plan.ping {
        ws_send(&mut ws, json!({"type": "ping"}))?;
        let pong = ws_frame(&mut ws)?;
        if pong["type"] != "pong" {
            return Err(format!("expected pong, got {pong}"));
        }
    }
    ws_send(&mut ws, json!({"type": "message", "content": question}))?;
    let mut got = WsChat::default();
    loop {
        let v = ws_frame(&mut ws)?;
        if v["type"] != "response" {
            return Err(format!("unexpected frame {v}"));
        }
        let content = v["content"].as_str().unwrap_or_default();
        if v["done"] == true {
            if v.get("fallback").is_some_and(|f| f == true) {
                return Err(format!("a fallback answer: {v}"));
            }
            got.cancelled = v["cancelled"] == true;
            got.cached = v["cached"] == true;
            if got.cached {
                if content.is_empty() {
                    return Err(format!("an empty cached answer: {v}"));
                }
            } else if content != got.content {
                return Err(format!(
                    "final content {content:?} is not the deltas joined {:?}",
                    got.content
                ));
            }
            got.content = content.to_string();
            break;
        }
        let delta = v["delta"].as_str().unwrap_or_default();
        got.content.push_str(delta);
        if content != got.content {
            return Err(format!(
                "content {content:?} is not the previous content plus {delta:?}"
            ));
        }
        got.deltas += 1;
        if plan.cancel && got.deltas == 1 {
            ws_send(&mut ws, json!({"type": "cancel"}))?;
        }
    }
    close_cleanly(ws)?;
    Ok(got)
}

/// Connects to `/ws/notifications`, waits for `connected`, pings until `pong` (a heartbeat,
/// a budget alert or a sync push may come first), and closes with a full close handshake.
pub fn ws_notifications(addr: SocketAddr, token: &str) -> Result<(), String> {
    let mut ws = ws_connect(addr, &format!("/ws/notifications?token={token}"))?;
    let hello = ws_frame(&mut ws)?;
    if hello["type"] != "connected" {
        return Err(format!("expected the connected frame, got {hello}"));
    }
    ws_send(&mut ws, json!({"type": "ping"}))?;
    loop {
        let v = ws_frame(&mut ws)?;
        match v["type"].as_str() {
            Some("pong") => break,
            // `sync` follows the user's commits (at most one a second), `budget_alert` a
            // category going over its budget.
            Some("heartbeat" | "budget_alert" | "sync") => {}
            _ => return Err(format!("unexpected frame {v}")),
        }
    }
    close_cleanly(ws)
}

/// Sends a close frame and reads until the server has answered it and closed the TCP
/// connection; anything else (a reset, a timeout) is an error.
fn close_cleanly(mut ws: tungstenite::WebSocket<TcpStream>) -> Result<(), String> {
    ws.close(None).map_err(|e| format!("close: {e}"))?;
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(format!("close handshake: {e}")),
        }
    }
}

// --- money, months and numbers ----------------------------------------------------------

/// `123456` paise as `"1234.56"`.
pub fn money_text(paise: i64) -> String {
    format!("{}.{:02}", paise / 100, paise % 100)
}

/// A JSON amount (a number with at most 2 decimals, or such a string) in paise.
pub fn paise(v: &Value) -> Result<i64, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(format!("not an amount: {other}")),
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.as_str()),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 || whole.is_empty() {
        return Err(format!("not an amount in paise: {text}"));
    }
    let whole: i64 = whole.parse().map_err(|_| format!("amount {text}"))?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}")
            .parse()
            .map_err(|_| format!("amount {text}"))?
    };
    Ok(sign * (whole * 100 + frac))
}

/// The (year, month) of today in UTC, and of the `back` months before it.
pub fn recent_months(back: u32) -> Vec<(i32, u32)> {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    let mut out = Vec::new();
    let (mut y, mut m) = (year, month);
    for _ in 0..=back {
        out.push((y, m));
        if m == 1 {
            y -= 1;
            m = 12;
        } else {
            m -= 1;
        }
    }
    out
}

/// The nearest-rank percentile of sorted values (0 for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip() {
        for p in [0, 1, 99, 100, 123_456, 100_000_000_000] {
            assert_eq!(paise(&Value::String(money_text(p))), Ok(p));
        }
        assert_eq!(paise(&json!(1250.5)), Ok(125_050));
        assert!(paise(&json!("1.234")).is_err());
    }

    #[test]
    fn percentiles() {
        let v = sorted((1..=100).map(f64::from).collect());
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}
