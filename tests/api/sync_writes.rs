//! Offline writes (API.md "Sync for offline clients"): client-made ids on `POST /transactions`
//! (a retry answers 200 with the stored row; other content, another user's id or a deleted id
//! is 409 `id_conflict`), together with `Idempotency-Key`; and `If-Match` on PATCH and DELETE
//! (412 `version_mismatch` with the current row, checked in the writing transaction). Every
//! refusal changes nothing: the export and the user's sync counter stay as they were.

use std::sync::{Arc, Barrier};

use serde_json::{Value, json};

use crate::common::{Call, Reply, TestApp};
use crate::money_support::*;

const ID: &str = "0B8E6C52-3D1F-4A9E-9C47-5E2D8F1A6B30";
const ID_LOWER: &str = "0b8e6c52-3d1f-4a9e-9c47-5e2d8f1a6b30";

/// An expense in October 2025 under the client's id.
fn with_id(id: &str, amount: &str, label: &str) -> Value {
    let mut b = tx_body("expense", "food", amount, label, "2025-10-18");
    b["id"] = json!(id);
    b
}

fn post(t: &TestApp, tok: &str, body: &Value) -> Reply {
    call(t, "POST", TXS, tok, Some(body))
}

/// What a refusal must leave as it was: every row of the user, and its change counter.
fn snapshot(t: &TestApp, u: &User) -> (Value, i64) {
    let seq = t
        .app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT coalesce((SELECT seq FROM sync_counters WHERE user_id = ?1), 0)",
                [&u.id],
                |r| r.get(0),
            )?)
        })
        .expect("counter");
    (export_rows(t, &u.token), seq)
}

/// The transaction as `GET /transactions` lists it.
fn listed(t: &TestApp, tok: &str, id: &str) -> Value {
    list_month(t, tok, 10, 2025)
        .into_iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

fn assert_conflict(r: &Reply) {
    assert_eq!(r.status, 409, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], "id_conflict", "{body}");
    assert!(body["detail"].is_string(), "{body}");
    // Nothing of the row it met: the body is the error and nothing else.
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

#[test]
fn a_client_id_sent_again_with_the_same_content_answers_200_with_the_one_row() {
    let (t, u) = app_and_user("ids-replay@example.com");
    let tok = &u.token;
    let first = post(&t, tok, &with_id(ID, "1250.5", "groceries"));
    assert_eq!(first.status, 201, "{}", first.text());
    let created = first.json();
    // Kept in the server's form (lowercase), so every later path finds it.
    assert_eq!(created["id"], ID_LOWER);
    let before = snapshot(&t, &u);

    // The same content, written otherwise: money as a number with a trailing zero, the date
    // as the same instant, the id in lowercase.
    let mut again = with_id(ID_LOWER, "1250.50", "groceries");
    again["transaction_date"] = json!("2025-10-18T00:00:00Z");
    again["amount"] = json!(1250.50);
    for body in [with_id(ID, "1250.5", "groceries"), again] {
        let r = post(&t, tok, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), created);
    }
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 1);
    assert_eq!(balance(&t, tok, 10, 2025)["transaction_count"], 1);
    assert_eq!(paise(&balance(&t, tok, 10, 2025)["total_expense"]), 125_050);
    assert_eq!(snapshot(&t, &u), before, "a replay writes nothing");
    // The path takes it too.
    patch_tx(&t, tok, ID_LOWER, &json!({"label": "food"}));
}

#[test]
fn a_client_id_with_other_content_is_a_409_that_changes_nothing() {
    let (t, u) = app_and_user("ids-other@example.com");
    let tok = &u.token;
    let types = t.type_ids(tok, "spending");
    let stored = expect(
        &t,
        "POST",
        TXS,
        tok,
        Some(&with_id(ID, "100", "lunch")),
        201,
    );
    let before = snapshot(&t, &u);
    let mut linked = with_id(ID, "100", "lunch");
    linked["allocation_type_id"] = json!(types[0]);
    let mut income = with_id(ID, "100", "lunch");
    income["type"] = json!("income");
    let mut later = with_id(ID, "100", "lunch");
    later["transaction_date"] = json!("2025-10-18T00:00:01Z");
    for body in [
        with_id(ID, "100.01", "lunch"),
        with_id(ID, "100", "Lunch"),
        linked,
        income,
        later,
    ] {
        assert_conflict(&post(&t, tok, &body));
    }
    assert_eq!(snapshot(&t, &u), before);
    assert_eq!(listed(&t, tok, ID_LOWER), stored);

    // Once edited, the original content is other content too: the client must pull.
    patch_tx(&t, tok, ID_LOWER, &json!({"amount": "90"}));
    let before = snapshot(&t, &u);
    assert_conflict(&post(&t, tok, &with_id(ID, "100", "lunch")));
    assert_eq!(snapshot(&t, &u), before);
}

#[test]
fn another_users_id_is_a_409_and_nothing_of_theirs_shows() {
    let (t, a) = app_and_user("ids-owner@example.com");
    let b = register(&t, "ids-stranger@example.com");
    let secret = with_id(ID, "4321.09", "secret-label");
    expect(&t, "POST", TXS, &a.token, Some(&secret), 201);
    let (before_a, before_b) = (snapshot(&t, &a), snapshot(&t, &b));
    // The same content and other content get the same answer: nothing to learn from it.
    for body in [secret.clone(), with_id(ID, "1", "x")] {
        let r = post(&t, &b.token, &body);
        assert_conflict(&r);
        let text = r.text();
        assert!(!text.contains("secret") && !text.contains("4321"), "{text}");
    }
    assert_eq!(snapshot(&t, &a), before_a);
    assert_eq!(snapshot(&t, &b), before_b);
    assert!(list_month(&t, &b.token, 10, 2025).is_empty());
    // And B still cannot reach it by its id.
    let r = call(&t, "DELETE", &format!("{TXS}/{ID_LOWER}"), &b.token, None);
    assert_eq!(r.status, 404);
}

#[test]
fn a_deleted_transactions_id_is_a_409() {
    let (t, u) = app_and_user("ids-deleted@example.com");
    let tok = &u.token;
    let body = with_id(ID, "75", "taxi");
    expect(&t, "POST", TXS, tok, Some(&body), 201);
    delete_tx(&t, tok, ID_LOWER);
    let before = snapshot(&t, &u);
    // A late retry of the create must not bring back what another device deleted.
    assert_conflict(&post(&t, tok, &body));
    assert_conflict(&post(&t, tok, &with_id(ID, "1", "other")));
    assert_eq!(snapshot(&t, &u), before);
    assert!(list_month(&t, tok, 10, 2025).is_empty());
}

#[test]
fn a_client_id_that_is_not_a_uuid_is_a_422_naming_id() {
    let (t, u) = app_and_user("ids-bad@example.com");
    let tok = &u.token;
    let before = snapshot(&t, &u);
    for id in [
        json!("not-a-uuid"),
        json!(""),
        json!(42),
        json!(true),
        json!({"id": ID}),
        // Other spellings of a UUID than the hyphenated one.
        json!("0b8e6c523d1f4a9e9c475e2d8f1a6b30"),
        json!("{0b8e6c52-3d1f-4a9e-9c47-5e2d8f1a6b30}"),
        json!("urn:uuid:0b8e6c52-3d1f-4a9e-9c47-5e2d8f1a6b30"),
        json!("0b8e6c52-3d1f-4a9e-9c47-5e2d8f1a6b3g"),
        json!(" 0b8e6c52-3d1f-4a9e-9c47-5e2d8f1a6b30"),
    ] {
        let mut body = with_id(ID, "10", "x");
        body["id"] = id.clone();
        assert_422_names(&post(&t, tok, &body), "id");
    }
    assert_eq!(snapshot(&t, &u), before);
    // Null is absent: the server makes the id.
    let mut body = with_id(ID, "10", "x");
    body["id"] = Value::Null;
    let made = expect(&t, "POST", TXS, tok, Some(&body), 201);
    assert_ne!(made["id"], ID_LOWER);
}

#[test]
fn client_ids_and_idempotency_keys_work_together() {
    let (t, u) = app_and_user("ids-keys@example.com");
    let tok = &u.token;
    let body = with_id(ID, "300", "rent share");
    let first = post_with_key(t.http, tok, "k1", &body);
    assert_eq!(first.status, 201, "{}", first.text());
    // The key is looked up first: its retry is the first answer, byte for byte.
    let retry = post_with_key(t.http, tok, "k1", &body);
    assert_eq!((retry.status, &retry.body), (201, &first.body));
    // Without the key, or under a new one, the id answers: 200 with the stored row.
    let r = post(&t, tok, &body);
    assert_eq!((r.status, r.json()), (200, first.json()));
    let r = post_with_key(t.http, tok, "k2", &body);
    assert_eq!((r.status, r.json()), (200, first.json()));
    let before = snapshot(&t, &u);
    // Which k2 now replays as it answered.
    let r = post_with_key(t.http, tok, "k2", &body);
    assert_eq!(r.status, 200);
    // The key's rule comes before the id's: another body under k1 is the key's 422.
    let other = with_id(ID, "301", "rent share");
    let r = post_with_key(t.http, tok, "k1", &other);
    assert_error(
        &r,
        422,
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request",
    );
    // Under a fresh key, other content is the id's 409, and the key is not used up by it.
    assert_conflict(&post_with_key(t.http, tok, "k3", &other));
    assert_eq!(snapshot(&t, &u), before);
    let r = post_with_key(t.http, tok, "k3", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 1);
    assert_eq!(balance(&t, tok, 10, 2025)["transaction_count"], 1);
}

fn with_if_match(
    t: &TestApp,
    method: &str,
    id: &str,
    tok: &str,
    tag: &str,
    body: Option<&Value>,
) -> Reply {
    let c = Call::new(t.http, method, &format!("{TXS}/{id}"))
        .auth(tok)
        .header("If-Match", tag);
    match body {
        Some(b) => c.json(b).send(),
        None => c.send(),
    }
}

/// A new transaction's id.
fn added(t: &TestApp, tok: &str, fields: [&str; 5]) -> String {
    add_tx(t, tok, fields)["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn patch_if(t: &TestApp, tok: &str, id: &str, tag: &str, body: Value) -> Reply {
    with_if_match(t, "PATCH", id, tok, tag, Some(&body))
}

fn assert_mismatch(r: &Reply, current: &Value) {
    assert_eq!(r.status, 412, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], "version_mismatch", "{body}");
    assert!(body["detail"].is_string(), "{body}");
    assert_eq!(&body["current"], current, "{body}");
}

#[test]
fn if_match_lets_the_right_version_write_and_refuses_a_stale_one_with_the_current_row() {
    let (t, u) = app_and_user("ifmatch-patch@example.com");
    let tok = &u.token;
    let id = added(&t, tok, ["expense", "food", "100", "a", "2025-10-05"]);
    let v1 = listed(&t, tok, &id)["version"].as_i64().expect("version");
    let tag = |v: i64| format!("\"{v}\"");

    let r = patch_if(&t, tok, &id, &tag(v1), json!({"amount": "150"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let moved = r.json();
    assert_eq!(moved["version"], v1 + 1, "one change, one version");
    assert_eq!(moved, listed(&t, tok, &id));

    // A device still at v1: refused with what the server has, and nothing moves.
    let before = snapshot(&t, &u);
    let r = patch_if(&t, tok, &id, &tag(v1), json!({"amount": "999"}));
    assert_mismatch(&r, &listed(&t, tok, &id));
    assert_eq!(snapshot(&t, &u), before);
    assert_eq!(paise(&balance(&t, tok, 10, 2025)["total_expense"]), 15_000);

    // The weak form and a list are the same versions; an empty PATCH changes no version.
    let r = with_if_match(
        &t,
        "PATCH",
        &id,
        tok,
        &format!("W/{}", tag(v1 + 1)),
        Some(&json!({})),
    );
    assert_eq!((r.status, &r.json()["version"]), (200, &json!(v1 + 1)));
    let list = format!("{}, {}", tag(v1), tag(v1 + 1));
    let r = patch_if(&t, tok, &id, &list, json!({"label": "b"}));
    assert_eq!((r.status, &r.json()["version"]), (200, &json!(v1 + 2)));
    let r = patch_if(&t, tok, &id, "*", json!({"label": "c"}));
    assert_eq!((r.status, &r.json()["version"]), (200, &json!(v1 + 3)));
    // Without If-Match the last write wins.
    let last = patch_tx(&t, tok, &id, &json!({"label": "d"}));
    assert_eq!(last["version"], v1 + 4);
    // A missing transaction is still a 404 first, whatever its tag.
    let r = patch_if(&t, tok, ID_LOWER, &tag(1), json!({"label": "e"}));
    assert_eq!(r.status, 404);
}

#[test]
fn delete_with_a_stale_if_match_is_412_and_keeps_the_row() {
    let (t, u) = app_and_user("ifmatch-delete@example.com");
    let tok = &u.token;
    let id = added(&t, tok, ["income", "salary", "5000", "pay", "2025-10-01"]);
    let edited = patch_tx(&t, tok, &id, &json!({"amount": "5100"}));
    let v = edited["version"].as_i64().expect("version");
    let before = snapshot(&t, &u);
    let r = with_if_match(&t, "DELETE", &id, tok, &format!("\"{}\"", v - 1), None);
    assert_mismatch(&r, &edited);
    assert_eq!(snapshot(&t, &u), before);
    assert_eq!(listed(&t, tok, &id), edited);
    let r = with_if_match(&t, "DELETE", &id, tok, &format!("\"{v}\""), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(list_month(&t, tok, 10, 2025).is_empty());
    assert_eq!(balance(&t, tok, 10, 2025)["transaction_count"], 0);
}

#[test]
fn a_malformed_if_match_is_a_422_naming_the_header() {
    let (t, u) = app_and_user("ifmatch-bad@example.com");
    let tok = &u.token;
    let id = added(&t, tok, ["expense", "food", "10", "a", "2025-10-05"]);
    let before = snapshot(&t, &u);
    for tag in [
        "1",
        "\"one\"",
        "\"-1\"",
        "'1'",
        "w/\"1\"",
        "\"1\",",
        "*, \"1\"",
        "\"99999999999999999999\"",
    ] {
        let r = patch_if(&t, tok, &id, tag, json!({"amount": "20"}));
        assert_422_names(&r, "if-match");
        let r = with_if_match(&t, "DELETE", &id, tok, tag, None);
        assert_422_names(&r, "if-match");
    }
    assert_eq!(snapshot(&t, &u), before);
}

#[test]
fn concurrent_patches_with_the_same_if_match_let_exactly_one_win() {
    let (t, u) = app_and_user("ifmatch-race@example.com");
    let tok = u.token.clone();
    let id = added(&t, &tok, ["expense", "food", "10", "a", "2025-10-05"]);
    let v = listed(&t, &tok, &id)["version"].as_i64().expect("version");
    let n = 8;
    let gate = Arc::new(Barrier::new(n));
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (gate, tok, id, addr) = (gate.clone(), tok.clone(), id.clone(), t.http);
                s.spawn(move || {
                    gate.wait();
                    Call::new(addr, "PATCH", &format!("{TXS}/{id}"))
                        .auth(&tok)
                        .header("If-Match", &format!("\"{v}\""))
                        .json(&json!({"amount": format!("{}", 100 + i)}))
                        .send()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let won: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let now = listed(&t, &tok, &id);
    assert_eq!(won[0].json(), now);
    assert_eq!(now["version"], v + 1);
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 412, "{}", r.text());
        assert_eq!(r.json()["current"]["version"], v + 1);
    }
    // The totals hold the winner's amount only.
    assert_eq!(
        paise(&balance(&t, &tok, 10, 2025)["total_expense"]),
        paise(&now["amount"])
    );
}
