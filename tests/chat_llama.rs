//! End to end against a real OpenAI-compatible upstream: llama.cpp's `llama-server` serving
//! the tiny `stories260K.gguf` (it writes children's stories, not advice; what matters is the
//! wire). `.ci/run` builds the server with `ci/build-llama-server.sh` and passes its path in
//! `LLAMA_SERVER_BIN`. Without it the test is skipped with a message, except in CI (`CI=true`),
//! where a missing server is a failure.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tungstenite::Message;

struct Llama(Child);

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn llama_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LLAMA_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("HOME").ok()?;
    let cached = PathBuf::from(home).join(".cache/wealthcoach/llama/b11434/llama-server");
    cached.exists().then_some(cached)
}

fn model() -> PathBuf {
    fixture("stories260K.gguf")
}

fn start_llama(bin: &PathBuf) -> (Llama, u16) {
    let [port] = common::free_ports();
    let child = Command::new(bin)
        .args(["-m"])
        .arg(model())
        // One slot with room for our system prompt (the README's -np 4 -c 512 gives each slot 128 tokens).
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-c",
            "2048",
            "-np",
            "1",
            "-t",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let llama = Llama(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| get(([127, 0, 0, 1], port).into(), "/health"));
        if r.is_some_and(|r| r.status == 200) {
            return (llama, port);
        }
        assert!(
            Instant::now() < deadline,
            "llama-server did not become healthy in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// llama-server on the model, and a server pointed at it with `extra` settings and one
/// user's token; `None` (after saying why) when there is no llama-server here.
fn llama_app(test: &str, extra: &[(&str, &str)]) -> Option<(Llama, TestApp, String)> {
    let Some(bin) = llama_binary() else {
        skip_unless_ci(
            test,
            "no llama-server (LLAMA_SERVER_BIN unset, none in ~/.cache/wealthcoach/llama)",
            "LLAMA_SERVER_BIN=\"$(bash ci/build-llama-server.sh)\"",
        );
        return None;
    };
    assert!(
        model().exists(),
        "the model {} is missing",
        model().display()
    );
    let (llama, port) = start_llama(&bin);
    let base = format!("http://127.0.0.1:{port}/v1");
    let mut pairs = vec![
        ("OPENAI_API_KEY", "local-llama"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("OPENAI_MODEL", "stories260K"),
        ("OPENAI_MAX_TOKENS", "24"),
        ("OPENAI_TIMEOUT", "30"),
    ];
    pairs.extend_from_slice(extra);
    let t = spawn_app_with(&pairs);
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"email": "l@example.com", "password": "Secret#123", "full_name": "Lily"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    Some((llama, t, token))
}

fn open_chat(t: &TestApp, token: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(t.ws).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{}/ws/chat?token={token}", t.ws), stream)
            .expect("upgrade");
    let hello = next_frame(&mut ws);
    assert_eq!(hello["type"], "connected");
    ws
}

fn next_frame(ws: &mut tungstenite::WebSocket<TcpStream>) -> Value {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => return serde_json::from_str::<Value>(t.as_str()).expect("json"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

#[test]
fn several_questions_on_one_socket_stream_from_llama_server() {
    // Tools off: this one watches a plain answer stream piece by piece.
    let Some((_llama, t, token)) = llama_app("chat_llama", &[("OPENAI_TOOLS", "off")]) else {
        return;
    };
    let mut ws = open_chat(&t, &token);

    // llama-server closes the connection after every streamed answer while looking
    // persistent; several questions in a row prove each one gets a working connection.
    for (i, question) in [
        "Once upon a time",
        "Tell me about a cat",
        "What happened next?",
    ]
    .iter()
    .enumerate()
    {
        ws.send(Message::text(
            json!({"type": "message", "content": question}).to_string(),
        ))
        .expect("send");
        let mut deltas = String::new();
        let last = loop {
            let f = match ws.read().expect("a frame") {
                Message::Text(t) => serde_json::from_str::<Value>(t.as_str()).expect("json"),
                other => panic!("unexpected {other:?}"),
            };
            assert_ne!(f["type"], "error", "question {i}: {f}");
            if f["done"] == true {
                break f;
            }
            deltas.push_str(f["delta"].as_str().expect("delta"));
            assert_eq!(f["content"], deltas.as_str(), "content is cumulative");
        };
        assert!(
            last.get("fallback").is_none(),
            "question {i} fell back: {last}"
        );
        assert_eq!(last["cached"], false);
        let content = last["content"].as_str().expect("content");
        assert!(!content.is_empty(), "question {i}: empty answer");
        assert_eq!(content, deltas, "the final frame holds every piece");
        assert!(
            last["usage"]["completion_tokens"].as_u64().expect("usage") > 0,
            "{last}"
        );
        assert!(
            last["usage"]["prompt_tokens"].as_u64().expect("usage") > 0,
            "{last}"
        );
    }
    let m = get(t.http, "/api/v1/metrics").json();
    assert_eq!(m["llm"]["requests"], 3);
    assert_eq!(m["llm"]["errors"], 0);
}

/// The same model offered tools (`OPENAI_TOOLS=on`, so a refusal would be a failure, not a
/// retry without them): the model is far too small to call them well, but every request with
/// tools must stream to its end with no error, question after question, over the WebSocket
/// and over SSE.
#[test]
fn questions_with_tools_stream_to_the_end_over_both_transports() {
    let Some((_llama, t, token)) = llama_app("chat_llama_tools", &[("OPENAI_TOOLS", "on")]) else {
        return;
    };
    let mut ws = open_chat(&t, &token);
    for (i, question) in ["Once upon a time", "Tell me about a cat", "What next?"]
        .iter()
        .enumerate()
    {
        ws.send(Message::text(
            json!({"type": "message", "content": question}).to_string(),
        ))
        .expect("send");
        let last = loop {
            let f = next_frame(&mut ws);
            assert_ne!(f["type"], "error", "question {i}: {f}");
            if f["done"] == true {
                break f;
            }
        };
        assert!(
            last.get("fallback").is_none(),
            "question {i} fell back: {last}"
        );
        assert!(last["tools_used"].is_array(), "{last}");
        assert!(
            last["usage"]["prompt_tokens"].as_u64().expect("usage") > 0,
            "{last}"
        );
    }
    for (i, question) in ["A dog ran", "The sun rose"].iter().enumerate() {
        let r = send_json(
            t.http,
            "POST",
            "/api/v1/chat/message/stream",
            Some(&token),
            &json!({"message": question}),
        );
        assert_eq!(r.status, 200);
        let events: Vec<Value> = r
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("event"))
            .collect();
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert!(!kinds.contains(&"error"), "SSE question {i}: {events:?}");
        assert_eq!(kinds.first(), Some(&"session_id"));
        assert_eq!(kinds.last(), Some(&"done"));
        assert!(events.last().expect("done")["tools_used"].is_array());
    }
    let m = get(t.http, "/api/v1/metrics").json();
    assert_eq!(m["llm"]["errors"], 0, "no upstream failure: {m}");
    assert_eq!(m["llm"]["requests"], 5);
}
