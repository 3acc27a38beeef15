//! HTTP handlers for allocations, the monthly budget and transactions: parse, call the
//! domain, map. Every route needs a bearer token and works on the caller's rows only.

use rusqlite::Transaction;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::allocations::{self, Change, Mode};
use super::cache::View;
use super::dates::DayRange;
use super::idempotency::{self, Keyed};
use super::money::{Money, NonNegative, Positive};
use super::monthly;
use super::period::Period;
use super::transactions::{self, Changes, Filter, Kind, NewTransaction, TxDate, Window};
use crate::app::App;
use crate::auth::require_user;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::http::input::string_within;
use crate::http::{Fields, FromJson, Invalid, Req, Resp};

#[derive(Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

fn json_bytes(v: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(Error::internal)
}

#[utoipa::path(get, path = "/api/v1/allocations", tag = "allocations", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = allocations::AllocationSummaryResponse), (status = 401), (status = 422)))]
pub fn get_allocations(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(app, req)?;
    let bytes =
        app.views
            .get_or_compute(&app.metrics, &me.user.id, p, View::Allocations, || {
                let s = app
                    .db
                    .read(|c| allocations::summary(c, &app.catalog, &me.user.id, p))?;
                json_bytes(&s)
            })?;
    Ok(Resp::bytes(200, "application/json", bytes.to_vec()))
}

#[derive(Serialize, ToSchema)]
pub struct SummaryResponse {
    pub month: u32,
    pub year: i32,
    #[schema(value_type = f64)]
    pub total_budget: Money,
    #[schema(value_type = f64)]
    pub total_actual: Money,
    #[schema(value_type = f64)]
    pub difference: Money,
    pub on_track: bool,
    #[schema(value_type = f64)]
    pub utilization_percentage: super::money::Percent,
}

#[utoipa::path(get, path = "/api/v1/allocations/summary", tag = "allocations", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = SummaryResponse), (status = 401), (status = 422)))]
pub fn get_summary(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(app, req)?;
    let rows = app.db.read(|c| allocations::rows(c, &me.user.id, p))?;
    let budget = Money(rows.values().map(|r| r.budget.0).sum());
    let actual = Money(rows.values().map(|r| r.actual.0).sum());
    Ok(Resp::json(
        200,
        &SummaryResponse {
            month: p.month,
            year: p.year,
            total_budget: budget,
            total_actual: actual,
            difference: Money(budget.0 - actual.0),
            on_track: actual <= budget,
            utilization_percentage: allocations::utilization(actual, budget),
        },
    ))
}

struct MonthsWindow(u32);

impl FromJson for MonthsWindow {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        let n = i64::from_json(v)?;
        if !(1..=24).contains(&n) {
            return Err(Invalid::new(
                "Input should be between 1 and 24",
                "value_error",
            ));
        }
        Ok(MonthsWindow(n as u32))
    }
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    pub history: Vec<allocations::MonthTotals>,
}

#[utoipa::path(get, path = "/api/v1/allocations/history", tag = "allocations", security(("bearer" = [])),
    params(("months" = Option<u32>, Query, minimum = 1, maximum = 24, description = "1..24, default 6"),
           ("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "The newest month of the window (default: this month)"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = HistoryResponse), (status = 401), (status = 422)))]
pub fn get_history(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let months = f.optional::<MonthsWindow>("months");
    let p = Period::from_fields(app, &mut f);
    f.finish()?;
    let (months, p) = (months?.map(|m| m.0).unwrap_or(6), p?);
    let history = app
        .db
        .read(|c| allocations::history(c, &me.user.id, p, months))?;
    Ok(Resp::json(200, &HistoryResponse { history }))
}

#[utoipa::path(get, path = "/api/v1/allocations/{allocation_id}", tag = "allocations", security(("bearer" = [])),
    params(("allocation_id" = String, Path, description = "On GET, a category id"), ("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = allocations::CategoryLine), (status = 401), (status = 404)))]
pub fn get_category(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(app, req)?;
    let id = req.param("allocation_id");
    let line = app
        .db
        .read(|c| allocations::one_category(c, &app.catalog, &me.user.id, p, id))?;
    match line {
        Some(line) => Ok(Resp::json(200, &line)),
        None => Err(Error::NotFound {
            code: "category_not_found",
            detail: format!("Allocation category with id '{id}' not found"),
        }),
    }
}

/// A write to allocation rows that may push a category over its budget. `locate` finds the
/// type and month touched (inside the transaction), `change` does the write; the category's
/// totals are compared before and after, and a `budget_alert` goes out after the commit.
/// With an `Idempotency-Key` (POST routes), a retry gets the first answer and changes nothing:
/// an `add` that got no answer can be sent again safely.
fn allocation_write(
    app: &App,
    user: &str,
    keyed: Option<&Keyed>,
    reply: &str,
    locate: impl FnOnce(&Transaction<'_>) -> Result<(String, Period)>,
    change: impl FnOnce(&Transaction<'_>, &str, Period) -> Result<()>,
) -> Result<Resp> {
    let (status, body, alert) = app.db.write(|tx| {
        idempotency::run(tx, user, keyed, app.clock.unix(), || {
            let (type_id, p) = locate(tx)?;
            let category =
                app.catalog
                    .category_of_type(&type_id)
                    .ok_or_else(|| Error::NotFound {
                        code: "allocation_type_not_found",
                        detail: format!("Allocation type with id '{type_id}' not found"),
                    })?;
            let (b0, a0) = allocations::category_totals(tx, user, p, &category.id)?;
            change(tx, &type_id, p)?;
            let (b1, a1) = allocations::category_totals(tx, user, p, &category.id)?;
            let alert = (a0 <= b0 && a1 > b1).then(|| Event::BudgetAlert {
                category: category.name.clone(),
                month: p.month,
                year: p.year,
                budget: b1.to_number(),
                actual: a1.to_number(),
            });
            Ok((200, json_bytes(&json!({ "message": reply }))?, alert))
        })
    })?;
    app.views.invalidate_user(user);
    if let Some(event) = alert.flatten() {
        app.events.publish(user, event);
    }
    Ok(Resp::bytes(status, "application/json", body))
}

struct TypeId(String);

impl FromJson for TypeId {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        string_within(v, 1, 64).map(TypeId)
    }
}

#[derive(Serialize, ToSchema)]
pub struct SetBudgetRequest {
    /// One of the catalogue's allocation types (`GET /allocations`); another UUID is a 404.
    #[schema(format = "uuid")]
    pub allocation_type_id: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub budget_amount: f64,
    #[schema(minimum = 1, maximum = 12)]
    pub month: Option<u32>,
    #[schema(minimum = 2020, maximum = 2100)]
    pub year: Option<i32>,
}

#[utoipa::path(post, path = "/api/v1/allocations/budget", tag = "allocations", security(("bearer" = [])),
    request_body = SetBudgetRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
             description = "1 to 255 visible ASCII characters. A retry with the same key and body gets the first answer and changes nothing")),
    responses((status = 200, body = Message), (status = 401), (status = 404, description = "`allocation_type_not_found`"), (status = 422)))]
pub fn set_budget(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let type_id = f.required::<TypeId>("allocation_type_id");
    let amount = f.required::<NonNegative>("budget_amount");
    let p = Period::from_fields(app, &mut f);
    f.finish()?;
    let (TypeId(type_id), NonNegative(amount), p) = (type_id?, amount?, p?);
    let keyed = Keyed::of(req)?;
    let now = app.clock.iso();
    allocation_write(
        app,
        &me.user.id,
        keyed.as_ref(),
        "Budget set successfully",
        |_| Ok((type_id.clone(), p)),
        |tx, t, p| {
            allocations::upsert(
                tx,
                &app.catalog,
                &me.user.id,
                t,
                p,
                Change::Budget(amount),
                &now,
            )
        },
    )
}

impl FromJson for Mode {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        match v.as_str() {
            Some("set") => Ok(Mode::Set),
            Some("add") => Ok(Mode::Add),
            _ => Err(Invalid::new("Input should be 'set' or 'add'", "enum")),
        }
    }
}

struct Notes(String);

impl FromJson for Notes {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        string_within(v, 0, 1000).map(Notes)
    }
}

#[derive(Serialize, ToSchema)]
pub struct RecordActualRequest {
    /// One of the catalogue's allocation types (`GET /allocations`); another UUID is a 404.
    #[schema(format = "uuid")]
    pub allocation_type_id: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub actual_amount: f64,
    #[schema(max_length = 1000)]
    pub notes: Option<String>,
    /// `set` (default) replaces, `add` adds.
    pub mode: Option<ActualMode>,
    #[schema(minimum = 1, maximum = 12)]
    pub month: Option<u32>,
    #[schema(minimum = 2020, maximum = 2100)]
    pub year: Option<i32>,
}

/// How `actual_amount` is recorded (documentation only; `Mode` is what the handler parses).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActualMode {
    Set,
    Add,
}

#[utoipa::path(post, path = "/api/v1/allocations/actual", tag = "allocations", security(("bearer" = [])),
    request_body = RecordActualRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
             description = "1 to 255 visible ASCII characters. A retry with the same key and body gets the first answer and changes nothing")),
    responses((status = 200, body = Message), (status = 401), (status = 404), (status = 422)))]
pub fn record_actual(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let type_id = f.required::<TypeId>("allocation_type_id");
    let amount = f.required::<NonNegative>("actual_amount");
    let notes = f.optional::<Notes>("notes");
    let mode = f.optional::<Mode>("mode");
    let p = Period::from_fields(app, &mut f);
    f.finish()?;
    let (TypeId(type_id), NonNegative(amount), notes, mode, p) =
        (type_id?, amount?, notes?, mode?, p?);
    let now = app.clock.iso();
    let change = || Change::Actual {
        amount,
        mode: mode.unwrap_or(Mode::Set),
        notes: notes.as_ref().map(|n| n.0.as_str()),
    };
    let keyed = Keyed::of(req)?;
    allocation_write(
        app,
        &me.user.id,
        keyed.as_ref(),
        "Actual amount recorded successfully",
        |_| Ok((type_id.clone(), p)),
        |tx, t, p| allocations::upsert(tx, &app.catalog, &me.user.id, t, p, change(), &now),
    )
}

#[utoipa::path(put, path = "/api/v1/allocations/{allocation_id}", tag = "allocations", security(("bearer" = [])),
    params(("allocation_id" = String, Path,),
           ("budget_amount" = Option<f64>, Query, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01,
            description = "At most 2 decimals. These three may come in a JSON body instead"),
           ("actual_amount" = Option<f64>, Query, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01),
           ("notes" = Option<String>, Query, max_length = 1000)),
    responses((status = 200, body = Message), (status = 401), (status = 404, description = "Allocation not found (also another user's)"), (status = 422)))]
pub fn put_allocation(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    // The app sends query parameters; other clients a JSON body.
    let mut f = if req.body.iter().all(u8::is_ascii_whitespace) {
        Fields::query(req)
    } else {
        Fields::body(req)?
    };
    let budget = f.optional::<NonNegative>("budget_amount");
    let actual = f.optional::<NonNegative>("actual_amount");
    let notes = f.optional::<Notes>("notes");
    f.finish()?;
    let (budget, actual, notes) = (budget?.map(|m| m.0), actual?.map(|m| m.0), notes?);
    let id = req.param("allocation_id");
    let now = app.clock.iso();
    allocation_write(
        app,
        &me.user.id,
        None,
        "Allocation updated successfully",
        |tx| allocations::locate(tx, &me.user.id, id)?.ok_or_else(allocations::not_found),
        |tx, _, _| {
            allocations::update(
                tx,
                &me.user.id,
                id,
                budget,
                actual,
                notes.as_ref().map(|n| n.0.as_str()),
                &now,
            )
        },
    )
}

#[utoipa::path(delete, path = "/api/v1/allocations/{allocation_id}", tag = "allocations", security(("bearer" = [])),
    params(("allocation_id" = String, Path,)),
    responses((status = 200, body = Message), (status = 401), (status = 404)))]
pub fn delete_allocation(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let id = req.param("allocation_id");
    allocation_write(
        app,
        &me.user.id,
        None,
        "Allocation deleted successfully",
        |tx| allocations::locate(tx, &me.user.id, id)?.ok_or_else(allocations::not_found),
        |tx, _, _| allocations::delete(tx, &me.user.id, id),
    )
}

#[utoipa::path(get, path = "/api/v1/monthly-budget", tag = "allocations", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = monthly::MonthlyBudgetResponse), (status = 401), (status = 422)))]
pub fn get_monthly_budget(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(app, req)?;
    let bytes = app
        .views
        .get_or_compute(&app.metrics, &me.user.id, p, View::Monthly, || {
            let m = app
                .db
                .read(|c| monthly::monthly_budget(c, &app.catalog, &me.user.id, p))?;
            json_bytes(&m)
        })?;
    Ok(Resp::bytes(200, "application/json", bytes.to_vec()))
}

struct Category(String);

impl FromJson for Category {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        string_within(v, 1, 50).map(Category)
    }
}

struct Label(String);

impl FromJson for Label {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        string_within(v, 1, 200).map(Label)
    }
}

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
pub struct CreateTransactionRequest {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: Kind,
    #[schema(min_length = 1, max_length = 50)]
    pub category: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub amount: f64,
    #[schema(min_length = 1, max_length = 200)]
    pub label: String,
    /// An ISO 8601 date or date-time, in 2020..2100. Without an offset it is the user's wall
    /// clock in `APP_TIMEZONE`; it is stored and echoed as the UTC instant.
    #[schema(schema_with = tx_date_schema, example = "2025-10-18")]
    pub transaction_date: String,
}

#[utoipa::path(post, path = "/api/v1/transactions", tag = "transactions", security(("bearer" = [])),
    request_body = CreateTransactionRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
             description = "1 to 255 visible ASCII characters. A retried POST with the same key returns the first response")),
    responses((status = 201, body = transactions::TransactionResponse), (status = 401),
              (status = 422, description = "Bad field, or `idempotency_key_reused`")))]
pub fn create_transaction(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let keyed = Keyed::of(req)?;
    let mut f = Fields::body(req)?;
    let kind = f.required::<Kind>("type");
    let category = f.required::<Category>("category");
    let amount = f.required::<Positive>("amount");
    let label = f.required::<Label>("label");
    let date = f.required::<TxDate>("transaction_date");
    f.finish()?;
    let new = NewTransaction {
        kind: kind?,
        category: category?.0,
        amount: amount?.0,
        label: label?.0,
        date: date?,
    };
    let (status, bytes, _) = app.db.write(|tx| {
        idempotency::run(tx, &me.user.id, keyed.as_ref(), app.clock.unix(), || {
            let created = transactions::create(
                tx,
                &app.config.app_timezone,
                &me.user.id,
                &new,
                &app.clock.iso(),
            )?;
            Ok((201, json_bytes(&created)?, ()))
        })
    })?;
    app.views.invalidate_user(&me.user.id);
    Ok(Resp::bytes(status, "application/json", bytes))
}

struct Limit(u32);

impl FromJson for Limit {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        let n = i64::from_json(v)?;
        if !(1..=200).contains(&n) {
            return Err(Invalid::new(
                "Input should be between 1 and 200",
                "value_error",
            ));
        }
        Ok(Limit(n as u32))
    }
}

struct Offset(u32);

impl FromJson for Offset {
    fn from_json(v: &serde_json::Value) -> std::result::Result<Self, Invalid> {
        let n = i64::from_json(v)?;
        if !(0..=1_000_000).contains(&n) {
            return Err(Invalid::new(
                "Input should be between 0 and 1000000",
                "value_error",
            ));
        }
        Ok(Offset(n as u32))
    }
}

#[utoipa::path(get, path = "/api/v1/transactions", tag = "transactions", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month. Not with from/to"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year. Not with from/to"),
           ("from" = Option<String>, Query, format = Date, example = "2025-10-01",
            description = "First day (YYYY-MM-DD, a local date in APP_TIMEZONE, 2020..2100), inclusive. Needs `to`; not with month/year"),
           ("to" = Option<String>, Query, format = Date, example = "2025-10-31",
            description = "Last day (YYYY-MM-DD, local), inclusive, not before `from` and at most 366 days after it. Needs `from`"),
           ("type" = Option<Kind>, Query,), ("category" = Option<String>, Query, min_length = 1, max_length = 50),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "1..200, default 100"),
           ("offset" = Option<u32>, Query, minimum = 0, maximum = 1000000)),
    responses((status = 200, description = "A bare array, newest transaction_date first", body = [transactions::TransactionResponse]),
              (status = 401), (status = 422)))]
pub fn list_transactions(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let window = list_window(app, &mut f);
    let kind = f.optional::<Kind>("type");
    let category = f.optional::<Category>("category");
    let limit = f.optional::<Limit>("limit");
    let offset = f.optional::<Offset>("offset");
    f.finish()?;
    let filter = Filter {
        window: window?,
        kind: kind?,
        category: category?.map(|c| c.0),
        limit: limit?.map(|l| l.0).unwrap_or(100),
        offset: offset?.map(|o| o.0).unwrap_or(0),
    };
    let rows = app
        .db
        .read(|c| transactions::list(c, &me.user.id, &filter))?;
    Ok(Resp::json(200, &rows))
}

/// `from`/`to` when either is given (never together with `month`/`year`), else the month.
fn list_window(app: &App, f: &mut Fields) -> Result<Window> {
    let month_or_year = f.has("month") || f.has("year");
    match DayRange::from_fields(&app.config.app_timezone, f)? {
        None => Period::from_fields(app, f).map(Window::Month),
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
pub struct BalanceResponse {
    pub month: u32,
    pub year: i32,
    #[schema(value_type = f64)]
    pub current_balance: Money,
    #[schema(value_type = f64)]
    pub total_income: Money,
    #[schema(value_type = f64)]
    pub total_expense: Money,
    pub transaction_count: i64,
}

#[utoipa::path(get, path = "/api/v1/transactions/balance", tag = "transactions", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = BalanceResponse), (status = 401), (status = 422)))]
pub fn get_balance(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(app, req)?;
    let t = app.db.read(|c| transactions::totals(c, &me.user.id, p))?;
    Ok(Resp::json(
        200,
        &BalanceResponse {
            month: p.month,
            year: p.year,
            current_balance: Money(t.total_income.0 - t.total_expense.0),
            total_income: t.total_income,
            total_expense: t.total_expense,
            transaction_count: t.transaction_count,
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub struct PatchTransactionRequest {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: Option<Kind>,
    #[schema(min_length = 1, max_length = 50)]
    pub category: Option<String>,
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub amount: Option<f64>,
    #[schema(min_length = 1, max_length = 200)]
    pub label: Option<String>,
    /// As in a new transaction; null is the same as absent.
    #[schema(schema_with = tx_date_or_null_schema)]
    pub transaction_date: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path,)), request_body = PatchTransactionRequest,
    responses((status = 200, body = transactions::TransactionResponse), (status = 401),
              (status = 404, description = "Transaction not found (also another user's)"), (status = 422)))]
pub fn patch_transaction(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let kind = f.optional::<Kind>("type");
    let category = f.optional::<Category>("category");
    let amount = f.optional::<Positive>("amount");
    let label = f.optional::<Label>("label");
    let date = f.optional::<TxDate>("transaction_date");
    f.finish()?;
    let changes = Changes {
        kind: kind?,
        category: category?.map(|c| c.0),
        amount: amount?.map(|a| a.0),
        label: label?.map(|l| l.0),
        date: date?,
    };
    let id = req.param("id");
    let updated = app.db.write(|tx| {
        transactions::update(
            tx,
            &app.config.app_timezone,
            &me.user.id,
            id,
            &changes,
            &app.clock.iso(),
        )
    })?;
    app.views.invalidate_user(&me.user.id);
    Ok(Resp::json(200, &updated))
}

#[derive(Serialize, ToSchema)]
pub struct DeletedTransaction {
    pub message: String,
    pub transaction_id: String,
}

#[utoipa::path(delete, path = "/api/v1/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path,)),
    responses((status = 200, body = DeletedTransaction), (status = 401), (status = 404)))]
pub fn delete_transaction(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let id = req.param("id");
    app.db
        .write(|tx| transactions::delete(tx, &me.user.id, id, &app.clock.iso()))?;
    app.views.invalidate_user(&me.user.id);
    Ok(Resp::json(
        200,
        &DeletedTransaction {
            message: "Transaction deleted successfully".into(),
            transaction_id: id.to_string(),
        },
    ))
}
