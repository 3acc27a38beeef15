//! `If-Match` on `PATCH`/`DELETE /transactions/{id}`: the write goes ahead only while the
//! transaction still has a version the client names. The entity tag is the `version` quoted
//! (`"3"`). The weak form (`W/"3"`) means the same here: a version names one exact content, so
//! a proxy that weakens tags must not turn a client's check into a refusal. `*` matches any
//! version, and a list (`"3", "4"`) matches any of its versions. Anything else is a 422 naming
//! the header, as a bad `Idempotency-Key` is.

use serde_json::Value;

use super::transactions::TransactionResponse;
use crate::error::{Error, FieldError, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IfMatch {
    Any,
    Versions(Vec<i64>),
}

fn malformed() -> Error {
    Error::Validation(vec![FieldError::new(
        vec![Value::from("header"), Value::from("if-match")],
        "If-Match must be *, or quoted versions such as \"3\" (W/\"3\" is taken as \"3\")",
        "value_error",
    )])
}

/// One entity tag: `"<digits>"` or `W/"<digits>"`.
fn version(tag: &str) -> Option<i64> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    let digits = tag.strip_prefix('"')?.strip_suffix('"')?;
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header as sent; absent is `None` (the last write wins).
pub(crate) fn parse(raw: Option<&str>) -> Result<Option<IfMatch>> {
    let Some(raw) = raw else { return Ok(None) };
    // Spaces and tabs only, as the document's pattern says (HTTP's optional whitespace).
    let blank = |c: char| c == ' ' || c == '\t';
    let raw = raw.trim_matches(blank);
    if raw == "*" {
        return Ok(Some(IfMatch::Any));
    }
    let versions = raw
        .split(',')
        .map(|t| version(t.trim_matches(blank)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(malformed)?;
    Ok(Some(IfMatch::Versions(versions)))
}

/// A 412 with the row as it is now, when the client expected another version.
pub(crate) fn check(expected: Option<&IfMatch>, current: &TransactionResponse) -> Result<()> {
    match expected {
        Some(IfMatch::Versions(v)) if !v.contains(&current.version) => {
            Err(Error::PreconditionFailed {
                code: "version_mismatch",
                detail: format!(
                    "The transaction changed meanwhile: it is at version {}",
                    current.version
                ),
                current: serde_json::to_value(current).map_err(Error::internal)?,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        let ok = |s: &str| parse(Some(s)).ok().flatten();
        assert_eq!(ok("\"3\""), Some(IfMatch::Versions(vec![3])));
        assert_eq!(ok(" W/\"12\" "), Some(IfMatch::Versions(vec![12])));
        assert_eq!(ok("\"1\", W/\"2\""), Some(IfMatch::Versions(vec![1, 2])));
        assert_eq!(ok("*"), Some(IfMatch::Any));
        assert_eq!(parse(None).ok(), Some(None));
        for bad in [
            "",
            "3",
            "\"\"",
            "\"-1\"",
            "\"3",
            "w/\"3\"",
            "\"3\",",
            "\"1e3\"",
            "\"x\"",
            "\"99999999999999999999\"",
            "*, \"3\"",
            "\u{b}\"3\"",
            "W/ \"3\"",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
