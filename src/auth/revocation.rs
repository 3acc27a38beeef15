//! Access tokens logged out one by one (API.md "Logout is durable"). An access token is a
//! signed JWT the server cannot take back, so a single logout lists its `jti` until it
//! expires: in `app.revoked_access` (the per-request fast path) and in the
//! `revoked_access_tokens` table (what survives a restart). Logging out everywhere, deletion
//! and deactivation need no list: they bump the user's `token_version`, which is durable.

use rusqlite::{Connection, Transaction, params};

use super::AuthUser;
use super::recent::Recent;
use super::tokens::TOLERANCE_SECS;
use super::users::{self, User};
use crate::error::Result;

/// The fast path: `jti`s of access tokens logged out, kept as long as an access token lives.
pub(crate) type Revoked = moka::sync::Cache<String, ()>;

/// Records the caller's access token as revoked, in the caller's transaction; the cache
/// learns it from [`remember`] once that transaction committed. Expired rows go on the way:
/// one indexed delete per logout keeps the table as small as the set of live revocations.
pub(crate) fn revoke(now: i64, tx: &Transaction<'_>, caller: &AuthUser) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES (?1, ?2)
         ON CONFLICT (jti) DO NOTHING",
    )?
    .execute(params![caller.jti, caller.expires_at])?;
    // A token is accepted up to the clock leeway past its `exp`, so its row stays that long.
    tx.prepare_cached("DELETE FROM revoked_access_tokens WHERE expires_at < ?1")?
        .execute([now - TOLERANCE_SECS as i64])?;
    Ok(())
}

/// Puts a committed revocation in the fast path, and makes every remembered bearer check
/// stale (`recent.rs`): one read before the logout must not answer for the token if the
/// cache drops it.
pub(crate) fn remember(cache: &Revoked, recent: &Recent, jti: &str) {
    cache.insert(jti.to_string(), ());
    recent.changed();
}

/// The bearer check's one read: the user row and whether the token's `jti` is revoked, in one
/// statement, so the read transaction takes SQLite's shared lock once rather than twice (the
/// lock's `fcntl` calls showed in the profile). The cache answers "yes" without a probe. A
/// miss is not a "no": the cache starts empty after a restart and may drop entries when full,
/// so the table decides, and a "yes" from it is cached for the next request.
pub(crate) fn user_unless_revoked(
    cache: &Revoked,
    c: &Connection,
    user_id: &str,
    jti: &str,
) -> Result<(Option<User>, bool)> {
    if cache.contains_key(jti) {
        return Ok((users::by_id(c, user_id)?, true));
    }
    let found = users::by_id_with(
        c,
        user_id,
        "EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = ?2)",
        jti,
    )?;
    Ok(match found {
        Some((user, listed)) => {
            if listed {
                cache.insert(jti.to_string(), ());
            }
            (Some(user), listed)
        }
        None => (None, false),
    })
}
