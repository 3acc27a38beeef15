//! Registration attacks and the rules that stop them (API.md "Auth" /register, "Exact rules",
//! "Security rules"), each played from the outside against the real server with a fake SMS
//! gateway: a stranger registering a number its owner just verified, inline codes, accounts
//! without a password, a delete-and-register loop that pumped SMS past the caps, enumeration
//! through login-otp, and numbers of the wrong length.
//!
//! Client addresses: the server trusts 127.0.0.1 as a proxy, so `X-Forwarded-For` names the
//! client; without it the client is 127.0.0.1 itself.

use crate::common;
use crate::sms_app::SmsApp;

use std::time::Instant;

use common::*;
use serde_json::{Value, json};

const MOBILE: &str = "9876543210";
const E164: &str = "+919876543210";
const PASSWORD: &str = "Secret#123";
const STRANGER_PASSWORD: &str = "Stolen#123";
const OWNER: &str = "203.0.113.10";
const STRANGER: &str = "198.51.100.20";
const EXPIRED: &str = "OTP expired or not found. Please request a new OTP.";
const INVALID: &str = "Invalid OTP. Please check and try again.";
const NOT_VERIFIED: &str = "Mobile number not verified. Please verify it with an OTP first.";

struct Server(SmsApp);

impl std::ops::Deref for Server {
    type Target = SmsApp;

    fn deref(&self) -> &SmsApp {
        &self.0
    }
}

impl Server {
    fn start(extra: &[(&str, &str)]) -> Server {
        let mut settings = vec![
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("OTP_RESEND_COOLDOWN_SECONDS", "0"),
        ];
        settings.extend_from_slice(extra);
        Server(SmsApp::start(&settings))
    }

    /// POSTs JSON to an auth route as client `ip`.
    fn post(&self, ip: &str, route: &str, body: &Value) -> Reply {
        self.post_as(Some(ip), &format!("/api/v1/auth/{route}"), body)
    }

    /// Sends a code to `mobile` and returns it as the gateway got it.
    fn code(&self, ip: &str, mobile: &str) -> String {
        self.sent_code_as(Some(ip), mobile)
    }

    fn verify(&self, ip: &str, mobile: &str, code: &str) -> Reply {
        self.post(
            ip,
            "verify-otp",
            &json!({"mobile_number": mobile, "otp": code}),
        )
    }

    /// send-otp and a successful verify-otp from `ip`; returns verify-otp's answer.
    fn verify_ok(&self, ip: &str, mobile: &str) -> Value {
        let code = self.code(ip, mobile);
        let v = self.verify(ip, mobile, &code).json();
        assert_eq!(v["success"], true, "{v}");
        v
    }

    /// `verify_ok`, and the verification token it answered.
    fn verified(&self, ip: &str, mobile: &str) -> String {
        self.verify_ok(ip, mobile)["verification_token"]
            .as_str()
            .expect("verify-otp answers a verification_token")
            .to_string()
    }

    fn register(&self, ip: &str, body: Value) -> Reply {
        self.post(ip, "register", &body)
    }

    fn users(&self) -> i64 {
        self.count("SELECT count(*) FROM users")
    }

    fn failures(&self) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM otp_failures WHERE mobile_number = '{E164}'"
        ))
    }

    fn delete_me(&self, access: &str) {
        let r = request(
            self.t.http,
            "DELETE",
            "/api/v1/users/me",
            &[("Authorization", &format!("Bearer {access}"))],
            None,
        );
        assert_eq!(r.json(), json!({"message": "Account deleted"}));
    }
}

fn body(mobile: &str, password: &str) -> Value {
    json!({"mobile_number": mobile, "password": password, "full_name": "Asha Rao"})
}

/// Checks status, `code` and `detail` of an error answer.
fn refused(r: &Reply, status: u16, code: &str, detail: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), json!({"detail": detail, "code": code}));
}

fn access_token(r: &Reply) -> String {
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 18.1: a verification belongs to whoever verified
// ---------------------------------------------------------------------------------------------

#[test]
fn a_stranger_cannot_register_a_number_its_owner_just_verified() {
    let s = Server::start(&[]);
    s.verify_ok(OWNER, MOBILE);
    // The attack: another address, the owner's number, the stranger's password.
    let r = s.register(STRANGER, body(MOBILE, STRANGER_PASSWORD));
    refused(&r, 403, "mobile_not_verified", NOT_VERIFIED);
    // A made-up token is no better.
    let forged = "0".repeat(64);
    let mut b = body(MOBILE, STRANGER_PASSWORD);
    b["verification_token"] = json!(forged);
    refused(
        &s.register(STRANGER, b),
        403,
        "mobile_not_verified",
        NOT_VERIFIED,
    );
    assert_eq!(s.users(), 0, "no account was made");
    assert_eq!(
        s.count("SELECT count(*) FROM verified_numbers"),
        1,
        "the owner's verification is intact"
    );
    // The released app's flow still works: verify, then register from the same phone.
    let access = access_token(&s.register(OWNER, body(MOBILE, PASSWORD)));
    let me = get_auth(s.t.http, "/api/v1/users/me", &access).json();
    assert_eq!(me["mobile_number"], MOBILE);
    assert_eq!(s.count("SELECT count(*) FROM verified_numbers"), 0);
    // ...and the stranger still cannot log in with the password they chose.
    let r = s.post(
        STRANGER,
        "login",
        &json!({"mobile_number": MOBILE, "password": STRANGER_PASSWORD}),
    );
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn the_verification_token_works_from_another_address_once() {
    let s = Server::start(&[]);
    let token = s.verified(OWNER, MOBILE);
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(
        s.count(&format!(
            "SELECT count(*) FROM verified_numbers WHERE token_hash = '{token}'"
        )),
        0,
        "only a hash of the token is stored"
    );
    let mut b = body(MOBILE, PASSWORD);
    b["verification_token"] = json!(token);
    // The app may move from Wi-Fi to mobile data between the two calls.
    access_token(&s.register("192.0.2.77", b.clone()));
    // Single use: the second try is refused as unverified, before the duplicate check.
    refused(
        &s.register("192.0.2.77", b),
        403,
        "mobile_not_verified",
        NOT_VERIFIED,
    );
    assert_eq!(s.users(), 1);
}

#[test]
fn verifications_last_ten_minutes() {
    let s = Server::start(&[]);
    let token = s.verified(OWNER, MOBILE);
    s.advance(601);
    let mut b = body(MOBILE, PASSWORD);
    refused(
        &s.register(OWNER, b.clone()),
        403,
        "mobile_not_verified",
        NOT_VERIFIED,
    );
    b["verification_token"] = json!(token);
    refused(
        &s.register(STRANGER, b),
        403,
        "mobile_not_verified",
        NOT_VERIFIED,
    );
    assert_eq!(s.users(), 0);
}

#[test]
fn polling_register_costs_no_password_hashing() {
    let s = Server::start(&[]);
    // One KDF run: a login with the right password.
    s.verify_ok(OWNER, MOBILE);
    access_token(&s.register(OWNER, body(MOBILE, PASSWORD)));
    let login = json!({"mobile_number": MOBILE, "password": PASSWORD});
    let started = Instant::now();
    for _ in 0..2 {
        assert_eq!(s.post(OWNER, "login", &login).status, 200);
    }
    let two_hashes = started.elapsed();
    // Eight refused registrations, each of which hashed the password before.
    let started = Instant::now();
    for i in 0..8 {
        let r = s.register(STRANGER, body(&format!("912345678{i}"), PASSWORD));
        assert_eq!(r.status, 403, "{}", r.text());
    }
    let polls = started.elapsed();
    assert!(
        polls < two_hashes,
        "8 refused registrations took {polls:?}, 2 password checks {two_hashes:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 10.4: the code inline
// ---------------------------------------------------------------------------------------------

fn with_otp(code: &str) -> Value {
    json!({"mobile_number": MOBILE, "password": PASSWORD, "full_name": "Asha Rao", "otp": code})
}

#[test]
fn an_inline_code_registers_without_verify_otp_and_is_used_up() {
    let s = Server::start(&[]);
    let code = s.code(OWNER, MOBILE);
    // From another address too: the code itself is the proof.
    access_token(&s.register("192.0.2.5", with_otp(&code)));
    assert_eq!(s.users(), 1);
    let v = s.verify(OWNER, MOBILE, &code);
    assert_eq!(v.json(), json!({"success": false, "message": EXPIRED}));
}

#[test]
fn a_wrong_inline_code_is_a_401_and_counts_as_a_try() {
    let s = Server::start(&[("OTP_MAX_ATTEMPTS", "3")]);
    let code = s.code(OWNER, MOBILE);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for n in 1..=2 {
        refused(
            &s.register(STRANGER, with_otp(wrong)),
            401,
            "invalid_otp",
            INVALID,
        );
        assert_eq!(s.failures(), n, "each wrong code is counted");
    }
    assert_eq!(s.users(), 0);
    // The right code still works, and a success clears the count.
    access_token(&s.register(OWNER, with_otp(&code)));
    assert_eq!(s.failures(), 0);

    // Three wrong codes lock the number: even the right one is refused.
    let other = "9123456780";
    let code = s.code(OWNER, other);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut b = with_otp(wrong);
    b["mobile_number"] = json!(other);
    for _ in 0..3 {
        assert_eq!(s.register(STRANGER, b.clone()).status, 401);
    }
    b["otp"] = json!(code);
    let r = s.register(OWNER, b);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["code"], "otp_locked");
    assert_eq!(s.users(), 1);
}

#[test]
fn a_used_code_is_refused_inline() {
    let s = Server::start(&[]);
    let code = s.code(OWNER, MOBILE);
    assert_eq!(s.verify(OWNER, MOBILE, &code).json()["success"], true);
    // The number is verified from OWNER, but a code sent along must itself be live.
    refused(
        &s.register(OWNER, with_otp(&code)),
        401,
        "invalid_otp",
        EXPIRED,
    );
    assert_eq!(s.users(), 0);
    assert_eq!(s.failures(), 0, "a used code is not a guess");
}

#[test]
fn a_malformed_inline_code_is_a_422() {
    let s = Server::start(&[]);
    s.code(OWNER, MOBILE);
    for bad in [json!("12ab56"), json!("12345"), json!(42), json!("1234567")] {
        let mut b = with_otp("");
        b["otp"] = bad.clone();
        let r = s.register(OWNER, b);
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        let v = r.json();
        assert_eq!(v["detail"][0]["loc"], json!(["body", "otp"]), "{v}");
    }
    // A code needs its number.
    let r = s.register(
        OWNER,
        json!({"email": "a@example.com", "full_name": "Asha Rao", "otp": "123456"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "otp"]));
    assert_eq!(s.users(), 0);
    assert_eq!(s.failures(), 0);
}

#[test]
fn a_registration_refused_after_the_code_was_checked_leaves_it_live() {
    let s = Server::start(&[]);
    // A password rule: the code is still good afterwards.
    let code = s.code(OWNER, MOBILE);
    let mut weak = with_otp(&code);
    weak["password"] = json!("weakpass");
    refused(
        &s.register(OWNER, weak),
        400,
        "weak_password",
        "Password must contain at least one uppercase letter",
    );
    access_token(&s.register(OWNER, with_otp(&code)));
    // A duplicate: the fresh code is still good for login-otp afterwards.
    let code = s.code(OWNER, MOBILE);
    refused(
        &s.register(OWNER, with_otp(&code)),
        400,
        "mobile_exists",
        "Mobile number already registered",
    );
    assert_eq!(s.users(), 1);
    let r = s.post(
        OWNER,
        "login-otp",
        &json!({"mobile_number": MOBILE, "otp": code}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn without_a_password_the_account_signs_in_by_otp_only() {
    let s = Server::start(&[]);
    // No password and no code: the password is required.
    let r = s.register(
        OWNER,
        json!({"mobile_number": MOBILE, "full_name": "Asha Rao"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", "password"]));

    let code = s.code(OWNER, MOBILE);
    let r = s.register(
        OWNER,
        json!({"mobile_number": MOBILE, "full_name": "Asha Rao", "otp": code}),
    );
    access_token(&r);
    let stored: String =
        s.t.app()
            .db
            .read(|c| Ok(c.query_row("SELECT password_hash FROM users", [], |r| r.get(0))?))
            .expect("row");
    assert!(!stored.starts_with('$'), "no hash of anything: {stored}");

    // /login answers exactly as for a wrong password, and counts the failure.
    for password in [PASSWORD, "", stored.as_str()] {
        let login = json!({"mobile_number": MOBILE, "password": password});
        let r = s.post(STRANGER, "login", &login);
        if password.is_empty() {
            assert_eq!(r.status, 422);
            continue;
        }
        refused(
            &r,
            401,
            "invalid_credentials",
            "Invalid mobile number or password",
        );
    }
    assert_eq!(s.count("SELECT count(*) FROM login_failures"), 2);
    let unknown = s.post(
        STRANGER,
        "login",
        &json!({"mobile_number": "9123456780", "password": PASSWORD}),
    );
    refused(
        &unknown,
        401,
        "invalid_credentials",
        "Invalid mobile number or password",
    );

    // login-otp works.
    let code = s.code(OWNER, MOBILE);
    let r = s.post(
        OWNER,
        "login-otp",
        &json!({"mobile_number": MOBILE, "otp": code}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["token_type"], "bearer");
}

// ---------------------------------------------------------------------------------------------
// 18.3: caps survive account deletion
// ---------------------------------------------------------------------------------------------

/// send -> verify -> register -> delete; `false` once send-otp is refused (with `code`).
fn pump_once(s: &Server, refusal: &str) -> bool {
    let r = s.post(OWNER, "send-otp", &json!({ "mobile_number": MOBILE }));
    if r.status == 429 {
        assert_eq!(r.json()["code"], refusal, "{}", r.text());
        return false;
    }
    assert_eq!(r.status, 200, "{}", r.text());
    let code = s.sms.last_code().expect("code");
    assert_eq!(s.verify(OWNER, MOBILE, &code).json()["success"], true);
    let access = access_token(&s.register(OWNER, body(MOBILE, PASSWORD)));
    s.delete_me(&access);
    true
}

#[test]
fn deleting_the_account_does_not_reset_the_global_daily_sms_cap() {
    let s = Server::start(&[
        ("SMS_DAILY_LIMIT", "5"),
        ("OTP_MAX_SENDS_PER_HOUR", "50"),
        ("OTP_MAX_SENDS_PER_DAY", "50"),
    ]);
    let sent = (0..8)
        .take_while(|_| pump_once(&s, "sms_daily_limit"))
        .count();
    assert_eq!(sent, 5, "the sixth send is refused");
    assert_eq!(s.sms.requests().len(), 5, "the gateway got five SMS");
    assert_eq!(s.users(), 0);
}

#[test]
fn deleting_the_account_does_not_reset_the_per_number_cap() {
    let s = Server::start(&[("OTP_MAX_SENDS_PER_HOUR", "2")]);
    let sent = (0..5)
        .take_while(|_| pump_once(&s, "otp_hourly_limit"))
        .count();
    assert_eq!(sent, 2);
    assert_eq!(s.sms.requests().len(), 2);
}

#[test]
fn deleting_the_account_does_not_reset_wrong_tries() {
    let s = Server::start(&[("OTP_MAX_ATTEMPTS", "3")]);
    s.verify_ok(OWNER, MOBILE);
    let access = access_token(&s.register(OWNER, body(MOBILE, PASSWORD)));
    let code = s.code(OWNER, MOBILE);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let guess = json!({"mobile_number": MOBILE, "otp": wrong});
    for _ in 0..2 {
        refused(
            &s.post(STRANGER, "login-otp", &guess),
            401,
            "invalid_otp",
            INVALID,
        );
    }
    s.delete_me(&access);
    assert_eq!(s.failures(), 2, "the count outlives the account");
    let code = s.code(OWNER, MOBILE);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let v = s.verify(STRANGER, MOBILE, wrong);
    assert_eq!(v.json(), json!({"success": false, "message": INVALID}));
    let r = s.verify(OWNER, MOBILE, &code);
    assert_eq!(
        r.status,
        429,
        "the third wrong try locked the number: {}",
        r.text()
    );
    assert_eq!(r.json()["code"], "otp_locked");
}

// ---------------------------------------------------------------------------------------------
// 18.5: login-otp tells whether a number is registered, so it is limited like check-mobile
// ---------------------------------------------------------------------------------------------

#[test]
fn login_otp_is_rate_limited_per_address_like_check_mobile() {
    let s = Server::start(&[("RATE_LIMIT_ENABLED", "false")]);
    s.start_of_minute();
    let probe = |ip: &str, n: u32| {
        let number = format!("91234567{n:02}");
        s.post(
            ip,
            "login-otp",
            &json!({"mobile_number": number, "otp": "123456"}),
        )
    };
    for n in 0..10 {
        let r = probe(STRANGER, n);
        refused(
            &r,
            404,
            "user_not_found",
            "User not found. Please register first.",
        );
    }
    let r = probe(STRANGER, 10);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["code"], "rate_limited");
    assert_eq!(r.header("X-RateLimit-Limit"), Some("10"));
    assert!(r.header("Retry-After").is_some());
    // check-mobile shares the budget: switching routes gains nothing.
    let r = s.post(
        STRANGER,
        "check-mobile",
        &json!({ "mobile_number": MOBILE }),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(probe(OWNER, 11).status, 404, "the limit is per address");
}

// ---------------------------------------------------------------------------------------------
// 18.8: numbers of the allowed countries have their national length
// ---------------------------------------------------------------------------------------------

#[test]
fn numbers_of_the_wrong_length_are_refused_everywhere() {
    let s = Server::start(&[]);
    for bad in [
        "+9109000000032",
        "+919000000032000",
        "+91900000003",
        "+915876543210",
        "5876543210",
        "0123456789",
    ] {
        for route in ["send-otp", "check-mobile", "login-otp", "verify-otp"] {
            let r = s.post(
                OWNER,
                route,
                &json!({"mobile_number": bad, "otp": "123456"}),
            );
            assert_eq!(r.status, 422, "{route} {bad}: {}", r.text());
            let v = r.json();
            assert_eq!(v["code"], "validation_error", "{v}");
            assert_eq!(
                v["detail"][0]["loc"],
                json!(["body", "mobile_number"]),
                "{v}"
            );
        }
        let r = s.register(OWNER, body(bad, PASSWORD));
        assert_eq!(r.status, 422, "register {bad}: {}", r.text());
        // A new minute, so the per-address limit of check-mobile and login-otp never bites.
        s.advance(60);
    }
    assert!(s.sms.requests().is_empty(), "no SMS went out");
    assert_eq!(s.count("SELECT count(*) FROM otp_sends"), 0);
    assert_eq!(s.users(), 0);
    // Right-length numbers still work, in both forms.
    for good in ["6000000001", "+917000000002"] {
        let r = s.post(OWNER, "send-otp", &json!({ "mobile_number": good }));
        assert_eq!(r.status, 200, "{good}: {}", r.text());
    }
}
