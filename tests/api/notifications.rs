//! The notifications inbox (API.md "Notifications inbox"): alerts are stored and pushed with
//! the same id, a budget_alert goes out at most once per category and month, the inbox pages
//! by id, filters unread, marks read (only the caller's), keeps 90 days, and refuses bad input
//! without changing anything.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};

use crate::chat_support::{Ws, next_json, open, send};
use crate::common::{TestApp, spawn_app, wait_until};
use crate::internals::Event;
use crate::money_support::*;

const INBOX: &str = "/api/v1/notifications";
const READ: &str = "/api/v1/notifications/read";

/// The events the in-process hub handed to a subscriber within a short wait, as JSON frames.
fn drain(rx: &Receiver<Event>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(v) = rx.recv_timeout(Duration::from_millis(100)) {
        out.push(serde_json::to_value(&v).expect("an event serialises"));
    }
    out
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

fn inbox(t: &TestApp, tok: &str, query: &str) -> Value {
    get_ok(t, &format!("{INBOX}{query}"), tok)
}

fn ids(page: &Value) -> Vec<i64> {
    page["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| n["id"].as_i64().expect("integer id"))
        .collect()
}

fn mark(t: &TestApp, tok: &str, body: &Value) -> Value {
    expect(t, "POST", READ, tok, Some(body), 200)
}

/// A notification put straight into the table, created at `created_at`; its id.
fn insert(t: &TestApp, user: &str, created_at: &str) -> i64 {
    t.app()
        .db
        .write(|tx| {
            tx.execute(
                "INSERT INTO notifications (user_id, type, payload, created_at)
                 VALUES (?1, 'bill_due', '{\"label\":\"rent\",\"amount\":1200.5}', ?2)",
                [user, created_at],
            )?;
            Ok(tx.last_insert_rowid())
        })
        .expect("insert a notification")
}

/// `days` before the server's clock, as the table writes times.
fn days_ago(t: &TestApp, days: f64) -> String {
    let secs = (days * 86_400.0) as i64;
    let at = t.app().clock.now() - jiff::SignedDuration::from_secs(secs);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// (id, read_at) of every notification in the database, in id order: what "no data change"
/// compares.
fn table(t: &TestApp) -> Vec<(i64, Option<String>)> {
    t.app()
        .db
        .read(|c| {
            let mut s = c.prepare("SELECT id, read_at FROM notifications ORDER BY id")?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .expect("read notifications")
}

/// A server with two users, `inbox-<tag>-a` and `-b`.
fn two_users(tag: &str) -> (TestApp, User, User) {
    let t = spawn_app();
    let [a, b] = ["a", "b"].map(|x| register(&t, &format!("inbox-{tag}-{x}@example.com")));
    (t, a, b)
}

#[test]
fn an_alert_is_stored_and_pushed_with_the_same_id() {
    let (t, u) = app_and_user("inbox-push@example.com");
    let tok = &u.token;
    let mut ws = open(&t, &format!("/ws/notifications?token={tok}"));
    assert_eq!(next_json(&mut ws)["type"], "connected");
    assert_eq!(
        inbox(&t, tok, ""),
        json!({"notifications": [], "unread_count": 0})
    );

    let ty = type_id(&t, tok, "spending", 0);
    set_budget(&t, tok, &ty, 10_000, 10, 2025);
    record_actual(&t, tok, &ty, 12_050, None, 10, 2025);
    let frame = next_event(&mut ws);
    let id = frame["id"]
        .as_i64()
        .expect("the frame carries an integer id");
    assert_eq!(
        frame,
        json!({"type": "budget_alert", "id": id, "category": "spending", "month": 10,
               "year": 2025, "budget": 100, "actual": 120.5})
    );

    let page = inbox(&t, tok, "");
    assert_eq!(page["unread_count"], 1, "{page}");
    let stored = &page["notifications"][0];
    let created = stored["created_at"].as_str().expect("created_at");
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    assert_eq!(
        stored,
        &json!({"id": id, "type": "budget_alert", "created_at": created, "read_at": null,
                "payload": {"category": "spending", "month": 10, "year": 2025,
                            "budget": 100, "actual": 120.5}})
    );
    // The export holds the row, its payload as JSON.
    let e = export(&t, tok);
    assert_eq!(e["notifications"][0]["id"], id, "{e}");
    assert_eq!(e["notifications"][0]["payload"]["actual"], json!(120.5));
    assert_eq!(e["notifications"][0]["user_id"], u.id.as_str());
}

#[test]
fn a_budget_alert_goes_out_at_most_once_per_category_and_month() {
    let (t, u) = app_and_user("inbox-once@example.com");
    let tok = &u.token;
    let rx = t.app().events.subscribe(&u.id);
    let spending = type_id(&t, tok, "spending", 0);
    let learning = type_id(&t, tok, "learning", 0);
    set_budget(&t, tok, &spending, 10_000, 10, 2025);
    record_actual(&t, tok, &spending, 10_001, None, 10, 2025);
    let first = drain(&rx);
    assert_eq!(first.len(), 1, "{first:?}");
    // Back under, over again, under, over: the same category in the same month says nothing
    // more, on the socket or in the inbox.
    for p in [5_000, 20_000, 0, 30_000] {
        record_actual(&t, tok, &spending, p, None, 10, 2025);
    }
    assert_eq!(drain(&rx), Vec::<Value>::new());
    assert_eq!(
        ids(&inbox(&t, tok, "")),
        vec![first[0]["id"].as_i64().expect("id")]
    );

    // Another category the same month, and the same category in a new month: one each.
    set_budget(&t, tok, &learning, 1_000, 10, 2025);
    record_actual(&t, tok, &learning, 1_001, None, 10, 2025);
    set_budget(&t, tok, &spending, 10_000, 11, 2025);
    record_actual(&t, tok, &spending, 10_001, None, 11, 2025);
    let more = drain(&rx);
    let kinds: Vec<(Value, Value)> = more
        .iter()
        .map(|f| (f["category"].clone(), f["month"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!("learning"), json!(10)),
            (json!("spending"), json!(11))
        ]
    );
    let page = inbox(&t, tok, "");
    let pushed: Vec<i64> = first
        .iter()
        .chain(&more)
        .map(|f| f["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids(&page), pushed, "what was pushed is what is stored");
    assert_eq!(page["unread_count"], 3);
    // Reading the alert does not let the month alert again.
    mark(&t, tok, &json!({"all": true}));
    record_actual(&t, tok, &spending, 0, None, 10, 2025);
    record_actual(&t, tok, &spending, 50_000, None, 10, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());
    assert_eq!(count_rows(&t, "notifications", "user_id", &u.id), 3);
}

#[test]
fn the_inbox_pages_by_id_oldest_first() {
    let (t, a, b) = two_users("page");
    let now = days_ago(&t, 0.0);
    let mut mine = Vec::new();
    for i in 0..55 {
        mine.push(insert(&t, &a.id, &now));
        if i % 5 == 0 {
            insert(&t, &b.id, &now);
        }
    }
    let tok = &a.token;
    // Default limit 50, oldest first, only the caller's.
    let page = inbox(&t, tok, "");
    assert_eq!(ids(&page), mine[..50]);
    assert_eq!(page["unread_count"], 55);
    assert_eq!(
        page["notifications"][0]["payload"],
        json!({"label": "rent", "amount": 1200.5})
    );
    assert_eq!(page["notifications"][0]["type"], "bill_due");
    // Page by the last id seen.
    let p1 = inbox(&t, tok, "?limit=20");
    assert_eq!(ids(&p1), mine[..20]);
    let p2 = inbox(&t, tok, &format!("?limit=20&after={}", mine[19]));
    assert_eq!(ids(&p2), mine[20..40]);
    let p3 = inbox(&t, tok, &format!("?limit=20&after={}", mine[39]));
    assert_eq!(ids(&p3), mine[40..]);
    let end = inbox(&t, tok, &format!("?limit=20&after={}", mine[54]));
    assert_eq!(end, json!({"notifications": [], "unread_count": 55}));
    // The bounds: 1 and 200.
    assert_eq!(ids(&inbox(&t, tok, "?limit=1")), mine[..1]);
    assert_eq!(ids(&inbox(&t, tok, "?limit=200&after=0")), mine);
    // b sees only b's.
    assert_eq!(inbox(&t, &b.token, "")["unread_count"], 11);
}

#[test]
fn unread_filter_and_marking_count_exactly_and_only_the_callers() {
    let (t, a, b) = two_users("read");
    let now = days_ago(&t, 0.0);
    let mine: Vec<i64> = (0..5).map(|_| insert(&t, &a.id, &now)).collect();
    let theirs: Vec<i64> = (0..2).map(|_| insert(&t, &b.id, &now)).collect();
    let tok = &a.token;

    // Two of mine, one twice, one of b's and one that does not exist: 2 marked.
    let body = json!({"ids": [mine[1], mine[3], mine[3], theirs[0], 999_999]});
    assert_eq!(mark(&t, tok, &body), json!({"marked": 2}));
    // Again: nothing newly read.
    assert_eq!(mark(&t, tok, &body), json!({"marked": 0}));
    assert_eq!(mark(&t, tok, &json!({"ids": []})), json!({"marked": 0}));
    let all = inbox(&t, tok, "");
    assert_eq!(all["unread_count"], 3);
    assert_eq!(ids(&all), mine);
    let read_at = &all["notifications"][1]["read_at"];
    assert!(read_at.as_str().is_some_and(|s| s.ends_with('Z')), "{all}");
    assert_eq!(all["notifications"][0]["read_at"], Value::Null);
    // unread=true: only the unread ones; the count is the total either way.
    let unread = inbox(&t, tok, "?unread=true");
    assert_eq!(ids(&unread), vec![mine[0], mine[2], mine[4]]);
    assert_eq!(unread["unread_count"], 3);
    assert_eq!(
        ids(&inbox(&t, tok, &format!("?unread=true&after={}", mine[0]))),
        vec![mine[2], mine[4]]
    );
    assert_eq!(ids(&inbox(&t, tok, "?unread=false")), mine);

    // b's notification was not marked by a's request.
    let theirs_page = inbox(&t, &b.token, "");
    assert_eq!(theirs_page["unread_count"], 2);
    assert!(
        theirs_page["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .all(|n| n["read_at"].is_null())
    );

    // all: the remaining 3, then none.
    assert_eq!(mark(&t, tok, &json!({"all": true})), json!({"marked": 3}));
    assert_eq!(mark(&t, tok, &json!({"all": true})), json!({"marked": 0}));
    assert_eq!(inbox(&t, tok, "")["unread_count"], 0);
    assert_eq!(inbox(&t, tok, "?unread=true")["notifications"], json!([]));
    assert_eq!(inbox(&t, &b.token, "")["unread_count"], 2);
    // `all: false` beside ids is just ids.
    let body = json!({"ids": [theirs[1]], "all": false});
    assert_eq!(mark(&t, &b.token, &body), json!({"marked": 1}));
}

#[test]
fn a_daily_sweep_deletes_what_is_older_than_90_days_only() {
    let (t, a, b) = two_users("sweep");
    let old = insert(&t, &a.id, &days_ago(&t, 91.0));
    let almost = insert(&t, &a.id, &days_ago(&t, 89.5));
    let recent = insert(&t, &a.id, &days_ago(&t, 88.0));
    let theirs = insert(&t, &b.id, &days_ago(&t, 10.0));
    // The sweep ran at start-up; the next one is a day later, and 89.5 days is within 90.
    std::thread::sleep(Duration::from_millis(300));
    let listed = ids(&inbox(&t, &a.token, ""));
    assert!(listed.ends_with(&[almost, recent]), "{listed:?}");

    // A day later by the server's clock: the daily sweep runs again, and 89.5 days became 90.5.
    t.app().clock.advance(86_400);
    let (a_token, b_token) = (login(&t, &a.email), login(&t, &b.email));
    assert!(
        wait_until(Duration::from_secs(5), || {
            ids(&inbox(&t, &a_token, "")) == vec![recent]
        }),
        "{:?}",
        table(&t)
    );
    assert_eq!(ids(&inbox(&t, &b_token, "")), vec![theirs]);
    assert_eq!(count_rows(&t, "notifications", "id", &old.to_string()), 0);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let t = spawn_app();
    let a = register(&t, "inbox-bad@example.com");
    let tok = &a.token;
    let now = days_ago(&t, 0.0);
    let mine: Vec<i64> = (0..3).map(|_| insert(&t, &a.id, &now)).collect();
    mark(&t, tok, &json!({"ids": [mine[0]]}));
    let before = table(&t);

    for (query, field, kind) in [
        ("after=abc", "after", "int_parsing"),
        ("after=1.5", "after", "int_parsing"),
        ("after=-1", "after", "greater_than_equal"),
        ("after=99999999999999999999", "after", "int_parsing"),
        ("limit=0", "limit", "value_error"),
        ("limit=201", "limit", "value_error"),
        ("limit=ten", "limit", "int_parsing"),
        ("unread=maybe", "unread", "bool_parsing"),
        ("unread=1", "unread", "bool_parsing"),
        ("unread=", "unread", "bool_parsing"),
    ] {
        let r = call(&t, "GET", &format!("{INBOX}?{query}"), tok, None);
        assert_eq!(r.status, 422, "{query}: {}", r.text());
        assert_eq!(r.json()["code"], "validation_error", "{query}");
        assert_eq!(
            r.json()["detail"][0]["loc"],
            json!(["query", field]),
            "{query}"
        );
        assert_eq!(r.json()["detail"][0]["type"], kind, "{query}");
    }

    let many: Vec<i64> = (1..=501).collect();
    let bodies = [
        (json!({}), "ids", "missing"),
        (json!({"all": false}), "ids", "missing"),
        (json!({"ids": null, "all": null}), "ids", "missing"),
        (json!({"ids": [mine[1]], "all": true}), "all", "value_error"),
        (json!({"ids": [mine[1], "2"]}), "ids", "int_type"),
        (json!({"ids": [mine[1], 2.5]}), "ids", "int_from_float"),
        (json!({"ids": [1e30]}), "ids", "int_from_float"),
        (
            serde_json::from_str(r#"{"ids": [-9223372036854775809]}"#).expect("JSON"),
            "ids",
            "int_from_float",
        ),
        (
            serde_json::from_str(r#"{"ids": [9223372036854775808.0]}"#).expect("JSON"),
            "ids",
            "int_from_float",
        ),
        (json!({"ids": mine[1]}), "ids", "list_type"),
        (json!({"ids": many}), "ids", "too_long"),
        (json!({"all": "true"}), "all", "bool_type"),
        (json!({"all": 1}), "all", "bool_type"),
    ];
    for (body, field, kind) in bodies {
        let r = call(&t, "POST", READ, tok, Some(&body));
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        let v = r.json();
        assert_eq!(v["code"], "validation_error", "{body}");
        assert_eq!(v["detail"][0]["loc"], json!(["body", field]), "{body}");
        assert_eq!(v["detail"][0]["type"], kind, "{body}");
    }
    assert_eq!(table(&t), before, "no refused request marked anything");
    // An integer written with a zero fraction is an integer (JSON Schema's rule).
    let body = json!({"ids": [mine[1] as f64, -504.0]});
    assert_eq!(mark(&t, tok, &body), json!({"marked": 1}));
    let before = table(&t);
    // 500 ids is the most one request takes.
    let most: Vec<i64> = (1_000_000..1_000_500).collect();
    assert_eq!(mark(&t, tok, &json!({"ids": most})), json!({"marked": 0}));
    for raw in [&b"{"[..], b"[1]", b"", b"\xff"] {
        let r = t.call("POST", READ).auth(tok).body(raw).send();
        assert_eq!(r.status, 422, "{raw:?}: {}", r.text());
        assert_eq!(r.json()["code"], "validation_error");
    }
    // Without a bearer token: 401 on both.
    for (method, path) in [("GET", INBOX), ("POST", READ)] {
        let r = t.call(method, path).json(&json!({"all": true})).send();
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        let www = r.header("www-authenticate").unwrap_or_default();
        assert!(www.starts_with("Bearer"), "{method} {path}: {www:?}");
    }
    let r = call(&t, "POST", READ, "not-a-token", Some(&json!({"all": true})));
    assert_eq!(r.status, 401);
    assert_eq!(table(&t), before, "nothing was marked");
}

/// A notification pushed on a socket opened with the `authenticate` message too, and the
/// socket carries nothing for another user's alert.
#[test]
fn only_the_owner_s_sockets_hear_an_alert() {
    let t = spawn_app();
    let a = register(&t, "inbox-ws-a@example.com");
    let b = register(&t, "inbox-ws-b@example.com");
    let mut ws = open(&t, "/ws/notifications");
    send(&mut ws, &json!({"type": "authenticate", "token": b.token}));
    assert_eq!(next_json(&mut ws)["type"], "connected");
    let ty = type_id(&t, &a.token, "health", 0);
    set_budget(&t, &a.token, &ty, 100, 3, 2026);
    record_actual(&t, &a.token, &ty, 200, None, 3, 2026);
    assert_eq!(inbox(&t, &a.token, "")["unread_count"], 1);
    let tyb = type_id(&t, &b.token, "health", 0);
    set_budget(&t, &b.token, &tyb, 100, 3, 2026);
    record_actual(&t, &b.token, &tyb, 300, None, 3, 2026);
    let frame = next_event(&mut ws);
    assert_eq!(
        frame["actual"],
        json!(3),
        "b's own alert comes first: {frame}"
    );
    assert_eq!(
        ids(&inbox(&t, &b.token, "")),
        vec![frame["id"].as_i64().expect("id")]
    );
}
