//! Hostile and careless WebSocket clients against the real WebSocket listener: plain HTTP on
//! the WebSocket port, unknown paths, missing or forged tokens, bad JSON, oversized frames and
//! messages, a client that vanishes mid-frame, too many sockets, and a server stop. Afterwards
//! the port still upgrades new (authenticated) sockets and `GET /health` still answers 200.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// The longest any read may block before the test counts it as a hang.
const PROMPT: Duration = Duration::from_secs(5);

type Ws = WebSocket<TcpStream>;

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PROMPT)).expect("read timeout");
    s.set_write_timeout(Some(PROMPT)).expect("write timeout");
    s
}

/// Upgrades a fresh connection to `path`, or returns the handshake's HTTP refusal.
fn upgrade(addr: SocketAddr, path: &str) -> Result<Ws, (u16, Value)> {
    let url = format!("ws://{addr}{path}");
    match tungstenite::client::client(url.as_str(), tcp(addr)) {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let body = resp.body().as_deref().unwrap_or_default();
            let json = serde_json::from_slice(body).unwrap_or(Value::Null);
            Err((resp.status().as_u16(), json))
        }
        Err(e) => panic!("handshake to {path} failed: {e}"),
    }
}

fn open(addr: SocketAddr, path: &str) -> Ws {
    upgrade(addr, path).unwrap_or_else(|(status, body)| panic!("{path}: {status} {body}"))
}

fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).expect("send");
}

/// The next text frame as JSON, skipping control frames and heartbeats; panics on anything
/// else or after `PROMPT`.
fn next_json(ws: &mut Ws) -> Value {
    for _ in 0..16 {
        match ws.read().expect("read a frame") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                if v["type"] != "heartbeat" {
                    return v;
                }
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
    panic!("no text frame among 16 frames");
}

fn assert_ping_pong(ws: &mut Ws) {
    send(ws, &json!({"type": "ping"}));
    assert_eq!(next_json(ws)["type"], "pong");
}

/// The close code the server sends next (skipping data frames), or `None` if the connection
/// ended without a close frame.
fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    for _ in 0..64 {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    }
    None
}

/// One client frame, masked as RFC 6455 requires of clients.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], declared: Option<u64>) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let len = declared.unwrap_or(payload.len() as u64);
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A server and the access token of a user registered on it (each test has its own
/// database, so the same address is fine everywhere).
struct Served {
    t: TestApp,
    token: String,
}

fn served(extra: &[(&str, &str)]) -> Served {
    let t = spawn_app_with(extra);
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"email": "hostile@example.com", "password": "Hostile#Pass42",
                "full_name": "Hostile Tester"}),
    );
    assert_eq!(r.status, 201, "register: {}", r.text());
    let token = r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    Served { t, token }
}

impl Served {
    /// An authenticated socket on `path`, past its `connected` frame and answering a ping,
    /// before the test does anything hostile with it.
    fn open_live(&self, path: &str) -> Ws {
        let mut ws = open(self.t.ws, &format!("{path}?token={}", self.token));
        assert_eq!(next_json(&mut ws)["type"], "connected");
        assert_ping_pong(&mut ws);
        ws
    }

    /// `websocket.connections` from the JSON metrics, polled (bounded) until it is `want`;
    /// returns the last value seen.
    fn wait_for_sockets(&self, want: i64) -> i64 {
        let until = Instant::now() + PROMPT;
        loop {
            let n = get(self.t.http, "/api/v1/metrics").json()["websocket"]["connections"]
                .as_i64()
                .expect("websocket.connections");
            if n == want || Instant::now() >= until {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After an attack: a new socket works, and `/health` answers 200.
    fn assert_still_serving(&self, path: &str) {
        drop(self.open_live(path));
        let r = get(self.t.http, "/health");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "healthy");
    }
}

/// Case 4: what is not a WebSocket upgrade gets a JSON 426; an upgrade to a path we do not
/// serve gets a JSON 404 from the handshake; a socket without a valid token is closed 1008.
#[test]
fn plain_http_gets_426_unknown_paths_404_and_bad_tokens_1008() {
    let s = served(&[]);
    let t = &s.t;
    for path in ["/ws/chat", "/", "/health"] {
        let r = request(t.ws, "GET", path, &[], None);
        assert_eq!(r.status, 426, "GET {path}");
        assert_eq!(r.json()["code"], "upgrade_required");
        assert_eq!(r.header("Upgrade"), Some("websocket"));
    }
    let (status, body) = upgrade(t.ws, "/ws/nothing").expect_err("refused");
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Not Found", "code": "not_found"}));

    // No token, and a first message that is not `authenticate`.
    let mut ws = open(t.ws, "/ws/chat");
    send(&mut ws, &json!({"type": "ping"}));
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));
    // A forged token.
    let mut ws = open(t.ws, "/ws/notifications?token=not.a.token");
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));

    s.assert_still_serving("/ws/notifications");
}

/// Case 5: ping → pong; invalid JSON → an error frame, and the socket stays usable.
#[test]
fn bad_json_gets_an_error_frame_and_the_socket_stays_open() {
    let s = served(&[]);
    let mut ws = s.open_live("/ws/chat");

    ws.send(Message::text("{not json")).expect("send");
    let e = next_json(&mut ws);
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "invalid_json");
    assert_eq!(e["message"], "Invalid JSON format");
    assert_ping_pong(&mut ws);

    // Binary garbage gets the same error frame, not a closed socket.
    ws.send(Message::binary(vec![0xffu8; 100])).expect("send");
    assert_eq!(next_json(&mut ws)["code"], "invalid_json");
    assert_ping_pong(&mut ws);
    s.assert_still_serving("/ws/notifications");
}

/// Case 6: one frame over `WS_MAX_FRAME_BYTES` (64 KiB) → close 1009; so does a message of
/// small fragments that adds up to more. The port still serves new sockets.
#[test]
fn oversized_frames_and_messages_are_closed_with_1009() {
    let s = served(&[]);
    let mut ws = s.open_live("/ws/chat");
    ws.send(Message::text("x".repeat(70_000)))
        .expect("send big frame");
    assert_eq!(close_code(&mut ws), Some(CloseCode::Size));
    drop(ws);

    // 80 fragments of 1 KiB: each frame is small, the message is not.
    let mut ws = s.open_live("/ws/chat");
    let chunk = vec![b'y'; 1024];
    let mut raw = client_frame(false, 0x1, &chunk, None);
    for i in 1..80 {
        raw.extend(client_frame(i == 79, 0x0, &chunk, None));
    }
    // The server may close before it has read everything; a failed write is fine here.
    let _ = ws.get_mut().write_all(&raw);
    assert_eq!(close_code(&mut ws), Some(CloseCode::Size));
    drop(ws);

    assert_eq!(s.wait_for_sockets(0), 0);
    s.assert_still_serving("/ws/chat");
}

/// Case 7: a client that announces a 1000-byte frame, sends 10 bytes and vanishes: the
/// socket's thread ends (the open-socket count returns to 0) and new sockets still work.
#[test]
fn a_client_vanishing_mid_frame_releases_its_socket() {
    let s = served(&[]);
    let mut ws = s.open_live("/ws/chat");
    assert_eq!(s.wait_for_sockets(1), 1);

    let partial = client_frame(true, 0x1, &[b'z'; 10], Some(1000));
    ws.get_mut()
        .write_all(&partial)
        .expect("send partial frame");
    ws.get_mut().flush().expect("flush");
    std::thread::sleep(Duration::from_millis(100));
    drop(ws);

    let left = s.wait_for_sockets(0);
    assert_eq!(left, 0, "the socket thread did not end");
    s.assert_still_serving("/ws/chat");
}

/// More sockets than `WS_MAX_CONNECTIONS`: the extra one gets a JSON 503 at once, and a
/// socket slot freed by a client leaving can be used again.
#[test]
fn sockets_over_the_connection_cap_get_503() {
    let s = served(&[("WS_MAX_CONNECTIONS", "2")]);
    let mut a = s.open_live("/ws/chat");
    let b = s.open_live("/ws/notifications");
    assert_eq!(s.wait_for_sockets(2), 2);

    let mut extra = tcp(s.t.ws);
    extra
        .write_all(b"GET /ws/chat HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let r = read_reply(&mut extra);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "too_many_connections");

    drop(b);
    assert_eq!(s.wait_for_sockets(1), 1);
    s.assert_still_serving("/ws/chat");
    assert_ping_pong(&mut a);
}

/// Case 8: a graceful stop closes open sockets with 1001 (going away).
#[test]
fn graceful_stop_closes_sockets_with_1001() {
    let mut s = served(&[]);
    let mut chat = s.open_live("/ws/chat");
    let mut notes = s.open_live("/ws/notifications");

    let running = s.t.running.take().expect("running");
    let started = Instant::now();
    let stopper = std::thread::spawn(move || running.shutdown());
    assert_eq!(close_code(&mut chat), Some(CloseCode::Away));
    assert_eq!(close_code(&mut notes), Some(CloseCode::Away));
    // Both sides have closed: tungstenite answers the close and then reports it.
    for ws in [&mut chat, &mut notes] {
        let _ = ws.flush();
        assert!(matches!(
            ws.read(),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)
        ));
    }
    let until = Instant::now() + Duration::from_secs(10);
    while !stopper.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(stopper.is_finished(), "shutdown did not return");
    stopper.join().expect("shutdown thread");
    eprintln!(
        "graceful stop with two sockets took {:?}",
        started.elapsed()
    );
    // The listener is gone: new sockets are refused.
    assert!(TcpStream::connect_timeout(&s.t.ws, Duration::from_secs(1)).is_err());
}
