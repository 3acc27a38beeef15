//! The coach over `/ws/chat` and the pushes of `/ws/notifications`, black-box against the fake
//! LLM: both ways to authenticate and every way that fails, answers streamed piece by piece
//! with usage, the system prompt built from the user's profile and numbers, history, the
//! answer cache, cancel, a client that leaves mid-answer, bad frames, the per-user socket cap
//! (the newest wins), heartbeats and budget alerts.

use crate::{chat_support, common, fake_llm};

use std::time::{Duration, Instant};

use chat_support::*;
use common::*;
use fake_llm::FakeLlm;
use serde_json::{Value, json};
use tungstenite::Message;

fn is_iso_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

fn is_uuid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4)
}

#[test]
fn a_token_in_the_query_or_a_first_authenticate_message_opens_the_chat() {
    let t = spawn_app();
    let u = register(&t, "both@example.com", "Both Ways");

    let mut by_query = open(&t, &format!("/ws/chat?token={}", u.token));
    let hello = next_json(&mut by_query);
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["message"], "Connected to Wealth Coach AI");
    assert!(is_iso_utc(&hello["timestamp"]), "{hello}");
    assert!(is_uuid(&hello["session_id"]), "{hello}");
    ping(&mut by_query);

    let mut by_message = open(&t, "/ws/chat");
    send(
        &mut by_message,
        &json!({"type": "authenticate", "token": u.token}),
    );
    let hello2 = next_json(&mut by_message);
    assert_eq!(hello2["type"], "connected");
    assert_eq!(hello2["message"], "Connected to Wealth Coach AI");
    assert!(is_iso_utc(&hello2["timestamp"]), "{hello2}");
    assert!(is_uuid(&hello2["session_id"]), "{hello2}");
    assert_ne!(
        hello["session_id"], hello2["session_id"],
        "each socket starts its own session"
    );
    ping(&mut by_message);
}

#[test]
fn an_answer_streams_piece_by_piece_grounded_in_the_users_profile_and_numbers() {
    let fake = FakeLlm::start();
    let pieces = ["Keep ", "₹5,000 ", "aside ", "each month."];
    fake.set_pieces(pieces.iter().map(|p| p.to_string()).collect());
    let t = app_with_llm(
        &fake,
        &[
            ("OPENAI_MODEL", "coach-test-model"),
            ("OPENAI_MAX_TOKENS", "321"),
            ("OPENAI_TEMPERATURE", "0.25"),
        ],
    );
    let u = register(&t, "asha@example.com", "Asha Rao");
    let profile = json!({"age_range": "25-34", "occupation": "Engineer", "risk_tolerance": "moderate",
                         "investment_experience": "beginner"});
    call_ok(
        &t,
        "POST",
        "/api/v1/onboarding/submit",
        &u.token,
        &profile,
        200,
    );
    add_transaction(&t, &u.token, "income", "50000");
    add_transaction(&t, &u.token, "expense", "15000.75");
    let spending = type_ids(&t, &u.token, "spending");
    set_budget(&t, &u.token, &spending[0], "1000.50");
    set_actual(&t, &u.token, &spending[0], "400.25");

    let (mut ws, session) = chat(&t, &u.token);
    let frames = ask(&mut ws, "How am I doing this month?");
    assert_eq!(
        frames.len(),
        pieces.len() + 1,
        "one frame per piece, then done: {frames:?}"
    );
    for (f, piece) in frames.iter().zip(pieces) {
        assert_eq!(f["delta"], piece);
        assert!(is_iso_utc(&f["timestamp"]), "{f}");
    }
    let text = assert_streamed(&frames);
    assert_eq!(text, pieces.concat());
    let done = last(&frames);
    assert_eq!(done["session_id"], session.as_str());
    assert!(is_iso_utc(&done["timestamp"]), "{done}");

    assert_eq!(fake.request_count(), 1);
    let req = fake.last_request().expect("a request upstream");
    let (prompt, completion) = fake_usage(&req, pieces.len());
    assert_eq!(
        done["usage"],
        json!({"prompt_tokens": prompt, "completion_tokens": completion})
    );

    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some("Bearer test-key"));
    assert_eq!(req.json["model"], "coach-test-model");
    assert_eq!(req.json["stream"], true);
    assert_eq!(req.json["stream_options"]["include_usage"], true);
    assert_eq!(req.json["max_tokens"], 321);
    assert_eq!(req.json["temperature"], 0.25);

    let messages = messages_of(&req);
    assert_eq!(
        messages.len(),
        2,
        "system and the question only: {messages:?}"
    );
    assert_eq!(
        messages[1],
        ("user".to_string(), "How am I doing this month?".to_string())
    );
    let system = system_prompt(&req);
    let today = t.app().clock.now().strftime("%Y-%m-%d").to_string();
    for needle in [
        "Asha Rao",
        "- Age: 25-34",
        "- Occupation: Engineer",
        "- Investment Experience: beginner",
        "- Risk Tolerance: moderate",
        "income ₹50,000.00",
        "expenses ₹15,000.75",
        "balance ₹34,999.25",
        "SPENDING (Lifestyle): budget ₹1,000.50, actual ₹400.25",
        today.as_str(),
    ] {
        assert!(
            system.contains(needle),
            "{needle:?} is missing from the system prompt:\n{system}"
        );
    }

    assert_eq!(
        saved(&t, &u.token, &session),
        pairs(&[("user", "How am I doing this month?"), ("assistant", &text)])
    );
}

#[test]
fn each_question_carries_the_ten_messages_before_it_in_its_session() {
    let (fake, t, u) = coach(&[], "history@example.com", "History User");
    let (mut ws, session) = chat(&t, &u.token);
    let mut exchange = Vec::new();
    for i in 1..=7 {
        let answer = format!("answer number {i}");
        fake.set_pieces(vec![answer.clone()]);
        let question = format!("question number {i}");
        let frames = ask(&mut ws, &question);
        assert_eq!(assert_streamed(&frames), answer);
        exchange.push(("user".to_string(), question));
        exchange.push(("assistant".to_string(), answer));
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 7);

    let second = messages_of(&requests[1]);
    assert_eq!(second.len(), 4, "{second:?}");
    assert_eq!(
        second[1..3],
        exchange[0..2],
        "the first question and its answer go with the second"
    );
    assert_eq!(second[3], exchange[2]);

    let seventh = messages_of(&requests[6]);
    assert_eq!(
        seventh.len(),
        12,
        "system + 10 earlier messages + the question: {seventh:?}"
    );
    assert_eq!(seventh[0].0, "system");
    assert_eq!(
        seventh[1..11],
        exchange[2..12],
        "the 10 most recent, oldest first"
    );
    assert_eq!(seventh[11], exchange[12]);

    assert_eq!(
        saved(&t, &u.token, &session),
        exchange,
        "both sides of every exchange are saved"
    );
}

#[test]
fn a_conversation_id_continues_the_users_own_session_and_refuses_anyone_elses() {
    let (fake, t, asha) = coach(&[], "owner@example.com", "Owner");
    let ravi = register(&t, "stranger@example.com", "Stranger");

    let (mut first, session) = chat(&t, &asha.token);
    assert_streamed(&ask(&mut first, "Where does my money go?"));
    hang_up(first);

    let (mut second, own_session) = chat(&t, &asha.token);
    fake.set_pieces(vec!["Follow-up answer".into()]);
    let frames = ask_in(&mut second, "And next month?", &session);
    assert_eq!(assert_streamed(&frames), "Follow-up answer");
    assert_eq!(last(&frames)["session_id"], session.as_str());
    let history = messages_of(&fake.last_request().expect("request"));
    assert_eq!(
        history[1..],
        pairs(&[
            ("user", "Where does my money go?"),
            ("assistant", HELLO),
            ("user", "And next month?")
        ])
    );
    // Without a conversation_id the socket's own session is used again.
    fake.set_pieces(vec!["Fresh answer".into()]);
    let frames = ask(&mut second, "Something else");
    assert_eq!(last(&frames)["session_id"], own_session.as_str());
    assert_eq!(messages_of(&fake.last_request().expect("request")).len(), 2);

    let before = fake.request_count();
    let (mut other, _) = chat(&t, &ravi.token);
    send(
        &mut other,
        &json!({"type": "message", "content": "Show me theirs", "conversation_id": session}),
    );
    let refused = next_json(&mut other);
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "not_found", "{refused}");
    ping(&mut other);
    assert_eq!(
        fake.request_count(),
        before,
        "nothing went upstream for the stranger"
    );
    assert_eq!(
        saved(&t, &asha.token, &session).len(),
        4,
        "the owner's session is untouched"
    );
}

#[test]
fn the_same_question_in_the_same_context_is_answered_from_the_cache() {
    let (fake, t, u) = coach(&[], "cache@example.com", "Cache User");
    let other = register(&t, "cache-other@example.com", "Other User");
    add_transaction(&t, &u.token, "income", "20000");

    let (mut a, _) = chat(&t, &u.token);
    let first = assert_streamed(&ask(&mut a, "How do I save more?"));
    assert_eq!(fake.request_count(), 1);

    // A new session has the same (empty) history, so the same context.
    let (mut b, session_b) = chat(&t, &u.token);
    let frames = ask(&mut b, "  how do I   SAVE more?");
    assert_eq!(
        frames.len(),
        1,
        "a cached answer is one final frame: {frames:?}"
    );
    let hit = &frames[0];
    assert_eq!(hit["type"], "response");
    assert_eq!(hit["done"], true);
    assert_eq!(hit["cached"], true);
    assert_eq!(hit["content"], first.as_str());
    assert_eq!(hit["session_id"], session_b.as_str());
    ping(&mut b);
    assert_eq!(
        fake.request_count(),
        1,
        "no upstream call for a cached answer"
    );
    assert_eq!(
        saved(&t, &u.token, &session_b),
        pairs(&[("user", "how do I   SAVE more?"), ("assistant", &first)]),
        "the question is saved trimmed"
    );

    // Another user never gets this user's cached answer.
    let (mut c, _) = chat(&t, &other.token);
    assert_streamed(&ask(&mut c, "How do I save more?"));
    assert_eq!(fake.request_count(), 2);

    // A budget change changes the context: not a cache hit.
    let spending = type_ids(&t, &u.token, "spending");
    set_budget(&t, &u.token, &spending[0], "500");
    let (mut d, _) = chat(&t, &u.token);
    assert_streamed(&ask(&mut d, "How do I save more?"));
    assert_eq!(fake.request_count(), 3);
}

#[test]
fn cancel_stops_the_answer_upstream_and_caches_nothing() {
    let fake = FakeLlm::start();
    let pieces: Vec<String> = (0..20).map(|i| format!("word{i} ")).collect();
    fake.set_pieces(pieces.clone());
    fake.set_interval(Duration::from_millis(200));
    // A plain answer streamed piece by piece: with tools offered a round's text is held back
    // until the round is known to be final (chat_tools), so tools are off here.
    let t = app_with_llm(&fake, &[("OPENAI_TOOLS", "off")]);
    let u = register(&t, "cancel@example.com", "Cancel User");

    let (mut ws, _) = chat(&t, &u.token);
    send(
        &mut ws,
        &json!({"type": "message", "content": "Tell me a long story"}),
    );
    let mut seen = String::new();
    for _ in 0..2 {
        let f = next_json(&mut ws);
        assert_eq!(f["done"], false, "{f}");
        seen.push_str(f["delta"].as_str().expect("delta"));
    }
    send(&mut ws, &json!({"type": "cancel"}));
    let end = loop {
        let f = next_json(&mut ws);
        if f["done"] == true {
            break f;
        }
        // A piece already on its way when the cancel was sent.
        seen.push_str(f["delta"].as_str().expect("delta"));
    };
    assert_eq!(end["type"], "response");
    assert_eq!(end["cancelled"], true, "{end}");
    assert_eq!(end["content"], seen.as_str(), "the text so far");
    assert!(
        fake.wait_client_closed(Duration::from_secs(2)),
        "the upstream read was stopped"
    );
    ping(&mut ws);
    assert!(seen.len() < pieces.concat().len());

    // Nothing was cached: the same question in the same context goes upstream again.
    fake.set_interval(Duration::ZERO);
    let (mut again, _) = chat(&t, &u.token);
    let text = assert_streamed(&ask(&mut again, "Tell me a long story"));
    assert_eq!(text, pieces.concat());
    assert_eq!(fake.request_count(), 2);
}

/// The pieces of an answer are written to the socket by the thread that reads them from the
/// upstream, beside the socket's own thread (src/ws/wire.rs). A cancel sent while pieces are
/// flowing fast: every frame arrives whole, no piece follows the cancelled frame (the next
/// frame is the pong), and the cancelled frame's content is exactly the pieces shown.
#[test]
fn a_cancel_among_fast_pieces_ends_the_answer_exactly_where_the_client_saw_it() {
    let (fake, t, u) = coach(
        &[
            ("OPENAI_TOOLS", "off"),
            ("CHAT_RATE_LIMIT_PER_MINUTE", "100"),
        ],
        "racer@example.com",
        "Racer",
    );
    fake.set_pieces((0..400).map(|i| format!("w{i} ")).collect());
    fake.set_interval(Duration::from_millis(1));
    let (mut ws, _) = chat(&t, &u.token);
    for round in 0..8 {
        send(
            &mut ws,
            &json!({"type": "message", "content": format!("Race {round}")}),
        );
        let mut seen = String::new();
        let first = next_json(&mut ws);
        seen.push_str(first["delta"].as_str().expect("a first piece"));
        send(&mut ws, &json!({"type": "cancel"}));
        let end = loop {
            let f = next_json(&mut ws);
            assert_eq!(f["type"], "response", "{f}");
            if f["done"] == true {
                break f;
            }
            let delta = f["delta"].as_str().expect("delta");
            seen.push_str(delta);
            assert_eq!(
                f["content"],
                seen.as_str(),
                "each content is the text so far"
            );
        };
        assert_eq!(end["cancelled"], true, "round {round}: {end}");
        assert_eq!(
            end["content"],
            seen.as_str(),
            "round {round}: the text shown"
        );
        assert!(
            seen.len() < 400 * 4,
            "round {round}: the answer was cut short"
        );
        ping(&mut ws);
    }
}

#[test]
fn a_client_that_leaves_mid_answer_closes_the_upstream_stream() {
    // A plain answer streamed piece by piece: with tools offered a round's text is held back
    // until the round is known to be final (chat_tools), so tools are off here.
    let (fake, t, u) = coach(&[("OPENAI_TOOLS", "off")], "leaver@example.com", "Leaver");
    fake.set_pieces((0..20).map(|i| format!("p{i} ")).collect());
    fake.set_interval(Duration::from_millis(200));
    let (mut ws, _) = chat(&t, &u.token);
    send(
        &mut ws,
        &json!({"type": "message", "content": "Start talking"}),
    );
    assert_eq!(next_json(&mut ws)["done"], false);
    drop(ws);
    assert!(
        fake.wait_client_closed(Duration::from_secs(3)),
        "the upstream stream was dropped"
    );
    let (mut next, _) = chat(&t, &u.token);
    ping(&mut next);
}

#[test]
fn bad_frames_get_error_frames_and_the_socket_keeps_working() {
    let (fake, t, u) = coach(&[], "frames@example.com", "Frames");
    let (mut ws, _) = chat(&t, &u.token);

    let expect_error = |ws: &mut Ws, frame: Message, message: &str| {
        ws.send(frame).expect("send");
        let e = next_json(ws);
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["message"], message, "{e}");
        assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()), "{e}");
        ping(ws);
    };
    let text = |v: Value| Message::text(v.to_string());
    expect_error(&mut ws, Message::text("{not json"), "Invalid JSON format");
    expect_error(
        &mut ws,
        text(json!({"type": "dance"})),
        "Unknown message type: dance",
    );
    expect_error(
        &mut ws,
        text(json!({"type": "message", "content": ""})),
        "Empty message",
    );
    expect_error(
        &mut ws,
        text(json!({"type": "message", "content": "   "})),
        "Empty message",
    );
    expect_error(
        &mut ws,
        text(json!({"type": "message", "content": "x".repeat(2001)})),
        "Message too long",
    );
    assert_eq!(fake.request_count(), 0);

    // 2,000 characters is allowed, counted as characters, not bytes.
    let longest = "é".repeat(2000);
    assert_streamed(&ask(&mut ws, &longest));
    assert_eq!(
        messages_of(&fake.last_request().expect("request"))[1].1,
        longest
    );

    ws.send(Message::text("a".repeat(70 * 1024)))
        .expect("send a big frame");
    assert_eq!(close_of(&mut ws).0, 1009);
}

#[test]
fn failed_authentication_closes_with_1008_and_the_reason() {
    let t = spawn_app_with(&[("WS_AUTH_TIMEOUT_SECONDS", "1")]);
    let u = register(&t, "auth@example.com", "Auth");
    let refused = |path: &str, first: Option<Message>| -> (u16, String) {
        let mut ws = open(&t, path);
        if let Some(m) = first {
            ws.send(m).expect("send");
        }
        close_of(&mut ws)
    };
    let required = (1008, "Authentication required".to_string());
    let invalid = (1008, "Invalid token".to_string());
    let auth = |token: &str| {
        Some(Message::text(
            json!({"type": "authenticate", "token": token}).to_string(),
        ))
    };

    assert_eq!(
        refused(
            "/ws/chat",
            Some(Message::text(json!({"type": "ping"}).to_string()))
        ),
        required
    );
    assert_eq!(
        refused(
            "/ws/chat",
            Some(Message::text(
                json!({"type": "message", "content": "hi"}).to_string()
            ))
        ),
        required
    );
    assert_eq!(
        refused("/ws/chat", Some(Message::text("{not json"))),
        required
    );
    assert_eq!(
        refused(
            "/ws/chat",
            Some(Message::text(json!({"type": "authenticate"}).to_string()))
        ),
        required
    );
    assert_eq!(refused("/ws/chat", auth("")), required);

    let mut tampered: Vec<char> = u.token.chars().collect();
    let at = u.token.rfind('.').expect("a JWT") + 10;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for bad in [
        "not-a-token",
        "a.b.c",
        tampered.as_str(),
        u.refresh.as_str(),
    ] {
        assert_eq!(
            refused(&format!("/ws/chat?token={bad}"), None),
            invalid,
            "?token={bad}"
        );
        assert_eq!(
            refused("/ws/chat", auth(bad)),
            invalid,
            "authenticate with {bad}"
        );
        assert_eq!(
            refused(&format!("/ws/notifications?token={bad}"), None),
            invalid
        );
    }

    let started = Instant::now();
    assert_eq!(
        refused("/ws/chat", None),
        (1008, "Authentication timeout".to_string())
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );

    // The good token still works, until it has expired.
    let (mut ws, _) = chat(&t, &u.token);
    ping(&mut ws);
    t.app().clock.advance(31 * 60);
    assert_eq!(
        refused(&format!("/ws/chat?token={}", u.token), None),
        invalid
    );
    assert_eq!(refused("/ws/chat", auth(&u.token)), invalid);
}

/// The newest wins (issue 10.5): a fourth socket of one user is served and the oldest is
/// closed with 4000; before, the fourth was refused with 1008 "Max connections reached".
#[test]
fn a_fourth_socket_of_one_user_replaces_the_oldest() {
    let t = spawn_app();
    let u = register(&t, "many@example.com", "Many");
    let other = register(&t, "other@example.com", "Other");
    let mut open_ones: Vec<Ws> = (0..3).map(|_| chat(&t, &u.token).0).collect();
    let replaced = (4000, "Replaced by a newer connection".to_string());

    let (mut fourth, _) = chat(&t, &u.token);
    assert_eq!(close_of(&mut open_ones.remove(0)), replaced);
    ping(&mut fourth);
    open_ones.push(fourth);
    let mut fifth = open(&t, "/ws/chat");
    send(
        &mut fifth,
        &json!({"type": "authenticate", "token": u.token}),
    );
    assert_eq!(next_json(&mut fifth)["type"], "connected");
    assert_eq!(close_of(&mut open_ones.remove(0)), replaced);
    open_ones.push(fifth);
    for ws in &mut open_ones {
        ping(ws);
    }
    // Other users, and the notifications endpoint, are counted apart.
    let (mut theirs, _) = chat(&t, &other.token);
    ping(&mut theirs);
    let mut notes = open(&t, &format!("/ws/notifications?token={}", u.token));
    assert_eq!(next_json(&mut notes)["type"], "connected");

    // A closed socket gives its place back at once: nobody is replaced.
    for _ in 0..10 {
        hang_up(open_ones.pop().expect("a socket"));
        let (mut again, _) = chat(&t, &u.token);
        ping(&mut again);
        open_ones.push(again);
    }
    for ws in &mut open_ones {
        ping(ws);
    }
}

/// The next frame that is not a heartbeat or a sync push.
fn next_event(ws: &mut Ws) -> Value {
    loop {
        let f = next_json(ws);
        // `sync` frames (API.md "Sync for offline clients") follow every commit, at most one
        // a second; tests/api/sync.rs checks them.
        if f["type"] != "heartbeat" && f["type"] != "sync" {
            return f;
        }
    }
}

#[test]
fn notifications_say_hello_beat_and_alert_when_a_category_goes_over_budget() {
    let t = spawn_app_with(&[("WS_HEARTBEAT_INTERVAL", "1")]);
    let u = register(&t, "alerts@example.com", "Alerts");
    let mut ws = open(&t, &format!("/ws/notifications?token={}", u.token));
    let hello = next_json(&mut ws);
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["message"], "Connected to notifications");

    let started = Instant::now();
    assert_eq!(next_json(&mut ws)["type"], "heartbeat");
    assert_eq!(next_json(&mut ws)["type"], "heartbeat");
    let two_beats = started.elapsed();
    assert!(
        two_beats >= Duration::from_millis(900) && two_beats < Duration::from_secs(4),
        "two heartbeats took {two_beats:?}"
    );
    send(&mut ws, &json!({"type": "ping"}));
    assert_eq!(next_event(&mut ws)["type"], "pong");

    // The other way to authenticate works here too.
    let mut by_message = open(&t, "/ws/notifications");
    send(
        &mut by_message,
        &json!({"type": "authenticate", "token": u.token}),
    );
    assert_eq!(
        next_json(&mut by_message)["message"],
        "Connected to notifications"
    );

    let summary = get_auth(t.http, "/api/v1/allocations", &u.token).json();
    let (month, year) = (summary["month"].clone(), summary["year"].clone());
    let spending = type_ids(&t, &u.token, "spending");
    set_budget(&t, &u.token, &spending[0], "100");
    set_budget(&t, &u.token, &spending[1], "100");
    // One type over its own budget leaves the category (150 of 200) within budget: no alert.
    set_actual(&t, &u.token, &spending[0], "150");
    set_actual(&t, &u.token, &spending[1], "60");
    let alert = next_event(&mut ws);
    assert_eq!(alert["type"], "budget_alert", "{alert}");
    assert_eq!(alert["category"], "spending");
    assert_eq!(alert["month"], month);
    assert_eq!(alert["year"], year);
    assert_eq!(alert["budget"].as_f64(), Some(200.0), "{alert}");
    assert_eq!(alert["actual"].as_f64(), Some(210.0), "{alert}");
    // The frame carries the id the alert is stored under in the inbox.
    let listed = get_auth(t.http, "/api/v1/notifications", &u.token).json();
    assert_eq!(listed["notifications"][0]["id"], alert["id"], "{listed}");
    let other = next_event(&mut by_message);
    assert_eq!(other, alert, "every socket of the user hears it");

    // Already over: no second alert. Back within budget, then over again: still none, as a
    // category alerts at most once a month.
    set_actual(&t, &u.token, &spending[1], "70");
    set_actual(&t, &u.token, &spending[1], "0");
    set_actual(&t, &u.token, &spending[1], "100.5");
    send(&mut ws, &json!({"type": "ping"}));
    assert_eq!(next_event(&mut ws)["type"], "pong");
}

#[test]
fn cancel_reaches_an_upstream_that_is_silent() {
    // A plain answer streamed piece by piece: with tools offered a round's text is held back
    // until the round is known to be final (chat_tools), so tools are off here.
    let (fake, t, u) = coach(
        &[("OPENAI_TIMEOUT", "30"), ("OPENAI_TOOLS", "off")],
        "silent@example.com",
        "Silent",
    );
    let (mut ws, _) = chat(&t, &u.token);

    // Waiting for the first byte.
    fake.set_first_byte_delay(Duration::from_secs(20));
    send(
        &mut ws,
        &json!({"type": "message", "content": "Anyone there?"}),
    );
    assert!(wait_until(Duration::from_secs(2), || fake.request_count() == 1));
    send(&mut ws, &json!({"type": "cancel"}));
    let end = next_json(&mut ws);
    assert_eq!(
        (
            end["done"].clone(),
            end["cancelled"].clone(),
            end["content"].clone()
        ),
        (json!(true), json!(true), json!(""))
    );
    assert!(
        fake.wait_client_closed(Duration::from_secs(2)),
        "the waiting request was dropped"
    );

    // Stalled mid-answer.
    fake.set_first_byte_delay(Duration::ZERO);
    fake.set_fault(fake_llm::Fault::StallAfter(1));
    send(
        &mut ws,
        &json!({"type": "message", "content": "Still there?"}),
    );
    assert_eq!(next_json(&mut ws)["delta"], "Hello");
    send(&mut ws, &json!({"type": "cancel"}));
    let end = next_json(&mut ws);
    assert_eq!(
        (end["cancelled"].clone(), end["content"].clone()),
        (json!(true), json!("Hello"))
    );
    assert!(
        fake.wait_client_closed(Duration::from_secs(2)),
        "the stalled stream was dropped"
    );
    ping(&mut ws);
}

/// ENABLE_CHAT=false: a question on the socket gets one `error` frame `chat_disabled`, the
/// socket stays open (a ping is answered) and the model is never called.
#[test]
fn a_disabled_coach_answers_a_socket_question_with_an_error_frame() {
    let (fake, t, u) = coach(&[("ENABLE_CHAT", "false")], "off-ws@example.com", "Off");
    let (mut ws, _) = chat(&t, &u.token);
    send(
        &mut ws,
        &json!({"type": "message", "content": "How am I doing?"}),
    );
    let f = next_json(&mut ws);
    assert_eq!(f["type"], "error", "{f}");
    assert_eq!(f["code"], "chat_disabled", "{f}");
    ping(&mut ws);
    assert_eq!(fake.request_count(), 0);
}
