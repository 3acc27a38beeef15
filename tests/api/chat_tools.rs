//! The coach's tool loop (shared/API.md, "Coach tools"), against the fake LLM calling tools
//! the way OpenAI streams them, over the WebSocket, `POST /chat/message` and its SSE stream.
//! Most assertions are on the wire the fake recorded (tools offered, the calls sent back with
//! their ids, the number of rounds), so they hold whatever the tools themselves answer. The
//! tools are offered through `ToolSwitch::offer_when_none` while the real ones offer none.

use crate::{chat_support, common, fake_llm};

use std::time::{Duration, Instant};

use chat_support::*;
use common::*;
use fake_llm::{FakeCall, FakeLlm, Recorded, Script};
use serde_json::{Value, json};

const TOOLS: [&str; 5] = [
    "get_month_summary",
    "get_transactions",
    "get_spending_by_category",
    "get_allocations",
    "get_upcoming_bills",
];

const REFUSAL: &str = r#"{"error":{"code":400,"message":"tools param requires --jinja flag","type":"invalid_request_error"}}"#;

/// A server on the fake, offering its tools, and one user.
fn tooled(extra: &[(&str, &str)], email: &str) -> (FakeLlm, TestApp, User) {
    coach(extra, email, "Asha Rao")
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Ws,
    Sse,
}

/// One answer as the client saw it, over either transport.
struct Seen {
    /// WebSocket frames or SSE events, in order.
    items: Vec<Value>,
    /// The answer's text: the final frame's `content`, or the tokens joined.
    text: String,
    tools_used: Value,
}

fn ask_via(t: &TestApp, token: &str, via: Via, question: &str) -> Seen {
    match via {
        Via::Ws => {
            let (mut ws, _) = chat(t, token);
            let frames = ask(&mut ws, question);
            hang_up(ws);
            let f = last(&frames).clone();
            Seen {
                text: f["content"].as_str().expect("content").to_string(),
                tools_used: f["tools_used"].clone(),
                items: frames,
            }
        }
        Via::Sse => {
            let events = sse(t, token, question);
            let text = events
                .iter()
                .filter(|e| e["type"] == "token")
                .map(|e| e["content"].as_str().expect("token").to_string())
                .collect();
            let done = events.last().expect("events").clone();
            assert_eq!(done["type"], "done", "{events:?}");
            Seen {
                text,
                tools_used: done["tools_used"].clone(),
                items: events,
            }
        }
    }
}

fn sse(t: &TestApp, token: &str, question: &str) -> Vec<Value> {
    let r = t
        .call("POST", "/api/v1/chat/message/stream")
        .auth(token)
        .json(&json!({"message": question}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("an event"))
        .collect()
}

fn names(r: &Recorded) -> Vec<String> {
    r.json["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().expect("name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn messages(r: &Recorded) -> Vec<Value> {
    r.json["messages"].as_array().expect("messages").clone()
}

/// The `role: tool` messages of a request, as (tool_call_id, parsed content).
fn tool_results(r: &Recorded) -> Vec<(String, Value)> {
    messages(r)
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            let content = m["content"].as_str().expect("a tool result is text");
            (
                m["tool_call_id"]
                    .as_str()
                    .expect("tool_call_id")
                    .to_string(),
                serde_json::from_str(content).expect("a tool result is JSON"),
            )
        })
        .collect()
}

fn rows(t: &TestApp, sql: &str, user: &str) -> i64 {
    t.app()
        .db
        .read(|c| Ok(c.query_row(sql, [user], |r| r.get(0))?))
        .expect("count")
}

fn tool_rows(t: &TestApp, user: &str) -> i64 {
    rows(
        t,
        "SELECT count(*) FROM chat_tool_calls WHERE user_id = ?1",
        user,
    )
}

fn health_tools(t: &TestApp) -> Value {
    let r = t.call("GET", "/api/v1/health/detailed").send();
    assert_eq!(r.status, 200);
    r.json()["chat"]["tools"].clone()
}

/// Two calls whose arguments come in fragments of 3 characters, alternating, after some
/// text; then the answer.
fn two_interleaved_calls() -> Vec<Script> {
    vec![
        Script::Calls {
            text: vec!["Let me look".into(), " that up.".into()],
            calls: vec![
                FakeCall::new("call_A", "get_month_summary", r#"{"year":2025,"month":10}"#),
                FakeCall::new(
                    "call_B",
                    "get_spending_by_category",
                    r#"{"start_date":"2025-07-01","end_date":"2025-10-31"}"#,
                ),
            ],
            fragment: 3,
            interleave: true,
        },
        Script::Text(vec!["You spent ".into(), "₹120.".into()]),
    ]
}

#[test]
fn interleaved_calls_go_back_whole_with_their_ids_and_no_text_before_them_is_shown() {
    for via in [Via::Ws, Via::Sse] {
        let (fake, t, u) = tooled(&[], &format!("interleave-{via:?}@example.com"));
        fake.set_script(two_interleaved_calls());
        let seen = ask_via(&t, &u.token, via, "Where did my money go since July?");

        let reqs = fake.requests();
        assert_eq!(reqs.len(), 2, "{via:?}: one tool round, then the answer");
        assert_eq!(names(&reqs[0]), TOOLS, "{via:?}: the tools are offered");
        assert_eq!(reqs[0].json["tool_choice"], "auto");
        // The second request: the question, the assistant's calls put together whole from
        // their interleaved fragments, and one result per call id.
        let m = messages(&reqs[1]);
        let n = m.len();
        assert_eq!(m[n - 4]["role"], "user");
        assert_eq!(m[n - 4]["content"], "Where did my money go since July?");
        let asked = &m[n - 3];
        assert_eq!(asked["role"], "assistant");
        assert_eq!(asked["content"], "Let me look that up.");
        assert_eq!(
            asked["tool_calls"],
            json!([
                {"id": "call_A", "type": "function", "function": {"name": "get_month_summary",
                    "arguments": r#"{"year":2025,"month":10}"#}},
                {"id": "call_B", "type": "function", "function": {"name": "get_spending_by_category",
                    "arguments": r#"{"start_date":"2025-07-01","end_date":"2025-10-31"}"#}},
            ]),
            "{via:?}"
        );
        let results = tool_results(&reqs[1]);
        assert_eq!(
            results
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["call_A", "call_B"]
        );
        for (_, r) in &results {
            assert!(r.is_object(), "{via:?}: {r}");
            assert!(r.to_string().len() <= 8192);
        }

        // The client saw the final answer only, and which tools it used.
        assert_eq!(seen.text, "You spent ₹120.", "{via:?}");
        assert_eq!(
            seen.tools_used,
            json!(["get_month_summary", "get_spending_by_category"]),
            "{via:?}"
        );
        for item in &seen.items {
            assert!(!item.to_string().contains("Let me look"), "{via:?}: {item}");
        }
        match via {
            Via::Ws => {
                let looked: Vec<&str> = seen
                    .items
                    .iter()
                    .filter(|f| f["type"] == "status")
                    .map(|f| {
                        assert_eq!(f["status"], "looking_up");
                        f["tool"].as_str().expect("tool")
                    })
                    .collect();
                assert_eq!(looked, ["get_month_summary", "get_spending_by_category"]);
                let answer: Vec<Value> = seen
                    .items
                    .iter()
                    .filter(|f| f["type"] == "response")
                    .cloned()
                    .collect();
                assert_eq!(assert_streamed(&answer), "You spent ₹120.");
                assert_eq!(
                    answer[0]["content"], "You spent ",
                    "content holds the final answer only"
                );
                // The usage of the final frame is summed over both rounds.
                let (p, c) = fake
                    .reported_usages()
                    .iter()
                    .fold((0, 0), |(p, c), u| (p + u.0, c + u.1));
                assert_eq!(
                    last(&seen.items)["usage"],
                    json!({"prompt_tokens": p, "completion_tokens": c})
                );
            }
            Via::Sse => {
                // Only tokens between session_id and done.
                let kinds: Vec<&str> = seen
                    .items
                    .iter()
                    .map(|e| e["type"].as_str().expect("type"))
                    .collect();
                assert_eq!(kinds, ["session_id", "token", "token", "done"]);
            }
        }
        // Kept apart from the conversation: two rows of calls, two messages.
        assert_eq!(tool_rows(&t, &u.id), 2, "{via:?}");
        assert_eq!(
            rows(
                &t,
                "SELECT count(*) FROM chat_messages WHERE user_id = ?1",
                &u.id
            ),
            2
        );
    }
}

#[test]
fn a_model_that_never_stops_calling_gets_three_rounds_then_one_request_without_tools() {
    for via in ["ws", "sse", "json"] {
        let (fake, t, u) = tooled(&[], &format!("forever-{via}@example.com"));
        fake.set_call_forever(Some(FakeCall::new(
            "loop",
            "get_month_summary",
            r#"{"year":2025,"month":10}"#,
        )));
        let (text, tools_used, tokens) = match via {
            "ws" => {
                let s = ask_via(&t, &u.token, Via::Ws, "Again?");
                (s.text, s.tools_used, None)
            }
            "sse" => {
                let s = ask_via(&t, &u.token, Via::Sse, "Again?");
                (s.text, s.tools_used, None)
            }
            _ => {
                let r = call_ok(
                    &t,
                    "POST",
                    "/api/v1/chat/message",
                    &u.token,
                    &json!({"message": "Again?"}),
                    200,
                );
                assert_eq!(r["cached"], false);
                assert!(r.get("fallback").is_none(), "{r}");
                (
                    r["response"].as_str().expect("response").to_string(),
                    json!(["get_month_summary"]),
                    Some(r["tokens_used"].as_u64().expect("tokens_used")),
                )
            }
        };
        let reqs = fake.requests();
        assert_eq!(
            reqs.len(),
            4,
            "{via}: three rounds with tools, then one without"
        );
        for r in &reqs[..3] {
            assert_eq!(names(r), TOOLS, "{via}");
        }
        assert!(
            reqs[3].json.get("tools").is_none(),
            "{via}: the last request has no tools"
        );
        let ids: Vec<String> = tool_results(&reqs[3])
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["loop-1", "loop-2", "loop-3"], "{via}");
        assert_eq!(text, HELLO, "{via}");
        assert_eq!(tools_used, json!(["get_month_summary"]), "{via}");
        if let Some(tokens) = tokens {
            let sum: u64 = fake.reported_usages().iter().map(|u| u.0 + u.1).sum();
            assert_eq!(tokens, sum, "tokens_used is summed over all rounds");
        }
        // Every round counted against the quota.
        let (tokens, requests) = t
            .app()
            .db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT tokens, requests FROM llm_usage_daily WHERE user_id = ?1",
                    [&u.id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )?)
            })
            .expect("usage");
        let sum: u64 = fake.reported_usages().iter().map(|u| u.0 + u.1).sum();
        assert_eq!((tokens as u64, requests), (sum, 4), "{via}");
        assert_eq!(tool_rows(&t, &u.id), 3);
    }
}

#[test]
fn a_seventh_call_gets_call_limit_reached_and_the_next_request_offers_no_tools() {
    let (fake, t, u) = tooled(&[], "seven@example.com");
    let calls = (1..=7)
        .map(|i| FakeCall::new(&format!("c{i}"), "get_upcoming_bills", r#"{"days":7}"#))
        .collect();
    fake.set_script(vec![Script::calls(calls)]);
    let (mut ws, _) = chat(&t, &u.token);
    let frames = ask(&mut ws, "Bills?");
    assert_eq!(
        assert_streamed(&frames[1..]),
        HELLO,
        "one status frame first"
    );
    assert_eq!(frames[0]["type"], "status");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[1].json.get("tools").is_none(),
        "six calls used: no more tools"
    );
    let results = tool_results(&reqs[1]);
    assert_eq!(results.len(), 7, "every call id gets a result");
    for (id, r) in &results[..6] {
        assert_ne!(r, &json!({"error": "call limit reached"}), "{id}");
    }
    assert_eq!(
        results[6],
        ("c7".into(), json!({"error": "call limit reached"}))
    );
    assert_eq!(tool_rows(&t, &u.id), 7);
}

#[test]
fn bad_calls_get_error_results_and_the_user_still_gets_an_answer() {
    for via in [Via::Ws, Via::Sse] {
        let (fake, t, u) = tooled(&[], &format!("bad-{via:?}@example.com"));
        let other = register(&t, &format!("other-{via:?}@example.com"), "Ravi");
        add_transaction(&t, &other.token, "income", "7777");
        fake.set_script(vec![
            Script::calls(vec![
                FakeCall::new("unknown", "drop_tables", "{}"),
                FakeCall::new("broken", "get_transactions", r#"{"start_date":"2025-01-01","#),
                FakeCall::new("range", "get_upcoming_bills", r#"{"days":500}"#),
                FakeCall::new(
                    "long",
                    "get_transactions",
                    r#"{"start_date":"2024-01-01","end_date":"2025-12-31","type":"any","category":null,"search":null,"page":1}"#,
                ),
                FakeCall::new(
                    "theirs",
                    "get_transactions",
                    r#"{"start_date":"2025-10-01","end_date":"2025-10-31","type":"any","category":"ravis-secret-category","search":null,"page":1}"#,
                ),
                FakeCall::new("extra", "get_month_summary", r#"{"year":2025,"month":13,"x":1}"#),
            ]),
            Script::Text(vec!["Still here.".into()]),
        ]);
        let seen = ask_via(&t, &u.token, via, "Anything?");
        assert_eq!(
            seen.text, "Still here.",
            "{via:?}: an answer, not a fallback"
        );
        assert_eq!(
            seen.tools_used,
            json!([
                "get_transactions",
                "get_upcoming_bills",
                "get_month_summary"
            ]),
            "{via:?}: tools that exist, in order of first use, no repeats"
        );
        let reqs = fake.requests();
        assert_eq!(reqs.len(), 2, "{via:?}");
        let results = tool_results(&reqs[1]);
        assert_eq!(results.len(), 6);
        for (id, r) in &results {
            assert!(
                r["error"].is_string(),
                "{via:?}: {id} gets an error result: {r}"
            );
            assert!(!r.to_string().contains("7777"), "{via:?}: {id}: {r}");
        }
    }
}

/// A result holds the asking user's own figures and never another user's.
#[test]
fn a_tool_result_holds_the_asking_users_figures_only() {
    let (fake, t, u) = tooled(&[], "figures-a@example.com");
    let other = register(&t, "figures-b@example.com", "Ravi");
    add_transaction(&t, &u.token, "income", "4321");
    add_transaction(&t, &other.token, "income", "8765");
    let today = t.app().clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let args = json!({"year": today.year(), "month": today.month()}).to_string();
    fake.set_script(vec![Script::calls(vec![FakeCall::new(
        "mine",
        "get_month_summary",
        &args,
    )])]);
    let (mut ws, _) = chat(&t, &u.token);
    let frames = ask(&mut ws, "How is this month?");
    assert_eq!(last(&frames)["tools_used"], json!(["get_month_summary"]));
    let results = tool_results(&fake.requests()[1]);
    let (id, result) = &results[0];
    assert_eq!(id, "mine");
    let text = result.to_string();
    assert!(result.get("error").is_none(), "{text}");
    assert!(text.contains("4321"), "{text}");
    assert!(!text.contains("8765"), "{text}");
}

#[test]
fn under_auto_an_upstream_that_refuses_tools_is_asked_again_without_and_not_offered_tools_for_ten_minutes()
 {
    let (fake, t, u) = tooled(&[], "refuse@example.com");
    assert_eq!(health_tools(&t), "auto:offered");
    fake.set_refuse_tools(Some((400, REFUSAL.into())));
    let seen = ask_via(&t, &u.token, Via::Ws, "First?");
    assert_eq!(seen.text, HELLO, "answered without tools, no fallback");
    assert_eq!(seen.tools_used, json!([]));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(names(&reqs[0]), TOOLS);
    assert!(reqs[1].json.get("tools").is_none());
    assert_eq!(
        messages(&reqs[0]),
        messages(&reqs[1]),
        "the same question again"
    );
    assert_eq!(health_tools(&t), "auto:backed_off");

    // Within the ten minutes, no tools over either transport.
    t.app().clock.advance(9 * 60);
    let seen = ask_via(&t, &u.token, Via::Sse, "Second?");
    assert_eq!(seen.text, HELLO);
    assert_eq!(seen.tools_used, json!([]));
    assert_eq!(fake.request_count(), 3);
    assert!(fake.requests()[2].json.get("tools").is_none());

    // After them, tools are offered again.
    t.app().clock.advance(61);
    assert_eq!(health_tools(&t), "auto:offered");
    fake.set_refuse_tools(None);
    let seen = ask_via(&t, &u.token, Via::Sse, "Third?");
    assert_eq!(seen.text, HELLO);
    assert_eq!(names(&fake.requests()[3]), TOOLS);
}

#[test]
fn a_refusal_that_does_not_name_tools_is_an_upstream_failure_even_under_auto() {
    let (fake, t, u) = tooled(&[], "refuse-other@example.com");
    fake.set_refuse_tools(Some((400, r#"{"error":{"message":"bad request"}}"#.into())));
    let (mut ws, _) = chat(&t, &u.token);
    let frames = ask(&mut ws, "Hm?");
    assert_fallback(&frames, "upstream_unavailable");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(health_tools(&t), "auto:offered");
}

#[test]
fn under_on_a_refusal_is_a_failure_and_tools_stay_offered() {
    let (fake, t, u) = tooled(&[("OPENAI_TOOLS", "on")], "on@example.com");
    assert_eq!(health_tools(&t), "on");
    fake.set_refuse_tools(Some((400, REFUSAL.into())));
    let (mut ws, _) = chat(&t, &u.token);
    let frames = ask(&mut ws, "One?");
    assert_fallback(&frames, "upstream_unavailable");
    assert_eq!(last(&frames)["tools_used"], json!([]));
    assert_eq!(fake.request_count(), 1, "a 4xx is not asked again");
    fake.set_refuse_tools(None);
    let frames = ask(&mut ws, "Two?");
    assert_eq!(assert_streamed(&frames), HELLO);
    assert_eq!(names(&fake.requests()[1]), TOOLS);
    assert_eq!(health_tools(&t), "on");
}

#[test]
fn under_off_no_tools_are_sent_and_calls_the_model_makes_anyway_are_not_run() {
    let (fake, t, u) = tooled(&[("OPENAI_TOOLS", "off")], "off@example.com");
    assert_eq!(health_tools(&t), "off");
    fake.set_call_forever(Some(FakeCall::new("x", "get_month_summary", "{}")));
    fake.set_script(vec![Script::Calls {
        text: vec!["Plain".into(), " answer.".into()],
        calls: vec![FakeCall::new("y", "get_month_summary", "{}")],
        fragment: 2,
        interleave: false,
    }]);
    for via in [Via::Ws, Via::Sse] {
        let seen = ask_via(&t, &u.token, via, &format!("Off over {via:?}?"));
        assert_eq!(seen.tools_used, json!([]), "{via:?}");
        assert!(!seen.text.is_empty());
    }
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "one request per question");
    assert!(reqs.iter().all(|r| r.json.get("tools").is_none()));
    assert_eq!(tool_rows(&t, &u.id), 0);
}

#[test]
fn the_quota_is_checked_before_every_round() {
    for via in [Via::Ws, Via::Sse] {
        // The first round uses up the limit of one token.
        let (fake, t, u) = tooled(
            &[("CHAT_DAILY_TOKEN_LIMIT", "1")],
            &format!("quota-{via:?}@example.com"),
        );
        fake.set_call_forever(Some(FakeCall::new("q", "get_month_summary", "{}")));
        let seen = ask_via(&t, &u.token, via, "Over?");
        assert_eq!(
            fake.request_count(),
            1,
            "{via:?}: no second round over the quota"
        );
        match via {
            Via::Ws => {
                assert_eq!(seen.items[0]["type"], "status");
                let text = assert_fallback(&seen.items[1..], "quota_exceeded");
                assert_eq!(text, seen.text);
                assert_eq!(seen.tools_used, json!(["get_month_summary"]));
            }
            Via::Sse => {
                let kinds: Vec<&str> = seen
                    .items
                    .iter()
                    .map(|e| e["type"].as_str().expect("type"))
                    .collect();
                assert_eq!(kinds, ["session_id", "error", "token", "done"], "{via:?}");
                assert!(!seen.text.is_empty());
            }
        }
        let used = rows(
            &t,
            "SELECT tokens FROM llm_usage_daily WHERE user_id = ?1",
            &u.id,
        );
        let (p, c) = fake.reported_usages()[0];
        assert_eq!(used as u64, p + c, "{via:?}: the round that ran is counted");
        let m = get(t.http, "/api/v1/metrics").json();
        assert_eq!(
            m["llm"]["errors"], 0,
            "{via:?}: a quota is no model failure"
        );
    }
}

#[test]
fn cancel_mid_round_stops_every_round() {
    let (fake, t, u) = tooled(&[], "cancel@example.com");
    fake.set_first_byte_delay(Duration::from_millis(400));
    fake.set_call_forever(Some(FakeCall::new("c", "get_month_summary", "{}")));
    let (mut ws, session) = chat(&t, &u.token);
    send(&mut ws, &json!({"type": "message", "content": "Cancel me"}));
    // The first round ends in a call: the status frame, and the second round is under way.
    let status = next_json(&mut ws);
    assert_eq!(status["type"], "status", "{status}");
    assert!(wait_until(Duration::from_secs(5), || fake.request_count() == 2));
    send(&mut ws, &json!({"type": "cancel"}));
    let f = next_json(&mut ws);
    assert_eq!(f["cancelled"], true, "{f}");
    assert_eq!(f["content"], "", "nothing of a tool round was shown");
    assert!(
        fake.wait_client_closed(Duration::from_secs(5)),
        "the round in flight was cut"
    );
    let quiet = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < quiet {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fake.request_count(), 2, "no round after the cancel");
    ping(&mut ws);
    assert_eq!(
        saved(&t, &u.token, &session),
        pairs(&[("user", "Cancel me")])
    );
}

#[test]
fn tool_calls_are_kept_apart_exported_and_deleted_and_an_answer_that_used_one_is_not_cached() {
    let (fake, t, u) = tooled(&[], "apart@example.com");
    let round = || {
        vec![
            Script::calls(vec![FakeCall::new(
                "k",
                "get_allocations",
                r#"{"year":2025,"month":10}"#,
            )]),
            Script::Text(vec!["Looked.".into()]),
        ]
    };
    fake.set_script([round(), round()].concat());
    let ask_json = |q: &str, session: Option<&str>| {
        let mut body = json!({"message": q});
        if let Some(s) = session {
            body["session_id"] = json!(s);
        }
        call_ok(&t, "POST", "/api/v1/chat/message", &u.token, &body, 200)
    };
    // Two new conversations with nothing in them: the same context, so the same cache key.
    let first = ask_json("Same question", None);
    let second = ask_json("Same question", None);
    assert_eq!(
        (first["cached"].clone(), second["cached"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(second["response"], "Looked.");
    assert_eq!(
        fake.request_count(),
        4,
        "the second was asked upstream again"
    );

    // The history holds the question and the answer only.
    let session = first["conversation_id"].as_str().expect("id").to_string();
    let other = second["conversation_id"].as_str().expect("id").to_string();
    for s in [&session, &other] {
        assert_eq!(
            saved(&t, &u.token, s),
            pairs(&[("user", "Same question"), ("assistant", "Looked.")])
        );
    }
    let stored: Vec<(String, String, String, i64)> = t
        .app()
        .db
        .read(|c| {
            let mut s = c.prepare(
                "SELECT session_id, call_id, name, round FROM chat_tool_calls WHERE user_id = ?1
                 ORDER BY created_at, rowid",
            )?;
            let rows = s
                .query_map([&u.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .expect("rows");
    assert_eq!(
        stored,
        [session.clone(), other.clone()].map(|s| (
            s,
            "k".to_string(),
            "get_allocations".to_string(),
            1
        ))
    );
    let export = get_auth(t.http, "/api/v1/users/me/export", &u.token).json();
    let exported = export["chat_tool_calls"].as_array().expect("exported");
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0]["user_id"], u.id.as_str());

    // A question without tools is still cached, as before.
    fake.set_script(vec![]);
    assert_eq!(ask_json("Plain", None)["cached"], false);
    assert_eq!(ask_json("Plain", None)["cached"], true);

    // Deleting the conversation deletes its tool calls.
    let r = delete(
        &t,
        &format!("/api/v1/chat/conversations/{session}"),
        &u.token,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        tool_rows(&t, &u.id),
        1,
        "the other conversation's call stays"
    );
}
