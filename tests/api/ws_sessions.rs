//! Sockets follow their user's session, black-box on both `/ws/chat` and `/ws/notifications`:
//! the newest socket wins over the per-user cap (the oldest gets 4000), upgrades are rate
//! limited per address, unauthenticated sockets are capped per address, and a socket closes
//! with 4001 when its token expires (unless renewed in band) or the session ends (logout
//! everywhere, account deleted, account deactivated from the command line in another process).

use crate::{chat_support, common};

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use chat_support::*;
use common::*;
use serde_json::{Value, json};

const PATHS: [&str; 2] = ["/ws/chat", "/ws/notifications"];
/// The contract: a session that ended closes its sockets within this.
const SESSION_END_LIMIT: Duration = Duration::from_secs(5);
/// Longer than the server's sweep of open sockets (2 s), so a socket still open after it
/// was looked at.
const AFTER_A_SWEEP: Duration = Duration::from_millis(2600);
const REPLACED: (u16, &str) = (4000, "Replaced by a newer connection");
const ENDED: (u16, &str) = (4001, "Session ended");
const EXPIRED: (u16, &str) = (4001, "Session expired");

fn is(got: (u16, String), want: (u16, &str)) -> bool {
    got.0 == want.0 && got.1 == want.1
}

/// An authenticated socket on `path` (by `?token=`), past its `connected` frame.
fn live(t: &TestApp, path: &str, token: &str) -> Ws {
    let mut ws = open(t, &format!("{path}?token={token}"));
    assert_eq!(next_json(&mut ws)["type"], "connected", "{path}");
    ws
}

/// One socket on each endpoint.
fn both(t: &TestApp, token: &str) -> Vec<Ws> {
    PATHS.iter().map(|p| live(t, p, token)).collect()
}

/// Each socket is closed with `want`, all within `limit` of `since`.
fn assert_all_closed(sockets: &mut [Ws], want: (u16, &str), since: Instant, limit: Duration) {
    for (ws, path) in sockets.iter_mut().zip(PATHS) {
        let got = close_of(ws);
        assert!(is(got.clone(), want), "{path}: {got:?}, want {want:?}");
    }
    let took = since.elapsed();
    eprintln!("closed with {want:?} after {took:?}");
    assert!(took < limit, "closed after {took:?}");
}

/// A TCP connection to the WebSocket port from a chosen loopback address.
fn tcp_from(t: &TestApp, from: Ipv4Addr) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .expect("bind a loopback source address");
    s.connect(&t.ws.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(READ_LIMIT)).expect("read timeout");
    s.set_write_timeout(Some(READ_LIMIT))
        .expect("write timeout");
    s
}

/// The upgrade of a connection from `from`: the socket, or the refusal's status, headers and
/// JSON body.
fn upgrade_from(t: &TestApp, from: Ipv4Addr, path: &str) -> Result<Ws, Reply> {
    upgrade_forwarded(t, from, path, None)
}

/// The same, through a proxy that says the client is `forwarded_for`.
fn upgrade_forwarded(
    t: &TestApp,
    from: Ipv4Addr,
    path: &str,
    forwarded_for: Option<&str>,
) -> Result<Ws, Reply> {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}{path}", t.ws)
        .into_client_request()
        .expect("a request");
    if let Some(ip) = forwarded_for {
        req.headers_mut()
            .insert("X-Forwarded-For", ip.parse().expect("a header value"));
    }
    match tungstenite::client::client(req, tcp_from(t, from)) {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => Err(Reply {
            status: resp.status().as_u16(),
            headers: resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: resp.body().clone().unwrap_or_default(),
            chunks: Vec::new(),
            complete: true,
        }),
        Err(e) => panic!("handshake to {path} failed: {e}"),
    }
}

const HOME: Ipv4Addr = Ipv4Addr::LOCALHOST;
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn login(t: &TestApp, email: &str) -> String {
    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"email": email, "password": "Secret#123"}),
    );
    assert_eq!(r.status, 200, "login: {}", r.text());
    r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Issue 10.5: over `WS_MAX_CONNECTIONS_PER_USER`, the newest socket is served and the user's
/// oldest on that endpoint is closed with 4000; before, the new one was refused with 1008
/// and an app that left half-open sockets behind could never get back in.
#[test]
fn over_the_cap_the_newest_socket_wins_and_the_oldest_gets_4000() {
    let t = spawn_app_with(&[("WS_MAX_CONNECTIONS_PER_USER", "2")]);
    let u = register(&t, "newest@example.com", "Newest");
    let other = register(&t, "bystander@example.com", "Bystander");
    for path in PATHS {
        let mut theirs = live(&t, path, &other.token);
        let mut first = live(&t, path, &u.token);
        let mut second = live(&t, path, &u.token);
        // Three sockets with the cap at 2: the first goes.
        let mut third = live(&t, path, &u.token);
        assert!(
            is(close_of(&mut first), REPLACED),
            "{path}: the oldest is replaced"
        );
        ping(&mut second);
        ping(&mut third);
        // A fourth, authenticating by message this time: the second goes.
        let mut fourth = open(&t, path);
        send(
            &mut fourth,
            &json!({"type": "authenticate", "token": u.token}),
        );
        assert_eq!(next_json(&mut fourth)["type"], "connected");
        assert!(is(close_of(&mut second), REPLACED), "{path}");
        ping(&mut third);
        ping(&mut fourth);
        // Other users, and the other endpoint, are counted apart.
        ping(&mut theirs);
    }
    // Sockets of both endpoints at once: two each, none replaced by the other endpoint's.
    let mut sockets: Vec<Ws> = both(&t, &u.token)
        .into_iter()
        .chain(both(&t, &u.token))
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    for ws in &mut sockets {
        ping(ws);
    }
}

/// While rate limiting is on, more than `WS_UPGRADES_PER_MINUTE` upgrades from one address
/// get 429 with `Retry-After` before any upgrade; another address is not affected.
#[test]
fn an_upgrade_flood_from_one_address_gets_429_with_retry_after() {
    let t = spawn_app_with(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("WS_UPGRADES_PER_MINUTE", "3"),
    ]);
    // The limit counts in fixed minutes: start at the beginning of one.
    let clock = &t.app().clock;
    clock.advance(60 - clock.unix().rem_euclid(60));
    let u = register(&t, "flood@example.com", "Flood");
    let mut kept = live(&t, "/ws/chat", &u.token);
    drop(upgrade_from(&t, HOME, "/ws/notifications").expect("second upgrade"));
    drop(upgrade_from(&t, HOME, "/ws/chat").expect("third upgrade"));
    for path in PATHS {
        let r = upgrade_from(&t, HOME, &format!("{path}?token={}", u.token))
            .err()
            .unwrap_or_else(|| panic!("{path}: a fourth upgrade in a minute was served"));
        assert_eq!(r.status, 429, "{path}");
        let body = r.json();
        assert_eq!(body["code"], "rate_limited", "{body}");
        let retry: u64 = r
            .header("Retry-After")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(r.header("X-RateLimit-Limit"), Some("3"));
    }
    // The open socket is untouched, and another address still gets in.
    ping(&mut kept);
    let mut elsewhere =
        upgrade_from(&t, ELSEWHERE, &format!("/ws/chat?token={}", u.token)).expect("upgrade");
    assert_eq!(next_json(&mut elsewhere)["type"], "connected");
    ping(&mut elsewhere);
    // A new minute, a new allowance.
    clock.advance(60);
    drop(upgrade_from(&t, HOME, "/ws/chat").expect("upgrade in the next minute"));
}

/// Issue 18.2, reproduced: 20 idle unauthenticated sockets from one address filled the server
/// and a real user got 503. Now the 11th pending socket from that address is refused, and a
/// user from another address gets in; a pending socket that authenticates frees its place.
#[test]
fn unauthenticated_sockets_are_capped_per_address() {
    let t = spawn_app_with(&[("WS_MAX_CONNECTIONS", "14")]);
    let u = register(&t, "pending@example.com", "Pending");
    let mut idle = Vec::new();
    let mut refused = Vec::new();
    for i in 0..20 {
        match upgrade_from(&t, HOME, PATHS[i % 2]) {
            Ok(ws) => idle.push(ws),
            Err(r) => refused.push(r),
        }
    }
    assert_eq!(idle.len(), 10, "WS_MAX_PENDING_PER_IP defaults to 10");
    assert_eq!(refused.len(), 10);
    for r in &refused {
        assert_eq!(r.status, 429);
        assert_eq!(r.json()["code"], "too_many_pending", "{}", r.text());
        assert_eq!(r.header("Retry-After"), Some("30"));
    }
    for path in PATHS {
        let mut ws = upgrade_from(&t, ELSEWHERE, &format!("{path}?token={}", u.token)).expect(path);
        assert_eq!(next_json(&mut ws)["type"], "connected");
        ping(&mut ws);
    }
    // One of the idle sockets authenticates: it is no longer pending, and its address may
    // hold one more pending socket, not two.
    send(
        &mut idle[0],
        &json!({"type": "authenticate", "token": u.token}),
    );
    assert_eq!(next_json(&mut idle[0])["type"], "connected");
    let _one_more = upgrade_from(&t, HOME, "/ws/notifications").expect("a place was freed");
    let r = upgrade_from(&t, HOME, "/ws/chat").expect_err("the 11th pending socket is refused");
    assert_eq!(r.json()["code"], "too_many_pending");
    ping(&mut idle[0]);
}

/// Behind the reverse proxy every socket comes from 127.0.0.1: the limits count the client
/// that `X-Forwarded-For` names (from a `TRUSTED_PROXIES` peer only), not the proxy.
#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    let t = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1")]);
    let u = register(&t, "proxied@example.com", "Proxied");
    let crowd = Some("203.0.113.9");
    let _idle: Vec<Ws> = (0..10)
        .map(|_| upgrade_forwarded(&t, HOME, "/ws/chat", crowd).expect("pending"))
        .collect();
    let r = upgrade_forwarded(&t, HOME, "/ws/chat", crowd).expect_err("the 11th is refused");
    assert_eq!(r.json()["code"], "too_many_pending");
    // Another client behind the same proxy gets in.
    let mut ws = upgrade_forwarded(
        &t,
        HOME,
        &format!("/ws/notifications?token={}", u.token),
        Some("203.0.113.10"),
    )
    .expect("another client");
    assert_eq!(next_json(&mut ws)["type"], "connected");
    ping(&mut ws);
    // From a peer that is not a trusted proxy the header is not believed: that peer's own
    // address is counted.
    let _theirs: Vec<Ws> = (0..10)
        .map(|i| {
            let claimed = format!("198.51.100.{i}");
            upgrade_forwarded(&t, ELSEWHERE, "/ws/chat", Some(&claimed)).expect("pending")
        })
        .collect();
    let r = upgrade_forwarded(&t, ELSEWHERE, "/ws/chat", Some("198.51.100.77"))
        .expect_err("a forged header does not make a new client");
    assert_eq!(r.json()["code"], "too_many_pending");
}

/// Reproduced: 100 s after `logout` with `all:true`, the socket still answered. Now every
/// socket of the user closes with 4001 "Session ended" within 5 s.
#[test]
fn logout_everywhere_ends_the_users_sockets() {
    let t = spawn_app();
    let u = register(&t, "logout@example.com", "Logout");
    let other = register(&t, "stays@example.com", "Stays");
    let mut sockets = both(&t, &u.token);
    let mut theirs = both(&t, &other.token);
    let r = send_json(
        t.http,
        "POST",
        "/api/v1/auth/logout",
        Some(&u.token),
        &json!({"all": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let since = Instant::now();
    assert_all_closed(&mut sockets, ENDED, since, SESSION_END_LIMIT);
    for ws in &mut theirs {
        ping(ws);
    }
}

#[test]
fn deleting_the_account_ends_its_sockets() {
    let t = spawn_app();
    let u = register(&t, "deleted@example.com", "Deleted");
    let mut sockets = both(&t, &u.token);
    let r = delete(&t, "/api/v1/users/me", &u.token);
    assert_eq!(r.status, 200, "{}", r.text());
    let since = Instant::now();
    assert_all_closed(&mut sockets, ENDED, since, SESSION_END_LIMIT);
}

/// `wealthcoach user deactivate` runs beside the server, in another process: the server
/// learns of it from the database alone.
#[test]
fn deactivation_from_the_command_line_ends_the_users_sockets() {
    let t = spawn_app();
    let u = register(&t, "deactivated@example.com", "Deactivated");
    let other = register(&t, "active@example.com", "Active");
    let mut sockets = both(&t, &u.token);
    let mut theirs = both(&t, &other.token);
    // Right before the command, so the server holds a fresh check of this token
    // (`auth::recent`): the command must not return while that could still be used.
    let me = || t.call("GET", "/api/v1/users/me").auth(&u.token).send();
    assert_eq!(me().status, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_wealthcoach"))
        .args(["user", "deactivate", "deactivated@example.com"])
        .current_dir(&t.dir.0)
        .env("ENVIRONMENT", "test")
        .env("DATABASE_URL", t.db_path())
        .env("JWT_SECRET_KEY", "test-secret-0123456789-abcdefghijklmnop")
        .env("LOG_LEVEL", "error")
        .output()
        .expect("run wealthcoach user deactivate");
    assert!(
        out.status.success(),
        "deactivate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = me();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.json()["code"], "account_deactivated");
    let since = Instant::now();
    assert_all_closed(&mut sockets, ENDED, since, SESSION_END_LIMIT);
    for ws in &mut theirs {
        ping(ws);
    }
    // And the same user cannot come back.
    let mut back = open(&t, &format!("/ws/chat?token={}", u.token));
    assert_eq!(
        close_of(&mut back),
        (1008, "Authentication failed".to_string())
    );
}

/// A socket lives as long as its access token (plus the 30 s leeway HTTP allows), then closes
/// with 4001 "Session expired".
#[test]
fn a_socket_closes_when_its_token_expires() {
    let t = spawn_app();
    let u = register(&t, "expiry@example.com", "Expiry");
    let mut sockets = both(&t, &u.token);
    // Past the expiry (30 minutes), within the leeway: still served.
    t.app().clock.advance(30 * 60 + 20);
    std::thread::sleep(AFTER_A_SWEEP);
    for ws in &mut sockets {
        ping(ws);
    }
    t.app().clock.advance(15);
    let since = Instant::now();
    assert_all_closed(&mut sockets, EXPIRED, since, SESSION_END_LIMIT);
}

/// A fresh token sent in band before the old one expires carries the socket on; a bad one
/// closes it like a failed authentication.
#[test]
fn a_fresh_token_in_band_extends_the_socket_and_a_bad_one_closes_it() {
    let t = spawn_app();
    let u = register(&t, "renew@example.com", "Renew");
    register(&t, "someone@example.com", "Someone");
    let mut sockets = both(&t, &u.token);

    t.app().clock.advance(20 * 60);
    let fresh = login(&t, "renew@example.com");
    for ws in &mut sockets {
        send(ws, &json!({"type": "authenticate", "token": fresh}));
        let reply = next_json(ws);
        assert_eq!(reply["type"], "authenticated", "{reply}");
        assert!(reply["expires_at"].as_str().is_some(), "{reply}");
    }
    // Past the first token's expiry and leeway: still open.
    t.app().clock.advance(11 * 60);
    std::thread::sleep(AFTER_A_SWEEP);
    for ws in &mut sockets {
        ping(ws);
    }
    // Past the fresh token's too.
    t.app().clock.advance(20 * 60);
    let since = Instant::now();
    assert_all_closed(&mut sockets, EXPIRED, since, SESSION_END_LIMIT);

    // Bad renewals close with 1008 and the failed-auth reason; a live token of another user
    // is one.
    let token = login(&t, "renew@example.com");
    let someone = login(&t, "someone@example.com");
    let cases: [(Value, &str); 3] = [
        (
            json!({"type": "authenticate", "token": "not.a.token"}),
            "Invalid token",
        ),
        (
            json!({"type": "authenticate", "token": someone}),
            "Invalid token",
        ),
        (json!({"type": "authenticate"}), "Authentication required"),
    ];
    for (msg, reason) in cases {
        for path in PATHS {
            let mut ws = live(&t, path, &token);
            send(&mut ws, &msg);
            assert_eq!(
                close_of(&mut ws),
                (1008, reason.to_string()),
                "{path} {msg}"
            );
        }
    }
    // The other user's token was refused, not adopted: their sockets are unaffected.
    let mut theirs = live(&t, "/ws/chat", &someone);
    ping(&mut theirs);
}
