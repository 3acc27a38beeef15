//! One-time codes for phone login. Codes come from the OS CSPRNG and are stored only as an
//! HMAC keyed with the server secret. Every limit lives in SQLite, so a restart neither
//! forgets a lockout nor revives a dead code:
//! - wrong tries count per number over a window, not per code, so resending resets nothing;
//! - sends are capped per number (cooldown, hour, day), per client IP (hour) and globally (day).

use rusqlite::{OptionalExtension, Transaction, params};

use super::identity::{MobileNumber, OtpCode};
use super::sms::{SmsError, SmsSender};
use super::tokens::{self, TokenResponse};
use super::{Ctx, users};
use crate::config::Config;
use crate::db::{Db, Outcome};
use crate::error::{Error, Result};

pub(crate) const MSG_EXPIRED: &str = "OTP expired or not found. Please request a new OTP.";
pub(crate) const MSG_INVALID: &str = "Invalid OTP. Please check and try again.";
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// How long a verified number may be used to register.
pub(crate) const VERIFIED_TTL_SECS: i64 = 600;

pub(crate) fn generate() -> OtpCode {
    OtpCode(format!("{:06}", crate::random::below(1_000_000)))
}

fn keyed_hash(secret: &str, e164: &str, code: &str) -> String {
    // The number is part of the message so a hash cannot be replayed for another number.
    let msg = format!("otp:{e164}:{code}");
    crate::random::to_hex(&hmac_sha256::HMAC::mac(msg.as_bytes(), secret.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn secret(c: &Config) -> &str {
    c.tokens.secret.as_ref().map(|s| s.expose()).unwrap_or("")
}

fn too_many(code: &'static str, detail: &str, retry_after: i64) -> Error {
    Error::TooManyRequests {
        code,
        detail: detail.into(),
        retry_after: retry_after.max(1) as u64,
    }
}

/// Seconds until the oldest of the `limit` most recent events leaves the window, if the
/// window already holds `limit` events.
fn window_full(
    tx: &Transaction<'_>,
    sql_count_and_oldest: &str,
    key: &str,
    since: i64,
    limit: u32,
    window: i64,
    now: i64,
) -> Result<Option<i64>> {
    let (count, oldest): (i64, Option<i64>) =
        tx.query_row(sql_count_and_oldest, params![key, since], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if count >= i64::from(limit) {
        return Ok(Some(oldest.unwrap_or(now) + window - now));
    }
    Ok(None)
}

/// Checks every send limit, then stores a fresh code (replacing a live one) and counts the
/// send. Returns the code to deliver. The caller sends it after this transaction commits.
pub(crate) fn prepare_send(
    c: &Config,
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    ip: &str,
) -> Result<OtpCode> {
    let cooldown = c.otp.resend_cooldown.as_secs() as i64;
    let last: Option<i64> = tx
        .query_row(
            "SELECT max(sent_at) FROM otp_sends WHERE mobile_number = ?1",
            [&mobile.e164],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    if let Some(last) = last
        && now - last < cooldown
    {
        return Err(too_many(
            "otp_cooldown",
            &format!(
                "Please wait {} seconds before requesting another OTP",
                cooldown - (now - last)
            ),
            cooldown - (now - last),
        ));
    }
    let per_number =
        "SELECT count(*), min(sent_at) FROM otp_sends WHERE mobile_number = ?1 AND sent_at > ?2";
    if let Some(wait) = window_full(
        tx,
        per_number,
        &mobile.e164,
        now - HOUR,
        c.otp.max_sends_per_hour,
        HOUR,
        now,
    )? {
        return Err(too_many(
            "otp_hourly_limit",
            "Too many OTP requests for this number; try again later",
            wait,
        ));
    }
    if let Some(wait) = window_full(
        tx,
        per_number,
        &mobile.e164,
        now - DAY,
        c.otp.max_sends_per_day,
        DAY,
        now,
    )? {
        return Err(too_many(
            "otp_daily_limit",
            "Too many OTP requests for this number today",
            wait,
        ));
    }
    let per_ip =
        "SELECT count(*), min(sent_at) FROM otp_sends WHERE client_ip = ?1 AND sent_at > ?2";
    if let Some(wait) = window_full(
        tx,
        per_ip,
        ip,
        now - HOUR,
        c.otp.max_sends_per_ip_per_hour,
        HOUR,
        now,
    )? {
        return Err(too_many(
            "otp_ip_limit",
            "Too many OTP requests from this address; try again later",
            wait,
        ));
    }
    let global = "SELECT count(*), min(sent_at) FROM otp_sends WHERE ?1 = ?1 AND sent_at > ?2";
    if let Some(wait) = window_full(tx, global, "", now - DAY, c.sms.daily_limit, DAY, now)? {
        log::error!(
            "SMS_DAILY_LIMIT of {} reached: refusing OTP sends",
            c.sms.daily_limit
        );
        return Err(too_many(
            "sms_daily_limit",
            "The daily SMS limit has been reached; try again later",
            wait,
        ));
    }
    let code = generate();
    // The code being replaced is remembered, so it is answered "expired", not "invalid".
    tx.execute(
        "INSERT INTO otp_retired (mobile_number, code_hash, retired_at)
         SELECT mobile_number, code_hash, ?2 FROM otp_codes WHERE mobile_number = ?1
         ON CONFLICT DO NOTHING",
        params![mobile.e164, now],
    )?;
    tx.execute("DELETE FROM otp_retired WHERE retired_at < ?1", [now - DAY])?;
    tx.execute(
        "INSERT INTO otp_codes (mobile_number, code_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(mobile_number) DO UPDATE SET code_hash = excluded.code_hash,
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        params![
            mobile.e164,
            keyed_hash(secret(c), &mobile.e164, &code.0),
            now,
            now + c.otp.ttl.as_secs() as i64
        ],
    )?;
    tx.execute(
        "INSERT INTO otp_sends (mobile_number, client_ip, sent_at) VALUES (?1, ?2, ?3)",
        params![mobile.e164, ip, now],
    )?;
    // Old rows only feed windows that have passed.
    tx.execute("DELETE FROM otp_sends WHERE sent_at < ?1", [now - 2 * DAY])?;
    Ok(code)
}

/// `/send-otp` after parsing: the country, then every send limit and a fresh code in one
/// transaction, then the SMS once that committed (network I/O never runs inside a
/// transaction). A code the gateway did not take is retired at once.
pub(crate) fn send(
    db: &Db,
    ctx: &Ctx<'_>,
    sms: &dyn SmsSender,
    mobile: &MobileNumber,
    ip: &str,
) -> Result<()> {
    let c = ctx.config;
    if !mobile.in_countries(&c.sms.allowed_countries) {
        return Err(Error::Unprocessable {
            code: "country_not_allowed",
            detail: "OTP delivery is not available for this country".into(),
        });
    }
    let code = db.write(|tx| prepare_send(c, ctx.now(), tx, mobile, ip))?;
    let text = super::sms::message_text(c, &code.0);
    if let Err(e) = sms.send(&mobile.e164, &text) {
        log::warn!("OTP delivery to {} failed: {e}", mask(&mobile.e164));
        db.write(|tx| discard(c, ctx.now(), tx, mobile, &code))?;
        let timeout = matches!(e, SmsError::Timeout(_));
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
    Ok(())
}

/// `+91987***210`: enough to tell numbers apart in logs, not enough to be one.
fn mask(e164: &str) -> String {
    let n = e164.len();
    if n < 8 {
        return "***".into();
    }
    format!("{}***{}", &e164[..n - 7], &e164[n - 3..])
}

/// After a failed delivery the code must not be usable: retire it if it is still the live one.
pub(crate) fn discard(
    c: &Config,
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<()> {
    retire(
        now,
        tx,
        mobile,
        &keyed_hash(secret(c), &mobile.e164, &code.0),
    )
}

/// Ends the live code `hash` if it is still the live one, and remembers it, so that a used,
/// dead or undelivered code is answered "expired" (not "invalid", and not counted as a guess)
/// even after a new code is sent.
fn retire(now: i64, tx: &Transaction<'_>, mobile: &MobileNumber, hash: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO otp_retired (mobile_number, code_hash, retired_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![mobile.e164, hash, now],
    )?;
    tx.execute(
        "DELETE FROM otp_codes WHERE mobile_number = ?1 AND code_hash = ?2",
        params![mobile.e164, hash],
    )?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Valid,
    /// No live code (never sent, used, replaced, expired, undelivered, or killed by too many
    /// tries), or the code given is one of those.
    Expired,
    Invalid,
}

/// A 429 if the number is locked for OTP checks.
pub(crate) fn ensure_not_locked(
    c: &Config,
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
) -> Result<()> {
    let window = c.otp.attempt_window.as_secs() as i64;
    let sql = "SELECT count(*), min(failed_at) FROM otp_failures WHERE mobile_number = ?1 AND failed_at > ?2";
    if let Some(wait) = window_full(
        tx,
        sql,
        &mobile.e164,
        now - window,
        c.otp.max_attempts,
        window,
        now,
    )? {
        return Err(too_many(
            "otp_locked",
            "Too many wrong OTP attempts for this number; try again later",
            wait,
        ));
    }
    Ok(())
}

/// Checks a code. A wrong one is counted against the number; reaching the limit kills the
/// live code too. A right one is used up and clears the count.
pub(crate) fn check(
    c: &Config,
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<Check> {
    check_code(c, now, tx, mobile, code, true)
}

/// `check` that leaves a right code live (wrong ones still count): `/register` checks the
/// code before its other rules, and a registration refused by them must not use it up.
pub(crate) fn peek(
    c: &Config,
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<Check> {
    check_code(c, now, tx, mobile, code, false)
}

fn check_code(
    c: &Config,
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
    consume: bool,
) -> Result<Check> {
    ensure_not_locked(c, now, tx, mobile)?;
    let stored: Option<(String, i64)> = tx
        .query_row(
            "SELECT code_hash, expires_at FROM otp_codes WHERE mobile_number = ?1",
            [&mobile.e164],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((live, _)) = stored.filter(|(_, exp)| *exp > now) else {
        return Ok(Check::Expired);
    };
    let given = keyed_hash(secret(c), &mobile.e164, &code.0);
    if constant_time_eq(given.as_bytes(), live.as_bytes()) {
        if !consume {
            return Ok(Check::Valid);
        }
        retire(now, tx, mobile, &live)?;
        tx.execute(
            "DELETE FROM otp_failures WHERE mobile_number = ?1",
            [&mobile.e164],
        )?;
        return Ok(Check::Valid);
    }
    // A replaced code is not a guess: "expired", and not counted against the number.
    let retired: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM otp_retired WHERE mobile_number = ?1 AND code_hash = ?2)",
        params![mobile.e164, given],
        |r| r.get(0),
    )?;
    if retired {
        return Ok(Check::Expired);
    }
    tx.execute(
        "INSERT INTO otp_failures (mobile_number, failed_at) VALUES (?1, ?2)",
        params![mobile.e164, now],
    )?;
    let window = c.otp.attempt_window.as_secs() as i64;
    let failures: i64 = tx.query_row(
        "SELECT count(*) FROM otp_failures WHERE mobile_number = ?1 AND failed_at > ?2",
        params![mobile.e164, now - window],
        |r| r.get(0),
    )?;
    if failures >= i64::from(c.otp.max_attempts) {
        retire(now, tx, mobile, &live)?;
    }
    Ok(Check::Invalid)
}

/// How a `/register` request shows that its number was verified.
pub(crate) enum Proof<'a> {
    /// The `verification_token` that verify-otp answered.
    Token(&'a str),
    /// Neither token nor code: only a verification from this client address counts (the
    /// released app verifies and registers from the same phone).
    Address(&'a str),
}

fn token_hash(token: &str) -> String {
    // The token is 32 random bytes, so a plain hash is enough to make the stored value useless.
    crate::random::to_hex(&hmac_sha256::Hash::hash(token.as_bytes()))
}

/// `verify-otp` success: for the next 10 minutes the number may register, from this client
/// address or with the returned token (single use, stored only as its hash).
pub(crate) fn mark_verified(
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    ip: &str,
) -> Result<String> {
    let token = crate::random::hex(32);
    tx.execute("DELETE FROM verified_numbers WHERE expires_at <= ?1", [now])?;
    tx.execute(
        "INSERT INTO verified_numbers (token_hash, mobile_number, client_ip, verified_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            token_hash(&token),
            mobile.e164,
            ip,
            now,
            now + VERIFIED_TTL_SECS
        ],
    )?;
    Ok(token)
}

/// Is there a live verification of this number that `proof` may use?
pub(crate) fn is_verified(
    now: i64,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    proof: &Proof<'_>,
) -> Result<bool> {
    let (sql, key) = match proof {
        Proof::Token(t) => (
            "SELECT EXISTS(SELECT 1 FROM verified_numbers
             WHERE mobile_number = ?1 AND token_hash = ?2 AND expires_at > ?3)",
            token_hash(t),
        ),
        Proof::Address(ip) => (
            "SELECT EXISTS(SELECT 1 FROM verified_numbers
             WHERE mobile_number = ?1 AND client_ip = ?2 AND expires_at > ?3)",
            (*ip).to_string(),
        ),
    };
    Ok(tx.query_row(sql, params![mobile.e164, key, now], |r| r.get(0))?)
}

/// A registration used the number: every verification of it ends, tokens included.
pub(crate) fn consume_verified(tx: &Transaction<'_>, mobile: &MobileNumber) -> Result<()> {
    tx.execute(
        "DELETE FROM verified_numbers WHERE mobile_number = ?1",
        [&mobile.e164],
    )?;
    Ok(())
}

/// Forgets a number whose account is deleted: its live and retired codes and its
/// verifications. The send and wrong-try counts (`otp_sends`, `otp_failures`) stay: they are
/// caps, not account data, and expire on their own; erasing them let a delete-and-register
/// loop pump SMS past every cap.
pub(crate) fn forget_number(tx: &Transaction<'_>, e164: &str) -> Result<()> {
    for table in ["otp_codes", "otp_retired", "verified_numbers"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE mobile_number = ?1"),
            [e164],
        )?;
    }
    Ok(())
}

/// `/login-otp`: the number's lock first, then the account, then the code (a wrong one is
/// counted, so the refusal commits), then the account's state.
pub(crate) fn login(
    ctx: &Ctx<'_>,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<Outcome<TokenResponse>> {
    ensure_not_locked(ctx.config, ctx.now(), tx, mobile)?;
    let Some(user) = users::by_mobile(tx, &mobile.e164)? else {
        return Ok(Outcome::Refused(Error::NotFound {
            code: "user_not_found",
            detail: "User not found. Please register first.".into(),
        }));
    };
    let refuse = |detail: &str| {
        Outcome::Refused(Error::Unauthorized {
            code: "invalid_otp",
            detail: detail.into(),
            bearer: false,
        })
    };
    match check(ctx.config, ctx.now(), tx, mobile, code)? {
        Check::Expired => return Ok(refuse(MSG_EXPIRED)),
        Check::Invalid => return Ok(refuse(MSG_INVALID)),
        Check::Valid => {}
    }
    if !user.is_active {
        return Ok(Outcome::Refused(super::deactivated()));
    }
    users::touch_last_seen(tx, &user.id, &ctx.iso())?;
    Ok(Outcome::Done(
        tokens::issue_pair(ctx, tx, &user, None, None)?.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;

    const NOW: i64 = 1_760_000_000;

    fn rules(max_attempts: &str) -> Config {
        Config::from_pairs(&[
            ("JWT_SECRET_KEY", "unit-test-secret"),
            ("OTP_MAX_ATTEMPTS", max_attempts),
            ("OTP_ATTEMPT_WINDOW_SECONDS", "3600"),
        ])
        .expect("settings")
    }

    fn number() -> MobileNumber {
        MobileNumber::parse("9876543210", "91").expect("number")
    }

    /// A code that is not `right`.
    fn wrong(right: &OtpCode) -> OtpCode {
        OtpCode(
            if right.0 == "000000" {
                "111111"
            } else {
                "000000"
            }
            .into(),
        )
    }

    fn count(tx: &Transaction<'_>, table: &str) -> i64 {
        tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn wrong_codes_lock_the_number_and_kill_its_code() {
        let c = rules("3");
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        let m = number();
        let code = prepare_send(&c, NOW, &tx, &m, "10.0.0.1").expect("send");
        for i in 0..3 {
            let got = check(&c, NOW + i, &tx, &m, &wrong(&code)).expect("check");
            assert_eq!(got, Check::Invalid);
        }
        assert_eq!(count(&tx, "otp_failures"), 3);
        // Locked: even the right code is refused, with the time until the oldest try leaves.
        match check(&c, NOW + 10, &tx, &m, &code) {
            Err(Error::TooManyRequests {
                code: "otp_locked",
                retry_after,
                ..
            }) => assert_eq!(retry_after, 3590),
            other => panic!("expected otp_locked, got {other:?}"),
        }
        // Once the window passed, the code the lock killed is "expired", not valid.
        let later = NOW + 3601;
        assert_eq!(
            check(&c, later, &tx, &m, &code).expect("check"),
            Check::Expired
        );
    }

    #[test]
    fn a_right_code_is_used_once_and_clears_the_count() {
        let c = rules("5");
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        let m = number();
        let code = prepare_send(&c, NOW, &tx, &m, "10.0.0.1").expect("send");
        assert_eq!(
            check(&c, NOW, &tx, &m, &wrong(&code)).expect("check"),
            Check::Invalid
        );
        // `peek` leaves a right code live.
        assert_eq!(peek(&c, NOW, &tx, &m, &code).expect("peek"), Check::Valid);
        assert_eq!(check(&c, NOW, &tx, &m, &code).expect("check"), Check::Valid);
        assert_eq!(count(&tx, "otp_failures"), 0);
        assert_eq!(
            check(&c, NOW, &tx, &m, &code).expect("check"),
            Check::Expired
        );
    }

    #[test]
    fn a_replaced_or_expired_code_is_expired_and_not_counted() {
        let c = rules("5");
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        let m = number();
        let first = prepare_send(&c, NOW, &tx, &m, "10.0.0.1").expect("send");
        let resend = NOW + c.otp.resend_cooldown.as_secs() as i64;
        let second = prepare_send(&c, resend, &tx, &m, "10.0.0.1").expect("resend");
        if first != second {
            assert_eq!(
                check(&c, resend, &tx, &m, &first).expect("check"),
                Check::Expired
            );
            assert_eq!(count(&tx, "otp_failures"), 0);
        }
        let dead = resend + c.otp.ttl.as_secs() as i64;
        assert_eq!(
            check(&c, dead, &tx, &m, &second).expect("check"),
            Check::Expired
        );
    }

    #[test]
    fn forgetting_a_number_keeps_its_caps() {
        let c = rules("5");
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        let m = number();
        let code = prepare_send(&c, NOW, &tx, &m, "10.0.0.1").expect("send");
        check(&c, NOW, &tx, &m, &wrong(&code)).expect("check");
        mark_verified(NOW, &tx, &m, "10.0.0.1").expect("verify");
        forget_number(&tx, &m.e164).expect("forget");
        for table in ["otp_codes", "otp_retired", "verified_numbers"] {
            assert_eq!(count(&tx, table), 0, "{table}");
        }
        assert_eq!(count(&tx, "otp_sends"), 1);
        assert_eq!(count(&tx, "otp_failures"), 1);
        // The send cooldown still holds for the number.
        let again = prepare_send(&c, NOW + 1, &tx, &m, "10.0.0.1");
        assert!(matches!(
            again,
            Err(Error::TooManyRequests {
                code: "otp_cooldown",
                ..
            })
        ));
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..200 {
            let c = generate();
            assert_eq!(c.0.len(), 6);
            assert!(c.0.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn hashes_are_keyed_and_bound_to_the_number() {
        let a = keyed_hash("k1", "+919876543210", "123456");
        assert_ne!(a, keyed_hash("k2", "+919876543210", "123456"));
        assert_ne!(a, keyed_hash("k1", "+919876543211", "123456"));
        assert_eq!(a, keyed_hash("k1", "+919876543210", "123456"));
        assert!(!a.contains("123456"));
    }
}
