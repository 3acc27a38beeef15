//! The access log is written by one writer thread in batches (issue 11, item 2): a clean
//! shutdown still writes every line, and a log that cannot keep up drops lines and counts
//! them instead of making requests wait.
//!
//! Both run the built binary with its stderr (where the log goes) in a file or a pipe.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{ChildGuard as Guard, TempDir};

impl Guard {
    /// SIGTERM (a clean shutdown), then the exit status within `limit`.
    fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Starts the binary with `extra` settings and `stderr`; returns once `/health` answers.
fn start(dir: &TempDir, extra: &[(&str, &str)], stderr: Stdio) -> (Guard, SocketAddr) {
    let [port, ws_port] = common::free_ports();
    let db = dir.0.join("log.db");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wealthcoach"));
    cmd.arg("serve")
        .current_dir(&dir.0)
        .env("ENVIRONMENT", "test")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("WS_PORT", ws_port.to_string())
        .env("DATABASE_URL", db.to_str().expect("utf-8 path"))
        .env("JWT_SECRET_KEY", "access-log-test-secret-0123456789abcdefg")
        .env("RATE_LIMIT_ENABLED", "false")
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = Guard(cmd.spawn().expect("start the server"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Conn::open(addr)
            && c.get("/health", "ready").0 == 200
        {
            break;
        }
        assert!(child.0.try_wait().expect("try_wait").is_none(), "exited");
        assert!(Instant::now() < until, "no /health within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, addr)
}

/// A keep-alive connection that reads answers by their `Content-Length`.
struct Conn(BufReader<TcpStream>);

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn(BufReader::new(s)))
    }

    /// `GET path` with `X-Request-Id: rid`: the status and the body.
    fn get(&mut self, path: &str, rid: &str) -> (u16, String) {
        let head = format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {rid}\r\n\r\n");
        self.0
            .get_mut()
            .write_all(head.as_bytes())
            .expect("write request");
        let mut status = String::new();
        self.0.read_line(&mut status).expect("status line");
        let code = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0;
        loop {
            let mut line = String::new();
            self.0.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).expect("body");
        (code, String::from_utf8_lossy(&body).into_owned())
    }
}

/// `clients` connections, each sending `per_client` `GET /health` with the request id
/// `{prefix}-{client}-{n}`; panics unless every answer is 200. Returns the ids.
fn health_load(addr: SocketAddr, clients: usize, per_client: usize, prefix: &str) -> Vec<String> {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let prefix = prefix.to_string();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr).expect("connect");
                (0..per_client)
                    .map(|n| {
                        let rid = format!("{prefix}-{c}-{n}");
                        assert_eq!(conn.get("/health", &rid).0, 200, "{rid}");
                        rid
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect()
}

#[test]
fn every_access_log_line_is_written_by_a_clean_shutdown() {
    let dir = TempDir::new();
    let log_path = dir.0.join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (mut server, addr) = start(&dir, &[], Stdio::from(log));
    let rids = health_load(addr, 8, 250, "clean");
    // The stop comes right after the last answer, while lines may still be queued.
    let status = server
        .terminate(Duration::from_secs(30))
        .expect("the server stops within 30 s");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log_path).expect("read the log");
    let logged: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.contains("GET /health 200"))
        .filter_map(|l| l.split("rid=").nth(1))
        .collect();
    let missing: Vec<&String> = rids
        .iter()
        .filter(|r| !logged.contains(r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} access-log lines missing, e.g. {:?}",
        missing.len(),
        rids.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        text.lines().last().is_some_and(|l| l.ends_with("stopped")),
        "the last line is the stop"
    );
    assert!(!text.contains("log lines were dropped"), "nothing dropped");
}

#[test]
fn a_log_that_cannot_keep_up_drops_and_counts_lines_and_requests_do_not_wait() {
    let dir = TempDir::new();
    // Nobody reads the pipe: once its 64 KiB are full, every write to stderr blocks.
    let (mut server, addr) = start(&dir, &[("LOG_BUFFER_BYTES", "4096")], Stdio::piped());
    let started = Instant::now();
    let rids = health_load(addr, 4, 500, "flood");
    assert_eq!(rids.len(), 2000);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "2,000 requests took {took:?}"
    );

    let mut conn = Conn::open(addr).expect("connect");
    let (code, body) = conn.get("/api/v1/metrics", "m");
    assert_eq!(code, 200, "{body}");
    let metrics: serde_json::Value = serde_json::from_str(&body).expect("json");
    let dropped = metrics["log"]["dropped_lines"]
        .as_u64()
        .expect("log.dropped_lines");
    assert!(dropped > 0, "{metrics}");
    let (code, body) = conn.get("/metrics", "p");
    assert_eq!(code, 200);
    let line = body
        .lines()
        .find(|l| l.starts_with("wealthcoach_log_lines_dropped_total "))
        .expect("the Prometheus counter");
    let prom: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    assert!(prom >= dropped, "{line} vs {dropped}");
    let (code, body) = conn.get("/api/v1/health/detailed", "d");
    assert_eq!(code, 200);
    let detailed: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(
        detailed["dependencies"]["log"]["dropped_lines"]
            .as_u64()
            .is_some_and(|n| n >= dropped),
        "{detailed}"
    );
    drop(conn);

    // Once the log is read again, the writer says what it lost, and the stop is clean.
    let mut pipe = server.0.stderr.take().expect("the stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let status = server
        .terminate(Duration::from_secs(30))
        .expect("the server stops within 30 s");
    assert_eq!(status.code(), Some(0));
    let text = reader.join().expect("reader");
    assert!(
        text.contains("log lines were dropped"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    assert!(text.lines().last().is_some_and(|l| l.ends_with("stopped")));
}
