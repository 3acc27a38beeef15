//! The tools over an in-memory database: exact figures, one user never seeing another's,
//! every refusal, paging and the result cap.

use jiff::civil::{Date, date};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::{Caller, RESULT_CAP, call, fit, offered};
use crate::budget::catalog::Catalog;
use crate::budget::money::testing::Money;
use crate::budget::period::Period;
use crate::budget::testing::{allocate, at, memory, type_id, user, write};
use crate::budget::transactions::{self, Kind, NewTransaction, TxDate};
use crate::recurring::rules::{self, Spec, Stamp};
use crate::recurring::schedule::Frequency;

const TODAY: Date = date(2025, 10, 20);

struct World {
    c: Connection,
    catalog: Catalog,
    tz: jiff::tz::TimeZone,
    asha: String,
    ravi: String,
}

impl World {
    fn new() -> World {
        let c = memory();
        let catalog = Catalog::load(&c).expect("catalog");
        let asha = user(&c, "asha@example.com");
        let ravi = user(&c, "ravi@example.com");
        World {
            c,
            catalog,
            tz: jiff::tz::TimeZone::get("Asia/Kolkata").expect("tz"),
            asha,
            ravi,
        }
    }

    fn who<'a>(&'a self, user: &'a str) -> Caller<'a> {
        Caller {
            user,
            today: TODAY,
            tz: &self.tz,
            catalog: &self.catalog,
        }
    }

    /// Records a transaction of `paise` at the instant `iso`.
    fn record(
        &mut self,
        user: &str,
        kind: Kind,
        category: &str,
        label: &str,
        paise: i64,
        iso: &str,
    ) {
        let (catalog, tz) = (&self.catalog, &self.tz);
        write(&mut self.c, |tx| {
            let t = NewTransaction {
                kind,
                category: category.into(),
                amount: Money(paise),
                label: label.into(),
                date: TxDate::Instant(at(iso)),
                allocation_type_id: None,
                occurrence: None,
            };
            transactions::create(tx, catalog, tz, user, &t, "2025-10-01T00:00:00Z")
                .expect("transaction");
        });
    }

    fn ask(&self, user: &str, name: &str, args: Value) -> Value {
        self.ask_raw(user, name, &args.to_string())
    }

    fn ask_raw(&self, user: &str, name: &str, args: &str) -> Value {
        let out = call(&self.c, &self.who(user), name, args);
        assert!(text(&out).len() <= RESULT_CAP, "{name}: over the cap");
        out
    }
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).expect("json")
}

/// A number or any value as its JSON text (exact money compares as text).
fn at_path(v: &Value, path: &str) -> String {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key],
        };
    }
    text(cur)
}

fn error_of(v: &Value) -> String {
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {v}"))
        .to_string()
}

/// Asha's October (Kolkata): salary, rent, two food bills, one on the 31st at 20:00 UTC,
/// which is 1 November locally. Ravi has his own figures and a category of his own.
fn october() -> World {
    let mut w = World::new();
    let (a, r) = (w.asha.clone(), w.ravi.clone());
    w.record(
        &a,
        Kind::Income,
        "salary",
        "October salary",
        5_000_000,
        "2025-10-01T04:00:00Z",
    );
    w.record(
        &a,
        Kind::Expense,
        "rent",
        "Flat rent",
        1_500_075,
        "2025-10-05T10:00:00Z",
    );
    w.record(
        &a,
        Kind::Expense,
        "food",
        "Lunch at Cafe",
        45_050,
        "2025-10-10T10:00:00Z",
    );
    w.record(
        &a,
        Kind::Expense,
        "food",
        "DINNER 50% off",
        99_900,
        "2025-10-15T10:00:00Z",
    );
    w.record(
        &a,
        Kind::Expense,
        "food",
        "late snack",
        10_000,
        "2025-10-31T20:00:00Z",
    );
    w.record(
        &r,
        Kind::Income,
        "salary",
        "Ravi pay",
        777_700,
        "2025-10-02T10:00:00Z",
    );
    w.record(
        &r,
        Kind::Expense,
        "ravi-secret",
        "RaviLabel",
        123_400,
        "2025-10-12T10:00:00Z",
    );
    w
}

#[test]
fn month_summary_gives_the_months_totals_and_budget() {
    let mut w = october();
    let (catalog, asha) = (Catalog::load(&w.c).expect("catalog"), w.asha.clone());
    let ty = type_id(&catalog, "freedom", 0);
    let p = Period {
        year: 2025,
        month: 10,
    };
    write(&mut w.c, |tx| {
        allocate(tx, &catalog, &asha, &ty, p, (1_000_000, 250_050))
    });
    let v = w.ask(
        &w.asha,
        "get_month_summary",
        json!({"year": 2025, "month": 10}),
    );
    assert_eq!(at_path(&v, "total_income"), "50000");
    assert_eq!(at_path(&v, "total_expense"), "16450.25");
    assert_eq!(at_path(&v, "balance"), "33549.75");
    assert_eq!(at_path(&v, "transaction_count"), "4");
    assert_eq!(at_path(&v, "total_budget"), "10000");
    assert_eq!(at_path(&v, "total_actual"), "2500.5");
    assert_eq!(v["categories"].as_array().map(Vec::len), Some(6));
    assert_eq!(
        v["categories"][0],
        json!({"category": "freedom", "label": "FREEDOM (Financial Independence)",
               "budget": Money(1_000_000), "actual": Money(250_050)})
    );
    // The snack is November's, locally.
    let nov = w.ask(
        &w.asha,
        "get_month_summary",
        json!({"year": 2025, "month": 11}),
    );
    assert_eq!(at_path(&nov, "total_expense"), "100");
    assert_eq!(at_path(&nov, "transaction_count"), "1");
    // Ravi sees his own month only.
    let v = w.ask(
        &w.ravi,
        "get_month_summary",
        json!({"year": 2025, "month": 10}),
    );
    assert_eq!(at_path(&v, "total_income"), "7777");
    assert_eq!(at_path(&v, "total_expense"), "1234");
    assert_eq!(at_path(&v, "total_budget"), "0");
}

#[test]
fn allocations_show_categories_and_only_types_with_figures() {
    let mut w = World::new();
    let (catalog, asha) = (Catalog::load(&w.c).expect("catalog"), w.asha.clone());
    let ty = type_id(&catalog, "health", 1);
    let p = Period {
        year: 2025,
        month: 9,
    };
    write(&mut w.c, |tx| {
        allocate(tx, &catalog, &asha, &ty, p, (300_000, 120_025))
    });
    let v = w.ask(
        &w.asha,
        "get_allocations",
        json!({"year": 2025, "month": 9}),
    );
    assert_eq!(at_path(&v, "total_budget"), "3000");
    assert_eq!(at_path(&v, "total_actual"), "1200.25");
    assert_eq!(at_path(&v, "total_available"), "1799.75");
    let cats = v["categories"].as_array().expect("categories");
    assert_eq!(cats.len(), 6);
    let health = &cats[1];
    assert_eq!(health["category"], "health");
    for (field, want) in [
        ("budget", "3000"),
        ("recorded", "1200.25"),
        ("spent", "0"),
        ("actual", "1200.25"),
        ("carry_in", "0"),
        ("available", "1799.75"),
    ] {
        assert_eq!(text(&health[field]), want, "{field}");
    }
    let types = health["types"].as_array().expect("types");
    assert_eq!(types.len(), 1);
    assert_eq!(types[0]["type"], json!(catalog.categories[1].types[1].name));
    assert_eq!(text(&types[0]["available"]), "1799.75");
    assert!(
        cats.iter()
            .filter(|c| c["category"] != "health")
            .all(|c| c["types"] == json!([]) && text(&c["budget"]) == "0")
    );
    // Another user's month is empty.
    let v = w.ask(
        &w.ravi,
        "get_allocations",
        json!({"year": 2025, "month": 9}),
    );
    assert_eq!(at_path(&v, "total_budget"), "0");
    assert!(
        v["categories"]
            .as_array()
            .expect("c")
            .iter()
            .all(|c| c["types"] == json!([]))
    );
}

#[test]
fn transactions_newest_first_with_totals_local_dates_and_filters() {
    let w = october();
    let range = json!({"start_date": "2025-10-01", "end_date": "2025-10-31"});
    let v = w.ask(&w.asha, "get_transactions", range.clone());
    assert_eq!(
        v,
        json!({
            "start_date": "2025-10-01", "end_date": "2025-10-31", "page": 1, "total_pages": 1,
            "total_results": 4, "total_income": Money(5_000_000), "total_expense": Money(1_645_025),
            "transactions": [
                {"date": "2025-10-15", "type": "expense", "category": "food", "label": "DINNER 50% off", "amount": Money(99_900)},
                {"date": "2025-10-10", "type": "expense", "category": "food", "label": "Lunch at Cafe", "amount": Money(45_050)},
                {"date": "2025-10-05", "type": "expense", "category": "rent", "label": "Flat rent", "amount": Money(1_500_075)},
                {"date": "2025-10-01", "type": "income", "category": "salary", "label": "October salary", "amount": Money(5_000_000)},
            ]
        })
    );
    // 1 November locally, though 31 October in UTC.
    let v = w.ask(
        &w.asha,
        "get_transactions",
        json!({"start_date": "2025-11-01", "end_date": "2025-11-01"}),
    );
    assert_eq!(v["transactions"][0]["date"], "2025-11-01");
    assert_eq!(v["total_results"], 1);

    let with = |extra: Value| {
        let mut a = range.clone();
        for (k, x) in extra.as_object().expect("object") {
            a[k] = x.clone();
        }
        w.ask(&w.asha, "get_transactions", a)
    };
    let labels = |v: &Value| -> Vec<String> {
        v["transactions"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["label"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let v = with(json!({"type": "income"}));
    assert_eq!(labels(&v), ["October salary"]);
    assert_eq!(
        (text(&v["total_income"]), text(&v["total_expense"])),
        ("50000".into(), "0".into())
    );
    let v = with(json!({"type": "expense", "category": "food"}));
    assert_eq!(labels(&v), ["DINNER 50% off", "Lunch at Cafe"]);
    assert_eq!(text(&v["total_expense"]), "1449.5");
    let v = with(json!({"type": "any", "category": null, "search": "cafe"}));
    assert_eq!(labels(&v), ["Lunch at Cafe"]);
    assert_eq!(v["total_results"], 1);
    // Wildcards are literal: `%` matches a percent sign only, `_` an underscore only.
    assert_eq!(labels(&with(json!({"search": "50%"}))), ["DINNER 50% off"]);
    assert_eq!(labels(&with(json!({"search": "%"}))), ["DINNER 50% off"]);
    assert!(labels(&with(json!({"search": "_"}))).is_empty());
    assert!(labels(&with(json!({"search": "Lunch%Cafe"}))).is_empty());
    assert_eq!(
        labels(&with(json!({"search": "dinner"}))),
        ["DINNER 50% off"]
    );
}

#[test]
fn transactions_page_by_25() {
    let mut w = World::new();
    let a = w.asha.clone();
    for i in 0..30 {
        let iso = format!("2025-09-{:02}T06:00:00Z", i + 1);
        w.record(
            &a,
            Kind::Expense,
            "food",
            &format!("meal {i}"),
            100 + i,
            &iso,
        );
    }
    let page = |n: i64| {
        w.ask(
            &w.asha,
            "get_transactions",
            json!({"start_date": "2025-09-01", "end_date": "2025-09-30", "page": n}),
        )
    };
    let one = page(1);
    let list = one["transactions"].as_array().expect("list");
    assert_eq!(list.len(), 25);
    assert_eq!(list[0]["label"], "meal 29");
    assert_eq!(list[24]["label"], "meal 5");
    assert_eq!(
        (one["total_results"].clone(), one["total_pages"].clone()),
        (json!(30), json!(2))
    );
    // Σ 100..=129 paise.
    assert_eq!(text(&one["total_expense"]), "34.35");
    let two = page(2);
    let labels: Vec<&str> = two["transactions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["label"].as_str())
        .collect();
    assert_eq!(labels, ["meal 4", "meal 3", "meal 2", "meal 1", "meal 0"]);
    assert_eq!(text(&two["total_expense"]), "34.35");
    let three = page(3);
    assert_eq!(three["transactions"], json!([]));
    assert_eq!(three["total_results"], 30);
}

#[test]
fn spending_by_category_largest_first_expenses_only() {
    let w = october();
    let v = w.ask(
        &w.asha,
        "get_spending_by_category",
        json!({"start_date": "2025-10-01", "end_date": "2025-11-30"}),
    );
    assert_eq!(
        v,
        json!({
            "start_date": "2025-10-01", "end_date": "2025-11-30",
            "total_expense": Money(1_655_025),
            "categories": [
                {"category": "rent", "total": Money(1_500_075), "count": 1},
                {"category": "food", "total": Money(154_950), "count": 3},
            ]
        })
    );
    // Whole local days: the 31 October 20:00 UTC snack is not October's in Kolkata.
    let v = w.ask(
        &w.asha,
        "get_spending_by_category",
        json!({"start_date": "2025-10-10", "end_date": "2025-10-31"}),
    );
    assert_eq!(
        v["categories"],
        json!([{"category": "food", "total": Money(144_950), "count": 2}])
    );
    let v = w.ask(
        &w.ravi,
        "get_spending_by_category",
        json!({"start_date": "2025-10-01", "end_date": "2025-10-31"}),
    );
    assert_eq!(
        v["categories"],
        json!([{"category": "ravi-secret", "total": Money(123_400), "count": 1}])
    );
}

fn rule(label: &str, kind: Kind, paise: i64, start: Date) -> Spec {
    Spec {
        kind,
        category: "bills".into(),
        label: label.into(),
        amount: Money(paise),
        allocation_type_id: None,
        frequency: Frequency::Monthly,
        start_date: start,
        end_date: None,
        occurrences: None,
        auto_post: false,
        remind_days_before: 2,
    }
}

#[test]
fn upcoming_bills_from_today_neither_posted_nor_skipped() {
    let mut w = World::new();
    let (a, r) = (w.asha.clone(), w.ravi.clone());
    let stamp = Stamp {
        today: TODAY,
        now: "2025-10-20T05:00:00Z",
    };
    write(&mut w.c, |tx| {
        // 5th of each month: the 5 October one is overdue, not upcoming.
        rules::create(
            tx,
            &a,
            &rule("Internet", Kind::Expense, 99_900, date(2025, 1, 5)),
            &stamp,
        )
        .expect("internet");
        // Today and every month after; November's is skipped.
        let rent = rules::create(
            tx,
            &a,
            &rule("Rent", Kind::Expense, 1_500_000, date(2025, 8, 20)),
            &stamp,
        )
        .expect("rent");
        rules::skip(tx, &a, &rent.id, date(2025, 11, 20), &stamp).expect("skip");
        rules::create(
            tx,
            &a,
            &rule("Salary", Kind::Income, 5_000_000, date(2025, 7, 31)),
            &stamp,
        )
        .expect("salary");
        rules::create(
            tx,
            &r,
            &rule("Ravi gym", Kind::Expense, 200_000, date(2025, 10, 21)),
            &stamp,
        )
        .expect("ravi");
    });
    let v = w.ask(&w.asha, "get_upcoming_bills", json!({"days": 30}));
    let bill = |d: &str, kind: &str, label: &str, paise: i64, status: &str| {
        json!({"date": d, "type": kind, "category": "bills", "label": label,
               "amount": Money(paise), "status": status})
    };
    assert_eq!(
        v,
        json!({
            "from": "2025-10-20", "to": "2025-11-19", "count": 3,
            "total_expense": Money(1_599_900), "total_income": Money(5_000_000),
            "bills": [
                bill("2025-10-20", "expense", "Rent", 1_500_000, "due"),
                bill("2025-10-31", "income", "Salary", 5_000_000, "upcoming"),
                bill("2025-11-05", "expense", "Internet", 99_900, "upcoming"),
            ]
        })
    );
    let v = w.ask(&w.asha, "get_upcoming_bills", json!({"days": 1}));
    assert_eq!(v["count"], 1);
    let v = w.ask(&w.asha, "get_upcoming_bills", json!({"days": 60}));
    let dates: Vec<&str> = v["bills"]
        .as_array()
        .expect("bills")
        .iter()
        .filter_map(|b| b["date"].as_str())
        .collect();
    // 20 November is skipped.
    assert_eq!(
        dates,
        [
            "2025-10-20",
            "2025-10-31",
            "2025-11-05",
            "2025-11-30",
            "2025-12-05"
        ]
    );
    let v = w.ask(&w.ravi, "get_upcoming_bills", json!({"days": 30}));
    assert_eq!(v["count"], 1);
    assert_eq!(v["bills"][0]["label"], "Ravi gym");
}

#[test]
fn one_user_never_sees_anothers_figures() {
    let w = october();
    let range = json!({"start_date": "2025-10-01", "end_date": "2025-10-31"});
    let outputs = [
        w.ask(&w.asha, "get_transactions", range.clone()),
        w.ask(&w.asha, "get_spending_by_category", range.clone()),
        w.ask(
            &w.asha,
            "get_month_summary",
            json!({"year": 2025, "month": 10}),
        ),
        w.ask(
            &w.asha,
            "get_allocations",
            json!({"year": 2025, "month": 10}),
        ),
        w.ask(&w.asha, "get_upcoming_bills", json!({"days": 90})),
        w.ask(
            &w.asha,
            "get_transactions",
            json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "search": "RaviLabel"}),
        ),
    ];
    for out in &outputs {
        let t = text(out);
        for secret in ["ravi", "Ravi", "7777", "1234"] {
            assert!(!t.contains(secret), "{secret} in {t}");
        }
    }
    assert_eq!(outputs[5]["total_results"], 0);
    // Ravi's category is not in Asha's enum, and naming it is refused.
    let tools = offered(&w.c, &w.who(&w.asha)).expect("offered");
    let asha_enum = &tools[1]["function"]["parameters"]["properties"]["category"]["enum"];
    assert_eq!(asha_enum, &json!(["food", "rent", "salary", null]));
    let tools = offered(&w.c, &w.who(&w.ravi)).expect("offered");
    let ravi_enum = &tools[1]["function"]["parameters"]["properties"]["category"]["enum"];
    assert_eq!(ravi_enum, &json!(["ravi-secret", "salary", null]));
    let v = w.ask(
        &w.asha,
        "get_transactions",
        json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "category": "ravi-secret"}),
    );
    let e = error_of(&v);
    assert!(
        e.starts_with("category: 'ravi-secret' is not one of the allowed values"),
        "{e}"
    );
    assert!(!v.to_string().contains("1234"));
}

#[test]
fn offered_tools_are_closed_schemas() {
    let w = october();
    let tools = offered(&w.c, &w.who(&w.asha)).expect("offered");
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "get_month_summary",
            "get_transactions",
            "get_spending_by_category",
            "get_allocations",
            "get_upcoming_bills"
        ]
    );
    for t in &tools {
        assert_eq!(t["type"], "function");
        let p = &t["function"]["parameters"];
        assert_eq!(p["type"], "object");
        assert_eq!(p["additionalProperties"], false, "{t}");
        assert!(
            t["function"]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        for (name, prop) in p["properties"].as_object().expect("properties") {
            assert!(
                prop["type"].is_string() || prop["type"].is_array(),
                "{name}"
            );
            assert!(prop["description"].is_string(), "{name}");
        }
    }
    let get = |i: usize| tools[i]["function"]["parameters"].clone();
    assert_eq!(get(0)["required"], json!(["year", "month"]));
    assert_eq!(
        get(0)["properties"]["month"],
        json!({"type": "integer", "minimum": 1, "maximum": 12, "description": "The month, 1..12."})
    );
    assert_eq!(get(1)["required"], json!(["start_date", "end_date"]));
    assert_eq!(
        get(1)["properties"]["type"]["enum"],
        json!(["income", "expense", "any"])
    );
    assert_eq!(
        get(1)["properties"]["category"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(get(1)["properties"]["search"]["maxLength"], 100);
    assert_eq!(get(4)["properties"]["days"]["maximum"], 90);
    // A user with no transactions: only null.
    let c = memory();
    let lone = user(&c, "lone@example.com");
    let tools = offered(&c, &w.who(&lone)).expect("offered");
    assert_eq!(
        tools[1]["function"]["parameters"]["properties"]["category"]["enum"],
        json!([null])
    );
}

#[test]
fn every_bad_call_is_an_error_naming_the_argument() {
    let w = october();
    let a = &w.asha;
    let ym = "get_month_summary";
    let tx = "get_transactions";
    let cases: Vec<(&str, String, &str)> = vec![
        ("get_balance", "{}".into(), "unknown tool 'get_balance'; the tools are get_month_summary"),
        (ym, "{\"year\": 2025,".into(), "arguments are not valid JSON"),
        (ym, "[2025, 10]".into(), "arguments must be a JSON object"),
        (ym, "\"2025-10\"".into(), "arguments must be a JSON object"),
        (ym, "null".into(), "arguments must be a JSON object"),
        (ym, json!({"year": 2025, "month": 10, "user_id": "x"}).to_string(), "unknown argument 'user_id'"),
        (ym, json!({"year": 2025}).to_string(), "month: required argument is missing"),
        (ym, "".into(), "year: required argument is missing; month: required argument is missing"),
        (ym, json!({"year": "2025", "month": 10}).to_string(), "year: must be an integer"),
        (ym, json!({"year": 2025, "month": 10.5}).to_string(), "month: must be an integer"),
        (ym, json!({"year": 2025, "month": true}).to_string(), "month: must be an integer"),
        (ym, json!({"year": 2025, "month": null}).to_string(), "month: must not be null"),
        (ym, json!({"year": 2025, "month": 13}).to_string(), "month: must be between 1 and 12"),
        (ym, json!({"year": 2025, "month": 0}).to_string(), "month: must be between 1 and 12"),
        ("get_allocations", json!({"year": 2019, "month": 1}).to_string(), "year: must be between 2020 and 2100"),
        ("get_allocations", json!({"year": 2101, "month": 1}).to_string(), "year: must be between 2020 and 2100"),
        (tx, json!({"start_date": "2025-10-01"}).to_string(), "end_date: required argument is missing"),
        (tx, json!({"start_date": "01/10/2025", "end_date": "2025-10-31"}).to_string(), "start_date: input should be a valid date in the format YYYY-MM-DD"),
        (tx, json!({"start_date": 20251001, "end_date": "2025-10-31"}).to_string(), "start_date: must be a string YYYY-MM-DD"),
        (tx, json!({"start_date": "2019-12-31", "end_date": "2020-01-31"}).to_string(), "start_date: date must be between 2020 and 2100"),
        (tx, json!({"start_date": "2025-10-31", "end_date": "2025-10-01"}).to_string(), "end_date: must not be before start_date"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "type": "both"}).to_string(), "type: 'both' is not one of the allowed values (income, expense, any)"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "type": null}).to_string(), "type: must not be null"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "category": "Food"}).to_string(), "category: 'Food' is not one of the allowed values (food, rent, salary)"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "category": 3}).to_string(), "category: must be a string"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "search": "x".repeat(101)}).to_string(), "search: must be at most 100 characters"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "page": 0}).to_string(), "page: must be between 1 and 10000"),
        (tx, json!({"start_date": "2025-10-01", "end_date": "2025-10-31", "page": "2"}).to_string(), "page: must be an integer"),
        ("get_spending_by_category", json!({"start_date": "2025-10-01"}).to_string(), "end_date: required argument is missing"),
        ("get_upcoming_bills", json!({}).to_string(), "days: required argument is missing"),
        ("get_upcoming_bills", json!({"days": 0}).to_string(), "days: must be between 1 and 90"),
        ("get_upcoming_bills", json!({"days": 91}).to_string(), "days: must be between 1 and 90"),
        ("get_upcoming_bills", json!({"days": -1}).to_string(), "days: must be between 1 and 90"),
        ("get_upcoming_bills", json!({"days": 30, "from": "2025-01-01"}).to_string(), "unknown argument 'from'"),
        ("get_upcoming_bills", "x".repeat(20_000), "arguments are too long"),
    ];
    for (name, args, want) in cases {
        let v = w.ask_raw(a, name, &args);
        let e = error_of(&v);
        assert!(e.starts_with(want), "{name} {args}: {e}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    }
    // A whole number written with a fraction or an exponent is an integer, as in JSON Schema.
    let v = w.ask_raw(a, ym, r#"{"year": 2025.0, "month": 1e1}"#);
    assert_eq!(v["month"], 10);
    // Many problems at once are listed, up to five, and huge names are cut.
    let many: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("{i}{}", "k".repeat(200)), json!(1)))
        .collect();
    let e = error_of(&w.ask_raw(a, ym, &Value::Object(many).to_string()));
    assert!(e.ends_with("; and 47 more"), "{e}");
    assert!(e.len() < 600, "{e}");
    let e = error_of(&w.ask(a, &"x".repeat(10_000), json!({})));
    assert!(e.len() < 300, "{e}");
}

#[test]
fn ranges_over_366_days_are_refused() {
    let w = october();
    for tool in ["get_transactions", "get_spending_by_category"] {
        // 2024 is a leap year: 1 Jan 2024 to 1 Jan 2025 is 366 days.
        let v = w.ask(
            &w.asha,
            tool,
            json!({"start_date": "2024-01-01", "end_date": "2025-01-01"}),
        );
        assert!(v.get("error").is_none(), "{tool}: {v}");
        let v = w.ask(
            &w.asha,
            tool,
            json!({"start_date": "2024-01-01", "end_date": "2025-01-02"}),
        );
        assert_eq!(
            error_of(&v),
            "end_date: must be at most 366 days after start_date; ask for a shorter range"
        );
        let v = w.ask(
            &w.asha,
            tool,
            json!({"start_date": "2020-01-01", "end_date": "2100-12-31"}),
        );
        assert!(error_of(&v).starts_with("end_date: must be at most 366 days"));
    }
}

#[test]
fn long_results_are_cut_to_the_cap_and_say_so() {
    let mut w = World::new();
    let a = w.asha.clone();
    // 200-character labels full of characters JSON escapes: about 1 KB each once written.
    let label = "\"\u{1}\\".repeat(66);
    for i in 0..25 {
        let iso = format!("2025-09-{:02}T06:00:00Z", i + 1);
        w.record(
            &a,
            Kind::Expense,
            "food",
            &format!("{label}{i:02}"),
            100,
            &iso,
        );
    }
    let v = w.ask(
        &w.asha,
        "get_transactions",
        json!({"start_date": "2025-09-01", "end_date": "2025-09-30"}),
    );
    let out = text(&v);
    assert!(out.len() <= RESULT_CAP, "{}", out.len());
    let back: Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(back["truncated"], true);
    let shown = back["shown"].as_u64().expect("shown");
    assert!(shown > 0 && shown < 25, "{shown}");
    assert_eq!(
        back["transactions"].as_array().map(Vec::len),
        Some(shown as usize)
    );
    assert_eq!(back["total_results"], 25);
    assert_eq!(text(&back["total_expense"]), "25");
    assert!(
        back["note"]
            .as_str()
            .is_some_and(|n| n.contains(&format!("first {shown} of 25 transactions")))
    );
    // The newest are the ones kept.
    assert!(
        back["transactions"][0]["label"]
            .as_str()
            .is_some_and(|l| l.ends_with("24"))
    );
    // One item more would not have fit.
    assert!(out.len() + 1000 > RESULT_CAP);
}

#[test]
fn fit_keeps_what_fits_and_never_breaks_the_cap() {
    let small = json!({"n": 1, "items": [1, 2, 3]});
    assert_eq!(fit(small.clone(), "items"), small);
    let items: Vec<Value> = (0..2000)
        .map(|i| json!({"i": i, "s": "y".repeat(30)}))
        .collect();
    let v = fit(json!({"n": 1, "items": items}), "items");
    let out = text(&v);
    assert!(
        out.len() <= RESULT_CAP && out.len() > RESULT_CAP - 60,
        "{}",
        out.len()
    );
    assert_eq!(v["items"][0]["i"], 0);
    assert_eq!(
        v["shown"].as_u64(),
        v["items"].as_array().map(|a| a.len() as u64)
    );
    // A single item larger than the cap: none is shown, still valid and under the cap.
    let v = fit(json!({"items": ["z".repeat(20_000)]}), "items");
    assert_eq!(
        (v["shown"].clone(), v["items"].clone()),
        (json!(0), json!([]))
    );
    // No list to cut: an error, not a broken result.
    let v = fit(json!({"other": "z".repeat(20_000)}), "items");
    assert_eq!(v, json!({"error": "the result is too large"}));
}

/// Every one of the 34 types with large figures: about 6.3 KB, so never cut.
#[test]
fn a_full_allocation_month_fits_whole() {
    let mut w = World::new();
    let (catalog, asha) = (Catalog::load(&w.c).expect("catalog"), w.asha.clone());
    let p = Period {
        year: 2025,
        month: 10,
    };
    write(&mut w.c, |tx| {
        for cat in &catalog.categories {
            for t in &cat.types {
                allocate(
                    tx,
                    &catalog,
                    &asha,
                    &t.id,
                    p,
                    (12_345_678_901, 9_876_543_212),
                );
            }
        }
    });
    let v = w.ask(
        &w.asha,
        "get_allocations",
        json!({"year": 2025, "month": 10}),
    );
    assert!(v.get("truncated").is_none(), "{v}");
    let types: usize = v["categories"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c["types"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(types, 34);
}
