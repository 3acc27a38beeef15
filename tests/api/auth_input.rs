//! Bad input for every auth route and `PATCH /users/me`, over HTTP against the real server:
//! missing fields, wrong JSON types, lengths counted in characters, empty strings, malformed
//! numbers and codes, broken or non-UTF-8 JSON, bodies that are not objects, oversized bodies
//! and form content types.
//!
//! Each case must be the 4xx the contract names (never a 5xx); a 422 must list field errors
//! whose `loc` names the field; and nothing may be written: the rows of `users`,
//! `refresh_tokens`, `otp_codes` and `otp_sends`, and the signed-in user's own row, are the
//! same after every case as before it.

use crate::sms_app::SmsApp;
use crate::{common, fake_sms};

use std::cell::Cell;

use common::*;
use fake_sms::FakeSms;
use serde_json::{Value, json};

const MOBILE: &str = "9876543210";
const PASSWORD: &str = "Secret#123";
const SQL: &str = "'; DROP TABLE users;--";
const TABLES: [&str; 4] = ["users", "refresh_tokens", "otp_codes", "otp_sends"];

/// What one input field holds, which decides the values that must be refused.
#[derive(Clone, Copy)]
enum Kind {
    Mobile,
    Otp,
    Email,
    Password,
    Name,
    /// `/refresh`: a non-empty string.
    RefreshToken,
    /// `/logout`: any string, or nothing.
    LogoutToken,
    Flag,
}

impl Kind {
    /// Values this field must refuse with a 422 naming it.
    fn bad_values(self) -> Vec<Value> {
        let mut bad = match self {
            Kind::Flag => vec![json!(5), json!("maybe")],
            _ => vec![json!(5), json!(true)],
        };
        bad.extend([json!([]), json!({}), json!(["9876543210"])]);
        let strings: Vec<String> = match self {
            Kind::Mobile => vec![
                String::new(),
                "98765abcde".into(),
                "98765432101".into(),
                "987654321".into(),
                "९८७६५४३२१०".into(),
                "９８７６５４３２１０".into(),
                "98765 43210".into(),
                "+".into(),
                "9".repeat(21),
                SQL.into(),
            ],
            Kind::Otp => vec![
                String::new(),
                "12345".into(),
                "1234567".into(),
                "abcdef".into(),
                "12345a".into(),
                "१२३४५६".into(),
                "１２３４５６".into(),
                SQL.into(),
            ],
            Kind::Email => vec![
                String::new(),
                "not-an-email".into(),
                format!("{}@example.com", "a".repeat(243)),
                SQL.into(),
            ],
            Kind::Password => vec![String::new(), "Aa1!".repeat(64) + "x"],
            Kind::Name => vec![String::new(), "A".into(), "   ".into(), "ñ".repeat(101)],
            Kind::RefreshToken => vec![String::new(), "x".repeat(4097)],
            Kind::LogoutToken | Kind::Flag => Vec::new(),
        };
        bad.extend(strings.into_iter().map(Value::String));
        if matches!(self, Kind::Otp) {
            bad.extend([
                json!(12345),
                json!(1_234_567),
                json!(-123_456),
                json!(123_456.5),
            ]);
        }
        bad
    }
}

/// One route, a body that passes its shape checks, and its fields.
struct Route {
    method: &'static str,
    path: &'static str,
    bearer: bool,
    /// Does the route accept an empty body (all fields optional)?
    empty_ok: bool,
    base: Value,
    /// (name, kind, required)
    fields: Vec<(&'static str, Kind, bool)>,
}

fn routes() -> Vec<Route> {
    let auth = |path: &'static str, base: Value, fields: Vec<(&'static str, Kind, bool)>| Route {
        method: "POST",
        path,
        bearer: false,
        empty_ok: false,
        base,
        fields,
    };
    let mobile = ("mobile_number", Kind::Mobile, true);
    let otp_body = json!({"mobile_number": MOBILE, "otp": "123456"});
    let otp_fields = vec![mobile, ("otp", Kind::Otp, true)];
    vec![
        auth(
            "/api/v1/auth/send-otp",
            json!({ "mobile_number": MOBILE }),
            vec![mobile],
        ),
        auth(
            "/api/v1/auth/verify-otp",
            otp_body.clone(),
            otp_fields.clone(),
        ),
        auth("/api/v1/auth/login-otp", otp_body, otp_fields),
        auth(
            "/api/v1/auth/register",
            json!({"mobile_number": MOBILE, "email": "new@example.com", "password": PASSWORD, "full_name": "Asha Rao"}),
            vec![
                ("mobile_number", Kind::Mobile, false),
                ("email", Kind::Email, false),
                ("password", Kind::Password, true),
                ("full_name", Kind::Name, true),
            ],
        ),
        auth(
            "/api/v1/auth/login",
            json!({"mobile_number": MOBILE, "email": "new@example.com", "password": PASSWORD}),
            vec![
                ("mobile_number", Kind::Mobile, false),
                ("email", Kind::Email, false),
                ("password", Kind::Password, true),
            ],
        ),
        auth(
            "/api/v1/auth/refresh",
            json!({"refresh_token": "x.y.z"}),
            vec![("refresh_token", Kind::RefreshToken, true)],
        ),
        Route {
            empty_ok: true,
            ..auth(
                "/api/v1/auth/logout",
                json!({"refresh_token": "x.y.z", "all": false}),
                vec![
                    ("refresh_token", Kind::LogoutToken, false),
                    ("all", Kind::Flag, false),
                ],
            )
        },
        auth(
            "/api/v1/auth/check-mobile",
            json!({ "mobile_number": MOBILE }),
            vec![mobile],
        ),
        Route {
            method: "PATCH",
            path: "/api/v1/users/me",
            bearer: true,
            empty_ok: false,
            base: json!({"full_name": "New Name", "email": "new@example.com"}),
            fields: vec![
                ("full_name", Kind::Name, false),
                ("email", Kind::Email, false),
            ],
        },
    ]
}

/// Where a 422 must point.
#[derive(Clone, Debug)]
enum Loc {
    /// `["body", <field>]`.
    Field(String),
    /// Somewhere in the body as a whole: `["body", ...]`.
    Body,
}

struct Case {
    what: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    status: u16,
    loc: Option<Loc>,
}

fn field_case(name: &str, what: String, body: &Value, status: u16) -> Case {
    Case {
        what: format!("{name}: {what}"),
        body: body.to_string().into_bytes(),
        content_type: Some("application/json"),
        status,
        loc: (status == 422).then(|| Loc::Field(name.to_string())),
    }
}

fn with(base: &Value, name: &str, value: Value) -> Value {
    let mut body = base.clone();
    body[name] = value;
    body
}

fn without(base: &Value, name: &str) -> Value {
    let mut body = base.clone();
    body.as_object_mut().expect("object").remove(name);
    body
}

/// Every field-level case of one route.
fn field_cases(route: &Route) -> Vec<Case> {
    let mut cases = Vec::new();
    for &(name, kind, required) in &route.fields {
        if required {
            let missing = without(&route.base, name);
            cases.push(field_case(name, "missing".into(), &missing, 422));
            let null = with(&route.base, name, Value::Null);
            cases.push(field_case(name, "null".into(), &null, 422));
        }
        for value in kind.bad_values() {
            let what = format!("{value}");
            cases.push(field_case(name, what, &with(&route.base, name, value), 422));
        }
    }
    cases
}

/// Cases about the body as a whole, for any route.
fn body_cases(route: &Route) -> Vec<Case> {
    let case = |what: &str, body: &[u8], content_type: &'static str, status, loc| Case {
        what: what.to_string(),
        body: body.to_vec(),
        content_type: Some(content_type),
        status,
        loc,
    };
    let json = "application/json";
    // Not JSON, or JSON that is not an object: 422 about the body.
    let mut malformed: Vec<(&str, &[u8])> = vec![
        ("broken JSON", br#"{"mobile_number": "98"#),
        ("trailing comma", br#"{"a": 1,}"#),
        ("invalid UTF-8", b"{\"mobile_number\": \"98\xff\xfe76\"}"),
        ("an array", b"[]"),
        (
            "an array of objects",
            br#"[{"mobile_number": "9876543210"}]"#,
        ),
        ("a string", br#""9876543210""#),
        ("a number", b"42"),
        ("null", b"null"),
    ];
    if !route.empty_ok {
        malformed.extend([("no body", &b""[..]), ("white space", b"  \n")]);
    }
    if route.fields.iter().any(|&(_, _, required)| required) {
        malformed.push(("an empty object", b"{}"));
    }
    let mut cases: Vec<Case> = malformed
        .into_iter()
        .map(|(what, body)| case(what, body, json, 422, Some(Loc::Body)))
        .collect();
    let first_field = route.fields[0].0;
    let form = format!("{first_field}=1");
    let declared: [(&str, &[u8]); 4] = [
        ("application/x-www-form-urlencoded", form.as_bytes()),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("application/xml", b"<a/>"),
        ("text/xml; charset=utf-8", b"<a/>"),
    ];
    for (content_type, body) in declared {
        cases.push(case(content_type, body, content_type, 415, None));
    }
    let mut big = br#"{"pad": ""#.to_vec();
    big.resize(2 * 1024 * 1024, b'a');
    big.extend_from_slice(br#""}"#);
    cases.push(case("a 2 MiB body", &big, json, 413, None));
    cases
}

/// A server with one user signed in by email, answering from a fresh address each time so
/// the per-address limit of check-mobile stays out of the way.
struct Server {
    t: TestApp,
    sms: FakeSms,
    access: String,
    next_ip: Cell<u32>,
}

impl Server {
    fn start() -> Server {
        let SmsApp { t, sms } = SmsApp::start(&[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("OTP_RESEND_COOLDOWN_SECONDS", "0"),
        ]);
        let r = post_json(
            t.http,
            "/api/v1/auth/register",
            &json!({"email": "me@example.com", "password": PASSWORD, "full_name": "Me Myself"}),
        );
        let access = access_of(&r);
        Server {
            t,
            sms,
            access,
            next_ip: Cell::new(1),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        bearer: bool,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let n = self.next_ip.get();
        self.next_ip.set(n + 1);
        let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let auth = format!("Bearer {}", self.access);
        let mut headers = vec![("X-Forwarded-For", ip.as_str())];
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        if bearer {
            headers.push(("Authorization", auth.as_str()));
        }
        request(self.t.http, method, path, &headers, Some(body))
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        let body = body.to_string();
        let ct = Some("application/json");
        self.send("POST", path, false, ct, body.as_bytes())
    }

    fn patch_me(&self, body: &Value) -> Reply {
        let body = body.to_string();
        let ct = Some("application/json");
        self.send("PATCH", "/api/v1/users/me", true, ct, body.as_bytes())
    }

    /// Row counts of the tables a bad request must not touch, and the user's own row.
    fn state(&self) -> (Vec<i64>, String) {
        self.t
            .app()
            .db
            .read(|c| {
                let mut counts = Vec::new();
                for table in TABLES {
                    let sql = format!("SELECT count(*) FROM {table}");
                    counts.push(c.query_row(&sql, [], |r| r.get(0))?);
                }
                let me = c.query_row(
                    "SELECT full_name || '|' || ifnull(email, '') || '|' || updated_at
                     FROM users WHERE email = 'me@example.com'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((counts, me))
            })
            .expect("read the database")
    }
}

/// The access token of a TokenResponse.
fn access_of(r: &Reply) -> String {
    assert!(matches!(r.status, 200 | 201), "{}", r.text());
    let token = &r.json()["access_token"];
    token.as_str().expect("an access token").to_string()
}

/// Checks one answer against its case; returns a description of what is wrong, if anything.
fn judge(case: &Case, r: &Reply) -> Option<String> {
    if r.status >= 500 || r.status != case.status {
        return Some(format!("status {} (want {})", r.status, case.status));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
        return Some("the error body is not JSON".into());
    };
    if !body["code"].is_string() {
        return Some(format!("no code: {body}"));
    }
    let Some(want) = &case.loc else {
        return (!body["detail"].is_string()).then(|| format!("detail is not a sentence: {body}"));
    };
    let Some(items) = body["detail"].as_array().filter(|l| !l.is_empty()) else {
        return Some(format!("detail is not a list: {body}"));
    };
    let well_formed = items
        .iter()
        .all(|i| i["loc"].is_array() && i["msg"].is_string() && i["type"].is_string());
    let named = items.iter().any(|i| match want {
        Loc::Field(f) => i["loc"] == json!(["body", f]),
        Loc::Body => i["loc"][0] == "body",
    });
    if !well_formed || !named {
        return Some(format!("detail does not name {want:?}: {body}"));
    }
    None
}

#[test]
fn bad_input_is_refused_with_the_right_4xx_and_writes_nothing() {
    let s = Server::start();
    let before = s.state();
    let mut problems = Vec::new();
    let mut checked = 0;
    for route in routes() {
        for case in field_cases(&route).into_iter().chain(body_cases(&route)) {
            let r = s.send(
                route.method,
                route.path,
                route.bearer,
                case.content_type,
                &case.body,
            );
            checked += 1;
            if let Some(why) = judge(&case, &r) {
                problems.push(format!(
                    "{} {} [{}]: {why}",
                    route.method, route.path, case.what
                ));
            }
            let after = s.state();
            if after != before {
                problems.push(format!(
                    "{} {} [{}] wrote: {before:?} -> {after:?}",
                    route.method, route.path, case.what
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} cases:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(checked > 250, "only {checked} cases ran");
    assert!(s.sms.requests().is_empty(), "no SMS for bad input");
}

#[test]
fn register_and_login_need_an_identifier() {
    let s = Server::start();
    let before = s.state();
    let neither = [
        (
            "/api/v1/auth/register",
            json!({"password": PASSWORD, "full_name": "Asha Rao"}),
        ),
        (
            "/api/v1/auth/register",
            json!({"mobile_number": null, "email": null, "password": PASSWORD, "full_name": "Asha Rao"}),
        ),
        ("/api/v1/auth/login", json!({ "password": PASSWORD })),
        (
            "/api/v1/auth/login",
            json!({"mobile_number": null, "password": PASSWORD}),
        ),
    ];
    for (path, body) in neither {
        let r = s.post(path, &body);
        let case = field_case("mobile_number", "neither".into(), &body, 422);
        assert_eq!(judge(&case, &r), None, "{path} {body}");
    }
    // Every problem is listed at once.
    let r = s.post("/api/v1/auth/register", &json!({"email": 5}));
    assert_eq!(r.status, 422);
    let locs: Vec<Value> = r.json()["detail"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["loc"][1].clone())
        .collect();
    for field in ["email", "password", "full_name"] {
        assert!(locs.contains(&json!(field)), "{field} in {locs:?}");
    }
    assert_eq!(s.state(), before);
}

#[test]
fn refresh_needs_a_token() {
    let s = Server::start();
    for body in [
        json!({}),
        json!({"refresh_token": ""}),
        json!({"refresh_token": null}),
    ] {
        let r = s.post("/api/v1/auth/refresh", &body);
        let case = field_case("refresh_token", "empty".into(), &body, 422);
        assert_eq!(judge(&case, &r), None, "{body}");
    }
}

#[test]
fn sql_in_strings_is_only_data() {
    let s = Server::start();
    let before = s.state();
    let r = s.post(
        "/api/v1/auth/register",
        &json!({"email": "sql@example.com", "password": SQL, "full_name": "Bobby"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["detail"],
        "Password must contain at least one digit"
    );
    let r = s.post(
        "/api/v1/auth/login",
        &json!({"email": "me@example.com", "password": SQL}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["detail"], "Invalid email or password");
    let r = s.post("/api/v1/auth/refresh", &json!({ "refresh_token": SQL }));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "invalid_token");
    assert_eq!(s.state(), before);

    // A name may look like SQL: it is stored and echoed as typed.
    let r = s.post(
        "/api/v1/auth/register",
        &json!({"email": "bobby@example.com", "password": PASSWORD, "full_name": SQL}),
    );
    let access = access_of(&r);
    let me = get_auth(s.t.http, "/api/v1/users/me", &access);
    assert_eq!(me.json()["full_name"], SQL);
    assert_eq!(s.state().0[0], before.0[0] + 1, "the users table is intact");
}

#[test]
fn names_are_counted_in_characters() {
    let s = Server::start();
    let hundred = "ñ".repeat(100);
    let r = s.post(
        "/api/v1/auth/register",
        &json!({"email": "long@example.com", "password": PASSWORD, "full_name": hundred}),
    );
    assert_eq!(
        r.status,
        201,
        "100 characters (200 bytes) are allowed: {}",
        r.text()
    );
    let r = s.patch_me(&json!({ "full_name": hundred }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["full_name"], hundred.as_str());
    let before = s.state();
    let r = s.patch_me(&json!({"full_name": "ñ".repeat(101)}));
    let case = field_case("full_name", "101".into(), &json!({}), 422);
    assert_eq!(judge(&case, &r), None);
    assert_eq!(r.json()["detail"][0]["type"], "string_too_long");
    assert_eq!(s.state(), before);
}

#[test]
fn unknown_fields_are_ignored() {
    let s = Server::start();
    let extras = |mut body: Value| {
        body["extra"] = json!({"nested": [1, 2, {"deep": null}]});
        body["device_id"] = json!("abc");
        body
    };
    let ok = |r: Reply, status: u16| {
        assert_eq!(r.status, status, "{}", r.text());
        r.json()
    };
    let mobile = json!({ "mobile_number": MOBILE });
    ok(
        s.post("/api/v1/auth/send-otp", &extras(mobile.clone())),
        200,
    );
    let code = s.sms.last_code().expect("code");
    let v = ok(
        s.post(
            "/api/v1/auth/verify-otp",
            &extras(json!({"mobile_number": MOBILE, "otp": code})),
        ),
        200,
    );
    assert_eq!(v["success"], true);
    // Every request of this harness comes from a new address, so the registration carries
    // the verification token (API.md "Security rules").
    let tokens = ok(
        s.post(
            "/api/v1/auth/register",
            &extras(
                json!({"mobile_number": MOBILE, "password": PASSWORD, "full_name": "Asha Rao",
                           "verification_token": v["verification_token"]}),
            ),
        ),
        201,
    );
    ok(
        s.post(
            "/api/v1/auth/login",
            &extras(json!({"mobile_number": MOBILE, "password": PASSWORD})),
        ),
        200,
    );
    // A JSON body with no Content-Type is accepted too.
    let body = extras(mobile.clone()).to_string();
    let r = s.send(
        "POST",
        "/api/v1/auth/send-otp",
        false,
        None,
        body.as_bytes(),
    );
    ok(r, 200);
    let code = s.sms.last_code().expect("code");
    ok(
        s.post(
            "/api/v1/auth/login-otp",
            &extras(json!({"mobile_number": MOBILE, "otp": code})),
        ),
        200,
    );
    let rotated = ok(
        s.post(
            "/api/v1/auth/refresh",
            &extras(json!({"refresh_token": tokens["refresh_token"]})),
        ),
        200,
    );
    ok(s.post("/api/v1/auth/check-mobile", &extras(mobile)), 200);
    let patched = ok(s.patch_me(&extras(json!({"full_name": "Renamed"}))), 200);
    assert_eq!(patched["full_name"], "Renamed");
    ok(
        s.post(
            "/api/v1/auth/logout",
            &extras(json!({"refresh_token": rotated["refresh_token"]})),
        ),
        200,
    );
}
