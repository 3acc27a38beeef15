//! `/register` after parsing: the checks of API.md "Exact rules" in their order, the KDF only
//! once every check that needs none has passed, then the account.
//!
//! The checks run twice: once before the password is hashed (so polling `/register` costs no
//! KDF time), and again in the transaction that creates the account, because the state may
//! have changed while the KDF ran. A code given inline is only looked at the first time (a
//! wrong one is counted and that count commits) and used up the second, in the transaction
//! that creates the account, so a registration refused for another reason leaves it live.

use rusqlite::Transaction;

use super::identity::{Email, MobileNumber, OtpCode};
use super::otp::{self, Check, Proof};
use super::tokens::{self, TokenResponse};
use super::{password, users};
use crate::app::App;
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

/// A refusal that must still commit: a wrong inline code is counted against the number.
type Gate = std::result::Result<(), Error>;

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

/// The number's verification, then duplicates. `take_code` uses an inline code up.
fn gate(app: &App, tx: &Transaction<'_>, a: &NewAccount, take_code: bool) -> Result<Gate> {
    if let Some(m) = &a.mobile {
        let verified = match &a.verification {
            Verification::Otp(code) => {
                let check = if take_code {
                    otp::check(app, tx, m, code)?
                } else {
                    otp::peek(app, tx, m, code)?
                };
                match check {
                    Check::Valid => true,
                    Check::Expired => return Ok(Err(wrong_code(otp::MSG_EXPIRED))),
                    Check::Invalid => return Ok(Err(wrong_code(otp::MSG_INVALID))),
                }
            }
            Verification::Token(t) => otp::is_verified(app, tx, m, &Proof::Token(t))?,
            Verification::Address(ip) => otp::is_verified(app, tx, m, &Proof::Address(ip))?,
        };
        if !verified {
            return Ok(Err(not_verified()));
        }
        if users::by_mobile(tx, &m.e164)?.is_some() {
            return Ok(Err(Error::bad_request(
                "mobile_exists",
                "Mobile number already registered",
            )));
        }
    }
    if let Some(Email(e)) = &a.email
        && users::by_email(tx, e)?.is_some()
    {
        return Ok(Err(Error::bad_request(
            "email_exists",
            "Email already registered",
        )));
    }
    Ok(Ok(()))
}

/// Creates the account and its first session. The caller has checked the shape, whether
/// registration is open and the password rules.
pub fn register(app: &App, a: &NewAccount) -> Result<TokenResponse> {
    app.db.write(|tx| gate(app, tx, a, false))??;
    // The KDF runs outside the writer, so registrations never hold up other writes.
    let hash = match &a.password {
        Some(p) => Some(password::hash(p).map_err(Error::internal)?),
        None => None,
    };
    app.db.write(|tx| {
        // A refusal here (the state changed while the KDF ran) rolls back, code use included.
        gate(app, tx, a, true)??;
        let user = users::insert(
            tx,
            &users::NewUser {
                mobile_e164: a.mobile.as_ref().map(|m| m.e164.as_str()),
                mobile_display: a.mobile.as_ref().map(|m| m.typed.as_str()),
                email: a.email.as_ref().map(|e| e.0.as_str()),
                full_name: &a.full_name,
                password_hash: hash.as_deref(),
            },
            &app.clock.iso(),
        )?;
        if let Some(m) = &a.mobile {
            otp::consume_verified(tx, m)?;
        }
        Ok(tokens::issue_pair(app, tx, &user, None, None)?.0)
    })
}
