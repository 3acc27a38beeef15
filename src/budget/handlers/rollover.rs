//! `/allocations/rollover`: a user's rollover settings (the carry itself is computed when a
//! month is read, in `budget/rollover.rs`).

use serde::Serialize;
use utoipa::ToSchema;

use super::{this_month, write};
use crate::app::App;
use crate::auth::require_user;
use crate::budget::money::NonNegative;
use crate::budget::period::Period;
use crate::budget::rollover::{self, RolloverMode, Setting, SettingOut};
use crate::error::Result;
use crate::http::{Req, Resp};
use crate::input::{Fields, Text};

type TypeId = Text<1, 64>;

/// The body of `PUT /allocations/rollover`: a carrying setting, or `none` without a cap. For
/// the document only (the handler reads `Fields`); two shapes, so the schema says that a cap
/// with `none` is refused.
#[allow(dead_code)] // built only as an OpenAPI schema
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum RolloverRequest {
    Carry(CarryRequest),
    Stop(StopRequest),
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CarryRequest {
    /// One of the catalogue's allocation types (`GET /allocations`); another UUID is a 404.
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: String,
    pub(crate) mode: CarryMode,
    /// Bounds a positive carry (no bound when absent).
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 10_000_000_000_000_f64, multiple_of = 0.01)]
    pub(crate) cap: Option<f64>,
    /// The first month the setting applies to (default: this month).
    #[schema(minimum = 1, maximum = 12)]
    pub(crate) month: Option<u32>,
    #[schema(minimum = 2020, maximum = 2100)]
    pub(crate) year: Option<i32>,
}

#[allow(dead_code)] // built only as an OpenAPI schema
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CarryMode {
    Surplus,
    Both,
}

/// Stops carrying from a month on. A `cap` here is a 422.
#[derive(Serialize, ToSchema)]
pub(crate) struct StopRequest {
    #[schema(format = "uuid")]
    pub(crate) allocation_type_id: String,
    pub(crate) mode: StopMode,
    #[schema(minimum = 1, maximum = 12)]
    pub(crate) month: Option<u32>,
    #[schema(minimum = 2020, maximum = 2100)]
    pub(crate) year: Option<i32>,
}

#[allow(dead_code)] // built only as an OpenAPI schema
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StopMode {
    None,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RolloverResponse {
    /// "Rollover updated"
    pub(crate) message: &'static str,
    #[serde(flatten)]
    pub(crate) setting: SettingOut,
}

#[utoipa::path(put, path = "/api/v1/allocations/rollover", tag = "allocations", security(("bearer" = [])),
    request_body = RolloverRequest,
    responses((status = 200, body = RolloverResponse), (status = 401), (status = 404, description = "`allocation_type_not_found`"), (status = 422)))]
pub(crate) fn put_rollover(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let type_id = f.required::<TypeId>("allocation_type_id");
    let mode = f.required::<RolloverMode>("mode");
    let cap = f.optional::<NonNegative>("cap");
    if matches!(mode, Ok(RolloverMode::None)) && f.has("cap") {
        f.reject(
            "cap",
            "A cap is not allowed with mode 'none'",
            "value_error",
        );
    }
    let p = Period::from_fields(&mut f, this_month(app));
    f.finish()?;
    let setting = Setting {
        type_id: type_id?.0,
        from: p?,
        mode: mode?,
        cap: cap?.map(|c| c.0),
    };
    let now = app.clock.iso();
    write(app, &me.user.id, |tx| {
        rollover::put(tx, &app.catalog, &me.user.id, &setting, &now)
    })?;
    Ok(Resp::json(
        200,
        &RolloverResponse {
            message: "Rollover updated",
            setting: setting.into(),
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RolloverSettings {
    /// In catalogue order, then by month.
    pub(crate) settings: Vec<SettingOut>,
}

#[utoipa::path(get, path = "/api/v1/allocations/rollover", tag = "allocations", security(("bearer" = [])),
    responses((status = 200, body = RolloverSettings), (status = 401)))]
pub(crate) fn get_rollover(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let settings = app
        .db
        .read(|c| rollover::list(c, &app.catalog, &me.user.id))?;
    Ok(Resp::json(
        200,
        &RolloverSettings {
            settings: settings.into_iter().map(SettingOut::from).collect(),
        },
    ))
}
