//! `GET /notifications` and `POST /notifications/read`.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::store::{self, Page, Selection, Stored};
use crate::app::App;
use crate::auth::require_user;
use crate::error::Result;
use crate::http::{Req, Resp};
use crate::input::{Count, Fields, FromJson, Invalid};

/// At most this many ids in one `POST /notifications/read`.
pub(crate) const MAX_IDS: usize = 500;

/// `after`: a notification id, 0 or more.
struct After(i64);

impl FromJson for After {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        match i64::from_json(v)? {
            n if n >= 0 => Ok(After(n)),
            _ => Err(Invalid::new(
                "Input should be greater than or equal to 0",
                "greater_than_equal",
            )),
        }
    }
}

/// A query string's boolean: the words `true` or `false` and nothing else, so a typo never
/// silently means one of them.
struct QueryFlag(bool);

impl FromJson for QueryFlag {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        match v.as_str() {
            Some("true") => Ok(QueryFlag(true)),
            Some("false") => Ok(QueryFlag(false)),
            _ => Err(Invalid::new(
                "Input should be true or false",
                "bool_parsing",
            )),
        }
    }
}

/// A JSON boolean (not a string or a number that looks like one).
struct Flag(bool);

impl FromJson for Flag {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        match v {
            Value::Bool(b) => Ok(Flag(*b)),
            _ => Err(Invalid::new("Input should be a valid boolean", "bool_type")),
        }
    }
}

/// `ids`: a JSON array of at most [`MAX_IDS`] integers.
struct Ids(Vec<i64>);

impl FromJson for Ids {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        let Value::Array(items) = v else {
            return Err(Invalid::new("Input should be a valid list", "list_type"));
        };
        if items.len() > MAX_IDS {
            return Err(Invalid::new(
                format!("List should have at most {MAX_IDS} items"),
                "too_long",
            ));
        }
        items
            .iter()
            .map(id)
            .collect::<std::result::Result<_, _>>()
            .map(Ids)
    }
}

/// One id: an integer within int64, also when written with a zero fraction (`5.0`) or an
/// exponent (`1e3`), as JSON Schema's `integer` allows. Read from the number's exact text
/// (`arbitrary_precision`), so nothing out of range is rounded into it.
fn id(v: &Value) -> std::result::Result<i64, Invalid> {
    // Floats are exact integers up to 2^53; an exponent form past that is refused.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let Value::Number(n) = v else {
        return Err(Invalid::new("Input should be a valid integer", "int_type"));
    };
    let text = n.to_string();
    let whole = match text.split_once('.') {
        Some((whole, frac)) if frac.bytes().all(|b| b == b'0') => whole.parse().ok(),
        Some(_) => None,
        None => text.parse().ok(),
    };
    let exponent = || {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
            .map(|f| f as i64)
    };
    whole
        .or_else(exponent)
        .ok_or_else(|| Invalid::new("Input should be a valid integer", "int_from_float"))
}

type Limit = Count<1, 200>;

#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationsPage {
    /// Oldest first.
    pub(crate) notifications: Vec<Stored>,
    /// All of the user's unread notifications, not only this page's.
    pub(crate) unread_count: i64,
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(("after" = Option<i64>, Query, minimum = 0, description = "Only notifications with a greater id (the last id of the previous page); default 0"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "1..200, default 50"),
           ("unread" = Option<bool>, Query, description = "`true`: unread ones only; default `false`")),
    responses((status = 200, body = NotificationsPage), (status = 401), (status = 422)))]
pub(crate) fn list_notifications(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let after = f.optional::<After>("after");
    let limit = f.optional::<Limit>("limit");
    let unread = f.optional::<QueryFlag>("unread");
    f.finish()?;
    let page = Page {
        after: after?.map_or(0, |a| a.0),
        limit: limit?.map_or(50, |l| l.0),
        unread_only: unread?.is_some_and(|u| u.0),
    };
    let body = app.db.read(|c| {
        // One snapshot, so the count agrees with the page.
        let tx = c.unchecked_transaction()?;
        let notifications = store::list(&tx, &me.user.id, page)?;
        let unread_count = store::unread_count(&tx, &me.user.id)?;
        tx.finish()?;
        Ok(NotificationsPage {
            notifications,
            unread_count,
        })
    })?;
    Ok(Resp::json(200, &body))
}

/// `true`, and nothing else.
fn true_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .build()
}

/// Beside `ids`, `all` may only be absent, `false` or null.
fn false_or_null_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Boolean, Type::Null]))
        .enum_values(Some([Value::Bool(false), Value::Null]))
        .build()
}

/// Beside `all: true`, `ids` may only be absent or null.
fn null_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new().schema_type(Type::Null).build()
}

/// Either `ids` or `all: true`, not both.
#[allow(dead_code)] // an OpenAPI schema of what `mark_read` reads
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum MarkReadRequest {
    /// These notifications (ids that are not the caller's are ignored).
    Ids {
        #[schema(max_items = 500)]
        ids: Vec<i64>,
        #[schema(schema_with = false_or_null_schema)]
        all: Option<bool>,
    },
    /// Every unread notification of the caller.
    All {
        #[schema(schema_with = true_schema)]
        all: bool,
        #[schema(schema_with = null_schema)]
        ids: Option<Vec<i64>>,
    },
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Marked {
    /// How many were unread and are now read.
    pub(crate) marked: usize,
}

#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "notifications", security(("bearer" = [])),
    request_body = MarkReadRequest,
    responses((status = 200, body = Marked), (status = 401),
              (status = 422, description = "Neither `ids` nor `all: true`, both, an id that is not an integer, or more than 500 ids")))]
pub(crate) fn mark_read(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let ids = f.optional::<Ids>("ids");
    let all = f.optional::<Flag>("all");
    let which = match (ids, all) {
        (Ok(Some(ids)), Ok(None | Some(Flag(false)))) => Some(Selection::Ids(ids.0)),
        (Ok(None), Ok(Some(Flag(true)))) => Some(Selection::All),
        (Ok(Some(_)), Ok(Some(Flag(true)))) => {
            f.reject("all", "Give either ids or all, not both", "value_error");
            None
        }
        (Ok(None), Ok(None | Some(Flag(false)))) => {
            f.reject("ids", "Give ids, or all: true", "missing");
            None
        }
        // Already reported.
        _ => None,
    };
    f.finish()?;
    let Some(which) = which else {
        return Err(crate::error::Error::internal("unreported bad input"));
    };
    let now = app.clock.iso();
    let marked = app
        .db
        .write(|tx| store::mark_read(tx, &me.user.id, &which, &now))?;
    Ok(Resp::json(200, &Marked { marked }))
}
