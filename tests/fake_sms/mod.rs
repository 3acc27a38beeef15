//! A fake SMS gateway for tests: a tiny HTTP/1.1 server on 127.0.0.1 that records every request
//! and answers with whatever status, body and delay the test asked for. One thread accepts; each
//! connection gets a thread of its own and is kept alive until the client closes it or asks for
//! `Connection: close`. The server stops when the `FakeSms` is dropped.
//!
//! Use it from a test crate with `mod fake_sms;`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target: path and query, as sent (`/v2/sendSMS?username=...`).
    pub target: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query string's parameters, decoded.
    pub fn query(&self) -> HashMap<String, String> {
        parse_pairs(self.target.split_once('?').map_or("", |(_, q)| q))
    }

    /// An `application/x-www-form-urlencoded` body's fields, decoded.
    pub fn form(&self) -> HashMap<String, String> {
        parse_pairs(&self.body)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("the request body is JSON")
    }
}

/// What the fake answers with; changed by the test while the server runs.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    reply: Mutex<Reply>,
    stopping: AtomicBool,
}

pub struct FakeSms {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeSms {
    /// Listens on a port the OS picks; answers 200 `{"status":"ok"}` until told otherwise.
    pub fn start() -> FakeSms {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake SMS gateway");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            reply: Mutex::new(Reply {
                status: 200,
                body: r#"{"status":"ok"}"#.to_string(),
                delay: Duration::ZERO,
            }),
            stopping: AtomicBool::new(false),
        });
        let for_thread = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(listener, for_thread));
        FakeSms {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The webhook URL: `http://127.0.0.1:PORT/sms`.
    pub fn url(&self) -> String {
        format!("{}/sms", self.base_url())
    }

    /// Scheme, host and port only, for providers that add their own paths.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Option<Recorded> {
        self.shared.requests.lock().unwrap().last().cloned()
    }

    pub fn set_status(&self, status: u16) {
        self.change(|r| r.status = status);
    }

    pub fn set_body(&self, body: &str) {
        self.change(|r| r.body = body.to_string());
    }

    /// Waits this long before answering (the request is recorded at once).
    pub fn set_delay(&self, delay: Duration) {
        self.change(|r| r.delay = delay);
    }

    /// The 6-digit code in the last webhook request's `message`, if there is one.
    pub fn last_code(&self) -> Option<String> {
        let last = self.last()?;
        let value: serde_json::Value = serde_json::from_str(&last.body).ok()?;
        find_code(value.get("message")?.as_str()?)
    }

    fn change(&self, f: impl FnOnce(&mut Reply)) {
        f(&mut self.shared.reply.lock().unwrap());
    }
}

impl Drop for FakeSms {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// The first run of exactly six digits.
fn find_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_string)
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || serve(stream, &shared));
    }
}

/// Answers requests on one connection until it closes, asks to, or idles for 5 s.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some((request, keep_alive)) = read_request(&mut reader) {
        shared.requests.lock().unwrap().push(request);
        let reply = shared.reply.lock().unwrap().clone();
        std::thread::sleep(reply.delay);
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        let written = writer
            .write_all(head.as_bytes())
            .and_then(|_| writer.write_all(reply.body.as_bytes()))
            .and_then(|_| writer.flush());
        if written.is_err() || !keep_alive {
            return;
        }
    }
}

/// One request and whether the connection stays open after it; `None` at end of stream or on
/// anything unparsable.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(Recorded, bool)> {
    let request_line = read_line(reader)?;
    let mut parts = request_line.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length: usize = find("content-length").map_or(Some(0), |v| v.parse().ok())?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        body
    };
    let keep_alive = match find("connection").as_deref() {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    let request = Recorded {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    Some((request, keep_alive))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            while !read_line(reader)?.is_empty() {}
            return Some(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        read_line(reader)?;
    }
}

/// A line without its CRLF; `None` at end of stream.
fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `a=1&b=x%20y` (also `+` for a space) into a map, decoded the way the server decodes.
fn parse_pairs(text: &str) -> HashMap<String, String> {
    wealthcoach::http::request::parse_query(text)
        .into_iter()
        .collect()
}
