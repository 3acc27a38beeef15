//! HTTP handlers for onboarding and preferences.

use serde::Serialize;
use utoipa::ToSchema;

use super::onboarding::{self, OnboardingData, Profile};
use super::preferences::{self, Preferences, PreferencesPatch};
use crate::app::App;
use crate::auth::require_user;
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::input::Fields;

#[derive(Serialize, ToSchema)]
pub(crate) struct SubmitResponse {
    pub(crate) message: String,
    pub(crate) profile_completed: bool,
    pub(crate) user_id: String,
}

#[utoipa::path(post, path = "/api/v1/onboarding/submit", tag = "onboarding", security(("bearer" = [])),
    request_body = OnboardingData,
    responses((status = 200, body = SubmitResponse), (status = 401), (status = 422)))]
pub(crate) fn submit(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let data = OnboardingData::parse(&mut f);
    f.finish()?;
    let data = data?;
    app.db
        .write(|tx| onboarding::submit(tx, &me.user.id, &data, &app.clock.iso()))?;
    Ok(Resp::json(
        200,
        &SubmitResponse {
            message: "Onboarding completed successfully! Your profile will help me provide better financial advice."
                .into(),
            profile_completed: true,
            user_id: me.user.id.clone(),
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StatusResponse {
    pub(crate) onboarding_completed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/onboarding/status", tag = "onboarding", security(("bearer" = [])),
    responses((status = 200, body = StatusResponse), (status = 401)))]
pub(crate) fn status(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let body = match app.db.read(|c| onboarding::load(c, &me.user.id))? {
        None => StatusResponse {
            onboarding_completed: false,
            completed_at: None,
            message: Some(
                "Please complete your profile to get personalized financial advice".into(),
            ),
        },
        Some(p) => StatusResponse {
            onboarding_completed: p.onboarding_completed,
            completed_at: p.completed_at,
            message: None,
        },
    };
    Ok(Resp::json(200, &body))
}

#[utoipa::path(get, path = "/api/v1/onboarding/profile", tag = "onboarding", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401), (status = 404)))]
pub(crate) fn profile(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    match app.db.read(|c| onboarding::load(c, &me.user.id))? {
        Some(p) => Ok(Resp::json(200, &p)),
        None => Err(Error::NotFound {
            code: "profile_not_found",
            detail: "Profile not found. Please complete onboarding first.".into(),
        }),
    }
}

#[utoipa::path(get, path = "/api/v1/users/me/preferences", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Preferences), (status = 401)))]
pub(crate) fn get_preferences(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let p = app.db.read(|c| preferences::load(c, &me.user.id))?;
    Ok(Resp::json(200, &p))
}

/// A PATCH of the preferences: only the fields sent change.
#[derive(Serialize, ToSchema)]
pub(crate) struct PreferencesUpdate {
    pub(crate) use_rag: Option<bool>,
    /// `light` or `dark`.
    #[schema(pattern = "^(light|dark)$")]
    pub(crate) theme: Option<String>,
    /// A language tag: `en`, `hi`, `en-IN`.
    #[schema(pattern = "^[A-Za-z-]{2,10}$")]
    pub(crate) language: Option<String>,
    /// An ISO 4217 code.
    #[schema(pattern = "^[A-Z]{3}$", example = "INR")]
    pub(crate) currency: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/me/preferences", tag = "users", security(("bearer" = [])),
    request_body = PreferencesUpdate,
    responses((status = 200, body = Preferences), (status = 401), (status = 422)))]
pub(crate) fn patch_preferences(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let mut f = Fields::body(req)?;
    let patch = PreferencesPatch::parse(&mut f);
    f.finish()?;
    let patch = patch?;
    let p = app
        .db
        .write(|tx| preferences::patch(tx, &me.user.id, patch, &app.clock.iso()))?;
    Ok(Resp::json(200, &p))
}
