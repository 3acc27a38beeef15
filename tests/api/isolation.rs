//! Tenant isolation: user B, signed in, aims every route that takes an id in its path at user
//! A's rows, with every method the route has, and gets a 404; A's data is byte for byte what it
//! was; and B's lists never show A's rows.
//!
//! The routes come from the router itself (`wealthcoach::routes()`), not from a list here: a
//! new `{param}` route is attacked as soon as it exists, and the test fails until `a_values`
//! says which of A's values to put in that parameter.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{Value, json};

/// Any month would do; both users' rows are in this one, and every request asks for it.
const MONTH: &str = "month=10&year=2025";

/// What to put in one `{param}` of a route when B attacks A.
#[derive(Clone, Debug)]
enum Aim {
    /// An id of one of A's rows: every method must answer 404.
    Owned(String),
    /// An id of the catalogue, which every user shares (a category): GET answers 200 with the
    /// caller's own numbers, which must be B's and show nothing of A's; other methods 404.
    Shared(String),
    /// Not user data at all (Swagger UI's files): nothing to attack.
    Public,
}

/// A user with a token and some rows in `MONTH`.
struct User {
    token: String,
    transactions: Vec<String>,
    allocations: Vec<String>,
    sessions: Vec<String>,
}

/// Registers a user by email; their access token.
fn register(t: &TestApp, email: &str, name: &str) -> String {
    t.register_as(email, name).token
}

/// Registers a user and gives them a transaction or two, allocations on `types`, chat
/// sessions and a profile, each carrying `mark` so that a leak is easy to see.
fn make_user(t: &TestApp, email: &str, mark: &str, amounts: (&str, &str), types: &[&str]) -> User {
    let token = register(t, email, &format!("User {mark}"));
    let tok = Some(token.as_str());

    let mut transactions = Vec::new();
    for (kind, amount) in [("income", amounts.0), ("expense", amounts.1)] {
        let body = json!({"type": kind, "category": format!("cat-{mark}"), "amount": amount,
                          "label": format!("label-{mark}"), "transaction_date": "2025-10-18"});
        let r = ok_json(
            send_json(t.http, "POST", "/api/v1/transactions", tok, &body),
            "transaction",
        );
        transactions.push(r["id"].as_str().expect("id").to_string());
    }

    for ty in types {
        let body = json!({"allocation_type_id": ty, "budget_amount": amounts.0, "month": 10, "year": 2025});
        ok_json(
            send_json(t.http, "POST", "/api/v1/allocations/budget", tok, &body),
            "budget",
        );
        let body = json!({"allocation_type_id": ty, "actual_amount": amounts.1,
                          "notes": format!("notes-{mark}"), "month": 10, "year": 2025});
        ok_json(
            send_json(t.http, "POST", "/api/v1/allocations/actual", tok, &body),
            "actual",
        );
    }
    let summary = ok_json(
        get_auth(t.http, &format!("/api/v1/allocations?{MONTH}"), &token),
        "allocations",
    );
    let allocations: Vec<String> = all_types(&summary)
        .filter_map(|ty| ty["allocation_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(allocations.len(), types.len(), "{summary}");

    let mut sessions = Vec::new();
    for question in ["first", "second"] {
        let body = json!({"message": format!("{question} question-{mark}")});
        let r = ok_json(
            send_json(t.http, "POST", "/api/v1/chat/message", tok, &body),
            "chat",
        );
        sessions.push(r["conversation_id"].as_str().expect("session").to_string());
    }

    let body = json!({"occupation": format!("occupation-{mark}"), "risk_tolerance": "high",
                      "interests": format!("interests-{mark}")});
    ok_json(
        send_json(t.http, "POST", "/api/v1/onboarding/submit", tok, &body),
        "onboarding",
    );
    User {
        token,
        transactions,
        allocations,
        sessions,
    }
}

fn all_types(summary: &Value) -> impl Iterator<Item = &Value> {
    summary["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .flat_map(|c| c["allocation_types"].as_array().expect("types"))
}

/// The shared catalogue, as a third user sees it with no rows of their own.
fn catalogue(t: &TestApp) -> Value {
    let token = register(t, "catalogue@example.com", "Catalogue");
    ok_json(
        get_auth(t.http, &format!("/api/v1/allocations?{MONTH}"), &token),
        "catalogue",
    )
}

/// A's export without the one field that changes by itself.
fn export(t: &TestApp, token: &str) -> Value {
    let mut doc = ok_json(get_auth(t.http, "/api/v1/users/me/export", token), "export");
    doc.as_object_mut().expect("object").remove("exported_at");
    doc
}

/// Strings (or JSON strings), sorted, to compare as sets.
fn sorted<T: ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut v: Vec<String> = items
        .into_iter()
        .map(|x| x.to_string().trim_matches('"').to_string())
        .collect();
    v.sort_unstable();
    v
}

/// The parameter names of a route pattern: `/a/{x}/b/{y}` → `["x", "y"]`.
fn params_of(pattern: &str) -> Vec<&str> {
    pattern
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// Every way to fill a route's parameters from `aims`: one entry per combination.
fn fillings(pattern: &str, aims: &BTreeMap<&str, Vec<Aim>>) -> Vec<(String, Vec<Aim>)> {
    let mut out = vec![(pattern.to_string(), Vec::new())];
    for name in params_of(pattern) {
        let mut next = Vec::new();
        for (path, used) in &out {
            for aim in &aims[name] {
                let value = match aim {
                    Aim::Owned(v) | Aim::Shared(v) => v.as_str(),
                    Aim::Public => continue,
                };
                let mut used = used.clone();
                used.push(aim.clone());
                next.push((path.replace(&format!("{{{name}}}"), value), used));
            }
        }
        out = next;
    }
    out
}

#[test]
fn another_users_ids_get_404_on_every_route_and_change_nothing() {
    let t = spawn_app_with(&[("RATE_LIMIT_ENABLED", "false")]);
    let catalogue = catalogue(&t);
    // A and B share one type (so B's view of that category has numbers of its own), and each
    // has one of its own.
    let first = &catalogue["categories"][0];
    let shared_category = first["id"].as_str().expect("category id").to_string();
    let ty = |c: usize, i: usize| {
        catalogue["categories"][c]["allocation_types"][i]["id"]
            .as_str()
            .expect("type id")
            .to_string()
    };
    let (shared_type, a_type, b_type) = (ty(0, 0), ty(1, 0), ty(2, 0));

    let a = make_user(
        &t,
        "a@example.com",
        "AAA",
        ("43210.99", "1234.57"),
        &[&shared_type, &a_type],
    );
    let b = make_user(
        &t,
        "b@example.com",
        "BBB",
        ("500", "20.5"),
        &[&shared_type, &b_type],
    );

    // A recurring rule of A's: `{id}` on the recurring routes names one of these.
    let rule = json!({"type": "expense", "category": "rent", "label": "AAA rent", "amount": "1234.57",
                      "frequency": "monthly", "start_date": "2025-10-01"});
    let rule = ok_json(
        send_json(t.http, "POST", "/api/v1/recurring", Some(&a.token), &rule),
        "A's rule",
    );
    let a_rule = rule["id"].as_str().expect("rule id").to_string();

    // Which of A's values goes into each parameter name. A route whose parameter is not here
    // fails the test: say what it names before it ships.
    let aims: BTreeMap<&str, Vec<Aim>> = BTreeMap::from([
        (
            "id",
            vec![
                Aim::Owned(a.transactions[0].clone()),
                Aim::Owned(a_rule.clone()),
            ],
        ),
        (
            "allocation_id",
            vec![
                Aim::Owned(a.allocations[0].clone()),
                Aim::Owned(a.allocations[1].clone()),
                // GET reads this segment as a category id.
                Aim::Shared(shared_category.clone()),
            ],
        ),
        ("session_id", vec![Aim::Owned(a.sessions[0].clone())]),
        ("conversation_id", vec![Aim::Owned(a.sessions[0].clone())]),
        ("file", vec![Aim::Public]),
    ]);

    // Everything of A that must never show up in B's answers.
    let mut secrets: Vec<String> = ["AAA", "43210.99", "1234.57", "a@example.com"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    secrets.extend(a.transactions.iter().cloned());
    secrets.extend(a.allocations.iter().cloned());
    secrets.extend(a.sessions.iter().cloned());
    secrets.push(a_rule.clone());
    // What B sent may come back (a 404 names the id it did not find); anything else of A's
    // may not.
    let leaks = |body: &str, sent: &[Aim]| -> Vec<String> {
        secrets
            .iter()
            .filter(|s| body.contains(s.as_str()))
            .filter(|s| !sent.iter().any(|a| matches!(a, Aim::Owned(v) if v == *s)))
            .cloned()
            .collect()
    };

    let before = export(&t, &a.token);
    let b_before = export(&t, &b.token);
    let bearer = format!("Bearer {}", b.token);
    // Valid for every route that takes a body (unknown fields are ignored), so a refusal can
    // only come from the ownership check, not from validation.
    let body = json!({"label": "written by B", "budget_amount": 1, "actual_amount": 1,
                      "notes": "written by B", "date": "2025-11-01"})
    .to_string();

    let router = crate::internals::routes();
    let (mut attacked, mut shared_views) = (0, 0);
    for route in router.routes() {
        let names = params_of(route.pattern);
        if names.is_empty() {
            continue;
        }
        for name in &names {
            assert!(
                aims.contains_key(name),
                "{} {} has a `{{{name}}}` that this test does not know: add to `aims` which of \
                 A's values to put there",
                route.method,
                route.pattern
            );
        }
        for (path, used) in fillings(route.pattern, &aims) {
            let url = format!("{path}?{MONTH}");
            let mut headers = vec![("Authorization", bearer.as_str())];
            let sends_body = matches!(route.method, "POST" | "PUT" | "PATCH");
            if sends_body {
                headers.push(("Content-Type", "application/json"));
            }
            let r = request(
                t.http,
                route.method,
                &url,
                &headers,
                sends_body.then_some(body.as_bytes()),
            );
            attacked += 1;
            let what = format!("B: {} {url}", route.method);
            let shared = used.iter().any(|a| matches!(a, Aim::Shared(_)));
            if shared && route.method == "GET" && r.status == 200 {
                // The shared catalogue: B sees B's own numbers for that category.
                shared_views += 1;
                let mine = ok_json(
                    get_auth(t.http, &format!("/api/v1/allocations?{MONTH}"), &b.token),
                    "B's allocations",
                );
                let own = mine["categories"]
                    .as_array()
                    .expect("categories")
                    .iter()
                    .find(|c| c["id"] == shared_category.as_str())
                    .expect("the category in B's summary");
                assert_eq!(&r.json(), own, "{what}: not B's own view");
                assert!(
                    r.text().contains("500") && r.text().contains(&b.allocations[0]),
                    "{what}: B's own numbers are missing: {}",
                    r.text()
                );
            } else {
                assert_eq!(r.status, 404, "{what}: {}", r.text());
                assert_eq!(r.header("Content-Type"), Some("application/json"), "{what}");
            }
            let found = leaks(&r.text(), &used);
            assert!(found.is_empty(), "{what} shows A's {found:?}: {}", r.text());
        }
    }
    assert!(
        attacked >= 8,
        "only {attacked} requests: did the routes go?"
    );
    assert_eq!(
        shared_views, 1,
        "GET /allocations/{{category_id}} gave B its own view once"
    );

    assert_eq!(export(&t, &a.token), before, "A's data changed");
    assert_eq!(export(&t, &b.token), b_before, "B's data changed");
    // And A still reaches every row B aimed at.
    for id in &a.sessions {
        let r = get_auth(
            t.http,
            &format!("/api/v1/chat/sessions/{id}/messages"),
            &a.token,
        );
        assert_eq!(r.status, 200, "A's session {id}: {}", r.text());
    }
}

#[test]
fn list_routes_show_only_the_callers_rows() {
    let t = spawn_app_with(&[("RATE_LIMIT_ENABLED", "false")]);
    let catalogue = catalogue(&t);
    let types: Vec<String> = all_types(&catalogue)
        .take(3)
        .map(|ty| ty["id"].as_str().expect("id").to_string())
        .collect();
    let a = make_user(
        &t,
        "a@example.com",
        "AAA",
        ("43210.99", "1234.57"),
        &[&types[0], &types[1]],
    );
    let b = make_user(
        &t,
        "b@example.com",
        "BBB",
        ("500", "20.5"),
        &[&types[0], &types[2]],
    );

    let lists = [
        format!("/api/v1/transactions?{MONTH}"),
        "/api/v1/transactions?limit=200".to_string(),
        format!("/api/v1/transactions/balance?{MONTH}"),
        "/api/v1/chat/sessions?limit=200".to_string(),
        format!("/api/v1/allocations?{MONTH}"),
        format!("/api/v1/allocations/summary?{MONTH}"),
        "/api/v1/allocations/history?months=24&month=12&year=2025".to_string(),
        format!("/api/v1/monthly-budget?{MONTH}"),
        "/api/v1/onboarding/profile".to_string(),
        "/api/v1/users/me".to_string(),
        "/api/v1/users/me/export".to_string(),
    ];
    for path in &lists {
        let body = ok_json(get_auth(t.http, path, &b.token), path).to_string();
        for secret in a
            .transactions
            .iter()
            .chain(&a.allocations)
            .chain(&a.sessions)
            .map(String::as_str)
            .chain(["AAA", "43210.99", "1234.57", "a@example.com"])
        {
            assert!(
                !body.contains(secret),
                "B's {path} shows A's {secret:?}: {body}"
            );
        }
    }

    // B's lists hold exactly B's rows.
    let txs = ok_json(
        get_auth(t.http, &format!("/api/v1/transactions?{MONTH}"), &b.token),
        "transactions",
    );
    let ids = txs.as_array().expect("array").iter().map(|t| &t["id"]);
    assert_eq!(sorted(ids), sorted(&b.transactions));

    let sessions = ok_json(
        get_auth(t.http, "/api/v1/chat/sessions", &b.token),
        "sessions",
    );
    let ids = sessions["sessions"].as_array().expect("sessions").iter();
    assert_eq!(sorted(ids.map(|s| &s["session_id"])), sorted(&b.sessions));
    assert_eq!(sessions["total"], 2);

    let summary = ok_json(
        get_auth(t.http, &format!("/api/v1/allocations?{MONTH}"), &b.token),
        "allocations",
    );
    let ids = all_types(&summary)
        .map(|ty| &ty["allocation_id"])
        .filter(|id| !id.is_null());
    assert_eq!(sorted(ids), sorted(&b.allocations));
    // The shared type shows B's amounts, not A's and not the two added up.
    let shared = all_types(&summary)
        .find(|ty| ty["id"] == types[0].as_str())
        .expect("shared type");
    assert_eq!(shared["budget_amount"], json!(500));
    assert_eq!(shared["actual_amount"], json!(20.5));
}
