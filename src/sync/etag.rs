//! ETags on the cached month views (`GET /allocations`, `/monthly-budget`, `/transactions`):
//! a hash of the epoch, the user, the user's change counter and the view (the request's
//! resolved query), so computing one reads no row.
//!
//! The counter itself is kept in the per-user view cache, beside the views it stands for: every
//! write that changes those views already invalidates the user's cache after its commit
//! (`budget::handlers::write`), so the cached counter is re-read exactly when a view could have
//! changed, and a 304 costs no database read. Writes that change other synced rows (chat,
//! notifications, preferences) move the counter without invalidating; the views, and so their
//! ETags, did not change. The tag is computed before the body, so a body is never older than
//! its tag.

use std::hash::{Hash, Hasher};

use crate::app::App;
use crate::budget::cache::View;
use crate::error::Result;
use crate::http::{Req, Resp};

/// The user's counter, from the view cache (or one primary-key read).
fn cached_counter(app: &App, user: &str) -> Result<i64> {
    let bytes = app
        .views
        .get_or_compute(&app.metrics, user, View::SyncCounter, || {
            let (seq, _) = app.db.read(|c| super::counter(c, user))?;
            Ok(seq.to_string().into_bytes())
        })?;
    Ok(std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

pub(crate) fn tag(app: &App, user: &str, view: &View) -> Result<String> {
    let seq = cached_counter(app, user)?;
    // The view goes in through its derived `Hash` (every field, as its `Debug` did before):
    // formatting it was ~6% of a warm `GET /allocations` under perf. Stable for a given
    // build; a new build may change the tags once, which costs each client one full answer.
    let mut h = Sha256(hmac_sha256::Hash::new());
    (&app.sync.epoch, user, seq, view).hash(&mut h);
    let hash = h.0.finalize();
    let mut tag = String::with_capacity(26);
    tag.push('"');
    tag.push_str(&crate::random::to_hex(&hash[..12]));
    tag.push('"');
    Ok(tag)
}

/// SHA-256 fed by `Hash`: collision-resistant, unlike the std hashers.
struct Sha256(hmac_sha256::Hash);

impl Hasher for Sha256 {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Unused: the tag is the whole digest.
    fn finish(&self) -> u64 {
        0
    }
}

/// Does `If-None-Match` name this tag (or `*`)? Weak tags compare by their opaque part.
fn matches(req: &Req, tag: &str) -> bool {
    req.header("if-none-match").is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == tag || t == "*")
    })
}

/// A cached view with its ETag: 304 without a body when the client holds it, else the view.
pub(crate) fn respond(
    app: &App,
    req: &Req,
    user: &str,
    view: View,
    compute: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Resp> {
    let tag = tag(app, user, &view)?;
    if matches(req, &tag) {
        return Ok(Resp::empty(304).with_header("ETag", tag));
    }
    let bytes = app
        .views
        .get_or_compute(&app.metrics, user, view, compute)?;
    Ok(Resp::bytes(200, "application/json", bytes.to_vec()).with_header("ETag", tag))
}
