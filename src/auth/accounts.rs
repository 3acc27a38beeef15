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
pub(crate) enum Verification {
    /// The live code, sent inline: checked and used up like verify-otp would.
    Otp(OtpCode),
    /// The `verification_token` verify-otp answered.
    Token(String),
    /// Nothing: a verification from this client address.
    Address(String),
}

pub(crate) struct NewAccount {
    pub(crate) mobile: Option<MobileNumber>,
    pub(crate) email: Option<Email>,
    /// `None` only with `Verification::Otp` (the handler's shape check): OTP sign-in only.
    pub(crate) password: Option<String>,
    pub(crate) full_name: String,
    pub(crate) verification: Verification,
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
    if !c.features.user_registration {
        return Err(Error::Forbidden {
            code: "registration_disabled",
            detail: "Registration is currently disabled".into(),
        });
    }
    if a.mobile.is_none() && !c.features.email_registration {
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
pub(crate) fn register(db: &Db, ctx: &Ctx<'_>, a: &NewAccount) -> Result<TokenResponse> {
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
pub(crate) enum LoginId {
    Mobile(MobileNumber),
    Email(Email),
}

pub(crate) struct PasswordLogin {
    pub(crate) id: LoginId,
    pub(crate) password: String,
    /// The client address, which the lockout counts per.
    pub(crate) ip: String,
}

/// `/login`: the lockout on a reader, the KDF outside the writer, the lockout again in the
/// writer (the state may have changed meanwhile), then the failure or the success is recorded.
/// A wrong password is counted, so that refusal commits.
pub(crate) fn login_with_password(
    db: &Db,
    ctx: &Ctx<'_>,
    login: &PasswordLogin,
) -> Result<TokenResponse> {
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
pub(crate) fn delete(tx: &Transaction<'_>, user: &users::User) -> Result<()> {
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
pub(crate) fn logout(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::db::testing::on_disk;

    const STRONG: &str = "Str0ng!pass";
    const IP: &str = "10.0.0.1";

    struct World {
        db: crate::db::testing::TempDb,
        config: Config,
        keys: tokens::Keys,
        clock: Clock,
    }

    fn world(pairs: &[(&str, &str)]) -> World {
        let (db, config) = on_disk(pairs);
        World {
            db,
            config,
            keys: tokens::Keys::new("unit-test-secret-unit-test-secret"),
            clock: Clock::default(),
        }
    }

    impl World {
        fn ctx(&self) -> Ctx<'_> {
            Ctx {
                config: &self.config,
                keys: &self.keys,
                clock: &self.clock,
            }
        }

        fn count(&self, table: &str) -> i64 {
            self.db
                .db
                .read(|c| {
                    Ok(c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
                })
                .expect("count")
        }

        /// Sends a code to the number and returns it, as send-otp would.
        fn send(&self, m: &MobileNumber) -> OtpCode {
            let now = self.clock.unix();
            self.db
                .db
                .write(|tx| otp::prepare_send(&self.config, now, tx, m, IP))
                .expect("send")
        }

        fn register(&self, a: &NewAccount) -> Result<TokenResponse> {
            register(&self.db.db, &self.ctx(), a)
        }

        fn login(&self, id: LoginId, password: &str) -> Result<TokenResponse> {
            let login = PasswordLogin {
                id,
                password: password.into(),
                ip: IP.into(),
            };
            login_with_password(&self.db.db, &self.ctx(), &login)
        }
    }

    fn number() -> MobileNumber {
        MobileNumber::parse("9876543210", "91").expect("number")
    }

    fn by_email(email: &str, password: Option<&str>) -> NewAccount {
        NewAccount {
            mobile: None,
            email: Some(Email(email.into())),
            password: password.map(String::from),
            full_name: "Asha Rao".into(),
            verification: Verification::Address(IP.into()),
        }
    }

    fn code_of(r: Result<TokenResponse>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn register_refusals_come_in_the_contract_order_and_change_nothing() {
        let w = world(&[]);
        let closed = Config::from_pairs(&[("ENABLE_USER_REGISTRATION", "false")]).expect("cfg");
        let ctx = Ctx {
            config: &closed,
            ..w.ctx()
        };
        // Closed beats a weak password.
        let r = register(&w.db.db, &ctx, &by_email("a@example.com", Some("weak")));
        assert_eq!(code_of(r), "registration_disabled");
        let no_email = Config::from_pairs(&[("ENABLE_EMAIL_REGISTRATION", "false")]).expect("cfg");
        let ctx = Ctx {
            config: &no_email,
            ..w.ctx()
        };
        let r = register(&w.db.db, &ctx, &by_email("a@example.com", Some(STRONG)));
        assert_eq!(code_of(r), "email_registration_disabled");
        let r = w.register(&by_email("a@example.com", Some("weak")));
        assert_eq!(code_of(r), "weak_password");
        let unverified = NewAccount {
            mobile: Some(number()),
            ..by_email("a@example.com", Some(STRONG))
        };
        assert_eq!(code_of(w.register(&unverified)), "mobile_not_verified");
        assert_eq!(w.count("users"), 0);

        assert_eq!(
            code_of(w.register(&by_email("a@example.com", Some(STRONG)))),
            "ok"
        );
        let again = w.register(&by_email("A@Example.com", Some(STRONG)));
        assert_eq!(code_of(again), "email_exists");
        assert_eq!(w.count("users"), 1);
    }

    #[test]
    fn a_wrong_inline_code_is_counted_and_the_right_one_registers_without_password() {
        let w = world(&[]);
        let m = number();
        let code = w.send(&m);
        let wrong = OtpCode(
            if code.0 == "000000" {
                "111111"
            } else {
                "000000"
            }
            .into(),
        );
        let account = |code: OtpCode| NewAccount {
            mobile: Some(m.clone()),
            email: None,
            password: None,
            full_name: "Asha Rao".into(),
            verification: Verification::Otp(code),
        };
        assert_eq!(code_of(w.register(&account(wrong))), "invalid_otp");
        // The refusal committed its count, and left the live code alone.
        assert_eq!(w.count("otp_failures"), 1);
        assert_eq!(w.count("users"), 0);
        assert_eq!(code_of(w.register(&account(code.clone()))), "ok");
        // Used up: the same code cannot register the number again.
        assert_eq!(code_of(w.register(&account(code))), "invalid_otp");
        // The account has no password: a password login is answered as a wrong password.
        let r = w.login(LoginId::Mobile(m), "anything");
        assert_eq!(code_of(r), "invalid_credentials");
    }

    #[test]
    fn wrong_passwords_are_counted_until_the_login_locks() {
        let w = world(&[("LOGIN_MAX_FAILURES", "3")]);
        w.register(&by_email("asha@example.com", Some(STRONG)))
            .expect("register");
        let id = || LoginId::Email(Email("Asha@example.com".into()));
        assert_eq!(code_of(w.login(id(), STRONG)), "ok");
        for _ in 0..3 {
            assert_eq!(code_of(w.login(id(), "Wr0ng!pass")), "invalid_credentials");
        }
        assert_eq!(w.count("login_failures"), 3);
        // Locked: the right password does not get through, and is not counted.
        assert_eq!(code_of(w.login(id(), STRONG)), "login_locked");
        assert_eq!(w.count("login_failures"), 3);
        w.clock.advance(15 * 60 + 1);
        assert_eq!(code_of(w.login(id(), STRONG)), "ok");
        assert_eq!(w.count("login_failures"), 0);
    }

    #[test]
    fn delete_removes_the_account_and_its_codes_but_keeps_the_caps() {
        let w = world(&[]);
        let m = number();
        let code = w.send(&m);
        let account = NewAccount {
            mobile: Some(m.clone()),
            email: Some(Email("Asha@example.com".into())),
            password: Some(STRONG.into()),
            full_name: "Asha Rao".into(),
            verification: Verification::Otp(code),
        };
        w.register(&account).expect("register");
        assert_eq!(
            code_of(w.login(LoginId::Mobile(m.clone()), "Wr0ng!pass")),
            "invalid_credentials"
        );
        let email = LoginId::Email(Email("asha@example.com".into()));
        assert_eq!(code_of(w.login(email, "Wr0ng!pass")), "invalid_credentials");
        let now = w.clock.unix() + 120;
        w.db.db
            .write(|tx| {
                otp::prepare_send(&w.config, now, tx, &m, IP)?;
                otp::mark_verified(now, tx, &m, IP)
            })
            .expect("second code");
        let user =
            w.db.db
                .read(|c| users::by_mobile(c, &m.e164))
                .expect("read")
                .expect("user");
        w.db.db.write(|tx| delete(tx, &user)).expect("delete");
        for table in [
            "users",
            "refresh_tokens",
            "login_failures",
            "otp_codes",
            "otp_retired",
            "verified_numbers",
        ] {
            assert_eq!(w.count(table), 0, "{table}");
        }
        assert_eq!(w.count("otp_sends"), 2);
    }
}
