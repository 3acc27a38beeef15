//! What the auth suites (auth_flow, auth_input, auth_register, auth_abuse) stand on: a test
//! server whose SMS gateway is the fake, and the shortcuts they all use.

use serde_json::Value;

use crate::common::{Reply, TestApp, spawn_app_with};
use crate::fake_sms::FakeSms;

/// A test server sending its SMS to a fake gateway, and that gateway.
pub struct SmsApp {
    pub t: TestApp,
    pub sms: FakeSms,
}

impl SmsApp {
    /// `SMS_PROVIDER=webhook` pointed at a new fake; `extra` adds or overrides settings.
    pub fn start(extra: &[(&str, &str)]) -> SmsApp {
        let sms = FakeSms::start();
        let url = sms.url();
        let mut settings = vec![
            ("SMS_PROVIDER", "webhook"),
            ("SMS_WEBHOOK_URL", url.as_str()),
        ];
        settings.extend_from_slice(extra);
        SmsApp {
            t: spawn_app_with(&settings),
            sms,
        }
    }

    /// POSTs JSON to `path`; with `ip`, as a trusted proxy forwarding for that client.
    pub fn post_as(&self, ip: Option<&str>, path: &str, body: &Value) -> Reply {
        let call = self.t.call("POST", path).json(body);
        match ip {
            Some(ip) => call.header("X-Forwarded-For", ip).send(),
            None => call.send(),
        }
    }

    /// Sends a code to `mobile` (from `ip`) and returns it as the gateway received it.
    pub fn sent_code_as(&self, ip: Option<&str>, mobile: &str) -> String {
        let before = self.sms.requests().len();
        let body = serde_json::json!({ "mobile_number": mobile });
        let r = self.post_as(ip, "/api/v1/auth/send-otp", &body);
        assert_eq!(r.status, 200, "send-otp: {}", r.text());
        assert_eq!(self.sms.requests().len(), before + 1, "one SMS per send");
        self.sms.last_code().expect("the gateway got a code")
    }

    /// The one number `sql` selects, read in the database itself.
    pub fn count(&self, sql: &str) -> i64 {
        self.t
            .app()
            .db
            .read(|c| Ok(c.query_row(sql, [], |r| r.get(0))?))
            .expect(sql)
    }

    pub fn advance(&self, secs: i64) {
        self.t.app().clock.advance(secs);
    }

    /// Moves the server clock to the start of a minute, so one-minute windows cannot roll
    /// over in the middle of a test; returns the end of that minute.
    pub fn start_of_minute(&self) -> i64 {
        let now = self.t.app().clock.unix();
        self.advance(60 - now.rem_euclid(60));
        let now = self.t.app().clock.unix();
        now - now.rem_euclid(60) + 60
    }
}
