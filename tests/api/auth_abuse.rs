//! The abuse rules of the auth API (API.md "Exact rules"), each shown from the outside over HTTP
//! against the real in-process server: OTP brute force and resends, send caps, SMS gateway
//! failures, refresh-token reuse, password lockout, forged and stale tokens, deactivation and
//! the request-rate limiter.
//!
//! Every test drives the server up to a limit and then shows the limit holding where a server
//! without the rule would have answered differently, so removing a rule makes its test fail.
//! Time moves with `clock.advance`, never with sleeps.

use crate::common;
use crate::sms_app::SmsApp;

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use crate::internals::{TokenClaims, hash_token};
use common::*;
use jwt_simple::prelude::{HS256Key, HS512Key, MACLike};
use serde_json::{Value, json};

const MOBILE: &str = "9876543210";
const E164: &str = "+919876543210";
const OTHER: &str = "9123456780";
const EMAIL: &str = "second@example.com";
const PASSWORD: &str = "Secret#123";
const WRONG_PASSWORD: &str = "Wrong#1234";
/// The secret `tests/common` gives every test server.
const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
const EXPIRED: &str = "OTP expired or not found. Please request a new OTP.";
const INVALID: &str = "Invalid OTP. Please check and try again.";
const VERIFIED: &str = "Mobile number 9876543210 verified successfully!";

/// A server whose SMS goes to a fake gateway, with shortcuts for the auth routes.
struct Server(SmsApp);

impl std::ops::Deref for Server {
    type Target = SmsApp;

    fn deref(&self) -> &SmsApp {
        &self.0
    }
}

/// The two tokens of a TokenResponse.
struct Pair {
    access: String,
    refresh: String,
}

impl Pair {
    fn of(r: &Reply) -> Pair {
        assert!(
            matches!(r.status, 200 | 201),
            "expected tokens, got {} {}",
            r.status,
            r.text()
        );
        let v = r.json();
        assert_eq!(v["token_type"], "bearer");
        let field = |name: &str| v[name].as_str().expect("a token string").to_string();
        Pair {
            access: field("access_token"),
            refresh: field("refresh_token"),
        }
    }
}

impl Server {
    fn start(extra: &[(&str, &str)]) -> Server {
        Server(SmsApp::start(extra))
    }

    fn auth(&self, route: &str, body: &Value) -> Reply {
        self.post_as(None, &format!("/api/v1/auth/{route}"), body)
    }

    fn send_otp_as(&self, ip: Option<&str>, mobile: &str) -> Reply {
        let body = json!({ "mobile_number": mobile });
        self.post_as(ip, "/api/v1/auth/send-otp", &body)
    }

    fn send_otp(&self, mobile: &str) -> Reply {
        self.send_otp_as(None, mobile)
    }

    /// Sends a code and returns it as the gateway received it.
    fn sent_code(&self, mobile: &str) -> String {
        self.sent_code_as(None, mobile)
    }

    fn verify(&self, mobile: &str, otp: &str) -> Reply {
        self.auth("verify-otp", &json!({"mobile_number": mobile, "otp": otp}))
    }

    fn login_otp(&self, mobile: &str, otp: &str) -> Reply {
        self.auth("login-otp", &json!({"mobile_number": mobile, "otp": otp}))
    }

    fn login_as(&self, ip: Option<&str>, body: Value) -> Reply {
        self.post_as(ip, "/api/v1/auth/login", &body)
    }

    fn login(&self, password: &str) -> Reply {
        let body = json!({"mobile_number": MOBILE, "password": password});
        self.login_as(None, body)
    }

    fn refresh(&self, token: &str) -> Reply {
        self.auth("refresh", &json!({ "refresh_token": token }))
    }

    fn me(&self, access: &str) -> Reply {
        get_auth(self.t.http, "/api/v1/users/me", access)
    }

    /// send-otp, verify-otp and register for `MOBILE`.
    fn register_phone(&self) -> Pair {
        let code = self.sent_code(MOBILE);
        says(&self.verify(MOBILE, &code), true, VERIFIED);
        Pair::of(&self.auth(
            "register",
            &json!({"mobile_number": MOBILE, "password": PASSWORD, "full_name": "Asha Rao"}),
        ))
    }

    /// A second user, registered by email (no SMS needed).
    fn register_email(&self) -> Pair {
        Pair::of(&self.auth(
            "register",
            &json!({"email": EMAIL, "password": PASSWORD, "full_name": "Web User"}),
        ))
    }

    /// Usable (neither rotated nor revoked) refresh tokens in the family of `token`.
    fn usable_in_family(&self, token: &str) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM refresh_tokens
             WHERE revoked_at IS NULL AND rotated_at IS NULL AND family_id =
             (SELECT family_id FROM refresh_tokens WHERE token_hash = '{}')",
            hash_token(token)
        ))
    }

    fn set_active(&self, active: bool) {
        let app = self.t.app();
        let now = app.clock.unix();
        app.db
            .write(|tx| Ok(crate::internals::set_active(tx, MOBILE, active, "91", now)))
            .expect("database")
            .expect("the user exists");
    }
}

/// Checks status and `code` of an error answer and returns its body.
fn refused(r: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], code, "{v}");
    v
}

/// A 429 with `code` whose `Retry-After` lies in `range`.
fn too_many(r: &Reply, code: &str, range: RangeInclusive<u64>) -> Value {
    let v = refused(r, 429, code);
    let wait: u64 = r
        .header("Retry-After")
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!(range.contains(&wait), "Retry-After {wait} not in {range:?}");
    v
}

/// A verify-otp answer: always 200 with `success` and `message`, and on success a
/// `verification_token` too.
fn says(r: &Reply, success: bool, message: &str) {
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v = r.json();
    let token = v
        .as_object_mut()
        .and_then(|o| o.remove("verification_token"));
    assert_eq!(token.is_some(), success, "{}", r.text());
    assert_eq!(v, json!({"success": success, "message": message}));
}

/// A six-digit code that is none of `codes`.
fn wrong(codes: &[&str]) -> String {
    (0..10)
        .map(|d: u32| d.to_string().repeat(6))
        .find(|c| !codes.contains(&c.as_str()))
        .expect("ten candidates, few codes")
}

/// `n` wrong guesses on verify-otp, each answered "invalid"; `codes` are the ones to avoid.
fn guess_wrong(s: &Server, n: usize, codes: &[&str]) {
    for _ in 0..n {
        says(&s.verify(MOBILE, &wrong(codes)), false, INVALID);
    }
}

fn failures(s: &Server) -> i64 {
    s.count("SELECT count(*) FROM otp_failures WHERE mobile_number = '+919876543210'")
}

/// Retry-After of an hour-long and a 15-minute window that began during this test (slow
/// debug builds can take many seconds over twenty password hashes).
const HOUR: RangeInclusive<u64> = 3540..=3600;
const QUARTER: RangeInclusive<u64> = 840..=900;

const NO_COOLDOWN: (&str, &str) = ("OTP_RESEND_COOLDOWN_SECONDS", "0");
const PROXY: (&str, &str) = ("TRUSTED_PROXIES", "127.0.0.1");

// ---------------------------------------------------------------------------------------------
// OTP tries
// ---------------------------------------------------------------------------------------------

#[test]
fn verify_otp_locks_after_five_wrong_codes_even_for_the_right_code() {
    let s = Server::start(&[NO_COOLDOWN]);
    let code = s.sent_code(MOBILE);
    guess_wrong(&s, 5, &[&code]);
    assert_eq!(failures(&s), 5);
    let body = too_many(&s.verify(MOBILE, &code), "otp_locked", HOUR);
    assert_eq!(
        body["detail"],
        "Too many wrong OTP attempts for this number; try again later"
    );
    // The count is per number: login-otp is locked as well, another number is not.
    too_many(&s.login_otp(MOBILE, &code), "otp_locked", HOUR);
    let other = s.sent_code(OTHER);
    let ok = s.verify(OTHER, &other);
    assert_eq!(ok.json()["success"], true, "{}", ok.text());

    s.advance(3600);
    let fresh = s.sent_code(MOBILE);
    says(&s.verify(MOBILE, &fresh), true, VERIFIED);
    assert_eq!(failures(&s), 0, "a success clears the count");
}

#[test]
fn login_otp_locks_after_five_wrong_codes_even_for_the_right_code() {
    let s = Server::start(&[NO_COOLDOWN]);
    s.register_phone();
    let code = s.sent_code(MOBILE);
    for _ in 0..5 {
        let r = s.login_otp(MOBILE, &wrong(&[&code]));
        assert_eq!(refused(&r, 401, "invalid_otp")["detail"], INVALID);
    }
    too_many(&s.login_otp(MOBILE, &code), "otp_locked", HOUR);
    too_many(&s.verify(MOBILE, &code), "otp_locked", HOUR);
    assert_eq!(
        s.count("SELECT count(*) FROM refresh_tokens"),
        1,
        "only the registration issued tokens"
    );

    s.advance(3600);
    let fresh = s.sent_code(MOBILE);
    let pair = Pair::of(&s.login_otp(MOBILE, &fresh));
    assert_eq!(s.me(&pair.access).status, 200);
}

#[test]
fn the_last_allowed_wrong_try_kills_the_live_code() {
    // A short window ends the lock while the code would still be within its 5 minutes.
    let s = Server::start(&[("OTP_ATTEMPT_WINDOW_SECONDS", "60")]);
    let code = s.sent_code(MOBILE);
    guess_wrong(&s, 5, &[&code]);
    s.advance(61);
    // The lock is over and the code is within its 5 minutes, yet it is dead.
    says(&s.verify(MOBILE, &code), false, EXPIRED);
}

#[test]
fn a_right_code_resets_the_count() {
    let s = Server::start(&[NO_COOLDOWN]);
    for _round in 0..2 {
        let code = s.sent_code(MOBILE);
        guess_wrong(&s, 4, &[&code]);
        assert_eq!(failures(&s), 4);
        // Without the reset, the second round would be locked after its first wrong try.
        says(&s.verify(MOBILE, &code), true, VERIFIED);
        assert_eq!(failures(&s), 0);
    }
}

#[test]
fn resending_keeps_the_count_and_a_locked_number_still_gets_codes() {
    let s = Server::start(&[NO_COOLDOWN]);
    let first = s.sent_code(MOBILE);
    guess_wrong(&s, 3, &[&first]);
    let second = s.sent_code(MOBILE);
    guess_wrong(&s, 2, &[&first, &second]);
    // Five wrong tries across two codes: the fresh code's right answer is refused.
    too_many(&s.verify(MOBILE, &second), "otp_locked", HOUR);

    // A locked number can still be sent a code, but its checks stay locked.
    let third = s.sent_code(MOBILE);
    assert_eq!(s.sms.last().expect("sent").json()["to"], E164);
    too_many(&s.verify(MOBILE, &third), "otp_locked", HOUR);
    too_many(&s.login_otp(MOBILE, &third), "otp_locked", HOUR);

    s.advance(3600);
    let fourth = s.sent_code(MOBILE);
    says(&s.verify(MOBILE, &fourth), true, VERIFIED);
}

#[test]
fn a_new_code_replaces_the_live_one() {
    let s = Server::start(&[NO_COOLDOWN, ("OTP_MAX_SENDS_PER_HOUR", "10")]);
    s.register_phone();
    let old = s.sent_code(MOBILE);
    let mut new = s.sent_code(MOBILE);
    // Two draws match once in a million; draw again then.
    for _ in 0..3 {
        if new != old {
            break;
        }
        new = s.sent_code(MOBILE);
    }
    assert_ne!(new, old);
    says(&s.verify(MOBILE, &old), false, EXPIRED);
    let r = s.login_otp(MOBILE, &old);
    assert_eq!(refused(&r, 401, "invalid_otp")["detail"], EXPIRED);
    assert_eq!(failures(&s), 0, "a replaced code is not a guess");
    Pair::of(&s.login_otp(MOBILE, &new));
    // Single use, also once another code has been sent.
    says(&s.verify(MOBILE, &new), false, EXPIRED);
    let third = s.sent_code(MOBILE);
    if third != new {
        says(&s.verify(MOBILE, &new), false, EXPIRED);
    }
    says(&s.verify(MOBILE, &third), true, VERIFIED);
}

#[test]
fn codes_expire_after_the_ttl() {
    let s = Server::start(&[NO_COOLDOWN]);
    s.register_phone();
    let code = s.sent_code(MOBILE);
    s.advance(299);
    says(&s.verify(MOBILE, &code), true, VERIFIED);

    let code = s.sent_code(MOBILE);
    s.advance(301);
    says(&s.verify(MOBILE, &code), false, EXPIRED);
    let r = s.login_otp(MOBILE, &code);
    assert_eq!(refused(&r, 401, "invalid_otp")["detail"], EXPIRED);
}

// ---------------------------------------------------------------------------------------------
// OTP sending
// ---------------------------------------------------------------------------------------------

#[test]
fn resend_cooldown() {
    let s = Server::start(&[]);
    let r = s.send_otp(MOBILE);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["resend_after"], 30);
    too_many(&s.send_otp(MOBILE), "otp_cooldown", 1..=30);
    assert_eq!(
        s.sms.requests().len(),
        1,
        "the refused send reached no gateway"
    );
    assert_eq!(s.count("SELECT count(*) FROM otp_sends"), 1);
    s.advance(30);
    s.sent_code(MOBILE);
}

#[test]
fn hourly_cap_per_number() {
    let s = Server::start(&[NO_COOLDOWN, ("OTP_MAX_SENDS_PER_HOUR", "2")]);
    s.sent_code(MOBILE);
    s.sent_code(MOBILE);
    too_many(&s.send_otp(MOBILE), "otp_hourly_limit", HOUR);
    assert_eq!(s.sms.requests().len(), 2);
    s.sent_code(OTHER);
    s.advance(3600);
    s.sent_code(MOBILE);
}

#[test]
fn daily_cap_per_number() {
    let s = Server::start(&[
        NO_COOLDOWN,
        ("OTP_MAX_SENDS_PER_HOUR", "2"),
        ("OTP_MAX_SENDS_PER_DAY", "3"),
    ]);
    s.sent_code(MOBILE);
    s.sent_code(MOBILE);
    s.advance(3600);
    s.sent_code(MOBILE);
    // One send this hour, three today: the daily cap, not the hourly one, refuses.
    too_many(&s.send_otp(MOBILE), "otp_daily_limit", 82_740..=82_800);
    assert_eq!(s.sms.requests().len(), 3);
    s.advance(82_800);
    s.sent_code(MOBILE);
}

#[test]
fn cap_per_client_address() {
    let s = Server::start(&[PROXY, NO_COOLDOWN, ("OTP_MAX_SENDS_PER_IP_PER_HOUR", "2")]);
    let client = Some("203.0.113.7");
    for mobile in [MOBILE, OTHER] {
        assert_eq!(s.send_otp_as(client, mobile).status, 200);
    }
    let r = s.send_otp_as(client, "9000000001");
    too_many(&r, "otp_ip_limit", HOUR);
    assert_eq!(s.sms.requests().len(), 2);
    let elsewhere = s.send_otp_as(Some("198.51.100.9"), "9000000001");
    assert_eq!(elsewhere.status, 200, "another address has its own cap");
    assert_eq!(s.count("SELECT count(*) FROM otp_sends"), 3);
}

#[test]
fn global_daily_sms_limit() {
    let s = Server::start(&[PROXY, ("SMS_DAILY_LIMIT", "2")]);
    assert_eq!(s.send_otp_as(Some("203.0.113.1"), MOBILE).status, 200);
    assert_eq!(s.send_otp_as(Some("203.0.113.2"), OTHER).status, 200);
    let r = s.send_otp_as(Some("203.0.113.3"), "9000000001");
    too_many(&r, "sms_daily_limit", 86_340..=86_400);
    assert_eq!(s.sms.requests().len(), 2);
}

#[test]
fn countries_outside_the_list_get_nothing() {
    let s = Server::start(&[]);
    let r = s.send_otp("+14155550100");
    refused(&r, 422, "country_not_allowed");
    assert!(s.sms.requests().is_empty(), "the gateway was not called");
    assert_eq!(s.count("SELECT count(*) FROM otp_sends"), 0);
    assert_eq!(s.count("SELECT count(*) FROM otp_codes"), 0);
}

/// After a failed delivery the code the gateway saw must not work.
fn delivered_code_is_dead(s: &Server) {
    let code = s.sms.last_code().expect("the gateway was asked");
    says(&s.verify(MOBILE, &code), false, EXPIRED);
    assert_eq!(failures(s), 0);
}

#[test]
fn a_failing_gateway_gives_502_and_no_usable_code() {
    let s = Server::start(&[]);
    s.sms.set_status(500);
    refused(&s.send_otp(MOBILE), 502, "sms_gateway_error");
    delivered_code_is_dead(&s);
}

#[test]
fn a_slow_gateway_gives_504_and_no_usable_code() {
    let s = Server::start(&[("SMS_TIMEOUT_SECONDS", "1")]);
    s.sms.set_delay(Duration::from_secs(3));
    let started = Instant::now();
    refused(&s.send_otp(MOBILE), 504, "sms_gateway_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait out the gateway"
    );
    delivered_code_is_dead(&s);
}

// ---------------------------------------------------------------------------------------------
// Refresh rotation
// ---------------------------------------------------------------------------------------------

/// Registers and refreshes twice: the first pair of a family and the newest.
fn first_and_third(s: &Server) -> (Pair, Pair) {
    let first = s.register_phone();
    let second = Pair::of(&s.refresh(&first.refresh));
    let third = Pair::of(&s.refresh(&second.refresh));
    (first, third)
}

#[test]
fn reusing_a_rotated_token_after_the_grace_kills_its_family() {
    let s = Server::start(&[]);
    let (a, c) = first_and_third(&s);
    let other_session = Pair::of(&s.login(PASSWORD));
    s.advance(31);
    let r = s.refresh(&a.refresh);
    refused(&r, 401, "refresh_token_reused");
    assert_eq!(
        r.header("WWW-Authenticate"),
        None,
        "refresh is not a bearer route"
    );
    assert_eq!(s.usable_in_family(&c.refresh), 0);
    // The newest token of the family is dead too.
    refused(&s.refresh(&c.refresh), 401, "token_revoked");
    // Another login's family is not touched.
    Pair::of(&s.refresh(&other_session.refresh));
}

/// Revoked refresh tokens, of every family.
fn revoked_refresh_tokens(s: &Server) -> i64 {
    s.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
}

#[test]
fn a_replay_within_the_grace_while_the_successor_is_unused_answers_that_successor() {
    let s = Server::start(&[]);
    let a = s.register_phone();
    let lost = Pair::of(&s.refresh(&a.refresh));
    let again = Pair::of(&s.refresh(&a.refresh));
    // The same refresh token, a fresh access token, and nothing revoked.
    assert_eq!(again.refresh, lost.refresh);
    assert_ne!(again.access, lost.access);
    assert_eq!(revoked_refresh_tokens(&s), 0);
    assert_eq!(s.usable_in_family(&lost.refresh), 1);
    assert_eq!(s.me(&again.access).status, 200);
    assert_eq!(s.me(&lost.access).status, 200);
    let next = Pair::of(&s.refresh(&again.refresh));
    assert_eq!(s.me(&next.access).status, 200);
    assert_eq!(s.usable_in_family(&next.refresh), 1);
}

/// `n` refreshes with one token at once, as the released app sends them (one per request
/// that got a 401): every answer is a pair with the same refresh token, and it works.
fn concurrent_refreshes_agree(n: usize) {
    let s = Server::start(&[]);
    let a = s.register_phone();
    let gate = std::sync::Barrier::new(n);
    let pairs: Vec<Pair> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| {
                    gate.wait();
                    Pair::of(&s.refresh(&a.refresh))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a refresh thread"))
            .collect()
    });
    let b = &pairs[0].refresh;
    for p in &pairs {
        assert_eq!(&p.refresh, b, "every caller gets the same refresh token");
        assert_eq!(s.me(&p.access).status, 200);
    }
    assert_eq!(revoked_refresh_tokens(&s), 0);
    // One rotation happened: A's successor is the one live token of the family.
    assert_eq!(s.usable_in_family(b), 1);
    let next = Pair::of(&s.refresh(b));
    assert_eq!(s.me(&next.access).status, 200);
    assert_eq!(s.usable_in_family(&next.refresh), 1);
}

#[test]
fn three_concurrent_refreshes_with_one_token_get_the_same_working_token() {
    concurrent_refreshes_agree(3);
}

#[test]
fn ten_concurrent_refreshes_with_one_token_get_the_same_working_token() {
    concurrent_refreshes_agree(10);
}

#[test]
fn the_grace_ends_after_thirty_seconds_even_with_the_successor_unused() {
    let s = Server::start(&[]);
    let a = s.register_phone();
    let b = Pair::of(&s.refresh(&a.refresh));
    // The test clock is the real one plus what the test advanced, counted in whole seconds:
    // a second boundary may pass between two requests. At +30 exactly, CI once counted 31 and
    // refused; at +29 the check is inside the 30 s grace either way, at +31 outside.
    s.advance(29);
    assert_eq!(Pair::of(&s.refresh(&a.refresh)).refresh, b.refresh);
    s.advance(2);
    refused(&s.refresh(&a.refresh), 401, "refresh_token_reused");
    assert_eq!(s.usable_in_family(&b.refresh), 0);
    refused(&s.refresh(&b.refresh), 401, "token_revoked");
}

#[test]
fn a_replay_within_the_grace_after_the_successor_was_used_kills_the_family() {
    let s = Server::start(&[]);
    let (a, c) = first_and_third(&s);
    refused(&s.refresh(&a.refresh), 401, "refresh_token_reused");
    assert_eq!(s.usable_in_family(&c.refresh), 0);
    refused(&s.refresh(&c.refresh), 401, "token_revoked");
}

// ---------------------------------------------------------------------------------------------
// Password login lockout
// ---------------------------------------------------------------------------------------------

fn wrong_password_refused(r: &Reply) {
    let body = refused(r, 401, "invalid_credentials");
    assert_eq!(body["detail"], "Invalid mobile number or password");
}

#[test]
fn five_wrong_passwords_from_one_address_lock_that_identifier() {
    let s = Server::start(&[]);
    s.register_phone();
    s.register_email();
    for _ in 0..5 {
        wrong_password_refused(&s.login(WRONG_PASSWORD));
    }
    let body = too_many(&s.login(PASSWORD), "login_locked", QUARTER);
    assert_eq!(
        body["detail"],
        "Too many failed login attempts. Please try again later."
    );
    assert_eq!(
        s.count("SELECT count(*) FROM login_failures WHERE identifier = '+919876543210'"),
        5,
        "refused attempts while locked are not counted"
    );
    // Another identifier from the same address is unaffected.
    Pair::of(&s.login_as(None, json!({"email": EMAIL, "password": PASSWORD})));
    // The lock lasts 15 minutes.
    s.advance(900);
    Pair::of(&s.login(PASSWORD));
}

#[test]
fn a_successful_login_resets_the_count_of_its_address() {
    let s = Server::start(&[]);
    s.register_phone();
    for _round in 0..2 {
        for _ in 0..4 {
            wrong_password_refused(&s.login(WRONG_PASSWORD));
        }
        Pair::of(&s.login(PASSWORD));
    }
    assert_eq!(s.count("SELECT count(*) FROM login_failures"), 0);
}

#[test]
fn twenty_failures_from_many_addresses_lock_the_identifier_everywhere() {
    let s = Server::start(&[PROXY]);
    s.register_phone();
    s.register_email();
    let body = json!({"mobile_number": MOBILE, "password": WRONG_PASSWORD});
    for i in 1..=20 {
        let ip = format!("10.0.0.{i}");
        wrong_password_refused(&s.login_as(Some(&ip), body.clone()));
    }
    // A fresh address with the right password: the per-identifier limit over all addresses.
    let fresh = Some("10.0.1.1");
    let right = json!({"mobile_number": MOBILE, "password": PASSWORD});
    too_many(&s.login_as(fresh, right.clone()), "login_locked", HOUR);
    Pair::of(&s.login_as(fresh, json!({"email": EMAIL, "password": PASSWORD})));
    s.advance(3600);
    Pair::of(&s.login_as(fresh, right));
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Unpadded base64url, for hand-made JWT parts.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A 401 on a bearer route: `WWW-Authenticate: Bearer` and the given code.
fn bearer_refused(r: &Reply, code: &str) {
    refused(r, 401, code);
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
}

#[test]
fn only_genuine_access_tokens_open_bearer_routes() {
    let s = Server::start(&[]);
    let pair = s.register_phone();
    assert_eq!(s.me(&pair.access).status, 200);

    bearer_refused(&s.me(&pair.refresh), "invalid_token_type");

    let parts: Vec<&str> = pair.access.split('.').collect();
    assert_eq!(parts.len(), 3);
    let sig = parts[2];
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{}.{}.{flipped}{}", parts[0], parts[1], &sig[1..]);
    bearer_refused(&s.me(&tampered), "invalid_token");

    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    bearer_refused(&s.me(&unsigned), "invalid_token");

    let claims = HS256Key::from_bytes(SECRET.as_bytes())
        .verify_token::<TokenClaims>(&pair.access, None)
        .expect("the server's own token verifies");
    // Control: the same claims signed the server's way are accepted...
    let resigned = HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims.clone())
        .expect("sign");
    assert_eq!(s.me(&resigned).status, 200);
    // ...so these fail only for their algorithm or key.
    let hs512 = HS512Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims.clone())
        .expect("sign");
    bearer_refused(&s.me(&hs512), "invalid_token");
    let foreign = HS256Key::from_bytes(b"another-secret-another-secret-0123456789")
        .authenticate(claims)
        .expect("sign");
    bearer_refused(&s.me(&foreign), "invalid_token");
}

#[test]
fn access_tokens_expire_after_thirty_minutes() {
    let s = Server::start(&[]);
    let pair = s.register_phone();
    s.advance(29 * 60);
    assert_eq!(s.me(&pair.access).status, 200);
    s.advance(2 * 60);
    bearer_refused(&s.me(&pair.access), "token_expired");
}

#[test]
fn a_deleted_users_tokens_are_dead() {
    let s = Server::start(&[]);
    let first = s.register_phone();
    let second = Pair::of(&s.login(PASSWORD));
    let bearer = format!("Bearer {}", first.access);
    let r = request(
        s.t.http,
        "DELETE",
        "/api/v1/users/me",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.json(), json!({"message": "Account deleted"}));
    for access in [&first.access, &second.access] {
        bearer_refused(&s.me(access), "invalid_token");
    }
    refused(&s.refresh(&second.refresh), 401, "invalid_token");
}

#[test]
fn logout_all_ends_every_session() {
    let s = Server::start(&[]);
    let first = s.register_phone();
    let second = Pair::of(&s.login(PASSWORD));
    let out = send_json(
        s.t.http,
        "POST",
        "/api/v1/auth/logout",
        Some(&first.access),
        &json!({"all": true}),
    );
    assert_eq!(out.json(), json!({"message": "Successfully logged out"}));
    for pair in [&first, &second] {
        refused(&s.refresh(&pair.refresh), 401, "token_revoked");
        bearer_refused(&s.me(&pair.access), "token_revoked");
    }
    assert_eq!(
        s.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"),
        0
    );
}

fn logout(s: &Server, bearer: Option<&str>, body: &Value) -> Reply {
    send_json(s.t.http, "POST", "/api/v1/auth/logout", bearer, body)
}

/// What logging out everywhere would change: live refresh tokens and token versions.
fn session_state(s: &Server) -> (i64, i64) {
    (
        s.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"),
        s.count("SELECT sum(token_version) FROM users"),
    )
}

#[test]
fn logout_all_without_a_live_refresh_token_or_a_valid_bearer_is_refused() {
    let s = Server::start(&[]);
    let first = s.register_phone();
    let second = Pair::of(&s.login(PASSWORD));
    let rotated = Pair::of(&s.login(PASSWORD));
    let current = Pair::of(&s.refresh(&rotated.refresh));
    // `first`'s refresh token is logged out on its own: a plain logout needs nothing more.
    let out = logout(&s, None, &json!({"refresh_token": first.refresh}));
    assert_eq!(out.json(), json!({"message": "Successfully logged out"}));
    let before = session_state(&s);

    let tampered = format!("{}x", second.access);
    let attempts = [
        (None, json!({"refresh_token": first.refresh, "all": true})),
        (None, json!({"refresh_token": rotated.refresh, "all": true})),
        (None, json!({"refresh_token": "not-a-token", "all": true})),
        (None, json!({"all": true})),
        (
            Some(tampered.as_str()),
            json!({"refresh_token": first.refresh, "all": true}),
        ),
    ];
    for (bearer, body) in attempts {
        let r = logout(&s, bearer, &body);
        let v = refused(&r, 401, "logout_all_unauthorized");
        assert!(
            v["detail"].as_str().is_some_and(|d| d.contains("live")),
            "{v}"
        );
        assert_eq!(session_state(&s), before, "{body}: nothing changed");
    }
    // Every other session still works, access and refresh.
    for pair in [&second, &current] {
        assert_eq!(s.me(&pair.access).status, 200);
    }
    Pair::of(&s.refresh(&second.refresh));
    Pair::of(&s.refresh(&current.refresh));
}

#[test]
fn logout_all_with_a_live_refresh_token_and_no_bearer_ends_every_session() {
    let s = Server::start(&[]);
    let first = s.register_phone();
    let second = Pair::of(&s.login(PASSWORD));
    let out = logout(
        &s,
        None,
        &json!({"refresh_token": second.refresh, "all": true}),
    );
    assert_eq!(out.json(), json!({"message": "Successfully logged out"}));
    for pair in [&first, &second] {
        refused(&s.refresh(&pair.refresh), 401, "token_revoked");
        bearer_refused(&s.me(&pair.access), "token_revoked");
    }
    assert_eq!(session_state(&s).0, 0);
}

#[test]
fn revoked_access_tokens_are_kept_until_they_expire_then_purged() {
    let s = Server::start(&[]);
    let first = s.register_phone();
    let listed = "SELECT count(*) FROM revoked_access_tokens";
    assert_eq!(logout(&s, Some(&first.access), &json!({})).status, 200);
    assert_eq!(s.count(listed), 1);
    // Dropping the cache (as a restart does) leaves the table to answer.
    s.t.app().revoked_access.invalidate_all();
    bearer_refused(&s.me(&first.access), "token_revoked");
    // Past the access lifetime and the clock leeway, the next logout purges the old row.
    s.advance(30 * 60 + 31);
    let third = Pair::of(&s.login(PASSWORD));
    assert_eq!(logout(&s, Some(&third.access), &json!({})).status, 200);
    assert_eq!(s.count(listed), 1);
    bearer_refused(&s.me(&first.access), "token_expired");
}

#[test]
fn a_deactivated_user_is_refused_everywhere_until_activated() {
    let s = Server::start(&[NO_COOLDOWN]);
    let old = s.register_phone();
    s.set_active(false);

    refused(&s.me(&old.access), 403, "account_deactivated");
    refused(&s.refresh(&old.refresh), 403, "account_deactivated");
    refused(&s.login(PASSWORD), 403, "account_deactivated");
    // A code can still be sent; logging in with it is refused.
    let code = s.sent_code(MOBILE);
    refused(&s.login_otp(MOBILE, &code), 403, "account_deactivated");
    assert_eq!(
        s.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"),
        0,
        "no tokens were issued while deactivated"
    );

    s.set_active(true);
    bearer_refused(&s.me(&old.access), "token_revoked");
    refused(&s.refresh(&old.refresh), 401, "token_revoked");
    let fresh = Pair::of(&s.login(PASSWORD));
    assert_eq!(s.me(&fresh.access).json()["is_active"], true);
}

// ---------------------------------------------------------------------------------------------
// The request-rate limiter
// ---------------------------------------------------------------------------------------------

const RATE_LIMITED: [(&str, &str); 2] = [
    ("RATE_LIMIT_ENABLED", "true"),
    ("RATE_LIMIT_PER_MINUTE", "3"),
];

/// A 429 `rate_limited` with every header the contract lists.
fn rate_limited(r: &Reply, window_end: i64) {
    too_many(r, "rate_limited", 1..=60);
    assert_eq!(r.header("X-RateLimit-Limit"), Some("3"));
    assert_eq!(r.header("X-RateLimit-Remaining"), Some("0"));
    assert_eq!(
        r.header("X-RateLimit-Reset"),
        Some(window_end.to_string().as_str())
    );
}

#[test]
fn the_fourth_request_in_a_minute_is_refused_but_health_is_exempt() {
    let s = Server::start(&RATE_LIMITED);
    let window_end = s.start_of_minute();
    let path = "/api/v1/auth/password-requirements";
    for _ in 0..3 {
        assert_eq!(get(s.t.http, path).status, 200);
    }
    rate_limited(&get(s.t.http, path), window_end);
    for path in ["/health", "/api/v1/health"] {
        for _ in 0..4 {
            assert_eq!(get(s.t.http, path).status, 200, "{path} is exempt");
        }
    }
}

#[test]
fn each_signed_in_user_has_a_budget_of_their_own() {
    let s = Server::start(&RATE_LIMITED);
    // Two requests from this address; the budgets below start in a fresh minute.
    let a = s.register_email();
    let b = Pair::of(&s.auth(
        "register",
        &json!({"email": "third@example.com", "password": PASSWORD, "full_name": "Third"}),
    ));
    let window_end = s.start_of_minute();
    for _ in 0..3 {
        assert_eq!(s.me(&a.access).status, 200);
    }
    rate_limited(&s.me(&a.access), window_end);
    for _ in 0..3 {
        assert_eq!(
            s.me(&b.access).status,
            200,
            "user b is not charged for user a"
        );
    }
    rate_limited(&s.me(&b.access), window_end);
    assert_eq!(
        get(s.t.http, "/api/v1/auth/password-requirements").status,
        200,
        "nor is the address"
    );
}

#[test]
fn check_mobile_is_limited_even_with_the_limiter_off() {
    let s = Server::start(&[PROXY, ("RATE_LIMIT_ENABLED", "false")]);
    s.start_of_minute();
    let body = json!({ "mobile_number": MOBILE });
    let client = Some("203.0.113.5");
    for _ in 0..10 {
        let r = s.post_as(client, "/api/v1/auth/check-mobile", &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = s.post_as(client, "/api/v1/auth/check-mobile", &body);
    too_many(&r, "rate_limited", 1..=60);
    assert_eq!(r.header("X-RateLimit-Limit"), Some("10"));
    let elsewhere = s.post_as(Some("203.0.113.6"), "/api/v1/auth/check-mobile", &body);
    assert_eq!(elsewhere.status, 200, "the limit is per address");
    for _ in 0..12 {
        let r = get(s.t.http, "/api/v1/auth/password-requirements");
        assert_eq!(r.status, 200, "other routes are not limited");
    }
}
