//! Bad input to the money routes: every case is the 4xx the contract names (422, 404, 401),
//! never a 5xx, a 422 names the field, and nothing is written (both users' exports and the
//! row counts are the same before and after).

use crate::{common, money_support};

use common::*;
use money_support::*;
use serde_json::{Value, json};

struct Fixture {
    t: TestApp,
    owner: User,
    stranger: User,
    /// The owner's own rows, which bad PATCH/PUT requests must leave alone.
    own_tx: String,
    own_alloc: String,
    /// The stranger's rows, which the owner must not reach.
    their_tx: String,
    their_alloc: String,
    type_id: String,
}

fn fixture(extra: &[(&str, &str)]) -> Fixture {
    let t = spawn_app_with(extra);
    let owner = register(&t, "owner@example.com");
    let stranger = register(&t, "stranger@example.com");
    let ty = type_id(&t, &owner.token, "spending", 0);
    let mut rows = Vec::new();
    for u in [&owner, &stranger] {
        let tx = add_tx(
            &t,
            &u.token,
            ["expense", "food", "12.50", "lunch", "2025-10-10"],
        );
        set_budget(&t, &u.token, &ty, 10_000, 10, 2025);
        let s = allocations(&t, &u.token, 10, 2025);
        let alloc = category(&s, "spending")["allocation_types"][0]["allocation_id"]
            .as_str()
            .expect("allocation id")
            .to_string();
        rows.push((tx["id"].as_str().expect("id").to_string(), alloc));
    }
    let (own, theirs) = (rows[0].clone(), rows[1].clone());
    Fixture {
        t,
        owner,
        stranger,
        own_tx: own.0,
        own_alloc: own.1,
        their_tx: theirs.0,
        their_alloc: theirs.1,
        type_id: ty,
    }
}

/// Everything both users hold, to compare before and after.
fn snapshot(f: &Fixture) -> (Value, Value, Vec<i64>) {
    let counts = [
        "transactions",
        "user_allocations",
        "monthly_budgets",
        "idempotency_keys",
    ]
    .iter()
    .map(|table| {
        f.t.app()
            .db
            .read(|c| Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?))
            .expect("count")
    })
    .collect();
    (
        export_rows(&f.t, &f.owner.token),
        export_rows(&f.t, &f.stranger.token),
        counts,
    )
}

/// A refusal: this status, an error body with a code, never a 5xx.
fn refused(r: &Reply, status: u16, what: &str) {
    assert!(
        r.status < 500,
        "{what}: server error {} {}",
        r.status,
        r.text()
    );
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let body = r.json();
    assert!(body["code"].is_string(), "{what}: {body}");
    assert!(body.get("detail").is_some(), "{what}: {body}");
}

/// A 422 that names `field`.
fn refused_naming(r: &Reply, field: &str, what: &str) {
    refused(r, 422, what);
    assert_422_names(r, field);
}

fn with(base: &Value, field: &str, v: Value) -> Value {
    let mut b = base.clone();
    b[field] = v;
    b
}

fn without(base: &Value, field: &str) -> Value {
    let mut b = base.clone();
    b.as_object_mut().expect("object").remove(field);
    b
}

/// Values no amount field accepts, each with why.
fn bad_amounts() -> Vec<(Value, &'static str)> {
    vec![
        (json!(1.234), "3 decimals"),
        (json!("1.234"), "3 decimals as a string"),
        (json!(-5), "negative"),
        (json!("-0.01"), "negative string"),
        (json!(100_000_000_000_000i64), "10^14"),
        (json!("100000000000000"), "10^14 as a string"),
        (json!(1e14), "10^14 in exponent form"),
        (json!(10_000_000_000_000.01), "just over 10^13"),
        (json!("NaN"), "NaN"),
        (json!("Infinity"), "Infinity"),
        (json!("1e5"), "exponent string"),
        (json!(true), "a boolean"),
        (json!(""), "empty string"),
        (json!("12,50"), "a comma"),
        (json!("१२"), "non-ASCII digits"),
        (json!([1]), "an array"),
        (json!({"amount": 1}), "an object"),
    ]
}

fn good_tx() -> Value {
    tx_body("income", "salary", "100", "pay", "2025-10-15")
}

#[test]
fn bad_transaction_bodies_are_422_naming_the_field_and_write_nothing() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let before = snapshot(&f);
    let post = |body: &Value| call(t, "POST", TXS, tok, Some(body));

    let mut amounts = bad_amounts();
    amounts.push((json!(0), "zero"));
    amounts.push((json!("0.00"), "zero as a string"));
    amounts.push((Value::Null, "null"));
    for (v, why) in amounts {
        refused_naming(&post(&with(&good_tx(), "amount", v)), "amount", why);
    }
    for v in [
        json!("transfer"),
        json!("Income"),
        json!(""),
        json!(1),
        Value::Null,
    ] {
        refused_naming(
            &post(&with(&good_tx(), "type", v.clone())),
            "type",
            &v.to_string(),
        );
    }
    for v in [json!(""), json!("é".repeat(51)), json!(5), json!(["food"])] {
        refused_naming(
            &post(&with(&good_tx(), "category", v.clone())),
            "category",
            &v.to_string(),
        );
    }
    for v in [json!(""), json!("₹".repeat(201)), json!(false)] {
        refused_naming(
            &post(&with(&good_tx(), "label", v.clone())),
            "label",
            &v.to_string(),
        );
    }
    let dates = [
        json!("2025-13-01"),
        json!("yesterday"),
        json!("2025-02-30"),
        json!("18/10/2025"),
        json!("2019-12-31"),
        json!("2101-01-01"),
        json!("2025-10-15T25:00:00Z"),
        json!(""),
        json!(20251015),
    ];
    for v in dates {
        refused_naming(
            &post(&with(&good_tx(), "transaction_date", v.clone())),
            "transaction_date",
            &v.to_string(),
        );
    }
    for field in ["type", "category", "amount", "label", "transaction_date"] {
        let r = post(&without(&good_tx(), field));
        refused_naming(&r, field, &format!("missing {field}"));
        let named = r.json()["detail"]
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e["loc"] == json!(["body", field]) && e["type"] == "missing");
        assert!(named, "{}", r.text());
    }
    // Several bad fields: each is listed.
    let r = post(&json!({"type": "gift", "amount": -1, "category": "x", "label": "y"}));
    for field in ["type", "amount", "transaction_date"] {
        refused_naming(&r, field, "several at once");
    }
    assert_eq!(snapshot(&f), before);
}

#[test]
fn broken_bodies_are_422_not_500() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let before = snapshot(&f);
    let bearer = format!("Bearer {tok}");
    let valid = good_tx().to_string();
    let mut array = String::from("[");
    array.push_str(&valid);
    array.push(']');
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (br#"{"type": "income", "amount": "#.to_vec(), "broken JSON"),
        (
            b"{\"type\":\"income\",\"category\":\"\xff\xfe\",\"amount\":1}".to_vec(),
            "invalid UTF-8",
        ),
        (array.into_bytes(), "an array instead of an object"),
        (b"null".to_vec(), "null"),
        (b"\"income\"".to_vec(), "a string"),
        (b"".to_vec(), "empty"),
        (b"{\"amount\": 1e999}".to_vec(), "a number out of range"),
    ];
    let routes = [
        ("POST", "/api/v1/transactions".to_string()),
        ("POST", "/api/v1/allocations/budget".to_string()),
        ("POST", "/api/v1/allocations/actual".to_string()),
        ("PATCH", format!("/api/v1/transactions/{}", f.own_tx)),
        ("PUT", format!("/api/v1/allocations/{}", f.own_alloc)),
    ];
    for (method, path) in &routes {
        for (body, why) in &bodies {
            if *method == "PUT" && body.is_empty() {
                continue; // no body is how the app sends PUT (query parameters)
            }
            let r = request(
                t.http,
                method,
                path,
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                Some(body),
            );
            refused(&r, 422, &format!("{method} {path}: {why}"));
            assert!(r.json()["detail"].is_array(), "{}", r.text());
        }
    }
    assert_eq!(snapshot(&f), before);
}

#[test]
fn bad_allocation_writes_are_refused_and_write_nothing() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let before = snapshot(&f);
    let budget =
        json!({"allocation_type_id": f.type_id, "budget_amount": 5, "month": 10, "year": 2025});
    let actual =
        json!({"allocation_type_id": f.type_id, "actual_amount": 5, "month": 10, "year": 2025});
    let post = |path: &str, body: &Value| call(t, "POST", path, tok, Some(body));
    for (path, base, field) in [
        (BUDGET, &budget, "budget_amount"),
        (ACTUAL, &actual, "actual_amount"),
    ] {
        for (v, why) in bad_amounts() {
            refused_naming(&post(path, &with(base, field, v)), field, why);
        }
        refused_naming(&post(path, &without(base, field)), field, "missing");
        for (v, name) in [
            (json!(13), "month"),
            (json!(0), "month"),
            (json!("abc"), "month"),
            (json!(1.5), "month"),
            (json!(2019), "year"),
            (json!(2101), "year"),
            (json!("20x5"), "year"),
        ] {
            refused_naming(
                &post(path, &with(base, name, v.clone())),
                name,
                &format!("{name} {v}"),
            );
        }
        for v in [json!(""), json!(42), Value::Null] {
            refused_naming(
                &post(path, &with(base, "allocation_type_id", v)),
                "allocation_type_id",
                path,
            );
        }
        let r = post(path, &with(base, "allocation_type_id", json!("not-a-type")));
        refused(&r, 404, "unknown type");
        assert_eq!(r.json()["code"], "allocation_type_not_found");
    }
    refused_naming(
        &post(ACTUAL, &with(&actual, "mode", json!("replace"))),
        "mode",
        "mode",
    );

    // PUT: bad values in a body and in query parameters, on the owner's own row.
    let put = format!("/api/v1/allocations/{}", f.own_alloc);
    for (field, v) in [
        ("budget_amount", json!(-1)),
        ("budget_amount", json!("1.001")),
        ("actual_amount", json!("NaN")),
        ("actual_amount", json!(100_000_000_000_000i64)),
    ] {
        refused_naming(
            &call(t, "PUT", &put, tok, Some(&json!({field: v}))),
            field,
            "PUT body",
        );
    }
    for q in [
        "budget_amount=-1",
        "budget_amount=abc",
        "actual_amount=1.234",
        "actual_amount=1e5",
    ] {
        let field = q.split('=').next().expect("name");
        refused_naming(&call(t, "PUT", &format!("{put}?{q}"), tok, None), field, q);
    }
    // Another user's rows, and rows that do not exist.
    let theirs = format!("/api/v1/allocations/{}", f.their_alloc);
    for (method, path, body) in [
        ("PUT", theirs.clone(), Some(json!({"budget_amount": 1}))),
        ("PUT", format!("{theirs}?actual_amount=1"), None),
        ("DELETE", theirs.clone(), None),
        ("DELETE", "/api/v1/allocations/nope".to_string(), None),
    ] {
        let r = call(t, method, &path, tok, body.as_ref());
        refused(&r, 404, &path);
        assert_eq!(r.json()["detail"], "Allocation not found");
    }
    assert_eq!(snapshot(&f), before);
}

#[test]
fn bad_patches_name_the_field_and_other_users_rows_are_404() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let before = snapshot(&f);
    let own = format!("/api/v1/transactions/{}", f.own_tx);
    let mut cases: Vec<(&str, Value)> = bad_amounts()
        .into_iter()
        .map(|(v, _)| ("amount", v))
        .collect();
    cases.extend([
        ("amount", json!(0)),
        ("type", json!("transfer")),
        ("category", json!("")),
        ("category", json!("é".repeat(51))),
        ("label", json!("")),
        ("label", json!("₹".repeat(201))),
        ("transaction_date", json!("yesterday")),
        ("transaction_date", json!("2025-13-01")),
    ]);
    for (field, v) in cases {
        // A good change beside the bad one must not be applied either.
        let body = json!({field: v.clone(), "label": "changed", "amount": 1});
        let body = if field == "label" || field == "amount" {
            json!({field: v.clone()})
        } else {
            body
        };
        let r = call(t, "PATCH", &own, tok, Some(&body));
        refused_naming(&r, field, &format!("PATCH {field} {v}"));
        let exact = r.json()["detail"]
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e["loc"] == json!(["body", field]));
        assert!(exact, "loc is not [body, {field}]: {}", r.text());
    }
    let theirs = format!("/api/v1/transactions/{}", f.their_tx);
    let r = call(t, "PATCH", &theirs, tok, Some(&json!({"amount": 1})));
    refused(&r, 404, "PATCH another user's");
    assert_eq!(r.json()["detail"], "Transaction not found");
    let r = call(t, "DELETE", &theirs, tok, None);
    refused(&r, 404, "DELETE another user's");
    assert_eq!(r.json()["detail"], "Transaction not found");
    for path in [
        "/api/v1/transactions/nope",
        "/api/v1/transactions/00000000-0000-4000-8000-000000000000",
    ] {
        refused(&call(t, "DELETE", path, tok, None), 404, path);
        refused(
            &call(t, "PATCH", path, tok, Some(&json!({"amount": 1}))),
            404,
            path,
        );
    }
    assert_eq!(snapshot(&f), before);
}

#[test]
fn bad_month_and_year_in_queries_are_422() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let cat = allocations(t, tok, 10, 2025)["categories"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let routes = [
        "/api/v1/allocations".to_string(),
        "/api/v1/allocations/summary".to_string(),
        "/api/v1/allocations/history".to_string(),
        format!("/api/v1/allocations/{cat}"),
        "/api/v1/monthly-budget".to_string(),
        "/api/v1/transactions".to_string(),
        "/api/v1/transactions/balance".to_string(),
    ];
    for route in &routes {
        for (q, field) in [
            ("month=13", "month"),
            ("month=0", "month"),
            ("month=abc", "month"),
            ("month=", "month"),
            ("year=2019", "year"),
            ("year=2101", "year"),
            ("month=10&year=twenty", "year"),
        ] {
            let r = call(t, "GET", &format!("{route}?{q}"), tok, None);
            refused_naming(&r, field, &format!("{route}?{q}"));
        }
    }
}

#[test]
fn no_or_bad_token_is_401_with_www_authenticate() {
    let f = fixture(&[]);
    let t = &f.t;
    let before = snapshot(&f);
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/allocations".into(), None),
        ("GET", "/api/v1/allocations/summary".into(), None),
        ("GET", "/api/v1/allocations/history".into(), None),
        (
            "POST",
            "/api/v1/allocations/budget".into(),
            Some(json!({"allocation_type_id": f.type_id, "budget_amount": 1})),
        ),
        (
            "POST",
            "/api/v1/allocations/actual".into(),
            Some(json!({"allocation_type_id": f.type_id, "actual_amount": 1})),
        ),
        (
            "PUT",
            format!("/api/v1/allocations/{}?budget_amount=1", f.own_alloc),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/allocations/{}", f.own_alloc),
            None,
        ),
        ("GET", "/api/v1/monthly-budget".into(), None),
        ("POST", "/api/v1/transactions".into(), Some(good_tx())),
        ("GET", "/api/v1/transactions".into(), None),
        ("GET", "/api/v1/transactions/balance".into(), None),
        (
            "PATCH",
            format!("/api/v1/transactions/{}", f.own_tx),
            Some(json!({"amount": 1})),
        ),
        ("DELETE", format!("/api/v1/transactions/{}", f.own_tx), None),
        (
            "POST",
            "/api/v1/onboarding/submit".into(),
            Some(json!({"occupation": "x"})),
        ),
        ("GET", "/api/v1/onboarding/status".into(), None),
        ("GET", "/api/v1/onboarding/profile".into(), None),
        ("GET", "/api/v1/users/me/preferences".into(), None),
        (
            "PATCH",
            "/api/v1/users/me/preferences".into(),
            Some(json!({"theme": "dark"})),
        ),
        ("GET", "/api/v1/users/me/export".into(), None),
    ];
    for (method, path, body) in &routes {
        let text = body.as_ref().map(|b| b.to_string());
        let bytes = text.as_deref().map(str::as_bytes);
        for auth in [None, Some("Bearer not-a-token"), Some("Basic dXNlcjpwYXNz")] {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = auth {
                headers.push(("Authorization", a));
            }
            let r = request(t.http, method, path, &headers, bytes);
            refused(&r, 401, &format!("{method} {path} with {auth:?}"));
            let www = r.header("www-authenticate").unwrap_or_default();
            assert!(
                www.starts_with("Bearer"),
                "{method} {path}: WWW-Authenticate {www:?}"
            );
        }
    }
    assert_eq!(snapshot(&f), before);
    // A refresh token is not an access token (logging in adds a session, so after the check).
    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"email": "owner@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let refresh = r.json()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let r = call(t, "POST", TXS, &refresh, Some(&good_tx()));
    refused(&r, 401, "refresh token as bearer");
    assert_eq!(count_rows(t, "transactions", "user_id", &f.owner.id), 1);
}

#[test]
fn a_date_whose_month_falls_outside_the_years_is_refused() {
    // 2100-12-31T20:00:00Z is already 2101 in Kolkata: no route could ever show that month.
    let f = fixture(&[("APP_TIMEZONE", "Asia/Kolkata")]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let before = snapshot(&f);
    let late = with(
        &good_tx(),
        "transaction_date",
        json!("2100-12-31T20:00:00Z"),
    );
    refused_naming(
        &call(t, "POST", TXS, tok, Some(&late)),
        "transaction_date",
        "2101 in Kolkata",
    );
    let own = format!("/api/v1/transactions/{}", f.own_tx);
    let body = json!({"transaction_date": "2100-12-31T20:00:00Z"});
    refused_naming(
        &call(t, "PATCH", &own, tok, Some(&body)),
        "transaction_date",
        "PATCH to 2101",
    );
    assert_eq!(snapshot(&f), before);
    // The last moment that is still 2100 there is fine.
    let ok = with(
        &good_tx(),
        "transaction_date",
        json!("2100-12-31T18:29:59Z"),
    );
    let tx = create_tx(t, tok, &ok);
    assert_eq!((&tx["month"], &tx["year"]), (&json!(12), &json!(2100)));
}

#[test]
fn boundaries_that_are_accepted() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    let top = create_tx(
        t,
        tok,
        &with(&good_tx(), "amount", json!(10_000_000_000_000i64)),
    );
    assert_eq!(top["amount"], json!(10_000_000_000_000i64));
    let s = create_tx(
        t,
        tok,
        &with(&good_tx(), "amount", json!("9999999999999.99")),
    );
    assert_eq!(paise(&s["amount"]), 999_999_999_999_999);
    for v in [json!(0.01), json!("0.01"), json!("1.50"), json!(1e3)] {
        create_tx(t, tok, &with(&good_tx(), "amount", v));
    }
    let zero =
        json!({"allocation_type_id": f.type_id, "budget_amount": 0, "month": 1, "year": 2020});
    expect(t, "POST", BUDGET, tok, Some(&zero), 200);
    let last =
        json!({"allocation_type_id": f.type_id, "actual_amount": "0", "month": 12, "year": 2100});
    expect(t, "POST", ACTUAL, tok, Some(&last), 200);
    // `add` past 10^13 is refused and leaves the row as it was.
    let big = json!({"allocation_type_id": f.type_id, "actual_amount": 10_000_000_000_000i64,
                     "month": 3, "year": 2025});
    expect(t, "POST", ACTUAL, tok, Some(&big), 200);
    let more = json!({"allocation_type_id": f.type_id, "actual_amount": "0.01", "mode": "add",
                      "month": 3, "year": 2025});
    let r = call(t, "POST", ACTUAL, tok, Some(&more));
    refused(&r, 422, "add past the maximum");
    let summary = allocations(t, tok, 3, 2025);
    let line = &category(&summary, "spending")["allocation_types"][0];
    assert_eq!(line["actual_amount"], json!(10_000_000_000_000i64));
    // Unknown fields are ignored.
    let extra = with(&good_tx(), "currency", json!("INR"));
    create_tx(t, tok, &extra);
    let b = balance(t, tok, 10, 2025);
    assert_eq!(
        paise(&b["total_income"]),
        1_000_000_000_000_000 + 999_999_999_999_999 + 1 + 1 + 150 + 100_000 + 10_000
    );
}

/// Each amount is at most 10^13, but a month's totals are not bounded. Through an f64, from
/// 2^46/100 (about 7 × 10^13) on, the printed total would be off by a paisa; serde_json's
/// `arbitrary_precision` lets `Money` write its exact decimal text instead.
#[test]
fn huge_monthly_totals_print_exactly() {
    let f = fixture(&[]);
    let (t, tok) = (&f.t, f.owner.token.as_str());
    for _ in 0..8 {
        create_tx(
            t,
            tok,
            &with(&good_tx(), "amount", json!(10_000_000_000_000i64)),
        );
    }
    create_tx(t, tok, &with(&good_tx(), "amount", json!("0.01")));
    let b = call(
        t,
        "GET",
        "/api/v1/transactions/balance?month=10&year=2025",
        tok,
        None,
    );
    assert!(
        b.text().contains("\"total_income\":80000000000000.01"),
        "{}",
        b.text()
    );
}
