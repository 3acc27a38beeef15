//! Long work leaves the handler pool (issue 11, item 1): the routes that wait on the outside
//! world (the chat answers, the SMS gateway) run on their own bounded pool, so stalled SSE
//! answers leave every other route answering, and a full pool answers 503 at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::chat_support::{User, app_with_llm, register};
use crate::common::TestApp;
use crate::fake_llm::FakeLlm;

/// How long the fake stays silent before its first byte: far longer than the bounds below.
const STALL: Duration = Duration::from_secs(5);

/// Sends a streamed question and returns the open connection without reading it.
fn open_stream(t: &TestApp, u: &User, question: &str) -> TcpStream {
    let mut s = TcpStream::connect(t.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let body = json!({ "message": question }).to_string();
    let head = format!(
        "POST /api/v1/chat/message/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        u.token,
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()))
        .expect("send");
    s
}

/// Waits until the fake has seen `n` requests, or `limit` has passed; how many it saw.
fn wait_upstream(fake: &FakeLlm, n: usize, limit: Duration) -> usize {
    let start = Instant::now();
    while fake.request_count() < n && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    fake.request_count()
}

fn stalled(extra: &[(&str, &str)]) -> (FakeLlm, TestApp, User) {
    let fake = FakeLlm::start();
    fake.set_first_byte_delay(STALL);
    let mut pairs = vec![("OPENAI_TIMEOUT", "30"), ("SHUTDOWN_TIMEOUT_SECONDS", "8")];
    pairs.extend_from_slice(extra);
    let t = app_with_llm(&fake, &pairs);
    let u = register(&t, "slow-pool@example.com", "Slow Pool");
    (fake, t, u)
}

#[test]
fn fifty_stalled_sse_answers_leave_allocations_answering() {
    // The old default pool of 16 handler threads: with the answers on it, all of them stall.
    let (fake, t, u) = stalled(&[("HTTP_WORKERS", "16")]);
    let streams: Vec<TcpStream> = (0..50)
        .map(|i| open_stream(&t, &u, &format!("Stalled question {i}?")))
        .collect();
    let upstream = wait_upstream(&fake, 50, Duration::from_secs(3));

    let started = Instant::now();
    let r = t
        .call("GET", "/api/v1/allocations")
        .auth(&u.token)
        .timeout(Duration::from_secs(15))
        .send();
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        took < Duration::from_secs(2),
        "GET /allocations took {took:?} behind 50 stalled answers"
    );
    assert_eq!(upstream, 50, "every stalled answer is upstream at once");

    // The stalled answers still end as before: 200, the session, the tokens, done.
    for mut s in streams {
        let mut all = Vec::new();
        s.read_to_end(&mut all).expect("the stream ends");
        let all = String::from_utf8_lossy(&all);
        assert!(all.starts_with("HTTP/1.1 200"), "{all}");
        assert!(all.contains("\"session_id\""), "{all}");
        assert!(all.contains("\"token\""), "{all}");
        assert!(all.contains("\"done\""), "{all}");
    }
}

#[test]
fn a_full_slow_pool_answers_503_and_the_rest_still_answers() {
    let (fake, t, u) = stalled(&[("HTTP_SLOW_WORKERS", "2")]);
    let _held: Vec<TcpStream> = (0..2)
        .map(|i| open_stream(&t, &u, &format!("Held {i}?")))
        .collect();
    assert_eq!(wait_upstream(&fake, 2, Duration::from_secs(3)), 2);

    let busy = |method: &str, path: &str, body: serde_json::Value| {
        let started = Instant::now();
        let r = t.call(method, path).auth(&u.token).json(&body).send();
        assert!(started.elapsed() < Duration::from_secs(2), "{path} waited");
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(r.json()["code"], "server_busy", "{path}");
        assert!(r.json()["detail"].is_string(), "{path}");
        assert_eq!(r.header("retry-after"), Some("1"), "{path}");
    };
    busy(
        "POST",
        "/api/v1/chat/message/stream",
        json!({"message": "One more?"}),
    );
    busy(
        "POST",
        "/api/v1/chat/message",
        json!({"message": "One more?"}),
    );
    busy(
        "POST",
        "/api/v1/auth/send-otp",
        json!({"mobile_number": "+14155550100"}),
    );
    // The refused ones never reached the upstream.
    assert_eq!(fake.request_count(), 2);

    // A fast route is not on that pool.
    let r = t.call("GET", "/api/v1/allocations").auth(&u.token).send();
    assert_eq!(r.status, 200, "{}", r.text());
    // The checks made before the hand-over keep their answers: a form body is still 415.
    let r = t
        .call("POST", "/api/v1/chat/message")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send();
    assert_eq!(r.status, 415, "{}", r.text());
}
