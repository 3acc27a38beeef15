//! Dates are the user's wall clock (issue 10.2) and `GET /transactions?from=&to=` (issue 10.6),
//! against real servers running in `Asia/Kolkata` (+05:30) and `America/New_York` (DST).

use crate::{common, money_support};

use common::*;
use money_support::*;
use serde_json::{Value, json};

fn zoned(tz: &str, email: &str) -> (TestApp, User) {
    let t = spawn_app_with(&[("APP_TIMEZONE", tz)]);
    let u = register(&t, email);
    (t, u)
}

/// `[type, category, amount, label, transaction_date]`, then the echoed instant, month, year.
type Case<'a> = ([&'a str; 5], &'a str, u32, i32);

/// Posts each case and checks what comes back; the ids, in order.
fn post_all(t: &TestApp, tok: &str, cases: &[Case]) -> Vec<String> {
    let mut ids = Vec::new();
    for (tx, echoed, month, year) in cases {
        let v = add_tx(t, tok, *tx);
        let sent = tx[4];
        assert_eq!(v["transaction_date"], *echoed, "{sent}: {v}");
        assert_eq!(
            (&v["month"], &v["year"]),
            (&json!(month), &json!(year)),
            "{sent}: {v}"
        );
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    ids
}

/// `(count, income paise, expense paise)` of a month's balance.
fn month_totals(t: &TestApp, tok: &str, month: u32, year: i32) -> (i64, i64, i64) {
    let b = balance(t, tok, month, year);
    let count = b["transaction_count"].as_i64().expect("count");
    (count, paise(&b["total_income"]), paise(&b["total_expense"]))
}

fn labels(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|x| x["label"].as_str().expect("label").to_string())
        .collect()
}

fn list(t: &TestApp, tok: &str, query: &str) -> Vec<String> {
    let v = get_ok(t, &format!("{TXS}?{query}"), tok);
    labels(v.as_array().expect("a bare array"))
}

#[test]
fn kolkata_dates_without_an_offset_are_local_wall_clock() {
    let (t, u) = zoned("Asia/Kolkata", "kolkata-dates@example.com");
    let tok = u.token.as_str();
    let ids = post_all(
        &t,
        tok,
        &[
            // The dinner: 20:00 on 31 October in Kolkata is 14:30 UTC, still October.
            (
                ["expense", "food", "1500", "dinner", "2025-10-31T20:00:00"],
                "2025-10-31T14:30:00Z",
                10,
                2025,
            ),
            // A date alone is local midnight: 18:30 UTC the day before, same month.
            (
                ["income", "salary", "50000", "pay", "2025-10-18"],
                "2025-10-17T18:30:00Z",
                10,
                2025,
            ),
            // First of the month: the instant is in the previous UTC month, the month is local.
            (
                ["expense", "rent", "20000", "rent", "2025-11-01"],
                "2025-10-31T18:30:00Z",
                11,
                2025,
            ),
            (
                [
                    "expense",
                    "food",
                    "100",
                    "last minute",
                    "2025-10-31T23:59:59",
                ],
                "2025-10-31T18:29:59Z",
                10,
                2025,
            ),
            // With Z or an offset the value is that instant; the month is still the local one.
            (
                ["expense", "food", "200", "utc", "2025-10-31T20:00:00Z"],
                "2025-10-31T20:00:00Z",
                11,
                2025,
            ),
            (
                [
                    "expense",
                    "food",
                    "300",
                    "offset",
                    "2025-11-01T01:00:00+05:30",
                ],
                "2025-10-31T19:30:00Z",
                11,
                2025,
            ),
            // Year ends: local new year is still UTC's old year.
            (
                ["expense", "party", "400", "new year", "2026-01-01"],
                "2025-12-31T18:30:00Z",
                1,
                2026,
            ),
            (
                ["income", "gift", "500", "first day", "2020-01-01"],
                "2019-12-31T18:30:00Z",
                1,
                2020,
            ),
        ],
    );

    assert_eq!(month_totals(&t, tok, 10, 2025), (3, 5_000_000, 160_000));
    assert_eq!(month_totals(&t, tok, 11, 2025), (3, 0, 2_050_000));
    assert_eq!(month_totals(&t, tok, 1, 2026), (1, 0, 40_000));
    assert_eq!(month_totals(&t, tok, 1, 2020), (1, 50_000, 0));
    assert_eq!(
        list(&t, tok, "month=10&year=2025"),
        ["last minute", "dinner", "pay"]
    );
    assert_eq!(
        list(&t, tok, "month=11&year=2025"),
        ["utc", "offset", "rent"]
    );

    // PATCH reads a naive date the same way, and moves the totals to the local month.
    let id = &ids[0];
    let moved = patch_tx(&t, tok, id, &json!({"transaction_date": "2025-12-01"}));
    assert_eq!(moved["transaction_date"], "2025-11-30T18:30:00Z");
    assert_eq!(
        (&moved["month"], &moved["year"]),
        (&json!(12), &json!(2025))
    );
    assert_eq!(month_totals(&t, tok, 10, 2025), (2, 5_000_000, 10_000));
    assert_eq!(month_totals(&t, tok, 12, 2025), (1, 0, 150_000));
    let back = patch_tx(
        &t,
        tok,
        id,
        &json!({"transaction_date": "2025-10-31T20:00:00"}),
    );
    assert_eq!(back["transaction_date"], "2025-10-31T14:30:00Z");
    assert_eq!(back["month"], 10);
    assert_eq!(month_totals(&t, tok, 10, 2025), (3, 5_000_000, 160_000));
    assert_eq!(month_totals(&t, tok, 12, 2025), (0, 0, 0));
}

#[test]
fn new_york_dates_are_local_across_months_and_daylight_saving() {
    let (t, u) = zoned("America/New_York", "ny-dates@example.com");
    let tok = u.token.as_str();
    post_all(
        &t,
        tok,
        &[
            // The second case: a date alone must not land in the previous month.
            (
                ["expense", "rent", "2000", "rent", "2025-11-01"],
                "2025-11-01T04:00:00Z",
                11,
                2025,
            ),
            (
                ["expense", "food", "30", "halloween", "2025-10-31T23:30:00"],
                "2025-11-01T03:30:00Z",
                10,
                2025,
            ),
            // Winter: -05:00.
            (
                ["income", "salary", "5000", "december pay", "2025-12-01"],
                "2025-12-01T05:00:00Z",
                12,
                2025,
            ),
            (
                ["expense", "food", "10", "late utc", "2025-12-01T03:00:00Z"],
                "2025-12-01T03:00:00Z",
                11,
                2025,
            ),
            (
                [
                    "expense",
                    "food",
                    "20",
                    "offset",
                    "2025-12-01T00:00:01-05:00",
                ],
                "2025-12-01T05:00:01Z",
                12,
                2025,
            ),
            // Spring forward (2025-03-09, 02:00 -> 03:00): 02:30 does not exist, becomes 03:30 EDT.
            (
                ["expense", "food", "1", "gap", "2025-03-09T02:30:00"],
                "2025-03-09T07:30:00Z",
                3,
                2025,
            ),
            // Fall back (2025-11-02, 02:00 -> 01:00): 01:30 happens twice; the first, EDT, is taken.
            (
                ["expense", "food", "2", "fold", "2025-11-02T01:30:00"],
                "2025-11-02T05:30:00Z",
                11,
                2025,
            ),
            // The last evening of 2100 is already 2101 in UTC, and still a month a route shows.
            (
                ["expense", "party", "3", "2100 ends", "2100-12-31T22:00:00"],
                "2101-01-01T03:00:00Z",
                12,
                2100,
            ),
        ],
    );

    assert_eq!(month_totals(&t, tok, 10, 2025), (1, 0, 3_000));
    assert_eq!(month_totals(&t, tok, 11, 2025), (3, 0, 201_200));
    assert_eq!(month_totals(&t, tok, 12, 2025), (2, 500_000, 2_000));
    assert_eq!(month_totals(&t, tok, 3, 2025), (1, 0, 100));
    assert_eq!(month_totals(&t, tok, 12, 2100), (1, 0, 300));
    assert_eq!(
        list(&t, tok, "month=11&year=2025"),
        ["late utc", "fold", "rent"]
    );
    assert_eq!(
        list(&t, tok, "month=12&year=2025"),
        ["offset", "december pay"]
    );
    assert_eq!(list(&t, tok, "month=10&year=2025"), ["halloween"]);
}

#[test]
fn utc_servers_read_dates_as_before() {
    let (t, u) = zoned("UTC", "utc-dates@example.com");
    post_all(
        &t,
        &u.token,
        &[
            (
                ["expense", "food", "1", "date", "2025-11-01"],
                "2025-11-01T00:00:00Z",
                11,
                2025,
            ),
            (
                ["expense", "food", "1", "naive", "2025-10-31T20:00:00"],
                "2025-10-31T20:00:00Z",
                10,
                2025,
            ),
        ],
    );
}

/// Kolkata transactions around the October/November boundary, as local times.
fn kolkata_boundary() -> (TestApp, User) {
    let (t, u) = zoned("Asia/Kolkata", "kolkata-range@example.com");
    for tx in [
        ["expense", "food", "1", "sep last", "2025-09-30T23:59:59"],
        ["expense", "food", "2", "oct first", "2025-10-01"],
        ["income", "salary", "3", "oct pay", "2025-10-15T12:00:00"],
        ["expense", "rent", "4", "oct last", "2025-10-31T23:59:59"],
        // 18:30Z is local midnight: the first second of 1 November in Kolkata.
        [
            "expense",
            "food",
            "5",
            "nov first utc",
            "2025-10-31T18:30:00Z",
        ],
        ["expense", "food", "6", "nov first", "2025-11-01T09:00:00"],
    ] {
        add_tx(&t, &u.token, tx);
    }
    (t, u)
}

#[test]
fn from_to_are_inclusive_local_days() {
    let (t, u) = kolkata_boundary();
    let tok = u.token.as_str();
    let october = list(&t, tok, "from=2025-10-01&to=2025-10-31");
    assert_eq!(october, ["oct last", "oct pay", "oct first"]);
    // The same rows as the month: the two ways of asking agree.
    assert_eq!(list(&t, tok, "month=10&year=2025&limit=200"), october);
    assert_eq!(
        list(&t, tok, "from=2025-11-01&to=2025-11-01"),
        ["nov first", "nov first utc"]
    );
    assert_eq!(list(&t, tok, "from=2025-09-30&to=2025-09-30"), ["sep last"]);
    assert_eq!(list(&t, tok, "from=2025-10-02&to=2025-10-30"), ["oct pay"]);
    assert_eq!(
        list(&t, tok, "from=2025-12-01&to=2025-12-31"),
        Vec::<String>::new()
    );
    // The other filters and paging still apply.
    assert_eq!(
        list(
            &t,
            tok,
            "from=2025-09-01&to=2025-11-30&type=expense&category=food"
        ),
        ["nov first", "nov first utc", "oct first", "sep last"]
    );
    assert_eq!(
        list(&t, tok, "from=2025-09-01&to=2025-11-30&limit=2&offset=1"),
        ["nov first utc", "oct last"]
    );
    // Exactly 366 days apart is allowed.
    assert_eq!(list(&t, tok, "from=2024-10-30&to=2025-10-31").len(), 4);
    // Another user's rows are never listed.
    let other = register(&t, "kolkata-range-other@example.com");
    assert_eq!(
        list(&t, &other.token, "from=2025-09-01&to=2025-11-30"),
        Vec::<String>::new()
    );
}

#[test]
fn from_to_follow_a_new_york_day_through_daylight_saving() {
    let (t, u) = zoned("America/New_York", "ny-range@example.com");
    let tok = u.token.as_str();
    for tx in [
        ["expense", "food", "1", "before", "2025-11-01T03:59:59Z"],
        ["expense", "food", "2", "midnight", "2025-11-01T04:00:00Z"],
        // 2 November is 25 hours long: it ends at 05:00Z on the 3rd.
        [
            "expense",
            "food",
            "3",
            "late on the 2nd",
            "2025-11-03T04:59:59Z",
        ],
        ["expense", "food", "4", "the 3rd", "2025-11-03T05:00:00Z"],
    ] {
        add_tx(&t, tok, tx);
    }
    assert_eq!(list(&t, tok, "from=2025-10-31&to=2025-10-31"), ["before"]);
    assert_eq!(list(&t, tok, "from=2025-11-01&to=2025-11-01"), ["midnight"]);
    assert_eq!(
        list(&t, tok, "from=2025-11-02&to=2025-11-02"),
        ["late on the 2nd"]
    );
    assert_eq!(
        list(&t, tok, "from=2025-11-01&to=2025-11-03"),
        ["the 3rd", "late on the 2nd", "midnight"]
    );
}

/// Everything a user can read about their transactions, to show a refused call changed nothing.
fn snapshot(t: &TestApp, tok: &str) -> Value {
    json!({
        "oct": list_month(t, tok, 10, 2025),
        "nov": list_month(t, tok, 11, 2025),
        "oct_balance": balance(t, tok, 10, 2025),
        "nov_balance": balance(t, tok, 11, 2025),
    })
}

#[test]
fn bad_from_to_is_a_422_naming_the_field_and_changes_nothing() {
    let (t, u) = kolkata_boundary();
    let tok = u.token.as_str();
    let before = snapshot(&t, tok);
    let rows = count_rows(&t, "transactions", "user_id", &u.id);
    let cases: &[(&str, &str, &str)] = &[
        // Both ways of choosing a window at once.
        (
            "month=10&from=2025-10-01&to=2025-10-31",
            "from",
            "value_error",
        ),
        (
            "year=2025&month=10&from=2025-10-01&to=2025-10-31",
            "from",
            "value_error",
        ),
        (
            "year=2025&from=2025-10-01&to=2025-10-31",
            "from",
            "value_error",
        ),
        // Only one end.
        ("from=2025-10-01", "to", "missing"),
        ("to=2025-10-31", "from", "missing"),
        ("month=10&to=2025-10-31", "from", "missing"),
        // Backwards, or too wide (367 days).
        ("from=2025-10-31&to=2025-10-01", "to", "value_error"),
        ("from=2024-10-29&to=2025-10-31", "to", "value_error"),
        // Not a YYYY-MM-DD date in 2020..2100.
        ("from=2025-13-01&to=2025-12-31", "from", "date_parsing"),
        ("from=2025-02-29&to=2025-03-31", "from", "date_parsing"),
        ("from=20251001&to=2025-10-31", "from", "date_parsing"),
        ("from=2025-10-1&to=2025-10-31", "from", "date_parsing"),
        ("from=&to=2025-10-31", "from", "date_parsing"),
        (
            "from=2025-10-01T00:00:00&to=2025-10-31",
            "from",
            "date_parsing",
        ),
        ("from=2025-10-01&to=yesterday", "to", "date_parsing"),
        ("from=2025-10-01&to=%2B002025-10-31", "to", "date_parsing"),
        ("from=2019-12-31&to=2020-01-31", "from", "value_error"),
        ("from=2100-12-01&to=2101-01-01", "to", "value_error"),
    ];
    for (query, field, kind) in cases {
        let r = call(&t, "GET", &format!("{TXS}?{query}"), tok, None);
        assert_422_names(&r, field);
        let body = r.json();
        let hit = body["detail"]
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e["loc"] == json!(["query", field]) && e["type"] == *kind);
        assert!(hit, "{query}: want {field}/{kind}: {body}");
        assert_eq!(body["code"], "validation_error", "{query}");
    }
    assert_eq!(snapshot(&t, tok), before);
    assert_eq!(count_rows(&t, "transactions", "user_id", &u.id), rows);
}
