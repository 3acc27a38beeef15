//! A first walk through the money API: onboarding, allocations, transactions, monthly budget.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// Registers a user by email and returns the access token.
pub fn user_token(t: &TestApp, email: &str) -> String {
    t.register(email).token
}

fn type_id(t: &TestApp, tok: &str, category: &str, index: usize) -> String {
    t.type_ids(tok, category)[index].clone()
}

#[test]
fn allocations_transactions_and_the_monthly_budget() {
    let t = spawn_app();
    let tok = user_token(&t, "a@example.com");

    let a = get_auth(t.http, "/api/v1/allocations?month=10&year=2025", &tok);
    assert_eq!(a.status, 200, "{}", a.text());
    let a = a.json();
    assert_eq!(a["categories"].as_array().expect("cats").len(), 6);
    assert_eq!(a["target_allocation_percentage"], 90.0);
    assert_eq!(a["categories"][0]["name"], "freedom");
    assert_eq!(
        a["categories"][0]["allocation_types"]
            .as_array()
            .expect("types")
            .len(),
        5
    );
    assert!(a["categories"][0]["allocation_types"][0]["allocation_id"].is_null());

    let mf = type_id(&t, &tok, "spending", 0);
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/allocations/budget",
        Some(&tok),
        &json!({"allocation_type_id": mf, "budget_amount": "1000.50", "month": 10, "year": 2025}),
    );
    assert_eq!(r.json(), json!({"message": "Budget set successfully"}));
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/allocations/actual",
        Some(&tok),
        &json!({"allocation_type_id": mf, "actual_amount": 400, "month": 10, "year": 2025}),
    );
    assert_eq!(
        r.json(),
        json!({"message": "Actual amount recorded successfully"})
    );
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/allocations/actual",
        Some(&tok),
        &json!({"allocation_type_id": mf, "actual_amount": 0.25, "mode": "add", "month": 10, "year": 2025}),
    );
    assert_eq!(r.status, 200);
    let a = get_auth(t.http, "/api/v1/allocations?month=10&year=2025", &tok).json();
    let spending = a["categories"]
        .as_array()
        .expect("cats")
        .iter()
        .find(|c| c["name"] == "spending")
        .expect("s")
        .clone();
    let line = &spending["allocation_types"][0];
    assert_eq!(line["budget_amount"], 1000.5);
    assert_eq!(line["actual_amount"], 400.25);
    assert_eq!(line["difference"], 600.25);
    assert!(line["allocation_id"].is_string());
    assert_eq!(a["total_budget"], 1000.5);

    let s = get_auth(
        t.http,
        "/api/v1/allocations/summary?month=10&year=2025",
        &tok,
    )
    .json();
    assert_eq!(
        s,
        json!({"month": 10, "year": 2025, "total_budget": 1000.5, "total_actual": 400.25,
        "difference": 600.25, "on_track": true, "utilization_percentage": 40.0,
        "total_carry_in": 0, "total_available": 600.25})
    );

    let r = send_json(
        t.http,
        "POST",
        "/api/v1/transactions",
        Some(&tok),
        &json!({"type": "income", "category": "salary", "amount": 50000, "label": "Oct pay", "transaction_date": "2025-10-01"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let tx: Value = r.json();
    assert_eq!(tx["transaction_date"], "2025-10-01T00:00:00Z");
    assert_eq!(
        (tx["month"].clone(), tx["year"].clone()),
        (json!(10), json!(2025))
    );
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/transactions",
        Some(&tok),
        &json!({"type": "expense", "category": "rent", "amount": "15000.75", "label": "Rent", "transaction_date": "2025-10-05T10:00:00Z"}),
    );
    assert_eq!(r.status, 201);
    let b = get_auth(
        t.http,
        "/api/v1/transactions/balance?month=10&year=2025",
        &tok,
    )
    .json();
    assert_eq!(
        b,
        json!({"month": 10, "year": 2025, "current_balance": 34999.25, "total_income": 50000,
        "total_expense": 15000.75, "transaction_count": 2})
    );
    let list = get_auth(t.http, "/api/v1/transactions?month=10&year=2025", &tok).json();
    assert_eq!(list.as_array().expect("array").len(), 2);
    assert_eq!(list[0]["label"], "Rent", "newest first");

    let m = get_auth(t.http, "/api/v1/monthly-budget?month=10&year=2025", &tok).json();
    assert_eq!(m["current_balance"], 34999.25);
    let cats = m["categories"].as_array().expect("cats");
    assert_eq!(cats.len(), 6);
    let sp = cats
        .iter()
        .find(|c| c["name"] == "spending")
        .expect("spending");
    // 50 % of 34999.25 = 17499.625 → 17499.62 (half to even)
    assert_eq!(sp["allocated_amount"], 17499.62);
    assert_eq!(sp["actual_invested"], 400.25);
    assert_eq!(sp["difference"], -17099.37);
    assert_eq!(sp["status"], "under");

    let empty = get_auth(t.http, "/api/v1/monthly-budget?month=11&year=2025", &tok).json();
    assert_eq!(empty["categories"], json!([]));
    assert_eq!(empty["message"], "No transactions yet for this month");

    let id = tx["id"].as_str().expect("id");
    let p = send_json(
        t.http,
        "PATCH",
        &format!("/api/v1/transactions/{id}"),
        Some(&tok),
        &json!({"transaction_date": "2025-11-02"}),
    );
    assert_eq!(p.status, 200, "{}", p.text());
    assert_eq!(p.json()["month"], 11);
    let oct = get_auth(
        t.http,
        "/api/v1/transactions/balance?month=10&year=2025",
        &tok,
    )
    .json();
    assert_eq!(oct["total_income"], 0);
    let nov = get_auth(
        t.http,
        "/api/v1/transactions/balance?month=11&year=2025",
        &tok,
    )
    .json();
    assert_eq!(nov["total_income"], 50000);
    let d = request(
        t.http,
        "DELETE",
        &format!("/api/v1/transactions/{id}"),
        &[("Authorization", &format!("Bearer {tok}"))],
        None,
    );
    assert_eq!(
        d.json(),
        json!({"message": "Transaction deleted successfully", "transaction_id": id})
    );
    let nov = get_auth(
        t.http,
        "/api/v1/transactions/balance?month=11&year=2025",
        &tok,
    )
    .json();
    assert_eq!(nov["transaction_count"], 0);

    let other = user_token(&t, "b@example.com");
    let alloc_id = line["allocation_id"].as_str().expect("alloc id");
    let r = send_json(
        t.http,
        "PUT",
        &format!("/api/v1/allocations/{alloc_id}"),
        Some(&other),
        &json!({"budget_amount": 1}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["detail"], "Allocation not found");
    let r = request(
        t.http,
        "PUT",
        &format!("/api/v1/allocations/{alloc_id}?budget_amount=2000&notes=hi"),
        &[("Authorization", &format!("Bearer {tok}"))],
        None,
    );
    assert_eq!(
        r.json(),
        json!({"message": "Allocation updated successfully"})
    );

    let h = get_auth(
        t.http,
        "/api/v1/allocations/history?months=3&month=11&year=2025",
        &tok,
    )
    .json();
    assert_eq!(h["history"].as_array().expect("h").len(), 3);
    assert_eq!(h["history"][0]["month"], 11);
    assert_eq!(h["history"][1]["total_budget"], 2000);

    let onb = send_json(
        t.http,
        "POST",
        "/api/v1/onboarding/submit",
        Some(&tok),
        &json!({"age_range": "25-34", "risk_tolerance": "moderate", "retirement_planning": true}),
    );
    assert_eq!(onb.status, 200, "{}", onb.text());
    let prof = get_auth(t.http, "/api/v1/onboarding/profile", &tok).json();
    assert_eq!(prof["risk_tolerance"], "moderate");
    assert_eq!(prof["onboarding_completed"], true);
    let exp = get_auth(t.http, "/api/v1/users/me/export", &tok).json();
    assert_eq!(exp["transactions"].as_array().expect("tx").len(), 1);
    assert!(exp["users"][0].get("password_hash").is_none());
}

#[test]
fn a_retried_add_with_its_idempotency_key_counts_once() {
    let t = spawn_app();
    let tok = user_token(&t, "k@example.com");
    let ty = type_id(&t, &tok, "health", 0);
    let add = json!({"allocation_type_id": ty, "actual_amount": 100, "mode": "add", "month": 10, "year": 2025});
    let bearer = format!("Bearer {tok}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", "add-1"),
    ];
    let body = add.to_string();
    let first = request(
        t.http,
        "POST",
        "/api/v1/allocations/actual",
        &headers,
        Some(body.as_bytes()),
    );
    let again = request(
        t.http,
        "POST",
        "/api/v1/allocations/actual",
        &headers,
        Some(body.as_bytes()),
    );
    assert_eq!(first.status, 200);
    assert_eq!(
        (again.status, again.body.clone()),
        (first.status, first.body.clone())
    );
    let a = get_auth(t.http, "/api/v1/allocations?month=10&year=2025", &tok).json();
    let health = a["categories"]
        .as_array()
        .expect("cats")
        .iter()
        .find(|c| c["name"] == "health")
        .expect("h")
        .clone();
    assert_eq!(health["total_actual"], 100, "counted once");
    let other = json!({"allocation_type_id": ty, "actual_amount": 5, "mode": "add", "month": 10, "year": 2025}).to_string();
    let reused = request(
        t.http,
        "POST",
        "/api/v1/allocations/actual",
        &headers,
        Some(other.as_bytes()),
    );
    assert_eq!(reused.status, 422);
    assert_eq!(reused.json()["code"], "idempotency_key_reused");
}
