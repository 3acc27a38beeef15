//! Posting recurring occurrences (issue 14): `POST /recurring/{id}/confirm`, the ticker that
//! auto-posts and reminds, and what both leave behind: a transaction like any other (totals,
//! `spent_amount`), `posted` in the upcoming view, `bill_due` / `bill_posted` in the inbox and
//! on `/ws/notifications`, each occurrence posted at most once (concurrent confirms, restarts).
//!
//! The tests that need the ticker at a known moment start the server with a long
//! `RECURRING_TICK_SECONDS` (it then ticks once, at start-up, before any rule exists) and call
//! `ticker::tick` themselves after moving the clock; the ones about the thread itself use 1 s
//! and poll, bounded.

use std::time::Duration;

use crate::chat_support::{next_json, open};
use crate::common::{self, Reply, TestApp, test_config, wait_until};
use crate::money_support::*;
use serde_json::{Value, json};
use wealthcoach::recurring::ticker;

const RULES: &str = "/api/v1/recurring";

/// A server in `tz` whose ticker only ticks when a test calls it, with its clock at `instant`.
fn quiet_server(tz: &str, instant: &str) -> TestApp {
    let t = common::spawn_app_with(&[("APP_TIMEZONE", tz), ("RECURRING_TICK_SECONDS", "86400")]);
    set_clock(&t, instant);
    t
}

fn set_clock(t: &TestApp, instant: &str) {
    let target: jiff::Timestamp = instant.parse().expect("instant");
    let clock = &t.app().clock;
    clock.advance(target.as_second() - clock.unix());
}

fn tick(t: &TestApp) -> ticker::Report {
    ticker::tick(t.app()).expect("a tick")
}

fn rule(t: &TestApp, tok: &str, extra: Value) -> Value {
    let mut body = json!({"type": "expense", "category": "bills", "label": "Rent",
                          "amount": "1250.50", "frequency": "monthly",
                          "start_date": "2025-03-20"});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    expect(t, "POST", RULES, tok, Some(&body), 201)
}

/// The next frame that is not a heartbeat or a sync push.
fn next_event(ws: &mut crate::chat_support::Ws) -> Value {
    loop {
        let f = next_json(ws);
        // `sync` frames (API.md "Sync for offline clients") follow every commit, at most one
        // a second; tests/api/sync.rs checks them.
        if f["type"] != "heartbeat" && f["type"] != "sync" {
            return f;
        }
    }
}

fn assert_not_found(r: &Reply) {
    assert_error(
        r,
        404,
        "recurring_not_found",
        "Recurring transaction not found",
    );
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn confirm_path(id: &str) -> String {
    format!("{RULES}/{id}/confirm")
}

fn confirm(t: &TestApp, tok: &str, id: &str, body: Value) -> Reply {
    call(t, "POST", &confirm_path(id), tok, Some(&body))
}

/// `(date, status, transaction_id)` of one rule's items in the upcoming view.
fn upcoming(t: &TestApp, tok: &str, rule: &str) -> Vec<(String, String, Value)> {
    let v = get_ok(t, &format!("{RULES}/upcoming?days=60"), tok);
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["recurring_id"] == rule)
        .map(|i| {
            (
                i["date"].as_str().expect("date").to_string(),
                i["status"].as_str().expect("status").to_string(),
                i["transaction_id"].clone(),
            )
        })
        .collect()
}

/// The user's notifications of one type, oldest first: (id, payload).
fn notes(t: &TestApp, tok: &str, kind: &str) -> Vec<(i64, Value)> {
    let v = get_ok(t, "/api/v1/notifications?limit=200", tok);
    v["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["type"] == kind)
        .map(|n| (n["id"].as_i64().expect("id"), n["payload"].clone()))
        .collect()
}

/// Every transaction of the user posted by `rule`, as (occurrence_date, amount in paise).
fn posted_rows(t: &TestApp, rule: &str) -> Vec<(String, i64)> {
    t.app()
        .db
        .read(|c| {
            let mut s = c.prepare(
                "SELECT occurrence_date, amount FROM transactions WHERE recurring_id = ?1
                 ORDER BY occurrence_date",
            )?;
            let rows = s.query_map([rule], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .expect("read transactions")
}

fn spent(t: &TestApp, tok: &str, type_id: &str, month: u32, year: i32) -> i64 {
    let summary = allocations(t, tok, month, year);
    let ty = category(&summary, "spending")["allocation_types"]
        .as_array()
        .expect("types")
        .iter()
        .find(|x| x["id"] == type_id)
        .cloned()
        .expect("the type");
    paise(&ty["spent_amount"])
}

#[test]
fn confirm_posts_the_occurrence_as_an_ordinary_transaction() {
    // 12:00 in Kolkata on 15 March 2025.
    let t = quiet_server("Asia/Kolkata", "2025-03-15T06:30:00Z");
    let u = register(&t, "confirm@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "spending", 0);
    let r = rule(&t, tok, json!({"allocation_type_id": ty}));
    let id = id_of(&r);
    assert_eq!(r["next_date"], "2025-03-20");
    let plain = add_tx(&t, tok, ["expense", "food", "100", "Lunch", "2025-03-14"]);
    assert_eq!(
        (&plain["recurring_id"], &plain["occurrence_date"]),
        (&Value::Null, &Value::Null)
    );

    let mut ws = open(&t, &format!("/ws/notifications?token={tok}"));
    assert_eq!(next_json(&mut ws)["type"], "connected");
    let r1 = confirm(&t, tok, &id, json!({"date": "2025-03-20"}));
    assert_eq!(r1.status, 201, "{}", r1.text());
    let tx = r1.json();
    let tx_id = tx["id"].as_str().expect("id").to_string();
    let created = tx["created_at"].clone();
    assert_eq!(
        tx,
        json!({"id": tx_id, "type": "expense", "category": "bills", "amount": 1250.5,
               "label": "Rent", "transaction_date": "2025-03-19T18:30:00Z", "month": 3,
               "year": 2025, "created_at": created, "allocation_type_id": ty,
               "recurring_id": id, "occurrence_date": "2025-03-20", "version": 1})
    );
    // Totals and spending moved like any transaction's.
    let b = balance(&t, tok, 3, 2025);
    assert_eq!(
        (paise(&b["total_expense"]), b["transaction_count"].clone()),
        (135_050, json!(2))
    );
    assert_eq!(spent(&t, tok, &ty, 3, 2025), 125_050);
    // Listed like any other, with its rule.
    let listed = list_month(&t, tok, 3, 2025);
    let row = listed
        .iter()
        .find(|x| x["id"] == tx_id.as_str())
        .expect("listed");
    assert_eq!(row, &tx);
    assert!(
        listed
            .iter()
            .any(|x| x["id"] == plain["id"] && x["recurring_id"].is_null())
    );
    // The view and the rule moved on.
    assert_eq!(
        upcoming(&t, tok, &id),
        [
            ("2025-03-20".to_string(), "posted".to_string(), json!(tx_id)),
            (
                "2025-04-20".to_string(),
                "upcoming".to_string(),
                Value::Null
            ),
        ]
    );
    assert_eq!(
        get_ok(&t, &format!("{RULES}/{id}"), tok)["next_date"],
        "2025-04-20"
    );
    let posted = notes(&t, tok, "bill_posted");
    assert_eq!(posted.len(), 1);
    assert_eq!(
        posted[0].1,
        json!({"recurring_id": id, "date": "2025-03-20", "label": "Rent", "amount": 1250.5,
               "transaction_id": tx_id})
    );
    // Pushed too, after the budget_alert the linked expense raised (a budget of 0 crossed),
    // as any linked transaction would.
    let frames = [next_event(&mut ws), next_event(&mut ws)];
    assert_eq!(frames[0]["type"], "budget_alert", "{frames:?}");
    assert_eq!(frames[0]["category"], "spending");
    let mut want = posted[0].1.clone();
    want["type"] = json!("bill_posted");
    want["id"] = json!(posted[0].0);
    assert_eq!(frames[1], want);
    assert_eq!(notes(&t, tok, "budget_alert").len(), 1);

    // A second confirm: 409, and nothing moves.
    let again = confirm(&t, tok, &id, json!({"date": "2025-03-20", "amount": "5"}));
    assert_error(
        &again,
        409,
        "already_posted",
        "This occurrence is already posted",
    );
    assert_eq!(balance(&t, tok, 3, 2025), b);
    assert_eq!(notes(&t, tok, "bill_posted").len(), 1);

    // A future occurrence, with the amount actually paid, in another month.
    let r2 = confirm(
        &t,
        tok,
        &id,
        json!({"date": "2025-04-20", "amount": "999.99"}),
    );
    assert_eq!(r2.status, 201, "{}", r2.text());
    let tx2 = r2.json();
    assert_eq!(
        (
            &tx2["amount"],
            &tx2["transaction_date"],
            &tx2["month"],
            &tx2["occurrence_date"]
        ),
        (
            &json!(999.99),
            &json!("2025-04-19T18:30:00Z"),
            &json!(4),
            &json!("2025-04-20")
        )
    );
    assert_eq!(paise(&balance(&t, tok, 4, 2025)["total_expense"]), 99_999);
    assert_eq!(spent(&t, tok, &ty, 4, 2025), 99_999);
    assert_eq!(
        get_ok(&t, &format!("{RULES}/{id}"), tok)["next_date"],
        "2025-05-20"
    );
    let posted = notes(&t, tok, "bill_posted");
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[1].1["amount"], json!(999.99));
}

#[test]
fn skip_and_confirm_meet_at_the_posted_mark() {
    let t = quiet_server("UTC", "2025-03-15T12:00:00Z");
    let u = register(&t, "skip-confirm@example.com");
    let tok = &u.token;
    let id = id_of(&rule(&t, tok, json!({})));
    let skip = |date: &str| {
        call(
            &t,
            "POST",
            &format!("{RULES}/{id}/skip"),
            tok,
            Some(&json!({"date": date})),
        )
    };

    assert_eq!(
        confirm(&t, tok, &id, json!({"date": "2025-03-20"})).status,
        201
    );
    // Skipping a posted occurrence: 409, no skip mark.
    assert_error(
        &skip("2025-03-20"),
        409,
        "already_posted",
        "This occurrence is already posted",
    );
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 0);

    // A skipped one may be confirmed: the skip mark goes.
    assert_eq!(skip("2025-04-20").status, 200);
    assert_eq!(upcoming(&t, tok, &id)[1].1, "skipped");
    let r = confirm(&t, tok, &id, json!({"date": "2025-04-20"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let tx_id = r.json()["id"].clone();
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 0);
    assert_eq!(
        upcoming(&t, tok, &id)[1],
        ("2025-04-20".to_string(), "posted".to_string(), tx_id)
    );
    assert_eq!(
        posted_rows(&t, &id),
        [
            ("2025-03-20".into(), 125_050),
            ("2025-04-20".into(), 125_050)
        ]
    );
}

#[test]
fn ten_concurrent_confirms_post_one_transaction() {
    let t = quiet_server("UTC", "2025-03-15T12:00:00Z");
    let u = register(&t, "race@example.com");
    let tok = u.token.clone();
    let id = id_of(&rule(&t, &tok, json!({})));
    let addr = t.http;
    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let (tok, id) = (tok.clone(), id.clone());
                s.spawn(move || {
                    let r = common::Call::new(addr, "POST", &confirm_path(&id))
                        .auth(&tok)
                        .json(&json!({"date": "2025-03-20"}))
                        .send();
                    (r.status, r.json())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!((created, refused.len()), (1, 9), "{statuses:?}");
    assert!(refused.iter().all(|(_, b)| b["code"] == "already_posted"));
    assert_eq!(posted_rows(&t, &id), [("2025-03-20".into(), 125_050)]);
    let b = balance(&t, &tok, 3, 2025);
    assert_eq!(
        (paise(&b["total_expense"]), b["transaction_count"].clone()),
        (125_050, json!(1))
    );
    assert_eq!(notes(&t, &tok, "bill_posted").len(), 1);
}

#[test]
fn bad_confirms_are_refused_and_change_nothing() {
    let t = quiet_server("UTC", "2025-03-15T12:00:00Z");
    let u = register(&t, "confirm-bad@example.com");
    let other = register(&t, "confirm-other@example.com");
    let tok = &u.token;
    let id = id_of(&rule(&t, tok, json!({})));
    let theirs = id_of(&rule(&t, &other.token, json!({})));
    let before = export_rows(&t, tok);
    let before_other = export_rows(&t, &other.token);

    for (body, field) in [
        (json!({}), "date"),
        (json!({"date": null}), "date"),
        (json!({"date": "2025-02-30"}), "date"),
        (json!({"date": "20-03-2025"}), "date"),
        (json!({"date": "2019-12-20"}), "date"),
        (json!({"date": "2101-01-20"}), "date"),
        (json!({"date": 20250320}), "date"),
        (json!({"date": "2025-03-20", "amount": 0}), "amount"),
        (json!({"date": "2025-03-20", "amount": "-5"}), "amount"),
        (json!({"date": "2025-03-20", "amount": "1.001"}), "amount"),
        (json!({"date": "2025-03-20", "amount": "lots"}), "amount"),
        (json!({"date": "2025-03-20", "amount": true}), "amount"),
    ] {
        assert_422_names(&confirm(&t, tok, &id, body.clone()), field);
    }
    let r = confirm(&t, tok, &id, json!({"date": "2025-03-21"}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["code"], "not_an_occurrence");
    // Before the rule's start: not an occurrence either.
    let r = confirm(&t, tok, &id, json!({"date": "2025-02-20"}));
    assert_eq!(r.json()["code"], "not_an_occurrence");
    for rule_id in [theirs.as_str(), "no-such-rule"] {
        let r = confirm(&t, tok, rule_id, json!({"date": "2025-03-20"}));
        assert_not_found(&r);
    }
    let r = t
        .call("POST", &confirm_path(&id))
        .json(&json!({"date": "2025-03-20"}))
        .send();
    assert_eq!(r.status, 401);
    assert_eq!(export_rows(&t, tok), before);
    assert_eq!(export_rows(&t, &other.token), before_other);
    assert_eq!(count_rows(&t, "notifications", "user_id", &u.id), 0);
}

#[test]
fn a_posted_transaction_survives_its_rule() {
    let t = quiet_server("UTC", "2025-03-15T12:00:00Z");
    let u = register(&t, "survive@example.com");
    let tok = &u.token;
    let id = id_of(&rule(&t, tok, json!({})));
    let tx = confirm(&t, tok, &id, json!({"date": "2025-03-20"})).json();
    expect(&t, "DELETE", &format!("{RULES}/{id}"), tok, None, 200);
    let listed = list_month(&t, tok, 3, 2025);
    assert_eq!(listed, std::slice::from_ref(&tx));
    assert_eq!(listed[0]["recurring_id"], id.as_str());
    assert_eq!(paise(&balance(&t, tok, 3, 2025)["total_expense"]), 125_050);
    let r = confirm(&t, tok, &id, json!({"date": "2025-04-20"}));
    assert_not_found(&r);
}

#[test]
fn reminders_go_out_once_per_occurrence_stored_and_pushed() {
    let t = quiet_server("UTC", "2025-03-15T12:00:00Z");
    let u = register(&t, "remind@example.com");
    let tok = &u.token;
    let mut ws = open(&t, &format!("/ws/notifications?token={tok}"));
    assert_eq!(next_json(&mut ws)["type"], "connected");
    // Due on the 17th, reminded 2 days before: today.
    let id = id_of(&rule(&t, tok, json!({"start_date": "2025-03-17"})));
    // Reminded later (5 days before the 25th): not yet.
    let later = id_of(&rule(
        &t,
        tok,
        json!({"start_date": "2025-03-25", "label": "Fees",
                                            "remind_days_before": 5}),
    ));

    let report = tick(&t);
    assert_eq!((report.rules, report.posted, report.reminded), (2, 0, 1));
    let frame = next_event(&mut ws);
    let nid = frame["id"].as_i64().expect("id");
    let payload = json!({"recurring_id": id, "date": "2025-03-17", "label": "Rent",
                         "amount": 1250.5});
    let mut want = payload.clone();
    want["type"] = json!("bill_due");
    want["id"] = json!(nid);
    assert_eq!(frame, want);
    assert_eq!(notes(&t, tok, "bill_due"), [(nid, payload)]);

    // Nothing is due until a reminder day comes: a tick reads no rule at all.
    assert_eq!(tick(&t), ticker::Report::default());
    // A rule write makes the rule due again, but the reminder is not sent twice.
    expect(
        &t,
        "PATCH",
        &format!("{RULES}/{id}"),
        tok,
        Some(&json!({"label": "Rent"})),
        200,
    );
    assert_eq!(tick(&t).reminded, 0);
    assert_eq!(notes(&t, tok, "bill_due").len(), 1);

    // The 20th: the second rule's reminder.
    set_clock(&t, "2025-03-20T00:00:00Z");
    let tok = &login(&t, "remind@example.com");
    assert_eq!(tick(&t).reminded, 1);
    let due = notes(&t, tok, "bill_due");
    assert_eq!(due.len(), 2);
    assert_eq!(due[1].1["recurring_id"], later.as_str());
    assert_eq!(due[1].1["date"], "2025-03-25");
    assert_eq!(due[1].1["label"], "Fees");

    // The 17 April reminder day passed with no tick (no late reminder: that occurrence is
    // overdue in the view), and the 25 April occurrence is skipped.
    expect(
        &t,
        "POST",
        &format!("{RULES}/{later}/skip"),
        tok,
        Some(&json!({"date": "2025-04-25"})),
        200,
    );
    set_clock(&t, "2025-04-20T12:00:00Z");
    let tok = &login(&t, "remind@example.com");
    tick(&t);
    tick(&t);
    let dates: Vec<(Value, Value)> = notes(&t, tok, "bill_due")
        .into_iter()
        .map(|(_, p)| (p["recurring_id"].clone(), p["date"].clone()))
        .collect();
    assert_eq!(
        dates,
        [
            (json!(id), json!("2025-03-17")),
            (json!(later), json!("2025-03-25")),
        ]
    );
    set_clock(&t, "2025-05-15T12:00:00Z");
    let tok = &login(&t, "remind@example.com");
    tick(&t);
    assert_eq!(notes(&t, tok, "bill_due").len(), 3);
    assert_eq!(notes(&t, tok, "bill_due")[2].1["date"], "2025-05-17");
    // No rule is posted by reminding.
    assert!(posted_rows(&t, &id).is_empty());
}

/// The occurrence dates of the `bill_posted` notifications, in the order they were stored.
fn posted_order(t: &TestApp, tok: &str) -> Vec<String> {
    notes(t, tok, "bill_posted")
        .into_iter()
        .map(|(_, p)| p["date"].as_str().expect("date").to_string())
        .collect()
}

#[test]
fn catch_up_posts_oldest_first_from_the_creation_date_a_bounded_number_per_tick() {
    // A Wednesday.
    let t = quiet_server("UTC", "2025-01-01T12:00:00Z");
    let u = register(&t, "catchup@example.com");
    let tok = &u.token.clone();
    // Weekly on Wednesdays since early December: those before today are never posted.
    let id = id_of(&rule(
        &t,
        tok,
        json!({"frequency": "weekly", "start_date": "2024-12-04",
                                         "auto_post": true, "label": "SIP"}),
    ));
    assert_eq!(tick(&t).posted, 1);
    assert_eq!(posted_rows(&t, &id), [("2025-01-01".into(), 125_050)]);
    // A year of downtime: 53 more Wednesdays are due, posted 31 per tick, oldest first.
    set_clock(&t, "2026-01-07T12:00:00Z");
    let tok = &login(&t, "catchup@example.com");
    assert_eq!(tick(&t).posted, 31);
    assert_eq!(tick(&t).posted, 22);
    assert_eq!(tick(&t).posted, 0);
    let rows = posted_rows(&t, &id);
    assert_eq!(rows.len(), 54);
    assert_eq!(rows[0].0, "2025-01-01");
    assert_eq!(rows[53].0, "2026-01-07");
    // The first one's bill_posted is a year old by now: the 90-day sweep may already have taken
    // it (its thread runs when the clock has moved a day), so only the catch-up's are counted.
    let order: Vec<String> = posted_order(&t, tok)
        .into_iter()
        .filter(|d| d.as_str() > "2025-01-01")
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "posted oldest first");
    assert_eq!(order.len(), 53);
    // Totals hold: every month's expense is its Wednesdays.
    let b = balance(&t, tok, 1, 2025);
    assert_eq!(
        (paise(&b["total_expense"]), b["transaction_count"].clone()),
        (5 * 125_050, json!(5))
    );
    // The view shows them posted, with their transactions.
    let view = upcoming(&t, tok, &id);
    assert!(
        view.iter()
            .filter(|(d, _, _)| d.as_str() <= "2026-01-07")
            .all(|(_, s, x)| s == "posted" && x.is_string())
    );
    assert!(
        notes(&t, tok, "bill_due").is_empty(),
        "an auto-posted rule is not reminded"
    );
}

/// Transactions of the user posted by any rule, counted in the database.
fn occurrences(t: &TestApp, user: &str) -> i64 {
    t.app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM transactions WHERE user_id = ?1 AND recurring_id IS NOT NULL",
                [user],
                |r| r.get(0),
            )?)
        })
        .expect("count")
}

#[test]
fn the_ticker_thread_posts_a_rule_due_today_once_also_after_a_restart() {
    let settings = [("RECURRING_TICK_SECONDS", "1")];
    let mut t = common::spawn_app_with(&settings);
    let u = register(&t, "ticker@example.com");
    let tok = u.token.clone();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let id = id_of(&rule(
        &t,
        &tok,
        json!({"start_date": today, "auto_post": true}),
    ));
    assert!(
        wait_until(Duration::from_secs(20), || occurrences(&t, &u.id) == 1),
        "the ticker did not post today's occurrence"
    );
    let posted = notes(&t, &tok, "bill_posted");
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].1["date"], today.as_str());
    // More ticks, then a restart on the same database (which ticks at once): still one.
    std::thread::sleep(Duration::from_millis(2500));
    t.running.take().expect("running").shutdown();
    let running = wealthcoach::start(test_config(&t.dir, &settings)).expect("restarts");
    t.http = running.http_addr();
    t.ws = running.ws_addr();
    t.running = Some(running);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(posted_rows(&t, &id).len(), 1);
    assert_eq!(occurrences(&t, &u.id), 1);
    assert_eq!(notes(&t, &tok, "bill_posted").len(), 1);
    let view = upcoming(&t, &tok, &id);
    assert_eq!(view[0].0, today);
    assert_eq!(view[0].1, "posted");
}
