//! `GET /api/v1/sync`: one page of a user's changes since a cursor.

use std::sync::LazyLock;

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

/// The common poll's answer, a cursor that is already the user's counter (`known.rs`): the
/// same cursor back and no changes, with the empty `changes` serialized once.
fn up_to_date(cursor: &str) -> Resp {
    static NO_CHANGES: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string(&Changes::default()).unwrap_or_else(|_| "{}".into())
    });
    // A decoded cursor is `encode`'s output: hex digits and dots, nothing to escape.
    let body = format!(
        r#"{{"cursor":"{cursor}","has_more":false,"changes":{}}}"#,
        *NO_CHANGES
    );
    Resp::bytes(200, "application/json", body.into_bytes())
}

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
    let cursor = cursor?;
    let after = match &cursor {
        Some(c) => Some(super::cursor::decode(&app.sync, &me.user.id, &c.0)?),
        None => None,
    };
    if let (Some(after), Some(sent)) = (after, &cursor)
        && app.known.get(&me.user.id) == Some(after)
    {
        return Ok(up_to_date(&sent.0));
    }
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
    app.known.observe(&me.user.id, page.counter);
    Ok(Resp::json(
        200,
        &SyncResponse {
            cursor: super::cursor::encode(&app.sync, &me.user.id, page.upto),
            has_more: page.has_more,
            changes: page.changes,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prebuilt_up_to_date_answer_is_what_the_general_path_would_send() {
        let resp = up_to_date("0011223344556677.42.00112233445566778899aabb");
        let general = serde_json::to_value(SyncResponse {
            cursor: "0011223344556677.42.00112233445566778899aabb".into(),
            has_more: false,
            changes: Changes::default(),
        })
        .unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(sent, general);
        assert_eq!(
            sent["changes"]["transactions"]["deleted"],
            serde_json::json!([])
        );
    }
}
