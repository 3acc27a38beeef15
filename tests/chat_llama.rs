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

#[test]
fn several_questions_on_one_socket_stream_from_llama_server() {
    let Some(bin) = llama_binary() else {
        skip_unless_ci(
            "chat_llama",
            "no llama-server (LLAMA_SERVER_BIN unset, none in ~/.cache/wealthcoach/llama)",
            "LLAMA_SERVER_BIN=\"$(bash ci/build-llama-server.sh)\"",
        );
        return;
    };
    assert!(
        model().exists(),
        "the model {} is missing",
        model().display()
    );
    let (_llama, port) = start_llama(&bin);
    let base = format!("http://127.0.0.1:{port}/v1");
    let t = spawn_app_with(&[
        ("OPENAI_API_KEY", "local-llama"),
        ("OPENAI_BASE_URL", &base),
        ("OPENAI_MODEL", "stories260K"),
        ("OPENAI_MAX_TOKENS", "24"),
        ("OPENAI_TIMEOUT", "30"),
    ]);
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

    let stream = TcpStream::connect(t.ws).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://{}/ws/chat?token={token}", t.ws), stream)
            .expect("upgrade");
    let hello = loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => break serde_json::from_str::<Value>(t.as_str()).expect("json"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    };
    assert_eq!(hello["type"], "connected");

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
