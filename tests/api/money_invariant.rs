//! The contract's invariant: for every user and month, `total_income`, `total_expense`,
//! `current_balance` and `transaction_count` equal what that month's transactions add up to,
//! after any sequence of creates, edits, deletes, retries and refused writes, and under
//! concurrent writers. And for every user, allocation type and month, `spent_amount` equals
//! the sum of that month's expenses linked to the type.

use crate::{common, money_support};

use std::collections::HashMap;

use common::*;
use money_support::*;
use serde_json::{Value, json};

const SEED: u64 = 0x5EED_2025_1031;
const OPERATIONS: usize = 300;
/// Three months across a year boundary.
const MONTHS: [(i32, u32); 3] = [(2025, 12), (2026, 1), (2026, 2)];

/// The types the sequence links to: (category, index), two of them in one category.
const LINKED_TYPES: [(&str, usize); 4] = [
    ("spending", 0),
    ("spending", 3),
    ("health", 1),
    ("entertainment", 2),
];

#[derive(Clone, Debug, PartialEq)]
struct Model {
    user: usize,
    income: bool,
    amount: i64,
    period: (i32, u32),
    /// An index into `World::types`, for a linked expense.
    link: Option<usize>,
}

/// A create that carried an Idempotency-Key: what a retry must get back.
struct Keyed {
    user: usize,
    key: String,
    body: Value,
    reply: Vec<u8>,
}

struct World<'a> {
    t: &'a TestApp,
    users: Vec<User>,
    rng: Rng,
    txs: HashMap<String, Model>,
    deleted: Vec<(usize, String)>,
    keyed: Vec<Keyed>,
    /// The ids of `LINKED_TYPES`.
    types: Vec<String>,
}

fn kind(income: bool) -> &'static str {
    if income { "income" } else { "expense" }
}

impl World<'_> {
    /// A date inside one of the three months, in one of the accepted spellings, all of
    /// which stay inside that month in UTC.
    fn date_in(&mut self, (year, month): (i32, u32)) -> String {
        let day = 2 + self.rng.below(26);
        let (h, m) = (self.rng.below(24), self.rng.below(60));
        match self.rng.below(4) {
            0 => format!("{year}-{month:02}-{day:02}"),
            1 => format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:00Z"),
            2 => format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:00+05:30"),
            _ => format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:00-03:00"),
        }
    }

    fn month(&mut self) -> (i32, u32) {
        MONTHS[self.rng.below(3) as usize]
    }

    /// 0.01 to 5000.00, sent as a string or a number.
    fn amount(&mut self) -> (i64, Value) {
        let p = 1 + self.rng.below(500_000) as i64;
        let v = if self.rng.chance(50) {
            Value::from(decimal(p))
        } else {
            amount(p)
        };
        (p, v)
    }

    /// A transaction of `user`, if it has any.
    fn pick_own(&mut self, user: usize) -> Option<String> {
        let mut ids: Vec<&String> = self
            .txs
            .iter()
            .filter(|(_, m)| m.user == user)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        if ids.is_empty() {
            return None;
        }
        let i = self.rng.below(ids.len() as u64) as usize;
        Some(ids[i].clone())
    }

    fn token(&self, user: usize) -> &str {
        &self.users[user].token
    }

    /// A link for an expense: one of the types, or (one time in four) none.
    fn link(&mut self) -> Option<usize> {
        let i = self.rng.below(self.types.len() as u64 + 1) as usize;
        (i < self.types.len()).then_some(i)
    }

    fn link_value(&self, link: Option<usize>) -> Value {
        json!(link.map(|i| self.types[i].as_str()))
    }

    fn create(&mut self, op: usize) {
        let user = self.rng.below(2) as usize;
        let income = self.rng.chance(50);
        let period = self.month();
        let date = self.date_in(period);
        let (p, amount_value) = self.amount();
        let mut body = json!({"type": kind(income), "category": format!("cat{}", self.rng.below(5)),
                          "amount": amount_value, "label": format!("op {op}"),
                          "transaction_date": date});
        let link = if income { None } else { self.link() };
        // Unlinked: the field absent, or (sometimes) null.
        if link.is_some() || self.rng.chance(30) {
            body["allocation_type_id"] = self.link_value(link);
        }
        let keyed = self.rng.chance(40);
        let reply = if keyed {
            let key = format!("op-{op}-{}", self.rng.next());
            let r = post_with_key(self.t.http, self.token(user), &key, &body);
            self.keyed.push(Keyed {
                user,
                key,
                body: body.clone(),
                reply: r.body.clone(),
            });
            r
        } else {
            call(self.t, "POST", TXS, self.token(user), Some(&body))
        };
        assert_eq!(reply.status, 201, "op {op} create: {}", reply.text());
        let v = reply.json();
        assert_eq!(paise(&v["amount"]), p, "op {op}");
        assert_eq!(v["allocation_type_id"], self.link_value(link), "op {op}");
        assert_eq!(
            (v["year"].as_i64(), v["month"].as_i64()),
            (Some(i64::from(period.0)), Some(i64::from(period.1))),
            "op {op}"
        );
        let id = v["id"].as_str().expect("id").to_string();
        self.txs.insert(
            id,
            Model {
                user,
                income,
                amount: p,
                period,
                link,
            },
        );
    }

    /// A retried keyed create: the first answer again, byte for byte, and no new row.
    fn retry(&mut self, op: usize) {
        if self.keyed.is_empty() {
            return self.create(op);
        }
        let i = self.rng.below(self.keyed.len() as u64) as usize;
        let k = &self.keyed[i];
        let r = post_with_key(self.t.http, &self.users[k.user].token, &k.key, &k.body);
        assert_eq!(r.status, 201, "op {op} retry: {}", r.text());
        assert_eq!(
            r.body, k.reply,
            "op {op}: a replay differs from the first answer"
        );
    }

    fn patch(&mut self, op: usize) {
        let user = self.rng.below(2) as usize;
        let Some(id) = self.pick_own(user) else {
            return self.create(op);
        };
        let mut m = self.txs[&id].clone();
        let mut body = json!({});
        let what = 1 + self.rng.below(7);
        if what & 1 != 0 {
            let (p, v) = self.amount();
            body["amount"] = v;
            m.amount = p;
        }
        if what & 2 != 0 {
            m.income = !m.income;
            body["type"] = json!(kind(m.income));
        }
        if what & 4 != 0 {
            m.period = self.month();
            body["transaction_date"] = json!(self.date_in(m.period));
        }
        if self.rng.chance(20) {
            body["label"] = json!(format!("patched at op {op}"));
        }
        // Relink (another type, or null), or keep the link by not naming it. An income
        // cannot stay linked: it is unlinked in the same PATCH.
        if self.rng.chance(40) || (m.income && m.link.is_some()) {
            m.link = if m.income { None } else { self.link() };
            body["allocation_type_id"] = self.link_value(m.link);
        }
        let v = patch_tx(self.t, self.token(user), &id, &body);
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["allocation_type_id"], self.link_value(m.link), "op {op}");
        assert_eq!(paise(&v["amount"]), m.amount, "op {op}");
        assert_eq!(v["type"], kind(m.income), "op {op}");
        assert_eq!(v["month"].as_u64(), Some(u64::from(m.period.1)), "op {op}");
        self.txs.insert(id, m);
    }

    fn delete(&mut self, op: usize) {
        let user = self.rng.below(2) as usize;
        let Some(id) = self.pick_own(user) else {
            return self.create(op);
        };
        let v = delete_tx(self.t, self.token(user), &id);
        assert_eq!(v["transaction_id"], id.as_str(), "op {op}");
        self.txs.remove(&id);
        self.deleted.push((user, id));
    }

    /// A write that must be refused, and must change nothing.
    fn invalid(&mut self, op: usize) {
        let user = self.rng.below(2) as usize;
        let date = self.date_in(MONTHS[0]);
        let good = json!({"type": "expense", "category": "x", "amount": "1", "label": "bad",
                          "transaction_date": date});
        let with = |field: &str, v: Value| {
            let mut b = good.clone();
            b[field] = v;
            b
        };
        let post = "/api/v1/transactions".to_string();
        let path = |id: &str| format!("/api/v1/transactions/{id}");
        // (status, field named, who asks, method, path, body)
        let unknown = "00000000-0000-4000-8000-00000000dead";
        let linked_income = {
            let mut b = with("type", json!("income"));
            b["allocation_type_id"] = json!(self.types[0]);
            b
        };
        // A linked expense of `user` made an income without unlinking it.
        let linked_own = self
            .txs
            .iter()
            .filter(|(_, m)| m.user == user && m.link.is_some())
            .map(|(id, _)| id.clone())
            .min();
        // (status, code) of the refusals that are not field errors.
        let coded = |status: u16, code: &str, r: &Reply| {
            assert_eq!(r.status, status, "op {op}: {}", r.text());
            assert_eq!(r.json()["code"], code, "op {op}");
        };
        match self.rng.below(13) {
            9 => {
                let r = call(
                    self.t,
                    "POST",
                    &post,
                    self.token(user),
                    Some(&linked_income),
                );
                return coded(422, "allocation_requires_expense", &r);
            }
            10 => {
                let b = with("allocation_type_id", json!(unknown));
                let r = call(self.t, "POST", &post, self.token(user), Some(&b));
                return coded(404, "allocation_type_not_found", &r);
            }
            11 => {
                let Some(id) = linked_own else { return };
                let b = json!({"type": "income", "amount": 5});
                let r = call(self.t, "PATCH", &path(&id), self.token(user), Some(&b));
                return coded(422, "allocation_requires_expense", &r);
            }
            _ => {}
        }
        let (status, field, asker, method, url, body) = match self.rng.below(9) {
            0 => (
                422,
                Some("amount"),
                user,
                "POST",
                post,
                Some(with("amount", json!(0))),
            ),
            1 => (
                422,
                Some("amount"),
                user,
                "POST",
                post,
                Some(with("amount", json!("1.001"))),
            ),
            2 => (
                422,
                Some("type"),
                user,
                "POST",
                post,
                Some(with("type", json!("transfer"))),
            ),
            3 => {
                let bad = with("transaction_date", json!("2025-13-01"));
                (422, Some("transaction_date"), user, "POST", post, Some(bad))
            }
            4 => match self.pick_own(1 - user) {
                Some(id) => (
                    404,
                    None,
                    user,
                    "PATCH",
                    path(&id),
                    Some(json!({"amount": 1})),
                ),
                None => return,
            },
            5 => match self.pick_own(1 - user) {
                Some(id) => (404, None, user, "DELETE", path(&id), None),
                None => return,
            },
            6 => match self.pick_own(user) {
                Some(id) => {
                    let bad = json!({"amount": -1, "type": "income"});
                    (422, Some("amount"), user, "PATCH", path(&id), Some(bad))
                }
                None => return,
            },
            7 => {
                let Some(k) = self.keyed.iter().find(|k| k.user == user) else {
                    return;
                };
                let mut changed = k.body.clone();
                changed["label"] = json!(format!("changed at op {op}"));
                let r = post_with_key(self.t.http, self.token(user), &k.key, &changed);
                assert_eq!(r.status, 422, "op {op}: {}", r.text());
                assert_eq!(r.json()["code"], "idempotency_key_reused", "op {op}");
                return;
            }
            _ => match self.deleted.last() {
                Some((owner, id)) => (404, None, *owner, "DELETE", path(id), None),
                None => return,
            },
        };
        let r = call(self.t, method, &url, self.token(asker), body.as_ref());
        assert_eq!(r.status, status, "op {op}: {}", r.text());
        if let Some(f) = field {
            assert_422_names(&r, f);
        }
    }

    /// Balance = the listed transactions = the model, for every user and month.
    fn check(&self, op: usize) {
        for (u, user) in self.users.iter().enumerate() {
            for &(year, month) in &MONTHS {
                let b = balance(self.t, &user.token, month, year);
                let listed = list_month(self.t, &user.token, month, year);
                assert!(listed.len() < 200, "the month no longer fits one page");
                let sum = |income: bool| -> i64 {
                    listed
                        .iter()
                        .filter(|x| x["type"] == kind(income))
                        .map(|x| paise(&x["amount"]))
                        .sum()
                };
                let (li, le) = (sum(true), sum(false));
                let mine: Vec<(&String, &Model)> = self
                    .txs
                    .iter()
                    .filter(|(_, m)| m.user == u && m.period == (year, month))
                    .collect();
                let model = |income: bool| -> i64 {
                    mine.iter()
                        .filter(|(_, m)| m.income == income)
                        .map(|(_, m)| m.amount)
                        .sum()
                };
                let (mi, me) = (model(true), model(false));
                let at = format!("after op {op}, user {u}, {year}-{month:02}");
                assert_eq!(paise(&b["total_income"]), li, "{at}: income vs list");
                assert_eq!(paise(&b["total_expense"]), le, "{at}: expense vs list");
                assert_eq!(paise(&b["current_balance"]), li - le, "{at}: balance");
                assert_eq!(
                    b["transaction_count"].as_u64(),
                    Some(listed.len() as u64),
                    "{at}: count"
                );
                assert_eq!(
                    (li, le, listed.len()),
                    (mi, me, mine.len()),
                    "{at}: list vs model"
                );
                for x in &listed {
                    let id = x["id"].as_str().expect("id").to_string();
                    let m = self
                        .txs
                        .get(&id)
                        .unwrap_or_else(|| panic!("{at}: unknown {id}"));
                    assert_eq!(
                        (m.user, m.amount, m.income),
                        (u, paise(&x["amount"]), x["type"] == "income"),
                        "{at}"
                    );
                    assert_eq!(x["allocation_type_id"], self.link_value(m.link), "{at}");
                }
            }
            self.check_spent(op, u);
        }
    }

    /// `spent_amount` of every type in `user`'s months, as `GET /allocations` shows it, equals
    /// the model's linked expenses of that type and month (0 for every other type).
    fn check_spent(&self, op: usize, user: usize) {
        for &(year, month) in &MONTHS {
            let s = allocations(self.t, self.token(user), month, year);
            let at = format!("after op {op}, user {user}, {year}-{month:02}");
            let mut total = 0;
            for c in s["categories"].as_array().expect("categories") {
                for ty in c["allocation_types"].as_array().expect("types") {
                    let want: i64 = self
                        .txs
                        .values()
                        .filter(|m| m.user == user && m.period == (year, month) && !m.income)
                        .filter(|m| m.link.is_some_and(|i| ty["id"] == self.types[i].as_str()))
                        .map(|m| m.amount)
                        .sum();
                    assert_eq!(paise(&ty["spent_amount"]), want, "{at}: {}", ty["name"]);
                    total += want;
                }
            }
            assert_eq!(paise(&s["total_actual"]), total, "{at}: total_actual");
        }
    }
}

/// user_allocations.spent_amount against the sums of the linked expense rows, straight from
/// the database.
fn stored_spent_matches_rows(t: &TestApp, op: usize) {
    type Sums = HashMap<(String, String, i64, i64), i64>;
    let (kept, summed): (Sums, Sums) = t
        .app()
        .db
        .read(|c| {
            let collect = |sql: &str| -> rusqlite::Result<Sums> {
                let mut stmt = c.prepare(sql)?;
                stmt.query_map([], |r| {
                    Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?), r.get(4)?))
                })?
                .collect()
            };
            let kept = collect(
                "SELECT user_id, allocation_type_id, year, month, spent_amount
                 FROM user_allocations WHERE spent_amount <> 0",
            )?;
            let summed = collect(
                "SELECT user_id, allocation_type_id, year, month, sum(amount) FROM transactions
                 WHERE type = 'expense' AND allocation_type_id IS NOT NULL
                 GROUP BY user_id, allocation_type_id, year, month",
            )?;
            Ok((kept, summed))
        })
        .expect("read spent");
    assert_eq!(kept, summed, "after op {op}");
    let linked_incomes: i64 = t
        .app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM transactions
                 WHERE type = 'income' AND allocation_type_id IS NOT NULL",
                [],
                |r| r.get(0),
            )?)
        })
        .expect("count");
    assert_eq!(linked_incomes, 0, "after op {op}: a linked income");
}

/// monthly_budgets rows against the sums of the transaction rows, straight from the database.
fn stored_totals_match_rows(t: &TestApp) {
    type Sums = HashMap<(String, i64, i64), (i64, i64, i64)>;
    let (kept, summed): (Sums, Sums) = t
        .app()
        .db
        .read(|c| {
            let collect = |sql: &str| -> rusqlite::Result<Sums> {
                let mut stmt = c.prepare(sql)?;
                stmt.query_map([], |r| {
                    Ok((
                        (r.get(0)?, r.get(1)?, r.get(2)?),
                        (r.get(3)?, r.get(4)?, r.get(5)?),
                    ))
                })?
                .collect()
            };
            let kept = collect(
                "SELECT user_id, year, month, total_income, total_expense, transaction_count
                 FROM monthly_budgets
                 WHERE transaction_count > 0 OR total_income > 0 OR total_expense > 0",
            )?;
            let summed = collect(
                "SELECT user_id, year, month,
                        coalesce(sum(CASE WHEN type = 'income' THEN amount END), 0),
                        coalesce(sum(CASE WHEN type = 'expense' THEN amount END), 0), count(*)
                 FROM transactions GROUP BY user_id, year, month",
            )?;
            Ok((kept, summed))
        })
        .expect("read totals");
    assert_eq!(kept, summed);
}

#[test]
fn totals_equal_the_transactions_after_a_random_sequence() {
    let t = spawn_app();
    let users = vec![
        register(&t, "inv-a@example.com"),
        register(&t, "inv-b@example.com"),
    ];
    let types = LINKED_TYPES
        .iter()
        .map(|(c, i)| type_id(&t, &users[0].token, c, *i))
        .collect();
    let mut w = World {
        t: &t,
        users,
        rng: Rng::new(SEED),
        txs: HashMap::new(),
        deleted: Vec::new(),
        keyed: Vec::new(),
        types,
    };
    for op in 0..OPERATIONS {
        match w.rng.below(100) {
            0..40 => w.create(op),
            40..50 => w.retry(op),
            50..68 => w.patch(op),
            68..80 => w.delete(op),
            _ => w.invalid(op),
        }
        // After every step: the stored spent against the rows, and as the API shows it.
        stored_spent_matches_rows(&t, op);
        w.check_spent(op, 0);
        w.check_spent(op, 1);
        if (op + 1) % 25 == 0 {
            w.check(op);
        }
    }
    w.check(OPERATIONS);
    stored_totals_match_rows(&t);
    let linked = w.txs.values().filter(|m| m.link.is_some()).count();
    assert!(
        linked > 10,
        "the sequence should leave linked rows: {linked}"
    );
    assert!(
        w.txs.len() > 20,
        "the sequence should leave rows: {}",
        w.txs.len()
    );
    assert!(!w.deleted.is_empty() && !w.keyed.is_empty());
    println!(
        "seed {SEED:#x}: {} transactions left, {} deleted, {} keyed",
        w.txs.len(),
        w.deleted.len(),
        w.keyed.len()
    );
}

#[test]
fn concurrent_writers_leave_exact_totals() {
    let (t, u) = app_and_user("inv-race@example.com");
    const THREADS: usize = 8;
    const EACH: usize = 50;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (addr, tok) = (t.http, u.token.as_str());
                s.spawn(move || {
                    let (k, a) = if i % 2 == 0 {
                        ("income", "10.01")
                    } else {
                        ("expense", "0.07")
                    };
                    (0..EACH)
                        .map(|n| {
                            let body = tx_body(k, "race", a, &format!("t{i} n{n}"), "2025-10-15");
                            send_json(addr, "POST", TXS, Some(tok), &body).status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(statuses.len(), THREADS * EACH);
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    let b = balance(&t, &u.token, 10, 2025);
    let half = (THREADS / 2 * EACH) as i64;
    assert_eq!(paise(&b["total_income"]), half * 1_001);
    assert_eq!(paise(&b["total_expense"]), half * 7);
    assert_eq!(paise(&b["current_balance"]), half * (1_001 - 7));
    assert_eq!(b["transaction_count"], json!(THREADS * EACH));
    let mut ids = std::collections::HashSet::new();
    let mut sums = (0i64, 0i64);
    for offset in [0, 200] {
        let page = get_ok(
            &t,
            &format!("/api/v1/transactions?month=10&year=2025&limit=200&offset={offset}"),
            &u.token,
        );
        for x in page.as_array().expect("array") {
            assert!(ids.insert(x["id"].as_str().expect("id").to_string()));
            if x["type"] == "income" {
                sums.0 += paise(&x["amount"]);
            } else {
                sums.1 += paise(&x["amount"]);
            }
        }
    }
    assert_eq!(ids.len(), THREADS * EACH);
    assert_eq!(sums, (half * 1_001, half * 7));
    stored_totals_match_rows(&t);
}

#[test]
fn concurrent_edits_and_deletes_keep_totals_exact() {
    let (t, u) = app_and_user("inv-edits@example.com");
    std::thread::scope(|s| {
        for i in 0..4 {
            let (addr, tok) = (t.http, u.token.as_str());
            s.spawn(move || {
                for n in 0..15 {
                    let label = format!("t{i} n{n}");
                    let body = tx_body("income", "race", "3.33", &label, "2025-10-20");
                    let r = send_json(addr, "POST", TXS, Some(tok), &body);
                    assert_eq!(r.status, 201, "{}", r.text());
                    let id = r.json()["id"].as_str().expect("id").to_string();
                    let path = format!("/api/v1/transactions/{id}");
                    let patch = json!({"type": "expense", "amount": "1.11",
                                       "transaction_date": "2025-11-03"});
                    let r = send_json(addr, "PATCH", &path, Some(tok), &patch);
                    assert_eq!(r.status, 200, "{}", r.text());
                    if n % 3 == 0 {
                        let bearer = format!("Bearer {tok}");
                        let r = request(addr, "DELETE", &path, &[("Authorization", &bearer)], None);
                        assert_eq!(r.status, 200, "{}", r.text());
                    }
                }
            });
        }
    });
    // 60 created, all moved to November as 1.11 expenses, 20 deleted.
    let oct = balance(&t, &u.token, 10, 2025);
    assert_eq!(
        (paise(&oct["total_income"]), paise(&oct["total_expense"])),
        (0, 0)
    );
    assert_eq!(oct["transaction_count"], 0);
    let nov = balance(&t, &u.token, 11, 2025);
    assert_eq!(paise(&nov["total_expense"]), 40 * 111);
    assert_eq!(paise(&nov["current_balance"]), -40 * 111);
    assert_eq!(nov["transaction_count"], 40);
    assert_eq!(list_month(&t, &u.token, 11, 2025).len(), 40);
    stored_totals_match_rows(&t);
}

#[test]
fn concurrent_adds_to_one_allocation_are_all_counted() {
    let (t, u) = app_and_user("inv-adds@example.com");
    let ty = type_id(&t, &u.token, "health", 1);
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (addr, tok, ty) = (t.http, u.token.as_str(), ty.as_str());
            s.spawn(move || {
                for _ in 0..20 {
                    let body = json!({"allocation_type_id": ty, "actual_amount": "0.01",
                                      "mode": "add", "month": 10, "year": 2025});
                    let r = send_json(addr, "POST", ACTUAL, Some(tok), &body);
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            });
        }
    });
    let s = allocations(&t, &u.token, 10, 2025);
    assert_eq!(
        paise(&category(&s, "health")["allocation_types"][1]["actual_amount"]),
        160
    );
    assert_eq!(count_rows(&t, "user_allocations", "user_id", &u.id), 1);
}

#[test]
fn concurrent_linked_writers_leave_exact_spent() {
    let (t, u) = app_and_user("inv-linked-race@example.com");
    let (a, b) = (
        type_id(&t, &u.token, "spending", 0),
        type_id(&t, &u.token, "spending", 1),
    );
    std::thread::scope(|s| {
        for i in 0..8 {
            let (addr, tok) = (t.http, u.token.as_str());
            let (a, b) = (a.as_str(), b.as_str());
            s.spawn(move || {
                for n in 0..20 {
                    let mut body = tx_body(
                        "expense",
                        "race",
                        "0.07",
                        &format!("t{i} n{n}"),
                        "2025-10-15",
                    );
                    body["allocation_type_id"] = json!(a);
                    let r = send_json(addr, "POST", TXS, Some(tok), &body);
                    assert_eq!(r.status, 201, "{}", r.text());
                    // Every fourth moves to the other type and to November.
                    if n % 4 == 0 {
                        let id = r.json()["id"].as_str().expect("id").to_string();
                        let patch =
                            json!({"allocation_type_id": b, "transaction_date": "2025-11-01"});
                        let r = send_json(addr, "PATCH", &format!("{TXS}/{id}"), Some(tok), &patch);
                        assert_eq!(r.status, 200, "{}", r.text());
                    }
                }
            });
        }
    });
    let spent_of = |month: u32, ty: &str| -> i64 {
        let s = allocations(&t, &u.token, month, 2025);
        let types = category(&s, "spending")["allocation_types"].clone();
        let line = types
            .as_array()
            .expect("types")
            .iter()
            .find(|x| x["id"] == ty)
            .expect("type")
            .clone();
        paise(&line["spent_amount"])
    };
    // 160 posted, 40 of them moved.
    assert_eq!(spent_of(10, &a), 120 * 7);
    assert_eq!(spent_of(11, &b), 40 * 7);
    assert_eq!((spent_of(10, &b), spent_of(11, &a)), (0, 0));
    stored_spent_matches_rows(&t, 0);
    stored_totals_match_rows(&t);
}
