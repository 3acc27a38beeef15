//! Password login lockout: `LOGIN_MAX_FAILURES` per identifier and client IP in 15 minutes,
//! and `LOGIN_MAX_FAILURES_ANY_IP` per identifier from any address in an hour, so a stranger
//! cannot lock a user out from one address for long.

use rusqlite::{Connection, Transaction, params};

use crate::app::App;
use crate::error::{Error, Result};

const PER_IP_WINDOW: i64 = 15 * 60;
const ANY_IP_WINDOW: i64 = 60 * 60;

fn locked(retry_after: i64) -> Error {
    Error::TooManyRequests {
        code: "login_locked",
        detail: "Too many failed login attempts. Please try again later.".into(),
        retry_after: retry_after.max(1) as u64,
    }
}

pub fn ensure_not_locked(app: &App, tx: &Connection, identifier: &str, ip: &str) -> Result<()> {
    let now = app.clock.unix();
    let (n, oldest): (i64, Option<i64>) = tx.query_row(
        "SELECT count(*), min(failed_at) FROM login_failures
         WHERE identifier = ?1 AND client_ip = ?2 AND failed_at > ?3",
        params![identifier, ip, now - PER_IP_WINDOW],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if n >= i64::from(app.config.login.max_failures) {
        return Err(locked(oldest.unwrap_or(now) + PER_IP_WINDOW - now));
    }
    let (n, oldest): (i64, Option<i64>) = tx.query_row(
        "SELECT count(*), min(failed_at) FROM login_failures WHERE identifier = ?1 AND failed_at > ?2",
        params![identifier, now - ANY_IP_WINDOW],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if n >= i64::from(app.config.login.max_failures_any_ip) {
        return Err(locked(oldest.unwrap_or(now) + ANY_IP_WINDOW - now));
    }
    Ok(())
}

pub fn record_failure(app: &App, tx: &Transaction<'_>, identifier: &str, ip: &str) -> Result<()> {
    let now = app.clock.unix();
    tx.execute(
        "INSERT INTO login_failures (identifier, client_ip, failed_at) VALUES (?1, ?2, ?3)",
        params![identifier, ip, now],
    )?;
    tx.execute(
        "DELETE FROM login_failures WHERE failed_at < ?1",
        [now - 2 * ANY_IP_WINDOW],
    )?;
    Ok(())
}

/// A success clears this address's count (not the count from other addresses).
pub fn record_success(tx: &Transaction<'_>, identifier: &str, ip: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM login_failures WHERE identifier = ?1 AND client_ip = ?2",
        params![identifier, ip],
    )?;
    Ok(())
}
