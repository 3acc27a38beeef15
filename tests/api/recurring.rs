//! Recurring transactions and bills (issue 14): rules, `next_date`, the upcoming view, skip,
//! every refusal with nothing changed, other users' rules, and the local date of
//! `APP_TIMEZONE`. The server clock is set to a fixed instant before anyone registers, so
//! "today" is known. (Posting an occurrence (`confirm`, the ticker) comes with a later change:
//! the 409 `already_posted` of skip and the `posted` status are tested there.)

use crate::{common, money_support};

use common::*;
use jiff::ToSpan;
use jiff::civil::Date;
use money_support::*;
use serde_json::{Value, json};

const RULES: &str = "/api/v1/recurring";
const UPCOMING: &str = "/api/v1/recurring/upcoming";

/// A server in `tz` whose clock reads `instant`, and two users.
fn server_at(tz: &str, instant: &str) -> (TestApp, User, User) {
    let t = spawn_app_with(&[("APP_TIMEZONE", tz)]);
    set_clock(&t, instant);
    let a = register(&t, "owner@example.com");
    let b = register(&t, "stranger@example.com");
    (t, a, b)
}

fn set_clock(t: &TestApp, instant: &str) {
    let target: jiff::Timestamp = instant.parse().expect("instant");
    let clock = &t.app().clock;
    clock.advance(target.as_second() - clock.unix());
}

/// 2025-03-15 at noon UTC: "today" of the UTC servers below.
const NOON: &str = "2025-03-15T12:00:00Z";

fn day(s: &str) -> Date {
    s.parse().expect("date")
}

/// `d` moved by `n` days, as `YYYY-MM-DD`.
fn shift(d: &str, n: i64) -> String {
    day(d).checked_add(n.days()).expect("date").to_string()
}

fn rule_body(label: &str, frequency: &str, start: &str) -> Value {
    json!({"type": "expense", "category": "bills", "label": label, "amount": "1250.50",
           "frequency": frequency, "start_date": start})
}

fn create(t: &TestApp, tok: &str, body: &Value) -> Value {
    expect(t, "POST", RULES, tok, Some(body), 201)
}

fn rule_path(id: &str) -> String {
    format!("{RULES}/{id}")
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn rules(t: &TestApp, tok: &str) -> Vec<Value> {
    let v = get_ok(t, RULES, tok);
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    v["rules"].as_array().expect("rules").clone()
}

/// `(recurring_id, date, status)` of every upcoming item, in order.
fn upcoming(t: &TestApp, tok: &str, days: u32) -> Vec<(String, String, String)> {
    let v = get_ok(t, &format!("{UPCOMING}?days={days}"), tok);
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let s = |k: &str| i[k].as_str().expect(k).to_string();
            (s("recurring_id"), s("date"), s("status"))
        })
        .collect()
}

fn skip(t: &TestApp, tok: &str, id: &str, date: &str) -> Reply {
    call(
        t,
        "POST",
        &format!("{}/skip", rule_path(id)),
        tok,
        Some(&json!({"date": date})),
    )
}

fn next_action(t: &TestApp, id: &str) -> Option<String> {
    t.app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT next_action FROM recurring WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?)
        })
        .expect("next_action")
}

#[test]
fn a_new_rule_echoes_every_field_and_its_next_date() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let ty = type_id(&t, tok, "health", 0);
    let body = json!({"type": "expense", "category": "insurance", "label": "Mediclaim",
                      "amount": "1250.50", "allocation_type_id": ty, "frequency": "monthly",
                      "start_date": "2025-01-31", "end_date": "2025-12-31",
                      "auto_post": true, "remind_days_before": 5, "extra": "ignored"});
    let r = create(&t, tok, &body);
    let id = id_of(&r);
    let created = r["created_at"].as_str().expect("created_at").to_string();
    // The app clock's instant (it keeps running from noon).
    assert!(
        created.starts_with("2025-03-15T12:") && created.ends_with('Z'),
        "{created}"
    );
    assert_eq!(
        r,
        json!({"id": id, "type": "expense", "category": "insurance", "label": "Mediclaim",
               "amount": 1250.5, "allocation_type_id": ty, "frequency": "monthly",
               "start_date": "2025-01-31", "end_date": "2025-12-31", "occurrences": null,
               "auto_post": true, "remind_days_before": 5,
               // 31 Jan → 28 Feb → 31 Mar: the 31st comes back after February.
               "next_date": "2025-03-31", "created_at": created})
    );
    assert_eq!(get_ok(&t, &rule_path(&id), tok), r);
    assert_eq!(next_action(&t, &id).as_deref(), Some("2025-03-15"));

    // The defaults, and an income without a type.
    let r = create(
        &t,
        tok,
        &json!({"type": "income", "category": "salary", "label": "Pay", "amount": 50000,
                "frequency": "every_other_week", "start_date": "2025-03-01"}),
    );
    assert_eq!(
        (
            &r["auto_post"],
            &r["remind_days_before"],
            &r["allocation_type_id"]
        ),
        (&json!(false), &json!(2), &Value::Null)
    );
    assert_eq!(r["amount"], json!(50000));
    // Every other week from 1 March: 15 March is today.
    assert_eq!(r["next_date"], "2025-03-15");
}

#[test]
fn next_date_crosses_month_ends_and_is_null_once_the_rule_is_over() {
    let (t, u, _) = server_at("UTC", "2025-02-01T08:00:00Z");
    let tok = &u.token;
    let next = |body: Value| create(&t, tok, &body)["next_date"].clone();
    assert_eq!(
        next(rule_body("rent", "monthly", "2025-01-31")),
        "2025-02-28"
    );
    // A leap year's February.
    set_clock(&t, "2028-02-01T08:00:00Z");
    let tok = &login(&t, "owner@example.com");
    let next = |body: Value| create(&t, tok, &body)["next_date"].clone();
    assert_eq!(
        next(rule_body("rent", "monthly", "2028-01-31")),
        "2028-02-29"
    );
    assert_eq!(
        next(rule_body("fees", "quarterly", "2027-11-30")),
        "2028-02-29"
    );
    assert_eq!(
        next(rule_body("premium", "yearly", "2024-02-29")),
        "2028-02-29"
    );
    // Today itself is the next date.
    assert_eq!(next(rule_body("sip", "weekly", "2028-01-25")), "2028-02-01");
    // Over: by count, by end date; not started yet: its start.
    let mut once = rule_body("once", "monthly", "2028-01-15");
    once["occurrences"] = json!(1);
    assert_eq!(next(once), Value::Null);
    let mut ended = rule_body("ended", "weekly", "2028-01-01");
    ended["end_date"] = json!("2028-01-31");
    assert_eq!(next(ended), Value::Null);
    assert_eq!(
        next(rule_body("later", "half_yearly", "2028-06-30")),
        "2028-06-30"
    );
    let mut two = rule_body("two", "every_other_month", "2027-12-31");
    two["occurrences"] = json!(2);
    assert_eq!(next(two), "2028-02-29");
}

#[test]
fn the_list_is_by_next_date_with_finished_rules_last() {
    let (t, u, other) = server_at("UTC", NOON);
    let tok = &u.token;
    let mut done = rule_body("done", "monthly", "2025-01-01");
    done["occurrences"] = json!(2);
    let ids: Vec<String> = [
        done,
        rule_body("april", "monthly", "2025-04-02"),
        rule_body("today", "yearly", "2024-03-15"),
        rule_body("tomorrow", "weekly", "2025-03-09"),
    ]
    .iter()
    .map(|b| id_of(&create(&t, tok, b)))
    .collect();
    let listed = rules(&t, tok);
    let order: Vec<(String, Value)> = listed
        .iter()
        .map(|r| (id_of(r), r["next_date"].clone()))
        .collect();
    assert_eq!(
        order,
        vec![
            (ids[2].clone(), json!("2025-03-15")),
            (ids[3].clone(), json!("2025-03-16")),
            (ids[1].clone(), json!("2025-04-02")),
            (ids[0].clone(), Value::Null),
        ]
    );
    for r in &listed {
        assert_eq!(get_ok(&t, &rule_path(&id_of(r)), tok), *r);
    }
    assert!(rules(&t, &other.token).is_empty());
}

#[test]
fn patch_changes_any_field_and_checks_the_merged_rule() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let mut body = rule_body("rent", "monthly", "2025-01-31");
    body["end_date"] = json!("2025-12-31");
    let r = create(&t, tok, &body);
    let id = id_of(&r);
    let path = rule_path(&id);

    // Moving to a count needs the end date cleared: both at once is refused, naming the field
    // sent, and nothing changes.
    let both = call(&t, "PATCH", &path, tok, Some(&json!({"occurrences": 3})));
    assert_422_names(&both, "occurrences");
    let early = call(
        &t,
        "PATCH",
        &path,
        tok,
        Some(&json!({"start_date": "2026-01-01"})),
    );
    assert_422_names(&early, "start_date");
    assert_eq!(get_ok(&t, &path, tok), r);

    set_clock(&t, "2025-03-17T09:00:00Z");
    let tok = &login(&t, "owner@example.com");
    let ty = type_id(&t, tok, "spending", 1);
    let patched = expect(
        &t,
        "PATCH",
        &path,
        tok,
        Some(
            &json!({"end_date": null, "occurrences": 5, "label": "Flat rent",
                     "amount": 99.99, "frequency": "quarterly", "category": "home",
                     "allocation_type_id": ty, "auto_post": true, "remind_days_before": 0}),
        ),
        200,
    );
    let mut want = r.clone();
    for (k, v) in [
        ("end_date", Value::Null),
        ("occurrences", json!(5)),
        ("label", json!("Flat rent")),
        ("amount", json!(99.99)),
        ("frequency", json!("quarterly")),
        ("category", json!("home")),
        ("allocation_type_id", json!(ty)),
        ("auto_post", json!(true)),
        ("remind_days_before", json!(0)),
        // Quarterly from 31 January: 30 April is the first on or after 17 March.
        ("next_date", json!("2025-04-30")),
    ] {
        want[k] = v;
    }
    assert_eq!(patched, want);
    assert_eq!(get_ok(&t, &path, tok), want);
    assert_eq!(next_action(&t, &id).as_deref(), Some("2025-03-17"));

    // An income cannot keep the link; unlinking with null makes it one.
    let r = call(&t, "PATCH", &path, tok, Some(&json!({"type": "income"})));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["code"], "allocation_requires_expense");
    let v = expect(
        &t,
        "PATCH",
        &path,
        tok,
        Some(&json!({"type": "income", "allocation_type_id": null, "start_date": "2025-03-20"})),
        200,
    );
    assert_eq!(
        (&v["type"], &v["allocation_type_id"], &v["next_date"]),
        (&json!("income"), &Value::Null, &json!("2025-03-20"))
    );
    // An empty patch changes nothing and answers the rule.
    assert_eq!(expect(&t, "PATCH", &path, tok, Some(&json!({})), 200), v);
}

#[test]
fn delete_removes_the_rule_and_its_skips() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let id = id_of(&create(&t, tok, &rule_body("gym", "weekly", "2025-03-01")));
    let keep = id_of(&create(
        &t,
        tok,
        &rule_body("rent", "monthly", "2025-03-01"),
    ));
    assert_eq!(skip(&t, tok, &id, "2025-03-22").status, 200);
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 1);
    let v = expect(&t, "DELETE", &rule_path(&id), tok, None, 200);
    assert_eq!(v, json!({"message": "Recurring transaction deleted"}));
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 0);
    for method in ["GET", "DELETE"] {
        let r = call(&t, method, &rule_path(&id), tok, None);
        assert_error(
            &r,
            404,
            "recurring_not_found",
            "Recurring transaction not found",
        );
    }
    let left: Vec<String> = rules(&t, tok).iter().map(id_of).collect();
    assert_eq!(left, vec![keep]);
}

#[test]
fn upcoming_covers_31_days_back_to_days_ahead_with_every_status() {
    let (t, u, other) = server_at("UTC", NOON);
    let tok = &u.token;
    let today = "2025-03-15";
    // Yearly rules: one occurrence each near today, so each tests one date.
    let mut ids = std::collections::BTreeMap::new();
    for (name, offset) in [
        ("too_early", -32),
        ("first_day", -31),
        ("overdue", -5),
        ("due", 0),
        ("soon", 3),
        ("skipped", 4),
        ("last_day", 10),
        ("too_late", 11),
    ] {
        let start = shift(today, offset);
        let id = id_of(&create(&t, tok, &rule_body(name, "yearly", &start)));
        ids.insert(name, (id, start));
    }
    let (skip_id, skip_date) = ids["skipped"].clone();
    let r = skip(&t, tok, &skip_id, &skip_date);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"message": "Occurrence skipped", "date": skip_date})
    );

    let got = upcoming(&t, tok, 10);
    let want: Vec<(String, String, String)> = [
        ("first_day", "overdue"),
        ("overdue", "overdue"),
        ("due", "due"),
        ("soon", "upcoming"),
        ("skipped", "skipped"),
        ("last_day", "upcoming"),
    ]
    .iter()
    .map(|(name, status)| {
        let (id, date) = ids[name].clone();
        (id, date, status.to_string())
    })
    .collect();
    assert_eq!(got, want);
    // One day more reaches the last rule; the default is 30 days.
    assert_eq!(upcoming(&t, tok, 11).len(), 7);
    assert_eq!(
        get_ok(&t, UPCOMING, tok)["items"].as_array().map(Vec::len),
        Some(7)
    );

    // Every field of an item; the skipped one shows the rule's figures and no transaction.
    let v = get_ok(&t, &format!("{UPCOMING}?days=10"), tok);
    assert_eq!(
        v["items"][4],
        json!({"recurring_id": skip_id, "date": skip_date, "type": "expense",
               "category": "bills", "label": "skipped", "amount": 1250.5,
               "status": "skipped", "transaction_id": null})
    );
    assert_eq!(v.as_object().map(|o| o.len()), Some(1));
    assert!(upcoming(&t, &other.token, 366).is_empty());
}

#[test]
fn upcoming_orders_by_date_then_rule_and_follows_every_write() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let a = id_of(&create(
        &t,
        tok,
        &rule_body("weekly", "weekly", "2025-03-01"),
    ));
    let b = id_of(&create(
        &t,
        tok,
        &rule_body("every other", "every_other_week", "2025-03-01"),
    ));
    let got: Vec<(String, String)> = upcoming(&t, tok, 14)
        .into_iter()
        .map(|(id, d, _)| (id, d))
        .collect();
    // 14 February .. 29 March, both included.
    let mut want: Vec<(String, String)> = ["01", "08", "15", "22", "29"]
        .iter()
        .map(|d| (a.clone(), format!("2025-03-{d}")))
        .chain(
            ["01", "15", "29"]
                .iter()
                .map(|d| (b.clone(), format!("2025-03-{d}"))),
        )
        .collect();
    want.sort_by(|x, y| x.1.cmp(&y.1).then_with(|| x.0.cmp(&y.0)));
    assert_eq!(got, want);

    // A write shows at once (the view is cached per user): skip, patch, delete.
    assert_eq!(skip(&t, tok, &a, "2025-03-22").status, 200);
    let st = upcoming(&t, tok, 14);
    assert!(st.contains(&(a.clone(), "2025-03-22".into(), "skipped".into())));
    expect(
        &t,
        "PATCH",
        &rule_path(&b),
        tok,
        Some(&json!({"amount": 10})),
        200,
    );
    let v = get_ok(&t, &format!("{UPCOMING}?days=14"), tok);
    let amounts: Vec<i64> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["recurring_id"] == b.as_str())
        .map(|i| paise(&i["amount"]))
        .collect();
    assert_eq!(amounts, vec![1000, 1000, 1000]);
    expect(&t, "DELETE", &rule_path(&b), tok, None, 200);
    assert!(upcoming(&t, tok, 14).iter().all(|(id, _, _)| *id == a));
}

#[test]
fn skip_is_idempotent_and_moves_next_date() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let id = id_of(&create(
        &t,
        tok,
        &rule_body("rent", "monthly", "2025-01-31"),
    ));
    assert_eq!(get_ok(&t, &rule_path(&id), tok)["next_date"], "2025-03-31");
    for _ in 0..2 {
        let r = skip(&t, tok, &id, "2025-03-31");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json(),
            json!({"message": "Occurrence skipped", "date": "2025-03-31"})
        );
    }
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 1);
    assert_eq!(get_ok(&t, &rule_path(&id), tok)["next_date"], "2025-04-30");
    // A past occurrence may be skipped too (it was overdue).
    assert_eq!(skip(&t, tok, &id, "2025-02-28").status, 200);
    set_clock(&t, "2025-03-18T09:00:00Z");
    let tok = &login(&t, "owner@example.com");
    assert_eq!(skip(&t, tok, &id, "2025-04-30").status, 200);
    assert_eq!(get_ok(&t, &rule_path(&id), tok)["next_date"], "2025-05-31");
    assert_eq!(next_action(&t, &id).as_deref(), Some("2025-03-18"));
    let statuses: Vec<String> = upcoming(&t, tok, 60)
        .into_iter()
        .map(|(_, d, s)| format!("{d} {s}"))
        .collect();
    assert_eq!(
        statuses,
        [
            "2025-02-28 skipped",
            "2025-03-31 skipped",
            "2025-04-30 skipped"
        ]
    );
}

#[test]
fn skip_refuses_what_is_not_an_occurrence_and_changes_nothing() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let mut body = rule_body("rent", "monthly", "2025-01-31");
    body["occurrences"] = json!(3);
    let id = id_of(&create(&t, tok, &body));
    for date in ["2025-03-30", "2025-01-30", "2025-04-30", "2024-12-31"] {
        let r = skip(&t, tok, &id, date);
        assert_eq!(r.status, 422, "{date}: {}", r.text());
        assert_eq!(r.json()["code"], "not_an_occurrence", "{date}");
    }
    for bad in [
        json!({"date": "2025-02-30"}),
        json!({"date": "31/03/2025"}),
        json!({"date": "2019-01-31"}),
        json!({"date": 20250331}),
        json!({}),
    ] {
        let r = call(
            &t,
            "POST",
            &format!("{}/skip", rule_path(&id)),
            tok,
            Some(&bad),
        );
        assert_422_names(&r, "date");
    }
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 0);
    assert_eq!(next_action(&t, &id).as_deref(), Some("2025-03-15"));
    let r = skip(&t, tok, "no-such-rule", "2025-03-31");
    assert_error(
        &r,
        404,
        "recurring_not_found",
        "Recurring transaction not found",
    );
}

#[test]
fn bad_rules_are_refused_naming_the_field_and_nothing_is_stored() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let good = rule_body("rent", "monthly", "2025-01-31");
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().expect("object").remove(k);
        b
    };
    let long = "x".repeat(51);
    let cases: Vec<(Value, &str)> = vec![
        (with("type", json!("transfer")), "type"),
        (with("frequency", json!("daily")), "frequency"),
        (with("frequency", json!("Monthly")), "frequency"),
        (with("start_date", json!("2019-12-31")), "start_date"),
        (with("start_date", json!("2101-01-01")), "start_date"),
        (with("start_date", json!("2025-02-29")), "start_date"),
        (
            with("start_date", json!("2025-01-31T00:00:00")),
            "start_date",
        ),
        (with("end_date", json!("2025-01-30")), "end_date"),
        (with("end_date", json!("2101-01-01")), "end_date"),
        (with("occurrences", json!(0)), "occurrences"),
        (with("occurrences", json!(601)), "occurrences"),
        (with("occurrences", json!(2.5)), "occurrences"),
        (with("remind_days_before", json!(31)), "remind_days_before"),
        (with("remind_days_before", json!(-1)), "remind_days_before"),
        (with("auto_post", json!("yes")), "auto_post"),
        (with("amount", json!(0)), "amount"),
        (with("amount", json!("0.00")), "amount"),
        (with("amount", json!(-5)), "amount"),
        (with("amount", json!("1.234")), "amount"),
        (with("amount", json!("NaN")), "amount"),
        (with("amount", json!(10_000_000_000_001_i64)), "amount"),
        (with("category", json!("")), "category"),
        (with("category", json!(long)), "category"),
        (with("label", json!("y".repeat(201))), "label"),
        (with("allocation_type_id", json!("")), "allocation_type_id"),
        (without("type"), "type"),
        (without("amount"), "amount"),
        (without("frequency"), "frequency"),
        (without("start_date"), "start_date"),
        (without("label"), "label"),
    ];
    for (body, field) in &cases {
        let r = call(&t, "POST", RULES, tok, Some(body));
        assert_422_names(&r, field);
    }
    let mut both = with("end_date", json!("2025-12-31"));
    both["occurrences"] = json!(12);
    assert_422_names(&call(&t, "POST", RULES, tok, Some(&both)), "occurrences");

    let ty = type_id(&t, tok, "health", 0);
    let mut income = with("allocation_type_id", json!(ty));
    income["type"] = json!("income");
    let r = call(&t, "POST", RULES, tok, Some(&income));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["code"], "allocation_requires_expense");
    let unknown = with(
        "allocation_type_id",
        json!("00000000-0000-0000-0000-000000000000"),
    );
    let r = call(&t, "POST", RULES, tok, Some(&unknown));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["code"], "allocation_type_not_found");
    for body in [json!([]), json!("rule")] {
        assert_eq!(call(&t, "POST", RULES, tok, Some(&body)).status, 422);
    }
    let r = t.call("POST", RULES).auth(tok).body(b"{not json").send();
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(rules(&t, tok).is_empty());
    assert_eq!(count_rows(&t, "recurring", "user_id", &u.id), 0);

    // The boundaries themselves are accepted.
    for body in [
        with("occurrences", json!(600)),
        with("occurrences", json!(1)),
        with("remind_days_before", json!(30)),
        with("remind_days_before", json!(0)),
        with("end_date", json!("2025-01-31")),
        with("start_date", json!("2100-12-31")),
        with("amount", json!("0.01")),
    ] {
        create(&t, tok, &body);
    }
}

#[test]
fn bad_patches_are_refused_and_the_rule_is_unchanged() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    let r = create(&t, tok, &rule_body("rent", "monthly", "2025-01-31"));
    let path = rule_path(&id_of(&r));
    for (body, field) in [
        (json!({"type": "gift"}), "type"),
        (json!({"frequency": "daily"}), "frequency"),
        (json!({"amount": 0}), "amount"),
        (json!({"amount": "12.345"}), "amount"),
        (json!({"label": ""}), "label"),
        (json!({"category": "c".repeat(51)}), "category"),
        (json!({"start_date": "2019-06-01"}), "start_date"),
        (json!({"end_date": "2025-01-01"}), "end_date"),
        (json!({"occurrences": 601}), "occurrences"),
        (json!({"remind_days_before": 31}), "remind_days_before"),
        (json!({"auto_post": 1}), "auto_post"),
        (
            json!({"end_date": "2025-06-30", "occurrences": 2}),
            "occurrences",
        ),
    ] {
        assert_422_names(&call(&t, "PATCH", &path, tok, Some(&body)), field);
    }
    let r2 = call(
        &t,
        "PATCH",
        &path,
        tok,
        Some(&json!({"allocation_type_id": "nope"})),
    );
    assert_eq!(r2.status, 404, "{}", r2.text());
    assert_eq!(r2.json()["code"], "allocation_type_not_found");
    assert_eq!(get_ok(&t, &path, tok), r);
}

#[test]
fn another_users_rule_is_not_found_on_every_route() {
    let (t, u, other) = server_at("UTC", NOON);
    let r = create(&t, &u.token, &rule_body("rent", "monthly", "2025-01-31"));
    let id = id_of(&r);
    let path = rule_path(&id);
    let tok = &other.token;
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", path.clone(), None),
        ("PATCH", path.clone(), Some(json!({"label": "mine now"}))),
        ("DELETE", path.clone(), None),
        (
            "POST",
            format!("{path}/skip"),
            Some(json!({"date": "2025-03-31"})),
        ),
    ];
    for (method, p, body) in &calls {
        let reply = call(&t, method, p, tok, body.as_ref());
        assert_error(
            &reply,
            404,
            "recurring_not_found",
            "Recurring transaction not found",
        );
        // Unknown ids answer the same.
        let unknown = p.replace(&id, "3f2c0000-0000-0000-0000-000000000000");
        let reply = call(&t, method, &unknown, &u.token, body.as_ref());
        assert_error(
            &reply,
            404,
            "recurring_not_found",
            "Recurring transaction not found",
        );
    }
    assert_eq!(get_ok(&t, &path, &u.token), r);
    assert_eq!(count_rows(&t, "recurring_skips", "recurring_id", &id), 0);
    assert!(rules(&t, tok).is_empty());
    assert!(upcoming(&t, tok, 366).is_empty());
    // Without a token: 401 on every route.
    for (method, p) in [("GET", RULES), ("POST", RULES), ("GET", UPCOMING)] {
        assert_eq!(t.call(method, p).send().status, 401);
    }
}

#[test]
fn upcoming_days_must_be_1_to_366() {
    let (t, u, _) = server_at("UTC", NOON);
    let tok = &u.token;
    for bad in ["0", "367", "-1", "abc", "1.5", ""] {
        let r = call(&t, "GET", &format!("{UPCOMING}?days={bad}"), tok, None);
        assert_422_names(&r, "days");
    }
    for ok in ["1", "366"] {
        get_ok(&t, &format!("{UPCOMING}?days={ok}"), tok);
    }
}

#[test]
fn due_follows_the_local_date_of_app_timezone() {
    // 20:00 UTC on 15 March is 01:30 on 16 March in Kolkata.
    let (t, u, _) = server_at("Asia/Kolkata", "2025-03-15T20:00:00Z");
    let tok = &u.token;
    let utc_today = id_of(&create(&t, tok, &rule_body("utc", "monthly", "2025-03-15")));
    let local_today = id_of(&create(
        &t,
        tok,
        &rule_body("local", "monthly", "2025-03-16"),
    ));
    let got = upcoming(&t, tok, 1);
    assert_eq!(
        got,
        vec![
            (utc_today.clone(), "2025-03-15".into(), "overdue".into()),
            (local_today.clone(), "2025-03-16".into(), "due".into()),
        ]
    );
    assert_eq!(
        get_ok(&t, &rule_path(&utc_today), tok)["next_date"],
        "2025-04-15"
    );
    assert_eq!(
        get_ok(&t, &rule_path(&local_today), tok)["next_date"],
        "2025-03-16"
    );
    assert_eq!(next_action(&t, &local_today).as_deref(), Some("2025-03-16"));
    // The window starts 31 local days back: 13 February, not the 12th.
    let id = id_of(&create(&t, tok, &rule_body("edge", "yearly", "2025-02-13")));
    let early = id_of(&create(&t, tok, &rule_body("out", "yearly", "2025-02-12")));
    let got = upcoming(&t, tok, 1);
    assert_eq!(got[0], (id, "2025-02-13".into(), "overdue".into()));
    assert!(got.iter().all(|(i, _, _)| *i != early));
}
