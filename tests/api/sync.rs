//! Sync for offline clients (API.md "Sync for offline clients"): `/sync` pulls with a cursor,
//! tombstones, the epoch, 410s and 422s, ETags with 304, the `sync` push, a router walk that
//! fails when a write route's change is missing from `/sync`, and two replicas built only from
//! `/sync` that must equal the server's own listings.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chat_support::{Ws, next_json, open};
use crate::common::{Call, TestApp, spawn_app, wait_until};
use crate::money_support::*;

const SYNC: &str = "/api/v1/sync";

fn pull(t: &TestApp, tok: &str, cursor: Option<&str>, limit: Option<u32>) -> Value {
    let mut q = Vec::new();
    if let Some(c) = cursor {
        q.push(format!("cursor={c}"));
    }
    if let Some(l) = limit {
        q.push(format!("limit={l}"));
    }
    get_ok(t, &format!("{SYNC}?{}", q.join("&")), tok)
}

fn cursor_of(v: &Value) -> String {
    v["cursor"].as_str().expect("cursor").to_string()
}

fn ids(v: &Value, kind: &str, part: &str) -> Vec<String> {
    let key = if kind == "chat_sessions" && part == "upserted" {
        "session_id"
    } else if kind == "allocations" && part == "upserted" {
        "allocation_id"
    } else {
        "id"
    };
    v["changes"][kind][part]
        .as_array()
        .unwrap_or_else(|| panic!("{kind}.{part} in {v}"))
        .iter()
        .map(|x| match part {
            "deleted" => x.as_str().expect("id").to_string(),
            _ => x[key]
                .as_str()
                .map(String::from)
                .unwrap_or(x[key].to_string()),
        })
        .collect()
}

/// Rows of one page over all kinds (profile and preferences count one each).
fn rows(v: &Value) -> usize {
    let c = &v["changes"];
    let mut n = 0;
    for kind in ["transactions", "allocations", "recurring", "chat_sessions"] {
        n += c[kind]["upserted"].as_array().map_or(0, Vec::len);
        n += c[kind]["deleted"].as_array().map_or(0, Vec::len);
    }
    n += c["notifications"]["upserted"]
        .as_array()
        .map_or(0, Vec::len);
    n + usize::from(!c["profile"].is_null()) + usize::from(!c["preferences"].is_null())
}

fn counter(t: &TestApp, user: &str) -> i64 {
    t.app()
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT coalesce((SELECT seq FROM sync_counters WHERE user_id = ?1), 0)",
                [user],
                |r| r.get(0),
            )?)
        })
        .expect("counter")
}

fn empty(v: &Value) -> bool {
    rows(v) == 0
}

#[test]
fn a_full_pull_then_deltas_with_deletions_and_unchanged_profile_as_null() {
    let (t, u) = app_and_user("sync-full@example.com");
    let tok = &u.token;
    let first = pull(&t, tok, None, None);
    assert!(empty(&first), "{first}");
    assert_eq!(first["has_more"], false);
    assert!(first["changes"]["profile"].is_null() && first["changes"]["preferences"].is_null());

    let a = add_tx(&t, tok, ["income", "salary", "1000", "a", "2025-10-01"]);
    let b = add_tx(&t, tok, ["expense", "food", "20.5", "b", "2025-11-03"]);
    let ty = type_id(&t, tok, "health", 0);
    set_budget(&t, tok, &ty, 5_000, 10, 2025);
    expect(
        &t,
        "PATCH",
        "/api/v1/users/me/preferences",
        tok,
        Some(&json!({"theme": "dark"})),
        200,
    );
    let profile = json!({"occupation": "Engineer", "risk_tolerance": "low"});
    expect(
        &t,
        "POST",
        "/api/v1/onboarding/submit",
        tok,
        Some(&profile),
        200,
    );

    let full = pull(&t, tok, None, None);
    assert_eq!(full["has_more"], false);
    let listed: Vec<Value> =
        [list_month(&t, tok, 10, 2025), list_month(&t, tok, 11, 2025)].concat();
    let mut got = full["changes"]["transactions"]["upserted"]
        .as_array()
        .expect("txs")
        .clone();
    got.sort_by_key(|x| x["id"].as_str().map(String::from));
    let mut want = listed.clone();
    want.sort_by_key(|x| x["id"].as_str().map(String::from));
    assert_eq!(got, want, "the same objects GET /transactions returns");
    assert_eq!(got[0]["version"], 1);
    let alloc = &full["changes"]["allocations"]["upserted"][0];
    assert_eq!(alloc["allocation_type_id"], ty.as_str());
    assert_eq!(
        (
            paise(&alloc["budget_amount"]),
            paise(&alloc["actual_amount"])
        ),
        (5_000, 0)
    );
    assert_eq!(
        full["changes"]["preferences"],
        get_ok(&t, "/api/v1/users/me/preferences", tok)
    );
    assert_eq!(
        full["changes"]["profile"],
        get_ok(&t, "/api/v1/onboarding/profile", tok)
    );
    let c1 = cursor_of(&full);

    // Nothing since: an empty page and the same cursor.
    let none = pull(&t, tok, Some(&c1), None);
    assert!(empty(&none), "{none}");
    assert_eq!(cursor_of(&none), c1);

    // An edit across months and a deletion.
    let a_id = a["id"].as_str().expect("id");
    let moved = patch_tx(
        &t,
        tok,
        a_id,
        &json!({"transaction_date": "2025-12-05", "amount": "999"}),
    );
    assert_eq!(moved["version"], 2);
    delete_tx(&t, tok, b["id"].as_str().expect("id"));
    let delta = pull(&t, tok, Some(&c1), None);
    assert_eq!(
        ids(&delta, "transactions", "upserted"),
        vec![a_id.to_string()]
    );
    assert_eq!(delta["changes"]["transactions"]["upserted"][0], moved);
    assert_eq!(
        ids(&delta, "transactions", "deleted"),
        vec![b["id"].as_str().unwrap().to_string()]
    );
    assert!(
        delta["changes"]["profile"].is_null(),
        "unchanged profile is null"
    );
    assert!(
        delta["changes"]["preferences"].is_null(),
        "unchanged preferences are null"
    );
    // A full pull never lists deletions.
    assert!(ids(&pull(&t, tok, None, None), "transactions", "deleted").is_empty());

    // Only preferences changed: only they come.
    let c2 = cursor_of(&delta);
    expect(
        &t,
        "PATCH",
        "/api/v1/users/me/preferences",
        tok,
        Some(&json!({"language": "hi"})),
        200,
    );
    let prefs = pull(&t, tok, Some(&c2), None);
    assert_eq!(rows(&prefs), 1, "{prefs}");
    assert_eq!(prefs["changes"]["preferences"]["language"], "hi");
}

#[test]
fn pages_never_split_or_miss_a_change_and_limit_counts_every_kind() {
    let (t, u) = app_and_user("sync-pages@example.com");
    let tok = &u.token;
    let mut made = BTreeSet::new();
    for i in 0..23 {
        let x = add_tx(
            &t,
            tok,
            ["expense", "food", "1", &format!("t{i}"), "2025-10-02"],
        );
        made.insert(x["id"].as_str().expect("id").to_string());
    }
    expect(
        &t,
        "PATCH",
        "/api/v1/users/me/preferences",
        tok,
        Some(&json!({"theme": "dark"})),
        200,
    );
    let mut cursor: Option<String> = None;
    let (mut seen, mut pages, mut prefs) = (Vec::new(), 0, 0);
    loop {
        let p = pull(&t, tok, cursor.as_deref(), Some(7));
        assert!(rows(&p) <= 7, "{p}");
        pages += 1;
        seen.extend(ids(&p, "transactions", "upserted"));
        prefs += usize::from(!p["changes"]["preferences"].is_null());
        // Writes between pages are picked up by a later page, never lost.
        if pages == 2 {
            let x = add_tx(&t, tok, ["income", "gift", "5", "late", "2025-10-03"]);
            made.insert(x["id"].as_str().expect("id").to_string());
        }
        cursor = Some(cursor_of(&p));
        if p["has_more"] == false {
            break;
        }
        assert_eq!(rows(&p), 7, "a page with more to come is full");
    }
    assert_eq!(pages, 4, "25 rows in pages of 7");
    assert_eq!(prefs, 1);
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a row came twice: {seen:?}");
    assert_eq!(unique, made);
    assert!(empty(&pull(&t, tok, cursor.as_deref(), Some(7))));
}

#[test]
fn bad_cursors_and_limits_are_refused_and_change_nothing() {
    let t = spawn_app();
    let [a, b] = ["sync-bad-a@example.com", "sync-bad-b@example.com"].map(|e| register(&t, e));
    add_tx(&t, &a.token, ["income", "salary", "10", "x", "2025-10-01"]);
    let good = cursor_of(&pull(&t, &a.token, None, None));
    let before = (counter(&t, &a.id), export_rows(&t, &a.token));
    let (epoch, seq, mac) = {
        let p: Vec<&str> = good.split('.').collect();
        (p[0].to_string(), p[1].to_string(), p[2].to_string())
    };
    let forged_seq = format!("{epoch}.{}.{mac}", seq.parse::<i64>().unwrap() + 1);
    let forged_epoch = format!("0000000000000000.{seq}.{mac}");
    for bad in [
        "",
        "abc",
        "a.b.c",
        "1.2.3.4",
        forged_seq.as_str(),
        forged_epoch.as_str(),
    ] {
        let r = call(&t, "GET", &format!("{SYNC}?cursor={bad}"), &a.token, None);
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        assert_eq!(
            r.json()["detail"][0]["loc"],
            json!(["query", "cursor"]),
            "{bad}"
        );
    }
    // Another user's genuine cursor is not theirs to use.
    let r = call(&t, "GET", &format!("{SYNC}?cursor={good}"), &b.token, None);
    assert_eq!(r.status, 422, "{}", r.text());
    for limit in ["0", "1001", "-1", "x", "2.5"] {
        let r = call(&t, "GET", &format!("{SYNC}?limit={limit}"), &a.token, None);
        assert_eq!(r.status, 422, "limit={limit}: {}", r.text());
        assert_eq!(r.json()["detail"][0]["loc"], json!(["query", "limit"]));
    }
    for limit in [1, 1000] {
        pull(&t, &a.token, None, Some(limit));
    }
    assert_eq!((counter(&t, &a.id), export_rows(&t, &a.token)), before);

    // A cursor ahead of the server (a database put back to an older state, same epoch).
    t.app()
        .db
        .write(|tx| {
            tx.execute(
                "UPDATE sync_counters SET seq = seq - 1 WHERE user_id = ?1",
                [&a.id],
            )?;
            Ok(())
        })
        .expect("roll the counter back");
    let r = call(&t, "GET", &format!("{SYNC}?cursor={good}"), &a.token, None);
    assert_error(
        &r,
        410,
        "cursor_reset",
        "The cursor is not valid on this server any more; sync again without one",
    );
}

#[test]
fn a_cursor_older_than_swept_tombstones_expires() {
    let (t, u) = app_and_user("sync-expire@example.com");
    let tok = &u.token;
    let x = add_tx(&t, tok, ["income", "salary", "10", "x", "2025-10-01"]);
    let old = cursor_of(&pull(&t, tok, None, None));
    delete_tx(&t, tok, x["id"].as_str().expect("id"));
    let after_delete = cursor_of(&pull(&t, tok, Some(&old), None));
    // 91 days later by the server's clock, the daily sweep removes the tombstone.
    t.app().clock.advance(91 * 86_400);
    assert!(wait_until(Duration::from_secs(5), || count_rows(
        &t,
        "sync_tombstones",
        "user_id",
        &u.id
    ) == 0));
    let tok = login(&t, &u.email);
    let r = call(&t, "GET", &format!("{SYNC}?cursor={old}"), &tok, None);
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.json()["code"], "cursor_expired");
    // A cursor that already saw the deletion is still good.
    assert!(empty(&pull(&t, &tok, Some(&after_delete), None)));
}

fn get_with(t: &TestApp, path: &str, tok: &str, tag: Option<&str>) -> crate::common::Reply {
    let mut c = Call::new(t.http, "GET", path).auth(tok);
    if let Some(tag) = tag {
        c = c.header("If-None-Match", tag);
    }
    c.send()
}

#[test]
fn etags_answer_304_until_the_users_data_changes() {
    let (t, u) = app_and_user("sync-etag@example.com");
    let tok = &u.token;
    add_tx(&t, tok, ["income", "salary", "100", "x", "2025-10-01"]);
    let paths = [
        "/api/v1/allocations?month=10&year=2025",
        "/api/v1/monthly-budget?month=10&year=2025",
        "/api/v1/transactions?month=10&year=2025",
    ];
    let mut tags = Vec::new();
    for p in paths {
        let r = get_with(&t, p, tok, None);
        assert_eq!(r.status, 200);
        let tag = r.header("etag").expect("ETag").to_string();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
        let again = get_with(&t, p, tok, Some(&tag));
        assert_eq!(
            again.status,
            304,
            "{p} {tag} {:?} {}",
            again.header("etag"),
            again.text()
        );
        assert!(again.body.is_empty(), "a 304 has no body");
        assert_eq!(again.header("etag"), Some(tag.as_str()));
        // A list of tags, one of them ours, matches too; another tag does not.
        assert_eq!(
            get_with(&t, p, tok, Some(&format!("\"x\", {tag}"))).status,
            304
        );
        assert_eq!(get_with(&t, p, tok, Some("\"other\"")).status, 200);
        tags.push(tag);
    }
    // Another month is another view: another tag.
    let nov = get_with(&t, "/api/v1/allocations?month=11&year=2025", tok, None);
    assert_ne!(nov.header("etag"), Some(tags[0].as_str()));
    // A write (even in another month) changes every tag.
    add_tx(&t, tok, ["expense", "food", "1", "y", "2025-10-02"]);
    for (p, old) in paths.iter().zip(&tags) {
        let r = get_with(&t, p, tok, Some(old));
        assert_eq!(r.status, 200, "{p}");
        assert_ne!(r.header("etag"), Some(old.as_str()));
    }
    // Another user's tag is never ours.
    let other = register(&t, "sync-etag-b@example.com");
    assert_eq!(
        get_with(&t, paths[0], &other.token, Some(&tags[0])).status,
        200
    );
}

/// Frames within `wait`, heartbeats left out.
fn frames_for(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    while Instant::now() < end {
        let f = next_json(ws);
        if f["type"] != "heartbeat" {
            out.push(f);
        }
    }
    out
}

#[test]
fn the_sync_frame_follows_commits_at_most_once_a_second() {
    let t = crate::common::spawn_app_with(&[("WS_HEARTBEAT_INTERVAL", "1")]);
    let u = register(&t, "sync-frame@example.com");
    let tok = &u.token;
    let c0 = cursor_of(&pull(&t, tok, None, None));
    let mut ws = open(&t, &format!("/ws/notifications?token={tok}"));
    assert_eq!(next_json(&mut ws)["type"], "connected");
    std::thread::sleep(Duration::from_millis(1300));
    let start = Instant::now();
    for i in 0..6 {
        add_tx(
            &t,
            tok,
            ["expense", "food", "1", &format!("f{i}"), "2025-10-02"],
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let elapsed = start.elapsed();
    let frames = frames_for(&mut ws, Duration::from_millis(2500));
    let syncs: Vec<&Value> = frames.iter().filter(|f| f["type"] == "sync").collect();
    assert!(!syncs.is_empty(), "{frames:?}");
    let most = (elapsed + Duration::from_millis(2500)).as_secs() as usize + 1;
    assert!(
        syncs.len() <= most,
        "{} frames in {elapsed:?} + 2.5 s",
        syncs.len()
    );
    let last = syncs.last().expect("a frame")["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    // The last frame's cursor covers every commit: nothing older comes after it.
    assert!(empty(&pull(&t, tok, Some(&last), None)));
    assert_eq!(
        ids(&pull(&t, tok, Some(&c0), None), "transactions", "upserted").len(),
        6
    );
}

/// A replica of one user's data built only from `/sync`.
#[derive(Default)]
struct Replica {
    cursor: Option<String>,
    txs: BTreeMap<String, Value>,
    allocations: BTreeMap<String, Value>,
}

impl Replica {
    fn pull(&mut self, t: &TestApp, tok: &str) {
        loop {
            let p = pull(t, tok, self.cursor.as_deref(), Some(5));
            for (kind, map, key) in [
                ("transactions", &mut self.txs, "id"),
                ("allocations", &mut self.allocations, "allocation_id"),
            ] {
                for row in p["changes"][kind]["upserted"].as_array().expect("upserted") {
                    map.insert(row[key].as_str().expect("id").to_string(), row.clone());
                }
                for id in p["changes"][kind]["deleted"].as_array().expect("deleted") {
                    map.remove(id.as_str().expect("id"));
                }
            }
            self.cursor = Some(cursor_of(&p));
            if p["has_more"] == false {
                return;
            }
        }
    }
}

const MONTHS: [(u32, i32); 3] = [(10, 2025), (11, 2025), (12, 2025)];

/// The server's own listings: every transaction of the months, and every allocation row.
fn server_view(t: &TestApp, tok: &str) -> (BTreeMap<String, Value>, BTreeMap<String, (i64, i64)>) {
    let mut txs = BTreeMap::new();
    let mut allocs = BTreeMap::new();
    for (m, y) in MONTHS {
        for x in list_month(t, tok, m, y) {
            txs.insert(x["id"].as_str().expect("id").to_string(), x);
        }
        let s = allocations(t, tok, m, y);
        for c in s["categories"].as_array().expect("categories") {
            for ty in c["allocation_types"].as_array().expect("types") {
                if let Some(id) = ty["allocation_id"].as_str() {
                    allocs.insert(
                        id.to_string(),
                        (paise(&ty["budget_amount"]), paise(&ty["actual_amount"])),
                    );
                }
            }
        }
    }
    (txs, allocs)
}

#[test]
fn two_replicas_built_only_from_sync_equal_the_servers_listings() {
    let (t, u) = app_and_user("sync-replica@example.com");
    let tok = &u.token;
    let types = t.type_ids(tok, "spending");
    let mut rng = Rng::new(16);
    let mut devices = [Replica::default(), Replica::default()];
    let mut live: Vec<String> = Vec::new();
    for step in 0..60 {
        let (m, y) = MONTHS[rng.below(3) as usize];
        let date = format!("{y}-{m:02}-{:02}", 1 + rng.below(28));
        match rng.below(10) {
            0..=4 => {
                let mut body = tx_body(
                    "expense",
                    "food",
                    &decimal(100 + rng.below(5000) as i64),
                    &format!("s{step}"),
                    &date,
                );
                if rng.chance(50) {
                    body["allocation_type_id"] =
                        json!(types[rng.below(types.len() as u64) as usize]);
                }
                let made = if rng.chance(40) {
                    // Made offline under the device's own id, and sent again as if the first
                    // answer was lost: one row either way.
                    body["id"] = json!(client_id(&mut rng));
                    let first = create_tx(&t, tok, &body);
                    let again = expect(&t, "POST", TXS, tok, Some(&body), 200);
                    assert_eq!(again, first);
                    first
                } else {
                    create_tx(&t, tok, &body)
                };
                live.push(made["id"].as_str().expect("id").to_string());
            }
            5..=6 if !live.is_empty() => {
                let id = &live[rng.below(live.len() as u64) as usize];
                patch_tx(
                    &t,
                    tok,
                    id,
                    &json!({"transaction_date": date, "amount": decimal(1 + rng.below(900) as i64)}),
                );
            }
            7 if !live.is_empty() => {
                let id = live.swap_remove(rng.below(live.len() as u64) as usize);
                delete_tx(&t, tok, &id);
            }
            _ => {
                let ty = &types[rng.below(types.len() as u64) as usize];
                set_budget(&t, tok, ty, rng.below(10_000) as i64, m, y);
            }
        }
        let d = rng.below(2) as usize;
        if rng.chance(40) {
            devices[d].pull(&t, tok);
            let (txs, allocs) = server_view(&t, tok);
            assert_eq!(devices[d].txs, txs, "device {d} after step {step}");
            let replica: BTreeMap<String, (i64, i64)> = devices[d]
                .allocations
                .iter()
                .map(|(id, a)| {
                    (
                        id.clone(),
                        (paise(&a["budget_amount"]), paise(&a["actual_amount"])),
                    )
                })
                .collect();
            assert_eq!(replica, allocs, "device {d} allocations after step {step}");
        }
    }
    for d in &mut devices {
        d.pull(&t, tok);
    }
    assert_eq!(devices[0].txs, devices[1].txs);
    assert_eq!(devices[0].txs, server_view(&t, tok).0);
    // No retry made a second row.
    let mut want: Vec<&String> = live.iter().collect();
    want.sort();
    assert_eq!(devices[0].txs.keys().collect::<Vec<_>>(), want);
}

/// A random UUID (version 4), as a device makes one.
fn client_id(rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// What a write route's change shows in `/sync`, or why it has none.
enum Shows {
    /// This id appears among the kind's upserted (or deleted, for a DELETE).
    Row(&'static str, String),
    /// `profile` / `preferences` is not null.
    Single(&'static str),
    /// The counter moves but no row kind exists for it (rollover settings).
    CounterOnly,
    /// Nothing synced changes, and why.
    Unsynced(#[allow(dead_code)] &'static str),
}

#[test]
fn every_write_route_shows_its_change_in_sync() {
    let (t, u) = app_and_user("sync-walk@example.com");
    let tok = u.token.clone();
    let ty = type_id(&t, &tok, "health", 0);
    set_budget(&t, &tok, &ty, 1_000, 10, 2025);
    let alloc = allocations(&t, &tok, 10, 2025);
    let alloc_id = category(&alloc, "health")["allocation_types"][0]["allocation_id"]
        .as_str()
        .expect("allocation_id")
        .to_string();
    let tx = add_tx(&t, &tok, ["expense", "food", "5", "walk", "2025-10-02"]);
    let tx_id = tx["id"].as_str().expect("id").to_string();
    let rule = json!({"type": "expense", "category": "bills", "label": "rent", "amount": "10",
                      "frequency": "monthly", "start_date": "2025-10-01"});
    let rule_id = expect(&t, "POST", "/api/v1/recurring", &tok, Some(&rule), 201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let chat = expect(
        &t,
        "POST",
        "/api/v1/chat/message",
        &tok,
        Some(&json!({"message": "hi"})),
        200,
    );
    let session = chat["conversation_id"]
        .as_str()
        .expect("conversation_id")
        .to_string();

    let router = crate::internals::routes();
    let mut walked = 0;
    for route in router.routes() {
        if matches!(route.method, "GET" | "HEAD" | "OPTIONS") {
            continue;
        }
        let (path, body, shows): (String, Value, Shows) = match (route.method, route.pattern) {
            ("POST", "/api/v1/transactions") => (
                TXS.into(),
                tx_body("income", "gift", "3", "new", "2025-10-05"),
                Shows::Row("transactions", String::new()),
            ),
            ("PATCH", "/api/v1/transactions/{id}") => (
                format!("{TXS}/{tx_id}"),
                json!({"label": "edited"}),
                Shows::Row("transactions", tx_id.clone()),
            ),
            ("DELETE", "/api/v1/transactions/{id}") => continue, // last, below
            ("POST", "/api/v1/allocations/budget") => (
                BUDGET.into(),
                json!({"allocation_type_id": ty, "budget_amount": "20", "month": 10, "year": 2025}),
                Shows::Row("allocations", alloc_id.clone()),
            ),
            ("POST", "/api/v1/allocations/actual") => (
                ACTUAL.into(),
                json!({"allocation_type_id": ty, "actual_amount": "2", "month": 10, "year": 2025}),
                Shows::Row("allocations", alloc_id.clone()),
            ),
            ("PUT", "/api/v1/allocations/{allocation_id}") => (
                format!("/api/v1/allocations/{alloc_id}"),
                json!({"notes": "n"}),
                Shows::Row("allocations", alloc_id.clone()),
            ),
            ("DELETE", "/api/v1/allocations/{allocation_id}") => continue, // last, below
            ("PUT", "/api/v1/allocations/rollover") => (
                "/api/v1/allocations/rollover".into(),
                json!({"allocation_type_id": ty, "mode": "surplus", "month": 10, "year": 2025}),
                Shows::CounterOnly,
            ),
            ("POST", "/api/v1/recurring") => (
                "/api/v1/recurring".into(),
                rule.clone(),
                Shows::Row("recurring", String::new()),
            ),
            ("PATCH", "/api/v1/recurring/{id}") => (
                format!("/api/v1/recurring/{rule_id}"),
                json!({"label": "rent 2"}),
                Shows::Row("recurring", rule_id.clone()),
            ),
            ("POST", "/api/v1/recurring/{id}/skip") => (
                format!("/api/v1/recurring/{rule_id}/skip"),
                json!({"date": "2025-10-01"}),
                Shows::Row("recurring", rule_id.clone()),
            ),
            ("POST", "/api/v1/recurring/{id}/confirm") => (
                format!("/api/v1/recurring/{rule_id}/confirm"),
                json!({"date": "2025-11-01"}),
                // The transaction it posted (the rule's mark shows through it).
                Shows::Row("transactions", String::new()),
            ),
            ("DELETE", "/api/v1/recurring/{id}") => continue, // last, below
            ("POST", "/api/v1/chat/message") => (
                "/api/v1/chat/message".into(),
                json!({"message": "again", "session_id": session}),
                Shows::Row("chat_sessions", session.clone()),
            ),
            ("POST", "/api/v1/chat/message/stream") => (
                "/api/v1/chat/message/stream".into(),
                json!({"message": "more", "session_id": session}),
                Shows::Row("chat_sessions", session.clone()),
            ),
            ("DELETE", "/api/v1/chat/conversations/{conversation_id}") => continue, // last, below
            ("POST", "/api/v1/onboarding/submit") => (
                "/api/v1/onboarding/submit".into(),
                json!({"occupation": "Chef"}),
                Shows::Single("profile"),
            ),
            ("PATCH", "/api/v1/users/me/preferences") => (
                "/api/v1/users/me/preferences".into(),
                json!({"theme": "dark"}),
                Shows::Single("preferences"),
            ),
            ("POST", "/api/v1/notifications/read") => (
                "/api/v1/notifications/read".into(),
                json!({"all": true}),
                Shows::Unsynced(
                    "marks only notifications this user has; none here (the inbox test covers read_at)",
                ),
            ),
            ("PATCH", "/api/v1/users/me") => (
                "/api/v1/users/me".into(),
                json!({"full_name": "Walker"}),
                Shows::Unsynced("the account itself is no kind of /sync"),
            ),
            ("DELETE", "/api/v1/users/me") => continue, // ends the account: checked in money_api
            (_, p) if p.starts_with("/api/v1/auth/") => continue, // sessions and codes, not user data
            (m, p) => panic!(
                "{m} {p} is a write route this test does not know: say what it shows in /sync"
            ),
        };
        walked += 1;
        let before = cursor_of(&pull(&t, &tok, None, None));
        let r = call(&t, route.method, &path, &tok, Some(&body));
        assert!(r.status < 300, "{} {path}: {}", route.method, r.text());
        let shows = match shows {
            Shows::Row(kind, id) if id.is_empty() => {
                Shows::Row(kind, r.json()["id"].as_str().expect("id").to_string())
            }
            other => other,
        };
        check(&t, &tok, (&before, route.method, &path), shows);
    }
    // The deletions, each a tombstone.
    for (path, kind, id) in [
        (format!("{TXS}/{tx_id}"), "transactions", tx_id.clone()),
        (
            format!("/api/v1/allocations/{alloc_id}"),
            "allocations",
            alloc_id.clone(),
        ),
        (
            format!("/api/v1/recurring/{rule_id}"),
            "recurring",
            rule_id.clone(),
        ),
        (
            format!("/api/v1/chat/conversations/{session}"),
            "chat_sessions",
            session.clone(),
        ),
    ] {
        let before = cursor_of(&pull(&t, &tok, None, None));
        expect(&t, "DELETE", &path, &tok, None, 200);
        let delta = pull(&t, &tok, Some(&before), None);
        assert_eq!(
            ids(&delta, kind, "deleted"),
            vec![id],
            "DELETE {path}: {delta}"
        );
        walked += 1;
    }
    assert!(walked >= 18, "{walked}");
}

fn check(t: &TestApp, tok: &str, (before, method, path): (&str, &str, &str), shows: Shows) {
    let delta = pull(t, tok, Some(before), None);
    let moved = cursor_of(&delta) != before;
    match shows {
        Shows::Row(kind, id) => {
            assert!(
                ids(&delta, kind, "upserted").contains(&id),
                "{method} {path}: {id} not in {delta}"
            );
            assert!(moved);
        }
        Shows::Single(kind) => {
            assert!(
                !delta["changes"][kind].is_null(),
                "{method} {path}: {delta}"
            );
            assert!(moved);
        }
        Shows::CounterOnly => assert!(moved, "{method} {path} did not move the counter"),
        Shows::Unsynced(_) => {}
    }
}
