//! The SMS providers against a fake gateway, through the public API only.

mod fake_sms;

use std::time::{Duration, Instant};

use fake_sms::FakeSms;
use wealthcoach::Config;
use wealthcoach::auth::sms::{SmsError, SmsSender, from_config, message_text};

const TO: &str = "+919876543210";
const WEBHOOK_TOKEN: &str = "webhook-token-secret";
const BULKSMS_APIKEY: &str = "bulk&api key/secret";
const TWILIO_SID: &str = "AC0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-secret";

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_pairs(pairs).expect("a valid config")
}

fn sender(pairs: &[(&str, &str)]) -> Box<dyn SmsSender> {
    from_config(&config(pairs))
}

fn webhook(fake: &FakeSms, extra: &[(&str, &str)]) -> Box<dyn SmsSender> {
    let url = fake.url();
    let mut pairs = vec![
        ("SMS_PROVIDER", "webhook"),
        ("SMS_WEBHOOK_URL", url.as_str()),
        ("SMS_WEBHOOK_TOKEN", WEBHOOK_TOKEN),
    ];
    pairs.extend_from_slice(extra);
    sender(&pairs)
}

fn bulksms(fake: &FakeSms) -> Box<dyn SmsSender> {
    let base = fake.base_url();
    sender(&[
        ("SMS_PROVIDER", "bulksmsind"),
        ("BULKSMS_BASE_URL", base.as_str()),
        ("BULKSMS_USERNAME", "wealth coach"),
        ("BULKSMS_SENDERNAME", "WCOACH"),
        ("BULKSMS_APIKEY", BULKSMS_APIKEY),
        ("BULKSMS_PEID", "1701000000000000001"),
        ("BULKSMS_TEMPLATEID", "1707000000000000002"),
    ])
}

fn twilio(fake: &FakeSms) -> Box<dyn SmsSender> {
    let base = fake.base_url();
    sender(&[
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_BASE_URL", base.as_str()),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
        ("TWILIO_FROM_NUMBER", "+15005550006"),
    ])
}

/// Sends a message that must fail with `Failed`, and checks the error keeps the secrets.
fn send_fails(sms: &dyn SmsSender) -> SmsError {
    let err = sms.send(TO, "123456 is your code").unwrap_err();
    assert!(matches!(err, SmsError::Failed(_)), "{err:?}");
    assert_no_secret(&err);
    err
}

/// Neither the error's text nor its debug form may carry a secret.
fn assert_no_secret(err: &SmsError) {
    let texts = [err.to_string(), format!("{err:?}")];
    for text in texts {
        for secret in [WEBHOOK_TOKEN, BULKSMS_APIKEY, "bulk%26api", TWILIO_TOKEN] {
            assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
        }
    }
}

#[test]
fn webhook_posts_json_with_the_bearer_token() {
    let fake = FakeSms::start();
    let sms = webhook(&fake, &[]);
    let message = message_text(&config(&[]), "482913");

    sms.send(TO, &message).expect("sent");

    assert_eq!(sms.name(), "webhook");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/sms");
    assert!(
        request
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {WEBHOOK_TOKEN}").as_str())
    );
    assert_eq!(
        request.json(),
        serde_json::json!({"to": TO, "message": "482913 is your Wealth Coach AI verification code."})
    );
    assert_eq!(fake.last_code().as_deref(), Some("482913"));
}

#[test]
fn webhook_without_a_token_sends_no_authorization() {
    let fake = FakeSms::start();
    let url = fake.url();
    let sms = sender(&[("SMS_PROVIDER", "webhook"), ("SMS_WEBHOOK_URL", &url)]);
    fake.set_status(204);
    fake.set_body("");

    sms.send(TO, "111111 is your code")
        .expect("any 2xx is success");

    assert_eq!(
        fake.last().expect("a request").header("authorization"),
        None
    );
}

#[test]
fn webhook_error_status_is_failed_without_the_token() {
    let fake = FakeSms::start();
    let sms = webhook(&fake, &[]);
    fake.set_status(500);
    fake.set_body(&format!("upstream broke; you sent {WEBHOOK_TOKEN}"));

    let err = send_fails(sms.as_ref());
    assert!(err.to_string().contains("500"), "{err}");
}

#[test]
fn webhook_slower_than_the_timeout_is_a_bounded_timeout() {
    let fake = FakeSms::start();
    let sms = webhook(&fake, &[("SMS_TIMEOUT_SECONDS", "1")]);
    fake.set_delay(Duration::from_secs(5));

    let started = Instant::now();
    let err = sms.send(TO, "123456 is your code").unwrap_err();

    assert!(matches!(err, SmsError::Timeout(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 1, "the gateway did get the request");
    assert_no_secret(&err);
}

#[test]
fn unreachable_gateway_is_failed() {
    let fake = FakeSms::start();
    let sms = webhook(&fake, &[]);
    drop(fake);

    send_fails(sms.as_ref());
}

#[test]
fn bulksmsind_sends_every_query_parameter_encoded() {
    let fake = FakeSms::start();
    let sms = bulksms(&fake);
    fake.set_body(r#"[{"status":"success","msgid":"abc"}]"#);
    let message = "654321 is your Wealth Coach AI code. Don't share it & stay safe: 100%";

    sms.send(TO, message).expect("sent");

    assert_eq!(sms.name(), "bulksmsind");
    let request = fake.last().expect("a request");
    assert_eq!(request.method, "GET");
    assert_eq!(request.path(), "/v2/sendSMS");
    assert!(
        !request.target.contains(' ') && !request.target.contains("+91"),
        "{}",
        request.target
    );
    let query = request.query();
    let expected = [
        ("username", "wealth coach"),
        ("message", message),
        ("sendername", "WCOACH"),
        ("smstype", "TRANS"),
        ("numbers", "919876543210"),
        ("apikey", BULKSMS_APIKEY),
        ("peid", "1701000000000000001"),
        ("templateid", "1707000000000000002"),
    ];
    for (key, value) in expected {
        assert_eq!(query.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert_eq!(query.len(), expected.len(), "{query:?}");
}

#[test]
fn bulksmsind_error_in_a_200_body_is_failed_without_the_key() {
    let fake = FakeSms::start();
    let sms = bulksms(&fake);
    fake.set_body(&format!("Invalid API Key {BULKSMS_APIKEY}"));

    send_fails(sms.as_ref());
}

#[test]
fn twilio_posts_the_form_with_basic_auth() {
    let fake = FakeSms::start();
    let sms = twilio(&fake);
    fake.set_status(201);
    fake.set_body(r#"{"sid":"SM1","status":"queued"}"#);

    sms.send(TO, "777777 is your code").expect("sent");

    assert_eq!(sms.name(), "twilio");
    let request = fake.last().expect("a request");
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.target,
        format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // base64 of "AC0123456789abcdef:twilio-auth-secret"
    assert_eq!(
        request.header("authorization"),
        Some("Basic QUMwMTIzNDU2Nzg5YWJjZGVmOnR3aWxpby1hdXRoLXNlY3JldA==")
    );
    let form = request.form();
    assert_eq!(form.get("To").map(String::as_str), Some(TO));
    assert_eq!(form.get("From").map(String::as_str), Some("+15005550006"));
    assert_eq!(
        form.get("Body").map(String::as_str),
        Some("777777 is your code")
    );
    assert_eq!(form.len(), 3);
}

#[test]
fn twilio_refusal_is_failed_without_the_token() {
    let fake = FakeSms::start();
    let sms = twilio(&fake);
    fake.set_status(401);
    fake.set_body(&format!(
        r#"{{"message":"bad credentials {TWILIO_TOKEN}"}}"#
    ));

    let err = send_fails(sms.as_ref());
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn missing_settings_are_not_configured_and_named() {
    let bulk = sender(&[
        ("SMS_PROVIDER", "bulksmsind"),
        ("BULKSMS_USERNAME", "u"),
        ("BULKSMS_APIKEY", BULKSMS_APIKEY),
        ("BULKSMS_PEID", "  "),
    ]);
    let twilio = sender(&[
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_FROM_NUMBER", "+15005550006"),
    ]);
    let mut no_url = config(&[
        ("SMS_PROVIDER", "webhook"),
        ("SMS_WEBHOOK_URL", "http://127.0.0.1:9/sms"),
        ("SMS_WEBHOOK_TOKEN", WEBHOOK_TOKEN),
    ]);
    no_url.sms.webhook_url = None;
    let webhook = from_config(&no_url);

    let cases: [(&dyn SmsSender, &str, &[&str]); 3] = [
        (
            bulk.as_ref(),
            "bulksmsind",
            &["BULKSMS_SENDERNAME", "BULKSMS_PEID", "BULKSMS_TEMPLATEID"],
        ),
        (twilio.as_ref(), "twilio", &["TWILIO_AUTH_TOKEN"]),
        (webhook.as_ref(), "webhook", &["SMS_WEBHOOK_URL"]),
    ];
    for (sms, name, missing) in cases {
        assert_eq!(sms.name(), name);
        let err = sms.send(TO, "123456 is your code").unwrap_err();
        assert!(matches!(err, SmsError::NotConfigured(_)), "{err:?}");
        for setting in missing {
            assert!(
                err.to_string().contains(setting),
                "{err} should name {setting}"
            );
        }
        assert_no_secret(&err);
    }
}

#[test]
fn a_base_url_that_is_not_http_is_not_configured() {
    let sms = sender(&[
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_BASE_URL", "ftp://example.test"),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
        ("TWILIO_FROM_NUMBER", "+15005550006"),
    ]);

    let err = sms.send(TO, "123456 is your code").unwrap_err();

    assert!(matches!(err, SmsError::NotConfigured(_)), "{err:?}");
    assert!(err.to_string().contains("TWILIO_BASE_URL"), "{err}");
}

#[test]
fn console_accepts_every_message() {
    for environment in ["development", "test", "staging"] {
        let sms = sender(&[("ENVIRONMENT", environment), ("SMS_PROVIDER", "console")]);
        assert_eq!(sms.name(), "console");
        sms.send(TO, "123456 is your code")
            .expect("console never fails");
    }
}

/// Log lines written by this crate on the current thread, captured for the log tests.
mod captured_logs {
    use std::sync::{Mutex, Once};
    use std::thread::ThreadId;

    static LINES: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            if record.target().starts_with("wealthcoach") {
                let line = (std::thread::current().id(), record.args().to_string());
                LINES.lock().unwrap().push(line);
            }
        }
        fn flush(&self) {}
    }

    /// Runs `f` and returns what it logged.
    pub fn during(f: impl FnOnce()) -> Vec<String> {
        INSTALL.call_once(|| {
            log::set_boxed_logger(Box::new(Capture)).expect("no other logger");
            log::set_max_level(log::LevelFilter::Trace);
        });
        let me = std::thread::current().id();
        LINES.lock().unwrap().retain(|(id, _)| *id != me);
        f();
        let lines = LINES.lock().unwrap();
        lines
            .iter()
            .filter(|(id, _)| *id == me)
            .map(|(_, line)| line.clone())
            .collect()
    }
}

#[test]
fn console_logs_the_code_only_in_development_and_test() {
    for (environment, shows_code) in [("development", true), ("test", true), ("staging", false)] {
        let sms = sender(&[("ENVIRONMENT", environment), ("SMS_PROVIDER", "console")]);
        let lines = captured_logs::during(|| sms.send(TO, "918273 is your code").unwrap());
        assert!(!lines.is_empty(), "{environment}: something is logged");
        let shown = lines.iter().any(|l| l.contains("918273"));
        assert_eq!(shown, shows_code, "{environment}: {lines:?}");
    }
}

#[test]
fn gateway_answers_are_logged_without_secrets_or_the_code() {
    let fake = FakeSms::start();
    let sms = webhook(&fake, &[]);
    fake.set_status(400);
    fake.set_body(&format!(
        "rejected {WEBHOOK_TOKEN} for message 918273 is your code"
    ));

    let lines = captured_logs::during(|| {
        sms.send(TO, "918273 is your code").unwrap_err();
    });

    assert!(lines.iter().any(|l| l.contains("400")), "{lines:?}");
    for line in &lines {
        assert!(!line.contains(WEBHOOK_TOKEN), "{line}");
        assert!(!line.contains("918273"), "{line}");
    }
}
