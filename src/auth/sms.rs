//! Sending the one-time codes by SMS, through the provider `SMS_PROVIDER` names.
//!
//! Every gateway call goes through one `ureq::Agent` per sender that talks to the configured URL
//! and nothing else: no redirects are followed and no proxy from the environment is used. Both
//! the connect and the whole call are bounded by `SMS_TIMEOUT_SECONDS` (10 s by default).
//!
//! Secrets (the webhook token, the BulkSMS API key, the Twilio auth token) never appear in an
//! error's text or in a log line: texts that could echo them are scrubbed first, and gateway
//! answers are logged truncated, with secrets, the message and anything that looks like a code
//! masked. The message itself (it carries the code) is logged only by the `console` provider, and
//! only in development and test.

use std::fmt;
use std::time::Duration;

use crate::config::{Config, Environment, Secret, SmsProvider};

/// What a gateway answered is logged up to this many characters.
const LOGGED_BODY_CHARS: usize = 200;
/// At most this much of a gateway's answer is read.
const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Used when `BULKSMS_BASE_URL` is not set: the host the bulksmsind.in HTTP API is served from.
pub(crate) const BULKSMS_DEFAULT_BASE_URL: &str = "https://sms.bulksmsind.in";
pub(crate) const TWILIO_DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// Sends one text message. Implementations block for at most the configured SMS timeout.
pub trait SmsSender: Send + Sync {
    /// `to_e164` is a full international number with its `+` (`+919876543210`).
    fn send(&self, to_e164: &str, message: &str) -> Result<(), SmsError>;
    /// The provider's name as `SMS_PROVIDER` spells it.
    fn name(&self) -> &'static str;
}

/// Why a message was not sent. The text names the provider and the cause, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsError {
    /// The gateway did not answer in time; it may still deliver the message.
    Timeout(String),
    /// The gateway refused the message, answered with an error, or could not be reached.
    Failed(String),
    /// The provider lacks a required setting (named in the text).
    NotConfigured(String),
}

impl fmt::Display for SmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmsError::Timeout(why) => write!(f, "SMS gateway timed out: {why}"),
            SmsError::Failed(why) => write!(f, "SMS gateway failed: {why}"),
            SmsError::NotConfigured(why) => write!(f, "SMS is not configured: {why}"),
        }
    }
}

impl std::error::Error for SmsError {}

/// The verification message: `"<code> is your <APP_NAME> verification code."`, or `SMS_TEMPLATE`
/// with `{code}` and `{app_name}` filled in.
pub fn message_text(config: &Config, code: &str) -> String {
    match &config.sms.template {
        Some(template) => template
            .replace("{app_name}", &config.app_name)
            .replace("{code}", code),
        None => format!("{code} is your {} verification code.", config.app_name),
    }
}

/// The sender `SMS_PROVIDER` asks for. A provider that lacks a required setting still gets a
/// sender: its `send` answers `NotConfigured` naming what is missing.
pub fn from_config(config: &Config) -> Box<dyn SmsSender> {
    let built = match config.sms.provider {
        SmsProvider::Console => Ok(Box::new(Console {
            show_text: matches!(
                config.environment,
                Environment::Development | Environment::Test
            ),
        }) as Box<dyn SmsSender>),
        SmsProvider::Webhook => Webhook::from_config(config).map(boxed),
        SmsProvider::BulkSmsInd => BulkSmsInd::from_config(config).map(boxed),
        SmsProvider::Twilio => Twilio::from_config(config).map(boxed),
    };
    built.unwrap_or_else(|missing| {
        let name = config.sms.provider.as_str();
        log::warn!("SMS_PROVIDER={name} cannot send: {missing}");
        Box::new(Unconfigured { name, missing })
    })
}

fn boxed<S: SmsSender + 'static>(sender: S) -> Box<dyn SmsSender> {
    Box::new(sender)
}

/// Development only: writes the message to the log instead of sending it.
struct Console {
    show_text: bool,
}

impl SmsSender for Console {
    fn send(&self, to_e164: &str, message: &str) -> Result<(), SmsError> {
        if self.show_text {
            log::info!("SMS to {to_e164}: {message}");
        } else {
            log::info!(
                "SMS to {}: a message was sent (console provider; text withheld outside development)",
                mask_number(to_e164)
            );
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "console"
    }
}

/// A provider whose settings are incomplete.
struct Unconfigured {
    name: &'static str,
    missing: String,
}

impl SmsSender for Unconfigured {
    fn send(&self, _to_e164: &str, _message: &str) -> Result<(), SmsError> {
        Err(SmsError::NotConfigured(format!(
            "SMS_PROVIDER={} needs {}",
            self.name, self.missing
        )))
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// POST `{"to","message"}` as JSON to `SMS_WEBHOOK_URL`, bearer `SMS_WEBHOOK_TOKEN` if set.
/// Any 2xx is success.
struct Webhook {
    url: String,
    token: Option<Secret>,
    gateway: Gateway,
}

impl Webhook {
    fn from_config(config: &Config) -> Result<Webhook, String> {
        let url = config
            .sms
            .webhook_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or("SMS_WEBHOOK_URL")?;
        check_http_url("SMS_WEBHOOK_URL", url)?;
        let token = config
            .sms
            .webhook_token
            .clone()
            .filter(|t| !t.expose().is_empty());
        let secrets = token.iter().map(|t| t.expose().to_string()).collect();
        Ok(Webhook {
            url: url.to_string(),
            token,
            gateway: Gateway::new("webhook", config.sms.timeout, secrets),
        })
    }
}

impl SmsSender for Webhook {
    fn send(&self, to_e164: &str, message: &str) -> Result<(), SmsError> {
        let mut request = self.gateway.agent.post(&self.url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {}", token.expose()));
        }
        let body = serde_json::json!({ "to": to_e164, "message": message });
        let result = request.send_json(&body);
        self.gateway.deliver(result, to_e164, message, |_| None)
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}

/// The bulksmsind.in HTTP API (India, DLT-registered templates):
/// `GET <BULKSMS_BASE_URL>/v2/sendSMS?username&message&sendername&smstype=TRANS&numbers&apikey&peid&templateid`.
///
/// `numbers` gets the number's digits with the country code and without the `+`
/// (`919876543210`): Indian gateways of this kind take either the 10-digit national number or the
/// 12-digit `91…` form, and only the latter stays unambiguous if another country is ever allowed.
///
/// The gateway answers 200 even when it refuses a message, with a short text or JSON saying why.
/// So success is a 2xx whose body contains none of these markers (case-insensitive): `error`,
/// `invalid`, `fail`, `insufficient`, `unauthori`, `denied`, `blocked`, `expired`.
struct BulkSmsInd {
    base_url: String,
    username: String,
    sendername: String,
    apikey: String,
    peid: String,
    templateid: String,
    gateway: Gateway,
}

const BULKSMS_ERROR_MARKERS: &[&str] = &[
    "error",
    "invalid",
    "fail",
    "insufficient",
    "unauthori",
    "denied",
    "blocked",
    "expired",
];

impl BulkSmsInd {
    fn from_config(config: &Config) -> Result<BulkSmsInd, String> {
        let b = &config.sms.bulksms;
        let base_url = provider_url("BULKSMS_BASE_URL", &b.base_url, BULKSMS_DEFAULT_BASE_URL)?;
        let [username, sendername, apikey, peid, templateid] = required([
            ("BULKSMS_USERNAME", b.username.as_deref()),
            ("BULKSMS_SENDERNAME", b.sendername.as_deref()),
            ("BULKSMS_APIKEY", b.apikey.as_ref().map(Secret::expose)),
            ("BULKSMS_PEID", b.peid.as_deref()),
            ("BULKSMS_TEMPLATEID", b.templateid.as_deref()),
        ])?;
        let gateway = Gateway::new("bulksmsind", config.sms.timeout, vec![apikey.clone()]);
        Ok(BulkSmsInd {
            base_url,
            username,
            sendername,
            apikey,
            peid,
            templateid,
            gateway,
        })
    }

    fn url(&self, to_e164: &str, message: &str) -> String {
        let number: String = to_e164.chars().filter(char::is_ascii_digit).collect();
        let params = [
            ("username", self.username.as_str()),
            ("message", message),
            ("sendername", self.sendername.as_str()),
            ("smstype", "TRANS"),
            ("numbers", number.as_str()),
            ("apikey", self.apikey.as_str()),
            ("peid", self.peid.as_str()),
            ("templateid", self.templateid.as_str()),
        ];
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("{}/v2/sendSMS?{}", self.base_url, query.join("&"))
    }
}

impl SmsSender for BulkSmsInd {
    fn send(&self, to_e164: &str, message: &str) -> Result<(), SmsError> {
        let result = self.gateway.agent.get(&self.url(to_e164, message)).call();
        self.gateway.deliver(result, to_e164, message, |body| {
            let body = body.to_ascii_lowercase();
            BULKSMS_ERROR_MARKERS
                .iter()
                .find(|marker| body.contains(*marker))
                .map(|marker| format!("its answer says {marker:?}"))
        })
    }

    fn name(&self) -> &'static str {
        "bulksmsind"
    }
}

/// Twilio's Messages API: POST form `To`, `From`, `Body` to
/// `<TWILIO_BASE_URL>/2010-04-01/Accounts/<TWILIO_ACCOUNT_SID>/Messages.json` with basic auth
/// `TWILIO_ACCOUNT_SID:TWILIO_AUTH_TOKEN`. Any 2xx (Twilio says 201) is success.
struct Twilio {
    url: String,
    from: String,
    authorization: String,
    gateway: Gateway,
}

impl Twilio {
    fn from_config(config: &Config) -> Result<Twilio, String> {
        let t = &config.sms.twilio;
        let base_url = provider_url("TWILIO_BASE_URL", &t.base_url, TWILIO_DEFAULT_BASE_URL)?;
        let [sid, token, from] = required([
            ("TWILIO_ACCOUNT_SID", t.account_sid.as_deref()),
            (
                "TWILIO_AUTH_TOKEN",
                t.auth_token.as_ref().map(Secret::expose),
            ),
            ("TWILIO_FROM_NUMBER", t.from_number.as_deref()),
        ])?;
        let url = format!(
            "{base_url}/2010-04-01/Accounts/{}/Messages.json",
            percent_encode(&sid)
        );
        let authorization = format!("Basic {}", base64(format!("{sid}:{token}").as_bytes()));
        let secrets = vec![token, authorization.clone()];
        Ok(Twilio {
            url,
            from,
            authorization,
            gateway: Gateway::new("twilio", config.sms.timeout, secrets),
        })
    }
}

impl SmsSender for Twilio {
    fn send(&self, to_e164: &str, message: &str) -> Result<(), SmsError> {
        let request = self
            .gateway
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization);
        let form = [("To", to_e164), ("From", &self.from), ("Body", message)];
        let result = request.send_form(form);
        self.gateway.deliver(result, to_e164, message, |_| None)
    }

    fn name(&self) -> &'static str {
        "twilio"
    }
}

/// All the named provider settings (config trims them and drops empty ones), or the names of
/// every one that is missing.
fn required<const N: usize>(fields: [(&str, Option<&str>); N]) -> Result<[String; N], String> {
    let missing: Vec<&str> = fields
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(missing.join(", "));
    }
    Ok(fields.map(|(_, value)| value.unwrap_or_default().to_string()))
}

/// A provider's `*_BASE_URL`, its default when unset, without a trailing `/`.
fn provider_url(name: &str, value: &Option<String>, default: &str) -> Result<String, String> {
    let url = value.as_deref().unwrap_or(default);
    check_http_url(name, url)?;
    Ok(url.trim_end_matches('/').to_string())
}

/// The URL is not echoed: it may carry a key of its own.
fn check_http_url(name: &str, url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("{name} to be an http:// or https:// URL"))
    }
}

/// The HTTP side shared by the real providers: the agent, the timeout, and what to keep out of
/// error texts and logs.
struct Gateway {
    provider: &'static str,
    agent: ureq::Agent,
    timeout: Duration,
    secrets: Vec<String>,
}

/// A gateway's status and (truncated) body.
struct Answer {
    status: u16,
    body: String,
}

impl Gateway {
    fn new(provider: &'static str, timeout: Duration, secrets: Vec<String>) -> Gateway {
        // A zero timeout would fail every call at once; one second is the least that works.
        let timeout = timeout.max(Duration::from_secs(1));
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(timeout))
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .build();
        Gateway {
            provider,
            agent: ureq::Agent::new_with_config(config),
            timeout,
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    /// Reads the answer, turning transport errors into `Timeout` or `Failed`.
    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        message: &str,
    ) -> Result<Answer, SmsError> {
        let mut response = result.map_err(|e| self.transport_error(e, message))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .lossy_utf8(true)
            .read_to_string();
        match body {
            Ok(body) => Ok(Answer { status, body }),
            // An oversized answer still has a status worth judging.
            Err(ureq::Error::BodyExceedsLimit(_)) => Ok(Answer {
                status,
                body: String::new(),
            }),
            Err(e) => Err(self.transport_error(e, message)),
        }
    }

    /// Judges a gateway call. A transport error, a status other than 2xx, or a body in which
    /// `refusal` finds an error (it says why) fails the send, and the answer is logged
    /// (scrubbed, truncated); anything else counts as sent.
    fn deliver(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        to_e164: &str,
        message: &str,
        refusal: impl Fn(&str) -> Option<String>,
    ) -> Result<(), SmsError> {
        let answer = self.answer(result, message)?;
        let why = if (200..300).contains(&answer.status) {
            refusal(&answer.body)
                .map(|why| format!("refused the message (HTTP {}, {why})", answer.status))
        } else {
            Some(format!("answered HTTP {}", answer.status))
        };
        let Some(why) = why else {
            log::info!("SMS sent via {} to {}", self.provider, mask_number(to_e164));
            return Ok(());
        };
        let body = mask_codes(&self.scrub(&answer.body, message));
        log::warn!(
            "SMS via {} failed: HTTP {}: {}",
            self.provider,
            answer.status,
            truncate(body.trim(), LOGGED_BODY_CHARS)
        );
        Err(SmsError::Failed(format!("{} {why}", self.provider)))
    }

    fn transport_error(&self, error: ureq::Error, message: &str) -> SmsError {
        let timed_out = match &error {
            ureq::Error::Timeout(_) => true,
            ureq::Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        };
        if timed_out {
            log::warn!(
                "SMS via {} timed out after {}s",
                self.provider,
                self.timeout.as_secs()
            );
            return SmsError::Timeout(format!(
                "{} did not answer within {}s",
                self.provider,
                self.timeout.as_secs()
            ));
        }
        let cause = match &error {
            // These two can quote the request URL, which for bulksmsind holds the API key.
            ureq::Error::BadUri(_) => "the gateway URL is not valid".to_string(),
            ureq::Error::Http(_) => "the request could not be built".to_string(),
            other => other.to_string(),
        };
        let cause = mask_codes(&self.scrub(&cause, message));
        log::warn!("SMS via {} failed: {cause}", self.provider);
        SmsError::Failed(format!("{}: {cause}", self.provider))
    }

    /// Replaces every secret and the message, as is and percent-encoded, with `***`.
    fn scrub(&self, text: &str, message: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter().map(String::as_str).chain([message]) {
            if s.is_empty() {
                continue;
            }
            out = out.replace(s, "***");
            out = out.replace(&percent_encode(s), "***");
        }
        out
    }
}

/// Percent-encodes everything but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`),
/// UTF-8 byte by byte: safe in a query value and in a path segment.
pub(crate) fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0x0f)] as char);
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `+91******3210`: enough to match a log line to a user, not enough to reveal the number.
fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let keep_start = if chars.first() == Some(&'+') { 3 } else { 2 };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i + 4 >= chars.len() || !c.is_ascii_digit() {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// Hides every run of 4 to 8 digits (the shape of a code) a gateway might echo back.
fn mask_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if (4..=8).contains(&digits.len()) {
            out.push_str("***");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs).expect("valid config")
    }

    #[test]
    fn message_text_defaults_to_the_app_name_sentence() {
        let c = config(&[("APP_NAME", "Wealth Coach AI")]);
        assert_eq!(
            message_text(&c, "123456"),
            "123456 is your Wealth Coach AI verification code."
        );
    }

    #[test]
    fn message_text_fills_the_template_placeholders() {
        let c = config(&[
            ("APP_NAME", "Coach"),
            (
                "SMS_TEMPLATE",
                "{app_name}: use {code}. Never share {code}.",
            ),
        ]);
        assert_eq!(
            message_text(&c, "654321"),
            "Coach: use 654321. Never share 654321."
        );
    }

    #[test]
    fn message_text_leaves_a_template_without_placeholders_alone() {
        let c = config(&[("SMS_TEMPLATE", "Your code follows")]);
        assert_eq!(message_text(&c, "111111"), "Your code follows");
    }

    #[test]
    fn percent_encode_keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode("a b"), "a%20b");
        assert_eq!(percent_encode("+91&x=1?#/"), "%2B91%26x%3D1%3F%23%2F");
        assert_eq!(percent_encode("100%"), "100%25");
        assert_eq!(percent_encode("₹"), "%E2%82%B9");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn bulksms_url_encodes_every_value_and_strips_the_plus() {
        let c = config(&[
            ("SMS_PROVIDER", "bulksmsind"),
            ("BULKSMS_BASE_URL", "https://gw.example/"),
            ("BULKSMS_USERNAME", "user name"),
            ("BULKSMS_SENDERNAME", "WCOACH"),
            ("BULKSMS_APIKEY", "k&y"),
            ("BULKSMS_PEID", "1701"),
            ("BULKSMS_TEMPLATEID", "1707"),
        ]);
        let sender = BulkSmsInd::from_config(&c).expect("configured");
        assert_eq!(
            sender.url("+919876543210", "123456 is your code."),
            "https://gw.example/v2/sendSMS?username=user%20name&message=123456%20is%20your%20code.\
             &sendername=WCOACH&smstype=TRANS&numbers=919876543210&apikey=k%26y&peid=1701&templateid=1707"
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn scrub_hides_secrets_and_the_message_in_both_spellings() {
        let g = Gateway::new("test", Duration::from_secs(1), vec!["s3cr&t".into()]);
        let text = "key s3cr&t or s3cr%26t; msg 123 ok or 123%20ok";
        assert_eq!(g.scrub(text, "123 ok"), "key *** or ***; msg *** or ***");
    }

    #[test]
    fn masks_hide_codes_and_most_of_a_number() {
        assert_eq!(
            mask_codes("code 123456, status 200"),
            "code ***, status 200"
        );
        assert_eq!(mask_codes("919876543210"), "919876543210");
        assert_eq!(mask_number("+919876543210"), "+91******3210");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
