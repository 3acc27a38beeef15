//! Tokens. Access tokens are HS256 JWTs checked against the user's `token_version`, so
//! logging out everywhere, deactivating or deleting a user kills them at once. Refresh tokens
//! are JWTs too (`type: "refresh"`), stored only as a SHA-256 hash, rotated on every use, in
//! families: replaying a rotated token revokes the family (RFC 9700), except within a 30 s
//! grace while its successor is unused, which answers that same successor again (API.md
//! "Refresh grace"): the released app refreshes from every request that got a 401 at once.

use std::collections::HashSet;

use jwt_simple::JWTError;
use jwt_simple::prelude::{
    Claims, Duration as JwtDuration, HS256Key, JWTClaims, MACLike, UnixTimeStamp,
    VerificationOptions,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Ctx;
use super::users::User;
use crate::db::Outcome;
use crate::error::{Error, Result};

const ISSUER: &str = "wealthcoach";
const AUDIENCE: &str = "wealthcoach-app";
/// Clock skew we forgive between machines.
pub(crate) const TOLERANCE_SECS: u64 = 30;
/// A client that lost the answer to a refresh may present the old token this long after.
pub(crate) const REFRESH_GRACE_SECS: i64 = 30;

pub(crate) struct Keys {
    key: HS256Key,
    /// Derives a rotated refresh token's successor nonce from its plaintext; a key of its own
    /// (from the same secret) so the nonce is never a value the JWT key signed elsewhere.
    successor: [u8; 32],
}

impl Keys {
    pub(crate) fn new(secret: &str) -> Keys {
        Keys {
            key: HS256Key::from_bytes(secret.as_bytes()),
            successor: hmac_sha256::HMAC::mac(b"wealthcoach refresh successor v1", secret),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Access,
    Refresh,
}

/// Our claims beside the registered ones (`iat`, `exp`, `jti`, `iss`, `aud`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenClaims {
    pub(crate) user_id: String,
    pub(crate) mobile_number: Option<String>,
    pub(crate) email: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Kind,
    /// The user's `token_version` when issued.
    pub(crate) ver: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub(crate) access_token: String,
    pub refresh_token: String,
    #[schema(example = "bearer")]
    pub(crate) token_type: String,
    /// Seconds until the access token expires.
    pub(crate) expires_in: u64,
}

/// A verified token: our claims and its id.
pub(crate) struct Verified {
    pub(crate) claims: TokenClaims,
    pub(crate) jti: String,
    pub(crate) expires_at: i64,
}

/// Everything of a token beside our claims. Nothing in here comes from the system clock or
/// from randomness drawn at signing time, so the same stamp and claims sign to the same bytes
/// (HS256 is deterministic): that is what lets the refresh grace answer the same token again.
struct Stamp<'a> {
    jti: &'a str,
    issued_at: i64,
    expires_at: i64,
    nonce: Option<String>,
}

fn sign(keys: &Keys, custom: TokenClaims, stamp: Stamp<'_>) -> Result<String> {
    let mut claims: JWTClaims<TokenClaims> =
        Claims::with_custom_claims(custom, JwtDuration::from_secs(0))
            .with_issuer(ISSUER)
            .with_audience(AUDIENCE)
            .with_jwt_id(stamp.jti);
    // Our clock, not the library's, so tests can move time.
    claims.issued_at = Some(UnixTimeStamp::from_secs(stamp.issued_at.max(0) as u64));
    claims.expires_at = Some(UnixTimeStamp::from_secs(stamp.expires_at.max(0) as u64));
    claims.invalid_before = None;
    claims.nonce = stamp.nonce;
    keys.key
        .authenticate(claims)
        .map_err(|e| Error::internal(format!("signing a token: {e}")))
}

fn access_token(ctx: &Ctx<'_>, user: &User, now: i64) -> Result<String> {
    let claims = TokenClaims {
        user_id: user.id.clone(),
        mobile_number: user.mobile_display.clone(),
        email: user.email.clone(),
        kind: Kind::Access,
        ver: user.token_version,
    };
    let stamp = Stamp {
        jti: &crate::random::uuid(),
        issued_at: now,
        expires_at: now + ctx.config.tokens.access_ttl.as_secs() as i64,
        nonce: None,
    };
    sign(ctx.keys, claims, stamp)
}

/// A refresh token holds only what its row keeps (`id` as `jti`, `issued_at`, `expires_at`,
/// the user) and the user's `token_version`, which cannot change while the token is live
/// (changing it revokes every refresh token). A successor also holds a nonce derived from its
/// predecessor's plaintext. So the server can sign a successor again from its row and the
/// predecessor, and from nothing less. The profile (number, email) is left out: it may change
/// within the grace, and only access tokens are read for it.
fn refresh_token(
    keys: &Keys,
    user: &User,
    row: RefreshStamp<'_>,
    predecessor: Option<&str>,
) -> Result<String> {
    let claims = TokenClaims {
        user_id: user.id.clone(),
        mobile_number: None,
        email: None,
        kind: Kind::Refresh,
        ver: user.token_version,
    };
    let stamp = Stamp {
        jti: row.id,
        issued_at: row.issued_at,
        expires_at: row.expires_at,
        nonce: predecessor.map(|p| successor_nonce(keys, p)),
    };
    sign(keys, claims, stamp)
}

#[derive(Clone, Copy)]
struct RefreshStamp<'a> {
    id: &'a str,
    issued_at: i64,
    expires_at: i64,
}

/// HMAC-SHA-256 of a refresh token's plaintext under a server key. Neither that plaintext
/// nor its successor's is stored (only SHA-256 hashes), so recomputing a successor takes the
/// predecessor itself and the server's secret: a copy of the database gives neither, and the
/// holder of the predecessor within the grace is exactly whom the rule answers.
fn successor_nonce(keys: &Keys, predecessor: &str) -> String {
    crate::random::to_hex(&hmac_sha256::HMAC::mac(
        predecessor.as_bytes(),
        keys.successor,
    ))
}

pub(crate) fn invalid_token(bearer: bool) -> Error {
    Error::Unauthorized {
        code: "invalid_token",
        detail: "Invalid token".into(),
        bearer,
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Well signed, but past its `exp` (and the clock leeway).
    Expired,
    /// Well signed and live, but an access token where a refresh token was due, or back.
    WrongKind,
    /// Anything else: bad signature, issuer or audience, malformed, too long, no `exp`/`jti`.
    Invalid,
}

/// Checks signature, issuer, audience, expiry (required) and type at `now` (unix seconds).
pub(crate) fn verify(
    keys: &Keys,
    now: i64,
    token: &str,
    kind: Kind,
) -> std::result::Result<Verified, TokenError> {
    let options = VerificationOptions {
        time_tolerance: Some(JwtDuration::from_secs(TOLERANCE_SECS)),
        allowed_issuers: Some(HashSet::from([ISSUER.to_string()])),
        allowed_audiences: Some(HashSet::from([AUDIENCE.to_string()])),
        artificial_time: Some(UnixTimeStamp::from_secs(now.max(0) as u64)),
        max_token_length: Some(4096),
        ..Default::default()
    };
    let claims = keys
        .key
        .verify_token::<TokenClaims>(token, Some(options))
        .map_err(|e| match e.downcast_ref::<JWTError>() {
            Some(JWTError::TokenHasExpired) => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
    let Some(exp) = claims.expires_at else {
        return Err(TokenError::Invalid);
    };
    if claims.custom.kind != kind {
        return Err(TokenError::WrongKind);
    }
    let jti = claims.jwt_id.clone().ok_or(TokenError::Invalid)?;
    Ok(Verified {
        claims: claims.custom,
        jti,
        expires_at: exp.as_secs() as i64,
    })
}

/// Access tokens whose signature and claims were already checked, so a client sending the same
/// bearer on every request pays for base64, HMAC and JSON once (a tenth of a warm
/// `/allocations` request's samples under perf, README "Performance"). Only expiry depends on
/// the time, and it is checked again on every hit; the key and the rest of the claims cannot
/// change. Only valid tokens get in, so nobody without the secret can fill it.
pub(crate) struct VerifiedAccess(moka::sync::Cache<String, std::sync::Arc<Verified>>);

impl VerifiedAccess {
    pub(crate) fn new(idle: std::time::Duration) -> VerifiedAccess {
        VerifiedAccess(
            moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(idle)
                .build(),
        )
    }

    /// `verify(keys, now, token, Kind::Access)`, remembered.
    pub(crate) fn verify(
        &self,
        keys: &Keys,
        now: i64,
        token: &str,
    ) -> std::result::Result<std::sync::Arc<Verified>, TokenError> {
        if let Some(v) = self.0.get(token) {
            // jwt-simple's rule: valid while now - tolerance <= exp.
            if now - TOLERANCE_SECS as i64 > v.expires_at {
                return Err(TokenError::Expired);
            }
            return Ok(v);
        }
        let v = std::sync::Arc::new(verify(keys, now, token, Kind::Access)?);
        self.0.insert(token.to_string(), v.clone());
        Ok(v)
    }
}

pub fn hash_token(token: &str) -> String {
    crate::random::to_hex(&hmac_sha256::Hash::hash(token.as_bytes()))
}

/// Issues an access token and a refresh token stored in `family` (a new family if `None`).
pub(crate) fn issue_pair(
    ctx: &Ctx<'_>,
    tx: &Transaction<'_>,
    user: &User,
    family: Option<&str>,
    parent: Option<&str>,
) -> Result<(TokenResponse, String)> {
    issue(ctx, tx, user, family, parent, None)
}

/// `issue_pair`, and for a rotation the plaintext of the token being rotated, which seeds the
/// successor's nonce.
fn issue(
    ctx: &Ctx<'_>,
    tx: &Transaction<'_>,
    user: &User,
    family: Option<&str>,
    parent: Option<&str>,
    predecessor: Option<&str>,
) -> Result<(TokenResponse, String)> {
    // One reading of the clock: the row and the token must agree to the second.
    let now = ctx.now();
    let row_id = crate::random::uuid();
    let row = RefreshStamp {
        id: &row_id,
        issued_at: now,
        expires_at: now + ctx.config.tokens.refresh_ttl.as_secs() as i64,
    };
    let refresh = refresh_token(ctx.keys, user, row, predecessor)?;
    let family = family
        .map(str::to_string)
        .unwrap_or_else(crate::random::uuid);
    tx.prepare_cached("INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, parent_id, issued_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![row_id, user.id, family, hash_token(&refresh), parent, row.issued_at, row.expires_at],
    )?;
    Ok((token_response(ctx, user, now, refresh)?, row_id))
}

fn token_response(ctx: &Ctx<'_>, user: &User, now: i64, refresh: String) -> Result<TokenResponse> {
    Ok(TokenResponse {
        access_token: access_token(ctx, user, now)?,
        refresh_token: refresh,
        token_type: "bearer".into(),
        expires_in: ctx.config.tokens.access_ttl.as_secs(),
    })
}

struct StoredRefresh {
    id: String,
    user_id: String,
    family_id: String,
    token_hash: String,
    issued_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    replaced_by: Option<String>,
    revoked_at: Option<i64>,
}

impl StoredRefresh {
    fn stamp(&self) -> RefreshStamp<'_> {
        RefreshStamp {
            id: &self.id,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        }
    }

    /// Neither rotated nor revoked nor expired: the one token of its family a client may use.
    fn is_live(&self, now: i64) -> bool {
        self.rotated_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

const STORED_COLUMNS: &str = "SELECT id, user_id, family_id, token_hash, issued_at, expires_at,
    rotated_at, replaced_by, revoked_at FROM refresh_tokens";

/// The row `WHERE <column> = key`; `column` is one of ours, never input.
fn load_where(c: &Connection, column: &str, key: &str) -> Result<Option<StoredRefresh>> {
    Ok(
        c.prepare_cached(&format!("{STORED_COLUMNS} WHERE {column} = ?1"))?
            .query_row([key], |r| {
                Ok(StoredRefresh {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    family_id: r.get(2)?,
                    token_hash: r.get(3)?,
                    issued_at: r.get(4)?,
                    expires_at: r.get(5)?,
                    rotated_at: r.get(6)?,
                    replaced_by: r.get(7)?,
                    revoked_at: r.get(8)?,
                })
            })
            .optional()?,
    )
}

fn load(c: &Connection, hash: &str) -> Result<Option<StoredRefresh>> {
    load_where(c, "token_hash", hash)
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

/// `POST /auth/refresh`: a new pair, or a refusal that may itself have to be committed
/// (revoking a family on reuse); run it with [`crate::db::Db::write_or_refuse`].
pub fn rotate(ctx: &Ctx<'_>, tx: &Transaction<'_>, token: &str) -> Result<Outcome<TokenResponse>> {
    let verified = match verify(ctx.keys, ctx.now(), token, Kind::Refresh) {
        Ok(v) => v,
        Err(TokenError::Expired) => {
            return Ok(Outcome::Refused(refused(
                "token_expired",
                "Refresh token expired",
            )));
        }
        Err(_) => {
            return Ok(Outcome::Refused(refused(
                "invalid_token",
                "Invalid refresh token",
            )));
        }
    };
    let now = ctx.now();
    let Some(row) = load(tx, &hash_token(token))? else {
        return Ok(Outcome::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    };
    if row.id != verified.jti || row.user_id != verified.claims.user_id {
        return Ok(Outcome::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    }
    // The account state comes before revocation: deactivation revokes every refresh token,
    // and the contract wants a deactivated user's refresh token to get 403, not 401.
    let Some(user) = super::users::by_id(tx, &row.user_id)? else {
        return Ok(Outcome::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    };
    if !user.is_active {
        return Ok(Outcome::Refused(super::deactivated()));
    }
    if row.revoked_at.is_some() {
        return Ok(Outcome::Refused(refused(
            "token_revoked",
            "Refresh token has been revoked",
        )));
    }
    if row.expires_at <= now {
        return Ok(Outcome::Refused(refused(
            "token_expired",
            "Refresh token expired",
        )));
    }
    if let Some(rotated_at) = row.rotated_at {
        // Already used once. Within the grace, and only while its successor is still the live
        // token of the family, the client lost our answer or asked several times at once.
        let successor = match &row.replaced_by {
            Some(next) => load_where(tx, "id", next)?,
            None => None,
        };
        if now - rotated_at <= REFRESH_GRACE_SECS
            && let Some(next) = successor.filter(|n| n.is_live(now))
        {
            return replay(ctx, &user, token, &next);
        }
        revoke_family(tx, &row.family_id, now, "reuse")?;
        log::warn!(
            "refresh token reuse: family {} of user {} revoked",
            row.family_id,
            row.user_id
        );
        return Ok(Outcome::Refused(refused(
            "refresh_token_reused",
            "Refresh token was already used; every session of this login has been revoked",
        )));
    }
    let (pair, new_id) = issue(
        ctx,
        tx,
        &user,
        Some(&row.family_id),
        Some(&row.id),
        Some(token),
    )?;
    tx.prepare_cached("UPDATE refresh_tokens SET rotated_at = ?2, replaced_by = ?3 WHERE id = ?1")?
        .execute(params![row.id, now, new_id])?;
    super::users::touch_last_seen(tx, &user.id, &ctx.iso())?;
    Ok(Outcome::Done(pair))
}

/// The grace answer: the successor `next` once more, signed again from its row and the
/// token just presented, with a fresh access token. Nothing is written, so however many
/// callers the writer lock lines up behind the first rotation, each gets the same bytes.
fn replay(
    ctx: &Ctx<'_>,
    user: &User,
    presented: &str,
    next: &StoredRefresh,
) -> Result<Outcome<TokenResponse>> {
    let refresh = refresh_token(ctx.keys, user, next.stamp(), Some(presented))?;
    if hash_token(&refresh) != next.token_hash {
        // Not derivable: the successor was issued before this rule, or under another secret.
        // Refuse without revoking anything; the client signs in again.
        log::warn!("refresh grace: successor {} is not derivable", next.id);
        return Ok(Outcome::Refused(refused(
            "invalid_token",
            "Invalid refresh token",
        )));
    }
    let response = token_response(ctx, user, ctx.now(), refresh)?;
    Ok(Outcome::Done(response))
}

/// The refresh token a logout names, as far as logout cares.
pub(crate) struct Named {
    pub(crate) user_id: String,
    /// Neither rotated nor revoked nor expired.
    pub(crate) live: bool,
}

/// Looks up the refresh token a logout names; `None` if it is not one of ours.
pub(crate) fn named(now: i64, c: &Connection, token: &str) -> Result<Option<Named>> {
    Ok(load(c, &hash_token(token))?.map(|row| Named {
        live: row.is_live(now),
        user_id: row.user_id,
    }))
}

/// Revokes one refresh token (logout), if it is ours.
pub(crate) fn revoke_one(now: i64, tx: &Transaction<'_>, token: &str) -> Result<()> {
    tx.prepare_cached(
        "UPDATE refresh_tokens SET revoked_at = ?2, revoked_reason = 'logout'
         WHERE token_hash = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![hash_token(token), now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::db::testing::memory;

    struct Fixture {
        config: Config,
        keys: Keys,
        clock: Clock,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                config: Config::from_pairs(&[]).expect("settings"),
                keys: Keys::new("unit-test-secret-unit-test-secret"),
                clock: Clock::default(),
            }
        }

        fn ctx(&self) -> Ctx<'_> {
            Ctx {
                config: &self.config,
                keys: &self.keys,
                clock: &self.clock,
            }
        }
    }

    fn user(tx: &Transaction<'_>) -> User {
        let new = super::super::users::NewUser {
            mobile_e164: None,
            mobile_display: None,
            email: Some("asha@example.com"),
            full_name: "Asha",
            password_hash: None,
        };
        super::super::users::insert(tx, &new, "2025-10-18T00:00:00Z").expect("user")
    }

    #[test]
    fn verify_refuses_expired_wrong_kind_and_tampered_tokens() {
        let f = Fixture::new();
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        let u = user(&tx);
        let (pair, _) = issue_pair(&f.ctx(), &tx, &u, None, None).expect("pair");
        let now = f.clock.unix();
        let ok = verify(&f.keys, now, &pair.access_token, Kind::Access).expect("valid");
        assert_eq!(ok.claims.user_id, u.id);
        assert_eq!(
            ok.expires_at,
            now + f.config.tokens.access_ttl.as_secs() as i64
        );

        let wrong = verify(&f.keys, now, &pair.access_token, Kind::Refresh).err();
        assert_eq!(wrong, Some(TokenError::WrongKind));
        let wrong = verify(&f.keys, now, &pair.refresh_token, Kind::Access).err();
        assert_eq!(wrong, Some(TokenError::WrongKind));

        // Past `exp` plus the leeway; within the leeway it still passes.
        let edge = ok.expires_at + TOLERANCE_SECS as i64;
        assert!(verify(&f.keys, edge - 1, &pair.access_token, Kind::Access).is_ok());
        let late = verify(&f.keys, edge + 1, &pair.access_token, Kind::Access).err();
        assert_eq!(late, Some(TokenError::Expired));

        // One changed character in the payload, a foreign key, or no token at all.
        let mut parts: Vec<String> = pair.access_token.split('.').map(String::from).collect();
        let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
        parts[1].pop();
        parts[1].push(flipped);
        let tampered = parts.join(".");
        let bad = verify(&f.keys, now, &tampered, Kind::Access).err();
        assert_eq!(bad, Some(TokenError::Invalid));
        let other = Keys::new("another-secret-another-secret-xx");
        let bad = verify(&other, now, &pair.access_token, Kind::Access).err();
        assert_eq!(bad, Some(TokenError::Invalid));
        let bad = verify(&f.keys, now, "not.a.token", Kind::Access).err();
        assert_eq!(bad, Some(TokenError::Invalid));
    }

    #[test]
    fn reuse_after_the_grace_is_refused_and_revokes_the_family() {
        let f = Fixture::new();
        let mut conn = memory();
        let tx = conn.transaction().expect("tx");
        let u = user(&tx);
        let (first, _) = issue_pair(&f.ctx(), &tx, &u, None, None).expect("pair");
        let Ok(Outcome::Done(second)) = rotate(&f.ctx(), &tx, &first.refresh_token) else {
            panic!("first rotation refused");
        };
        // Within the grace the old token answers the same successor.
        let Ok(Outcome::Done(again)) = rotate(&f.ctx(), &tx, &first.refresh_token) else {
            panic!("grace refused");
        };
        assert_eq!(again.refresh_token, second.refresh_token);
        f.clock.advance(REFRESH_GRACE_SECS + 1);
        match rotate(&f.ctx(), &tx, &first.refresh_token) {
            Ok(Outcome::Refused(e)) => assert_eq!(e.code(), "refresh_token_reused"),
            _ => panic!("reuse was not refused"),
        }
        // The refusal wrote the revocation: the live successor is dead too.
        match rotate(&f.ctx(), &tx, &second.refresh_token) {
            Ok(Outcome::Refused(e)) => assert_eq!(e.code(), "token_revoked"),
            _ => panic!("the family was not revoked"),
        }
    }
}
