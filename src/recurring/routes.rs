//! `/recurring...`: the user's recurring rules, the upcoming view, and skipping or confirming
//! an occurrence.
//! Parse, call `rules`, answer. Writes go through the money handlers' `write`, so each one is
//! a single database transaction that also drops the user's cached views.

use jiff::civil::Date;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::post::{self, Place};
use super::rules::{self, Changes, Item, RuleResponse, Spec, Stamp};
use super::schedule::Frequency;
use crate::app::App;
use crate::auth::require_user;
use crate::budget::cache::View;
use crate::budget::dates::LocalDate;
use crate::budget::handlers::{Message, json_bytes, write};
use crate::budget::money::Positive;
use crate::budget::transactions::{Kind, TransactionResponse};
use crate::error::Result;
use crate::http::{Req, Resp};
use crate::input::{Count, Fields, FromJson, Invalid, Text};

type Category = Text<1, 50>;

type Label = Text<1, 200>;

type TypeId = Text<1, 64>;

type Occurrences = Count<1, 600>;

type RemindDays = Count<0, 30>;

type Days = Count<1, 366>;

impl FromJson for Frequency {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        v.as_str().and_then(Frequency::parse).ok_or_else(|| {
            let names: Vec<String> = Frequency::ALL
                .iter()
                .map(|f| format!("'{}'", f.as_str()))
                .collect();
            Invalid::new(format!("Input should be {}", names.join(", ")), "enum")
        })
    }
}

/// `auto_post`: a JSON boolean only (the document says boolean; `"true"` is refused).
struct Flag(bool);

impl FromJson for Flag {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        v.as_bool()
            .map(Flag)
            .ok_or_else(|| Invalid::new("Input should be a valid boolean", "bool_type"))
    }
}

/// Today on the user's calendar: the app clock's date in `APP_TIMEZONE`.
fn today(app: &App) -> Date {
    app.clock
        .now()
        .to_zoned(app.config.app_timezone.clone())
        .date()
}

fn stamp(app: &App) -> (Date, String) {
    (today(app), app.clock.iso())
}

#[derive(Serialize, ToSchema)]
#[schema(as = RecurringRuleRequest)]
pub(crate) struct CreateRequest {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Kind,
    #[schema(min_length = 1, max_length = 50)]
    pub(crate) category: String,
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) label: String,
    /// A number or a numeric string, at most 2 decimals.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) amount: f64,
    /// One of the catalogue's allocation types (expenses only); another id is a 404.
    #[schema(min_length = 1, max_length = 64)]
    pub(crate) allocation_type_id: Option<String>,
    pub(crate) frequency: Frequency,
    /// A local date (YYYY-MM-DD, 2020..2100).
    #[schema(format = Date, pattern = r"^(20[2-9][0-9]|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$", example = "2025-01-31")]
    pub(crate) start_date: String,
    /// The last possible date, not before `start_date`; not with `occurrences`.
    #[schema(format = Date, pattern = r"^(20[2-9][0-9]|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub(crate) end_date: Option<String>,
    /// How many occurrences in all; not with `end_date`.
    #[schema(minimum = 1, maximum = 600)]
    pub(crate) occurrences: Option<u32>,
    /// Default false.
    pub(crate) auto_post: Option<bool>,
    /// Default 2.
    #[schema(minimum = 0, maximum = 30)]
    pub(crate) remind_days_before: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/recurring", tag = "recurring", security(("bearer" = [])),
    request_body = CreateRequest,
    responses((status = 201, body = RuleResponse), (status = 401),
              (status = 404, description = "`allocation_type_not_found`"),
              (status = 422, description = "A bad field (named), or `allocation_requires_expense`")))]
pub(crate) fn create_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let kind = f.required::<Kind>("type");
    let category = f.required::<Category>("category");
    let label = f.required::<Label>("label");
    let amount = f.required::<Positive>("amount");
    let type_id = f.optional::<TypeId>("allocation_type_id");
    let frequency = f.required::<Frequency>("frequency");
    let start = f.required::<LocalDate>("start_date");
    let end = f.optional::<LocalDate>("end_date");
    let occurrences = f.optional::<Occurrences>("occurrences");
    let auto_post = f.optional::<Flag>("auto_post");
    let remind = f.optional::<RemindDays>("remind_days_before");
    f.finish()?;
    let spec = Spec {
        kind: kind?,
        category: category?.0,
        label: label?.0,
        amount: amount?.0,
        allocation_type_id: type_id?.map(|t| t.0),
        frequency: frequency?,
        start_date: start?.0,
        end_date: end?.map(|d| d.0),
        occurrences: occurrences?.map(|n| n.0),
        auto_post: auto_post?.is_some_and(|a| a.0),
        remind_days_before: remind?.map_or(2, |n| n.0),
    }
    .checked(&app.catalog, |_| true)?;
    let (today, now) = stamp(app);
    let at = Stamp { today, now: &now };
    let rule = write(app, &me.user.id, |tx| {
        rules::create(tx, &me.user.id, &spec, &at)
    })?;
    Ok(Resp::json(201, &rule))
}

#[derive(Serialize, ToSchema)]
#[schema(as = RecurringRules)]
pub(crate) struct RuleList {
    /// By `next_date`, rules without one last.
    pub(crate) rules: Vec<RuleResponse>,
}

#[utoipa::path(get, path = "/api/v1/recurring", tag = "recurring", security(("bearer" = [])),
    responses((status = 200, body = RuleList), (status = 401)))]
pub(crate) fn list_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let today = today(app);
    let rules = app.db.read(|c| rules::list(c, &me.user.id, today))?;
    Ok(Resp::json(200, &RuleList { rules }))
}

#[utoipa::path(get, path = "/api/v1/recurring/{id}", tag = "recurring", security(("bearer" = [])),
    params(("id" = String, Path,)),
    responses((status = 200, body = RuleResponse), (status = 401),
              (status = 404, description = "`recurring_not_found` (also another user's)")))]
pub(crate) fn get_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let today = today(app);
    let rule = app
        .db
        .read(|c| rules::get(c, &me.user.id, req.param("id"), today))?;
    Ok(Resp::json(200, &rule))
}

#[derive(Serialize, ToSchema)]
#[schema(as = RecurringRulePatch)]
pub(crate) struct PatchRequest {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub(crate) kind: Option<Kind>,
    #[schema(min_length = 1, max_length = 50)]
    pub(crate) category: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) label: Option<String>,
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) amount: Option<f64>,
    /// null unlinks.
    #[schema(min_length = 1, max_length = 64)]
    pub(crate) allocation_type_id: Option<String>,
    pub(crate) frequency: Option<Frequency>,
    #[schema(format = Date, pattern = r"^(20[2-9][0-9]|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub(crate) start_date: Option<String>,
    /// null removes the end date.
    #[schema(format = Date, pattern = r"^(20[2-9][0-9]|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub(crate) end_date: Option<String>,
    /// null removes the count.
    #[schema(minimum = 1, maximum = 600)]
    pub(crate) occurrences: Option<u32>,
    pub(crate) auto_post: Option<bool>,
    #[schema(minimum = 0, maximum = 30)]
    pub(crate) remind_days_before: Option<u32>,
}

/// A nullable field of a PATCH: absent is `None`, `null` is `Some(None)`.
fn nullable<T: FromJson>(f: &mut Fields, name: &str) -> Result<Option<Option<T>>> {
    if f.is_null(name) {
        return Ok(Some(None));
    }
    Ok(f.optional::<T>(name)?.map(Some))
}

#[utoipa::path(patch, path = "/api/v1/recurring/{id}", tag = "recurring", security(("bearer" = [])),
    params(("id" = String, Path,)), request_body = PatchRequest,
    responses((status = 200, body = RuleResponse), (status = 401),
              (status = 404, description = "`recurring_not_found` (also another user's), or `allocation_type_not_found`"),
              (status = 422, description = "A bad field (named), or `allocation_requires_expense`")))]
pub(crate) fn patch_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let kind = f.optional::<Kind>("type");
    let category = f.optional::<Category>("category");
    let label = f.optional::<Label>("label");
    let amount = f.optional::<Positive>("amount");
    let type_id = nullable::<TypeId>(&mut f, "allocation_type_id");
    let frequency = f.optional::<Frequency>("frequency");
    let start = f.optional::<LocalDate>("start_date");
    let end = nullable::<LocalDate>(&mut f, "end_date");
    let occurrences = nullable::<Occurrences>(&mut f, "occurrences");
    let auto_post = f.optional::<Flag>("auto_post");
    let remind = f.optional::<RemindDays>("remind_days_before");
    f.finish()?;
    let changes = Changes {
        kind: kind?,
        category: category?.map(|c| c.0),
        label: label?.map(|l| l.0),
        amount: amount?.map(|a| a.0),
        allocation_type_id: type_id?.map(|t| t.map(|t| t.0)),
        frequency: frequency?,
        start_date: start?.map(|d| d.0),
        end_date: end?.map(|d| d.map(|d| d.0)),
        occurrences: occurrences?.map(|n| n.map(|n| n.0)),
        auto_post: auto_post?.map(|a| a.0),
        remind_days_before: remind?.map(|n| n.0),
    };
    let (today, now) = stamp(app);
    let at = Stamp { today, now: &now };
    let rule = write(app, &me.user.id, |tx| {
        rules::update(tx, &app.catalog, &me.user.id, req.param("id"), changes, &at)
    })?;
    Ok(Resp::json(200, &rule))
}

#[utoipa::path(delete, path = "/api/v1/recurring/{id}", tag = "recurring", security(("bearer" = [])),
    params(("id" = String, Path,)),
    responses((status = 200, body = Message, description = "Deleted; the transactions it posted stay"),
              (status = 401), (status = 404, description = "`recurring_not_found` (also another user's)")))]
pub(crate) fn delete_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    write(app, &me.user.id, |tx| {
        rules::delete(tx, &me.user.id, req.param("id"))
    })?;
    Ok(Resp::json(
        200,
        &Message {
            message: "Recurring transaction deleted".into(),
        },
    ))
}

#[derive(Serialize, ToSchema)]
#[schema(as = UpcomingOccurrences)]
pub(crate) struct UpcomingList {
    /// By date, then rule id.
    pub(crate) items: Vec<Item>,
}

#[utoipa::path(get, path = "/api/v1/recurring/upcoming", tag = "recurring", security(("bearer" = [])),
    params(("days" = Option<u32>, Query, minimum = 1, maximum = 366,
            description = "How many days after today, 1..366 (default 30); the view starts 31 days before today")),
    responses((status = 200, body = UpcomingList), (status = 401), (status = 422)))]
pub(crate) fn upcoming_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let days = f.optional::<Days>("days");
    f.finish()?;
    let days = days?.map_or(30, |d| d.0);
    let today = today(app);
    let view = View::Upcoming { today, days };
    let bytes = app
        .views
        .get_or_compute(&app.metrics, &me.user.id, view, || {
            let items = app
                .db
                .read(|c| rules::upcoming(c, &me.user.id, today, days))?;
            json_bytes(&UpcomingList { items })
        })?;
    Ok(Resp::bytes(200, "application/json", bytes.to_vec()))
}

#[derive(Serialize, ToSchema)]
#[schema(as = SkipOccurrence)]
pub(crate) struct SkipRequest {
    /// An occurrence date of the rule (YYYY-MM-DD).
    #[schema(format = Date, pattern = r"^(20[2-9][0-9]|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub(crate) date: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = OccurrenceSkipped)]
pub(crate) struct Skipped {
    pub(crate) message: String,
    #[schema(format = Date)]
    pub(crate) date: String,
}

#[utoipa::path(post, path = "/api/v1/recurring/{id}/skip", tag = "recurring", security(("bearer" = [])),
    params(("id" = String, Path,)), request_body = SkipRequest,
    responses((status = 200, body = Skipped, description = "Skipped (again: the same answer)"),
              (status = 401), (status = 404, description = "`recurring_not_found` (also another user's)"),
              (status = 409, description = "`already_posted`"),
              (status = 422, description = "A bad date, or `not_an_occurrence`")))]
pub(crate) fn skip_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let date = f.required::<LocalDate>("date");
    f.finish()?;
    let date = date?.0;
    let (today, now) = stamp(app);
    let at = Stamp { today, now: &now };
    write(app, &me.user.id, |tx| {
        rules::skip(tx, &me.user.id, req.param("id"), date, &at)
    })?;
    Ok(Resp::json(
        200,
        &Skipped {
            message: "Occurrence skipped".into(),
            date: date.to_string(),
        },
    ))
}

#[derive(Serialize, ToSchema)]
#[schema(as = ConfirmOccurrence)]
pub(crate) struct ConfirmRequest {
    /// An occurrence date of the rule (YYYY-MM-DD); a future or a skipped one may be confirmed.
    #[schema(format = Date, pattern = r"^(20[2-9][0-9]|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub(crate) date: String,
    /// What was actually paid or received, if not the rule's amount. A number or a numeric
    /// string, at most 2 decimals.
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) amount: Option<f64>,
}

#[utoipa::path(post, path = "/api/v1/recurring/{id}/confirm", tag = "recurring", security(("bearer" = [])),
    params(("id" = String, Path,)), request_body = ConfirmRequest,
    responses((status = 201, body = TransactionResponse,
               description = "The transaction it posted, as `POST /transactions` answers it, dated at local midnight of the occurrence"),
              (status = 401), (status = 404, description = "`recurring_not_found` (also another user's)"),
              (status = 409, description = "`already_posted`"),
              (status = 422, description = "A bad date or amount (named), or `not_an_occurrence`")))]
pub(crate) fn confirm_recurring(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let date = f.required::<LocalDate>("date");
    let amount = f.optional::<Positive>("amount");
    f.finish()?;
    let (date, amount) = (date?.0, amount?.map(|a| a.0));
    let (today, now) = stamp(app);
    let stamp = Stamp { today, now: &now };
    let at = Place {
        catalog: &app.catalog,
        tz: &app.config.app_timezone,
        now: &now,
    };
    let user = &me.user.id;
    let posted = write(app, user, |tx| {
        post::confirm(tx, &at, &stamp, user, req.param("id"), date, amount)
    })?;
    for e in posted.events {
        app.events.publish(user, e);
    }
    Ok(Resp::json(201, &posted.transaction))
}
