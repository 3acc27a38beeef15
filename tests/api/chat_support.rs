//! What the chat tests (chat_ws, chat_http, chat_faults) share: a server pointed at the fake
//! LLM, users with numbers and a profile, a WebSocket client whose every read is bounded, and
//! readers for what the fake recorded.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::common::{Reply, TestApp, get_auth, spawn_app_with};
use crate::fake_llm::{FakeLlm, Recorded};

/// The longest a socket read may block before the test calls it a hang.
pub const READ_LIMIT: Duration = Duration::from_secs(10);
/// What every client shows when the model fails.
pub const FAILED: &str = "Failed to generate response. Please try again.";
/// The fake's default answer, [`crate::fake_llm::DEFAULT_PIECES`] joined.
pub const HELLO: &str = "Hello, world!";

pub type Ws = WebSocket<TcpStream>;

/// A server whose upstream is the fake, with a 2 s upstream timeout; `extra` adds or overrides.
pub fn app_with_llm(fake: &FakeLlm, extra: &[(&str, &str)]) -> TestApp {
    let base = fake.base_url();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("OPENAI_API_KEY", "test-key"),
        ("OPENAI_BASE_URL", &base),
        ("OPENAI_TIMEOUT", "2"),
    ];
    pairs.extend_from_slice(extra);
    spawn_app_with(&pairs)
}

/// The usual start of a chat test: the fake, a server pointed at it, and one user.
pub fn coach(extra: &[(&str, &str)], email: &str, name: &str) -> (FakeLlm, TestApp, User) {
    let fake = FakeLlm::start();
    let t = app_with_llm(&fake, extra);
    let u = register(&t, email, name);
    (fake, t, u)
}

pub use crate::common::TestUser as User;
pub use crate::common::wait_until;

/// Registers by email with this full name.
pub fn register(t: &TestApp, email: &str, name: &str) -> User {
    t.register_as(email, name)
}

/// A bearer call that must answer `status`; its body as JSON.
pub fn call_ok(
    t: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
    status: u16,
) -> Value {
    let r = t.call(method, path).auth(token).json(body).send();
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    r.json()
}

pub fn delete(t: &TestApp, path: &str, token: &str) -> Reply {
    t.call("DELETE", path).auth(token).send()
}

/// Records income or expense dated now.
pub fn add_transaction(t: &TestApp, token: &str, kind: &str, amount: &str) {
    let body = json!({"type": kind, "category": "general", "amount": amount, "label": kind,
                      "transaction_date": t.app().clock.iso()});
    call_ok(t, "POST", "/api/v1/transactions", token, &body, 201);
}

/// The ids of a category's allocation types, in catalogue order.
pub fn type_ids(t: &TestApp, token: &str, category: &str) -> Vec<String> {
    t.type_ids(token, category)
}

pub fn set_budget(t: &TestApp, token: &str, type_id: &str, amount: &str) {
    let body = json!({"allocation_type_id": type_id, "budget_amount": amount});
    call_ok(t, "POST", "/api/v1/allocations/budget", token, &body, 200);
}

pub fn set_actual(t: &TestApp, token: &str, type_id: &str, amount: &str) {
    let body = json!({"allocation_type_id": type_id, "actual_amount": amount});
    call_ok(t, "POST", "/api/v1/allocations/actual", token, &body, 200);
}

/// Opens a WebSocket on the server's WebSocket port; reads and writes are bounded.
pub fn open(t: &TestApp, path: &str) -> Ws {
    let stream = TcpStream::connect(t.ws).expect("connect to the WebSocket port");
    stream
        .set_read_timeout(Some(READ_LIMIT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(READ_LIMIT))
        .expect("write timeout");
    let (ws, resp) =
        tungstenite::client::client(format!("ws://{}{path}", t.ws), stream).expect("upgrade");
    assert_eq!(resp.status(), 101);
    ws
}

/// `/ws/chat?token=`, past the `connected` frame; returns the socket's session id too.
pub fn chat(t: &TestApp, token: &str) -> (Ws, String) {
    let mut ws = open(t, &format!("/ws/chat?token={token}"));
    let hello = next_json(&mut ws);
    assert_eq!(hello["type"], "connected", "{hello}");
    let session = hello["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    (ws, session)
}

pub fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).expect("send a frame");
}

/// The next text frame as JSON (control frames skipped); panics on a close or a hang.
pub fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).expect("a JSON frame"),
            Ok(Message::Close(c)) => panic!("the server closed the socket: {c:?}"),
            Ok(_) => {}
            Err(e) => panic!("no frame: {e}"),
        }
    }
}

/// The close the server sends next, as (code, reason); any text frame before it is a failure.
pub fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => return (u16::from(f.code), f.reason.to_string()),
            Ok(Message::Close(None)) => return (1005, String::new()),
            Ok(Message::Text(t)) => panic!("expected a close, got {t}"),
            Ok(_) => {}
            Err(e) => panic!("the socket ended without a close frame: {e}"),
        }
    }
}

/// Closes from our side and reads until the server has answered the close.
pub fn hang_up(mut ws: Ws) {
    let _ = ws.close(None);
    while ws.read().is_ok() {}
}

pub fn ping(ws: &mut Ws) {
    send(ws, &json!({"type": "ping"}));
    assert_eq!(next_json(ws)["type"], "pong");
}

/// Asks on the socket's session; every frame up to and including the `done` one.
pub fn ask(ws: &mut Ws, question: &str) -> Vec<Value> {
    send(ws, &json!({"type": "message", "content": question}));
    until_done(ws)
}

/// Asks in the given conversation.
pub fn ask_in(ws: &mut Ws, question: &str, conversation: &str) -> Vec<Value> {
    send(
        ws,
        &json!({"type": "message", "content": question, "conversation_id": conversation}),
    );
    until_done(ws)
}

/// Frames until a `response` with `done: true`.
pub fn until_done(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = next_json(ws);
        let done = f["type"] == "response" && f["done"] == true;
        frames.push(f);
        if done {
            return frames;
        }
    }
}

/// The last frame of an answer, which must be `done`.
pub fn last(frames: &[Value]) -> &Value {
    let f = frames.last().expect("frames");
    assert_eq!(f["done"], true, "{f}");
    f
}

/// The frames of an answer the model could not give: optional deltas, one `error` with this
/// code, then the fallback. Returns the fallback text.
pub fn assert_fallback(frames: &[Value], code: &str) -> String {
    let errors: Vec<&Value> = frames.iter().filter(|f| f["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "one error frame: {frames:?}");
    assert_eq!(errors[0]["code"], code, "{frames:?}");
    let n = frames.len();
    assert!(
        n >= 2 && frames[n - 2]["type"] == "error",
        "the error comes just before the fallback: {frames:?}"
    );
    for f in &frames[..n - 2] {
        assert_eq!(f["type"], "response", "{f}");
        assert_eq!(f["done"], false, "{f}");
    }
    let f = last(frames);
    assert_eq!(f["type"], "response");
    assert_eq!(f["fallback"], true, "{f}");
    assert_ne!(f["cached"], true, "{f}");
    f["content"].as_str().expect("fallback content").to_string()
}

/// The text of a normal streamed answer, checking every frame on the way: cumulative
/// `content`, `delta`, and a final frame that is neither cached nor a fallback.
pub fn assert_streamed(frames: &[Value]) -> String {
    let mut so_far = String::new();
    for f in &frames[..frames.len() - 1] {
        assert_eq!(f["type"], "response", "{f}");
        assert_eq!(f["done"], false, "{f}");
        so_far.push_str(f["delta"].as_str().expect("delta"));
        assert_eq!(f["content"], so_far.as_str(), "content is cumulative");
    }
    let f = last(frames);
    assert_eq!(f["type"], "response");
    assert_eq!(f["cached"], false, "{f}");
    assert!(f.get("fallback").is_none_or(|v| v == false), "{f}");
    assert_eq!(f["content"], so_far.as_str());
    so_far
}

fn role_and_content(m: &Value) -> (String, String) {
    let text = |k: &str| {
        m[k].as_str()
            .unwrap_or_else(|| panic!("{k} in {m}"))
            .to_string()
    };
    (text("role"), text("content"))
}

/// A request's messages as (role, content).
pub fn messages_of(r: &Recorded) -> Vec<(String, String)> {
    r.json["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(role_and_content)
        .collect()
}

/// The system prompt the request carried (its first message).
pub fn system_prompt(r: &Recorded) -> String {
    let m = messages_of(r);
    assert_eq!(m[0].0, "system");
    m[0].1.clone()
}

/// The usage the fake reports for this request: the words of the messages, and one
/// completion token per piece.
pub fn fake_usage(r: &Recorded, pieces: usize) -> (u64, u64) {
    let words: usize = messages_of(r)
        .iter()
        .map(|(_, c)| c.split_whitespace().count())
        .sum();
    (words.max(1) as u64, pieces as u64)
}

/// A session's messages as (role, content), oldest first.
pub fn saved(t: &TestApp, token: &str, session: &str) -> Vec<(String, String)> {
    let r = get_auth(
        t.http,
        &format!("/api/v1/chat/sessions/{session}/messages?limit=200"),
        token,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(role_and_content)
        .collect()
}

/// (role, content) pairs from literals.
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(r, c)| (r.to_string(), c.to_string()))
        .collect()
}
