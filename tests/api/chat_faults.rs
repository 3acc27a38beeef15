//! The coach when the model misbehaves, over `/ws/chat`: a slow first byte, a stall, error
//! statuses, garbage, an error event, a dropped connection, UTF-8 cut across writes, no API
//! key, and the daily token quota. Every failure ends in an `error` frame and then a fallback
//! built from the user's own numbers; nothing panics, the socket keeps working, and a
//! fallback is never cached.

use crate::{chat_support, common, fake_llm};

use std::time::Duration;

use chat_support::*;
use common::*;
use fake_llm::{FakeLlm, Fault};
use serde_json::json;

/// The question every case asks first.
const QUESTION: &str = "Can I afford a holiday?";

/// A server on the fake, and a user whose numbers the fallback must quote: income
/// ₹1,234.00 this month.
fn coach_with_income(extra: &[(&str, &str)]) -> (FakeLlm, TestApp, User) {
    let (fake, t, u) = coach(extra, "fault@example.com", "Fault User");
    add_transaction(&t, &u.token, "income", "1234");
    (fake, t, u)
}

/// Sets a fault up, asks, and expects the fallback after an `upstream_unavailable` error;
/// then, with the upstream healthy again, the same socket answers normally, and the failed
/// question asked afresh goes upstream (the fallback was not cached). Returns how many
/// requests the failed question cost.
fn fails_then_recovers(fault: impl FnOnce(&FakeLlm)) -> usize {
    fails_then_recovers_timed(fault).0
}

/// `fails_then_recovers`, and how long the failed question took to be answered.
fn fails_then_recovers_timed(fault: impl FnOnce(&FakeLlm)) -> (usize, Duration) {
    let (fake, t, u) = coach_with_income(&[]);
    fault(&fake);
    let (mut ws, _) = chat(&t, &u.token);
    let asked = std::time::Instant::now();
    let frames = ask(&mut ws, QUESTION);
    let took = asked.elapsed();
    let fallback = assert_fallback(&frames, "upstream_unavailable");
    let error = frames
        .iter()
        .find(|f| f["type"] == "error")
        .expect("error frame");
    assert_eq!(error["message"], FAILED);
    assert!(fallback.contains("income ₹1,234.00"), "{fallback}");
    let cost = fake.request_count();

    fake.set_fault(Fault::None);
    fake.set_first_byte_delay(Duration::ZERO);
    ping(&mut ws);
    assert_eq!(
        assert_streamed(&ask(&mut ws, "Then what should I do?")),
        HELLO
    );
    let (mut fresh, _) = chat(&t, &u.token);
    assert_eq!(assert_streamed(&ask(&mut fresh, QUESTION)), HELLO);
    assert_eq!(
        fake.request_count(),
        cost + 2,
        "the fallback was not cached"
    );
    (cost, took)
}

#[test]
fn a_first_byte_slower_than_the_timeout_falls_back() {
    let cost = fails_then_recovers(|f| f.set_first_byte_delay(Duration::from_secs(5)));
    assert_eq!(cost, 1, "a timeout is not retried");
}

#[test]
fn a_stream_that_stalls_mid_answer_falls_back() {
    fails_then_recovers(|f| f.set_fault(Fault::StallAfter(2)));
}

#[test]
fn a_stream_that_stalls_before_its_first_piece_falls_back_after_one_timeout() {
    let (cost, took) = fails_then_recovers_timed(|f| f.set_fault(Fault::StallAfter(0)));
    assert_eq!(cost, 1, "a silent upstream is not asked twice");
    // One OPENAI_TIMEOUT (2 s) and slack for a loaded machine; waiting twice would be 4 s.
    // Only the question is timed: the setup around it varies with the machine's load.
    assert!(took < Duration::from_millis(3_500), "took {took:?}");
}

#[test]
fn error_statuses_fall_back() {
    let body = r#"{"error":{"message":"nope"}}"#.to_string();
    assert_eq!(
        fails_then_recovers(|f| f.set_fault(Fault::Status(401, body.clone()))),
        1
    );
    assert_eq!(
        fails_then_recovers(|f| f.set_fault(Fault::Status(429, body.clone()))),
        1
    );
    assert_eq!(
        fails_then_recovers(|f| f.set_fault(Fault::Status(500, body.clone()))),
        2,
        "a 5xx is retried once"
    );
}

#[test]
fn one_500_is_retried_and_the_user_gets_the_normal_answer() {
    let (fake, t, u) = coach_with_income(&[]);
    fake.set_fault_once(Fault::Status(
        500,
        r#"{"error":{"message":"hiccup"}}"#.into(),
    ));
    let (mut ws, _) = chat(&t, &u.token);
    let frames = ask(&mut ws, QUESTION);
    assert!(frames.iter().all(|f| f["type"] == "response"), "{frames:?}");
    assert_eq!(assert_streamed(&frames), HELLO);
    assert_eq!(fake.request_count(), 2);
}

#[test]
fn garbage_an_error_event_or_a_dropped_stream_falls_back() {
    fails_then_recovers(|f| f.set_fault(Fault::GarbageAfter(1)));
    fails_then_recovers(|f| f.set_fault(Fault::ErrorEventAfter(1)));
    fails_then_recovers(|f| f.set_fault(Fault::DropAfter(2)));
    fails_then_recovers(|f| {
        f.set_chunked(true);
        f.set_fault(Fault::DropAfter(1));
    });
}

#[test]
fn a_rupee_sign_cut_across_writes_arrives_whole() {
    let (fake, t, u) = coach(&[], "rupee@example.com", "Rupee");
    fake.set_fault(Fault::SplitUtf8);
    let (mut ws, _) = chat(&t, &u.token);
    let text = assert_streamed(&ask(&mut ws, "How much can I save?"));
    assert_eq!(text, "You can save ₹500 a month.");
    assert!(text.contains("₹500"));

    fake.set_chunked(true);
    let text = assert_streamed(&ask(&mut ws, "And with chunks?"));
    assert_eq!(text, "You can save ₹500 a month.");
}

#[test]
fn without_an_api_key_nothing_goes_upstream_and_the_user_gets_the_fallback() {
    let fake = FakeLlm::start();
    let base = fake.base_url();
    let t = spawn_app_with(&[("OPENAI_BASE_URL", &base), ("OPENAI_TIMEOUT", "2")]);
    let u = register(&t, "fault@example.com", "Fault User");
    add_transaction(&t, &u.token, "income", "1234");
    let (mut ws, session) = chat(&t, &u.token);
    for _ in 0..2 {
        let frames = ask(&mut ws, QUESTION);
        assert_eq!(frames.len(), 2, "{frames:?}");
        let fallback = assert_fallback(&frames, "not_configured");
        assert!(fallback.contains("income ₹1,234.00"), "{fallback}");
        assert_eq!(last(&frames)["session_id"], session.as_str());
    }
    ping(&mut ws);
    assert_eq!(fake.request_count(), 0);
    assert_eq!(
        saved(&t, &u.token, &session).len(),
        4,
        "both sides are saved, fallbacks too"
    );
}

#[test]
fn over_the_daily_token_quota_nothing_goes_upstream_until_midnight() {
    let (fake, t, u) = coach_with_income(&[("CHAT_DAILY_TOKEN_LIMIT", "5")]);
    let (mut ws, _) = chat(&t, &u.token);
    assert_eq!(assert_streamed(&ask(&mut ws, QUESTION)), HELLO);
    assert_eq!(fake.request_count(), 1);

    let frames = ask(&mut ws, "One more question?");
    let fallback = assert_fallback(&frames, "quota_exceeded");
    assert!(fallback.contains("income ₹1,234.00"), "{fallback}");
    let message = frames[0]["message"].as_str().expect("message");
    let tomorrow = t
        .app()
        .clock
        .now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .expect("a tomorrow")
        .to_string();
    assert!(
        message.contains("resets") && message.contains(&tomorrow),
        "{message}"
    );
    assert_eq!(fake.request_count(), 1, "nothing sent upstream over quota");

    // HTTP is held to the same quota.
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/chat/message",
        Some(&u.token),
        &json!({"message": "And now?"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["fallback"], true);
    assert_eq!(fake.request_count(), 1);

    // The next UTC day starts a fresh quota.
    t.app().clock.advance(24 * 3600);
    let token = {
        let r = post_json(
            t.http,
            "/api/v1/auth/login",
            &json!({"email": "fault@example.com", "password": "Secret#123"}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let (mut next_day, _) = chat(&t, &token);
    assert_eq!(assert_streamed(&ask(&mut next_day, "A new day?")), HELLO);
    assert_eq!(fake.request_count(), 2);
}

#[test]
fn the_global_daily_cap_stops_everyone() {
    let (fake, t, first) = coach_with_income(&[("CHAT_GLOBAL_DAILY_TOKEN_LIMIT", "5")]);
    let second = register(&t, "second@example.com", "Second");
    let (mut a, _) = chat(&t, &first.token);
    assert_eq!(assert_streamed(&ask(&mut a, QUESTION)), HELLO);
    let (mut b, _) = chat(&t, &second.token);
    let frames = ask(&mut b, QUESTION);
    assert_fallback(&frames, "quota_exceeded");
    assert!(
        frames[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("resets")),
        "{}",
        frames[0]
    );
    assert_eq!(fake.request_count(), 1);
}

#[test]
fn a_daily_token_limit_of_zero_means_no_limit() {
    let (fake, t, u) = coach_with_income(&[("CHAT_DAILY_TOKEN_LIMIT", "0")]);
    let (mut ws, _) = chat(&t, &u.token);
    for i in 0..4 {
        assert_eq!(
            assert_streamed(&ask(&mut ws, &format!("Question {i}?"))),
            HELLO
        );
    }
    assert_eq!(fake.request_count(), 4);
}
