//! "Budgets that follow spending" (shared/API.md): an expense linked to an allocation type
//! moves that type's `spent_amount` for its month, and with it every actual figure
//! (`/allocations`, `/summary`, `/history`, `/monthly-budget`), through creates, edits across
//! months and types, unlinks, deletes and retries; linked writes that take a category over its
//! budget push a `budget_alert`; bad links are refused and change nothing.

use crate::chat_support::{Ws, next_json, open, send};
use crate::{common, money_support};

use common::*;
use money_support::*;
use serde_json::{Value, json};

/// A type's figures in a month's summary: (budget, recorded, spent, actual, difference) in
/// paise, and its allocation_id.
fn figures(t: &TestApp, token: &str, type_id: &str, month: u32, year: i32) -> ([i64; 5], Value) {
    let s = allocations(t, token, month, year);
    let line = s["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .flat_map(|c| c["allocation_types"].as_array().expect("types").iter())
        .find(|ty| ty["id"] == type_id)
        .unwrap_or_else(|| panic!("no type {type_id}"))
        .clone();
    let f = |name: &str| paise(&line[name]);
    (
        [
            f("budget_amount"),
            f("recorded_amount"),
            f("spent_amount"),
            f("actual_amount"),
            f("difference"),
        ],
        line["allocation_id"].clone(),
    )
}

/// `spent_amount` of a type in a month.
fn spent(t: &TestApp, token: &str, type_id: &str, month: u32, year: i32) -> i64 {
    figures(t, token, type_id, month, year).0[2]
}

/// Every actual figure of a month that follows spending: (summary total_actual, the spending
/// category's total_actual, /summary total_actual and difference, /history's month
/// total_actual, /monthly-budget's spending actual_invested).
fn month_actuals(t: &TestApp, token: &str, month: u32, year: i32) -> [i64; 6] {
    let q = format!("month={month}&year={year}");
    let s = allocations(t, token, month, year);
    let summary = get_ok(t, &format!("/api/v1/allocations/summary?{q}"), token);
    let history = get_ok(
        t,
        &format!("/api/v1/allocations/history?months=1&{q}"),
        token,
    );
    let monthly = get_ok(t, &format!("/api/v1/monthly-budget?{q}"), token);
    let invested = monthly["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["name"] == "spending")
        .map(|c| paise(&c["actual_invested"]))
        .unwrap_or(0);
    [
        paise(&s["total_actual"]),
        paise(&category(&s, "spending")["total_actual"]),
        paise(&summary["total_actual"]),
        paise(&summary["difference"]),
        paise(&history["history"][0]["total_actual"]),
        invested,
    ]
}

fn linked(kind: &str, amount_text: &str, date: &str, type_id: Option<&str>) -> Value {
    let mut b = tx_body(kind, "food", amount_text, "linked", date);
    b["allocation_type_id"] = json!(type_id);
    b
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn a_linked_expense_moves_spent_and_every_actual_through_edits_moves_unlinks_and_deletes() {
    let (t, u) = app_and_user("spend-flow@example.com");
    let tok = u.token.as_str();
    let s = t.type_ids(tok, "spending");
    let (a, b) = (s[0].as_str(), s[1].as_str());
    set_budget(&t, tok, a, 100_000, 10, 2025);
    record_actual(&t, tok, a, 10_000, None, 10, 2025);
    // An unlinked expense and an income count in the month totals only.
    add_tx(&t, tok, ["income", "salary", "5000", "pay", "2025-10-01"]);
    let plain = add_tx(&t, tok, ["expense", "food", "70", "plain", "2025-10-02"]);
    assert_eq!(plain["allocation_type_id"], Value::Null);
    assert_eq!(
        figures(&t, tok, a, 10, 2025).0,
        [100_000, 10_000, 0, 10_000, 90_000]
    );

    let x = create_tx(&t, tok, &linked("expense", "250", "2025-10-05", Some(a)));
    assert_eq!(x["allocation_type_id"], a);
    let id = id_of(&x);
    assert_eq!(
        figures(&t, tok, a, 10, 2025).0,
        [100_000, 10_000, 25_000, 35_000, 65_000]
    );
    // budget 1000, actual 100 recorded + 250 spent
    assert_eq!(
        month_actuals(&t, tok, 10, 2025),
        [35_000, 35_000, 35_000, 65_000, 35_000, 35_000]
    );

    // A type without a row that month gets one (budget 0): its allocation_id is no longer null.
    let (before, no_row) = figures(&t, tok, b, 10, 2025);
    assert_eq!((before, no_row), ([0; 5], Value::Null));
    let y = create_tx(&t, tok, &linked("expense", "40.5", "2025-10-06", Some(b)));
    let (after, row) = figures(&t, tok, b, 10, 2025);
    assert_eq!(after, [0, 0, 4_050, 4_050, -4_050]);
    assert!(row.is_string(), "{row}");
    assert_eq!(month_actuals(&t, tok, 10, 2025)[0], 39_050);

    // Amount.
    let v = patch_tx(&t, tok, &id, &json!({"amount": "300"}));
    assert_eq!(
        (paise(&v["amount"]), v["allocation_type_id"].clone()),
        (30_000, json!(a))
    );
    assert_eq!(spent(&t, tok, a, 10, 2025), 30_000);
    // Across months: out of October, into November.
    let v = patch_tx(&t, tok, &id, &json!({"transaction_date": "2025-11-03"}));
    assert_eq!(v["month"], 11);
    assert_eq!(spent(&t, tok, a, 10, 2025), 0);
    assert_eq!(spent(&t, tok, a, 11, 2025), 30_000);
    assert_eq!(
        figures(&t, tok, a, 10, 2025).0,
        [100_000, 10_000, 0, 10_000, 90_000]
    );
    assert_eq!(
        month_actuals(&t, tok, 11, 2025),
        [30_000, 30_000, 30_000, -30_000, 30_000, 30_000]
    );
    // Across types (and back to October, with a new amount, in one PATCH).
    let v = patch_tx(
        &t,
        tok,
        &id,
        &json!({"allocation_type_id": b, "transaction_date": "2025-10-20", "amount": 12}),
    );
    assert_eq!(v["allocation_type_id"], b);
    assert_eq!(spent(&t, tok, a, 11, 2025), 0);
    assert_eq!(spent(&t, tok, b, 10, 2025), 4_050 + 1_200);
    assert_eq!(spent(&t, tok, a, 10, 2025), 0);
    // A PATCH that does not name the link keeps it.
    let v = patch_tx(&t, tok, &id, &json!({"label": "renamed"}));
    assert_eq!(v["allocation_type_id"], b);
    assert_eq!(spent(&t, tok, b, 10, 2025), 5_250);
    // Unlink with null.
    let v = patch_tx(&t, tok, &id, &json!({"allocation_type_id": null}));
    assert_eq!(v["allocation_type_id"], Value::Null);
    assert_eq!(spent(&t, tok, b, 10, 2025), 4_050);
    // Link again, then make it an income while unlinking: nothing spent any more.
    patch_tx(&t, tok, &id, &json!({"allocation_type_id": a}));
    assert_eq!(spent(&t, tok, a, 10, 2025), 1_200);
    let v = patch_tx(
        &t,
        tok,
        &id,
        &json!({"type": "income", "allocation_type_id": null}),
    );
    assert_eq!(
        (v["type"].clone(), v["allocation_type_id"].clone()),
        (json!("income"), Value::Null)
    );
    assert_eq!(spent(&t, tok, a, 10, 2025), 0);
    // An income made an expense and linked in one PATCH counts again.
    patch_tx(
        &t,
        tok,
        &id,
        &json!({"type": "expense", "allocation_type_id": a}),
    );
    assert_eq!(spent(&t, tok, a, 10, 2025), 1_200);

    // The list echoes the link, and filters on it.
    let listed = list_month(&t, tok, 10, 2025);
    let link_of = |id: &str| {
        listed.iter().find(|x| x["id"] == id).expect("listed")["allocation_type_id"].clone()
    };
    assert_eq!((link_of(&id), link_of(&id_of(&y))), (json!(a), json!(b)));
    let only_a = get_ok(
        &t,
        &format!("{TXS}?month=10&year=2025&allocation_type_id={a}"),
        tok,
    );
    assert_eq!(only_a.as_array().map(Vec::len), Some(1));
    assert_eq!(only_a[0]["id"], id.as_str());

    // Delete: spent reversed, with the month totals.
    delete_tx(&t, tok, &id);
    delete_tx(&t, tok, &id_of(&y));
    assert_eq!(spent(&t, tok, a, 10, 2025), 0);
    assert_eq!(spent(&t, tok, b, 10, 2025), 0);
    assert_eq!(
        figures(&t, tok, a, 10, 2025).0,
        [100_000, 10_000, 0, 10_000, 90_000]
    );
    assert_eq!(
        month_actuals(&t, tok, 10, 2025),
        [10_000, 10_000, 10_000, 90_000, 10_000, 10_000]
    );
    let b_oct = balance(&t, tok, 10, 2025);
    assert_eq!(
        (
            paise(&b_oct["total_expense"]),
            b_oct["transaction_count"].clone()
        ),
        (7_000, json!(2))
    );
}

#[test]
fn bad_links_are_refused_and_change_nothing() {
    let (t, u) = app_and_user("spend-bad@example.com");
    let tok = u.token.as_str();
    let a = type_id(&t, tok, "spending", 0);
    let expense = create_tx(&t, tok, &linked("expense", "10", "2025-10-05", Some(&a)));
    let income = add_tx(&t, tok, ["income", "pay", "99", "pay", "2025-10-05"]);
    let (expense, income) = (id_of(&expense), id_of(&income));
    let unknown = "00000000-0000-4000-8000-000000000000";
    let not_found = format!("Allocation type with id '{unknown}' not found");
    let requires = "Only an expense can be linked to an allocation type";
    let path = |id: &str| format!("{TXS}/{id}");
    let before = export_rows(&t, tok);

    // (method, path, body, status, code: Some(code, detail) or a field the 422 names)
    enum Want<'a> {
        Code(&'a str, &'a str),
        Field(&'a str),
    }
    let cases: Vec<(&str, String, Value, u16, Want)> = vec![
        (
            "POST",
            TXS.into(),
            linked("income", "5", "2025-10-05", Some(&a)),
            422,
            Want::Code("allocation_requires_expense", requires),
        ),
        (
            "POST",
            TXS.into(),
            linked("expense", "5", "2025-10-05", Some(unknown)),
            404,
            Want::Code("allocation_type_not_found", &not_found),
        ),
        (
            "POST",
            TXS.into(),
            linked("expense", "5", "2025-10-05", Some("")),
            422,
            Want::Field("allocation_type_id"),
        ),
        (
            "POST",
            TXS.into(),
            {
                let mut b = linked("expense", "5", "2025-10-05", None);
                b["allocation_type_id"] = json!(7);
                b
            },
            422,
            Want::Field("allocation_type_id"),
        ),
        (
            "POST",
            TXS.into(),
            {
                let mut b = linked("expense", "5", "2025-10-05", None);
                b["allocation_type_id"] = json!("x".repeat(65));
                b
            },
            422,
            Want::Field("allocation_type_id"),
        ),
        // Making a linked expense an income while it stays linked, or linking an income.
        (
            "PATCH",
            path(&expense),
            json!({"type": "income"}),
            422,
            Want::Code("allocation_requires_expense", requires),
        ),
        (
            "PATCH",
            path(&income),
            json!({"allocation_type_id": a}),
            422,
            Want::Code("allocation_requires_expense", requires),
        ),
        (
            "PATCH",
            path(&expense),
            json!({"allocation_type_id": unknown}),
            404,
            Want::Code("allocation_type_not_found", &not_found),
        ),
        (
            "PATCH",
            path(&expense),
            json!({"allocation_type_id": ["x"], "amount": 3}),
            422,
            Want::Field("allocation_type_id"),
        ),
        (
            "GET",
            format!("{TXS}?allocation_type_id={unknown}"),
            Value::Null,
            404,
            Want::Code("allocation_type_not_found", &not_found),
        ),
        (
            "GET",
            format!("{TXS}?allocation_type_id="),
            Value::Null,
            422,
            Want::Field("allocation_type_id"),
        ),
    ];
    for (method, url, body, status, want) in cases {
        let body = (!body.is_null()).then_some(body);
        let r = call(&t, method, &url, tok, body.as_ref());
        assert_eq!(r.status, status, "{method} {url} {body:?}: {}", r.text());
        match want {
            Want::Code(code, detail) => assert_error(&r, status, code, detail),
            Want::Field(f) => assert_422_names(&r, f),
        }
        assert_eq!(
            export_rows(&t, tok),
            before,
            "{method} {url} {body:?} changed data"
        );
    }
    // Another user's transaction is a 404 whatever the link says, and changes nothing.
    let other = register(&t, "spend-bad-2@example.com");
    let r = call(
        &t,
        "PATCH",
        &path(&expense),
        &other.token,
        Some(&json!({"allocation_type_id": null})),
    );
    assert_error(&r, 404, "transaction_not_found", "Transaction not found");
    assert_eq!(export_rows(&t, tok), before);
    assert_eq!(spent(&t, tok, &a, 10, 2025), 1_000);
    // null on a POST is the same as no link.
    let v = create_tx(&t, tok, &linked("income", "1", "2025-10-05", None));
    assert_eq!(v["allocation_type_id"], Value::Null);
}

#[test]
fn a_retried_linked_post_moves_spent_once_and_replays_the_link() {
    let (t, u) = app_and_user("spend-retry@example.com");
    let tok = u.token.as_str();
    let a = type_id(&t, tok, "health", 2);
    let body = linked("expense", "123.45", "2025-12-31T23:00:00Z", Some(&a));
    let first = post_with_key(t.http, tok, "spend-key-1", &body);
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.json()["allocation_type_id"], a.as_str());
    for _ in 0..3 {
        let again = post_with_key(t.http, tok, "spend-key-1", &body);
        assert_eq!((again.status, &again.body), (201, &first.body));
    }
    assert_eq!(spent(&t, tok, &a, 12, 2025), 12_345);
    assert_eq!(list_month(&t, tok, 12, 2025).len(), 1);
    // The same key with another link is another request.
    let other = linked(
        "expense",
        "123.45",
        "2025-12-31T23:00:00Z",
        Some(&type_id(&t, tok, "health", 1)),
    );
    let r = post_with_key(t.http, tok, "spend-key-1", &other);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (422, json!("idempotency_key_reused"))
    );
    assert_eq!(spent(&t, tok, &a, 12, 2025), 12_345);
}

#[test]
fn the_filtered_list_is_never_stale() {
    let (t, u) = app_and_user("spend-cache@example.com");
    let tok = u.token.as_str();
    let (a, b) = (
        type_id(&t, tok, "learning", 0),
        type_id(&t, tok, "learning", 1),
    );
    let url = |ty: &str| format!("{TXS}?month=3&year=2026&allocation_type_id={ty}");
    let ids = |ty: &str| -> Vec<String> {
        get_ok(&t, &url(ty), tok)
            .as_array()
            .expect("array")
            .iter()
            .map(id_of)
            .collect()
    };
    assert!(ids(&a).is_empty());
    let x = id_of(&create_tx(
        &t,
        tok,
        &linked("expense", "9", "2026-03-09", Some(&a)),
    ));
    // The same page for another type is another cache entry, and a write shows at once.
    assert_eq!((ids(&a), ids(&b)), (vec![x.clone()], vec![]));
    patch_tx(&t, tok, &x, &json!({"allocation_type_id": b}));
    assert_eq!((ids(&a), ids(&b)), (vec![], vec![x.clone()]));
    assert_eq!(
        (spent(&t, tok, &a, 3, 2026), spent(&t, tok, &b, 3, 2026)),
        (0, 900)
    );
    // The unfiltered page still has it.
    assert_eq!(list_month(&t, tok, 3, 2026).len(), 1);
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

/// Nothing else is queued on the socket: a ping's pong comes next.
fn nothing_more(ws: &mut Ws) {
    send(ws, &json!({"type": "ping"}));
    let f = next_event(ws);
    assert_eq!(f["type"], "pong", "an unexpected frame: {f}");
}

#[test]
fn a_linked_expense_that_takes_a_category_over_budget_alerts() {
    let (t, u) = app_and_user("spend-alert@example.com");
    let tok = u.token.as_str();
    let s = t.type_ids(tok, "spending");
    let health = type_id(&t, tok, "health", 0);
    let mut ws = open(&t, &format!("/ws/notifications?token={tok}"));
    assert_eq!(next_json(&mut ws)["type"], "connected");
    set_budget(&t, tok, &s[0], 10_000, 10, 2025);
    set_budget(&t, tok, &s[1], 10_000, 10, 2025);
    set_budget(&t, tok, &health, 100, 10, 2025);

    // One type over its own budget, the category (150 of 200) within: no alert. Unlinked
    // spending never alerts.
    let first = id_of(&create_tx(
        &t,
        tok,
        &linked("expense", "150", "2025-10-03", Some(&s[0])),
    ));
    add_tx(
        &t,
        tok,
        ["expense", "food", "5000", "unlinked", "2025-10-04"],
    );
    nothing_more(&mut ws);
    // 210 of 200: the alert, for the transaction's month.
    create_tx(&t, tok, &linked("expense", "60", "2025-10-04", Some(&s[1])));
    let alert = next_event(&mut ws);
    assert_eq!(alert["type"], "budget_alert", "{alert}");
    assert_eq!(
        (
            alert["category"].clone(),
            alert["month"].clone(),
            alert["year"].clone()
        ),
        (json!("spending"), json!(10), json!(2025))
    );
    assert_eq!(
        (paise(&alert["budget"]), paise(&alert["actual"])),
        (20_000, 21_000)
    );
    nothing_more(&mut ws);

    // A PATCH that moves the 150 into November, whose spending budget is 50: November alerts,
    // October (back to 60 of 200) does not.
    set_budget(&t, tok, &s[2], 5_000, 11, 2025);
    patch_tx(&t, tok, &first, &json!({"transaction_date": "2025-11-02"}));
    let alert = next_event(&mut ws);
    assert_eq!(
        (
            alert["type"].clone(),
            alert["category"].clone(),
            alert["month"].clone()
        ),
        (json!("budget_alert"), json!("spending"), json!(11))
    );
    assert_eq!(
        (paise(&alert["budget"]), paise(&alert["actual"])),
        (5_000, 15_000)
    );
    nothing_more(&mut ws);

    // A PATCH across categories: the 150 moves to health (budget 1) in November; health goes
    // over, spending goes back within its limit.
    set_budget(&t, tok, &health, 100, 11, 2025);
    patch_tx(&t, tok, &first, &json!({"allocation_type_id": health}));
    let alert = next_event(&mut ws);
    assert_eq!(
        (alert["category"].clone(), alert["month"].clone()),
        (json!("health"), json!(11))
    );
    assert_eq!(
        (paise(&alert["budget"]), paise(&alert["actual"])),
        (100, 15_000)
    );
    // Deleting and unlinking only lower spending: no alert.
    delete_tx(&t, tok, &first);
    nothing_more(&mut ws);

    // A POST through the group commit with a key: one alert, and none on its replay.
    let body = linked("expense", "2", "2025-12-01", Some(&health));
    set_budget(&t, tok, &health, 100, 12, 2025);
    assert_eq!(post_with_key(t.http, tok, "alert-key", &body).status, 201);
    let alert = next_event(&mut ws);
    assert_eq!(
        (alert["category"].clone(), alert["month"].clone()),
        (json!("health"), json!(12))
    );
    assert_eq!(post_with_key(t.http, tok, "alert-key", &body).status, 201);
    nothing_more(&mut ws);
}

#[test]
fn the_document_describes_the_link() {
    let t = spawn_app();
    let doc = get(t.http, "/openapi.json").json();
    let schemas = &doc["components"]["schemas"];
    for name in [
        "CreateTransactionRequest",
        "PatchTransactionRequest",
        "TransactionResponse",
    ] {
        let field = &schemas[name]["properties"]["allocation_type_id"];
        assert_eq!(field["type"], json!(["string", "null"]), "{name}: {field}");
    }
    let list = &doc["paths"]["/api/v1/transactions"]["get"];
    let param = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "allocation_type_id")
        .expect("the filter is documented");
    assert_eq!(param["in"], "query");
    let transactions = &doc["paths"]["/api/v1/transactions"];
    let patch = &doc["paths"]["/api/v1/transactions/{id}"]["patch"];
    for op in [&transactions["get"], &transactions["post"], patch] {
        assert!(op["responses"]["404"].is_object(), "{op}");
    }
}

/// `DELETE /allocations/{id}` on a row that holds linked spending removes what the user typed
/// and keeps the spending, which belongs to the linked transactions: they stay editable and
/// deletable, and the invariant holds.
#[test]
fn deleting_an_allocation_keeps_the_spending_of_its_linked_expenses() {
    let (t, u) = app_and_user("spend-alloc-delete@example.com");
    let tok = u.token.as_str();
    let a = type_id(&t, tok, "spending", 1);
    set_budget(&t, tok, &a, 50_000, 3, 2026);
    record_actual(&t, tok, &a, 1_000, None, 3, 2026);
    let x = create_tx(&t, tok, &linked("expense", "120", "2026-03-10", Some(&a)));
    let (figs, row) = figures(&t, tok, &a, 3, 2026);
    assert_eq!(figs, [50_000, 1_000, 12_000, 13_000, 37_000]);
    let row = row.as_str().expect("allocation id").to_string();

    let r = expect(
        &t,
        "DELETE",
        &format!("/api/v1/allocations/{row}"),
        tok,
        None,
        200,
    );
    assert_eq!(r["message"], "Allocation deleted successfully");
    let (figs, kept) = figures(&t, tok, &a, 3, 2026);
    assert_eq!(figs, [0, 0, 12_000, 12_000, -12_000]);
    assert_eq!(
        kept,
        json!(row),
        "the row stays while spending is linked to it"
    );

    // The linked expense still moves the figure, both ways.
    patch_tx(&t, tok, &id_of(&x), &json!({"amount": "20"}));
    assert_eq!(spent(&t, tok, &a, 3, 2026), 2_000);
    delete_tx(&t, tok, &id_of(&x));
    assert_eq!(figures(&t, tok, &a, 3, 2026).0, [0; 5]);

    // A row without spending is removed as before.
    expect(
        &t,
        "DELETE",
        &format!("/api/v1/allocations/{row}"),
        tok,
        None,
        200,
    );
    assert_eq!(figures(&t, tok, &a, 3, 2026).1, Value::Null);
    let gone = call(
        &t,
        "DELETE",
        &format!("/api/v1/allocations/{row}"),
        tok,
        None,
    );
    assert_eq!(gone.status, 404);
}
