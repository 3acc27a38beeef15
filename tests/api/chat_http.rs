//! The coach over HTTP, against the fake LLM: one-shot answers, answers streamed as
//! server-sent events (read raw, chunk by chunk, to prove each event goes out whole and as it
//! comes), validation, the fallback, CORS on the stream, and the conversation history:
//! sessions, paged messages and deletion.

use crate::{chat_support, common, fake_llm};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chat_support::*;
use common::*;
use fake_llm::{FakeLlm, Fault};
use serde_json::{Value, json};

fn ask_http(t: &TestApp, token: &str, body: &Value) -> Value {
    call_ok(t, "POST", "/api/v1/chat/message", token, body, 200)
}

/// A streamed response as it arrived: the head, and each HTTP chunk with when it was
/// complete. `ended` says whether the terminating zero-length chunk came.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    chunks: Vec<(Instant, String)>,
    ended: bool,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every event of every chunk, after checking that each chunk holds whole events only.
    fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (_, chunk) in &self.chunks {
            out.extend(whole_events(chunk));
        }
        out
    }

    /// When the chunk holding the first event of this type was complete.
    fn arrival_of(&self, kind: &str) -> Instant {
        self.chunks
            .iter()
            .find(|(_, c)| whole_events(c).iter().any(|e| e["type"] == kind))
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("no {kind} event"))
    }
}

/// The events of one chunk, which must be one or more complete `data: {…}\n\n` events.
fn whole_events(chunk: &str) -> Vec<Value> {
    assert!(chunk.ends_with("\n\n"), "a chunk ends an event: {chunk:?}");
    chunk
        .trim_end_matches('\n')
        .split("\n\n")
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            assert!(!data.contains('\n'), "one line per event: {e:?}");
            serde_json::from_str(data).unwrap_or_else(|err| panic!("cut or bad event {e:?}: {err}"))
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// POST /api/v1/chat/message/stream, read raw with a bounded wait on every read.
fn stream_raw(t: &TestApp, token: &str, body: &Value, extra: &[(&str, &str)]) -> Raw {
    let mut s = TcpStream::connect(t.http).expect("connect");
    s.set_read_timeout(Some(READ_LIMIT)).expect("read timeout");
    let body = body.to_string();
    let mut head = format!(
        "POST /api/v1/chat/message/stream HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        t.http,
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()))
        .expect("send");

    let mut buf = Vec::new();
    let mut more = |buf: &mut Vec<u8>| -> bool {
        let mut block = [0u8; 4096];
        let n = s.read(&mut block).expect("read within the limit");
        buf.extend_from_slice(&block[..n]);
        n > 0
    };
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        assert!(more(&mut buf), "closed before the head");
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("utf-8 head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut raw = Raw {
        status,
        headers,
        chunks: Vec::new(),
        ended: false,
    };
    let mut rest = buf.split_off(head_end + 4);
    if raw.header("transfer-encoding") != Some("chunked") {
        while more(&mut rest) {}
        raw.chunks
            .push((Instant::now(), String::from_utf8_lossy(&rest).into_owned()));
        return raw;
    }
    loop {
        let Some(line_end) = find(&rest, b"\r\n") else {
            if !more(&mut rest) {
                return raw;
            }
            continue;
        };
        let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size");
        if size == 0 {
            raw.ended = true;
            return raw;
        }
        while rest.len() < line_end + 2 + size + 2 {
            if !more(&mut rest) {
                return raw;
            }
        }
        let data = rest[line_end + 2..line_end + 2 + size].to_vec();
        raw.chunks.push((
            Instant::now(),
            String::from_utf8(data).expect("a chunk is whole UTF-8"),
        ));
        rest.drain(..line_end + 2 + size + 2);
    }
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_string())
        .collect()
}

fn tokens(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "token")
        .map(|e| e["content"].as_str().expect("token content"))
        .collect()
}

#[test]
fn post_message_answers_in_one_json_with_tokens_used_and_caches() {
    let (fake, t, u) = coach(&[], "http@example.com", "Http User");
    let body = ask_http(
        &t,
        &u.token,
        &json!({"message": "How should I budget?", "use_rag": true, "stream": false}),
    );
    assert_eq!(body["response"], HELLO);
    assert_eq!(body["sources"], json!([]));
    assert_eq!(body["cached"], false);
    assert!(
        body["conversation_id"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "{body}"
    );
    assert!(
        body["timestamp"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{body}"
    );
    assert!(body.get("fallback").is_none(), "{body}");
    let (prompt, completion) = fake_usage(&fake.last_request().expect("request"), 4);
    assert_eq!(body["tokens_used"], prompt + completion);
    let session = body["conversation_id"].as_str().expect("id").to_string();
    assert_eq!(
        saved(&t, &u.token, &session),
        pairs(&[("user", "How should I budget?"), ("assistant", HELLO)])
    );

    let again = ask_http(&t, &u.token, &json!({"message": "How should I budget?"}));
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["response"], HELLO);
    assert_ne!(again["conversation_id"], session.as_str());
    assert_eq!(fake.request_count(), 1);

    // Continuing the session sends its history; the answer is not a cache hit then.
    fake.set_pieces(vec!["Second answer".into()]);
    let next = ask_http(
        &t,
        &u.token,
        &json!({"message": "How should I budget?", "session_id": session}),
    );
    assert_eq!(next["response"], "Second answer");
    assert_eq!(next["conversation_id"], session.as_str());
    let sent = messages_of(&fake.last_request().expect("request"));
    assert_eq!(
        sent[1..3],
        pairs(&[("user", "How should I budget?"), ("assistant", HELLO)])
    );

    // A new session takes the client's own history.
    let history = json!([{"role": "user", "content": "Earlier question", "timestamp": "2025-01-01T00:00:00Z"},
                         {"role": "assistant", "content": "Earlier answer"}]);
    ask_http(
        &t,
        &u.token,
        &json!({"message": "Go on", "conversation_history": history}),
    );
    let sent = messages_of(&fake.last_request().expect("request"));
    assert_eq!(
        sent[1..],
        pairs(&[
            ("user", "Earlier question"),
            ("assistant", "Earlier answer"),
            ("user", "Go on")
        ])
    );

    // Someone else's session is not found.
    let other = register(&t, "http-other@example.com", "Other");
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/chat/message",
        Some(&other.token),
        &json!({"message": "hi", "session_id": session}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn post_message_falls_back_with_200_when_the_model_fails() {
    let (fake, t, u) = coach(&[], "http-fail@example.com", "Fail");
    fake.set_fault(Fault::Status(503, r#"{"error":{"message":"down"}}"#.into()));
    add_transaction(&t, &u.token, "income", "777");
    let body = ask_http(&t, &u.token, &json!({"message": "Am I ok?"}));
    assert_eq!(body["fallback"], true, "{body}");
    assert_eq!(body["cached"], false);
    assert!(
        body["response"]
            .as_str()
            .expect("text")
            .contains("income ₹777.00"),
        "{body}"
    );

    // Not cached: once the model is back, the same question goes upstream.
    fake.set_fault(Fault::None);
    let before = fake.request_count();
    let body = ask_http(&t, &u.token, &json!({"message": "Am I ok?"}));
    assert_eq!(body["response"], HELLO);
    assert!(body.get("fallback").is_none(), "{body}");
    assert_eq!(fake.request_count(), before + 1);
}

#[test]
fn chat_requests_are_validated() {
    let (fake, t, u) = coach(&[], "valid@example.com", "Valid");
    let item = json!({"role": "user", "content": "x"});
    for bad in [
        json!({"message": ""}),
        json!({"message": "   "}),
        json!({"message": "x".repeat(2001)}),
        json!({}),
        json!({"message": 5}),
        json!({"message": "ok", "conversation_history": vec![item.clone(); 21]}),
    ] {
        for path in ["/api/v1/chat/message", "/api/v1/chat/message/stream"] {
            let r = send_json(t.http, "POST", path, Some(&u.token), &bad);
            assert_eq!(r.status, 422, "{path} {bad}: {}", r.text());
        }
    }
    assert_eq!(fake.request_count(), 0);
    let ok = json!({"message": "é".repeat(2000), "conversation_history": vec![item; 20]});
    assert_eq!(ask_http(&t, &u.token, &ok)["response"], HELLO);
}

#[test]
fn the_stream_sends_whole_events_as_they_come_and_ends() {
    let fake = FakeLlm::start();
    let pieces = ["Put ", "₹2,000 ", "into ", "savings ", "first."];
    fake.set_pieces(pieces.iter().map(|p| p.to_string()).collect());
    fake.set_interval(Duration::from_millis(100));
    // A plain answer streamed piece by piece: with tools offered a round's text is held back
    // until the round is known to be final (chat_tools), so tools are off here.
    let t = app_with_llm(&fake, &[("OPENAI_TOOLS", "off")]);
    let u = register(&t, "sse@example.com", "Sse");

    let raw = stream_raw(
        &t,
        &u.token,
        &json!({"message": "What first?", "session_id": null}),
        &[],
    );
    assert_eq!(raw.status, 200);
    assert!(
        raw.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        raw.headers
    );
    assert!(raw.ended, "the body ends with the last chunk");
    let events = raw.events();
    let mut expected = vec!["session_id".to_string()];
    expected.extend(pieces.iter().map(|_| "token".to_string()));
    expected.push("done".into());
    assert_eq!(types(&events), expected);
    let session = events[0]["session_id"]
        .as_str()
        .expect("session id")
        .to_string();
    assert_eq!(session.len(), 36);
    for (e, piece) in events[1..].iter().zip(pieces) {
        assert_eq!(e["content"], piece);
    }
    let first = raw.arrival_of("token");
    let done = raw.arrival_of("done");
    assert!(
        done.duration_since(first) >= Duration::from_millis(250),
        "the first token came {:?} before the end: streamed, not buffered",
        done.duration_since(first)
    );
    assert_eq!(
        saved(&t, &u.token, &session),
        pairs(&[("user", "What first?"), ("assistant", &pieces.concat())])
    );

    // A given session is echoed and continued.
    fake.set_interval(Duration::ZERO);
    let raw = stream_raw(
        &t,
        &u.token,
        &json!({"message": "Then?", "session_id": session}),
        &[],
    );
    let events = raw.events();
    assert_eq!(
        events[0],
        json!({"type": "session_id", "session_id": session})
    );
    assert_eq!(saved(&t, &u.token, &session).len(), 4);

    // The same question in a fresh session comes from the cache, still as tokens.
    let before = fake.request_count();
    let events = stream_raw(&t, &u.token, &json!({"message": "What first?"}), &[]).events();
    assert_eq!(types(&events), ["session_id", "token", "done"]);
    assert_eq!(tokens(&events), pieces.concat());
    assert_eq!(fake.request_count(), before);
}

#[test]
fn a_failed_stream_sends_one_error_then_the_fallback_as_tokens() {
    let (fake, t, u) = coach(&[], "sse-fail@example.com", "Sse Fail");
    add_transaction(&t, &u.token, "income", "4321");

    let cases: [fn(&FakeLlm); 4] = [
        |f| f.set_fault(Fault::Status(500, "{}".into())),
        |f| f.set_fault(Fault::Status(401, "{}".into())),
        |f| f.set_fault(Fault::GarbageAfter(0)),
        |f| f.set_first_byte_delay(Duration::from_secs(4)),
    ];
    for (i, fault) in cases.iter().enumerate() {
        fault(&fake);
        let raw = stream_raw(&t, &u.token, &json!({"message": format!("Case {i}?")}), &[]);
        assert_eq!(raw.status, 200);
        assert!(raw.ended, "case {i}");
        let events = raw.events();
        let kinds = types(&events);
        assert_eq!(kinds[0], "session_id", "case {i}: {kinds:?}");
        assert_eq!(kinds[1], "error", "case {i}: {kinds:?}");
        assert_eq!(kinds.last().map(String::as_str), Some("done"), "case {i}");
        assert!(
            kinds[2..kinds.len() - 1].iter().all(|k| k == "token"),
            "case {i}: {kinds:?}"
        );
        assert!(kinds.len() > 3, "the fallback comes as tokens: {kinds:?}");
        assert!(
            events[1]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            events[1]
        );
        assert!(
            tokens(&events).contains("income ₹4,321.00"),
            "case {i}: {events:?}"
        );
        fake.set_fault(Fault::None);
        fake.set_first_byte_delay(Duration::ZERO);
    }

    // Without a key the stream has the same shape.
    let t2 = spawn_app();
    let u2 = register(&t2, "sse-nokey@example.com", "No Key");
    let events = stream_raw(&t2, &u2.token, &json!({"message": "Hi"}), &[]).events();
    assert_eq!(types(&events), ["session_id", "error", "token", "done"]);
}

#[test]
fn the_stream_carries_cors_headers_for_listed_origins_only() {
    let (_fake, t, u) = coach(
        &[(
            "CORS_ORIGINS",
            "https://app.example.com,http://localhost:3000",
        )],
        "cors@example.com",
        "Cors",
    );
    let listed = stream_raw(
        &t,
        &u.token,
        &json!({"message": "Hi"}),
        &[("Origin", "http://localhost:3000")],
    );
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        types(&listed.events()).last().map(String::as_str),
        Some("done")
    );
    let unlisted = stream_raw(
        &t,
        &u.token,
        &json!({"message": "Hi"}),
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(unlisted.header("access-control-allow-origin"), None);
}

#[test]
fn sessions_talked_in_within_the_same_second_still_list_the_latest_first() {
    let (_fake, t, u) = coach(&[], "same-second@example.com", "Quick");
    let first = ask_http(&t, &u.token, &json!({"message": "One"}))["conversation_id"].clone();
    let second = ask_http(&t, &u.token, &json!({"message": "Two"}))["conversation_id"].clone();
    ask_http(
        &t,
        &u.token,
        &json!({"message": "One again", "session_id": first}),
    );
    let list = get_auth(t.http, "/api/v1/chat/sessions", &u.token).json();
    let order: Vec<Value> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session_id"].clone())
        .collect();
    assert_eq!(
        order,
        [first, second],
        "the session with the latest message comes first"
    );
}

#[test]
fn a_stream_client_that_leaves_stops_the_upstream_read() {
    // A plain answer streamed piece by piece: with tools offered a round's text is held back
    // until the round is known to be final (chat_tools), so tools are off here.
    let (fake, t, u) = coach(
        &[("OPENAI_TOOLS", "off")],
        "sse-leaver@example.com",
        "Leaver",
    );
    fake.set_pieces((0..20).map(|i| format!("t{i} ")).collect());
    fake.set_interval(Duration::from_millis(200));
    let mut s = TcpStream::connect(t.http).expect("connect");
    s.set_read_timeout(Some(READ_LIMIT)).expect("read timeout");
    let body = json!({"message": "Talk"}).to_string();
    let head = format!(
        "POST /api/v1/chat/message/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        u.token,
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send");
    let mut seen = Vec::new();
    let mut block = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"token\"") {
        let n = s.read(&mut block).expect("read");
        assert!(n > 0, "ended early");
        seen.extend_from_slice(&block[..n]);
    }
    drop(s);
    assert!(
        fake.wait_client_closed(Duration::from_secs(3)),
        "the upstream read was stopped"
    );
}

/// Inserts a session row with no messages, as a client that never finished its first
/// question leaves behind.
fn bare_session(t: &TestApp, user: &str, id: &str) {
    let now = t.app().clock.iso();
    t.app()
        .db
        .write(|tx| {
            tx.execute(
                "INSERT INTO chat_sessions (id, user_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
                rusqlite::params![id, user, now],
            )?;
            Ok(())
        })
        .expect("insert a session");
}

#[test]
fn sessions_are_listed_newest_first_with_a_preview_of_the_first_question() {
    let (_fake, t, u) = coach(&[], "sessions@example.com", "Sessions");
    let long: String = (0..150)
        .map(|i| if i % 7 == 0 { '₹' } else { 'a' })
        .collect();
    let mut ids = Vec::new();
    for q in [long.as_str(), "Second conversation", "Third conversation"] {
        let body = ask_http(&t, &u.token, &json!({"message": q}));
        ids.push(body["conversation_id"].as_str().expect("id").to_string());
        t.app().clock.advance(2);
    }
    // Talking in the oldest makes it the newest.
    ask_http(
        &t,
        &u.token,
        &json!({"message": "Back to the first", "session_id": ids[0]}),
    );
    t.app().clock.advance(2);
    bare_session(&t, &u.id, "bare-session-id");

    let list = get_auth(t.http, "/api/v1/chat/sessions", &u.token).json();
    assert_eq!(list["total"], 4);
    let sessions = list["sessions"].as_array().expect("sessions");
    let order: Vec<&str> = sessions
        .iter()
        .map(|s| s["session_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        order,
        [
            "bare-session-id",
            ids[0].as_str(),
            ids[2].as_str(),
            ids[1].as_str()
        ]
    );
    assert_eq!(sessions[0]["preview"], "New conversation");
    assert_eq!(sessions[0]["message_count"], 0);
    let preview = sessions[1]["preview"].as_str().expect("preview");
    assert_eq!(
        preview,
        long.chars().take(100).collect::<String>(),
        "exactly 100 characters, no ellipsis"
    );
    assert_eq!(sessions[1]["message_count"], 4);
    assert_eq!(sessions[2]["preview"], "Third conversation");
    for s in sessions {
        for k in ["created_at", "updated_at"] {
            assert!(s[k].as_str().is_some_and(|v| v.ends_with('Z')), "{s}");
        }
    }

    let page = get_auth(t.http, "/api/v1/chat/sessions?skip=1&limit=2", &u.token).json();
    let order: Vec<&str> = page["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session_id"].as_str().expect("id"))
        .collect();
    assert_eq!(order, [ids[0].as_str(), ids[2].as_str()]);
    assert_eq!(page["total"], 4);

    // A session holding only an answer has no first question yet.
    let only_answer = "answer-only-session";
    bare_session(&t, &u.id, only_answer);
    t.app()
        .db
        .write(|tx| {
            tx.execute(
                "INSERT INTO chat_messages (id, session_id, user_id, role, content, created_at)
                 VALUES ('answer-only-message', ?1, ?2, 'assistant', 'An answer alone', ?3)",
                rusqlite::params![only_answer, u.id, t.app().clock.iso()],
            )?;
            Ok(())
        })
        .expect("insert an answer");
    let list = get_auth(t.http, "/api/v1/chat/sessions", &u.token).json();
    let row = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["session_id"] == only_answer)
        .expect("listed")
        .clone();
    assert_eq!(row["preview"], "New conversation");

    // Nobody else sees them.
    let other = register(&t, "sessions-other@example.com", "Other");
    let theirs = get_auth(t.http, "/api/v1/chat/sessions", &other.token).json();
    assert_eq!(theirs, json!({"sessions": [], "total": 0}));
}

#[test]
fn messages_page_back_from_the_newest_and_conversations_delete() {
    let (fake, t, u) = coach(&[], "pages@example.com", "Pages");
    let other = register(&t, "pages-other@example.com", "Other");
    let mut session: Option<String> = None;
    for i in 1..=3 {
        fake.set_pieces(vec![format!("a{i}")]);
        let mut body = json!({"message": format!("q{i}")});
        if let Some(s) = &session {
            body["session_id"] = json!(s);
        }
        session = Some(
            ask_http(&t, &u.token, &body)["conversation_id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let session = session.expect("a session");
    let page = |skip: u32, limit: u32| -> Value {
        get_auth(
            t.http,
            &format!("/api/v1/chat/sessions/{session}/messages?skip={skip}&limit={limit}"),
            &u.token,
        )
        .json()
    };
    let contents = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["content"].as_str().expect("c").to_string())
            .collect()
    };
    let p = page(0, 2);
    assert_eq!(contents(&p), ["q3", "a3"]);
    assert_eq!(
        (p["total"].clone(), p["has_more"].clone()),
        (json!(6), json!(true))
    );
    assert_eq!(p["session_id"], session.as_str());
    let m = &p["messages"][1];
    assert_eq!(m["role"], "assistant");
    assert!(m["tokens_used"].as_i64().is_some_and(|n| n > 0), "{m}");
    assert_eq!(m["sources_count"], 0);
    assert_eq!(m["cached"], false);
    assert!(
        m["timestamp"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{m}"
    );
    let p = page(2, 2);
    assert_eq!(contents(&p), ["q2", "a2"]);
    assert_eq!(p["has_more"], true);
    let p = page(4, 2);
    assert_eq!(contents(&p), ["q1", "a1"]);
    assert_eq!(p["has_more"], false);
    let p = page(3, 50);
    assert_eq!(contents(&p), ["q1", "a1", "q2"]);
    assert_eq!(p["has_more"], false);
    assert_eq!(contents(&page(6, 2)), Vec::<String>::new());
    let all = get_auth(
        t.http,
        &format!("/api/v1/chat/sessions/{session}/messages"),
        &u.token,
    )
    .json();
    assert_eq!(contents(&all), ["q1", "a1", "q2", "a2", "q3", "a3"]);

    for (who, id) in [
        (&other.token, session.as_str()),
        (&u.token, "no-such-session"),
    ] {
        let r = get_auth(t.http, &format!("/api/v1/chat/sessions/{id}/messages"), who);
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.json()["detail"], "Session not found");
    }

    let path = format!("/api/v1/chat/conversations/{session}");
    let r = delete(&t, &path, &other.token);
    assert_eq!(r.status, 404, "another user's conversation: {}", r.text());
    assert_eq!(contents(&page(0, 50)).len(), 6, "still there");

    let r = delete(&t, &path, &u.token);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"message": "Conversation deleted successfully"})
    );
    let left: i64 = t
        .app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM chat_messages WHERE session_id = ?1",
                [&session],
                |r| r.get(0),
            )?)
        })
        .expect("count");
    assert_eq!(left, 0, "the messages went with the session");
    let r = get_auth(
        t.http,
        &format!("/api/v1/chat/sessions/{session}/messages"),
        &u.token,
    );
    assert_eq!(r.status, 404);
    assert_eq!(delete(&t, &path, &u.token).status, 404, "deleting twice");
    assert_eq!(
        get_auth(t.http, "/api/v1/chat/sessions", &u.token).json()["total"],
        0
    );
}

/// ENABLE_CHAT=false: both ways of asking over HTTP are refused with 403 `chat_disabled`
/// before the model is called, and nothing is saved; reading the history still works.
#[test]
fn a_disabled_coach_refuses_questions_without_calling_the_model() {
    let (fake, t, u) = coach(&[("ENABLE_CHAT", "false")], "off@example.com", "Off");
    for path in ["/api/v1/chat/message", "/api/v1/chat/message/stream"] {
        let r = t
            .call("POST", path)
            .auth(&u.token)
            .json(&json!({"message": "How am I doing?"}))
            .send();
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.json()["code"], "chat_disabled", "{path}");
    }
    assert_eq!(fake.request_count(), 0);
    let sessions = call_ok(
        &t,
        "GET",
        "/api/v1/chat/sessions",
        &u.token,
        &Value::Null,
        200,
    );
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(0),
        "{sessions}"
    );
}
