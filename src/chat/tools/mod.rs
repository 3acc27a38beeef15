//! Coach tools: lookups over the asking user's own data that the model may call while it
//! answers (shared/API.md, "Coach tools"). Each tool is a plain function over a read
//! connection; `offered` builds the OpenAI `tools` array for one user (enums from that user's
//! own categories), and `call` checks one call (name, JSON, schema, ranges) and runs it as
//! that user only. A bad call is never an error of the answer: its result is `{"error": …}`
//! so the model can correct itself. Results are capped at `RESULT_CAP` bytes of JSON.

mod args;
mod lookups;
#[cfg(test)]
mod tests;

use rusqlite::Connection;
use serde_json::{Map, Value, json};

use crate::budget::catalog::Catalog;
use crate::error::{Error, Result};
use args::{Args, Param};

/// The largest tool result sent back upstream, in bytes of JSON.
pub(crate) const RESULT_CAP: usize = 8_192;

/// The longest `arguments` text read; a model that sends more gets an error result.
const ARGUMENTS_CAP: usize = 2 * RESULT_CAP;

/// What a tool needs besides the connection: who asks, and the calendar.
pub(crate) struct Caller<'a> {
    pub(crate) user: &'a str,
    /// Today, a local date in `APP_TIMEZONE`.
    pub(crate) today: jiff::civil::Date,
    pub(crate) tz: &'a jiff::tz::TimeZone,
    pub(crate) catalog: &'a Catalog,
}

/// Why a call has no result: the model asked for something the rules refuse (told to it, so
/// it can ask again), or the lookup itself failed (logged; the model is told only that).
enum Fail {
    Arg(String),
    Internal(Error),
}

impl Fail {
    fn internal(e: impl std::fmt::Display) -> Fail {
        Fail::Internal(Error::internal(e))
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Internal(e)
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Internal(e.into())
    }
}

type Run = fn(&Connection, &Caller<'_>, &Args) -> std::result::Result<Value, Fail>;

struct Tool {
    name: &'static str,
    description: &'static str,
    /// Its arguments, given the user's own categories (only `get_transactions` uses them).
    params: fn(Vec<String>) -> Vec<Param>,
    /// Whether `params` needs the categories, read per request.
    per_user: bool,
    /// The list in its result that is cut when the result is over `RESULT_CAP`.
    list: &'static str,
    run: Run,
}

static TOOLS: [Tool; 5] = [
    Tool {
        name: "get_month_summary",
        description: "A month's income, expense, balance and transaction count, and the \
            budget against the actual amount of each budget category.",
        params: |_| lookups::year_month(),
        per_user: false,
        list: "categories",
        run: lookups::month_summary,
    },
    Tool {
        name: "get_transactions",
        description: "The user's transactions between two dates (at most 366 days), newest \
            first, 25 a page, with the count and the income and expense totals of all that \
            match. Filter by type, category and label text.",
        params: lookups::transaction_filters,
        per_user: true,
        list: "transactions",
        run: lookups::transactions,
    },
    Tool {
        name: "get_spending_by_category",
        description: "Expenses between two dates (at most 366 days) summed by the \
            transactions' category, largest first.",
        params: |_| lookups::date_range(),
        per_user: false,
        list: "categories",
        run: lookups::spending_by_category,
    },
    Tool {
        name: "get_allocations",
        description: "A month's allocations per budget category: budget, recorded, spent, \
            actual, carried in and available, with the allocation types that have figures.",
        params: |_| lookups::year_month(),
        per_user: false,
        list: "categories",
        run: lookups::allocations,
    },
    Tool {
        name: "get_upcoming_bills",
        description: "Recurring bills and income due from today to the given number of days \
            ahead that are not yet posted or skipped, by date.",
        params: |_| lookups::bill_days(),
        per_user: false,
        list: "bills",
        run: lookups::upcoming_bills,
    },
];

/// The `tools` array of a request for this user.
pub(crate) fn offered(c: &Connection, who: &Caller<'_>) -> Result<Vec<Value>> {
    let categories = lookups::categories(c, who.user)?;
    Ok(TOOLS
        .iter()
        .map(|t| {
            json!({
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": args::schema(&(t.params)(categories.clone())),
                },
            })
        })
        .collect())
}

/// Runs one call: `name` and the raw `arguments` text as the model sent them. The result is
/// the JSON to send back as the tool message, at most `RESULT_CAP` bytes, `{"error": …}` for a
/// bad call.
pub(crate) fn call(c: &Connection, who: &Caller<'_>, name: &str, arguments: &str) -> Value {
    let Some(tool) = TOOLS.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        return error(format!(
            "unknown tool '{}'; the tools are {}",
            args::shown(name),
            names.join(", ")
        ));
    };
    if arguments.len() > ARGUMENTS_CAP {
        return error(format!(
            "arguments are too long (over {ARGUMENTS_CAP} bytes)"
        ));
    }
    let categories = if tool.per_user {
        match lookups::categories(c, who.user) {
            Ok(list) => list,
            Err(e) => return failed(name, &e),
        }
    } else {
        Vec::new()
    };
    let checked = args::parse(&(tool.params)(categories), arguments);
    let outcome = checked
        .map_err(Fail::Arg)
        .and_then(|a| (tool.run)(c, who, &a));
    match outcome {
        Ok(v) => fit(v, tool.list),
        Err(Fail::Arg(msg)) => error(msg),
        Err(Fail::Internal(e)) => failed(name, &e),
    }
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// `{"error": msg}`, kept under the cap whatever went into `msg`.
fn error(msg: String) -> Value {
    let v = json!({ "error": msg });
    if size(&v) <= RESULT_CAP {
        return v;
    }
    json!({ "error": "the call was refused" })
}

fn failed(name: &str, e: &Error) -> Value {
    log::warn!("coach tool {name} failed: {e:?}");
    error("the lookup failed; answer without it".into())
}

/// The result, or, when it is over `RESULT_CAP`, the result with its `list` cut to the items
/// that fit, marked `"truncated": true` with the number `shown` and a note for the model.
fn fit(v: Value, list: &str) -> Value {
    if size(&v) <= RESULT_CAP {
        return v;
    }
    let Value::Object(mut obj) = v else {
        return error("the result is too large".into());
    };
    let items = match obj.remove(list) {
        Some(Value::Array(items)) => items,
        _ => return error("the result is too large".into()),
    };
    let all = items.len();
    let mark = |obj: &mut Map<String, Value>, shown: usize, kept: Vec<Value>| {
        obj.insert("truncated".into(), json!(true));
        obj.insert("shown".into(), json!(shown));
        obj.insert(
            "note".into(),
            json!(format!(
                "Only the first {shown} of {all} {list} fit in the result; ask for a narrower \
                 range, a filter or another page to see the rest."
            )),
        );
        obj.insert(list.into(), Value::Array(kept));
    };
    // The frame with an empty list and the widest count, then items while they fit (each
    // item after the first also costs its comma).
    let mut frame = obj.clone();
    mark(&mut frame, all, Vec::new());
    let mut used = size(&Value::Object(frame));
    let mut kept = Vec::new();
    for item in items {
        let cost = size(&item) + usize::from(!kept.is_empty());
        if used + cost > RESULT_CAP {
            break;
        }
        used += cost;
        kept.push(item);
    }
    mark(&mut obj, kept.len(), kept);
    let out = Value::Object(obj);
    if size(&out) <= RESULT_CAP {
        out
    } else {
        error("the result is too large".into())
    }
}
