//! Checks the fake OpenAI-compatible server in `fake_llm` with a raw TCP client, so the tests
//! that use it against the server under test can trust what it sends.

use crate::{common, fake_llm};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Reply, read_reply_buffered};
use fake_llm::{FakeLlm, Fault, SPLIT_UTF8_PIECES};
use serde_json::{Value, json};

/// What these tests read in a fake's event stream.
trait Events {
    /// The payload of every `data:` line, in order.
    fn data(&self) -> Vec<String>;

    /// The `data:` payloads that are JSON chunks (not `[DONE]`).
    fn chunk_events(&self) -> Vec<Value> {
        self.data()
            .iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).expect("a JSON chunk"))
            .collect()
    }

    /// The `delta.content` of every chunk, in order.
    fn pieces(&self) -> Vec<String> {
        self.chunk_events()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }

    fn ends_with_done(&self) -> bool {
        self.data().last().map(String::as_str) == Some("[DONE]")
    }
}

impl Events for Reply {
    fn data(&self) -> Vec<String> {
        String::from_utf8(self.body.clone())
            .expect("the body is valid UTF-8")
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }
}

fn connect(fake: &FakeLlm) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(fake.addr()).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    BufReader::new(stream)
}

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "test-model",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a coach"},
            {"role": "user", "content": "How do I save?"},
        ],
    })
}

/// Sends a chat request with a `Content-Length` body and an API key.
fn send(conn: &mut BufReader<TcpStream>, body: &Value) {
    let body = body.to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer sk-test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut().write_all(request.as_bytes()).unwrap();
}

fn line(conn: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    conn.read_line(&mut line).expect("read a line");
    line.trim_end_matches(['\r', '\n']).to_string()
}

/// Reads one response, leaving the connection at the next one.
fn read_reply(conn: &mut BufReader<TcpStream>) -> Reply {
    read_reply_buffered(conn)
}

fn chat(fake: &FakeLlm, body: &Value) -> Reply {
    let mut conn = connect(fake);
    send(&mut conn, body);
    read_reply(&mut conn)
}

#[test]
fn default_stream_sends_the_pieces_in_openai_chunks_then_done() {
    let fake = FakeLlm::start();
    assert!(fake.base_url().starts_with("http://127.0.0.1:"));
    assert!(fake.base_url().ends_with("/v1"));

    let reply = chat(&fake, &chat_body(true));

    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.header("connection"), Some("close"));
    assert_eq!(reply.pieces(), ["Hello", ", ", "world", "!"]);
    assert!(reply.ends_with_done());
    let chunks = reply.chunk_events();
    assert_eq!(chunks.len(), 5, "four pieces and the stop chunk");
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-1");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "test-model");
        assert!(chunk["created"].as_u64().unwrap() > 1_600_000_000);
        assert!(chunk.get("usage").is_none(), "usage was not asked for");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[1]["choices"][0]["delta"].get("role").is_none());
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(fake.completed_count(), 1);
    assert_eq!(fake.client_closed_count(), 0);

    assert_eq!(fake.request_count(), 1);
    let request = fake.last_request().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/v1/chat/completions");
    assert_eq!(request.header("Authorization"), Some("Bearer sk-test"));
    assert!(request.headers.iter().any(|(k, _)| k == "authorization"));
    assert_eq!(request.json["messages"][1]["content"], "How do I save?");
    assert!(request.is_stream());
}

#[test]
fn usage_chunk_comes_when_asked_unless_turned_off() {
    let fake = FakeLlm::start();
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});

    let reply = chat(&fake, &body);
    let chunks = reply.chunk_events();
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    // "You are a coach" + "How do I save?": 8 words; 4 pieces.
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12})
    );
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );
    assert!(reply.ends_with_done());

    fake.set_usage(false);
    let reply = chat(&fake, &body);
    assert!(
        reply
            .chunk_events()
            .iter()
            .all(|c| c.get("usage").is_none())
    );
    assert!(reply.ends_with_done());
}

#[test]
fn non_streaming_request_gets_one_completion_object() {
    let fake = FakeLlm::start();
    fake.set_pieces(vec!["Save ".into(), "more".into()]);
    let reply = chat(&fake, &chat_body(false));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "test-model");
    assert_eq!(answer["choices"][0]["message"]["role"], "assistant");
    assert_eq!(answer["choices"][0]["message"]["content"], "Save more");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 2);
}

#[test]
fn status_fault_answers_with_that_status_and_body() {
    let fake = FakeLlm::start();
    let body = r#"{"error":{"message":"rate limited"}}"#;
    fake.set_fault(Fault::Status(429, body.to_string()));
    for _ in 0..2 {
        let reply = chat(&fake, &chat_body(true));
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.text(), body);
    }
    assert_eq!(fake.completed_count(), 0);
}

#[test]
fn fault_once_applies_to_the_next_request_only() {
    let fake = FakeLlm::start();
    fake.set_fault_once(Fault::Status(503, r#"{"error":{"message":"busy"}}"#.into()));
    assert_eq!(chat(&fake, &chat_body(true)).status, 503);
    let second = chat(&fake, &chat_body(true));
    assert_eq!(second.status, 200);
    assert!(second.ends_with_done());
    assert_eq!(fake.request_count(), 2);
    assert_eq!(fake.completed_count(), 1);
}

#[test]
fn drop_after_two_pieces_ends_without_done() {
    let fake = FakeLlm::start();
    fake.set_fault(Fault::DropAfter(2));
    let reply = chat(&fake, &chat_body(true));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.pieces(), ["Hello", ", "]);
    assert!(!reply.ends_with_done());
    assert!(!reply.text().contains("\"stop\""));
    assert_eq!(fake.completed_count(), 0);
    assert_eq!(
        fake.client_closed_count(),
        0,
        "the fake closed, not the client"
    );
}

#[test]
fn garbage_line_is_followed_by_the_rest_and_error_event_ends_the_stream() {
    let fake = FakeLlm::start();
    fake.set_fault(Fault::GarbageAfter(1));
    let reply = chat(&fake, &chat_body(true));
    let data = reply.data();
    assert_eq!(data[1], "{not json");
    assert_eq!(data.len(), 7, "4 pieces, garbage, stop, [DONE]: {data:?}");
    assert!(reply.ends_with_done());

    fake.set_fault(Fault::ErrorEventAfter(3));
    let reply = chat(&fake, &chat_body(true));
    let data = reply.data();
    assert_eq!(data.len(), 4);
    assert_eq!(data[3], r#"{"error":{"message":"boom"}}"#);
}

#[test]
fn split_utf8_reassembles_to_the_rupee_sign() {
    let fake = FakeLlm::start();
    fake.set_fault(Fault::SplitUtf8);
    let reply = chat(&fake, &chat_body(true));
    assert_eq!(reply.pieces().concat(), "You can save ₹500 a month.");
    assert!(reply.ends_with_done());

    // Chunked, each write is an HTTP chunk of its own, which shows where the cuts fell.
    fake.set_chunked(true);
    let reply = chat(&fake, &chat_body(true));
    assert_eq!(reply.pieces(), SPLIT_UTF8_PIECES);
    let rupee = "₹".as_bytes();
    let cut_rupee = reply.chunks.iter().position(|c| c.ends_with(&rupee[..1]));
    let cut_rupee = cut_rupee.expect("a chunk ends with the first byte of ₹");
    assert!(std::str::from_utf8(&reply.chunks[cut_rupee]).is_err());
    assert!(reply.chunks[cut_rupee + 1].starts_with(&rupee[1..]));
    assert!(
        reply.chunks.iter().any(|c| c == b"dat"),
        "a data: line is cut"
    );
}

#[test]
fn client_closing_mid_stream_is_noticed() {
    let fake = FakeLlm::start();
    fake.set_pieces((0..100).map(|i| format!("w{i} ")).collect());
    fake.set_interval(Duration::from_millis(50));
    let mut conn = connect(&fake);
    send(&mut conn, &chat_body(true));
    while !line(&mut conn).starts_with("data: ") {}
    drop(conn);

    assert!(fake.wait_client_closed(Duration::from_secs(2)));
    assert_eq!(fake.client_closed_count(), 1);
    assert_eq!(fake.completed_count(), 0);
    // That close was reported; there is no second one.
    assert!(!fake.wait_client_closed(Duration::from_millis(100)));
}

#[test]
fn stall_sends_nothing_more_until_the_client_leaves() {
    let fake = FakeLlm::start();
    fake.set_fault(Fault::StallAfter(1));
    let mut conn = connect(&fake);
    send(&mut conn, &chat_body(true));
    while !line(&mut conn).starts_with("data: ") {}
    line(&mut conn); // the blank line that ends the event
    conn.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut more = [0u8; 64];
    let silent = conn.read(&mut more).is_err();
    assert!(silent, "nothing after the first piece");
    drop(conn);
    assert!(fake.wait_client_closed(Duration::from_secs(2)));
}

#[test]
fn chunked_streams_keep_the_connection_and_chunked_request_bodies_are_read() {
    let fake = FakeLlm::start();
    fake.set_chunked(true);
    fake.set_keepalive_comments(true);
    let mut conn = connect(&fake);
    for round in 1..=2 {
        let body = chat_body(true).to_string();
        let (head, tail) = body.split_at(10);
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: fake\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{head}\r\n{:x}\r\n{tail}\r\n0\r\n\r\n",
            head.len(),
            tail.len()
        );
        conn.get_mut().write_all(request.as_bytes()).unwrap();
        let reply = read_reply(&mut conn);
        assert_eq!(reply.header("connection"), Some("keep-alive"));
        assert_eq!(reply.pieces(), ["Hello", ", ", "world", "!"]);
        assert!(reply.ends_with_done());
        assert_eq!(reply.text().matches(": keep-alive\n\n").count(), 3);
        assert_eq!(fake.last_request().unwrap().json["model"], "test-model");
        assert_eq!(fake.completed_count(), round);
    }
}

#[test]
fn lying_keepalive_says_keep_alive_and_closes_anyway() {
    let fake = FakeLlm::start();
    fake.set_chunked(true);
    fake.set_lying_keepalive(true);
    let mut conn = connect(&fake);
    send(&mut conn, &chat_body(true));
    let reply = read_reply(&mut conn);
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    assert!(reply.ends_with_done());
    let mut rest = Vec::new();
    assert_eq!(
        conn.read_to_end(&mut rest).unwrap(),
        0,
        "closed after [DONE]"
    );
}

#[test]
fn first_byte_delay_and_interval_slow_the_answer() {
    let fake = FakeLlm::start();
    fake.set_first_byte_delay(Duration::from_millis(200));
    fake.set_interval(Duration::from_millis(50));
    let started = Instant::now();
    let reply = chat(&fake, &chat_body(true));
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(reply.ends_with_done());
}
