//! `/users/me/export`: every row we hold about the user, as one JSON document. Each module
//! exports the tables it owns (secrets such as password, token and code hashes are left out
//! there, money is in major units); this module only gathers them. It sits above the areas so
//! that none of them has to import the others for it.

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::api::ApiPath;
use crate::app::App;
use crate::auth::require_user;
use crate::error::Result;
use crate::http::{Req, Resp, Route};

pub(crate) fn routes() -> Vec<Route<App>> {
    vec![__path_export::route(export)]
}

#[utoipa::path(get, path = "/api/v1/users/me/export", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Every row of the user, by table", content_type = "application/json"), (status = 401)))]
pub(crate) fn export(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let doc = app
        .db
        .read(|c| document(c, &me.user.id, &app.clock.iso()))?;
    Ok(Resp::json(200, &doc).with_header(
        "Content-Disposition",
        "attachment; filename=\"wealthcoach-export.json\"",
    ))
}

/// Every user-owned table must come from one of these; tests/api/money_api.rs checks that each
/// table with a `user_id` column appears in the document.
fn document(c: &Connection, user: &str, now: &str) -> Result<Value> {
    let mut doc = Map::new();
    doc.insert("exported_at".into(), Value::from(now));
    doc.insert("user_id".into(), Value::from(user));
    let parts = [
        crate::auth::users::export(c, user)?,
        crate::profile::export::rows(c, user)?,
        crate::budget::export::export(c, user)?,
        crate::chat::records::export(c, user)?,
        crate::recurring::export(c, user)?,
        crate::notify::store::export(c, user)?,
        crate::sync::export(c, user)?,
    ];
    for (table, rows) in parts.into_iter().flatten() {
        doc.insert(table.into(), Value::Array(rows));
    }
    Ok(Value::Object(doc))
}
