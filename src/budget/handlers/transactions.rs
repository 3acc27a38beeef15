//! `/transactions...`: income and expense transactions and the month's balance.

use rusqlite::Transaction;
use serde::Serialize;
use utoipa::ToSchema;

use super::{json_bytes, this_month, write, write_in_group};
use crate::app::App;
use crate::auth::require_user;
use crate::budget::cache::View;
use crate::budget::dates::DayRange;
use crate::budget::idempotency::{self, Keyed};
use crate::budget::money::{Money, Positive};
use crate::budget::period::Period;
use crate::budget::spending;
use crate::budget::transactions::{
    self, Changes, ClientId, Filter, Kind, NewTransaction, Posted, TxDate, Window, Written,
};
use crate::budget::versions;
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::input::{Count, Fields, Text};
use crate::notify::hub::Event;

type Category = Text<1, 50>;

/// As `POST /allocations/budget` reads it.
type TypeId = Text<1, 64>;

/// After the commit: the `budget_alert`s a linked expense write raised.
fn publish(app: &App, user: &str, alerts: Vec<Event>) {
    for event in alerts {
        app.events.publish(user, event);
    }
}

type Label = Text<1, 200>;

/// What `TxDate` reads: an ISO 8601 date, a date-time with an offset (RFC 3339), or a date-time
/// without one (read as UTC), in the years 2020..2100 (of the instant in UTC), surrounding
/// whitespace ignored. The patterns carry the years (and, for the date-time without an offset,
/// the days each month has), which no `format` can.
fn tx_date_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    const YEAR: &str = r"^(20[2-9][0-9]|2100)-";
    const LOCAL: &str = concat!(
        r"^[ \t\n\r]*((20[2-9][0-9]|2100)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
        r"|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)|20(2[048]|[3579][26]|[468][048])-02-29)",
        r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?[ \t\n\r]*$"
    );
    let string = |format: Option<KnownFormat>, pattern: &str, what: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(format.map(SchemaFormat::KnownFormat))
            .pattern(Some(pattern))
            .description(Some(what))
    };
    AnyOfBuilder::new()
        .item(string(
            Some(KnownFormat::Date),
            YEAR,
            "A date: local midnight in APP_TIMEZONE",
        ))
        .item(string(
            Some(KnownFormat::DateTime),
            YEAR,
            "A date-time with an offset",
        ))
        .item(string(
            None,
            LOCAL,
            "A date-time without an offset: local time in APP_TIMEZONE",
        ))
        .description(Some(
            "An ISO 8601 date or date-time whose instant in UTC falls in the years 2020..2100",
        ))
        .build()
        .into()
}

fn tx_date_or_null_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    AnyOfBuilder::new()
        .item(tx_date_schema())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreateTransactionRequest {
    /// **New**: an id made by the client (an offline device), any UUID version, hyphenated;
    /// kept in lowercase. Sending the same id again with the same content answers 200 with
    /// the stored transaction; with other content, another user's id, or a deleted
    /// transaction's id, 409 `id_conflict`. Absent: the server makes one.
    #[schema(
        format = "uuid",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub(crate) id: Option<String>,
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Kind,
    #[schema(min_length = 1, max_length = 50)]
    pub(crate) category: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) amount: f64,
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) label: String,
    /// An ISO 8601 date or date-time, in 2020..2100. Without an offset it is the user's wall
    /// clock in `APP_TIMEZONE`; it is stored and echoed as the UTC instant.
    #[schema(schema_with = tx_date_schema, example = "2025-10-18")]
    pub(crate) transaction_date: String,
    /// Links an expense to an allocation type (`GET /allocations`): its amount counts in that
    /// type's `spent_amount` for the month. An unknown type is a 404
    /// `allocation_type_not_found`, a linked income a 422 `allocation_requires_expense`.
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/transactions", tag = "transactions", security(("bearer" = [])),
    request_body = CreateTransactionRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
             description = "1 to 255 visible ASCII characters. A retried POST with the same key returns the first response")),
    responses((status = 201, body = transactions::TransactionResponse),
              (status = 200, description = "A retry: the client's `id` with the same content; the stored transaction", body = transactions::TransactionResponse),
              (status = 401),
              (status = 404, description = "`allocation_type_not_found`"),
              (status = 409, description = "`id_conflict`: the `id` is taken by other content, another user, or a deleted transaction"),
              (status = 422, description = "Bad field, `allocation_requires_expense`, or `idempotency_key_reused`")))]
pub(crate) fn create_transaction(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let keyed = Keyed::of(req)?;
    let mut f = Fields::body(req)?;
    let kind = f.required::<Kind>("type");
    let category = f.required::<Category>("category");
    let amount = f.required::<Positive>("amount");
    let label = f.required::<Label>("label");
    let date = f.required::<TxDate>("transaction_date");
    let link = f.optional::<TypeId>("allocation_type_id");
    let id = f.optional::<ClientId>("id");
    f.finish()?;
    let id = id?;
    let new = NewTransaction {
        kind: kind?,
        category: category?.0,
        amount: amount?.0,
        label: label?.0,
        date: date?,
        allocation_type_id: link?.map(|t| t.0),
        occurrence: None,
    };
    let (user, tz) = (me.user.id.clone(), app.config.app_timezone.clone());
    let (unix, iso) = (app.clock.unix(), app.clock.iso());
    let catalog = app.catalog.clone();
    // The key is looked up before the id: a keyed retry gets the first answer byte for byte
    // (a 201), and only an unkeyed (or newly keyed) retry of a client id is answered 200.
    let user_id = me.user.id.clone();
    let posted = move |tx: &Transaction<'_>| {
        idempotency::run(tx, &user, keyed.as_ref(), unix, || {
            let posted = match &id {
                None => {
                    Posted::Created(transactions::create(tx, &catalog, &tz, &user, &new, &iso)?)
                }
                Some(id) => transactions::create_with_id(tx, &catalog, &tz, &user, id, &new, &iso)?,
            };
            match posted {
                Posted::Created(Written { value, alerts }) => {
                    Ok((201, json_bytes(&value)?, alerts))
                }
                Posted::Replayed(value) => Ok((200, json_bytes(&value)?, Vec::new())),
            }
        })
    };
    Ok(write_in_group(
        &me.user.id,
        posted,
        move |app, (status, bytes, alerts)| {
            // A replay (`None`) changed nothing, so it has nothing to tell.
            publish(app, &user_id, alerts.unwrap_or_default());
            Ok(Resp::bytes(status, "application/json", bytes))
        },
    ))
}

type Limit = Count<1, 200>;

type Offset = Count<0, 1_000_000>;

#[utoipa::path(get, path = "/api/v1/transactions", tag = "transactions", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month. Not with from/to"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year. Not with from/to"),
           ("from" = Option<String>, Query, format = Date, example = "2025-10-01",
            description = "First day (YYYY-MM-DD, a local date in APP_TIMEZONE, 2020..2100), inclusive. Needs `to`; not with month/year"),
           ("to" = Option<String>, Query, format = Date, example = "2025-10-31",
            description = "Last day (YYYY-MM-DD, local), inclusive, not before `from` and at most 366 days after it. Needs `from`"),
           ("type" = Option<Kind>, Query,), ("category" = Option<String>, Query, min_length = 1, max_length = 50),
           ("allocation_type_id" = Option<String>, Query, min_length = 1, max_length = 64,
            description = "Only the expenses linked to this allocation type; an unknown type is a 404 `allocation_type_not_found`"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "1..200, default 100"),
           ("offset" = Option<u32>, Query, minimum = 0, maximum = 1000000)),
    responses((status = 200, description = "A bare array, newest transaction_date first", body = [transactions::TransactionResponse]),
              (status = 401), (status = 404, description = "`allocation_type_not_found`"), (status = 422)))]
pub(crate) fn list_transactions(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let window = list_window(app, &mut f);
    let kind = f.optional::<Kind>("type");
    let category = f.optional::<Category>("category");
    let link = f.optional::<TypeId>("allocation_type_id");
    let limit = f.optional::<Limit>("limit");
    let offset = f.optional::<Offset>("offset");
    f.finish()?;
    let link = link?.map(|t| t.0);
    // An unknown type is a mistake, not an empty list (as everywhere a type id is taken).
    if let Some(t) = &link
        && !app.catalog.has_type(t)
    {
        return Err(spending::type_not_found(t));
    }
    let filter = Filter {
        window: window?,
        kind: kind?,
        category: category?.map(|c| c.0),
        allocation_type_id: link,
        limit: limit?.map(|l| l.0).unwrap_or(100),
        offset: offset?.map(|o| o.0).unwrap_or(0),
    };
    let view = View::Transactions(Box::new(filter.clone()));
    crate::sync::etag::respond(app, req, &me.user.id, view, || {
        let rows = app
            .db
            .read(|c| transactions::list(c, &me.user.id, &filter))?;
        json_bytes(&rows)
    })
}

/// `from`/`to` when either is given (never together with `month`/`year`), else the month.
fn list_window(app: &App, f: &mut Fields) -> Result<Window> {
    let month_or_year = f.has("month") || f.has("year");
    match DayRange::from_fields(&app.config.app_timezone, f)? {
        None => Period::from_fields(f, this_month(app)).map(Window::Month),
        Some(_) if month_or_year => {
            let name = if f.has("from") { "from" } else { "to" };
            f.reject(
                name,
                "Give either month/year or from/to, not both",
                "value_error",
            );
            Err(Error::validation(
                &["query", name],
                "month/year with from/to",
                "value_error",
            ))
        }
        Some(r) => Ok(Window::Days(r)),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct BalanceResponse {
    pub(crate) month: u32,
    pub(crate) year: i32,
    #[schema(value_type = f64)]
    pub(crate) current_balance: Money,
    #[schema(value_type = f64)]
    pub(crate) total_income: Money,
    #[schema(value_type = f64)]
    pub(crate) total_expense: Money,
    pub(crate) transaction_count: i64,
}

#[utoipa::path(get, path = "/api/v1/transactions/balance", tag = "transactions", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = BalanceResponse), (status = 401), (status = 422)))]
pub(crate) fn get_balance(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(req, this_month(app))?;
    let t = app.db.read(|c| transactions::totals(c, &me.user.id, p))?;
    Ok(Resp::json(
        200,
        &BalanceResponse {
            month: p.month,
            year: p.year,
            current_balance: t.balance()?,
            total_income: t.total_income,
            total_expense: t.total_expense,
            transaction_count: t.transaction_count,
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PatchTransactionRequest {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Option<Kind>,
    #[schema(min_length = 1, max_length = 50)]
    pub(crate) category: Option<String>,
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) amount: Option<f64>,
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) label: Option<String>,
    /// As in a new transaction; null is the same as absent.
    #[schema(schema_with = tx_date_or_null_schema)]
    pub(crate) transaction_date: Option<String>,
    /// Links the transaction to another allocation type; `null` unlinks it, absent keeps the
    /// link. The result must be an expense if it is linked: a 422
    /// `allocation_requires_expense` otherwise (also for `"type":"income"` on a linked expense).
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path,), ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^ *(\*|(W/)?"[0-9]{1,18}"( *, *(W/)?"[0-9]{1,18}")*) *$"#,
             description = "The `version` the client last saw, quoted (`\"3\"`; `W/\"3\"` is the same; `*` matches any; a list matches any of its versions). Another version is a 412 `version_mismatch`; without the header the last write wins")), request_body = PatchTransactionRequest,
    responses((status = 200, body = transactions::TransactionResponse), (status = 401),
              (status = 404, description = "Transaction not found (also another user's), or `allocation_type_not_found`"),
              (status = 412, description = "`version_mismatch`: the transaction is not at the `If-Match` version", body = VersionMismatch),
              (status = 422, description = "Bad field, a malformed `If-Match`, or `allocation_requires_expense`")))]
pub(crate) fn patch_transaction(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let expected = versions::parse(req.header("if-match"))?;
    let mut f = Fields::body(req)?;
    let kind = f.optional::<Kind>("type");
    let category = f.optional::<Category>("category");
    let amount = f.optional::<Positive>("amount");
    let label = f.optional::<Label>("label");
    let date = f.optional::<TxDate>("transaction_date");
    let link = f.nullable::<TypeId>("allocation_type_id");
    f.finish()?;
    let changes = Changes {
        kind: kind?,
        category: category?.map(|c| c.0),
        amount: amount?.map(|a| a.0),
        label: label?.map(|l| l.0),
        date: date?,
        allocation_type_id: link?.map(|l| l.map(|t| t.0)),
        expected,
    };
    let id = req.param("id");
    let Written { value, alerts } = write(app, &me.user.id, |tx| {
        transactions::update(
            tx,
            &app.catalog,
            &app.config.app_timezone,
            &me.user.id,
            id,
            &changes,
            &app.clock.iso(),
        )
    })?;
    publish(app, &me.user.id, alerts);
    Ok(Resp::json(200, &value))
}

/// The 412 of a conditional PATCH or DELETE.
#[derive(Serialize, ToSchema)]
pub(crate) struct VersionMismatch {
    pub(crate) detail: String,
    /// `version_mismatch`
    pub(crate) code: String,
    /// The transaction as it is now (with its current `version`).
    pub(crate) current: transactions::TransactionResponse,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeletedTransaction {
    pub(crate) message: String,
    pub(crate) transaction_id: String,
}

#[utoipa::path(delete, path = "/api/v1/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path,), ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^ *(\*|(W/)?"[0-9]{1,18}"( *, *(W/)?"[0-9]{1,18}")*) *$"#,
             description = "The `version` the client last saw, quoted (`\"3\"`; `W/\"3\"` is the same; `*` matches any; a list matches any of its versions). Another version is a 412 `version_mismatch`; without the header the last write wins")),
    responses((status = 200, body = DeletedTransaction), (status = 401), (status = 404),
              (status = 412, description = "`version_mismatch`: the transaction is not at the `If-Match` version; nothing is deleted", body = VersionMismatch),
              (status = 422, description = "A malformed `If-Match`")))]
pub(crate) fn delete_transaction(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let expected = versions::parse(req.header("if-match"))?;
    let id = req.param("id");
    write(app, &me.user.id, |tx| {
        transactions::delete(tx, &me.user.id, id, expected.as_ref(), &app.clock.iso())
    })?;
    Ok(Resp::json(
        200,
        &DeletedTransaction {
            message: "Transaction deleted successfully".into(),
            transaction_id: id.to_string(),
        },
    ))
}
