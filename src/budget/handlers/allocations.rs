//! `/allocations...`: a user's budget and actual amount per allocation type and month.

use rusqlite::Transaction;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{Message, json_bytes, this_month, write};
use crate::app::App;
use crate::auth::require_user;
use crate::budget::alerts;
use crate::budget::allocations::{self, Change, Mode};
use crate::budget::cache::View;
use crate::budget::idempotency::{self, Keyed};
use crate::budget::money::{Money, NonNegative};
use crate::budget::period::Period;
use crate::budget::rollover;
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::input::{Count, Fields, FromJson, Invalid, Text};

#[utoipa::path(get, path = "/api/v1/allocations", tag = "allocations", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = allocations::AllocationSummaryResponse), (status = 401), (status = 422)))]
pub(crate) fn get_allocations(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(req, this_month(app))?;
    crate::sync::etag::respond(app, req, &me.user.id, View::Allocations(p), || {
        let s = app
            .db
            .read(|c| allocations::summary(c, &app.catalog, &me.user.id, p))?;
        json_bytes(&s)
    })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SummaryResponse {
    pub(crate) month: u32,
    pub(crate) year: i32,
    #[schema(value_type = f64)]
    pub(crate) total_budget: Money,
    #[schema(value_type = f64)]
    pub(crate) total_actual: Money,
    #[schema(value_type = f64)]
    pub(crate) difference: Money,
    pub(crate) on_track: bool,
    #[schema(value_type = f64)]
    pub(crate) utilization_percentage: crate::budget::money::Percent,
    /// Σ carry_in of the month's types (rollover).
    #[schema(value_type = f64)]
    pub(crate) total_carry_in: Money,
    /// total_budget + total_carry_in − total_actual
    #[schema(value_type = f64)]
    pub(crate) total_available: Money,
}

#[utoipa::path(get, path = "/api/v1/allocations/summary", tag = "allocations", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = SummaryResponse), (status = 401), (status = 422)))]
pub(crate) fn get_summary(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(req, this_month(app))?;
    let view = app.db.read(|c| rollover::month_view(c, &me.user.id, p))?;
    let pairs = view
        .rows
        .values()
        .map(|r| Ok((r.budget, r.actual()?)))
        .collect::<Result<Vec<_>>>()?;
    let (budget, actual, difference) = allocations::totals(pairs.into_iter())?;
    let carry_in = Money::total(view.carries.values().map(|c| c.carry_in))
        .ok_or_else(crate::budget::money::overflow)?;
    Ok(Resp::json(
        200,
        &SummaryResponse {
            month: p.month,
            year: p.year,
            total_budget: budget,
            total_actual: actual,
            difference,
            on_track: actual <= budget,
            utilization_percentage: allocations::utilization(actual, budget),
            total_carry_in: carry_in,
            total_available: allocations::available(budget, carry_in, actual)?,
        },
    ))
}

type MonthsWindow = Count<1, 24>;

#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryResponse {
    pub(crate) history: Vec<allocations::MonthTotals>,
}

#[utoipa::path(get, path = "/api/v1/allocations/history", tag = "allocations", security(("bearer" = [])),
    params(("months" = Option<u32>, Query, minimum = 1, maximum = 24, description = "1..24, default 6"),
           ("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "The newest month of the window (default: this month)"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = HistoryResponse), (status = 401), (status = 422)))]
pub(crate) fn get_history(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let months = f.optional::<MonthsWindow>("months");
    let p = Period::from_fields(&mut f, this_month(app));
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
pub(crate) fn get_category(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(req, this_month(app))?;
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
    let now = app.clock.iso();
    let (status, body, alert) = write(app, user, |tx| {
        idempotency::run(tx, user, keyed, app.clock.unix(), || {
            let (type_id, p) = locate(tx)?;
            let watch = alerts::watch(tx, &app.catalog, user, &type_id, p)?;
            change(tx, &type_id, p)?;
            let alert = alerts::check(tx, user, watch, &now)?;
            Ok((200, json_bytes(&json!({ "message": reply }))?, alert))
        })
    })?;
    if let Some(event) = alert.flatten() {
        app.events.publish(user, event);
    }
    Ok(Resp::bytes(status, "application/json", body))
}

type TypeId = Text<1, 64>;

#[derive(Serialize, ToSchema)]
pub(crate) struct SetBudgetRequest {
    /// One of the catalogue's allocation types (`GET /allocations`); another UUID is a 404.
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) budget_amount: f64,
    #[schema(minimum = 1, maximum = 12)]
    pub(crate) month: Option<u32>,
    #[schema(minimum = 2020, maximum = 2100)]
    pub(crate) year: Option<i32>,
}

#[utoipa::path(post, path = "/api/v1/allocations/budget", tag = "allocations", security(("bearer" = [])),
    request_body = SetBudgetRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
             description = "1 to 255 visible ASCII characters. A retry with the same key and body gets the first answer and changes nothing")),
    responses((status = 200, body = Message), (status = 401), (status = 404, description = "`allocation_type_not_found`"), (status = 422)))]
pub(crate) fn set_budget(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let type_id = f.required::<TypeId>("allocation_type_id");
    let amount = f.required::<NonNegative>("budget_amount");
    let p = Period::from_fields(&mut f, this_month(app));
    f.finish()?;
    let (Text(type_id), NonNegative(amount), p) = (type_id?, amount?, p?);
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

type Notes = Text<0, 1000>;

#[derive(Serialize, ToSchema)]
pub(crate) struct RecordActualRequest {
    /// One of the catalogue's allocation types (`GET /allocations`); another UUID is a 404.
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) actual_amount: f64,
    #[schema(max_length = 1000)]
    pub(crate) notes: Option<String>,
    /// `set` (default) replaces, `add` adds.
    pub(crate) mode: Option<ActualMode>,
    #[schema(minimum = 1, maximum = 12)]
    pub(crate) month: Option<u32>,
    #[schema(minimum = 2020, maximum = 2100)]
    pub(crate) year: Option<i32>,
}

/// How `actual_amount` is recorded (documentation only; `Mode` is what the handler parses).
#[allow(dead_code)] // built only as an OpenAPI schema
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ActualMode {
    Set,
    Add,
}

#[utoipa::path(post, path = "/api/v1/allocations/actual", tag = "allocations", security(("bearer" = [])),
    request_body = RecordActualRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
             description = "1 to 255 visible ASCII characters. A retry with the same key and body gets the first answer and changes nothing")),
    responses((status = 200, body = Message), (status = 401), (status = 404), (status = 422)))]
pub(crate) fn record_actual(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let type_id = f.required::<TypeId>("allocation_type_id");
    let amount = f.required::<NonNegative>("actual_amount");
    let notes = f.optional::<Notes>("notes");
    let mode = f.optional::<Mode>("mode");
    let p = Period::from_fields(&mut f, this_month(app));
    f.finish()?;
    let (Text(type_id), NonNegative(amount), notes, mode, p) =
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
pub(crate) fn put_allocation(app: &App, req: &Req) -> Result<Resp> {
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
pub(crate) fn delete_allocation(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let id = req.param("allocation_id");
    let now = app.clock.iso();
    allocation_write(
        app,
        &me.user.id,
        None,
        "Allocation deleted successfully",
        |tx| allocations::locate(tx, &me.user.id, id)?.ok_or_else(allocations::not_found),
        |tx, _, _| allocations::delete(tx, &me.user.id, id, &now),
    )
}
