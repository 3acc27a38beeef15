//! `GET /api/v1/sync`: one page of a user's changes since a cursor.

use serde::Serialize;
use utoipa::ToSchema;

use super::pull::{self, Ask, Changes};
use crate::app::App;
use crate::auth::require_user;
use crate::error::Result;
use crate::http::{Req, Resp};
use crate::input::{Count, Fields, Text};

#[derive(Serialize, ToSchema)]
pub(crate) struct SyncResponse {
    /// Opaque; send it back as `cursor` for the changes after this page.
    pub(crate) cursor: String,
    /// More changes follow: call again with `cursor` at once.
    pub(crate) has_more: bool,
    pub(crate) changes: Changes,
}

type Limit = Count<1, 1000>;

#[utoipa::path(get, path = "/api/v1/sync", tag = "sync", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, min_length = 1, max_length = 200, description = "From the last page; none: everything"),
           ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Rows over all kinds, 1..1000, default 500")),
    responses((status = 200, body = SyncResponse), (status = 401),
              (status = 410, description = "`cursor_reset` (before a restore, or ahead of the server) or `cursor_expired` (older than the 90 days deletions are kept): sync again without a cursor"),
              (status = 422, description = "A malformed cursor or limit")))]
pub(crate) fn get_sync(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::query(req);
    let cursor = f.optional::<Text<1, 200>>("cursor");
    let limit = f.optional::<Limit>("limit");
    f.finish()?;
    let after = match cursor? {
        Some(c) => Some(super::cursor::decode(&app.sync, &me.user.id, &c.0)?),
        None => None,
    };
    let ask = Ask {
        after,
        limit: limit?.map(|l| l.0).unwrap_or(500),
        today: app
            .clock
            .now()
            .to_zoned(app.config.app_timezone.clone())
            .date(),
    };
    let page = app.db.read(|c| pull::page(c, &me.user.id, &ask))?;
    Ok(Resp::json(
        200,
        &SyncResponse {
            cursor: super::cursor::encode(&app.sync, &me.user.id, page.upto),
            has_more: page.has_more,
            changes: page.changes,
        },
    ))
}
