//! HTTP handlers for the money routes, one file per resource: parse, call the domain, map.
//! Every route needs a bearer token and works on the caller's rows only. The files are named
//! for their resource; the domain code they call lives beside this folder under the same names.

pub(crate) mod allocations;
pub(crate) mod monthly;
pub(crate) mod rollover;
pub(crate) mod transactions;

use rusqlite::Transaction;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::budget::period::Period;
use crate::error::{Error, Result};
use crate::http::Resp;
use crate::http::later::Later;

#[derive(Serialize, ToSchema)]
pub(crate) struct Message {
    pub(crate) message: String,
}

pub(crate) fn json_bytes(v: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(Error::internal)
}

/// The one way a handler writes a user's budget rows: one database transaction, then (only
/// once it has committed) the user's cached month views are invalidated, so the next read
/// computes them again. A write route cannot forget the cache.
pub(crate) fn write<T>(
    app: &App,
    user: &str,
    f: impl FnOnce(&Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let out = app.db.write(f)?;
    app.views.invalidate_user(user);
    Ok(out)
}

/// `write` through the database's group commit (`db/group.rs`), answered later
/// (`http/later.rs`): concurrent calls share one commit, and the handler thread does not
/// wait for it. Once the job committed, the user's views are invalidated and `answer` turns
/// its value into the response, on the answer thread. For the hot path, `POST /transactions`
/// (benches/money.rs).
fn write_in_group<T: Send + 'static>(
    user: &str,
    job: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    answer: impl FnOnce(&App, T) -> Result<Resp> + Send + 'static,
) -> Resp {
    let user = user.to_string();
    Resp::later(move |app: &App, later: Later<App>| {
        app.db.write_in_group_then(job, move |outcome| {
            later.finish(move |app: &App| {
                let value = outcome?;
                app.views.invalidate_user(&user);
                answer(app, value)
            })
        })
    })
}

/// The month a request's missing `month`/`year` default to: today's, in `APP_TIMEZONE`.
fn this_month(app: &App) -> Period {
    Period::containing(&app.config.app_timezone, app.clock.now())
}
