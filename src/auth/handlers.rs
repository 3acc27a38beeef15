//! `/api/v1/auth/*`: parse the input, call the domain, map the result.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::identity::{
    Email, FullName, MobileNumber, OtpCode, PasswordInput, RawMobile, VerificationToken,
};
use super::otp::{self, Check};
use super::registration::{self, NewAccount, Verification};
use super::tokens::{self, Rotation, TokenResponse};
use super::{lockout, password, revocation, users};
use crate::app::App;
use crate::error::{Error, Result};
use crate::http::{Fields, Req, Resp};

/// Reads `mobile_number` and parses it with the configured default country.
fn mobile_field(app: &App, f: &mut Fields, required: bool) -> Result<Option<MobileNumber>> {
    let raw = if required {
        Some(f.required::<RawMobile>("mobile_number")?)
    } else {
        f.optional::<RawMobile>("mobile_number")?
    };
    let Some(RawMobile(raw)) = raw else {
        return Ok(None);
    };
    let c = &app.config;
    match MobileNumber::parse_in(&raw, &c.sms.default_country_code, &c.sms.allowed_countries) {
        Ok(m) => Ok(Some(m)),
        Err(inv) => {
            f.reject("mobile_number", inv.msg, inv.kind);
            Err(Error::validation(
                &["body", "mobile_number"],
                "invalid",
                "value_error",
            ))
        }
    }
}

/// `mobile_number` and `email`, of which register and login need at least one.
fn identifiers(app: &App, f: &mut Fields) -> (Result<Option<MobileNumber>>, Result<Option<Email>>) {
    let mobile = mobile_field(app, f, false);
    let email = f.optional::<Email>("email");
    if !f.has("mobile_number") && !f.has("email") {
        f.reject(
            "mobile_number",
            "Either mobile_number or email is required",
            "missing",
        );
    }
    (mobile, email)
}

/// A body whose one field is a required `mobile_number` (send-otp, check-mobile).
fn mobile_body(app: &App, req: &Req) -> Result<MobileNumber> {
    let mut f = Fields::body(req)?;
    let mobile = mobile_field(app, &mut f, true);
    f.finish()?;
    mobile?
        .ok_or_else(|| Error::validation(&["body", "mobile_number"], "Field required", "missing"))
}

fn mobile_and_otp(app: &App, req: &Req) -> Result<(MobileNumber, OtpCode)> {
    let mut f = Fields::body(req)?;
    let mobile = mobile_field(app, &mut f, true);
    let code = f.required::<OtpCode>("otp");
    f.finish()?;
    let mobile = mobile?.ok_or_else(|| {
        Error::validation(&["body", "mobile_number"], "Field required", "missing")
    })?;
    Ok((mobile, code?))
}

#[derive(Serialize, ToSchema)]
pub struct MobileRequest {
    /// 10 digits, or E.164 (`+919876543210`).
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: String,
}

#[derive(Serialize, ToSchema)]
pub struct OtpSentResponse {
    pub success: bool,
    pub message: String,
    pub expires_in: u64,
    pub resend_after: u64,
}

#[utoipa::path(post, path = "/api/v1/auth/send-otp", tag = "auth", request_body = MobileRequest,
    responses((status = 200, body = OtpSentResponse),
              (status = 422, description = "Bad number, or `country_not_allowed`"),
              (status = 429, description = "Cooldown, hourly/daily/IP caps or `sms_daily_limit`"),
              (status = 502, description = "The SMS gateway failed"), (status = 504, description = "The SMS gateway timed out")))]
pub fn send_otp(app: &App, req: &Req) -> Result<Resp> {
    let mobile = mobile_body(app, req)?;
    if !mobile.in_countries(&app.config.sms.allowed_countries) {
        return Err(Error::Unprocessable {
            code: "country_not_allowed",
            detail: "OTP delivery is not available for this country".into(),
        });
    }
    let ip = req.client_ip.to_string();
    let code = app
        .db
        .write(|tx| otp::prepare_send(app, tx, &mobile, &ip))?;
    // Network I/O happens after the transaction committed, never inside it.
    let text = super::sms::message_text(&app.config, &code.0);
    if let Err(e) = app.sms.send(&mobile.e164, &text) {
        log::warn!("OTP delivery to {} failed: {e}", mask(&mobile.e164));
        app.db.write(|tx| otp::discard(app, tx, &mobile, &code))?;
        let timeout = matches!(e, super::sms::SmsError::Timeout(_));
        return Err(Error::Upstream {
            code: if timeout {
                "sms_gateway_timeout"
            } else {
                "sms_gateway_error"
            },
            detail: "Could not send the OTP. Please try again.".into(),
            timeout,
        });
    }
    let ttl = app.config.otp.ttl.as_secs();
    Ok(Resp::json(
        200,
        &OtpSentResponse {
            success: true,
            message: format!(
                "OTP sent successfully to {}. Valid for {} minutes.",
                mobile.typed,
                ttl.div_ceil(60)
            ),
            expires_in: ttl,
            resend_after: app.config.otp.resend_cooldown.as_secs(),
        },
    ))
}

/// `+91987***210`: enough to tell numbers apart in logs, not enough to be one.
fn mask(e164: &str) -> String {
    let n = e164.len();
    if n < 8 {
        return "***".into();
    }
    format!("{}***{}", &e164[..n - 7], &e164[n - 3..])
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOtpRequest {
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: String,
    /// Six digits (a 6-digit number is accepted too).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub otp: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyOtpResponse {
    pub success: bool,
    pub message: String,
    /// On success only: pass it to `/register` as `verification_token` (single use, valid 10
    /// minutes). Without it, only a registration from the address that verified counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub verification_token: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/verify-otp", tag = "auth", request_body = VerifyOtpRequest,
    responses((status = 200, description = "`success` says whether the code was right", body = VerifyOtpResponse),
              (status = 422), (status = 429, description = "`otp_locked`: too many wrong codes")))]
pub fn verify_otp(app: &App, req: &Req) -> Result<Resp> {
    let (mobile, code) = mobile_and_otp(app, req)?;
    let ip = req.client_ip.to_string();
    let outcome = app
        .db
        .write(|tx| match otp::check(app, tx, &mobile, &code)? {
            Check::Valid => Ok(Ok(otp::mark_verified(app, tx, &mobile, &ip)?)),
            failed => Ok(Err(failed)),
        })?;
    let answer = match outcome {
        Ok(token) => VerifyOtpResponse {
            success: true,
            message: format!("Mobile number {} verified successfully!", mobile.typed),
            verification_token: Some(token),
        },
        Err(failed) => VerifyOtpResponse {
            success: false,
            message: if failed == Check::Expired {
                otp::MSG_EXPIRED
            } else {
                otp::MSG_INVALID
            }
            .to_string(),
            verification_token: None,
        },
    };
    Ok(Resp::json(200, &answer))
}

/// What a login attempt came to; errors that must not roll back the counting are values.
enum LoginOutcome {
    Tokens(TokenResponse),
    Refused(Error),
}

#[utoipa::path(post, path = "/api/v1/auth/login-otp", tag = "auth", request_body = VerifyOtpRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Expired or invalid code"),
              (status = 403, description = "`account_deactivated`"), (status = 404, description = "No such user"),
              (status = 422), (status = 429, description = "`otp_locked`, or `rate_limited`: 10 a minute per address, shared with check-mobile")))]
pub fn login_otp(app: &App, req: &Req) -> Result<Resp> {
    let (mobile, code) = mobile_and_otp(app, req)?;
    let outcome = app.db.write(|tx| {
        otp::ensure_not_locked(app, tx, &mobile)?;
        let Some(user) = users::by_mobile(tx, &mobile.e164)? else {
            return Ok(LoginOutcome::Refused(Error::NotFound {
                code: "user_not_found",
                detail: "User not found. Please register first.".into(),
            }));
        };
        let refuse = |detail: &str| {
            LoginOutcome::Refused(Error::Unauthorized {
                code: "invalid_otp",
                detail: detail.into(),
                bearer: false,
            })
        };
        match otp::check(app, tx, &mobile, &code)? {
            Check::Expired => return Ok(refuse(otp::MSG_EXPIRED)),
            Check::Invalid => return Ok(refuse(otp::MSG_INVALID)),
            Check::Valid => {}
        }
        if !user.is_active {
            return Ok(LoginOutcome::Refused(super::deactivated()));
        }
        users::touch_last_seen(tx, &user.id, &app.clock.iso())?;
        Ok(LoginOutcome::Tokens(
            tokens::issue_pair(app, tx, &user, None, None)?.0,
        ))
    })?;
    match outcome {
        LoginOutcome::Tokens(t) => Ok(Resp::json(200, &t)),
        LoginOutcome::Refused(e) => Err(e),
    }
}

#[derive(Serialize, ToSchema)]
pub struct RegisterRequest {
    /// Either this or `email` (or both).
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: Option<String>,
    #[schema(min_length = 3, max_length = 254, example = "asha@example.com")]
    pub email: Option<String>,
    /// The rules of `/password-requirements`; breaking one is a 400, not a 422. May be left
    /// out with a valid `otp`: the account then signs in by OTP only.
    #[schema(min_length = 1, max_length = 256)]
    pub password: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub full_name: String,
    /// The number's live code, instead of calling verify-otp first: checked and used up as
    /// verify-otp would (wrong tries count; a wrong one is a 401 with verify-otp's message).
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
    pub otp: Option<String>,
    /// What verify-otp answered. Without it (or `otp`), only a verification made from the same
    /// client address counts.
    #[schema(min_length = 1, max_length = 128)]
    pub verification_token: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse),
              (status = 400, description = "A password rule, or the number/email is already registered"),
              (status = 401, description = "`invalid_otp`: the inline `otp` is wrong or expired"),
              (status = 403, description = "Registration disabled, or `mobile_not_verified`"), (status = 422),
              (status = 429, description = "`otp_locked`: too many wrong codes")))]
pub fn register(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body(req)?;
    let (mobile, email) = identifiers(app, &mut f);
    let password = f.optional::<PasswordInput>("password");
    let full_name = f.required::<FullName>("full_name");
    let code = f.optional::<OtpCode>("otp");
    let token = f.optional::<VerificationToken>("verification_token");
    // Only a code can stand in for the password, and a code needs its number.
    if !f.has("password") && !f.has("otp") {
        f.reject("password", "Field required", "missing");
    }
    if f.has("otp") && !f.has("mobile_number") {
        f.reject("otp", "otp needs a mobile_number", "missing");
    }
    f.finish()?;
    let (mobile, email, password, FullName(full_name), code, token) =
        (mobile?, email?, password?, full_name?, code?, token?);

    let c = &app.config;
    if !c.features.user_registration {
        return Err(Error::Forbidden {
            code: "registration_disabled",
            detail: "Registration is currently disabled".into(),
        });
    }
    if mobile.is_none() && !c.features.email_registration {
        return Err(Error::Forbidden {
            code: "email_registration_disabled",
            detail: "Registration by email is disabled; register with a mobile number".into(),
        });
    }
    if let Some(PasswordInput(p)) = &password
        && let Err(rule) = password::check_rules(p)
    {
        return Err(Error::bad_request("weak_password", rule));
    }
    let verification = match (code, token) {
        (Some(code), _) => Verification::Otp(code),
        (None, Some(VerificationToken(t))) => Verification::Token(t),
        (None, None) => Verification::Address(req.client_ip.to_string()),
    };
    let account = NewAccount {
        mobile,
        email,
        password: password.map(|PasswordInput(p)| p),
        full_name,
        verification,
    };
    let pair = registration::register(app, &account)?;
    Ok(Resp::json(201, &pair))
}

/// The fields of [`LoginRequest`] (documentation only).
#[derive(Serialize, ToSchema)]
pub struct LoginFields {
    /// This or `email`; with both, this one is used.
    #[schema(pattern = r"^(\+[1-9][0-9]{7,14}|[0-9]{10})$", example = "9876543210")]
    pub mobile_number: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
}

/// The login body: `password` and at least one of `mobile_number` and `email` that is not null
/// (a null is an absent field), which a struct's schema cannot say.
pub struct LoginRequest;

impl utoipa::PartialSchema for LoginRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
        let given = |name: &str| {
            ObjectBuilder::new()
                .property(name, ObjectBuilder::new().schema_type(Type::String))
                .required(name)
        };
        let schema = AllOfBuilder::new()
            .item(LoginFields::schema())
            .item(
                AnyOfBuilder::new()
                    .item(given("mobile_number"))
                    .item(given("email")),
            )
            .build();
        utoipa::openapi::RefOr::T(schema.into())
    }
}

impl ToSchema for LoginRequest {}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Wrong identifier or password"),
              (status = 403, description = "`account_deactivated`"), (status = 422),
              (status = 429, description = "`login_locked`")))]
pub fn login(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body(req)?;
    let (mobile, email) = identifiers(app, &mut f);
    let password = f.required::<PasswordInput>("password");
    f.finish()?;
    let (mobile, email, PasswordInput(password)) = (mobile?, email?, password?);
    let (identifier, wrong) = match (&mobile, &email) {
        (Some(m), _) => (m.e164.clone(), "Invalid mobile number or password"),
        (None, Some(Email(e))) => (e.to_lowercase(), "Invalid email or password"),
        (None, None) => {
            return Err(Error::validation(
                &["body", "mobile_number"],
                "Field required",
                "missing",
            ));
        }
    };
    let ip = req.client_ip.to_string();
    // Look up and check the lock on a reader; the KDF runs outside the writer lock.
    let user = app.db.read(|tx| {
        lockout::ensure_not_locked(app, tx, &identifier, &ip)?;
        match (&mobile, &email) {
            (Some(m), _) => users::by_mobile(tx, &m.e164),
            // The address as sent, not `identifier`: the column ignores the case of ASCII
            // letters only, so a lower-cased `Émile@…` never matched the `Émile@…` that was
            // registered, and that user could not log in by email at all.
            (None, Some(Email(e))) => users::by_email(tx, e),
            (None, None) => Ok(None),
        }
    })?;
    // An account without a password (OTP sign-in only) is answered like a wrong password,
    // after as much KDF work.
    let ok = match user.as_ref().and_then(|u| u.password_hash.as_deref()) {
        Some(hash) => password::verify(&password, hash),
        None => {
            password::verify_dummy(&password);
            false
        }
    };
    let outcome = app.db.write(|tx| {
        lockout::ensure_not_locked(app, tx, &identifier, &ip)?;
        let user = match (ok, &user) {
            (true, Some(u)) => u,
            _ => {
                lockout::record_failure(app, tx, &identifier, &ip)?;
                return Ok(LoginOutcome::Refused(Error::Unauthorized {
                    code: "invalid_credentials",
                    detail: wrong.into(),
                    bearer: false,
                }));
            }
        };
        lockout::record_success(tx, &identifier, &ip)?;
        if !user.is_active {
            return Ok(LoginOutcome::Refused(super::deactivated()));
        }
        users::touch_last_seen(tx, &user.id, &app.clock.iso())?;
        Ok(LoginOutcome::Tokens(
            tokens::issue_pair(app, tx, user, None, None)?.0,
        ))
    })?;
    match outcome {
        LoginOutcome::Tokens(t) => Ok(Resp::json(200, &t)),
        LoginOutcome::Refused(e) => Err(e),
    }
}

/// A non-empty `refresh_token` string.
struct RefreshTokenInput(String);

impl crate::http::FromJson for RefreshTokenInput {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, crate::http::Invalid> {
        crate::http::input::string_within(v, 1, 4096).map(RefreshTokenInput)
    }
}

#[derive(Serialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(min_length = 1, max_length = 4096)]
    pub refresh_token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "A new pair; both tokens rotate (within the grace: the same successor again)", body = TokenResponse),
              (status = 401, description = "Expired, revoked, malformed, or reused (`refresh_token_reused`, \
                which revokes the whole family). Within 30 s of a rotation, while its successor is unused, the \
                old token answers 200 with that same successor and a fresh access token"),
              (status = 403, description = "`account_deactivated`"), (status = 422)))]
pub fn refresh(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body(req)?;
    let token = f.required::<RefreshTokenInput>("refresh_token");
    f.finish()?;
    let RefreshTokenInput(token) = token?;
    match app.db.write(|tx| tokens::rotate(app, tx, &token))? {
        Rotation::Issued(pair) => Ok(Resp::json(200, &pair)),
        Rotation::Refused(e) => Err(e),
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
    /// Revoke every session of the user.
    pub all: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 200, body = MessageResponse),
              (status = 401, description = "`logout_all_unauthorized`: `all:true` with neither a valid bearer \
                nor a refresh token that is still live (not rotated, revoked or expired); nothing was changed"),
              (status = 422)))]
pub fn logout(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body_or_empty(req)?;
    let token = f.optional::<String>("refresh_token");
    let all = f.optional::<bool>("all");
    f.finish()?;
    let (token, all) = (token?.filter(|t| !t.is_empty()), all?.unwrap_or(false));
    // A valid bearer dies now; an invalid one does not stop a plain logout.
    let caller = super::bearer(req).and_then(|t| super::authenticate_token(app, t, true).ok());
    app.db.write(|tx| {
        let named = match &token {
            Some(t) => tokens::named(app, tx, t)?,
            None => None,
        };
        // Ending every session is for the owner only: an old, stolen refresh token must not
        // log the user out everywhere. Refused before anything is written.
        let everyone = match (&caller, &named) {
            _ if !all => None,
            (Some(c), _) => Some(c.user.id.clone()),
            (None, Some(n)) if n.live => Some(n.user_id.clone()),
            (None, _) => {
                return Err(Error::Unauthorized {
                    code: "logout_all_unauthorized",
                    detail: "Logging out of every session needs a valid access token or a \
                             refresh token that is still live"
                        .into(),
                    bearer: false,
                });
            }
        };
        if let Some(c) = &caller {
            revocation::revoke(app, tx, c)?;
        }
        if let Some(t) = &token {
            tokens::revoke_one(app, tx, t)?;
        }
        if let Some(user_id) = everyone {
            users::revoke_all_sessions(tx, &user_id, app.clock.unix(), "logout_all")?;
        }
        Ok(())
    })?;
    if let Some(c) = &caller {
        revocation::remember(app, &c.jti);
    }
    Ok(Resp::json(
        200,
        &MessageResponse {
            message: "Successfully logged out".into(),
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CheckMobileResponse {
    pub exists: bool,
    pub message: String,
}

#[utoipa::path(post, path = "/api/v1/auth/check-mobile", tag = "auth", request_body = MobileRequest,
    responses((status = 200, body = CheckMobileResponse), (status = 422), (status = 429)))]
pub fn check_mobile(app: &App, req: &Req) -> Result<Resp> {
    let mobile = mobile_body(app, req)?;
    let exists = app
        .db
        .read(|c| users::by_mobile(c, &mobile.e164))?
        .is_some();
    let message = if exists {
        format!("Mobile number {} is registered", mobile.typed)
    } else {
        format!("Mobile number {} is not registered", mobile.typed)
    };
    Ok(Resp::json(200, &CheckMobileResponse { exists, message }))
}

#[derive(Serialize, ToSchema)]
pub struct PasswordRequirements {
    pub min_length: usize,
    pub requires_uppercase: bool,
    pub requires_lowercase: bool,
    pub requires_digit: bool,
    pub requires_special: bool,
    pub special_characters: String,
}

#[utoipa::path(get, path = "/api/v1/auth/password-requirements", tag = "auth",
    responses((status = 200, body = PasswordRequirements)))]
pub fn password_requirements(_app: &App, _req: &Req) -> Result<Resp> {
    Ok(Resp::ok(json!({
        "min_length": password::MIN_LENGTH,
        "requires_uppercase": true,
        "requires_lowercase": true,
        "requires_digit": true,
        "requires_special": true,
        "special_characters": password::SPECIAL_CHARACTERS,
    })))
}
