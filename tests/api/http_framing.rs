//! Request smuggling over one raw TCP connection, no proxy needed: a request whose framing is
//! ambiguous (two `Content-Length`s, one that is not plain digits, `Content-Length` with
//! `Transfer-Encoding`) carries a second request, `GET /smuggled`, in what a front proxy would
//! call its body. Each must get exactly one response, a 400, and then the connection closes;
//! the request counter proves `GET /smuggled` never reached the router.

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: t\r\nX-Pad: 12345\r\n\r\n";

/// What came back on one connection: every byte until the server closed it (or 5 s passed).
struct Outcome {
    raw: String,
    closed: bool,
}

impl Outcome {
    /// Status of every response in the stream (no body here holds a status line).
    fn statuses(&self) -> Vec<u16> {
        self.raw
            .match_indices("HTTP/1.1 ")
            .filter_map(|(i, _)| self.raw.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

fn send(addr: SocketAddr, bytes: &[u8]) -> Outcome {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s.write_all(bytes).expect("send");
    let until = Instant::now() + Duration::from_secs(5);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() > until {
                    break false;
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    };
    Outcome {
        raw: String::from_utf8_lossy(&raw).into_owned(),
        closed,
    }
}

fn requests_total(t: &TestApp) -> u64 {
    t.app().metrics.requests_total.load(Ordering::SeqCst)
}

/// A request with `framing` header lines and `body` after its head.
fn head(framing: &[String], body: &str) -> Vec<u8> {
    let mut s = String::from("GET /api/v1/health HTTP/1.1\r\nHost: t\r\n");
    for line in framing {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

#[test]
fn ambiguous_framing_gets_one_400_and_the_smuggled_request_never_runs() {
    let t = spawn_app();
    let n = SMUGGLED.len();
    // A chunked body that ends at once, with the smuggled request after it.
    let chunked = format!("0\r\n\r\n{SMUGGLED}");
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "CL 0 then CL n",
            vec!["Content-Length: 0".into(), format!("Content-Length: {n}")],
            SMUGGLED.into(),
        ),
        (
            "CL 0 then CL n, garbage after",
            vec!["Content-Length: 0".into(), "Content-Length: 30".into()],
            "this is no request at all\r\n\r\n".into(),
        ),
        (
            "a large CL first, never sent",
            vec!["Content-Length: 5000".into(), "Content-Length: 0".into()],
            SMUGGLED.into(),
        ),
        (
            "CL n then CL 0",
            vec![format!("Content-Length: {n}"), "Content-Length: 0".into()],
            SMUGGLED.into(),
        ),
        (
            "two equal CLs",
            vec![
                format!("Content-Length: {n}"),
                format!("Content-Length: {n}"),
            ],
            SMUGGLED.into(),
        ),
        (
            "CL +n",
            vec![format!("Content-Length: +{n}")],
            SMUGGLED.into(),
        ),
        (
            "CL in hex",
            vec![format!("Content-Length: 0x{n:x}")],
            SMUGGLED.into(),
        ),
        (
            "CL with inner space",
            vec![format!("Content-Length: {} {}", n / 10, n % 10)],
            SMUGGLED.into(),
        ),
        (
            "CL past usize",
            vec!["Content-Length: 99999999999999999999999".into()],
            SMUGGLED.into(),
        ),
        (
            "CL then TE chunked",
            vec![
                format!("Content-Length: {}", chunked.len()),
                "Transfer-Encoding: chunked".into(),
            ],
            chunked.clone(),
        ),
        (
            "TE chunked then CL",
            vec![
                "Transfer-Encoding: chunked".into(),
                format!("Content-Length: {}", chunked.len()),
            ],
            chunked.clone(),
        ),
        (
            "TE chunked with a hex CL",
            vec![
                "Transfer-Encoding: chunked".into(),
                format!("Content-Length: 0x{:x}", chunked.len()),
            ],
            chunked.clone(),
        ),
        (
            "two TE lines",
            vec![
                "Transfer-Encoding: chunked".into(),
                "Transfer-Encoding: chunked".into(),
            ],
            chunked.clone(),
        ),
    ];
    for (what, framing, body) in cases {
        let before = requests_total(&t);
        let out = send(t.http, &head(&framing, &body));
        assert_eq!(out.statuses(), vec![400], "{what}: {}", out.raw);
        assert!(out.closed, "{what}: connection left open: {}", out.raw);
        assert!(!out.raw.contains("\"status\""), "{what}: {}", out.raw);
        // Whatever was queued behind it has been dealt with by now.
        std::thread::sleep(Duration::from_millis(300));
        let counted = requests_total(&t) - before;
        // Our own refusal counts once; the fork's own 400 (CL with TE) never reaches us.
        let ours = u64::from(out.raw.contains("invalid_framing"));
        assert_eq!(
            counted, ours,
            "{what}: {counted} requests reached the router"
        );
    }
    // The server is fine afterwards.
    assert_eq!(get(t.http, "/api/v1/health").status, 200);
}

#[test]
fn our_refusal_says_why_in_the_usual_error_body() {
    let t = spawn_app();
    let out = send(
        t.http,
        &head(
            &["Content-Length: 0".into(), "Content-Length: 5".into()],
            "hello",
        ),
    );
    let body_at = out.raw.find("\r\n\r\n").expect("head") + 4;
    let body: serde_json::Value = serde_json::from_str(&out.raw[body_at..]).expect("json");
    assert_eq!(body["code"], "invalid_framing");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("more than one Content-Length"),
        "{body}"
    );
    assert!(
        out.raw.to_ascii_lowercase().contains("connection: close"),
        "{}",
        out.raw
    );
}

#[test]
fn trailing_whitespace_in_content_length_is_not_ambiguous() {
    // "44 " is 44 with optional whitespace (RFC 9110 section 5.5); tiny_http strips it before we
    // see the value, and reads exactly that many bytes: the body is a body, not a request.
    let t = spawn_app();
    let before = requests_total(&t);
    let mut bytes = format!(
        "POST /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {} \r\n\r\n",
        SMUGGLED.len()
    )
    .into_bytes();
    bytes.extend_from_slice(SMUGGLED.as_bytes());
    let out = send(t.http, &bytes);
    assert_eq!(out.statuses(), vec![404], "{}", out.raw);
    assert!(out.closed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(requests_total(&t) - before, 1);
}

#[test]
fn pipelined_keep_alive_requests_still_get_every_answer_in_order() {
    let t = spawn_app();
    let before = requests_total(&t);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    bytes.extend_from_slice(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n");
    bytes.extend_from_slice(
        b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    );
    let out = send(t.http, &bytes);
    assert_eq!(out.statuses(), vec![404, 200, 200], "{}", out.raw);
    assert!(out.closed);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(requests_total(&t) - before, 3);
}

#[test]
fn a_good_request_ahead_of_a_refused_one_keeps_its_answer() {
    let t = spawn_app();
    let before = requests_total(&t);
    let mut bytes = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    bytes.extend(head(
        &[
            "Content-Length: 0".into(),
            format!("Content-Length: {}", SMUGGLED.len()),
        ],
        SMUGGLED,
    ));
    let out = send(t.http, &bytes);
    assert_eq!(out.statuses(), vec![200, 400], "{}", out.raw);
    assert!(out.closed, "{}", out.raw);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(requests_total(&t) - before, 2);
}
