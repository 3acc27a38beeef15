//! Helpers shared by the money tests (money_api, money_invariant, money_input): users, calls,
//! exact amounts in paise, and row counts read straight from the database.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::common::{Call, Reply, TestApp};

pub use crate::common::{PASSWORD, TestUser as User};

pub const BUDGET: &str = "/api/v1/allocations/budget";
pub const ACTUAL: &str = "/api/v1/allocations/actual";
pub const TXS: &str = "/api/v1/transactions";

/// Registers by email (see [`TestApp::register_as`]).
pub fn register(t: &TestApp, email: &str) -> User {
    t.register_as(email, "Money Tester")
}

/// A test server with one registered user.
pub fn app_and_user(email: &str) -> (TestApp, User) {
    let t = crate::common::spawn_app();
    let u = register(&t, email);
    (t, u)
}

/// A fresh access token for a registered email (after the clock moved past the old one).
pub fn login(t: &TestApp, email: &str) -> String {
    let r = t
        .call("POST", "/api/v1/auth/login")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send();
    assert_eq!(r.status, 200, "login {email}: {}", r.text());
    r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// One call with the bearer token; `body` goes as JSON when given.
pub fn call(t: &TestApp, method: &str, path: &str, token: &str, body: Option<&Value>) -> Reply {
    let call = t.call(method, path).auth(token);
    match body {
        Some(b) => call.json(b).send(),
        None => call.send(),
    }
}

/// A call that must answer `status`; its JSON body.
pub fn expect(
    t: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    status: u16,
) -> Value {
    let r = call(t, method, path, token, body);
    assert_eq!(r.status, status, "{method} {path}: {}", r.text());
    r.json()
}

/// `GET path` that must answer 200.
pub fn get_ok(t: &TestApp, path: &str, token: &str) -> Value {
    expect(t, "GET", path, token, None, 200)
}

/// An error answer with exactly this status, code and (string) detail.
pub fn assert_error(r: &Reply, status: u16, code: &str, detail: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["detail"], detail, "{body}");
}

/// A 422 whose field list names `field` as the last element of some `loc`.
pub fn assert_422_names(r: &Reply, field: &str) {
    assert_eq!(r.status, 422, "expected 422 naming {field}: {}", r.text());
    let body = r.json();
    let list = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("422 detail is not a list: {body}"));
    let named = list.iter().any(|e| {
        e["loc"]
            .as_array()
            .and_then(|l| l.last())
            .is_some_and(|last| last == field)
            && e["msg"].as_str().is_some_and(|m| !m.is_empty())
            && e["type"].is_string()
    });
    assert!(named, "no loc names {field}: {body}");
}

/// A JSON amount in paise, read from its exact decimal text (never through a float sum).
pub fn paise(v: &Value) -> i64 {
    let text = v
        .as_number()
        .unwrap_or_else(|| panic!("not a number: {v}"))
        .to_string();
    assert!(
        !text.contains(['e', 'E']),
        "amount in exponent form: {text}"
    );
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = frac.trim_end_matches('0');
    assert!(frac.len() <= 2, "more than 2 decimals: {text}");
    let whole: i64 = whole.parse().expect("whole part");
    let cents: i64 = format!("{frac:0<2}").parse().expect("decimals");
    let p = whole * 100 + cents;
    if neg { -p } else { p }
}

/// Paise as the decimal text a client sends (`1250.5` → "1250.50").
pub fn decimal(p: i64) -> String {
    let sign = if p < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", p.abs() / 100, p.abs() % 100)
}

/// Paise as a JSON number with that exact decimal text.
pub fn amount(p: i64) -> Value {
    serde_json::from_str(&decimal(p)).expect("a JSON number")
}

/// A POST /transactions body.
pub fn tx_body(kind: &str, category: &str, amount_text: &str, label: &str, date: &str) -> Value {
    json!({"type": kind, "category": category, "amount": amount_text, "label": label,
           "transaction_date": date})
}

/// POST /transactions of `[type, category, amount, label, transaction_date]`, which must
/// answer 201; the created transaction.
pub fn add_tx(
    t: &TestApp,
    token: &str,
    [kind, category, amount_text, label, date]: [&str; 5],
) -> Value {
    create_tx(t, token, &tx_body(kind, category, amount_text, label, date))
}

/// PATCH /transactions/{id} that must answer 200; the updated transaction.
pub fn patch_tx(t: &TestApp, token: &str, id: &str, body: &Value) -> Value {
    let path = format!("{TXS}/{id}");
    expect(t, "PATCH", &path, token, Some(body), 200)
}

/// DELETE /transactions/{id} that must answer 200; its body.
pub fn delete_tx(t: &TestApp, token: &str, id: &str) -> Value {
    expect(t, "DELETE", &format!("{TXS}/{id}"), token, None, 200)
}

/// POST /transactions with an `Idempotency-Key` header.
pub fn post_with_key(addr: SocketAddr, token: &str, key: &str, body: &Value) -> Reply {
    Call::new(addr, "POST", TXS)
        .auth(token)
        .json(body)
        .header("Idempotency-Key", key)
        .send()
}

/// POST /transactions that must answer 201; the created transaction.
pub fn create_tx(t: &TestApp, token: &str, body: &Value) -> Value {
    expect(t, "POST", TXS, token, Some(body), 201)
}

pub fn balance(t: &TestApp, token: &str, month: u32, year: i32) -> Value {
    get_ok(
        t,
        &format!("/api/v1/transactions/balance?month={month}&year={year}"),
        token,
    )
}

/// Every transaction of the month (up to 200), as listed.
pub fn list_month(t: &TestApp, token: &str, month: u32, year: i32) -> Vec<Value> {
    let v = get_ok(
        t,
        &format!("/api/v1/transactions?month={month}&year={year}&limit=200"),
        token,
    );
    v.as_array().expect("a bare array").clone()
}

/// The allocation summary of a month.
pub fn allocations(t: &TestApp, token: &str, month: u32, year: i32) -> Value {
    get_ok(
        t,
        &format!("/api/v1/allocations?month={month}&year={year}"),
        token,
    )
}

/// A category of a summary, by name.
pub fn category<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no category {name}"))
}

/// The id of the `index`-th allocation type of a category.
pub fn type_id(t: &TestApp, token: &str, category_name: &str, index: usize) -> String {
    t.type_ids(token, category_name)[index].clone()
}

pub fn set_budget(t: &TestApp, token: &str, type_id: &str, p: i64, month: u32, year: i32) {
    let body = json!({"allocation_type_id": type_id, "budget_amount": amount(p),
                      "month": month, "year": year});
    let v = expect(t, "POST", BUDGET, token, Some(&body), 200);
    assert_eq!(v, json!({"message": "Budget set successfully"}));
}

/// POST /allocations/actual with `mode` (`None`: the default).
pub fn record_actual(
    t: &TestApp,
    token: &str,
    type_id: &str,
    p: i64,
    mode: Option<&str>,
    month: u32,
    year: i32,
) {
    let mut body = json!({"allocation_type_id": type_id, "actual_amount": amount(p),
                          "month": month, "year": year});
    if let Some(m) = mode {
        body["mode"] = json!(m);
    }
    let v = expect(t, "POST", ACTUAL, token, Some(&body), 200);
    assert_eq!(v, json!({"message": "Actual amount recorded successfully"}));
}

pub fn export(t: &TestApp, token: &str) -> Value {
    get_ok(t, "/api/v1/users/me/export", token)
}

/// The export without its timestamp, to compare two exports.
pub fn export_rows(t: &TestApp, token: &str) -> Value {
    let mut e = export(t, token);
    e.as_object_mut().expect("object").remove("exported_at");
    e
}

/// Rows of `table` whose `column` equals `value`, counted in the database itself.
pub fn count_rows(t: &TestApp, table: &str, column: &str, value: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE {column} = ?1");
    t.app()
        .db
        .read(|c| Ok(c.query_row(&sql, [value], |r| r.get(0))?))
        .expect("count rows")
}

/// Every table of the schema that has a `user_id` column.
pub fn tables_with_user_id(t: &TestApp) -> Vec<String> {
    t.app()
        .db
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT m.name FROM sqlite_master m WHERE m.type = 'table'
                 AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'user_id')
                 ORDER BY m.name",
            )?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
        .expect("list tables")
}

/// A tiny deterministic generator (xorshift64*), so a failing sequence can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
