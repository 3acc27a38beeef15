//! `/api/v1/auth/*`: parse the input, call the domain, map the result.

pub(crate) mod me;

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::accounts::{self, LoginId, NewAccount, PasswordLogin, Verification};
use super::identity::{
    Email, FullName, MobileNumber, OtpCode, PasswordInput, RawMobile, VerificationToken,
};
use super::otp::{self, Check};
use super::schemas::{
    LoginRequest, LogoutRequest, MobileRequest, PasswordRequirements, RefreshRequest,
    RegisterRequest, VerifyOtpRequest,
};
use super::tokens::{self, TokenResponse};
use super::{Ctx, password, revocation, users};
use crate::app::App;
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::input::Fields;

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
pub(crate) struct OtpSentResponse {
    pub(crate) success: bool,
    pub(crate) message: String,
    pub(crate) expires_in: u64,
    pub(crate) resend_after: u64,
}

#[utoipa::path(post, path = "/api/v1/auth/send-otp", tag = "auth", request_body = MobileRequest,
    responses((status = 200, body = OtpSentResponse),
              (status = 422, description = "Bad number, or `country_not_allowed`"),
              (status = 429, description = "Cooldown, hourly/daily/IP caps or `sms_daily_limit`"),
              (status = 502, description = "The SMS gateway failed"), (status = 504, description = "The SMS gateway timed out")))]
pub(crate) fn send_otp(app: &App, req: &Req) -> Result<Resp> {
    let mobile = mobile_body(app, req)?;
    let ip = req.client_ip.to_string();
    otp::send(&app.db, &Ctx::of(app), app.sms.as_ref(), &mobile, &ip)?;
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

#[derive(Serialize, ToSchema)]
pub(crate) struct VerifyOtpResponse {
    pub(crate) success: bool,
    pub(crate) message: String,
    /// On success only: pass it to `/register` as `verification_token` (single use, valid 10
    /// minutes). Without it, only a registration from the address that verified counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub(crate) verification_token: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/verify-otp", tag = "auth", request_body = VerifyOtpRequest,
    responses((status = 200, description = "`success` says whether the code was right", body = VerifyOtpResponse),
              (status = 422), (status = 429, description = "`otp_locked`: too many wrong codes")))]
pub(crate) fn verify_otp(app: &App, req: &Req) -> Result<Resp> {
    let (mobile, code) = mobile_and_otp(app, req)?;
    let ip = req.client_ip.to_string();
    let now = app.clock.unix();
    let outcome = app.db.write(
        |tx| match otp::check(&app.config, now, tx, &mobile, &code)? {
            Check::Valid => Ok(Ok(otp::mark_verified(now, tx, &mobile, &ip)?)),
            failed => Ok(Err(failed)),
        },
    )?;
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

#[utoipa::path(post, path = "/api/v1/auth/login-otp", tag = "auth", request_body = VerifyOtpRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Expired or invalid code"),
              (status = 403, description = "`account_deactivated`"), (status = 404, description = "No such user"),
              (status = 422), (status = 429, description = "`otp_locked`, or `rate_limited`: 10 a minute per address, shared with check-mobile")))]
pub(crate) fn login_otp(app: &App, req: &Req) -> Result<Resp> {
    let (mobile, code) = mobile_and_otp(app, req)?;
    let pair = app
        .db
        .write_or_refuse(|tx| otp::login(&Ctx::of(app), tx, &mobile, &code))?;
    Ok(Resp::json(200, &pair))
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse),
              (status = 400, description = "A password rule, or the number/email is already registered"),
              (status = 401, description = "`invalid_otp`: the inline `otp` is wrong or expired"),
              (status = 403, description = "Registration disabled, or `mobile_not_verified`"), (status = 422),
              (status = 429, description = "`otp_locked`: too many wrong codes")))]
pub(crate) fn register(app: &App, req: &Req) -> Result<Resp> {
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
    let pair = accounts::register(&app.db, &Ctx::of(app), &account)?;
    Ok(Resp::json(201, &pair))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "Wrong identifier or password"),
              (status = 403, description = "`account_deactivated`"), (status = 422),
              (status = 429, description = "`login_locked`")))]
pub(crate) fn login(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body(req)?;
    let (mobile, email) = identifiers(app, &mut f);
    let password = f.required::<PasswordInput>("password");
    f.finish()?;
    let (mobile, email, PasswordInput(password)) = (mobile?, email?, password?);
    let id = match (mobile, email) {
        (Some(m), _) => LoginId::Mobile(m),
        (None, Some(e)) => LoginId::Email(e),
        (None, None) => {
            return Err(Error::validation(
                &["body", "mobile_number"],
                "Field required",
                "missing",
            ));
        }
    };
    let login = PasswordLogin {
        id,
        password,
        ip: req.client_ip.to_string(),
    };
    let pair = accounts::login_with_password(&app.db, &Ctx::of(app), &login)?;
    Ok(Resp::json(200, &pair))
}

/// A non-empty `refresh_token` string.
struct RefreshTokenInput(String);

impl crate::input::FromJson for RefreshTokenInput {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, crate::input::Invalid> {
        crate::input::string_within(v, 1, 4096).map(RefreshTokenInput)
    }
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "A new pair; both tokens rotate (within the grace: the same successor again)", body = TokenResponse),
              (status = 401, description = "Expired, revoked, malformed, or reused (`refresh_token_reused`, \
                which revokes the whole family). Within 30 s of a rotation, while its successor is unused, the \
                old token answers 200 with that same successor and a fresh access token"),
              (status = 403, description = "`account_deactivated`"), (status = 422)))]
pub(crate) fn refresh(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body(req)?;
    let token = f.required::<RefreshTokenInput>("refresh_token");
    f.finish()?;
    let RefreshTokenInput(token) = token?;
    let pair = app
        .db
        .write_or_refuse(|tx| tokens::rotate(&Ctx::of(app), tx, &token))?;
    Ok(Resp::json(200, &pair))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MessageResponse {
    pub(crate) message: String,
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 200, body = MessageResponse),
              (status = 401, description = "`logout_all_unauthorized`: `all:true` with neither a valid bearer \
                nor a refresh token that is still live (not rotated, revoked or expired); nothing was changed"),
              (status = 422)))]
pub(crate) fn logout(app: &App, req: &Req) -> Result<Resp> {
    let mut f = Fields::body_or_empty(req)?;
    let token = f.optional::<String>("refresh_token");
    let all = f.optional::<bool>("all");
    f.finish()?;
    let (token, all) = (token?.filter(|t| !t.is_empty()), all?.unwrap_or(false));
    // A valid bearer dies now; an invalid one does not stop a plain logout.
    let caller = super::bearer(req).and_then(|t| super::authenticate_token(app, t, true).ok());
    let now = app.clock.unix();
    app.db
        .write(|tx| accounts::logout(now, tx, caller.as_ref(), token.as_deref(), all))?;
    if let Some(c) = &caller {
        revocation::remember(&app.revoked_access, &app.recent_checks, &c.jti);
    }
    Ok(Resp::json(
        200,
        &MessageResponse {
            message: "Successfully logged out".into(),
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CheckMobileResponse {
    pub(crate) exists: bool,
    pub(crate) message: String,
}

#[utoipa::path(post, path = "/api/v1/auth/check-mobile", tag = "auth", request_body = MobileRequest,
    responses((status = 200, body = CheckMobileResponse), (status = 422), (status = 429)))]
pub(crate) fn check_mobile(app: &App, req: &Req) -> Result<Resp> {
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

#[utoipa::path(get, path = "/api/v1/auth/password-requirements", tag = "auth",
    responses((status = 200, body = PasswordRequirements)))]
pub(crate) fn password_requirements(_app: &App, _req: &Req) -> Result<Resp> {
    Ok(Resp::ok(json!({
        "min_length": password::MIN_LENGTH,
        "requires_uppercase": true,
        "requires_lowercase": true,
        "requires_digit": true,
        "requires_special": true,
        "special_characters": password::SPECIAL_CHARACTERS,
    })))
}
