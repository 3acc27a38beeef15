//! Authentication: phone OTP, passwords, rotating refresh tokens, and the guard every
//! protected route calls.

pub(crate) mod accounts;
pub(crate) mod handlers;
pub(crate) mod identity;
pub(crate) mod lockout;
pub(crate) mod otp;
pub(crate) mod password;
pub mod recent;
pub(crate) mod revocation;
pub(crate) mod schemas;
pub mod sms;
pub mod tokens;
pub mod users;

use crate::api::ApiPath;
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{Req, Route};
use tokens::TokenError;

/// The slice of the app the auth rules read: settings, signing keys and the clock. Rules
/// that count over time windows take a plain `now` instead; the clock is here for the ones
/// that read it at several steps (before and after a KDF, a token and its row).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) keys: &'a tokens::Keys,
    pub(crate) clock: &'a Clock,
}

impl<'a> Ctx<'a> {
    pub fn of(app: &'a App) -> Ctx<'a> {
        Ctx {
            config: &app.config,
            keys: &app.keys,
            clock: &app.clock,
        }
    }

    /// Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// The contract's timestamp format, for the `*_at` text columns.
    pub(crate) fn iso(&self) -> String {
        self.clock.iso()
    }
}

pub fn routes() -> Vec<Route<App>> {
    vec![
        handlers::__path_send_otp::route(handlers::send_otp).slow(),
        handlers::__path_verify_otp::route(handlers::verify_otp),
        handlers::__path_login_otp::route(handlers::login_otp).sensitive(),
        handlers::__path_register::route(handlers::register),
        handlers::__path_login::route(handlers::login),
        handlers::__path_refresh::route(handlers::refresh),
        handlers::__path_logout::route(handlers::logout),
        handlers::__path_check_mobile::route(handlers::check_mobile).sensitive(),
        handlers::__path_password_requirements::route(handlers::password_requirements),
        handlers::me::__path_get_me::route(handlers::me::get_me),
        handlers::me::__path_patch_me::route(handlers::me::patch_me),
        handlers::me::__path_delete_me::route(handlers::me::delete_me),
    ]
}

pub(crate) fn deactivated() -> Error {
    Error::Forbidden {
        code: "account_deactivated",
        detail: "This account has been deactivated".into(),
    }
}

/// The caller of a protected route.
#[derive(Clone, Debug)]
pub(crate) struct AuthUser {
    pub(crate) user: users::User,
    /// The access token's id, for logout.
    pub(crate) jti: String,
    pub(crate) expires_at: i64,
}

/// The bearer token of a request, if it sent one.
pub(crate) fn bearer(req: &Req) -> Option<&str> {
    let h = req.header("authorization")?;
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks an access token fully: signature, expiry, type, revocation, the user's state.
pub(crate) fn authenticate_token(app: &App, token: &str, bearer_header: bool) -> Result<AuthUser> {
    let refuse = |code: &'static str, detail: &str| Error::Unauthorized {
        code,
        detail: detail.into(),
        bearer: bearer_header,
    };
    let verified = match app
        .verified_access
        .verify(&app.keys, app.clock.unix(), token)
    {
        Ok(v) => v,
        Err(TokenError::Expired) => return Err(refuse("token_expired", "Token has expired")),
        Err(TokenError::WrongKind) => {
            return Err(refuse("invalid_token_type", "Invalid token type"));
        }
        Err(TokenError::Invalid) => return Err(tokens::invalid_token(bearer_header)),
    };
    let remembered = app
        .recent_checks
        .get(&verified.jti)
        .filter(|u| u.id == verified.claims.user_id);
    let (user, revoked) = match remembered {
        // A logout since would have made the entry stale; the cache is checked all the same.
        Some(u) => (Some(u), app.revoked_access.contains_key(&verified.jti)),
        None => {
            let before = app.recent_checks.before_read();
            let (user, revoked) = app.db.read(|c| {
                revocation::user_unless_revoked(
                    &app.revoked_access,
                    c,
                    &verified.claims.user_id,
                    &verified.jti,
                )
            })?;
            if let (Some(u), false) = (&user, revoked) {
                app.recent_checks.put(&verified.jti, before, u);
            }
            (user, revoked)
        }
    };
    let user = user.ok_or_else(|| tokens::invalid_token(bearer_header))?;
    // The account state comes before revocation: deactivating bumps `token_version`, and the
    // contract wants a deactivated user's requests to get 403 `account_deactivated`, not 401.
    if !user.is_active {
        return Err(deactivated());
    }
    if revoked || user.token_version != verified.claims.ver {
        return Err(refuse("token_revoked", "Token has been revoked"));
    }
    Ok(AuthUser {
        user,
        jti: verified.jti.clone(),
        expires_at: verified.expires_at,
    })
}

/// The guard of every protected route: 401 with `WWW-Authenticate: Bearer` for a missing,
/// bad, expired, revoked or wrong-type token; 403 for a deactivated account.
pub(crate) fn require_user(app: &App, req: &Req) -> Result<AuthUser> {
    let Some(token) = bearer(req) else {
        return Err(Error::Unauthorized {
            code: "not_authenticated",
            detail: "Not authenticated".into(),
            bearer: true,
        });
    };
    authenticate_token(app, token, true)
}
