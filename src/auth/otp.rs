//! One-time codes for phone login. Codes come from the OS CSPRNG and are stored only as an
//! HMAC keyed with the server secret. Every limit lives in SQLite, so a restart neither
//! forgets a lockout nor revives a dead code:
//! - wrong tries count per number over a window, not per code, so resending resets nothing;
//! - sends are capped per number (cooldown, hour, day), per client IP (hour) and globally (day).

use rusqlite::{OptionalExtension, Transaction, params};

use super::identity::{MobileNumber, OtpCode};
use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Result};

pub const MSG_EXPIRED: &str = "OTP expired or not found. Please request a new OTP.";
pub const MSG_INVALID: &str = "Invalid OTP. Please check and try again.";
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// How long a verified number may be used to register.
pub const VERIFIED_TTL_SECS: i64 = 600;

pub fn generate() -> OtpCode {
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

fn secret(app: &App) -> &str {
    app.config
        .tokens
        .secret
        .as_ref()
        .map(|s| s.expose())
        .unwrap_or("")
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
pub fn prepare_send(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    ip: &str,
) -> Result<OtpCode> {
    let c: &Config = &app.config;
    let now = app.clock.unix();
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
            keyed_hash(secret(app), &mobile.e164, &code.0),
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

/// After a failed delivery the code must not be usable: retire it if it is still the live one.
pub fn discard(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<()> {
    retire(
        app,
        tx,
        mobile,
        &keyed_hash(secret(app), &mobile.e164, &code.0),
    )
}

/// Ends the live code `hash` if it is still the live one, and remembers it, so that a used,
/// dead or undelivered code is answered "expired" (not "invalid", and not counted as a guess)
/// even after a new code is sent.
fn retire(app: &App, tx: &Transaction<'_>, mobile: &MobileNumber, hash: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO otp_retired (mobile_number, code_hash, retired_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![mobile.e164, hash, app.clock.unix()],
    )?;
    tx.execute(
        "DELETE FROM otp_codes WHERE mobile_number = ?1 AND code_hash = ?2",
        params![mobile.e164, hash],
    )?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    Valid,
    /// No live code (never sent, used, replaced, expired, undelivered, or killed by too many
    /// tries), or the code given is one of those.
    Expired,
    Invalid,
}

/// A 429 if the number is locked for OTP checks.
pub fn ensure_not_locked(app: &App, tx: &Transaction<'_>, mobile: &MobileNumber) -> Result<()> {
    let c = &app.config;
    let now = app.clock.unix();
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
pub fn check(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<Check> {
    check_code(app, tx, mobile, code, true)
}

/// `check` that leaves a right code live (wrong ones still count): `/register` checks the
/// code before its other rules, and a registration refused by them must not use it up.
pub fn peek(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
) -> Result<Check> {
    check_code(app, tx, mobile, code, false)
}

fn check_code(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    code: &OtpCode,
    consume: bool,
) -> Result<Check> {
    ensure_not_locked(app, tx, mobile)?;
    let now = app.clock.unix();
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
    let given = keyed_hash(secret(app), &mobile.e164, &code.0);
    if constant_time_eq(given.as_bytes(), live.as_bytes()) {
        if !consume {
            return Ok(Check::Valid);
        }
        retire(app, tx, mobile, &live)?;
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
    let window = app.config.otp.attempt_window.as_secs() as i64;
    let failures: i64 = tx.query_row(
        "SELECT count(*) FROM otp_failures WHERE mobile_number = ?1 AND failed_at > ?2",
        params![mobile.e164, now - window],
        |r| r.get(0),
    )?;
    if failures >= i64::from(app.config.otp.max_attempts) {
        retire(app, tx, mobile, &live)?;
    }
    Ok(Check::Invalid)
}

/// How a `/register` request shows that its number was verified.
pub enum Proof<'a> {
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
pub fn mark_verified(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    ip: &str,
) -> Result<String> {
    let now = app.clock.unix();
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
pub fn is_verified(
    app: &App,
    tx: &Transaction<'_>,
    mobile: &MobileNumber,
    proof: &Proof<'_>,
) -> Result<bool> {
    let now = app.clock.unix();
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
pub fn consume_verified(tx: &Transaction<'_>, mobile: &MobileNumber) -> Result<()> {
    tx.execute(
        "DELETE FROM verified_numbers WHERE mobile_number = ?1",
        [&mobile.e164],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
