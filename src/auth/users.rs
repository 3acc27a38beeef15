//! The `users` table: loading, creating, updating, deleting, (de)activating.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) id: String,
    /// E.164, the lookup key.
    pub(crate) mobile_e164: Option<String>,
    /// As the user typed it at registration: what we echo back.
    pub(crate) mobile_display: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) full_name: String,
    /// `None`: the account registered with an OTP and no password, and signs in by OTP only.
    pub(crate) password_hash: Option<String>,
    pub(crate) is_active: bool,
    pub(crate) token_version: i64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

/// `/users/me` and friends.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserResponse {
    pub(crate) user_id: String,
    #[schema(example = "9876543210")]
    pub(crate) mobile_number: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) full_name: String,
    pub(crate) is_active: bool,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> UserResponse {
        UserResponse {
            user_id: u.id.clone(),
            mobile_number: u.mobile_display.clone(),
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            is_active: u.is_active,
            created_at: u.created_at.clone(),
            updated_at: u.updated_at.clone(),
        }
    }
}

const COLUMNS: &str = "id, mobile_number, mobile_display, email, full_name, password_hash, \
                       is_active, token_version, created_at, updated_at";
/// How many columns `COLUMNS` names: the index of a column appended after them.
const COLUMN_COUNT: usize = 10;

/// What `password_hash` holds for an account without a password. It is no PHC string, so no
/// password can ever verify against it, even on a path that forgot to check for `None`.
const NO_PASSWORD: &str = "!no-password";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let hash: String = r.get(5)?;
    Ok(User {
        id: r.get(0)?,
        mobile_e164: r.get(1)?,
        mobile_display: r.get(2)?,
        email: r.get(3)?,
        full_name: r.get(4)?,
        password_hash: (hash != NO_PASSWORD).then_some(hash),
        is_active: r.get(6)?,
        token_version: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub(crate) fn by_id(c: &Connection, id: &str) -> Result<Option<User>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?,
    )
}

/// `by_id`, with one more boolean column computed from `?2 = arg` in the same statement.
pub(crate) fn by_id_with(
    c: &Connection,
    id: &str,
    extra: &'static str,
    arg: &str,
) -> Result<Option<(User, bool)>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS}, {extra} FROM users WHERE id = ?1"
    ))?
    .query_row([id, arg], |r| Ok((from_row(r)?, r.get(COLUMN_COUNT)?)))
    .optional()?)
}

pub(crate) fn by_mobile(c: &Connection, e164: &str) -> Result<Option<User>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE mobile_number = ?1"
    ))?
    .query_row([e164], from_row)
    .optional()?)
}

/// Case-insensitive: the column is `COLLATE NOCASE`.
pub(crate) fn by_email(c: &Connection, email: &str) -> Result<Option<User>> {
    Ok(
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE email = ?1"))?
            .query_row([email], from_row)
            .optional()?,
    )
}

pub(crate) struct NewUser<'a> {
    pub(crate) mobile_e164: Option<&'a str>,
    pub(crate) mobile_display: Option<&'a str>,
    pub(crate) email: Option<&'a str>,
    pub(crate) full_name: &'a str,
    /// `None`: OTP sign-in only.
    pub(crate) password_hash: Option<&'a str>,
}

pub(crate) fn insert(c: &Connection, u: &NewUser<'_>, now: &str) -> Result<User> {
    let id = crate::random::uuid();
    c.prepare_cached(
        "INSERT INTO users (id, mobile_number, mobile_display, email, full_name, password_hash,
                            created_at, updated_at, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
    )?
    .execute(params![
        id,
        u.mobile_e164,
        u.mobile_display,
        u.email,
        u.full_name,
        u.password_hash.unwrap_or(NO_PASSWORD),
        now
    ])?;
    by_id(c, &id)?.ok_or_else(|| Error::internal("inserted user vanished"))
}

/// `PATCH /users/me`: `email_exists` if another account has the address. A changed address
/// is not verified any more.
pub(crate) fn update_profile(
    c: &Connection,
    id: &str,
    full_name: Option<&str>,
    email: Option<&str>,
    now: &str,
) -> Result<User> {
    if let Some(e) = email
        && by_email(c, e)?.is_some_and(|other| other.id != id)
    {
        return Err(Error::bad_request(
            "email_exists",
            "Email already registered",
        ));
    }
    if let Some(n) = full_name {
        c.execute(
            "UPDATE users SET full_name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, n, now],
        )?;
    }
    if let Some(e) = email {
        c.execute(
            "UPDATE users SET email = ?2, email_verified = CASE WHEN email = ?2 THEN email_verified ELSE 0 END,
             updated_at = ?3 WHERE id = ?1",
            params![id, e, now],
        )?;
    }
    by_id(c, id)?.ok_or_else(|| Error::not_found("User not found"))
}

/// Deletes the account; every row that belongs to the user cascades from `users`.
pub(crate) fn delete(c: &Connection, id: &str) -> Result<()> {
    c.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

pub(crate) fn touch_last_seen(c: &Connection, id: &str, now: &str) -> Result<()> {
    c.prepare_cached("UPDATE users SET last_seen_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Bumping the version kills every access token issued before; every refresh token goes too.
pub(crate) fn revoke_all_sessions(
    c: &Connection,
    id: &str,
    now_unix: i64,
    reason: &str,
) -> Result<()> {
    c.prepare_cached("UPDATE users SET token_version = token_version + 1 WHERE id = ?1")?
        .execute([id])?;
    c.prepare_cached(
        "UPDATE refresh_tokens SET revoked_at = ?2, revoked_reason = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![id, now_unix, reason])?;
    Ok(())
}

/// What a live socket is checked against: the user's state as the database has it now.
pub(crate) struct SessionState {
    pub(crate) active: bool,
    pub(crate) token_version: i64,
}

/// The state of these users in one query; a user missing from the answer was deleted.
pub(crate) fn session_states(
    c: &Connection,
    ids: &[&str],
) -> Result<HashMap<String, SessionState>> {
    let list = serde_json::Value::from(ids).to_string();
    let mut stmt = c.prepare_cached(
        "SELECT id, is_active, token_version FROM users
         WHERE id IN (SELECT value FROM json_each(?1))",
    )?;
    let rows = stmt.query_map([list], |r| {
        Ok((
            r.get::<_, String>(0)?,
            SessionState {
                active: r.get(1)?,
                token_version: r.get(2)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many accounts there are (`None`), or were seen since an ISO time: `/stats`.
pub(crate) fn count(c: &Connection, seen_since: Option<&str>) -> Result<i64> {
    Ok(match seen_since {
        None => c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?,
        Some(t) => c.query_row(
            "SELECT count(*) FROM users WHERE last_seen_at >= ?1",
            [t],
            |r| r.get(0),
        )?,
    })
}

/// The user's rows in the tables auth owns, for the data export; secrets left out.
pub(crate) fn export(
    c: &Connection,
    user: &str,
) -> Result<Vec<(&'static str, Vec<serde_json::Value>)>> {
    Ok(vec![
        (
            "users",
            crate::db::user_rows(c, "users", "id", user, &["password_hash"])?,
        ),
        (
            "refresh_tokens",
            crate::db::user_rows(c, "refresh_tokens", "user_id", user, &["token_hash"])?,
        ),
    ])
}

/// `user deactivate|activate <mobile|email>` on the command line. Deactivation revokes
/// every session; activation does not bring them back.
pub fn set_active(
    c: &Connection,
    who: &str,
    active: bool,
    default_country: &str,
    now_unix: i64,
) -> std::result::Result<String, String> {
    let user = if who.contains('@') {
        by_email(c, who.trim())
    } else {
        let m = super::identity::MobileNumber::parse(who, default_country)
            .map_err(|e| format!("{who:?}: {}", e.msg))?;
        by_mobile(c, &m.e164)
    }
    .map_err(|e| format!("{e:?}"))?
    .ok_or_else(|| format!("no user with mobile number or email {who:?}"))?;
    c.execute(
        "UPDATE users SET is_active = ?2, updated_at = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?1",
        params![user.id, active],
    )
    .map_err(|e| e.to_string())?;
    if !active {
        revoke_all_sessions(c, &user.id, now_unix, "deactivated").map_err(|e| format!("{e:?}"))?;
    }
    Ok(user.id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_count_counts_the_columns() {
        assert_eq!(super::COLUMNS.split(',').count(), super::COLUMN_COUNT);
    }
}
