//! A tool's arguments, described once: the same `Param` list gives the JSON Schema offered
//! upstream and the checks a call's arguments go through, so the two cannot drift apart.
//! Every problem becomes a message naming the argument, meant for the model to read.

use std::collections::HashMap;

use jiff::civil::Date;
use serde_json::{Map, Value, json};

use super::Fail;
use crate::budget::dates::LocalDate;
use crate::input::FromJson;

/// What one argument may hold.
pub(super) enum Shape {
    /// A whole JSON number in `min..=max`.
    Int { min: i64, max: i64 },
    /// `YYYY-MM-DD`, a local date in 2020..2100.
    Date,
    /// One of these strings.
    Choice(Vec<String>),
    /// A string of at most `max` characters.
    Text { max: usize },
}

pub(super) struct Param {
    pub(super) name: &'static str,
    pub(super) about: &'static str,
    pub(super) shape: Shape,
    /// Absent (or `null`, when `nullable`) takes `default`; a required one must be sent.
    pub(super) required: bool,
    /// `null` is a value the model may send ("no filter").
    pub(super) nullable: bool,
    pub(super) default: Option<Arg>,
}

impl Param {
    /// A required, non-null argument.
    pub(super) fn needed(name: &'static str, about: &'static str, shape: Shape) -> Param {
        Param {
            name,
            about,
            shape,
            required: true,
            nullable: false,
            default: None,
        }
    }

    /// An optional argument; absent or `null` means `default` (`Arg::Null`: no value).
    pub(super) fn optional(
        name: &'static str,
        about: &'static str,
        shape: Shape,
        default: Arg,
    ) -> Param {
        Param {
            name,
            about,
            nullable: matches!(default, Arg::Null),
            shape,
            required: false,
            default: Some(default),
        }
    }

    fn schema(&self) -> Value {
        let mut s = Map::new();
        let ty = match &self.shape {
            Shape::Int { min, max } => {
                s.insert("minimum".into(), json!(min));
                s.insert("maximum".into(), json!(max));
                "integer"
            }
            Shape::Date => {
                s.insert("format".into(), json!("date"));
                "string"
            }
            Shape::Choice(options) => {
                let mut all: Vec<Value> = options.iter().map(|o| json!(o)).collect();
                if self.nullable {
                    all.push(Value::Null);
                }
                s.insert("enum".into(), Value::Array(all));
                "string"
            }
            Shape::Text { max } => {
                s.insert("maxLength".into(), json!(max));
                "string"
            }
        };
        let ty = if self.nullable {
            json!([ty, "null"])
        } else {
            json!(ty)
        };
        s.insert("type".into(), ty);
        s.insert("description".into(), json!(self.about));
        Value::Object(s)
    }
}

/// The `parameters` object of a tool.
pub(super) fn schema(params: &[Param]) -> Value {
    let properties: Map<String, Value> = params
        .iter()
        .map(|p| (p.name.to_string(), p.schema()))
        .collect();
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// One checked argument value.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Arg {
    Int(i64),
    Date(Date),
    Text(String),
    Null,
}

/// A call's arguments once every check passed, defaults filled in.
#[derive(Debug)]
pub(super) struct Args(HashMap<&'static str, Arg>);

/// A tool asked for an argument its own `Param` list does not give: a bug, not the model's.
fn undeclared(name: &str) -> Fail {
    Fail::internal(format!("argument {name} is not declared"))
}

impl Args {
    pub(super) fn int(&self, name: &str) -> Result<i64, Fail> {
        match self.0.get(name) {
            Some(Arg::Int(n)) => Ok(*n),
            _ => Err(undeclared(name)),
        }
    }

    pub(super) fn date(&self, name: &str) -> Result<Date, Fail> {
        match self.0.get(name) {
            Some(Arg::Date(d)) => Ok(*d),
            _ => Err(undeclared(name)),
        }
    }

    /// A text or choice argument; `None` for `null`.
    pub(super) fn text(&self, name: &str) -> Result<Option<&str>, Fail> {
        match self.0.get(name) {
            Some(Arg::Text(s)) => Ok(Some(s)),
            Some(Arg::Null) => Ok(None),
            _ => Err(undeclared(name)),
        }
    }
}

/// At most this many problems are listed in one error; a name is cut to `NAME_SHOWN` chars.
const PROBLEMS_SHOWN: usize = 5;
const NAME_SHOWN: usize = 40;

/// A name the model sent, cut short so an error stays small whatever it sent.
pub(super) fn shown(name: &str) -> String {
    if name.chars().count() <= NAME_SHOWN {
        return name.to_string();
    }
    let head: String = name.chars().take(NAME_SHOWN).collect();
    format!("{head}…")
}

/// Reads the raw `arguments` text against `params`. An empty text is `{}` (some servers send
/// nothing for a call without arguments). The error lists every problem found.
pub(super) fn parse(params: &[Param], text: &str) -> Result<Args, String> {
    let obj = if text.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => obj,
            Ok(_) => return Err("arguments must be a JSON object".into()),
            Err(e) => return Err(format!("arguments are not valid JSON ({e})")),
        }
    };
    let mut problems: Vec<String> = obj
        .keys()
        .filter(|k| !params.iter().any(|p| p.name == k.as_str()))
        .map(|k| format!("unknown argument '{}'", shown(k)))
        .collect();
    let mut args = HashMap::new();
    for p in params {
        match read(p, obj.get(p.name)) {
            Ok(v) => {
                args.insert(p.name, v);
            }
            Err(why) => problems.push(format!("{}: {why}", p.name)),
        }
    }
    if problems.is_empty() {
        return Ok(Args(args));
    }
    let more = problems.len().saturating_sub(PROBLEMS_SHOWN);
    problems.truncate(PROBLEMS_SHOWN);
    let mut msg = problems.join("; ");
    if more > 0 {
        msg.push_str(&format!("; and {more} more"));
    }
    Err(msg)
}

/// One argument's value, or why it is refused (without its name).
fn read(p: &Param, v: Option<&Value>) -> Result<Arg, String> {
    let v = match v {
        None if p.required => return Err("required argument is missing".into()),
        Some(Value::Null) if !p.nullable => return Err("must not be null".into()),
        None | Some(Value::Null) => {
            return p
                .default
                .clone()
                .ok_or_else(|| "internal: no default".to_string());
        }
        Some(v) => v,
    };
    match &p.shape {
        Shape::Int { min, max } => {
            let n = whole(v).ok_or_else(|| "must be an integer".to_string())?;
            if !(*min..=*max).contains(&n) {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(Arg::Int(n))
        }
        Shape::Date => {
            if !v.is_string() {
                return Err("must be a string YYYY-MM-DD".into());
            }
            LocalDate::from_json(v)
                .map(|d| Arg::Date(d.0))
                .map_err(|e| lower_first(&e.msg))
        }
        Shape::Choice(options) => {
            let s = v.as_str().ok_or_else(|| "must be a string".to_string())?;
            if options.iter().any(|o| o == s) {
                return Ok(Arg::Text(s.to_string()));
            }
            Err(if options.is_empty() {
                format!("'{}' is not one of the allowed values (none)", shown(s))
            } else {
                format!(
                    "'{}' is not one of the allowed values ({}{})",
                    shown(s),
                    options
                        .iter()
                        .take(PROBLEMS_SHOWN * 2)
                        .map(|o| shown(o))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if options.len() > PROBLEMS_SHOWN * 2 {
                        ", …"
                    } else {
                        ""
                    }
                )
            })
        }
        Shape::Text { max } => {
            let s = v.as_str().ok_or_else(|| "must be a string".to_string())?;
            if s.chars().count() > *max {
                return Err(format!("must be at most {max} characters"));
            }
            Ok(Arg::Text(s.to_string()))
        }
    }
}

/// `Input should…` → `input should…`, to follow `name: `.
fn lower_first(msg: &str) -> String {
    let mut chars = msg.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// A JSON number with no fraction (`3` and `3.0`, as JSON Schema's `integer` reads them).
fn whole(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i64)
}
