//! Parse, don't validate: raw JSON (or query strings) become typed values at the edge. Domain
//! types implement `FromJson` here, so they never import the HTTP layer.
//!
//! A handler asks `Fields` for each field with the type it wants; every problem is collected,
//! and `finish()` turns them into one 422 listing them all, FastAPI style. Unknown fields are
//! ignored, as the contract asks.
//!
//! ```ignore
//! let mut f = Fields::body(&req)?;
//! let mobile = f.required::<MobileNumber>("mobile_number");
//! let otp = f.required::<OtpCode>("otp");
//! f.finish()?;
//! let input = VerifyOtp { mobile: mobile?, otp: otp? };
//! ```

use serde_json::{Map, Value};

use crate::error::{Error, FieldError};

/// Why one field's value was refused: a message and a FastAPI error type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invalid {
    pub(crate) msg: String,
    pub(crate) kind: &'static str,
}

impl Invalid {
    pub(crate) fn new(msg: impl Into<String>, kind: &'static str) -> Invalid {
        Invalid {
            msg: msg.into(),
            kind,
        }
    }
}

/// A type that can be read from one JSON value.
pub(crate) trait FromJson: Sized {
    fn from_json(v: &Value) -> Result<Self, Invalid>;
}

pub(crate) struct Fields {
    obj: Map<String, Value>,
    loc: &'static str,
    errors: Vec<FieldError>,
}

/// What `required`/`optional` hand back when the field was bad. `finish()` has already
/// reported it, so `?` on this never fires after a successful `finish()`.
fn already_reported() -> Error {
    Error::validation(&["body"], "Invalid input", "value_error")
}

/// Where fields come from: a request's JSON body and query. `http::Req` is one; the trait
/// keeps this module free of the transport, so domain types never import `http`.
pub(crate) trait Source {
    /// The body parsed as JSON (a missing or broken body is already a 422 here).
    fn json(&self) -> Result<Value, Error>;
    fn raw_body(&self) -> &[u8];
    fn query_pairs(&self) -> &[(String, String)];
}

impl Fields {
    /// The JSON body, which must be an object.
    pub(crate) fn body(req: &impl Source) -> Result<Fields, Error> {
        match req.json()? {
            Value::Object(obj) => Ok(Fields {
                obj,
                loc: "body",
                errors: Vec::new(),
            }),
            _ => Err(Error::validation(
                &["body"],
                "Input should be a valid dictionary or object",
                "model_attributes_type",
            )),
        }
    }

    /// The JSON body if there is one, else an empty object (routes whose body is optional).
    pub(crate) fn body_or_empty(req: &impl Source) -> Result<Fields, Error> {
        if req.raw_body().iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::from_map(Map::new(), "body"));
        }
        Fields::body(req)
    }

    /// Query parameters, each a string value.
    pub(crate) fn query(req: &impl Source) -> Fields {
        let obj = req
            .query_pairs()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Fields::from_map(obj, "query")
    }

    pub(crate) fn from_map(obj: Map<String, Value>, loc: &'static str) -> Fields {
        Fields {
            obj,
            loc,
            errors: Vec::new(),
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.obj.get(name).is_some_and(|v| !v.is_null())
    }

    /// Sent as `null`: a PATCH clears a nullable field this way (absent leaves it alone).
    pub(crate) fn is_null(&self, name: &str) -> bool {
        self.obj.get(name).is_some_and(Value::is_null)
    }

    fn report(&mut self, name: &str, invalid: Invalid) {
        self.errors.push(FieldError::new(
            vec![Value::from(self.loc), Value::from(name)],
            invalid.msg,
            invalid.kind,
        ));
    }

    pub(crate) fn required<T: FromJson>(&mut self, name: &str) -> Result<T, Error> {
        match self.obj.get(name) {
            None | Some(Value::Null) => {
                self.report(name, Invalid::new("Field required", "missing"));
                Err(already_reported())
            }
            Some(v) => match T::from_json(v) {
                Ok(x) => Ok(x),
                Err(inv) => {
                    self.report(name, inv);
                    Err(already_reported())
                }
            },
        }
    }

    /// Absent or null is `Ok(None)`; a present but bad value is reported.
    pub(crate) fn optional<T: FromJson>(&mut self, name: &str) -> Result<Option<T>, Error> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match T::from_json(v) {
                Ok(x) => Ok(Some(x)),
                Err(inv) => {
                    self.report(name, inv);
                    Err(already_reported())
                }
            },
        }
    }

    /// For a field where `null` means something (clear it): absent is `Ok(None)`, `null` is
    /// `Ok(Some(None))`, a bad value is reported.
    pub(crate) fn nullable<T: FromJson>(&mut self, name: &str) -> Result<Option<Option<T>>, Error> {
        match self.obj.get(name) {
            Some(Value::Null) => Ok(Some(None)),
            _ => self.optional(name).map(|v| v.map(Some)),
        }
    }

    /// Adds a problem found by a cross-field rule (e.g. "one of email or mobile_number").
    pub(crate) fn reject(&mut self, name: &str, msg: impl Into<String>, kind: &'static str) {
        self.report(name, Invalid::new(msg, kind));
    }

    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}

/// A string with its length counted in characters, within bounds, trimmed of nothing.
pub(crate) fn string_within(v: &Value, min: usize, max: usize) -> Result<String, Invalid> {
    let Value::String(s) = v else {
        return Err(Invalid::new(
            "Input should be a valid string",
            "string_type",
        ));
    };
    let n = s.chars().count();
    if n < min {
        return Err(Invalid::new(
            format!(
                "String should have at least {min} character{}",
                if min == 1 { "" } else { "s" }
            ),
            "string_too_short",
        ));
    }
    if n > max {
        return Err(Invalid::new(
            format!("String should have at most {max} characters"),
            "string_too_long",
        ));
    }
    Ok(s.clone())
}

/// A text field of `MIN..=MAX` characters; the bounds are written once, in the type.
pub(crate) struct Text<const MIN: usize, const MAX: usize>(pub String);

impl<const MIN: usize, const MAX: usize> FromJson for Text<MIN, MAX> {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        string_within(v, MIN, MAX).map(Text)
    }
}

/// A whole number in `MIN..=MAX`.
pub(crate) struct Count<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> FromJson for Count<MIN, MAX> {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        let n = i64::from_json(v)?;
        match u32::try_from(n) {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(Count(n)),
            _ => Err(Invalid::new(
                format!("Input should be between {MIN} and {MAX}"),
                "value_error",
            )),
        }
    }
}

impl FromJson for String {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        string_within(v, 0, usize::MAX)
    }
}

impl FromJson for bool {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        match v {
            Value::Bool(b) => Ok(*b),
            // Query strings carry booleans as text.
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(Invalid::new(
                    "Input should be a valid boolean",
                    "bool_parsing",
                )),
            },
            _ => Err(Invalid::new("Input should be a valid boolean", "bool_type")),
        }
    }
}

impl FromJson for i64 {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| Invalid::new("Input should be a valid integer", "int_from_float")),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| Invalid::new("Input should be a valid integer", "int_parsing")),
            _ => Err(Invalid::new("Input should be a valid integer", "int_type")),
        }
    }
}

impl FromJson for Value {
    fn from_json(v: &Value) -> Result<Self, Invalid> {
        Ok(v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        match v {
            Value::Object(m) => Fields::from_map(m, "body"),
            _ => panic!("test input must be an object"),
        }
    }

    #[test]
    fn every_problem_is_listed() {
        let mut f = fields(json!({"a": 5, "c": "x", "extra": true}));
        let a = f.required::<String>("a");
        let b = f.required::<String>("b");
        let c = f.optional::<i64>("c");
        assert!(a.is_err() && b.is_err() && c.is_err());
        let Err(Error::Validation(list)) = f.finish() else {
            panic!("expected 422");
        };
        let kinds: Vec<_> = list.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec!["string_type", "missing", "int_parsing"]);
        assert_eq!(list[1].loc, vec![json!("body"), json!("b")]);
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let v = json!("₹₹₹");
        assert!(string_within(&v, 1, 3).is_ok());
        assert!(string_within(&v, 1, 2).is_err());
    }

    #[test]
    fn good_input_passes_and_unknown_fields_are_ignored() {
        let mut f = fields(json!({"n": "42", "flag": false, "whatever": [1,2]}));
        let n = f.required::<i64>("n");
        let flag = f.optional::<bool>("flag");
        assert!(f.finish().is_ok());
        assert_eq!(n.ok(), Some(42));
        assert_eq!(flag.ok(), Some(Some(false)));
    }
}
