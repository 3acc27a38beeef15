//! Shared test harness: start the real server in-process on ports the OS picks, with its own
//! database in a fresh temporary folder, and talk HTTP to it like the app does.

#![allow(dead_code)]

use std::io::{Read, Write};
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
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
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
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request with `Connection: close`, raw over TCP, so tests control every byte.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    if let Some(b) = body {
        s.write_all(b).expect("write body");
    }
    read_reply(&mut s)
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], None)
}

pub fn get_auth(addr: SocketAddr, path: &str, token: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    request(addr, "GET", path, &[("Authorization", &bearer)], None)
}

pub fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    let b = body.to_string();
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(b.as_bytes()),
    )
}

pub fn send_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Reply {
    let b = body.to_string();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    request(addr, method, path, &headers, Some(b.as_bytes()))
}

/// Reads a whole response (Content-Length, chunked, or until close).
pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).expect("read response head");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = s.read(&mut buf).expect("read body");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        body.truncate(len);
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(done) = dechunk(&body) {
                body = done;
                break;
            }
            let n = s.read(&mut buf).expect("read chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
    } else if status != 204 && status != 304 {
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The body of a complete chunked message, or `None` if more bytes are needed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
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
