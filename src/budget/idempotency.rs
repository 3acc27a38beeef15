//! `Idempotency-Key` on POST: the first response for a (user, key) is stored in the same
//! database transaction as the work, so a retry gets it byte for byte, and a retry that
//! arrives while the first is running waits on the writer and then finds it.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::{Error, FieldError, Result};

/// Keys are kept this long.
pub(crate) const KEEP_SECS: i64 = 86_400;

/// A key as sent: 1 to 255 visible ASCII characters.
pub(crate) fn parse_key(raw: Option<&str>) -> Result<Option<String>> {
    let Some(k) = raw else { return Ok(None) };
    let k = k.trim();
    if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::Validation(vec![FieldError::new(
            vec!["header".into(), "idempotency-key".into()],
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            "value_error",
        )]));
    }
    Ok(Some(k.to_string()))
}

/// What identifies "the same request": the body as canonical JSON (key order and spaces do
/// not matter), hashed.
pub(crate) fn request_hash(body: &serde_json::Value) -> String {
    crate::random::to_hex(&hmac_sha256::Hash::hash(body.to_string().as_bytes()))
}

/// A stored response for this key, if any. A different request under the same key is a 422.
pub(crate) fn replay(
    tx: &Transaction<'_>,
    user: &str,
    key: &str,
    hash: &str,
    now: i64,
) -> Result<Option<(u16, Vec<u8>)>> {
    // Expired keys go first so they are never replayed.
    tx.prepare_cached("DELETE FROM idempotency_keys WHERE user_id = ?1 AND created_at < ?2")?
        .execute(params![user, now - KEEP_SECS])?;
    let found: Option<(String, Option<i64>, Option<Vec<u8>>)> = tx
        .prepare_cached(
            "SELECT request_hash, response_status, response_body FROM idempotency_keys
             WHERE user_id = ?1 AND idempotency_key = ?2",
        )?
        .query_row(params![user, key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((stored, _, _)) if stored != hash => Err(Error::Unprocessable {
            code: "idempotency_key_reused",
            detail: "This Idempotency-Key was already used with a different request".into(),
        }),
        Some((_, Some(status), Some(body))) => Ok(Some((status as u16, body))),
        // Written in one transaction with its response, so an incomplete row cannot be seen.
        Some(_) => Err(Error::internal("idempotency row without a response")),
    }
}

/// A request's key and the hash of its body, if it sent an `Idempotency-Key`.
pub(crate) struct Keyed {
    pub(crate) key: String,
    pub(crate) hash: String,
}

impl Keyed {
    pub(crate) fn of(req: &crate::http::Req) -> Result<Option<Keyed>> {
        let Some(key) = parse_key(req.header("idempotency-key"))? else {
            return Ok(None);
        };
        Ok(Some(Keyed {
            key,
            hash: request_hash(&req.json()?),
        }))
    }
}

/// Runs `work` inside the caller's write transaction under the request's key: the stored
/// response for a retry, else `work`'s response, stored with the key. `work` also returns a
/// value only a first run has (`None` on a replay).
pub(crate) fn run<T>(
    tx: &Transaction<'_>,
    user: &str,
    keyed: Option<&Keyed>,
    now: i64,
    work: impl FnOnce() -> Result<(u16, Vec<u8>, T)>,
) -> Result<(u16, Vec<u8>, Option<T>)> {
    if let Some(k) = keyed
        && let Some((status, body)) = replay(tx, user, &k.key, &k.hash, now)?
    {
        return Ok((status, body, None));
    }
    let (status, body, extra) = work()?;
    if let Some(k) = keyed {
        store(tx, user, &k.key, &k.hash, status, &body, now)?;
    }
    Ok((status, body, Some(extra)))
}

pub(crate) fn store(
    tx: &Transaction<'_>,
    user: &str,
    key: &str,
    hash: &str,
    status: u16,
    body: &[u8],
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO idempotency_keys (user_id, idempotency_key, request_hash, response_status, response_body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![user, key, hash, status, body, now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys() {
        assert_eq!(parse_key(None).ok(), Some(None));
        assert_eq!(
            parse_key(Some("abc-123")).ok(),
            Some(Some("abc-123".into()))
        );
        assert!(parse_key(Some("")).is_err());
        assert!(parse_key(Some("has space")).is_err());
        assert!(parse_key(Some(&"x".repeat(256))).is_err());
        assert!(parse_key(Some("ключ")).is_err());
    }

    #[test]
    fn hashes_ignore_key_order_and_spacing() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1, "b":2}"#).expect("json");
        let b: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":1}"#).expect("json");
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&json!({"a": 1, "b": 3})));
    }
}
