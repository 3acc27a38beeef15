//! `/api/v1/users/me`: read, update and delete your own account.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::auth::identity::{Email, FullName};
use crate::auth::users::{self, UserResponse};
use crate::auth::{accounts, revocation};
use crate::error::Result;
use crate::http::{Req, Resp};
use crate::input::Fields;

#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401), (status = 403)))]
pub(crate) fn get_me(app: &App, req: &Req) -> Result<Resp> {
    let me = crate::auth::require_user(app, req)?;
    Ok(Resp::json(200, &UserResponse::from(&me.user)))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UpdateMeRequest {
    #[schema(min_length = 2, max_length = 100)]
    pub(crate) full_name: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub(crate) email: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses((status = 200, body = UserResponse), (status = 400, description = "Email already registered"),
              (status = 401), (status = 422)))]
pub(crate) fn patch_me(app: &App, req: &Req) -> Result<Resp> {
    let me = crate::auth::require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let name = f.optional::<FullName>("full_name");
    let email = f.optional::<Email>("email");
    f.finish()?;
    let (name, email) = (name?, email?);
    let (name, email) = (name.map(|FullName(n)| n), email.map(|Email(e)| e));
    let user = app.db.write(|tx| {
        let now = app.clock.iso();
        users::update_profile(tx, &me.user.id, name.as_deref(), email.as_deref(), &now)
    })?;
    Ok(Resp::json(200, &UserResponse::from(&user)))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DeletedResponse {
    #[schema(example = "Account deleted")]
    pub(crate) message: String,
}

#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = DeletedResponse), (status = 401)))]
pub(crate) fn delete_me(app: &App, req: &Req) -> Result<Resp> {
    let me = crate::auth::require_user(app, req)?;
    app.db.write(|tx| accounts::delete(tx, &me.user))?;
    revocation::remember(&app.revoked_access, &app.recent_checks, &me.jti);
    Ok(Resp::json(
        200,
        &DeletedResponse {
            message: "Account deleted".into(),
        },
    ))
}
