//! Shared test harness: start the real server in-process on ports the OS picks, with its own
//! database in a fresh temporary folder, and talk HTTP to it like the app does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use wealthcoach::{Config, Running};

/// A temporary folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let name = format!("wealthcoach-test-{}", wealthcoach::random::hex(8));
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub running: Option<Running>,
    pub http: SocketAddr,
    pub ws: SocketAddr,
    pub dir: TempDir,
}

impl TestApp {
    pub fn app(&self) -> &wealthcoach::App {
        &self.running.as_ref().expect("running").app
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.0.join("test.db")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// The settings every test server gets; `extra` overrides or adds.
pub fn test_config(dir: &TempDir, extra: &[(&str, &str)]) -> Config {
    let db = dir.0.join("test.db");
    let db = db.to_str().expect("utf-8 path").to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("ENVIRONMENT", "test"),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("WS_PORT", "0"),
        ("DATABASE_URL", &db),
        ("JWT_SECRET_KEY", "test-secret-0123456789-abcdefghijklmnop"),
        ("LOG_LEVEL", "error"),
        ("HTTP_WORKERS", "4"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "3"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k, v));
    }
    Config::from_pairs(&pairs).expect("test config is valid")
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(&[])
}

pub fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let dir = TempDir::new();
    let config = test_config(&dir, extra);
    wealthcoach::logging::init(config.log_level);
    let running = wealthcoach::start(config).expect("server starts");
    TestApp {
        http: running.http_addr(),
        ws: running.ws_addr(),
        running: Some(running),
        dir,
    }
}

/// A parsed HTTP response.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// With `Transfer-Encoding: chunked`, each chunk as it came (the fakes' streams are
    /// checked piece by piece); empty otherwise.
    pub chunks: Vec<Vec<u8>>,
    /// False when the connection ended (or a read failed) before the body did: `body` holds
    /// what came.
    pub complete: bool,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no response.
#[derive(Clone, Debug)]
pub enum CallError {
    /// The connection was refused: not a byte of the request left this process.
    NotSent(String),
    /// Connected, but no response head came back: the server may or may not have acted.
    NoAnswer(String),
}

/// The one test client: a request with `Connection: close`, raw over TCP so tests control
/// every byte, built step by step: `app.call("POST", path).auth(token).json(&body).send()`.
pub struct Call {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

impl Call {
    pub fn new(addr: SocketAddr, method: &str, path: &str) -> Call {
        Call {
            addr,
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(20),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Call {
        headers.iter().fold(self, |c, (k, v)| c.header(k, v))
    }

    /// `Authorization: Bearer <token>`.
    pub fn auth(self, token: &str) -> Call {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// The body as JSON, with its `Content-Type`.
    pub fn json(self, body: &Value) -> Call {
        self.header("Content-Type", "application/json")
            .body(body.to_string().as_bytes())
    }

    /// Raw body bytes, sent with their `Content-Length`.
    pub fn body(mut self, bytes: &[u8]) -> Call {
        self.body = Some(bytes.to_vec());
        self
    }

    /// How long connecting, writing and each read may block (20 s unless told).
    pub fn timeout(mut self, limit: Duration) -> Call {
        self.timeout = limit;
        self
    }

    /// Sends the request and reads the response; panics when none comes.
    pub fn send(self) -> Reply {
        let what = format!("{} {}", self.method, self.path);
        self.try_send()
            .unwrap_or_else(|e| panic!("{what}: no response: {e:?}"))
    }

    /// Sends the request and reads the response, saying what went wrong instead of panicking
    /// (for servers that a test kills or starves).
    pub fn try_send(self) -> Result<Reply, CallError> {
        let Call {
            addr,
            method,
            path,
            headers,
            body,
            timeout,
        } = self;
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| CallError::NotSent(format!("connect: {e}")))?;
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_write_timeout(Some(timeout));
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = &body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_deref().unwrap_or_default());
        s.write_all(&bytes)
            .map_err(|e| CallError::NoAnswer(format!("write: {e}")))?;
        try_read_reply(&mut BufReader::new(s)).map_err(CallError::NoAnswer)
    }
}

/// One request, raw over TCP (see [`Call`]).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let call = Call::new(addr, method, path).headers(headers);
    match body {
        Some(b) => call.body(b).send(),
        None => call.send(),
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    Call::new(addr, "GET", path).send()
}

pub fn get_auth(addr: SocketAddr, path: &str, token: &str) -> Reply {
    Call::new(addr, "GET", path).auth(token).send()
}

pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    Call::new(addr, "POST", path).json(body).send()
}

pub fn send_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Reply {
    let call = Call::new(addr, method, path);
    match token {
        Some(t) => call.auth(t).json(body).send(),
        None => call.json(body).send(),
    }
}

/// Reads a whole response (Content-Length, chunked, or until close) from a stream whose
/// leftover bytes the test will not read again.
pub fn read_reply(s: &mut impl Read) -> Reply {
    read_reply_buffered(&mut BufReader::new(s))
}

/// [`read_reply`] on a buffered stream, taking no byte past the response, so a kept-alive
/// connection can carry the next one.
pub fn read_reply_buffered(s: &mut impl BufRead) -> Reply {
    try_read_reply(s).unwrap_or_else(|e| panic!("no response: {e}"))
}

/// The one response reader. `Err` when no complete head came; a body cut short (the
/// connection ended or a read failed) is `Ok` with `complete: false` and what came.
pub fn try_read_reply(s: &mut impl BufRead) -> Result<Reply, String> {
    let Head {
        status, headers, ..
    } = try_read_head(s)?;
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
        chunks: Vec::new(),
        complete: true,
    };
    let length = reply
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    reply.complete = if chunked {
        read_chunks(s, &mut reply.chunks)
    } else if let Some(len) = length {
        read_up_to(s, len, &mut reply.body)
    } else if status != 204 && status != 304 {
        // No length: the body runs to the end of the stream.
        s.read_to_end(&mut reply.body).is_ok()
    } else {
        true
    };
    if chunked {
        reply.body = reply.chunks.concat();
    }
    Ok(reply)
}

/// The status line and headers of a response.
#[derive(Clone, Debug)]
pub struct Head {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The head as text, for messages.
    pub fn text(&self) -> String {
        let mut text = format!("{}\r\n", self.status_line);
        for (k, v) in &self.headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text + "\r\n"
    }
}

/// Reads the head of a response off any stream (a TLS one too) and not one byte more: the
/// body stays in the stream, for a test that streams it, reads it raw, or keeps the
/// connection. The status and the head's text.
pub fn read_head(s: &mut impl Read) -> (u16, String) {
    let head = try_read_head(&mut BufReader::with_capacity(1, s)).unwrap_or_else(|e| panic!("{e}"));
    (head.status, head.text())
}

/// The head part of [`try_read_reply`].
pub fn try_read_head(s: &mut impl BufRead) -> Result<Head, String> {
    let status_line = read_line(s)?.ok_or("connection closed before a response")?;
    let status: u16 = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(s)?.ok_or("connection closed inside the response head")?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Head {
        status,
        status_line,
        headers,
    })
}

/// One line without its CRLF; `None` at the end of the stream.
fn read_line(s: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    // Bounded, so a server that never ends a line cannot grow this without end.
    let n = s
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// Appends up to `len` bytes; whether all of them came.
fn read_up_to(s: &mut impl Read, len: usize, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let got = s.take(len as u64).read_to_end(out).is_ok();
    got && out.len() - start == len
}

/// Reads chunks up to the last (size 0) one; whether it came.
fn read_chunks(s: &mut impl BufRead, chunks: &mut Vec<Vec<u8>>) -> bool {
    loop {
        let Ok(Some(line)) = read_line(s) else {
            return false;
        };
        let size_text = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return false;
        };
        if size == 0 {
            // The empty line (or trailers) after the last chunk.
            while let Ok(Some(trailer)) = read_line(s) {
                if trailer.is_empty() {
                    break;
                }
            }
            return true;
        }
        let mut chunk = Vec::with_capacity(size);
        let whole = read_up_to(s, size, &mut chunk);
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        if !whole || !matches!(read_line(s), Ok(Some(ref l)) if l.is_empty()) {
            return false;
        }
    }
}

// ---- issue 10.7 (a fresh clone passes `cargo test`): tools that only .ci/run installs ----

/// True under CI (`CI` set, and not empty, `0` or `false`), where a missing tool is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Where a program is: each folder of PATH, then the sbin folders (nginx lives in /usr/sbin,
/// which a non-root PATH lacks).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// For a test that cannot run because `missing` is not on this machine: under CI this fails
/// (.ci/run installs everything, so a gap there is a bug); elsewhere it prints `SKIPPED: ...`
/// with how to install it, straight to stderr past the harness's capture, and the test returns.
pub fn skip_unless_ci(test: &str, missing: &str, install: &str) {
    assert!(
        !in_ci(),
        "{test}: {missing} under CI: .ci/run must install it ({install})"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: {missing}; install it with `{install}` (fails under CI=true)"
    );
}

/// The paths of `programs` when all are installed; otherwise [`skip_unless_ci`] and `None`.
pub fn programs_or_skip(test: &str, programs: &[&str], install: &str) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = programs.iter().map(|p| find_program(p)).collect();
    let missing: Vec<&str> = programs
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return found.into_iter().collect();
    }
    skip_unless_ci(test, &format!("no {}", missing.join(", ")), install);
    None
}

/// A file under tests/fixtures, which ships with the repository.
pub fn fixture(name: &str) -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect()
}

/// `N` distinct ports that were free a moment ago. All of them are held until every one is
/// read, so two calls in a row cannot hand out the same port (binding one at a time and
/// letting it go could, and a server then refused PORT == WS_PORT).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("local addr").port())
}

// ---- issue 17.6 (one client, one user factory): requests and users through the TestApp ----

/// The password of every user [`register_user`] makes.
pub const PASSWORD: &str = "Secret#123";

impl TestApp {
    /// A request to this server's HTTP port (see [`Call`]).
    pub fn call(&self, method: &str, path: &str) -> Call {
        Call::new(self.http, method, path)
    }

    /// Registers a user by email, named "Test User".
    pub fn register(&self, email: &str) -> TestUser {
        register_user(self.http, email, "Test User")
    }

    /// Registers a user by email with this full name.
    pub fn register_as(&self, email: &str, full_name: &str) -> TestUser {
        register_user(self.http, email, full_name)
    }

    /// The ids of a category's allocation types, in catalogue order.
    pub fn type_ids(&self, token: &str, category: &str) -> Vec<String> {
        let all = self.call("GET", "/api/v1/allocations").auth(token).send();
        assert_eq!(all.status, 200, "GET /api/v1/allocations: {}", all.text());
        let all = all.json();
        let cat = all["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .find(|c| c["name"] == category)
            .unwrap_or_else(|| panic!("no category {category}"));
        cat["allocation_types"]
            .as_array()
            .expect("allocation_types")
            .iter()
            .map(|ty| ty["id"].as_str().expect("type id").to_string())
            .collect()
    }
}

/// A user registered by email: its tokens and the id `/users/me` reports.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub email: String,
    pub id: String,
    /// The access token.
    pub token: String,
    pub refresh: String,
}

/// Registers by email with [`PASSWORD`] on the server at `addr` (a test server or a child
/// process), then asks `/users/me` who that is.
pub fn register_user(addr: SocketAddr, email: &str, full_name: &str) -> TestUser {
    let body = serde_json::json!({"email": email, "password": PASSWORD, "full_name": full_name});
    let r = post_json(addr, "/api/v1/auth/register", &body);
    assert_eq!(r.status, 201, "register {email}: {}", r.text());
    let tokens = r.json();
    let field = |name: &str| tokens[name].as_str().expect(name).to_string();
    let (token, refresh) = (field("access_token"), field("refresh_token"));
    let me = get_auth(addr, "/api/v1/users/me", &token);
    assert_eq!(me.status, 200, "/users/me: {}", me.text());
    let id = me.json()["user_id"].as_str().expect("user_id").to_string();
    TestUser {
        email: email.to_string(),
        id,
        token,
        refresh,
    }
}

// ---- shared by several binaries: polling, child processes, 2xx replies ----

/// Polls `ok` every 20 ms until it holds or `limit` has passed; says whether it held.
pub fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed and reaped whatever happens, so a failing test leaves no server
/// behind.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON of a reply that must be a 2xx; `what` names the call in the failure.
pub fn ok_json(r: Reply, what: &str) -> Value {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    r.json()
}
