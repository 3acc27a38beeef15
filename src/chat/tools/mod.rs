//! Coach tools: lookups over the asking user's own data that the model may call while it
//! answers (shared/API.md, "Coach tools"). Each tool is a plain function over a read
//! connection; `offered` builds the OpenAI `tools` array for one user (enums from that user's
//! own categories), and `call` checks one call (name, JSON, schema, ranges) and runs it as
//! that user only. A bad call is never an error of the answer: its result is `{"error": …}`
//! so the model can correct itself. Results are capped at `RESULT_CAP` bytes of JSON.

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::budget::catalog::Catalog;
use crate::error::Result;

/// The largest tool result sent back upstream, in bytes of JSON.
pub(crate) const RESULT_CAP: usize = 8_192;

/// What a tool needs besides the connection: who asks, and the calendar.
pub(crate) struct Caller<'a> {
    pub(crate) user: &'a str,
    /// Today, a local date in `APP_TIMEZONE`.
    pub(crate) today: jiff::civil::Date,
    pub(crate) tz: &'a jiff::tz::TimeZone,
    pub(crate) catalog: &'a Catalog,
}

/// The `tools` array of a request for this user.
pub(crate) fn offered(_c: &Connection, _who: &Caller<'_>) -> Result<Vec<Value>> {
    // Filled in by the tools change; until then the model is offered nothing.
    Ok(Vec::new())
}

/// Runs one call: `name` and the raw `arguments` text as the model sent them. The result is
/// the JSON to send back as the tool message, at most `RESULT_CAP` bytes, `{"error": …}` for a
/// bad call.
pub(crate) fn call(_c: &Connection, _who: &Caller<'_>, name: &str, _arguments: &str) -> Value {
    json!({ "error": format!("unknown tool '{name}'") })
}
