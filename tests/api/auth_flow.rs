//! The whole phone login story through a fake SMS gateway that records what it was sent:
//! send → verify → register → me → refresh → logout, then login-otp and password logins.

use crate::sms_app::SmsApp;
use crate::{common, fake_sms};

use common::*;
use fake_sms::FakeSms;
use serde_json::{Value, json};

pub fn auth_app(extra: &[(&str, &str)]) -> (TestApp, FakeSms) {
    let mut settings = vec![("SMS_WEBHOOK_TOKEN", "gw-token")];
    settings.extend_from_slice(extra);
    let SmsApp { t, sms } = SmsApp::start(&settings);
    (t, sms)
}

const MOBILE: &str = "9876543210";
const PASSWORD: &str = "Secret#123";

fn send_otp(t: &TestApp, mobile: &str) -> Reply {
    post_json(
        t.http,
        "/api/v1/auth/send-otp",
        &json!({"mobile_number": mobile}),
    )
}

/// Sends, verifies and registers; returns the token pair.
fn register_by_phone(t: &TestApp, sms: &FakeSms, mobile: &str) -> Value {
    assert_eq!(send_otp(t, mobile).status, 200);
    let code = sms.last_code().expect("a code was sent");
    let v = post_json(
        t.http,
        "/api/v1/auth/verify-otp",
        &json!({"mobile_number": mobile, "otp": code}),
    );
    assert_eq!(v.json()["success"], true, "{}", v.text());
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"mobile_number": mobile, "password": PASSWORD, "full_name": "Asha Rao"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[test]
fn phone_signup_me_refresh_logout() {
    let (t, sms) = auth_app(&[]);
    let r = send_otp(&t, MOBILE);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"success": true, "message": "OTP sent successfully to 9876543210. Valid for 5 minutes.",
               "expires_in": 300, "resend_after": 30})
    );
    let sent = sms.last().expect("the gateway got a request");
    assert_eq!(sent.json()["to"], "+919876543210");
    assert_eq!(sent.header("authorization"), Some("Bearer gw-token"));
    let code = sms.last_code().expect("code");
    assert_eq!(
        sent.json()["message"],
        format!("{code} is your Wealth Coach AI verification code.")
    );

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let v = post_json(
        t.http,
        "/api/v1/auth/verify-otp",
        &json!({"mobile_number": MOBILE, "otp": wrong}),
    );
    assert_eq!(v.status, 200);
    assert_eq!(
        v.json(),
        json!({"success": false, "message": "Invalid OTP. Please check and try again."})
    );
    let v = post_json(
        t.http,
        "/api/v1/auth/verify-otp",
        &json!({"mobile_number": MOBILE, "otp": code}),
    );
    let mut answer = v.json();
    // The token that lets /register prove who verified (API.md "Security rules").
    let token = answer["verification_token"].take();
    assert!(token.as_str().is_some_and(|t| t.len() == 64), "{token}");
    answer
        .as_object_mut()
        .expect("object")
        .remove("verification_token");
    assert_eq!(
        answer,
        json!({"success": true, "message": "Mobile number 9876543210 verified successfully!"})
    );
    // Single use.
    let again = post_json(
        t.http,
        "/api/v1/auth/verify-otp",
        &json!({"mobile_number": MOBILE, "otp": code}),
    );
    assert_eq!(
        again.json()["message"],
        "OTP expired or not found. Please request a new OTP."
    );

    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"mobile_number": MOBILE, "password": PASSWORD, "full_name": "Asha Rao"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let tokens = r.json();
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 1800);
    let access = tokens["access_token"].as_str().expect("access");
    let refresh = tokens["refresh_token"].as_str().expect("refresh");

    let me = get_auth(t.http, "/api/v1/users/me", access);
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["mobile_number"], MOBILE);
    assert_eq!(me["full_name"], "Asha Rao");
    assert_eq!(me["is_active"], true);
    assert!(me["email"].is_null());

    // The verification was consumed by the registration.
    let dup = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"mobile_number": MOBILE, "password": PASSWORD, "full_name": "Asha Rao"}),
    );
    assert_eq!(dup.status, 403);
    assert_eq!(dup.json()["code"], "mobile_not_verified");

    let r = post_json(
        t.http,
        "/api/v1/auth/refresh",
        &json!({"refresh_token": refresh}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rotated = r.json();
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let new_refresh = rotated["refresh_token"].as_str().expect("refresh");
    let new_access = rotated["access_token"].as_str().expect("access");
    assert_eq!(get_auth(t.http, "/api/v1/users/me", new_access).status, 200);

    let out = send_json(
        t.http,
        "POST",
        "/api/v1/auth/logout",
        Some(new_access),
        &json!({"refresh_token": new_refresh}),
    );
    assert_eq!(out.json(), json!({"message": "Successfully logged out"}));
    let r = post_json(
        t.http,
        "/api/v1/auth/refresh",
        &json!({"refresh_token": new_refresh}),
    );
    assert_eq!(r.status, 401);
    let me = get_auth(t.http, "/api/v1/users/me", new_access);
    assert_eq!(me.status, 401, "the logged-out access token is dead too");
    assert_eq!(me.header("WWW-Authenticate"), Some("Bearer"));
}

#[test]
fn login_with_otp_and_with_password() {
    let (t, sms) = auth_app(&[("OTP_RESEND_COOLDOWN_SECONDS", "0")]);
    register_by_phone(&t, &sms, MOBILE);

    assert_eq!(send_otp(&t, MOBILE).status, 200);
    let code = sms.last_code().expect("code");
    let r = post_json(
        t.http,
        "/api/v1/auth/login-otp",
        &json!({"mobile_number": "+919876543210", "otp": code}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["access_token"].is_string());

    let r = post_json(
        t.http,
        "/api/v1/auth/login-otp",
        &json!({"mobile_number": MOBILE, "otp": code}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["detail"],
        "OTP expired or not found. Please request a new OTP."
    );

    assert_eq!(send_otp(&t, "9123456780").status, 200);
    let other = sms.last_code().expect("code");
    let r = post_json(
        t.http,
        "/api/v1/auth/login-otp",
        &json!({"mobile_number": "9123456780", "otp": other}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["detail"], "User not found. Please register first.");

    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"mobile_number": MOBILE, "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"mobile_number": MOBILE, "password": "Wrong#123"}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["detail"], "Invalid mobile number or password");
    assert_eq!(
        r.header("WWW-Authenticate"),
        None,
        "login is not a bearer route"
    );
    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"mobile_number": "9000000000", "password": PASSWORD}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["detail"], "Invalid mobile number or password");
}

#[test]
fn email_registration_and_login_for_the_web_client() {
    let (t, _sms) = auth_app(&[]);
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"email": "Web@Example.com", "password": PASSWORD, "full_name": "Web User"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let access = r.json()["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let me = get_auth(t.http, "/api/v1/users/me", &access).json();
    assert_eq!(me["email"], "Web@Example.com");
    assert!(me["mobile_number"].is_null());
    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"email": "web@example.com", "password": PASSWORD}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_json(
        t.http,
        "/api/v1/auth/login",
        &json!({"email": "web@example.com", "password": "Nope#1234"}),
    );
    assert_eq!(r.json()["detail"], "Invalid email or password");
    let dup = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"email": "WEB@example.com", "password": PASSWORD, "full_name": "Web User"}),
    );
    assert_eq!(dup.status, 400);
    assert_eq!(dup.json()["detail"], "Email already registered");

    let (off, _sms2) = auth_app(&[("ENABLE_EMAIL_REGISTRATION", "false")]);
    let r = post_json(
        off.http,
        "/api/v1/auth/register",
        &json!({"email": "web@example.com", "password": PASSWORD, "full_name": "Web User"}),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn register_checks_in_the_contract_order() {
    let (t, _sms) = auth_app(&[]);
    // Shape first.
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"password": PASSWORD, "full_name": "A"}),
    );
    assert_eq!(r.status, 422);
    // Then the password rule, before the unverified number.
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"mobile_number": MOBILE, "password": "short", "full_name": "Asha"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["detail"], "Password must be at least 8 characters");
    let r = post_json(
        t.http,
        "/api/v1/auth/register",
        &json!({"mobile_number": MOBILE, "password": PASSWORD, "full_name": "Asha"}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "mobile_not_verified");

    let (closed, _sms2) = auth_app(&[("ENABLE_USER_REGISTRATION", "false")]);
    let r = post_json(
        closed.http,
        "/api/v1/auth/register",
        &json!({"mobile_number": MOBILE, "password": "short", "full_name": "Asha"}),
    );
    assert_eq!(
        r.status, 403,
        "registration disabled comes before the password rule"
    );
}

#[test]
fn password_requirements_are_published() {
    let (t, _sms) = auth_app(&[]);
    assert_eq!(
        get(t.http, "/api/v1/auth/password-requirements").json(),
        json!({"min_length": 8, "requires_uppercase": true, "requires_lowercase": true, "requires_digit": true,
               "requires_special": true, "special_characters": "!@#$%^&*()_+-=[]{}|;:,.<>?"})
    );
}

#[test]
fn check_mobile_says_whether_registered() {
    let (t, sms) = auth_app(&[]);
    register_by_phone(&t, &sms, MOBILE);
    let r = post_json(
        t.http,
        "/api/v1/auth/check-mobile",
        &json!({"mobile_number": MOBILE}),
    );
    assert_eq!(
        r.json(),
        json!({"exists": true, "message": "Mobile number 9876543210 is registered"})
    );
    let r = post_json(
        t.http,
        "/api/v1/auth/check-mobile",
        &json!({"mobile_number": "+919000000001"}),
    );
    assert_eq!(
        r.json(),
        json!({"exists": false, "message": "Mobile number +919000000001 is not registered"})
    );
}

#[test]
fn patch_and_delete_me() {
    let (t, sms) = auth_app(&[]);
    let tokens = register_by_phone(&t, &sms, MOBILE);
    let access = tokens["access_token"].as_str().expect("access");
    let r = send_json(
        t.http,
        "PATCH",
        "/api/v1/users/me",
        Some(access),
        &json!({"full_name": "Asha R", "email": "a@x.in"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["full_name"], "Asha R");
    assert_eq!(r.json()["email"], "a@x.in");
    let r = send_json(
        t.http,
        "PATCH",
        "/api/v1/users/me",
        Some(access),
        &json!({"full_name": 7}),
    );
    assert_eq!(r.status, 422);

    let r = request(
        t.http,
        "DELETE",
        "/api/v1/users/me",
        &[("Authorization", &format!("Bearer {access}"))],
        None,
    );
    assert_eq!(r.json(), json!({"message": "Account deleted"}));
    let users: i64 = t
        .app()
        .db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(users, 0);
    let tokens_left: i64 = t
        .app()
        .db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0))?))
        .expect("count");
    assert_eq!(tokens_left, 0);
    assert_eq!(get_auth(t.http, "/api/v1/users/me", access).status, 401);
    let r = post_json(
        t.http,
        "/api/v1/auth/refresh",
        &json!({"refresh_token": tokens["refresh_token"]}),
    );
    assert_eq!(r.status, 401);
}
