//! `/monthly-budget`: the month's balance split by the category targets.

use super::{json_bytes, this_month};
use crate::app::App;
use crate::auth::require_user;
use crate::budget::cache::View;
use crate::budget::monthly;
use crate::budget::period::Period;
use crate::error::Result;
use crate::http::{Req, Resp};

#[utoipa::path(get, path = "/api/v1/monthly-budget", tag = "allocations", security(("bearer" = [])),
    params(("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1..12, default: this month"),
           ("year" = Option<i32>, Query, minimum = 2020, maximum = 2100, description = "2020..2100, default: this year")),
    responses((status = 200, body = monthly::MonthlyBudgetResponse), (status = 401), (status = 422)))]
pub(crate) fn get_monthly_budget(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = Period::from_query(req, this_month(app))?;
    crate::sync::etag::respond(app, req, &me.user.id, View::Monthly(p), || {
        let m = app
            .db
            .read(|c| monthly::monthly_budget(c, &app.catalog, &me.user.id, p))?;
        json_bytes(&m)
    })
}
