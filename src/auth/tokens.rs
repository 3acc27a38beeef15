//! Tokens. Access tokens are HS256 JWTs checked against the user's `token_version`, so
//! logging out everywhere, deactivating or deleting a user kills them at once. Refresh tokens
//! are JWTs too (`type: "refresh"`), stored only as a SHA-256 hash, rotated on every use, in
//! families: replaying a rotated token revokes the family (RFC 9700), except within a 30 s
//! grace for a client whose response was lost.

use std::collections::HashSet;

use jwt_simple::prelude::{
    Claims, Duration as JwtDuration, HS256Key, JWTClaims, MACLike, UnixTimeStamp,
    VerificationOptions,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::User;
use crate::app::App;
use crate::error::{Error, Result};

const ISSUER: &str = "wealthcoach";
const AUDIENCE: &str = "wealthcoach-app";
/// Clock skew we forgive between machines.
pub const TOLERANCE_SECS: u64 = 30;
/// A client that lost the answer to a refresh may present the old token this long after.
pub const REFRESH_GRACE_SECS: i64 = 30;

pub struct Keys {
    key: HS256Key,
}

impl Keys {
    pub fn new(secret: &str) -> Keys {
        Keys {
            key: HS256Key::from_bytes(secret.as_bytes()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Access,
    Refresh,
}

/// Our claims beside the registered ones (`iat`, `exp`, `jti`, `iss`, `aud`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenClaims {
    pub user_id: String,
    pub mobile_number: Option<String>,
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The user's `token_version` when issued.
    pub ver: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// A verified token: our claims and its id.
pub struct Verified {
    pub claims: TokenClaims,
    pub jti: String,
    pub expires_at: i64,
}

fn sign(app: &App, user: &User, kind: Kind, jti: &str) -> Result<(String, i64)> {
    let ttl = match kind {
        Kind::Access => app.config.access_token_ttl,
        Kind::Refresh => app.config.refresh_token_ttl,
    };
    let now = app.clock.unix();
    let exp = now + ttl.as_secs() as i64;
    let mut claims: JWTClaims<TokenClaims> = Claims::with_custom_claims(
        TokenClaims {
            user_id: user.id.clone(),
            mobile_number: user.mobile_display.clone(),
            email: user.email.clone(),
            kind,
            ver: user.token_version,
        },
        JwtDuration::from_secs(ttl.as_secs()),
    )
    .with_issuer(ISSUER)
    .with_audience(AUDIENCE)
    .with_jwt_id(jti);
    // Our clock, not the library's, so tests can move time.
    claims.issued_at = Some(UnixTimeStamp::from_secs(now as u64));
    claims.expires_at = Some(UnixTimeStamp::from_secs(exp as u64));
    claims.invalid_before = None;
    let token = app
        .keys
        .key
        .authenticate(claims)
        .map_err(|e| Error::internal(format!("signing a token: {e}")))?;
    Ok((token, exp))
}

pub fn invalid_token(bearer: bool) -> Error {
    Error::Unauthorized {
        code: "invalid_token",
        detail: "Invalid token".into(),
        bearer,
    }
}

/// Checks signature, issuer, audience, expiry (required) and type.
pub fn verify(app: &App, token: &str, kind: Kind) -> std::result::Result<Verified, &'static str> {
    let options = VerificationOptions {
        time_tolerance: Some(JwtDuration::from_secs(TOLERANCE_SECS)),
        allowed_issuers: Some(HashSet::from([ISSUER.to_string()])),
        allowed_audiences: Some(HashSet::from([AUDIENCE.to_string()])),
        artificial_time: Some(UnixTimeStamp::from_secs(app.clock.unix().max(0) as u64)),
        max_token_length: Some(4096),
        ..Default::default()
    };
    let claims = app
        .keys
        .key
        .verify_token::<TokenClaims>(token, Some(options))
        .map_err(|e| {
            if e.to_string().contains("expired") {
                "expired"
            } else {
                "invalid"
            }
        })?;
    let Some(exp) = claims.expires_at else {
        return Err("invalid");
    };
    if claims.custom.kind != kind {
        return Err("wrong_type");
    }
    let jti = claims.jwt_id.clone().ok_or("invalid")?;
    Ok(Verified {
        claims: claims.custom,
        jti,
        expires_at: exp.as_secs() as i64,
    })
}

pub fn hash_token(token: &str) -> String {
    crate::random::to_hex(&hmac_sha256::Hash::hash(token.as_bytes()))
}

/// Issues an access token and a refresh token stored in `family` (a new family if `None`).
pub fn issue_pair(
    app: &App,
    tx: &Transaction<'_>,
    user: &User,
    family: Option<&str>,
    parent: Option<&str>,
) -> Result<(TokenResponse, String)> {
    let (access, _) = sign(app, user, Kind::Access, &crate::random::uuid())?;
    let row_id = crate::random::uuid();
    let (refresh, exp) = sign(app, user, Kind::Refresh, &row_id)?;
    let family = family
        .map(str::to_string)
        .unwrap_or_else(crate::random::uuid);
    tx.prepare_cached("INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, parent_id, issued_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![row_id, user.id, family, hash_token(&refresh), parent, app.clock.unix(), exp],
    )?;
    Ok((
        TokenResponse {
            access_token: access,
            refresh_token: refresh,
            token_type: "bearer".into(),
            expires_in: app.config.access_token_ttl.as_secs(),
        },
        row_id,
    ))
}

struct StoredRefresh {
    id: String,
    user_id: String,
    family_id: String,
    expires_at: i64,
    rotated_at: Option<i64>,
    replaced_by: Option<String>,
    revoked_at: Option<i64>,
}

fn load(c: &Connection, hash: &str) -> Result<Option<StoredRefresh>> {
    Ok(c.prepare_cached(
        "SELECT id, user_id, family_id, expires_at, rotated_at, replaced_by, revoked_at
         FROM refresh_tokens WHERE token_hash = ?1",
    )?
    .query_row([hash], |r| {
        Ok(StoredRefresh {
            id: r.get(0)?,
            user_id: r.get(1)?,
            family_id: r.get(2)?,
            expires_at: r.get(3)?,
            rotated_at: r.get(4)?,
            replaced_by: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })
    .optional()?)
}

fn refused(code: &'static str, detail: &str) -> Error {
    Error::Unauthorized {
        code,
        detail: detail.into(),
        bearer: false,
    }
}

fn revoke_family(tx: &Transaction<'_>, family: &str, now: i64, reason: &str) -> Result<()> {
    tx.prepare_cached(
        "UPDATE refresh_tokens SET revoked_at = ?2, revoked_reason = ?3
         WHERE family_id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![family, now, reason])?;
    Ok(())
}

/// The outcome of presenting a refresh token: a new pair, or a refusal that may itself have
/// to be committed (revoking a family on reuse), so it is a value, not an `Err`.
pub enum Rotation {
    Issued(TokenResponse),
    Refused(Error),
}

/// `POST /auth/refresh`.
pub fn rotate(app: &App, tx: &Transaction<'_>, token: &str) -> Result<Rotation> {
    let verified = match verify(app, token, Kind::Refresh) {
        Ok(v) => v,
        Err("expired") => {
            return Ok(Rotation::Refused(refused(
                "token_expired",
                "Refresh token expired",
            )));
        }
        Err(_) => {
            return Ok(Rotation::Refused(refused(
                "invalid_token",
                "Invalid refresh token",
            )));
        }
    };
    let now = app.clock.unix();
    let Some(row) = load(tx, &hash_token(token))? else {
        return Ok(Rotation::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    };
    if row.id != verified.jti || row.user_id != verified.claims.user_id {
        return Ok(Rotation::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    }
    // The account state comes before revocation: deactivation revokes every refresh token,
    // and the contract wants a deactivated user's refresh token to get 403, not 401.
    let Some(user) = super::users::by_id(tx, &row.user_id)? else {
        return Ok(Rotation::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    };
    if !user.is_active {
        return Ok(Rotation::Refused(super::deactivated()));
    }
    if row.revoked_at.is_some() {
        return Ok(Rotation::Refused(refused(
            "token_revoked",
            "Refresh token has been revoked",
        )));
    }
    if row.expires_at <= now {
        return Ok(Rotation::Refused(refused(
            "token_expired",
            "Refresh token expired",
        )));
    }
    if let Some(rotated_at) = row.rotated_at {
        // Already used once. Within the grace, and only while its successor is unused, the
        // client lost our answer: give it a fresh pair and retire the successor.
        let successor_unused = match &row.replaced_by {
            Some(next) => tx.prepare_cached("SELECT rotated_at IS NULL AND revoked_at IS NULL FROM refresh_tokens WHERE id = ?1")?.query_row([next],
                    |r| r.get::<_, bool>(0),
                )
                .optional()?
                .unwrap_or(false),
            None => false,
        };
        if now - rotated_at <= REFRESH_GRACE_SECS && successor_unused {
            if let Some(next) = &row.replaced_by {
                tx.prepare_cached("UPDATE refresh_tokens SET revoked_at = ?2, revoked_reason = 'superseded' WHERE id = ?1")?.execute(params![next, now],
                )?;
            }
            let (pair, new_id) = issue_pair(app, tx, &user, Some(&row.family_id), Some(&row.id))?;
            tx.prepare_cached("UPDATE refresh_tokens SET replaced_by = ?2 WHERE id = ?1")?
                .execute(params![row.id, new_id])?;
            return Ok(Rotation::Issued(pair));
        }
        revoke_family(tx, &row.family_id, now, "reuse")?;
        log::warn!(
            "refresh token reuse: family {} of user {} revoked",
            row.family_id,
            row.user_id
        );
        return Ok(Rotation::Refused(refused(
            "refresh_token_reused",
            "Refresh token was already used; every session of this login has been revoked",
        )));
    }
    let (pair, new_id) = issue_pair(app, tx, &user, Some(&row.family_id), Some(&row.id))?;
    tx.prepare_cached("UPDATE refresh_tokens SET rotated_at = ?2, replaced_by = ?3 WHERE id = ?1")?
        .execute(params![row.id, now, new_id])?;
    super::users::touch_last_seen(tx, &user.id, &app.clock.iso())?;
    Ok(Rotation::Issued(pair))
}

/// Revokes one refresh token (logout). Returns its user id if it was ours and valid.
pub fn revoke_one(app: &App, tx: &Transaction<'_>, token: &str) -> Result<Option<String>> {
    let Some(row) = load(tx, &hash_token(token))? else {
        return Ok(None);
    };
    tx.prepare_cached(
        "UPDATE refresh_tokens SET revoked_at = ?2, revoked_reason = 'logout'
         WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![row.id, app.clock.unix()])?;
    Ok(Some(row.user_id))
}
