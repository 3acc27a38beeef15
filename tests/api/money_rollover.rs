//! "Rollover for allocation types" of shared/API.md, black box over HTTP: the settings routes,
//! the carry computed when a month is read (the contract's worked example, caps, `both`
//! overspending, a later setting, `none`), no stale figure after a write, routing, bad input,
//! the budget_alert limit and the export.

use crate::{common, money_support};

use common::*;
use money_support::*;
use serde_json::{Value, json};

const ROLLOVER: &str = "/api/v1/allocations/rollover";

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// PUT /allocations/rollover that must answer 200; its body.
fn put_rollover(t: &TestApp, tok: &str, body: Value) -> Value {
    expect(t, "PUT", ROLLOVER, tok, Some(&body), 200)
}

fn settings(t: &TestApp, tok: &str) -> Value {
    get_ok(t, ROLLOVER, tok)
}

/// A type's line of the month's summary, found by id.
fn line(t: &TestApp, tok: &str, type_id: &str, month: u32, year: i32) -> Value {
    let s = allocations(t, tok, month, year);
    arr(&s["categories"])
        .iter()
        .flat_map(|c| arr(&c["allocation_types"]))
        .find(|ty| ty["id"] == type_id)
        .cloned()
        .unwrap_or_else(|| panic!("no type {type_id}"))
}

/// (rollover, carry_in, available) of a type's line, amounts in paise.
fn carry(v: &Value) -> (String, i64, i64) {
    (
        v["rollover"].as_str().expect("rollover").to_string(),
        paise(&v["carry_in"]),
        paise(&v["available"]),
    )
}

/// (rollover, carry_in, available) of a type in a month of 2025.
fn at(t: &TestApp, tok: &str, type_id: &str, month: u32) -> (String, i64, i64) {
    carry(&line(t, tok, type_id, month, 2025))
}

fn rolled(mode: &str, carry_in: i64, available: i64) -> (String, i64, i64) {
    (mode.to_string(), carry_in, available)
}

/// Budget `p` for `type_id` in each of the months of 2025 given.
fn budget_months(t: &TestApp, tok: &str, type_id: &str, p: i64, months: &[u32]) {
    for m in months {
        set_budget(t, tok, type_id, p, *m, 2025);
    }
}

#[test]
fn the_contracts_example_surplus_then_both() {
    let (t, u) = app_and_user("rollover-example@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "spending", 2);
    budget_months(&t, tok, &ty, 10_000, &[1, 2]);
    let body = json!({"allocation_type_id": ty, "mode": "surplus", "month": 1, "year": 2025});
    assert_eq!(
        put_rollover(&t, tok, body),
        json!({"message": "Rollover updated", "allocation_type_id": ty, "mode": "surplus",
               "cap": null, "from_month": 1, "from_year": 2025})
    );
    record_actual(&t, tok, &ty, 7_500, None, 1, 2025);

    // January is the setting's first month: nothing carried in.
    assert_eq!(at(&t, tok, &ty, 1), rolled("surplus", 0, 2_500));
    // February: 25 carried, 125 available with nothing spent; the old fields are unchanged.
    let feb = line(&t, tok, &ty, 2, 2025);
    assert_eq!(carry(&feb), rolled("surplus", 2_500, 12_500));
    assert_eq!(
        [
            paise(&feb["budget_amount"]),
            paise(&feb["actual_amount"]),
            paise(&feb["difference"])
        ],
        [10_000, 0, 10_000]
    );
    let s = allocations(&t, tok, 2, 2025);
    let spending = category(&s, "spending");
    assert_eq!(
        [
            paise(&spending["total_carry_in"]),
            paise(&spending["total_available"])
        ],
        [2_500, 12_500]
    );
    assert_eq!(
        [
            paise(&s["total_budget"]),
            paise(&s["total_carry_in"]),
            paise(&s["total_available"])
        ],
        [10_000, 2_500, 12_500]
    );
    // Every other category and type: no rollover, nothing carried.
    for c in arr(&s["categories"])
        .iter()
        .filter(|c| c["name"] != "spending")
    {
        assert_eq!(
            [paise(&c["total_carry_in"]), paise(&c["total_available"])],
            [0, 0]
        );
    }
    let other = type_id(&t, tok, "spending", 0);
    assert_eq!(at(&t, tok, &other, 2), rolled("none", 0, 0));
    // The category route and the summary route say the same.
    let id = spending["id"].as_str().expect("category id");
    let one = get_ok(
        &t,
        &format!("/api/v1/allocations/{id}?month=2&year=2025"),
        tok,
    );
    assert_eq!(&one, spending);
    let summary = get_ok(&t, "/api/v1/allocations/summary?month=2&year=2025", tok);
    assert_eq!(
        summary,
        json!({"month": 2, "year": 2025, "total_budget": 100, "total_actual": 0,
               "difference": 100, "on_track": true, "utilization_percentage": 0.0,
               "total_carry_in": 25, "total_available": 125})
    );

    // 120 spent in January instead: nothing carries under surplus...
    record_actual(&t, tok, &ty, 12_000, None, 1, 2025);
    assert_eq!(at(&t, tok, &ty, 2), rolled("surplus", 0, 10_000));
    // ...and −20 under both (a setting for the same month replaces the old one).
    let body = json!({"allocation_type_id": ty, "mode": "both", "month": 1, "year": 2025});
    put_rollover(&t, tok, body);
    assert_eq!(at(&t, tok, &ty, 2), rolled("both", -2_000, 8_000));
    let summary = get_ok(&t, "/api/v1/allocations/summary?month=2&year=2025", tok);
    assert_eq!(
        [
            paise(&summary["total_carry_in"]),
            paise(&summary["total_available"])
        ],
        [-2_000, 8_000]
    );
    assert_eq!(
        settings(&t, tok),
        json!({"settings": [{"allocation_type_id": ty, "mode": "both", "cap": null,
                             "from_month": 1, "from_year": 2025}]})
    );
}

#[test]
fn an_edit_to_a_past_month_shows_at_once_in_later_months() {
    let (t, u) = app_and_user("rollover-edit@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "freedom", 1);
    budget_months(&t, tok, &ty, 10_000, &[1, 2, 3, 4]);
    let body = json!({"allocation_type_id": ty, "mode": "surplus", "month": 1, "year": 2025});
    put_rollover(&t, tok, body);
    // Read twice, so April's view is cached before the edits.
    for _ in 0..2 {
        assert_eq!(at(&t, tok, &ty, 4), rolled("surplus", 30_000, 40_000));
    }
    // Each write is read back at once: never the cached figure from before it.
    record_actual(&t, tok, &ty, 5_000, None, 1, 2025);
    assert_eq!(at(&t, tok, &ty, 4), rolled("surplus", 25_000, 35_000));
    set_budget(&t, tok, &ty, 0, 2, 2025);
    assert_eq!(at(&t, tok, &ty, 4), rolled("surplus", 15_000, 25_000));
    let jan = line(&t, tok, &ty, 1, 2025)["allocation_id"]
        .as_str()
        .expect("id")
        .to_string();
    expect(
        &t,
        "PUT",
        &format!("/api/v1/allocations/{jan}?actual_amount=100"),
        tok,
        None,
        200,
    );
    assert_eq!(at(&t, tok, &ty, 4), rolled("surplus", 10_000, 20_000));
    // A deleted month counts as budget 0, actual 0: the chain goes on without it.
    expect(
        &t,
        "DELETE",
        &format!("/api/v1/allocations/{jan}"),
        tok,
        None,
        200,
    );
    assert_eq!(at(&t, tok, &ty, 4), rolled("surplus", 10_000, 20_000));
    let summary = get_ok(&t, "/api/v1/allocations/summary?month=4&year=2025", tok);
    assert_eq!(paise(&summary["total_carry_in"]), 10_000);
}

#[test]
fn a_later_setting_takes_over_and_none_stops_the_carry() {
    let (t, u) = app_and_user("rollover-later@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "learning", 0);
    budget_months(&t, tok, &ty, 10_000, &[1, 2, 3, 4, 5, 6]);
    record_actual(&t, tok, &ty, 25_000, None, 3, 2025);
    for (mode, month) in [("surplus", 1), ("both", 3), ("none", 5)] {
        let body = json!({"allocation_type_id": ty, "mode": mode, "month": month, "year": 2025});
        put_rollover(&t, tok, body);
    }
    let months: Vec<(String, i64, i64)> = (1..=6).map(|m| at(&t, tok, &ty, m)).collect();
    assert_eq!(
        months,
        [
            rolled("surplus", 0, 10_000),
            rolled("surplus", 10_000, 20_000),
            // `both` starts its own chain in March: 100 − 250 = −150 carries into April.
            rolled("both", 0, -15_000),
            rolled("both", -15_000, -5_000),
            rolled("none", 0, 10_000),
            rolled("none", 0, 10_000),
        ]
    );
    // Before any setting: `none`.
    assert_eq!(carry(&line(&t, tok, &ty, 12, 2024)), rolled("none", 0, 0));
}

#[test]
fn a_cap_bounds_only_the_positive_carry() {
    let (t, u) = app_and_user("rollover-cap@example.com");
    let tok = &u.token;
    let [a, b] = [0, 1].map(|i| type_id(&t, tok, "health", i));
    for ty in [&a, &b] {
        budget_months(&t, tok, ty, 10_000, &[1, 2, 3]);
    }
    let body = json!({"allocation_type_id": a, "mode": "surplus", "cap": "30.50", "month": 1, "year": 2025});
    let r = put_rollover(&t, tok, body);
    assert_eq!((&r["mode"], &r["cap"]), (&json!("surplus"), &json!(30.5)));
    let body =
        json!({"allocation_type_id": b, "mode": "both", "cap": 30, "month": 1, "year": 2025});
    put_rollover(&t, tok, body);
    // a: nothing spent, 100 a month, but at most 30.50 carries.
    assert_eq!(at(&t, tok, &a, 3), rolled("surplus", 3_050, 13_050));
    // b: 170 spent in January, −70 carries whole; February ends at 100 − 70 = 30 → 30.
    record_actual(&t, tok, &b, 17_000, None, 1, 2025);
    assert_eq!(at(&t, tok, &b, 2), rolled("both", -7_000, 3_000));
    assert_eq!(at(&t, tok, &b, 3), rolled("both", 3_000, 13_000));
    let health = category(&allocations(&t, tok, 3, 2025), "health").clone();
    assert_eq!(
        [
            paise(&health["total_carry_in"]),
            paise(&health["total_available"])
        ],
        [6_050, 26_050]
    );
}

#[test]
fn settings_are_listed_in_catalogue_order_then_by_month() {
    let (t, u) = app_and_user("rollover-list@example.com");
    let other = register(&t, "rollover-list-other@example.com");
    let tok = &u.token;
    assert_eq!(settings(&t, tok), json!({"settings": []}));
    let freedom0 = type_id(&t, tok, "freedom", 0);
    let spending3 = type_id(&t, tok, "spending", 3);
    let contribution0 = type_id(&t, tok, "contribution", 0);
    // Written out of order.
    for (ty, mode, month, year) in [
        (&contribution0, "both", 2, 2025),
        (&spending3, "surplus", 6, 2025),
        (&freedom0, "none", 3, 2025),
        (&spending3, "both", 1, 2025),
        (&freedom0, "surplus", 11, 2024),
    ] {
        let body = json!({"allocation_type_id": ty, "mode": mode, "month": month, "year": year});
        put_rollover(&t, tok, body);
    }
    // Replacing March's `none` for freedom keeps one setting for that month.
    let body = json!({"allocation_type_id": freedom0, "mode": "surplus", "cap": 5, "month": 3, "year": 2025});
    put_rollover(&t, tok, body);
    let s = |ty: &str, mode: &str, cap: Value, month: u32, year: i32| json!({"allocation_type_id": ty, "mode": mode, "cap": cap, "from_month": month, "from_year": year});
    assert_eq!(
        settings(&t, tok),
        json!({"settings": [
            s(&freedom0, "surplus", Value::Null, 11, 2024),
            s(&freedom0, "surplus", json!(5), 3, 2025),
            s(&spending3, "both", Value::Null, 1, 2025),
            s(&spending3, "surplus", Value::Null, 6, 2025),
            s(&contribution0, "both", Value::Null, 2, 2025),
        ]})
    );
    // Another user sees none of them.
    assert_eq!(settings(&t, &other.token), json!({"settings": []}));

    // Without month and year, the setting starts this month (the server's clock, UTC).
    let now = t.app().clock.now().to_zoned(jiff::tz::TimeZone::UTC);
    let body = json!({"allocation_type_id": contribution0, "mode": "surplus"});
    let r = put_rollover(&t, tok, body);
    assert_eq!(
        (&r["from_month"], &r["from_year"]),
        (&json!(now.month()), &json!(now.year()))
    );
}

#[test]
fn the_rollover_routes_win_over_the_id_routes() {
    let (t, u) = app_and_user("rollover-routes@example.com");
    let tok = &u.token;
    // GET /allocations/{category_id} would answer 404 category_not_found for "rollover".
    assert_eq!(settings(&t, tok), json!({"settings": []}));
    assert_eq!(
        get_ok(&t, &format!("{ROLLOVER}/"), tok),
        json!({"settings": []})
    );
    // PUT /allocations/{allocation_id} would answer 404 "Allocation not found".
    let ty = type_id(&t, tok, "entertainment", 0);
    let r = put_rollover(
        &t,
        tok,
        json!({"allocation_type_id": ty, "mode": "surplus", "month": 5, "year": 2025}),
    );
    assert_eq!(r["message"], "Rollover updated");
    // The id routes still serve every other segment.
    set_budget(&t, tok, &ty, 1_000, 5, 2025);
    let ent = category(&allocations(&t, tok, 5, 2025), "entertainment").clone();
    let id = ent["id"].as_str().expect("id");
    let one = get_ok(
        &t,
        &format!("/api/v1/allocations/{id}?month=5&year=2025"),
        tok,
    );
    assert_eq!(one, ent);
    let row = ent["allocation_types"][0]["allocation_id"]
        .as_str()
        .expect("row")
        .to_string();
    expect(
        &t,
        "PUT",
        &format!("/api/v1/allocations/{row}?budget_amount=20"),
        tok,
        None,
        200,
    );
    // No bearer: 401, before anything else.
    let r = t.call("GET", ROLLOVER).send();
    assert_eq!(r.status, 401);
    let r = t
        .call("PUT", ROLLOVER)
        .json(&json!({"allocation_type_id": ty, "mode": "surplus"}))
        .send();
    assert_eq!(r.status, 401);
    // DELETE is not a rollover route: it reaches the id route, which finds no such row.
    let r = call(&t, "DELETE", ROLLOVER, tok, None);
    assert_error(&r, 404, "allocation_not_found", "Allocation not found");
    assert_eq!(arr(&settings(&t, tok)["settings"]).len(), 1);
}

#[test]
fn bad_rollover_input_is_refused_and_changes_nothing() {
    let (t, u) = app_and_user("rollover-bad@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "spending", 1);
    budget_months(&t, tok, &ty, 10_000, &[1, 2]);
    put_rollover(
        &t,
        tok,
        json!({"allocation_type_id": ty, "mode": "surplus", "cap": 40, "month": 1, "year": 2025}),
    );
    let before = (
        settings(&t, tok),
        export(&t, tok)["allocation_rollover"].clone(),
        allocations(&t, tok, 2, 2025),
    );
    assert_eq!(arr(&before.1).len(), 1);

    let unknown = "00000000-0000-4000-8000-000000000000";
    let r = call(
        &t,
        "PUT",
        ROLLOVER,
        tok,
        Some(&json!({"allocation_type_id": unknown, "mode": "both", "month": 1, "year": 2025})),
    );
    assert_error(
        &r,
        404,
        "allocation_type_not_found",
        &format!("Allocation type with id '{unknown}' not found"),
    );

    let base = json!({"allocation_type_id": ty, "mode": "both", "month": 1, "year": 2025});
    let with = |field: &str, v: Value| {
        let mut b = base.clone();
        b[field] = v;
        b
    };
    let without = |field: &str| {
        let mut b = base.clone();
        b.as_object_mut().expect("object").remove(field);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("mode", json!("weekly")), "mode"),
        (with("mode", json!("SURPLUS")), "mode"),
        (with("mode", json!(1)), "mode"),
        (without("mode"), "mode"),
        (with("cap", json!(-1)), "cap"),
        (with("cap", json!("-0.01")), "cap"),
        (with("cap", json!(1.234)), "cap"),
        (with("cap", json!("abc")), "cap"),
        (with("cap", json!(true)), "cap"),
        (with("cap", json!(100_000_000_000_000i64)), "cap"),
        (
            json!({"allocation_type_id": ty, "mode": "none", "cap": 10, "month": 1, "year": 2025}),
            "cap",
        ),
        (
            json!({"allocation_type_id": ty, "mode": "none", "cap": 0, "month": 1, "year": 2025}),
            "cap",
        ),
        (with("month", json!(13)), "month"),
        (with("month", json!(0)), "month"),
        (with("month", json!("x")), "month"),
        (with("month", json!(1.5)), "month"),
        (with("year", json!(2019)), "year"),
        (with("year", json!(2101)), "year"),
        (with("allocation_type_id", json!(5)), "allocation_type_id"),
        (with("allocation_type_id", json!("")), "allocation_type_id"),
        (without("allocation_type_id"), "allocation_type_id"),
    ];
    for (body, field) in &cases {
        let r = call(&t, "PUT", ROLLOVER, tok, Some(body));
        assert_422_names(&r, field);
    }
    // Not an object, and not JSON at all.
    let r = call(&t, "PUT", ROLLOVER, tok, Some(&json!([base])));
    assert_eq!(r.status, 422, "{}", r.text());
    let r = t.call("PUT", ROLLOVER).auth(tok).body(b"{mode").send();
    assert_eq!(r.status, 422, "{}", r.text());

    let after = (
        settings(&t, tok),
        export(&t, tok)["allocation_rollover"].clone(),
        allocations(&t, tok, 2, 2025),
    );
    assert_eq!(after, before);
}

#[test]
fn the_budget_alert_limit_includes_carry_in() {
    let (t, u) = app_and_user("rollover-alert@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "entertainment", 1);
    budget_months(&t, tok, &ty, 10_000, &[1, 2]);
    put_rollover(
        &t,
        tok,
        json!({"allocation_type_id": ty, "mode": "surplus", "month": 1, "year": 2025}),
    );
    let rx = t.app().events.subscribe(&u.id);
    let drain = crate::money_api::drain;
    // February: budget 100 + 100 carried from an unspent January = a limit of 200.
    record_actual(&t, tok, &ty, 15_000, None, 2, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());
    record_actual(&t, tok, &ty, 6_000, Some("add"), 2, 2025);
    let got = drain(&rx);
    assert_eq!(got.len(), 1, "{got:?}");
    let alert = &got[0];
    assert_eq!(
        [
            &alert["type"],
            &alert["category"],
            &alert["month"],
            &alert["budget"],
            &alert["actual"]
        ],
        [
            &json!("budget_alert"),
            &json!("entertainment"),
            &json!(2),
            &json!(200),
            &json!(210)
        ]
    );
}

#[test]
fn the_export_holds_the_settings_and_account_deletion_removes_them() {
    let (t, u) = app_and_user("rollover-export@example.com");
    let other = register(&t, "rollover-export-other@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "freedom", 2);
    for user in [&u, &other] {
        put_rollover(
            &t,
            &user.token,
            json!({"allocation_type_id": ty, "mode": "both", "cap": "12.5", "month": 7, "year": 2025}),
        );
    }
    let rows = export(&t, tok)["allocation_rollover"].clone();
    let rows = arr(&rows);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        [
            &row["user_id"],
            &row["allocation_type_id"],
            &row["mode"],
            &row["cap"],
            &row["month"],
            &row["year"]
        ],
        [
            &json!(u.id),
            &json!(ty),
            &json!("both"),
            &json!(12.5),
            &json!(7),
            &json!(2025)
        ]
    );
    assert_eq!(count_rows(&t, "allocation_rollover", "user_id", &u.id), 1);
    let r = call(&t, "DELETE", "/api/v1/users/me", tok, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count_rows(&t, "allocation_rollover", "user_id", &u.id), 0);
    assert_eq!(
        count_rows(&t, "allocation_rollover", "user_id", &other.id),
        1
    );
}
