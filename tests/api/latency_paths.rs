//! Issue 11's fast paths must answer exactly what the slow ones did: the remembered token
//! verification still expires tokens, cached transaction pages follow every write, the
//! response written by hand is well-formed HTTP for HEAD, HTTP/1.0 and keep-alive clients,
//! and a POST answered once its commit is done (`http/later.rs`) holds no handler thread
//! while it waits, and is neither lost nor left unanswered by a stop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::common::{spawn_app, spawn_app_with};

#[test]
fn a_token_verified_once_still_expires_on_time() {
    let t = spawn_app();
    let u = t.register("expires@example.com");
    let r = t.call("GET", "/api/v1/users/me").auth(&u.token).send();
    assert_eq!(r.status, 200, "{}", r.text());
    // Within the 30 s leeway past the 30-minute lifetime: still the same user.
    t.app().clock.advance(30 * 60 + 25);
    let r = t.call("GET", "/api/v1/users/me").auth(&u.token).send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["email"], "expires@example.com");
    t.app().clock.advance(10);
    let r = t.call("GET", "/api/v1/users/me").auth(&u.token).send();
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["code"], "token_expired");
}

#[test]
fn a_logged_out_token_is_refused_although_its_signature_was_remembered() {
    let t = spawn_app();
    let u = t.register("logout-cache@example.com");
    assert_eq!(
        t.call("GET", "/api/v1/users/me")
            .auth(&u.token)
            .send()
            .status,
        200
    );
    let r = t
        .call("POST", "/api/v1/auth/logout")
        .auth(&u.token)
        .json(&json!({}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = t.call("GET", "/api/v1/users/me").auth(&u.token).send();
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["code"], "token_revoked");
}

fn labels(t: &crate::common::TestApp, token: &str, query: &str) -> Vec<String> {
    let r = t
        .call("GET", &format!("/api/v1/transactions{query}"))
        .auth(token)
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|x| x["label"].as_str().expect("label").to_string())
        .collect()
}

fn post(t: &crate::common::TestApp, token: &str, label: &str, day: u32) -> String {
    let r = t
        .call("POST", "/api/v1/transactions")
        .auth(token)
        .json(
            &json!({"type": "expense", "category": "Food", "amount": 12.5, "label": label,
                     "transaction_date": format!("2026-03-{day:02}T10:00:00Z")}),
        )
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

#[test]
fn a_cached_transaction_page_follows_every_write_and_each_filter_is_its_own_page() {
    let t = spawn_app();
    let u = t.register("pages@example.com");
    let other = t.register("pages-other@example.com");
    let q = "?month=3&year=2026";
    post(&t, &u.token, "first", 1);
    assert_eq!(labels(&t, &u.token, q), ["first"]);
    // Read twice (the second a cache hit), then a write must show at once.
    assert_eq!(labels(&t, &u.token, q), ["first"]);
    let second = post(&t, &u.token, "second", 2);
    assert_eq!(labels(&t, &u.token, q), ["second", "first"]);
    assert_eq!(labels(&t, &u.token, &format!("{q}&limit=1")), ["second"]);
    assert_eq!(
        labels(&t, &u.token, &format!("{q}&limit=1&offset=1")),
        ["first"]
    );
    let r = t
        .call("PATCH", &format!("/api/v1/transactions/{second}"))
        .auth(&u.token)
        .json(&json!({"label": "renamed"}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(labels(&t, &u.token, q), ["renamed", "first"]);
    assert_eq!(labels(&t, &u.token, &format!("{q}&limit=1")), ["renamed"]);
    let r = t
        .call("DELETE", &format!("/api/v1/transactions/{second}"))
        .auth(&u.token)
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(labels(&t, &u.token, q), ["first"]);
    // Same query, another user: never the first user's cached page.
    assert!(labels(&t, &other.token, q).is_empty());
    post(&t, &other.token, "theirs", 3);
    assert_eq!(labels(&t, &other.token, q), ["theirs"]);
    assert_eq!(labels(&t, &u.token, q), ["first"]);
}

/// Starts `n` POSTs of the user's expenses on threads of their own; each returns its status
/// and body, and counts itself in `answered` once it has its answer.
fn posts_in_flight(
    t: &crate::common::TestApp,
    token: &str,
    n: usize,
    answered: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<(u16, String)>> {
    (0..n)
        .map(|i| {
            let call = t
                .call("POST", "/api/v1/transactions")
                .auth(token)
                .json(&json!({"type": "expense", "category": "Food", "amount": 3, "label": format!("held {i}"),
                              "transaction_date": "2026-03-15T10:00:00Z"}))
                .timeout(Duration::from_secs(20));
            let answered = answered.clone();
            std::thread::spawn(move || {
                let r = call.send();
                answered.fetch_add(1, Ordering::SeqCst);
                (r.status, r.text())
            })
        })
        .collect()
}

/// Takes the database's write lock from outside the server, as a long checkpoint or a
/// backup would: the server's writes wait for it (busy timeout 5 s), its reads do not.
fn hold_write_lock(t: &crate::common::TestApp) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(t.db_path()).expect("open the database");
    c.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    c
}

#[test]
fn posts_waiting_for_their_commit_leave_the_one_handler_thread_answering() {
    let t = spawn_app_with(&[("HTTP_WORKERS", "1")]);
    let u = t.register("waiting@example.com");
    let lock = hold_write_lock(&t);
    let answered = Arc::new(AtomicUsize::new(0));
    let posts = posts_in_flight(&t, &u.token, 8, &answered);
    // Time for the POSTs to be read and queued for the writer.
    std::thread::sleep(Duration::from_millis(300));

    // With a handler thread waiting for the commit, these would wait for the lock too.
    let health = t
        .call("GET", "/health")
        .timeout(Duration::from_secs(3))
        .try_send()
        .expect("GET /health is answered while eight POSTs wait for their commit");
    assert_eq!(health.status, 200, "{}", health.text());
    assert!(labels(&t, &u.token, "?month=3&year=2026").is_empty());
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "no POST is answered before it commits"
    );

    lock.execute_batch("COMMIT").expect("release the lock");
    for p in posts {
        let (status, body) = p.join().expect("POST thread");
        assert_eq!(status, 201, "{body}");
    }
    let mut got = labels(&t, &u.token, "?month=3&year=2026");
    got.sort();
    let want: Vec<String> = (0..8).map(|i| format!("held {i}")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_stop_answers_the_posts_still_waiting_for_their_commit_and_keeps_them() {
    let mut t = spawn_app_with(&[("SHUTDOWN_TIMEOUT_SECONDS", "15")]);
    let u = t.register("stopping@example.com");
    let lock = hold_write_lock(&t);
    let answered = Arc::new(AtomicUsize::new(0));
    let posts = posts_in_flight(&t, &u.token, 4, &answered);
    std::thread::sleep(Duration::from_millis(300));
    let running = t.running.take().expect("running");
    let stop = std::thread::spawn(move || running.shutdown());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !stop.is_finished(),
        "the stop waits for the POSTs it accepted"
    );
    lock.execute_batch("COMMIT").expect("release the lock");
    drop(lock);
    for p in posts {
        let (status, body) = p.join().expect("POST thread");
        assert_eq!(status, 201, "{body}");
    }
    stop.join().expect("shutdown");
    let c = rusqlite::Connection::open(t.db_path()).expect("open the database");
    let kept: i64 = c
        .query_row(
            "SELECT count(*) FROM transactions WHERE label LIKE 'held %'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kept, 4);
}

#[test]
fn pipelined_posts_waiting_together_are_all_answered_in_order() {
    let t = spawn_app_with(&[("HTTP_WORKERS", "4")]);
    let u = t.register("pipelined@example.com");
    let lock = hold_write_lock(&t);
    let mut wire = Vec::new();
    for i in 0..12 {
        let body = json!({"type": "expense", "category": "Food", "amount": 2, "label": format!("pipe {i:02}"),
                          "transaction_date": "2026-03-16T10:00:00Z"})
        .to_string();
        wire.extend_from_slice(
            format!(
                "POST /api/v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                u.token,
                body.len()
            )
            .as_bytes(),
        );
    }
    let mut s = TcpStream::connect(t.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    s.write_all(&wire).expect("send");
    // All twelve read and waiting for the writer, several on the answer thread's side.
    std::thread::sleep(Duration::from_millis(300));
    lock.execute_batch("COMMIT").expect("release the lock");
    let mut reader = std::io::BufReader::new(s);
    for i in 0..12 {
        let r = crate::common::read_reply_buffered(&mut reader);
        assert_eq!(r.status, 201, "answer {i}: {}", r.text());
        assert_eq!(
            r.json()["label"],
            format!("pipe {i:02}"),
            "answers in request order"
        );
    }
}

/// Sends raw bytes and reads until the server closes or `timeout` passes.
fn raw(t: &crate::common::TestApp, request: &str) -> String {
    let mut s = TcpStream::connect(t.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8(out).expect("ascii answer")
}

#[test]
fn head_http10_and_pipelined_keep_alive_answers_are_well_formed() {
    let t = spawn_app();
    let get = raw(
        &t,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let (head, body) = get.split_once("\r\n\r\n").expect("a head");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a length")
        .parse()
        .expect("a number");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nDate: ") && head.contains(" GMT"),
        "{head}"
    );
    assert_eq!(body.len(), length);

    let headed = raw(
        &t,
        "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(headed.starts_with("HTTP/1.1 200 OK\r\n"), "{headed}");
    assert!(
        headed.contains(&format!("\r\nContent-Length: {length}\r\n")),
        "{headed}"
    );
    assert!(headed.ends_with("\r\n\r\n"), "HEAD sent a body: {headed:?}");

    let old = raw(&t, "GET /health HTTP/1.0\r\n\r\n");
    assert!(old.starts_with("HTTP/1.0 200 OK\r\n"), "{old}");
    assert!(old.ends_with(body), "{old}");

    // Two requests in one write on one connection: two whole answers, in order.
    let both = raw(
        &t,
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let first = both.find("HTTP/1.1 200 OK").expect("first answer");
    let second = both.find("HTTP/1.1 404 Not Found").expect("second answer");
    assert!(first < second, "{both}");
    assert_eq!(both.matches("HTTP/1.1 ").count(), 2, "{both}");
}

/// `Expect: 100-continue`: tiny_http says `100 Continue` itself, the client then sends its
/// body, and the final answer follows on the same connection.
#[test]
fn an_expect_continue_request_gets_its_answer_after_the_body() {
    let t = spawn_app();
    let mut s = TcpStream::connect(t.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"POST /api/v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("write the head");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent_body = false;
    while !String::from_utf8_lossy(&got).contains("not_authenticated") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if !sent_body && String::from_utf8_lossy(&got).contains("100 Continue") {
            s.write_all(b"{}").expect("write the body");
            sent_body = true;
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 100 Continue\r\n"), "{text:?}");
    assert!(text.contains("HTTP/1.1 401 "), "no final answer: {text:?}");
    assert!(text.contains("not_authenticated"), "{text:?}");
}
