//! `/api/v1/users/me`: read, update and delete your own account.

use serde::Serialize;
use utoipa::ToSchema;

use super::identity::{Email, FullName};
use super::users::{self, UserResponse};
use crate::app::App;
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::input::Fields;

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401), (status = 403)))]
pub fn get_me(app: &App, req: &Req) -> Result<Resp> {
    let me = super::require_user(app, req)?;
    Ok(Resp::json(200, &UserResponse::from(&me.user)))
}

#[derive(Serialize, ToSchema)]
pub struct UpdateMeRequest {
    #[schema(min_length = 2, max_length = 100)]
    pub full_name: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses((status = 200, body = UserResponse), (status = 400, description = "Email already registered"),
              (status = 401), (status = 422)))]
pub fn patch_me(app: &App, req: &Req) -> Result<Resp> {
    let me = super::require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let name = f.optional::<FullName>("full_name");
    let email = f.optional::<Email>("email");
    f.finish()?;
    let (name, email) = (name?, email?);
    let user = app.db.write(|tx| {
        if let Some(Email(e)) = &email
            && users::by_email(tx, e)?.is_some_and(|other| other.id != me.user.id)
        {
            return Err(Error::bad_request("email_exists", "Email already registered"));
        }
        let now = app.clock.iso();
        if let Some(FullName(n)) = &name {
            tx.execute(
                "UPDATE users SET full_name = ?2, updated_at = ?3 WHERE id = ?1",
                rusqlite::params![me.user.id, n, now],
            )?;
        }
        if let Some(Email(e)) = &email {
            // A changed address is not verified any more.
            tx.execute(
                "UPDATE users SET email = ?2, email_verified = CASE WHEN email = ?2 THEN email_verified ELSE 0 END,
                 updated_at = ?3 WHERE id = ?1",
                rusqlite::params![me.user.id, e, now],
            )?;
        }
        users::by_id(tx, &me.user.id)?.ok_or_else(|| Error::not_found("User not found"))
    })?;
    Ok(Resp::json(200, &UserResponse::from(&user)))
}

#[derive(Serialize, ToSchema)]
pub struct DeletedResponse {
    #[schema(example = "Account deleted")]
    pub message: String,
}

#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = DeletedResponse), (status = 401)))]
pub fn delete_me(app: &App, req: &Req) -> Result<Resp> {
    let me = super::require_user(app, req)?;
    app.db.write(|tx| {
        // Every row that belongs to the user cascades from `users`; the live code and
        // verifications of the number go too. The send and wrong-try counts (`otp_sends`,
        // `otp_failures`) stay: they are caps, not account data, and expire on their own;
        // erasing them let a delete-and-register loop pump SMS past every cap.
        if let Some(m) = &me.user.mobile_e164 {
            for table in ["otp_codes", "otp_retired", "verified_numbers"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE mobile_number = ?1"),
                    [m],
                )?;
            }
            tx.execute("DELETE FROM login_failures WHERE identifier = ?1", [m])?;
        }
        if let Some(e) = &me.user.email {
            tx.execute(
                "DELETE FROM login_failures WHERE identifier = ?1",
                [e.to_lowercase()],
            )?;
        }
        tx.execute("DELETE FROM users WHERE id = ?1", [&me.user.id])?;
        Ok(())
    })?;
    app.revoked_access.insert(me.jti.clone(), ());
    Ok(Resp::json(
        200,
        &DeletedResponse {
            message: "Account deleted".into(),
        },
    ))
}
