//! The money routes of shared/API.md, black box over HTTP: allocations, the monthly budget,
//! transactions, Idempotency-Key, the view cache, budget alerts, onboarding, preferences,
//! export and account deletion. Values, field names, order and messages, not just statuses.

use crate::{common, money_support};

use std::sync::Barrier;
use std::time::Duration;

use common::*;
use money_support::*;
use serde_json::{Value, json};

/// The catalogue sql/0002_catalog.sql seeds, as the contract gives it (a copy kept with the
/// tests, so a clone of this repository alone has it).
const CATALOG: &str = include_str!("../fixtures/catalog.json");

const CATEGORY_FIELDS: &[&str] = &[
    "id",
    "name",
    "label",
    "icon",
    "icon_color",
    "description",
    "target_percentage",
    "sort_order",
    "total_budget",
    "total_actual",
    "total_difference",
    "allocation_types",
    "total_carry_in",
    "total_available",
];

const TYPE_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "purpose",
    "sort_order",
    "budget_amount",
    "recorded_amount",
    "spent_amount",
    "actual_amount",
    "difference",
    "allocation_id",
    "rollover",
    "carry_in",
    "available",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// The object has exactly these (space-separated) fields.
fn assert_keys(v: &Value, names: &str) {
    let want: Vec<&str> = names.split_whitespace().collect();
    assert_eq!(keys(v), sorted(&want), "{v}");
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Several amounts of one object, in paise.
fn amounts<const N: usize>(v: &Value, names: [&str; N]) -> [i64; N] {
    names.map(|k| paise(&v[k]))
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

/// The server clock's month in a time zone.
fn clock_month(t: &TestApp, tz: &str) -> (u32, i32) {
    let z = t
        .app()
        .clock
        .now()
        .to_zoned(jiff::tz::TimeZone::get(tz).expect("time zone"));
    (z.month() as u32, i32::from(z.year()))
}

fn is_iso_utc(s: &str) -> bool {
    s.len() == 20 && s.ends_with('Z') && s.parse::<jiff::Timestamp>().is_ok()
}

// ---------------------------------------------------------------------------------------------
// Allocations
// ---------------------------------------------------------------------------------------------

#[test]
fn allocations_list_the_catalogue_in_order_with_every_field() {
    let (t, u) = app_and_user("catalogue@example.com");
    let s = allocations(&t, &u.token, 10, 2025);
    assert_keys(
        &s,
        "month year total_budget total_actual total_difference \
         target_allocation_percentage categories total_carry_in total_available",
    );
    assert_eq!((&s["month"], &s["year"]), (&json!(10), &json!(2025)));
    // The six targets add up to 90 %, kept as the catalogue has them.
    assert_eq!(s["target_allocation_percentage"].as_f64(), Some(90.0));
    for k in ["total_budget", "total_actual", "total_difference"] {
        assert_eq!(paise(&s[k]), 0, "{k}");
    }
    let cats = arr(&s["categories"]);
    let names: Vec<&str> = cats
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "freedom",
            "health",
            "spending",
            "learning",
            "entertainment",
            "contribution"
        ]
    );
    let orders: Vec<i64> = cats
        .iter()
        .map(|c| c["sort_order"].as_i64().expect("order"))
        .collect();
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "{orders:?}");
    let targets: Vec<f64> = cats
        .iter()
        .map(|c| c["target_percentage"].as_f64().expect("target"))
        .collect();
    assert_eq!(targets, [10.0, 10.0, 50.0, 10.0, 5.0, 5.0]);

    let mut type_ids = std::collections::HashSet::new();
    for c in cats {
        assert_eq!(keys(c), sorted(CATEGORY_FIELDS), "{}", c["name"]);
        for k in ["total_budget", "total_actual", "total_difference"] {
            assert_eq!(paise(&c[k]), 0);
        }
        let types = arr(&c["allocation_types"]);
        let orders: Vec<i64> = types
            .iter()
            .map(|x| x["sort_order"].as_i64().expect("order"))
            .collect();
        assert!(orders.windows(2).all(|w| w[0] < w[1]), "{orders:?}");
        for ty in types {
            assert_eq!(keys(ty), sorted(TYPE_FIELDS));
            assert_eq!(paise(&ty["budget_amount"]), 0);
            assert_eq!(paise(&ty["actual_amount"]), 0);
            assert_eq!(paise(&ty["difference"]), 0);
            assert!(ty["allocation_id"].is_null());
            assert!(type_ids.insert(ty["id"].as_str().expect("id").to_string()));
        }
    }
    assert_eq!(type_ids.len(), 34);

    let want: Value = serde_json::from_str(CATALOG).expect("catalog.json parses");
    let want = arr(&want["categories"]);
    assert_eq!(want.len(), cats.len());
    for (got, want) in cats.iter().zip(want) {
        for k in [
            "name",
            "label",
            "icon",
            "icon_color",
            "description",
            "sort_order",
        ] {
            assert_eq!(got[k], want[k], "{k} of {}", want["name"]);
        }
        assert_eq!(
            got["target_percentage"].as_f64(),
            want["target_percentage"].as_f64()
        );
        let (gt, wt) = (
            arr(&got["allocation_types"]),
            arr(&want["allocation_types"]),
        );
        assert_eq!(gt.len(), wt.len(), "types of {}", want["name"]);
        for (g, w) in gt.iter().zip(wt) {
            for k in ["name", "description", "purpose", "sort_order"] {
                assert_eq!(g[k], w[k], "{k} of type {}", w["name"]);
            }
        }
    }
}

#[test]
fn allocation_rows_show_budget_actual_and_difference_in_their_month_only() {
    let (t, u) = app_and_user("rows@example.com");
    let tok = &u.token;
    let mf = type_id(&t, tok, "freedom", 1);
    let hosp = type_id(&t, tok, "health", 2);
    set_budget(&t, tok, &mf, 100_050, 10, 2021);
    record_actual(&t, tok, &mf, 40_025, None, 10, 2021);
    set_budget(&t, tok, &hosp, 5_000, 10, 2021);
    record_actual(&t, tok, &hosp, 7_525, None, 10, 2021);

    let s = allocations(&t, tok, 10, 2021);
    let freedom = category(&s, "freedom");
    let line = &freedom["allocation_types"][1];
    assert_eq!(line["id"], mf.as_str());
    assert_eq!(line["budget_amount"], json!(1000.5));
    assert_eq!(line["actual_amount"], json!(400.25));
    assert_eq!(line["difference"], json!(600.25));
    assert!(
        line["allocation_id"]
            .as_str()
            .is_some_and(|s| s.len() == 36)
    );
    let untouched = &freedom["allocation_types"][0];
    assert_eq!(paise(&untouched["budget_amount"]), 0);
    assert!(untouched["allocation_id"].is_null());
    assert_eq!(
        amounts(
            freedom,
            ["total_budget", "total_actual", "total_difference"]
        ),
        [100_050, 40_025, 60_025]
    );
    let health = category(&s, "health");
    let h = &health["allocation_types"][2];
    assert_eq!(
        amounts(h, ["budget_amount", "actual_amount", "difference"]),
        [5_000, 7_525, -2_525]
    );
    assert_eq!(h["difference"], json!(-25.25));
    assert_eq!(paise(&health["total_difference"]), -2_525);
    assert_eq!(paise(&category(&s, "spending")["total_budget"]), 0);
    assert_eq!(
        amounts(&s, ["total_budget", "total_actual", "total_difference"]),
        [105_050, 47_550, 57_500]
    );

    // November of the same year has nothing.
    let nov = allocations(&t, tok, 11, 2021);
    assert_eq!(paise(&nov["total_budget"]), 0);
    assert_eq!(paise(&nov["total_actual"]), 0);
    for c in arr(&nov["categories"]) {
        for ty in arr(&c["allocation_types"]) {
            assert!(ty["allocation_id"].is_null());
        }
    }

    // No month/year: the current month of the server clock (APP_TIMEZONE is UTC here).
    let (m, y) = clock_month(&t, "UTC");
    let d = get_ok(&t, "/api/v1/allocations", tok);
    assert_eq!((&d["month"], &d["year"]), (&json!(m), &json!(y)));
    let only_month = get_ok(&t, "/api/v1/allocations?month=10", tok);
    assert_eq!(
        (&only_month["month"], &only_month["year"]),
        (&json!(10), &json!(y))
    );
    let body = json!({"allocation_type_id": mf, "budget_amount": 7});
    expect(&t, "POST", BUDGET, tok, Some(&body), 200);
    let now = allocations(&t, tok, m, y);
    assert_eq!(
        paise(&category(&now, "freedom")["allocation_types"][1]["budget_amount"]),
        700
    );
    let oct = allocations(&t, tok, 10, 2021);
    assert_eq!(
        paise(&category(&oct, "freedom")["allocation_types"][1]["budget_amount"]),
        100_050
    );
}

#[test]
fn summary_reports_on_track_and_utilization_rounded_to_two_decimals() {
    let (t, u) = app_and_user("summary@example.com");
    let tok = &u.token;
    let summary = |m: u32| {
        get_ok(
            &t,
            &format!("/api/v1/allocations/summary?month={m}&year=2024"),
            tok,
        )
    };

    let empty = summary(3);
    assert_keys(
        &empty,
        "month year total_budget total_actual difference on_track utilization_percentage \
         total_carry_in total_available",
    );
    assert_eq!((&empty["month"], &empty["year"]), (&json!(3), &json!(2024)));
    assert_eq!(empty["on_track"], true);
    assert_eq!(empty["utilization_percentage"].as_f64(), Some(0.0));

    // Budget 3 over two categories, actual 1 in a third: 1 / 3 → 33.33.
    let (a, b, c) = (
        type_id(&t, tok, "freedom", 0),
        type_id(&t, tok, "spending", 3),
        type_id(&t, tok, "learning", 0),
    );
    set_budget(&t, tok, &a, 100, 4, 2024);
    set_budget(&t, tok, &b, 200, 4, 2024);
    record_actual(&t, tok, &c, 100, None, 4, 2024);
    let s = summary(4);
    assert_eq!(paise(&s["total_budget"]), 300);
    assert_eq!(paise(&s["total_actual"]), 100);
    assert_eq!(paise(&s["difference"]), 200);
    assert_eq!(s["on_track"], true);
    assert_eq!(s["utilization_percentage"].as_f64(), Some(33.33));

    record_actual(&t, tok, &c, 200, None, 4, 2024);
    assert_eq!(summary(4)["utilization_percentage"].as_f64(), Some(66.67));
    record_actual(&t, tok, &c, 300, None, 4, 2024);
    let exact = summary(4);
    assert_eq!(
        exact["on_track"], true,
        "actual equal to budget is on track"
    );
    assert_eq!(exact["utilization_percentage"].as_f64(), Some(100.0));
    record_actual(&t, tok, &c, 400, None, 4, 2024);
    let over = summary(4);
    assert_eq!(over["on_track"], false);
    assert_eq!(paise(&over["difference"]), -100);
    assert_eq!(over["utilization_percentage"].as_f64(), Some(133.33));

    // No budget at all: 0 %, and spending without a budget is not on track.
    record_actual(&t, tok, &c, 500, None, 5, 2024);
    let no_budget = summary(5);
    assert_eq!(no_budget["utilization_percentage"].as_f64(), Some(0.0));
    assert_eq!(no_budget["on_track"], false);
}

#[test]
fn history_is_newest_first_with_empty_months_and_crosses_years() {
    let (t, u) = app_and_user("history@example.com");
    let tok = &u.token;
    for bad in ["0", "25", "-1", "abc", "1.5"] {
        let r = call(
            &t,
            "GET",
            &format!("/api/v1/allocations/history?months={bad}"),
            tok,
            None,
        );
        assert_422_names(&r, "months");
    }
    let ty = type_id(&t, tok, "spending", 0);
    set_budget(&t, tok, &ty, 10_000, 1, 2026);
    record_actual(&t, tok, &ty, 4_000, None, 1, 2026);
    set_budget(&t, tok, &ty, 5_000, 12, 2025);
    record_actual(&t, tok, &ty, 6_000, None, 12, 2025);
    set_budget(&t, tok, &ty, 1_000, 10, 2025);

    let h = get_ok(
        &t,
        "/api/v1/allocations/history?month=2&year=2026&months=4",
        tok,
    );
    assert_keys(&h, "history");
    let months: Vec<(i64, i64)> = arr(&h["history"])
        .iter()
        .map(|e| {
            assert_keys(e, "month year total_budget total_actual difference");
            (
                e["year"].as_i64().expect("y"),
                e["month"].as_i64().expect("m"),
            )
        })
        .collect();
    assert_eq!(months, [(2026, 2), (2026, 1), (2025, 12), (2025, 11)]);
    let totals: Vec<[i64; 3]> = arr(&h["history"])
        .iter()
        .map(|e| amounts(e, ["total_budget", "total_actual", "difference"]))
        .collect();
    assert_eq!(
        totals,
        [
            [0, 0, 0],
            [10_000, 4_000, 6_000],
            [5_000, 6_000, -1_000],
            [0, 0, 0]
        ]
    );

    let one = get_ok(
        &t,
        "/api/v1/allocations/history?month=1&year=2026&months=1",
        tok,
    );
    assert_eq!(arr(&one["history"]).len(), 1);
    assert_eq!(paise(&one["history"][0]["total_budget"]), 10_000);

    let five = get_ok(
        &t,
        "/api/v1/allocations/history?month=2&year=2026&months=5",
        tok,
    );
    assert_eq!(
        (&five["history"][4]["month"], &five["history"][4]["year"]),
        (&json!(10), &json!(2025))
    );
    assert_eq!(paise(&five["history"][4]["total_budget"]), 1_000);

    let all = get_ok(
        &t,
        "/api/v1/allocations/history?month=2&year=2026&months=24",
        tok,
    );
    let all = arr(&all["history"]);
    assert_eq!(all.len(), 24);
    assert_eq!(
        (&all[23]["month"], &all[23]["year"]),
        (&json!(3), &json!(2024))
    );
    let with_rows = all.iter().filter(|e| paise(&e["total_budget"]) > 0).count();
    assert_eq!(with_rows, 3);

    // Defaults: six months ending with the current one.
    let (m, y) = clock_month(&t, "UTC");
    let d = get_ok(&t, "/api/v1/allocations/history", tok);
    let d = arr(&d["history"]);
    assert_eq!(d.len(), 6);
    assert_eq!((&d[0]["month"], &d[0]["year"]), (&json!(m), &json!(y)));
}

#[test]
fn one_category_by_id_and_unknown_ids() {
    let (t, u) = app_and_user("onecat@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "learning", 1);
    set_budget(&t, tok, &ty, 12_345, 10, 2025);
    record_actual(&t, tok, &ty, 345, None, 10, 2025);
    let s = allocations(&t, tok, 10, 2025);
    for c in arr(&s["categories"]) {
        let id = c["id"].as_str().expect("id");
        let one = get_ok(
            &t,
            &format!("/api/v1/allocations/{id}?month=10&year=2025"),
            tok,
        );
        assert_eq!(&one, c);
    }
    let learning = category(&s, "learning");
    let id = learning["id"].as_str().expect("id");
    let nov = get_ok(
        &t,
        &format!("/api/v1/allocations/{id}?month=11&year=2025"),
        tok,
    );
    assert_eq!(paise(&nov["total_budget"]), 0);
    assert_eq!(paise(&learning["total_budget"]), 12_345);

    for unknown in ["no-such-category", ty.as_str()] {
        let r = call(
            &t,
            "GET",
            &format!("/api/v1/allocations/{unknown}"),
            tok,
            None,
        );
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(
            r.json()["detail"],
            format!("Allocation category with id '{unknown}' not found")
        );
        assert!(r.json()["code"].is_string());
    }
}

/// The `index`-th type line of a category in a month's summary.
fn type_line(t: &TestApp, tok: &str, (cat, index): (&str, usize), month: u32, year: i32) -> Value {
    let s = allocations(t, tok, month, year);
    category(&s, cat)["allocation_types"][index].clone()
}

/// The user's stored row for a type and month, as the export shows it.
fn exported_row(t: &TestApp, tok: &str, type_id: &str, month: u32, year: i32) -> Value {
    let e = export(t, tok);
    arr(&e["user_allocations"])
        .iter()
        .find(|r| r["allocation_type_id"] == type_id && r["month"] == month && r["year"] == year)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn budget_and_actual_posts_replace_add_and_keep_notes() {
    let (t, u) = app_and_user("posts@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "entertainment", 0);
    let line = |t: &TestApp| {
        let l = type_line(t, tok, ("entertainment", 0), 6, 2025);
        (paise(&l["budget_amount"]), paise(&l["actual_amount"]))
    };
    set_budget(&t, tok, &ty, 10_000, 6, 2025);
    set_budget(&t, tok, &ty, 25_000, 6, 2025);
    assert_eq!(line(&t), (25_000, 0), "a budget replaces");
    record_actual(&t, tok, &ty, 10_000, None, 6, 2025);
    record_actual(&t, tok, &ty, 3_000, None, 6, 2025);
    assert_eq!(line(&t), (25_000, 3_000), "set is the default and replaces");
    record_actual(&t, tok, &ty, 2_000, Some("add"), 6, 2025);
    record_actual(&t, tok, &ty, 5, Some("add"), 6, 2025);
    assert_eq!(line(&t), (25_000, 5_005), "add adds");
    record_actual(&t, tok, &ty, 1_000, Some("set"), 6, 2025);
    assert_eq!(line(&t), (25_000, 1_000));
    set_budget(&t, tok, &ty, 30_000, 6, 2025);
    assert_eq!(line(&t), (30_000, 1_000), "a budget keeps the actual");
    // `add` on a type with no row yet starts from zero.
    let other = type_id(&t, tok, "entertainment", 1);
    record_actual(&t, tok, &other, 250, Some("add"), 6, 2025);
    let s = allocations(&t, tok, 6, 2025);
    assert_eq!(
        paise(&category(&s, "entertainment")["allocation_types"][1]["actual_amount"]),
        250
    );

    // Notes: kept when a later write sends none, replaced when it sends some.
    let with_notes = json!({"allocation_type_id": ty, "actual_amount": 12, "notes": "movie night",
                            "month": 6, "year": 2025});
    expect(&t, "POST", ACTUAL, tok, Some(&with_notes), 200);
    assert_eq!(exported_row(&t, tok, &ty, 6, 2025)["notes"], "movie night");
    record_actual(&t, tok, &ty, 1_300, None, 6, 2025);
    set_budget(&t, tok, &ty, 30_000, 6, 2025);
    let row = exported_row(&t, tok, &ty, 6, 2025);
    assert_eq!(row["notes"], "movie night");
    // The stored column is `recorded_amount` (issue 13: actual = recorded + spent).
    assert_eq!(row["recorded_amount"], json!(13));
    let new_notes = json!({"allocation_type_id": ty, "actual_amount": 13, "notes": "concert",
                           "month": 6, "year": 2025});
    expect(&t, "POST", ACTUAL, tok, Some(&new_notes), 200);
    assert_eq!(exported_row(&t, tok, &ty, 6, 2025)["notes"], "concert");

    // An unknown type: 404 with its code, and nothing written.
    let rows_before = count_rows(&t, "user_allocations", "user_id", &u.id);
    let unknown = "00000000-0000-4000-8000-000000000000";
    for (path, field) in [(BUDGET, "budget_amount"), (ACTUAL, "actual_amount")] {
        let body = json!({"allocation_type_id": unknown, field: 5, "month": 6, "year": 2025});
        let r = call(&t, "POST", path, tok, Some(&body));
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.json()["code"], "allocation_type_not_found");
    }
    assert_eq!(
        count_rows(&t, "user_allocations", "user_id", &u.id),
        rows_before
    );
    assert_eq!(
        count_rows(&t, "user_allocations", "allocation_type_id", unknown),
        0
    );
}

#[test]
fn put_and_delete_allocation_by_owner_only() {
    let t = spawn_app();
    let owner = register(&t, "owner@example.com");
    let other = register(&t, "stranger@example.com");
    let tok = &owner.token;
    let ty = type_id(&t, tok, "contribution", 2);
    set_budget(&t, tok, &ty, 10_000, 10, 2025);
    let line = |t: &TestApp| type_line(t, tok, ("contribution", 2), 10, 2025);
    let id = line(&t)["allocation_id"]
        .as_str()
        .expect("allocation id")
        .to_string();
    let path = format!("/api/v1/allocations/{id}");

    let body = json!({"budget_amount": 200, "actual_amount": "50.5", "notes": "json body"});
    let v = expect(&t, "PUT", &path, tok, Some(&body), 200);
    assert_eq!(v, json!({"message": "Allocation updated successfully"}));
    let l = line(&t);
    assert_eq!(
        amounts(&l, ["budget_amount", "actual_amount", "difference"]),
        [20_000, 5_050, 14_950]
    );
    assert_eq!(l["allocation_id"], id.as_str());
    assert_eq!(exported_row(&t, tok, &ty, 10, 2025)["notes"], "json body");

    // The app sends query parameters with no body.
    let v = expect(
        &t,
        "PUT",
        &format!("{path}?actual_amount=75.25&notes=from%20the%20app"),
        tok,
        None,
        200,
    );
    assert_eq!(v["message"], "Allocation updated successfully");
    let l = line(&t);
    assert_eq!(
        (paise(&l["budget_amount"]), paise(&l["actual_amount"])),
        (20_000, 7_525)
    );
    assert_eq!(
        exported_row(&t, tok, &ty, 10, 2025)["notes"],
        "from the app"
    );
    expect(
        &t,
        "PUT",
        &format!("{path}?budget_amount=0"),
        tok,
        None,
        200,
    );
    assert_eq!(paise(&line(&t)["budget_amount"]), 0);
    assert_eq!(paise(&line(&t)["difference"]), -7_525);

    // Another user: 404 as if it did not exist, and the row stays as it was.
    let before = (line(&t), exported_row(&t, tok, &ty, 10, 2025));
    let attempts = [
        (
            "PUT",
            path.clone(),
            Some(json!({"budget_amount": 1, "notes": "mine now"})),
        ),
        ("PUT", format!("{path}?actual_amount=1"), None),
        ("DELETE", path.clone(), None),
    ];
    for (method, p, body) in &attempts {
        let r = call(&t, method, p, &other.token, body.as_ref());
        assert_error(&r, 404, "allocation_not_found", "Allocation not found");
    }
    assert_eq!((line(&t), exported_row(&t, tok, &ty, 10, 2025)), before);
    assert_eq!(count_rows(&t, "user_allocations", "user_id", &other.id), 0);

    let missing = "/api/v1/allocations/00000000-0000-4000-8000-000000000000";
    let r = call(&t, "PUT", missing, tok, Some(&json!({"budget_amount": 1})));
    assert_error(&r, 404, "allocation_not_found", "Allocation not found");

    let v = expect(&t, "DELETE", &path, tok, None, 200);
    assert_eq!(v, json!({"message": "Allocation deleted successfully"}));
    let l = line(&t);
    assert!(l["allocation_id"].is_null());
    assert_eq!(paise(&l["actual_amount"]), 0);
    assert_eq!(count_rows(&t, "user_allocations", "id", &id), 0);
    let r = call(&t, "DELETE", &path, tok, None);
    assert_error(&r, 404, "allocation_not_found", "Allocation not found");
}

// ---------------------------------------------------------------------------------------------
// Monthly budget
// ---------------------------------------------------------------------------------------------

fn monthly(t: &TestApp, tok: &str, month: u32, year: i32) -> Value {
    get_ok(
        t,
        &format!("/api/v1/monthly-budget?month={month}&year={year}"),
        tok,
    )
}

/// (allocated, actual, difference, status) per category name, in the order listed.
fn monthly_lines(m: &Value) -> Vec<(String, i64, i64, i64, String)> {
    arr(&m["categories"])
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                paise(&c["allocated_amount"]),
                paise(&c["actual_invested"]),
                paise(&c["difference"]),
                c["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

fn allocated(m: &Value, name: &str) -> i64 {
    paise(&category(m, name)["allocated_amount"])
}

#[test]
fn monthly_budget_rounds_half_even_and_reports_status() {
    let (t, u) = app_and_user("monthly@example.com");
    let tok = &u.token;
    let income = |p: i64, date: &str| {
        create_tx(
            &t,
            tok,
            &tx_body("income", "salary", &decimal(p), "pay", date),
        );
    };
    let expense = |p: i64, date: &str| {
        create_tx(
            &t,
            tok,
            &tx_body("expense", "rent", &decimal(p), "rent", date),
        );
    };

    // (income, expense, month, allocated to freedom 10 %, spending 50 %, entertainment 5 %):
    //  0.05 → 0.005 → 0.00, 0.025 → 0.02, 0.0025 → 0.00
    //  0.15 → 0.015 → 0.02, 0.075 → 0.08, 0.0075 → 0.01
    //  0.25 → 0.025 → 0.02, 0.125 → 0.12, 0.0125 → 0.01
    // −0.15 → −0.015 → −0.02, −0.075 → −0.08, −0.0075 → −0.01
    let cases = [
        (5, 0, 3, [0, 2, 0]),
        (15, 0, 4, [2, 8, 1]),
        (25, 0, 5, [2, 12, 1]),
        (10, 25, 8, [-2, -8, -1]),
    ];
    for (inc, exp, month, want) in cases {
        income(inc, &format!("2025-{month:02}-01"));
        if exp > 0 {
            expense(exp, &format!("2025-{month:02}-02"));
        }
        let m = monthly(&t, tok, month, 2025);
        assert_eq!(paise(&m["current_balance"]), inc - exp);
        let got = ["freedom", "spending", "entertainment"].map(|c| allocated(&m, c));
        assert_eq!(got, want, "balance {}", inc - exp);
    }
    assert_eq!(
        category(&monthly(&t, tok, 3, 2025), "freedom")["status"],
        "perfect"
    );

    // Balance 1000 and every status.
    income(150_000, "2025-06-01");
    expense(50_000, "2025-06-02");
    let pairs = [
        ("freedom", 0, 10_000),
        ("health", 1, 15_000),
        ("learning", 2, 10_001),
        ("entertainment", 0, 4_999),
        ("contribution", 1, 5_000),
    ];
    for (cat, idx, p) in pairs {
        let ty = type_id(&t, tok, cat, idx);
        record_actual(&t, tok, &ty, p, None, 6, 2025);
    }
    let m = monthly(&t, tok, 6, 2025);
    assert_keys(
        &m,
        "month year current_balance total_income total_expense categories",
    );
    assert_eq!((&m["month"], &m["year"]), (&json!(6), &json!(2025)));
    assert_eq!(
        amounts(&m, ["current_balance", "total_income", "total_expense"]),
        [100_000, 150_000, 50_000]
    );
    let s = allocations(&t, tok, 6, 2025);
    for (c, a) in arr(&m["categories"]).iter().zip(arr(&s["categories"])) {
        assert_keys(
            c,
            "name label icon icon_color target_percentage \
             allocated_amount actual_invested difference status",
        );
        for k in ["name", "label", "icon", "icon_color", "target_percentage"] {
            assert_eq!(c[k], a[k], "{k}");
        }
        // actual_invested is the category's actual total for the month.
        assert_eq!(c["actual_invested"], a["total_actual"]);
    }
    let line = |n: &str, a: i64, i: i64, d: i64, s: &str| (n.to_string(), a, i, d, s.to_string());
    assert_eq!(
        monthly_lines(&m),
        [
            line("freedom", 10_000, 10_000, 0, "perfect"),
            line("health", 10_000, 15_000, 5_000, "over"),
            line("spending", 50_000, 0, -50_000, "under"),
            line("learning", 10_000, 10_001, 1, "over"),
            line("entertainment", 5_000, 4_999, -1, "under"),
            line("contribution", 5_000, 5_000, 0, "perfect"),
        ]
    );

    // A negative balance: allocations are negative too.
    income(10_000, "2025-07-01");
    expense(30_000, "2025-07-09");
    let m = monthly(&t, tok, 7, 2025);
    assert_eq!(paise(&m["current_balance"]), -20_000);
    assert_eq!(m["current_balance"], json!(-200));
    let lines = monthly_lines(&m);
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0], line("freedom", -2_000, 0, 2_000, "over"));
    assert_eq!(lines[2], line("spending", -10_000, 0, 10_000, "over"));

    // A month without transactions (even with allocations) has the empty shape.
    let ty = type_id(&t, tok, "freedom", 0);
    record_actual(&t, tok, &ty, 100, None, 9, 2025);
    let empty = json!({"month": 9, "year": 2025, "current_balance": 0, "total_income": 0,
                       "total_expense": 0, "categories": [],
                       "message": "No transactions yet for this month"});
    assert_eq!(monthly(&t, tok, 9, 2025), empty);
    // ...and so does a month whose only transaction was deleted.
    let tx = add_tx(&t, tok, ["income", "gift", "5", "gift", "2025-09-05"]);
    assert_eq!(arr(&monthly(&t, tok, 9, 2025)["categories"]).len(), 6);
    let id = tx["id"].as_str().expect("id");
    delete_tx(&t, tok, id);
    assert_eq!(monthly(&t, tok, 9, 2025), empty);
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

#[test]
fn transactions_are_created_with_their_shape_and_dates_in_utc() {
    let (t, u) = app_and_user("create@example.com");
    let tok = &u.token;
    let tx = add_tx(
        &t,
        tok,
        ["income", "salary", "50000", "Oct pay", "2025-10-18"],
    );
    assert_keys(
        &tx,
        "id type category amount label transaction_date month year created_at allocation_type_id recurring_id occurrence_date version",
    );
    let id = tx["id"].as_str().expect("id");
    assert_eq!(id.len(), 36);
    assert_eq!(id.matches('-').count(), 4);
    assert_eq!(tx["type"], "income");
    assert_eq!(tx["category"], "salary");
    assert_eq!(tx["amount"], json!(50000));
    assert_eq!(tx["label"], "Oct pay");
    assert_eq!(tx["transaction_date"], "2025-10-18T00:00:00Z");
    assert_eq!((&tx["month"], &tx["year"]), (&json!(10), &json!(2025)));
    assert!(
        is_iso_utc(tx["created_at"].as_str().expect("created_at")),
        "{tx}"
    );

    let cases = [
        // (sent, echoed, month)
        ("2025-10-18T10:30:00+05:30", "2025-10-18T05:00:00Z", 10),
        ("2025-11-01T02:00:00+05:30", "2025-10-31T20:30:00Z", 10),
        ("2025-10-18T23:59:59-02:00", "2025-10-19T01:59:59Z", 10),
        ("2025-10-31T23:59:59Z", "2025-10-31T23:59:59Z", 10),
        ("2025-12-01T00:00:00Z", "2025-12-01T00:00:00Z", 12),
    ];
    for (sent, echoed, month) in cases {
        let tx = create_tx(&t, tok, &tx_body("expense", "misc", "1.5", sent, sent));
        assert_eq!(tx["transaction_date"], echoed, "{sent}");
        assert_eq!(tx["month"], month, "{sent}");
        assert_eq!(tx["amount"], json!(1.5));
    }
    // A numeric-string amount comes back as a JSON number.
    let tx = add_tx(
        &t,
        tok,
        ["expense", "food", "1250.50", "Dinner", "2025-10-20"],
    );
    assert_eq!(tx["amount"], json!(1250.5));
    // Limits are in characters: 50 and 200 multi-byte characters are accepted.
    let tx = create_tx(
        &t,
        tok,
        &tx_body(
            "expense",
            &"é".repeat(50),
            "0.01",
            &"₹".repeat(200),
            "2025-10-21",
        ),
    );
    assert_eq!(tx["label"], "₹".repeat(200));
    assert_eq!(tx["amount"], json!(0.01));

    // What is listed and exported is what was echoed.
    let listed = list_month(&t, tok, 10, 2025);
    let first = listed.iter().find(|x| x["id"] == id).expect("listed");
    let mut expected = tx_body("income", "salary", "50000", "Oct pay", "2025-10-18");
    expected["amount"] = json!(50000);
    expected["transaction_date"] = json!("2025-10-18T00:00:00Z");
    for k in ["type", "category", "amount", "label", "transaction_date"] {
        assert_eq!(first[k], expected[k], "{k}");
    }
    let e = export(&t, tok);
    let row = arr(&e["transactions"])
        .iter()
        .find(|x| x["id"] == id)
        .expect("exported")
        .clone();
    assert_eq!(row["transaction_date"], "2025-10-18T00:00:00Z");
    assert_eq!(row["amount"], json!(50000));
}

#[test]
fn app_timezone_decides_the_month() {
    let t = spawn_app_with(&[("APP_TIMEZONE", "Asia/Kolkata")]);
    let u = register(&t, "kolkata@example.com");
    let tok = &u.token;
    let tx = add_tx(
        &t,
        tok,
        ["income", "salary", "100", "pay", "2025-10-31T20:00:00Z"],
    );
    assert_eq!(tx["transaction_date"], "2025-10-31T20:00:00Z");
    assert_eq!((&tx["month"], &tx["year"]), (&json!(11), &json!(2025)));
    // 18:29:59 UTC is 23:59:59 in Kolkata: still October.
    let tx = add_tx(
        &t,
        tok,
        ["expense", "food", "1", "late", "2025-10-31T18:29:59Z"],
    );
    assert_eq!(tx["month"], 10);
    let tx = add_tx(
        &t,
        tok,
        ["expense", "food", "2", "later", "2025-10-31T18:30:00Z"],
    );
    assert_eq!(tx["month"], 11);
    // New Year's Eve in UTC is already January in Kolkata.
    let tx = add_tx(
        &t,
        tok,
        ["expense", "party", "3", "ny", "2025-12-31T19:00:00Z"],
    );
    assert_eq!((&tx["month"], &tx["year"]), (&json!(1), &json!(2026)));

    let nov = balance(&t, tok, 11, 2025);
    assert_eq!(nov["transaction_count"], 2);
    assert_eq!(paise(&nov["total_income"]), 10_000);
    assert_eq!(paise(&nov["total_expense"]), 200);
    assert_eq!(balance(&t, tok, 10, 2025)["transaction_count"], 1);
    assert_eq!(balance(&t, tok, 1, 2026)["transaction_count"], 1);
    let listed = list_month(&t, tok, 11, 2025);
    let labels: Vec<&str> = listed
        .iter()
        .map(|x| x["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["pay", "later"]);

    // The default month is the current month in Kolkata.
    let (m, y) = clock_month(&t, "Asia/Kolkata");
    let b = get_ok(&t, "/api/v1/transactions/balance", tok);
    assert_eq!((&b["month"], &b["year"]), (&json!(m), &json!(y)));
}

#[test]
fn transaction_list_is_newest_first_filtered_and_paged() {
    let (t, u) = app_and_user("list@example.com");
    let other = register(&t, "list-other@example.com");
    let tok = &u.token;
    let made = [
        ("income", "salary", "1000", "a", "2025-10-01"),
        ("expense", "food", "10", "b", "2025-10-15T08:00:00Z"),
        ("expense", "food", "20", "c", "2025-10-15T09:00:00Z"),
        ("expense", "rent", "300", "d", "2025-10-03"),
        ("income", "bonus", "50", "e", "2025-10-31T23:00:00Z"),
        ("expense", "food", "5", "f", "2025-10-20"),
        ("expense", "food", "1", "november", "2025-11-01"),
    ];
    for (k, c, a, l, d) in made {
        create_tx(&t, tok, &tx_body(k, c, a, l, d));
    }
    add_tx(
        &t,
        &other.token,
        ["expense", "food", "7", "not mine", "2025-10-16"],
    );
    let labels = |q: &str| -> Vec<String> {
        let v = get_ok(
            &t,
            &format!("/api/v1/transactions?month=10&year=2025{q}"),
            tok,
        );
        arr(&v)
            .iter()
            .map(|x| x["label"].as_str().expect("label").to_string())
            .collect()
    };
    assert_eq!(labels(""), ["e", "f", "c", "b", "d", "a"]);
    assert_eq!(labels("&type=income"), ["e", "a"]);
    assert_eq!(labels("&type=expense"), ["f", "c", "b", "d"]);
    assert_eq!(labels("&category=food"), ["f", "c", "b"]);
    assert_eq!(labels("&type=income&category=food"), Vec::<String>::new());
    assert_eq!(labels("&category=rent"), ["d"]);
    assert_eq!(labels("&limit=2"), ["e", "f"]);
    assert_eq!(labels("&limit=2&offset=2"), ["c", "b"]);
    assert_eq!(labels("&limit=2&offset=4"), ["d", "a"]);
    assert_eq!(labels("&limit=2&offset=6"), Vec::<String>::new());
    assert_eq!(labels("&limit=200"), labels(""));
    assert_eq!(labels("&offset=5"), ["a"]);
    for (q, field) in [
        ("limit=201", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("type=transfer", "type"),
        ("month=13", "month"),
    ] {
        let r = call(&t, "GET", &format!("/api/v1/transactions?{q}"), tok, None);
        assert_422_names(&r, field);
    }

    // The default page is 100.
    for i in 0..101 {
        let body = tx_body(
            "expense",
            "bulk",
            "0.01",
            &format!("bulk {i}"),
            "2025-12-05",
        );
        create_tx(&t, tok, &body);
    }
    let page = get_ok(&t, "/api/v1/transactions?month=12&year=2025", tok);
    assert_eq!(arr(&page).len(), 100);
    assert_eq!(list_month(&t, tok, 12, 2025).len(), 101);
}

/// (income, expense, balance, count) of a month, in paise.
fn totals(t: &TestApp, tok: &str, month: u32, year: i32) -> (i64, i64, i64, i64) {
    let b = balance(t, tok, month, year);
    assert_eq!((&b["month"], &b["year"]), (&json!(month), &json!(year)));
    (
        paise(&b["total_income"]),
        paise(&b["total_expense"]),
        paise(&b["current_balance"]),
        b["transaction_count"].as_i64().expect("count"),
    )
}

#[test]
fn patch_moves_totals_within_and_across_months_and_kinds() {
    let (t, u) = app_and_user("patch@example.com");
    let other = register(&t, "patch-other@example.com");
    let tok = &u.token;
    let b = balance(&t, tok, 10, 2025);
    assert_keys(
        &b,
        "month year current_balance total_income total_expense transaction_count",
    );
    let one = add_tx(&t, tok, ["income", "salary", "100", "pay", "2025-10-05"]);
    let two = add_tx(&t, tok, ["expense", "food", "30", "lunch", "2025-10-06"]);
    let (id1, id2) = (
        one["id"].as_str().expect("id"),
        two["id"].as_str().expect("id"),
    );
    let patch = |id: &str, body: Value| patch_tx(&t, tok, id, &body);
    assert_eq!(totals(&t, tok, 10, 2025), (10_000, 3_000, 7_000, 2));

    let p = patch(id1, json!({"amount": 150}));
    assert_eq!((&p["id"], &p["amount"]), (&json!(id1), &json!(150)));
    assert_eq!(totals(&t, tok, 10, 2025), (15_000, 3_000, 12_000, 2));
    patch(id2, json!({"type": "income"}));
    assert_eq!(totals(&t, tok, 10, 2025), (18_000, 0, 18_000, 2));
    let p = patch(id2, json!({"type": "expense", "amount": "40.5"}));
    assert_eq!(
        (&p["type"], &p["amount"]),
        (&json!("expense"), &json!(40.5))
    );
    assert_eq!(totals(&t, tok, 10, 2025), (15_000, 4_050, 10_950, 2));

    let p = patch(id1, json!({"transaction_date": "2025-11-02"}));
    assert_eq!(p["transaction_date"], "2025-11-02T00:00:00Z");
    assert_eq!((&p["month"], &p["year"]), (&json!(11), &json!(2025)));
    assert_eq!(totals(&t, tok, 10, 2025), (0, 4_050, -4_050, 1));
    assert_eq!(totals(&t, tok, 11, 2025), (15_000, 0, 15_000, 1));
    let p = patch(
        id1,
        json!({"transaction_date": "2026-01-15T12:00:00+05:30", "type": "expense", "amount": 1}),
    );
    assert_eq!(p["transaction_date"], "2026-01-15T06:30:00Z");
    assert_eq!(totals(&t, tok, 11, 2025), (0, 0, 0, 0));
    assert_eq!(totals(&t, tok, 1, 2026), (0, 100, -100, 1));

    let p = patch(
        id2,
        json!({"category": "groceries", "label": "Weekly shop"}),
    );
    assert_eq!(
        (&p["category"], &p["label"]),
        (&json!("groceries"), &json!("Weekly shop"))
    );
    assert_eq!(p["created_at"], two["created_at"]);
    assert_eq!(totals(&t, tok, 10, 2025), (0, 4_050, -4_050, 1));
    let unchanged = patch(id2, json!({}));
    assert_eq!(unchanged, p);
    assert_eq!(list_month(&t, tok, 10, 2025), vec![p.clone()]);

    // Another user's transaction: 404 and nothing moves.
    let before = (
        list_month(&t, tok, 10, 2025),
        totals(&t, tok, 10, 2025),
        totals(&t, tok, 12, 2025),
    );
    let r = call(
        &t,
        "PATCH",
        &format!("/api/v1/transactions/{id2}"),
        &other.token,
        Some(&json!({"amount": 1, "transaction_date": "2025-12-01"})),
    );
    assert_error(&r, 404, "transaction_not_found", "Transaction not found");
    let after = (
        list_month(&t, tok, 10, 2025),
        totals(&t, tok, 10, 2025),
        totals(&t, tok, 12, 2025),
    );
    assert_eq!(after, before);
    assert_eq!(totals(&t, &other.token, 12, 2025), (0, 0, 0, 0));
    let r = call(
        &t,
        "PATCH",
        "/api/v1/transactions/00000000-0000-4000-8000-000000000000",
        tok,
        Some(&json!({"amount": 1})),
    );
    assert_error(&r, 404, "transaction_not_found", "Transaction not found");
}

#[test]
fn delete_reverses_totals_for_the_owner_only() {
    let (t, u) = app_and_user("delete@example.com");
    let other = register(&t, "delete-other@example.com");
    let tok = &u.token;
    let a = add_tx(&t, tok, ["income", "salary", "500", "pay", "2025-10-01"]);
    let b = add_tx(&t, tok, ["expense", "food", "12.34", "food", "2025-10-02"]);
    add_tx(&t, tok, ["expense", "rent", "100", "rent", "2025-10-03"]);
    assert_eq!(totals(&t, tok, 10, 2025), (50_000, 11_234, 38_766, 3));

    let id = b["id"].as_str().expect("id");
    let path = format!("/api/v1/transactions/{id}");
    let r = call(&t, "DELETE", &path, &other.token, None);
    assert_error(&r, 404, "transaction_not_found", "Transaction not found");
    assert_eq!(count_rows(&t, "transactions", "id", id), 1);
    assert_eq!(totals(&t, tok, 10, 2025), (50_000, 11_234, 38_766, 3));

    let v = expect(&t, "DELETE", &path, tok, None, 200);
    assert_eq!(
        v,
        json!({"message": "Transaction deleted successfully", "transaction_id": id})
    );
    assert_eq!(totals(&t, tok, 10, 2025), (50_000, 10_000, 40_000, 2));
    assert!(list_month(&t, tok, 10, 2025).iter().all(|x| x["id"] != id));
    assert_eq!(count_rows(&t, "transactions", "id", id), 0);
    let r = call(&t, "DELETE", &path, tok, None);
    assert_error(&r, 404, "transaction_not_found", "Transaction not found");
    let id = a["id"].as_str().expect("id");
    delete_tx(&t, tok, id);
    assert_eq!(totals(&t, tok, 10, 2025), (0, 10_000, -10_000, 1));
}

// ---------------------------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------------------------

#[test]
fn idempotency_key_replays_the_first_response() {
    let (t, u) = app_and_user("idem@example.com");
    let other = register(&t, "idem-other@example.com");
    let tok = &u.token;
    let body = tx_body("expense", "food", "99.99", "retried", "2025-10-10");
    let first = post_with_key(t.http, tok, "order-1", &body);
    assert_eq!(first.status, 201, "{}", first.text());
    for _ in 0..3 {
        let again = post_with_key(t.http, tok, "order-1", &body);
        assert_eq!(again.status, 201);
        assert_eq!(again.body, first.body, "a replay is byte for byte");
    }
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 1);
    assert_eq!(totals(&t, tok, 10, 2025), (0, 9_999, -9_999, 1));

    let mut changed = body.clone();
    changed["amount"] = json!("100");
    let r = post_with_key(t.http, tok, "order-1", &changed);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["code"], "idempotency_key_reused");
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 1);

    // Keys are per user.
    let theirs = post_with_key(t.http, &other.token, "order-1", &body);
    assert_eq!(theirs.status, 201, "{}", theirs.text());
    assert_ne!(theirs.json()["id"], first.json()["id"]);
    assert_eq!(count_rows(&t, "transactions", "user_id", &other.id), 1);
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 1);

    // 255 characters is the most.
    let long = "k".repeat(255);
    assert_eq!(post_with_key(t.http, tok, &long, &body).status, 201);
    assert_eq!(post_with_key(t.http, tok, &long, &body).status, 201);
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 2);
    for bad in ["k".repeat(256), "has space".to_string()] {
        let r = post_with_key(t.http, tok, &bad, &body);
        assert_eq!(r.status, 422, "{bad:?}: {}", r.text());
        assert_422_names(&r, "idempotency-key");
    }
    // A non-ASCII header value is refused by the HTTP layer itself (400) before any handler.
    let r = post_with_key(t.http, tok, "ключ", &body);
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 2);

    // Without a key every POST is a new row.
    create_tx(&t, tok, &body);
    create_tx(&t, tok, &body);
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 4);

    // Keys are kept 24 hours (the clock moves, so the tokens are new).
    t.app().clock.advance(23 * 3600);
    let tok = login(&t, "idem@example.com");
    let late = post_with_key(t.http, &tok, "order-1", &body);
    assert_eq!((late.status, &late.body), (201, &first.body));
    t.app().clock.advance(3600 + 1);
    let tok = login(&t, "idem@example.com");
    let expired = post_with_key(t.http, &tok, "order-1", &body);
    assert_eq!(expired.status, 201, "{}", expired.text());
    assert_ne!(expired.json()["id"], first.json()["id"]);
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 5);
}

#[test]
fn concurrent_replays_of_one_key_make_one_row() {
    let (t, u) = app_and_user("idem-race@example.com");
    let body = tx_body("income", "salary", "1234.56", "race", "2025-10-10");
    let gate = Barrier::new(8);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (gate, body, tok, addr) = (&gate, &body, &u.token, t.http);
                s.spawn(move || {
                    gate.wait();
                    post_with_key(addr, tok, "same-key-everywhere", body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for r in &replies {
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.body, replies[0].body);
    }
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), 1);
    assert_eq!(count_rows(&t, "idempotency_keys", "user_id", &u.id), 1);
    assert_eq!(totals(&t, &u.token, 10, 2025), (123_456, 0, 123_456, 1));
}

// ---------------------------------------------------------------------------------------------
// The view cache
// ---------------------------------------------------------------------------------------------

fn cache_stats(t: &TestApp) -> (u64, f64) {
    let h = get(t.http, "/api/v1/health/detailed");
    assert_eq!(h.status, 200, "{}", h.text());
    let c = h.json()["dependencies"]["cache"].clone();
    assert_eq!(c["status"], "enabled");
    (
        c["entries"].as_u64().expect("entries"),
        c["hit_rate"].as_f64().expect("hit_rate"),
    )
}

#[test]
fn cached_views_show_every_write_at_once() {
    let (t, u) = app_and_user("cache@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "spending", 4);
    let line = |t: &TestApp| type_line(t, tok, ("spending", 4), 10, 2025);
    assert_eq!(paise(&line(&t)["budget_amount"]), 0);
    assert_eq!(paise(&line(&t)["budget_amount"]), 0);
    set_budget(&t, tok, &ty, 4_200, 10, 2025);
    assert_eq!(paise(&line(&t)["budget_amount"]), 4_200);
    record_actual(&t, tok, &ty, 1_000, None, 10, 2025);
    assert_eq!(paise(&line(&t)["actual_amount"]), 1_000);
    let id = line(&t)["allocation_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/allocations/{id}");
    expect(
        &t,
        "PUT",
        &format!("{path}?actual_amount=2000"),
        tok,
        None,
        200,
    );
    assert_eq!(paise(&line(&t)["actual_amount"]), 200_000);
    let m = monthly(&t, tok, 10, 2025);
    assert_eq!(m["message"], "No transactions yet for this month");
    expect(&t, "DELETE", &path, tok, None, 200);
    assert!(line(&t)["allocation_id"].is_null());

    let tx = add_tx(&t, tok, ["income", "salary", "1000", "pay", "2025-10-01"]);
    let m = monthly(&t, tok, 10, 2025);
    assert_eq!(paise(&m["current_balance"]), 100_000);
    assert_eq!(arr(&m["categories"]).len(), 6);
    let tx_id = tx["id"].as_str().expect("id");
    patch_tx(&t, tok, tx_id, &json!({"amount": 2000}));
    let balance_now = |t: &TestApp| paise(&monthly(t, tok, 10, 2025)["current_balance"]);
    assert_eq!(balance_now(&t), 200_000);
    record_actual(&t, tok, &ty, 500, None, 10, 2025);
    assert_eq!(
        paise(&category(&monthly(&t, tok, 10, 2025), "spending")["actual_invested"]),
        500
    );
    delete_tx(&t, tok, tx_id);
    assert_eq!(monthly(&t, tok, 10, 2025)["categories"], json!([]));

    // Reading views fills the cache and repeated reads hit it.
    let (entries_before, _) = cache_stats(&t);
    for month in 1..=6 {
        for _ in 0..3 {
            allocations(&t, tok, month, 2024);
            monthly(&t, tok, month, 2024);
        }
    }
    let (entries_after, hit_rate) = cache_stats(&t);
    assert!(
        entries_after > entries_before,
        "{entries_before} → {entries_after}"
    );
    assert!(entries_after >= 12, "{entries_after}");
    assert!(hit_rate > 0.0);
    let metrics = get(t.http, "/api/v1/metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.text());
    let metrics = metrics.json();
    assert_eq!(metrics["cache"]["enabled"], true);
    assert!(metrics["cache"]["hit_rate"].as_f64().expect("hit_rate") > 0.0);
}

#[test]
fn views_are_right_with_the_cache_disabled() {
    let t = spawn_app_with(&[("CACHE_ENABLED", "false")]);
    let u = register(&t, "nocache@example.com");
    let tok = &u.token;
    let ty = type_id(&t, tok, "freedom", 0);
    for p in [100, 200] {
        set_budget(&t, tok, &ty, p, 10, 2025);
        assert_eq!(
            paise(&category(&allocations(&t, tok, 10, 2025), "freedom")["total_budget"]),
            p
        );
    }
    add_tx(&t, tok, ["income", "salary", "10", "pay", "2025-10-01"]);
    assert_eq!(paise(&monthly(&t, tok, 10, 2025)["current_balance"]), 1_000);
    let h = get(t.http, "/api/v1/health/detailed").json();
    assert_eq!(h["dependencies"]["cache"]["status"], "disabled");
    assert_eq!(h["dependencies"]["cache"]["entries"], 0);
    assert_eq!(
        get(t.http, "/api/v1/metrics").json()["cache"]["enabled"],
        false
    );
}

// ---------------------------------------------------------------------------------------------
// budget_alert
// ---------------------------------------------------------------------------------------------

/// Every event received within a short wait.
/// The events received, as the JSON the notifications socket sends.
/// The events that reached the user's hub, but the `sync` pushes: the push thread sends one
/// whenever its once-a-second look finds the counter moved, so whether one falls between two
/// drains is timing (the sync tests check them).
pub(crate) fn drain(rx: &std::sync::mpsc::Receiver<crate::internals::Event>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(v) = rx.recv_timeout(Duration::from_millis(100)) {
        let v = serde_json::to_value(&v).expect("an event serialises");
        if v["type"] != "sync" {
            out.push(v);
        }
    }
    out
}

#[test]
fn budget_alert_fires_once_when_a_category_goes_over() {
    let (t, u) = app_and_user("alert@example.com");
    let other = register(&t, "alert-other@example.com");
    let tok = &u.token;
    let rx = t.app().events.subscribe(&u.id);
    let (s0, s1) = (
        type_id(&t, tok, "spending", 0),
        type_id(&t, tok, "spending", 1),
    );
    set_budget(&t, tok, &s0, 10_000, 10, 2025);
    set_budget(&t, tok, &s1, 10_000, 10, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());

    // One type over its own budget, the category (150 of 200) within: nothing.
    record_actual(&t, tok, &s0, 15_000, None, 10, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());
    // The category goes to 210 of 200: one alert with the category totals, and the id it is
    // stored under in the inbox (the newest one there).
    let alert = |category: &str, month: u32, budget: Value, actual: Value| {
        let inbox = get_ok(&t, "/api/v1/notifications?limit=200", tok);
        let newest = inbox["notifications"]
            .as_array()
            .and_then(|l| l.last())
            .cloned();
        let id = newest.expect("a stored notification")["id"].clone();
        vec![
            json!({"type": "budget_alert", "id": id, "category": category, "month": month,
                    "year": 2025, "budget": budget, "actual": actual}),
        ]
    };
    record_actual(&t, tok, &s1, 6_000, Some("add"), 10, 2025);
    assert_eq!(drain(&rx), alert("spending", 10, json!(200), json!(210)));
    // Already over: further writes say nothing.
    record_actual(&t, tok, &s1, 500, Some("add"), 10, 2025);
    let id = type_line(&t, tok, ("spending", 0), 10, 2025)["allocation_id"]
        .as_str()
        .expect("id")
        .to_string();
    let put = |query: &str| {
        let path = format!("/api/v1/allocations/{id}?{query}");
        expect(&t, "PUT", &path, tok, None, 200)
    };
    put("actual_amount=170");
    assert_eq!(drain(&rx), Vec::<Value>::new());
    // Back within budget (100 + 65 of 200), then over again: at most one alert per category
    // and month, so nothing.
    put("actual_amount=100");
    assert_eq!(drain(&rx), Vec::<Value>::new());
    record_actual(&t, tok, &s1, 4_000, Some("add"), 10, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());
    // The same category in another month alerts again.
    set_budget(&t, tok, &s0, 10_000, 11, 2025);
    record_actual(&t, tok, &s0, 10_001, None, 11, 2025);
    assert_eq!(drain(&rx), alert("spending", 11, json!(100), json!(100.01)));

    // Lowering the budget under what was spent pushes the category over too.
    let l0 = type_id(&t, tok, "learning", 0);
    set_budget(&t, tok, &l0, 10_000, 12, 2025);
    record_actual(&t, tok, &l0, 8_050, None, 12, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());
    set_budget(&t, tok, &l0, 5_000, 12, 2025);
    assert_eq!(drain(&rx), alert("learning", 12, json!(50), json!(80.5)));

    // Transactions, and other users' writes, say nothing to this user.
    add_tx(&t, tok, ["expense", "food", "100000", "big", "2025-10-10"]);
    let theirs = type_id(&t, &other.token, "spending", 0);
    record_actual(&t, &other.token, &theirs, 99_999, None, 10, 2025);
    assert_eq!(drain(&rx), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// Onboarding, preferences, export, account deletion
// ---------------------------------------------------------------------------------------------

fn full_profile() -> Value {
    json!({"age_range": "25-34", "occupation": "Engineer", "income_range": "10-20 LPA",
           "financial_goals": "house, retirement", "investment_experience": "intermediate",
           "risk_tolerance": "medium", "current_investments": "mutual funds", "debt_status": "some",
           "retirement_planning": true, "interests": "index funds"})
}

const SUBMIT: &str = "/api/v1/onboarding/submit";
const PROFILE: &str = "/api/v1/onboarding/profile";
const PREFS: &str = "/api/v1/users/me/preferences";

#[test]
fn onboarding_submit_status_and_profile() {
    let (t, u) = app_and_user("onboard@example.com");
    let tok = &u.token;
    let submit = |body: &Value| call(&t, "POST", SUBMIT, tok, Some(body));
    let submitted = |body: &Value| {
        let r = submit(body);
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        get_ok(&t, PROFILE, tok)
    };
    assert_eq!(
        get_ok(&t, "/api/v1/onboarding/status", tok),
        json!({"onboarding_completed": false,
               "message": "Please complete your profile to get personalized financial advice"})
    );
    let r = call(&t, "GET", PROFILE, tok, None);
    assert_eq!(r.status, 404);
    let detail = "Profile not found. Please complete onboarding first.";
    assert_eq!(r.json()["detail"], detail);

    let v = submit(&full_profile());
    let done = "Onboarding completed successfully! \
                Your profile will help me provide better financial advice.";
    assert_eq!(
        v.json(),
        json!({"message": done, "profile_completed": true, "user_id": u.id})
    );
    let status = get_ok(&t, "/api/v1/onboarding/status", tok);
    let status_keys = sorted(&["onboarding_completed", "completed_at"]);
    assert_eq!(keys(&status), status_keys);
    assert_eq!(status["onboarding_completed"], true);
    let completed_at = status["completed_at"].as_str().expect("completed_at");
    assert!(is_iso_utc(completed_at), "{completed_at}");
    let mut want = full_profile();
    want["onboarding_completed"] = json!(true);
    want["completed_at"] = json!(completed_at);
    assert_eq!(get_ok(&t, PROFILE, tok), want);

    // A resubmission overwrites: what is not sent becomes null (retirement_planning false).
    let p = submitted(&json!({"occupation": "Teacher", "favourite_colour": "ignored"}));
    let emptied = "age_range income_range financial_goals investment_experience risk_tolerance \
                   current_investments debt_status interests";
    for k in emptied.split_whitespace() {
        assert!(p[k].is_null(), "{k}: {p}");
    }
    assert_eq!(p["occupation"], "Teacher");
    assert_eq!(p["retirement_planning"], false);
    assert_eq!(p["onboarding_completed"], true);
    assert!(p.get("favourite_colour").is_none());

    // Both clients' risk words are kept as sent; limits count characters.
    for risk in "low medium high conservative moderate aggressive".split(' ') {
        let body = json!({"risk_tolerance": risk, "age_range": "é".repeat(20),
                          "occupation": "ü".repeat(100), "income_range": "₹".repeat(30)});
        assert_eq!(submitted(&body)["risk_tolerance"], risk);
    }
    for (k, v) in [
        ("investment_experience", "beginner"),
        ("investment_experience", "advanced"),
        ("debt_status", "none"),
        ("debt_status", "significant"),
    ] {
        assert_eq!(submitted(&json!({k: v}))[k], v);
    }

    let kept = get_ok(&t, PROFILE, tok);
    let bad = [
        ("risk_tolerance", json!("extreme")),
        ("risk_tolerance", json!("LOW")),
        ("investment_experience", json!("expert")),
        ("debt_status", json!("lots")),
        ("age_range", json!("é".repeat(21))),
        ("occupation", json!("ü".repeat(101))),
        ("income_range", json!("₹".repeat(31))),
        ("retirement_planning", json!("maybe")),
        ("occupation", json!(42)),
    ];
    for (field, value) in bad {
        assert_422_names(&submit(&json!({field: value})), field);
    }
    assert_eq!(get_ok(&t, PROFILE, tok), kept);
}

#[test]
fn preferences_default_and_patch_partially() {
    let (t, u) = app_and_user("prefs@example.com");
    let other = register(&t, "prefs-other@example.com");
    let tok = &u.token;
    let patch = |body: Value| call(&t, "PATCH", PREFS, tok, Some(&body));
    let patched = |body: Value| {
        let r = patch(body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let defaults = json!({"use_rag": true, "theme": "light", "language": "en", "currency": "INR"});
    assert_eq!(get_ok(&t, PREFS, tok), defaults);
    let dark = json!({"use_rag": true, "theme": "dark", "language": "en", "currency": "INR"});
    assert_eq!(patched(json!({"theme": "dark"})), dark);
    assert_eq!(get_ok(&t, PREFS, tok), dark);
    let want = json!({"use_rag": false, "theme": "dark", "language": "hi", "currency": "INR"});
    assert_eq!(patched(json!({"use_rag": false, "language": "hi"})), want);
    assert_eq!(patched(json!({})), want);
    for (field, value) in [
        ("theme", json!("blue")),
        ("use_rag", json!("perhaps")),
        ("currency", json!("rupees")),
        ("language", json!("")),
    ] {
        assert_422_names(&patch(json!({field: value})), field);
    }
    assert_eq!(get_ok(&t, PREFS, tok), want);
    assert_eq!(get_ok(&t, PREFS, &other.token), defaults);
}

/// Rows in every user-owned table, made through the API where it can, and directly for the
/// chat tables (their writers are elsewhere).
fn fill_every_table(t: &TestApp, u: &User, tag: &str) {
    let tok = &u.token;
    expect(t, "POST", SUBMIT, tok, Some(&full_profile()), 200);
    expect(t, "PATCH", PREFS, tok, Some(&json!({"theme": "dark"})), 200);
    let ty = type_id(t, tok, "health", 0);
    set_budget(t, tok, &ty, 5_000, 10, 2025);
    let rollover = json!({"allocation_type_id": ty, "mode": "surplus", "month": 10, "year": 2025});
    expect(
        t,
        "PUT",
        "/api/v1/allocations/rollover",
        tok,
        Some(&rollover),
        200,
    );
    // Over the budget: a budget_alert in the notifications table.
    record_actual(t, tok, &ty, 6_000, None, 10, 2025);
    let body = tx_body("income", "salary", "1250.5", tag, "2025-10-01");
    assert_eq!(
        post_with_key(t.http, tok, &format!("key-{tag}"), &body).status,
        201
    );
    // A deleted transaction leaves a sync tombstone (sync_tombstones).
    let gone = create_tx(t, tok, &tx_body("expense", "food", "1", tag, "2025-10-02"));
    delete_tx(t, tok, gone["id"].as_str().expect("id"));
    let rule = json!({"type": "expense", "category": "bills", "label": tag, "amount": "99.5",
                      "frequency": "monthly", "start_date": "2025-10-01"});
    let rule = expect(t, "POST", "/api/v1/recurring", tok, Some(&rule), 201);
    let skip = format!(
        "/api/v1/recurring/{}/skip",
        rule["id"].as_str().expect("id")
    );
    let day = json!({"date": "2025-10-01"});
    expect(t, "POST", &skip, tok, Some(&day), 200);
    let session = format!("session-{tag}");
    t.app()
        .db
        .write(|tx| {
            tx.execute(
                "INSERT INTO chat_sessions (id, user_id) VALUES (?1, ?2)",
                [&session, &u.id],
            )?;
            tx.execute(
                "INSERT INTO chat_messages (id, session_id, user_id, role, content)
                 VALUES (?1, ?2, ?3, 'user', 'hello')",
                [&format!("message-{tag}"), &session, &u.id],
            )?;
            tx.execute(
                "INSERT INTO llm_usage_daily (day, user_id, tokens) VALUES ('2025-10-01', ?1, 5)",
                [&u.id],
            )?;
            // Inserted here like the rows above: this server has no upstream to call tools
            // (tests/api/chat_tools.rs fills the table through the API).
            tx.execute(
                "INSERT INTO chat_tool_calls (id, user_id, session_id, round, call_id, name,
                     arguments, result, created_at)
                 VALUES (?1, ?2, ?3, 1, 'call_1', 'get_month_summary', '{}', '{}', '2025-10-01T00:00:00Z')",
                [&format!("tool-{tag}"), &u.id, &session],
            )?;
            Ok(())
        })
        .expect("seed chat rows");
}

/// A new user with rows in every table.
fn filled_user(t: &TestApp, email: &str) -> User {
    let u = register(t, email);
    fill_every_table(t, &u, email);
    u
}

fn walk_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                walk_keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk_keys(x, out)),
        _ => {}
    }
}

#[test]
fn export_holds_every_row_of_the_user_and_no_secrets() {
    let t = spawn_app();
    let [a, b] = ["export-a@example.com", "export-b@example.com"].map(|e| filled_user(&t, e));
    let r = call(&t, "GET", "/api/v1/users/me/export", &a.token, None);
    assert_eq!(r.status, 200);
    let text = r.text();
    let e = r.json();
    assert_eq!(e["user_id"], a.id.as_str());
    assert_eq!(arr(&e["users"]).len(), 1);
    assert_eq!(e["users"][0]["id"], a.id.as_str());
    assert_eq!(e["users"][0]["email"], "export-a@example.com");
    for table in tables_with_user_id(&t) {
        let rows = arr(&e[table.as_str()]);
        let in_db = count_rows(&t, &table, "user_id", &a.id);
        assert!(in_db > 0, "{table} was not filled");
        assert_eq!(rows.len() as i64, in_db, "{table}");
        for row in rows {
            assert_eq!(row["user_id"], a.id.as_str(), "{table}: {row}");
        }
    }
    assert_eq!(e["transactions"][0]["amount"], json!(1250.5));
    assert_eq!(e["transactions"][0]["label"], "export-a@example.com");
    assert_eq!(e["user_profiles"][0]["occupation"], "Engineer");
    assert_eq!(e["user_preferences"][0]["theme"], "dark");
    assert_eq!(e["user_allocations"][0]["budget_amount"], json!(50));
    assert_eq!(e["recurring"][0]["amount"], json!(99.5));
    assert_eq!(e["recurring_skips"][0]["occurrence_date"], "2025-10-01");

    let mut names = Vec::new();
    walk_keys(&e, &mut names);
    for secret in [
        "password_hash",
        "token_hash",
        "request_hash",
        "response_body",
        "code_hash",
    ] {
        assert!(!names.iter().any(|n| n == secret), "{secret} exported");
    }
    let hash: String = t
        .app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT password_hash FROM users WHERE id = ?1",
                [&a.id],
                |r| r.get(0),
            )?)
        })
        .expect("hash");
    assert!(!text.contains(&hash));
    assert!(!text.contains(PASSWORD));
    assert!(!text.contains(&b.id), "another user's id in the export");
}

#[test]
fn deleting_the_account_removes_every_row_of_that_user_only() {
    let t = spawn_app();
    let [a, b] = ["gone@example.com", "stays@example.com"].map(|e| filled_user(&t, e));
    let tables = tables_with_user_id(&t);
    assert!(tables.len() >= 10, "{tables:?}");
    let counts = |u: &User| -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = tables
            .iter()
            .map(|tb| (tb.clone(), count_rows(&t, tb, "user_id", &u.id)))
            .collect();
        v.push(("users".into(), count_rows(&t, "users", "id", &u.id)));
        v
    };
    let (a_before, b_before) = (counts(&a), counts(&b));
    for (table, n) in a_before.iter().chain(&b_before) {
        assert!(*n > 0, "{table} has no row to delete");
    }
    let b_export = export_rows(&t, &b.token);

    let v = expect(&t, "DELETE", "/api/v1/users/me", &a.token, None, 200);
    assert_eq!(v, json!({"message": "Account deleted"}));
    for (table, n) in counts(&a) {
        assert_eq!(n, 0, "{table} still holds rows of the deleted user");
    }
    assert_eq!(counts(&b), b_before);
    assert_eq!(export_rows(&t, &b.token), b_export);
    let r = call(&t, "GET", "/api/v1/users/me", &a.token, None);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = call(&t, "GET", "/api/v1/allocations", &a.token, None);
    assert_eq!(r.status, 401, "{}", r.text());
}
