//! Accounts after parsing: registering, signing in with a password, deleting. Each function
//! holds the rules of its route in their order (API.md "Exact rules") and returns the token
//! pair or the one error the route answers with.
//!
//! Registration checks run twice: once before the password is hashed (so polling `/register`
//! costs no KDF time), and again in the transaction that creates the account, because the
//! state may have changed while the KDF ran. A code given inline is only looked at the first
//! time (a wrong one is counted and that count commits) and used up the second, in the
//! transaction that creates the account, so a registration refused for another reason leaves
//! it live.

use rusqlite::Transaction;

use super::identity::{Email, MobileNumber, OtpCode};
use super::otp::{self, Check, Proof};
use super::tokens::{self, TokenResponse};
use super::{AuthUser, Ctx, lockout, password, revocation, users};
use crate::db::{Db, Outcome};
use crate::error::{Error, Result};

/// How the request shows that its number belongs to the caller.
pub enum Verification {
    /// The live code, sent inline: checked and used up like verify-otp would.
    Otp(OtpCode),
    /// The `verification_token` verify-otp answered.
    Token(String),
    /// Nothing: a verification from this client address.
    Address(String),
}

pub struct NewAccount {
    pub mobile: Option<MobileNumber>,
    pub email: Option<Email>,
    /// `None` only with `Verification::Otp` (the handler's shape check): OTP sign-in only.
    pub password: Option<String>,
    pub full_name: String,
    pub verification: Verification,
}

fn not_verified() -> Error {
    Error::Forbidden {
        code: "mobile_not_verified",
        detail: "Mobile number not verified. Please verify it with an OTP first.".into(),
    }
}

fn wrong_code(detail: &str) -> Error {
    Error::Unauthorized {
        code: "invalid_otp",
        detail: detail.into(),
        bearer: false,
    }
}

/// What needs no database: registration open, by email too, and the password rules.
fn open_for(c: &crate::config::Config, a: &NewAccount) -> Result<()> {
    if !c.enable_user_registration {
        return Err(Error::Forbidden {
            code: "registration_disabled",
            detail: "Registration is currently disabled".into(),
        });
    }
    if a.mobile.is_none() && !c.enable_email_registration {
        return Err(Error::Forbidden {
            code: "email_registration_disabled",
            detail: "Registration by email is disabled; register with a mobile number".into(),
        });
    }
    if let Some(p) = &a.password
        && let Err(rule) = password::check_rules(p)
    {
        return Err(Error::bad_request("weak_password", rule));
    }
    Ok(())
}

/// The number's verification, then duplicates. `take_code` uses an inline code up. A refusal
/// is an [`Outcome`] because a wrong inline code is counted against the number.
fn gate(
    ctx: &Ctx<'_>,
    tx: &Transaction<'_>,
    a: &NewAccount,
    take_code: bool,
) -> Result<Outcome<()>> {
    if let Some(m) = &a.mobile {
        let verified = match &a.verification {
            Verification::Otp(code) => {
                let check = if take_code {
                    otp::check(ctx.config, ctx.now(), tx, m, code)?
                } else {
                    otp::peek(ctx.config, ctx.now(), tx, m, code)?
                };
                match check {
                    Check::Valid => true,
                    Check::Expired => return Ok(Outcome::Refused(wrong_code(otp::MSG_EXPIRED))),
                    Check::Invalid => return Ok(Outcome::Refused(wrong_code(otp::MSG_INVALID))),
                }
            }
            Verification::Token(t) => otp::is_verified(ctx.now(), tx, m, &Proof::Token(t))?,
            Verification::Address(ip) => otp::is_verified(ctx.now(), tx, m, &Proof::Address(ip))?,
        };
        if !verified {
            return Ok(Outcome::Refused(not_verified()));
        }
        if users::by_mobile(tx, &m.e164)?.is_some() {
            return Ok(Outcome::Refused(Error::bad_request(
                "mobile_exists",
                "Mobile number already registered",
            )));
        }
    }
    if let Some(Email(e)) = &a.email
        && users::by_email(tx, e)?.is_some()
    {
        return Ok(Outcome::Refused(Error::bad_request(
            "email_exists",
            "Email already registered",
        )));
    }
    Ok(Outcome::Done(()))
}

/// `/register`: creates the account and its first session. The caller has checked the shape.
pub fn register(db: &Db, ctx: &Ctx<'_>, a: &NewAccount) -> Result<TokenResponse> {
    open_for(ctx.config, a)?;
    db.write_or_refuse(|tx| gate(ctx, tx, a, false))?;
    // The KDF runs outside the writer, so registrations never hold up other writes.
    let hash = match &a.password {
        Some(p) => Some(password::hash(p).map_err(Error::internal)?),
        None => None,
    };
    db.write(|tx| {
        // A refusal here (the state changed while the KDF ran) rolls back, code use included.
        gate(ctx, tx, a, true)?.into_result()?;
        let user = users::insert(
            tx,
            &users::NewUser {
                mobile_e164: a.mobile.as_ref().map(|m| m.e164.as_str()),
                mobile_display: a.mobile.as_ref().map(|m| m.typed.as_str()),
                email: a.email.as_ref().map(|e| e.0.as_str()),
                full_name: &a.full_name,
                password_hash: hash.as_deref(),
            },
            &ctx.iso(),
        )?;
        if let Some(m) = &a.mobile {
            otp::consume_verified(tx, m)?;
        }
        Ok(tokens::issue_pair(ctx, tx, &user, None, None)?.0)
    })
}

/// Who signs in with a password; with both in the body, the number is used.
pub enum LoginId {
    Mobile(MobileNumber),
    Email(Email),
}

pub struct PasswordLogin {
    pub id: LoginId,
    pub password: String,
    /// The client address, which the lockout counts per.
    pub ip: String,
}

/// `/login`: the lockout on a reader, the KDF outside the writer, the lockout again in the
/// writer (the state may have changed meanwhile), then the failure or the success is recorded.
/// A wrong password is counted, so that refusal commits.
pub fn login_with_password(db: &Db, ctx: &Ctx<'_>, login: &PasswordLogin) -> Result<TokenResponse> {
    let (identifier, wrong) = match &login.id {
        LoginId::Mobile(m) => (m.e164.clone(), "Invalid mobile number or password"),
        LoginId::Email(Email(e)) => (e.to_lowercase(), "Invalid email or password"),
    };
    let ip = &login.ip;
    let user = db.read(|c| {
        lockout::ensure_not_locked(ctx.config, ctx.now(), c, &identifier, ip)?;
        match &login.id {
            LoginId::Mobile(m) => users::by_mobile(c, &m.e164),
            // The address as sent, not `identifier`: the column ignores the case of ASCII
            // letters only, so a lower-cased `Émile@…` never matched the `Émile@…` that was
            // registered, and that user could not log in by email at all.
            LoginId::Email(Email(e)) => users::by_email(c, e),
        }
    })?;
    // An account without a password (OTP sign-in only) is answered like a wrong password,
    // after as much KDF work.
    let ok = match user.as_ref().and_then(|u| u.password_hash.as_deref()) {
        Some(hash) => password::verify(&login.password, hash),
        None => {
            password::verify_dummy(&login.password);
            false
        }
    };
    db.write_or_refuse(|tx| {
        lockout::ensure_not_locked(ctx.config, ctx.now(), tx, &identifier, ip)?;
        let user = match (ok, &user) {
            (true, Some(u)) => u,
            _ => {
                lockout::record_failure(ctx.now(), tx, &identifier, ip)?;
                return Ok(Outcome::Refused(Error::Unauthorized {
                    code: "invalid_credentials",
                    detail: wrong.into(),
                    bearer: false,
                }));
            }
        };
        lockout::record_success(tx, &identifier, ip)?;
        if !user.is_active {
            return Ok(Outcome::Refused(super::deactivated()));
        }
        users::touch_last_seen(tx, &user.id, &ctx.iso())?;
        Ok(Outcome::Done(
            tokens::issue_pair(ctx, tx, user, None, None)?.0,
        ))
    })
}

/// `DELETE /users/me`: every row that belongs to the user cascades from `users`; the live
/// code and verifications of the number go too, and the login counts of its identifiers.
/// The OTP send and wrong-try counts stay (see [`otp::forget_number`]).
pub fn delete(tx: &Transaction<'_>, user: &users::User) -> Result<()> {
    if let Some(m) = &user.mobile_e164 {
        otp::forget_number(tx, m)?;
        lockout::forget(tx, m)?;
    }
    if let Some(e) = &user.email {
        lockout::forget(tx, &e.to_lowercase())?;
    }
    users::delete(tx, &user.id)
}

/// `/logout`: the caller's access token (if it was valid) and the named refresh token end;
/// `all` ends every session, which is for the owner only: an old, stolen refresh token must
/// not log the user out everywhere, so that is refused before anything is written. The
/// caller puts its `jti` in the fast path once this committed.
pub fn logout(
    now: i64,
    tx: &Transaction<'_>,
    caller: Option<&AuthUser>,
    token: Option<&str>,
    all: bool,
) -> Result<()> {
    let named = match token {
        Some(t) => tokens::named(now, tx, t)?,
        None => None,
    };
    let everyone = match (caller, &named) {
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
    if let Some(c) = caller {
        revocation::revoke(now, tx, c)?;
    }
    if let Some(t) = token {
        tokens::revoke_one(now, tx, t)?;
    }
    if let Some(user_id) = everyone {
        users::revoke_all_sessions(tx, &user_id, now, "logout_all")?;
    }
    Ok(())
}
