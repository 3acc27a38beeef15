//! A request as the handlers see it: already routed, headers lower-cased, body read under a cap.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{Error, FieldError};

#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Decoded query pairs in order; a repeated name keeps every value.
    pub(crate) query: Vec<(String, String)>,
    /// Lower-cased names.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The client, after `X-Forwarded-For` from a trusted proxy.
    pub(crate) client_ip: IpAddr,
    /// The TCP peer itself (a proxy, when there is one): what operator routes trust.
    pub(crate) peer: IpAddr,
    pub(crate) request_id: String,
    /// Values of `{name}` segments of the matched route.
    pub(crate) params: Vec<(&'static str, String)>,
}

impl Req {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The body as JSON. Empty, broken UTF-8 and broken JSON are 422s that say which.
    pub(crate) fn json(&self) -> Result<Value, Error> {
        parse_json_body(&self.body)
    }
}

impl crate::input::Source for Req {
    fn json(&self) -> Result<Value, Error> {
        Req::json(self)
    }

    fn raw_body(&self) -> &[u8] {
        &self.body
    }

    fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }
}

pub(crate) fn parse_json_body(body: &[u8]) -> Result<Value, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Validation(vec![FieldError::new(
            vec![Value::from("body")],
            "Field required",
            "missing",
        )]));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        Error::Validation(vec![FieldError::new(
            vec![Value::from("body"), Value::from(e.valid_up_to())],
            "Invalid UTF-8 in request body",
            "json_invalid",
        )])
    })?;
    // serde_json stops at 128 levels of nesting, so a 10,000-deep document is an error here,
    // not a stack overflow.
    let value = serde_json::from_str::<Value>(text).map_err(|e| {
        Error::Validation(vec![FieldError::new(
            vec![Value::from("body"), Value::from(e.column())],
            format!("JSON decode error: {e}"),
            "json_invalid",
        )])
    })?;
    // With `arbitrary_precision` any digits parse; a number no double can hold (`1e999`) is
    // still not one a client can mean.
    if !numbers_finite(&value) {
        return Err(Error::Validation(vec![FieldError::new(
            vec![Value::from("body")],
            "JSON decode error: number out of range",
            "json_invalid",
        )]));
    }
    Ok(value)
}

fn numbers_finite(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::Array(items) => items.iter().all(numbers_finite),
        Value::Object(map) => map.values().all(numbers_finite),
        _ => true,
    }
}

/// Splits `a=1&b=x%20y` into decoded pairs. `+` is a space, as browsers send it.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        let q = parse_query("month=10&year=2025&notes=a%20b+c&flag&bad=%zz&end=%4");
        assert_eq!(q[0], ("month".into(), "10".into()));
        assert_eq!(q[2], ("notes".into(), "a b c".into()));
        assert_eq!(q[3], ("flag".into(), "".into()));
        assert_eq!(q[4], ("bad".into(), "%zz".into()));
        assert_eq!(q[5], ("end".into(), "%4".into()));
    }

    #[test]
    fn json_errors_are_422_never_panics() {
        for body in [
            &b""[..],
            b"   ",
            b"{",
            b"\xff\xfe",
            b"[1,]",
            b"nul",
            b"{\"a\":[1e999]}",
        ] {
            let e = parse_json_body(body).expect_err("must fail");
            assert_eq!(e.status(), 422, "{body:?}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            parse_json_body(deep.as_bytes())
                .expect_err("too deep")
                .status(),
            422
        );
    }
}
