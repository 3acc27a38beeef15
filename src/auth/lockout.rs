//! Password login lockout: `LOGIN_MAX_FAILURES` per identifier and client IP in 15 minutes,
//! and `LOGIN_MAX_FAILURES_ANY_IP` per identifier from any address in an hour, so a stranger
//! cannot lock a user out from one address for long.

use rusqlite::{Connection, Transaction, params};

use crate::config::Config;
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

/// A 429 `login_locked` if `identifier` is locked at `now`, from `ip` or from everywhere.
pub(crate) fn ensure_not_locked(
    c: &Config,
    now: i64,
    tx: &Connection,
    identifier: &str,
    ip: &str,
) -> Result<()> {
    let (n, oldest): (i64, Option<i64>) = tx.query_row(
        "SELECT count(*), min(failed_at) FROM login_failures
         WHERE identifier = ?1 AND client_ip = ?2 AND failed_at > ?3",
        params![identifier, ip, now - PER_IP_WINDOW],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if n >= i64::from(c.login.max_failures) {
        return Err(locked(oldest.unwrap_or(now) + PER_IP_WINDOW - now));
    }
    let (n, oldest): (i64, Option<i64>) = tx.query_row(
        "SELECT count(*), min(failed_at) FROM login_failures WHERE identifier = ?1 AND failed_at > ?2",
        params![identifier, now - ANY_IP_WINDOW],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if n >= i64::from(c.login.max_failures_any_ip) {
        return Err(locked(oldest.unwrap_or(now) + ANY_IP_WINDOW - now));
    }
    Ok(())
}

pub(crate) fn record_failure(
    now: i64,
    tx: &Transaction<'_>,
    identifier: &str,
    ip: &str,
) -> Result<()> {
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
pub(crate) fn record_success(tx: &Transaction<'_>, identifier: &str, ip: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM login_failures WHERE identifier = ?1 AND client_ip = ?2",
        params![identifier, ip],
    )?;
    Ok(())
}

/// The account of `identifier` is gone: so is its count.
pub(crate) fn forget(tx: &Transaction<'_>, identifier: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM login_failures WHERE identifier = ?1",
        [identifier],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;

    const NOW: i64 = 1_760_000_000;
    const WHO: &str = "+919876543210";

    fn limits() -> Config {
        Config::from_pairs(&[
            ("LOGIN_MAX_FAILURES", "3"),
            ("LOGIN_MAX_FAILURES_ANY_IP", "5"),
        ])
        .expect("settings")
    }

    fn retry_after(r: Result<()>) -> u64 {
        match r {
            Err(Error::TooManyRequests {
                code: "login_locked",
                retry_after,
                ..
            }) => retry_after,
            other => panic!("expected login_locked, got {other:?}"),
        }
    }

    #[test]
    fn failures_lock_one_address_for_the_window() {
        let c = limits();
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        for i in 0..3 {
            ensure_not_locked(&c, NOW + i, &tx, WHO, "10.0.0.1").expect("not yet");
            record_failure(NOW + i, &tx, WHO, "10.0.0.1").expect("record");
        }
        assert_eq!(
            retry_after(ensure_not_locked(&c, NOW + 5, &tx, WHO, "10.0.0.1")),
            895
        );
        // Another address and another identifier are not locked.
        ensure_not_locked(&c, NOW + 5, &tx, WHO, "10.0.0.2").expect("other address");
        ensure_not_locked(&c, NOW + 5, &tx, "a@example.com", "10.0.0.1").expect("other id");
        // The oldest failure leaves the 15-minute window.
        ensure_not_locked(&c, NOW + PER_IP_WINDOW + 1, &tx, WHO, "10.0.0.1").expect("expired");
    }

    #[test]
    fn failures_from_every_address_lock_the_identifier() {
        let c = limits();
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        for i in 0..5 {
            record_failure(NOW + i, &tx, WHO, &format!("10.0.0.{i}")).expect("record");
        }
        let wait = retry_after(ensure_not_locked(&c, NOW + 10, &tx, WHO, "10.0.0.9"));
        assert_eq!(wait, 3590);
    }

    #[test]
    fn success_clears_its_address_only_and_forget_clears_all() {
        let c = limits();
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        for ip in [
            "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.2",
        ] {
            record_failure(NOW, &tx, WHO, ip).expect("record");
        }
        record_success(&tx, WHO, "10.0.0.1").expect("success");
        ensure_not_locked(&c, NOW, &tx, WHO, "10.0.0.1").expect("cleared");
        retry_after(ensure_not_locked(&c, NOW, &tx, WHO, "10.0.0.2"));
        forget(&tx, WHO).expect("forget");
        ensure_not_locked(&c, NOW, &tx, WHO, "10.0.0.2").expect("forgotten");
    }
}
