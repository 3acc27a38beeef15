//! Service routes: `/`, `/health`, `/api/v1/health`, `/api/v1/health/detailed`, `/api/v1/ready`.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::Error;
use crate::http::{Req, Resp};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize, ToSchema)]
pub struct RootResponse {
    #[schema(example = "Wealth Coach AI")]
    pub name: String,
    pub version: String,
    #[schema(example = "operational")]
    pub status: String,
    #[schema(example = "/docs")]
    pub docs: String,
    #[schema(example = "/api/v1/health")]
    pub health: String,
}

#[derive(Serialize, ToSchema)]
pub struct SimpleHealth {
    #[schema(example = "healthy")]
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "healthy")]
    pub status: String,
    pub service: String,
    pub version: String,
    #[schema(example = "2025-10-18T09:30:00Z")]
    pub timestamp: String,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseStatus {
    pub status: String,
    pub journal_mode: String,
    pub size_bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CacheStatus {
    pub status: String,
    pub entries: u64,
    pub hit_rate: f64,
}

#[derive(Serialize, ToSchema)]
pub struct LlmStatus {
    /// `configured` or `not_configured`.
    pub status: String,
    pub model: String,
    pub has_api_key: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SmsStatus {
    pub status: String,
    pub provider: String,
}

#[derive(Serialize, ToSchema)]
pub struct Dependencies {
    pub database: DatabaseStatus,
    pub cache: CacheStatus,
    pub llm: LlmStatus,
    pub sms: SmsStatus,
}

#[derive(Serialize, ToSchema)]
pub struct DetailedHealth {
    /// `healthy` or `degraded`.
    pub status: String,
    pub service: String,
    pub version: String,
    pub timestamp: String,
    pub environment: String,
    pub dependencies: Dependencies,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyResponse {
    pub ready: bool,
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
    pub timestamp: String,
}

#[utoipa::path(get, path = "/", tag = "service",
    responses((status = 200, description = "Service identity", body = RootResponse)))]
pub fn root(app: &App, _req: &Req) -> Result<Resp, Error> {
    Ok(Resp::json(
        200,
        &RootResponse {
            name: app.config.app_name.clone(),
            version: VERSION.into(),
            status: "operational".into(),
            docs: "/docs".into(),
            health: "/api/v1/health".into(),
        },
    ))
}

#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "Liveness", body = SimpleHealth)))]
pub fn health(_app: &App, _req: &Req) -> Result<Resp, Error> {
    Ok(Resp::json(
        200,
        &SimpleHealth {
            status: "healthy".into(),
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/health", tag = "service",
    responses((status = 200, description = "Liveness with identity", body = HealthResponse)))]
pub fn api_health(app: &App, _req: &Req) -> Result<Resp, Error> {
    Ok(Resp::json(
        200,
        &HealthResponse {
            status: "healthy".into(),
            service: app.config.app_name.clone(),
            version: VERSION.into(),
            timestamp: app.clock.iso(),
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/health/detailed", tag = "service",
    responses((status = 200, description = "Each dependency's state", body = DetailedHealth)))]
pub fn detailed(app: &App, _req: &Req) -> Result<Resp, Error> {
    let c = &app.config;
    let db_ok = app.db.check();
    let journal_mode = app.db.journal_mode().unwrap_or_else(|_| "unknown".into());
    let body = DetailedHealth {
        status: if db_ok.is_ok() { "healthy" } else { "degraded" }.into(),
        service: c.app_name.clone(),
        version: VERSION.into(),
        timestamp: app.clock.iso(),
        environment: c.environment.as_str().into(),
        dependencies: Dependencies {
            database: DatabaseStatus {
                status: if db_ok.is_ok() {
                    "healthy"
                } else {
                    "unhealthy"
                }
                .into(),
                journal_mode,
                size_bytes: app.db.size_bytes(),
            },
            cache: CacheStatus {
                status: if c.cache.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
                .into(),
                entries: app.cache_entries(),
                hit_rate: app.metrics.cache_hit_rate(),
            },
            llm: LlmStatus {
                status: if c.llm.api_key.is_some() {
                    "configured"
                } else {
                    "not_configured"
                }
                .into(),
                model: c.llm.model.clone(),
                has_api_key: c.llm.api_key.is_some(),
            },
            sms: SmsStatus {
                status: "configured".into(),
                provider: c.sms.provider.as_str().into(),
            },
        },
    };
    Ok(Resp::json(200, &body))
}

#[utoipa::path(get, path = "/api/v1/ready", tag = "service",
    responses((status = 200, description = "Ready to serve", body = ReadyResponse),
              (status = 503, description = "The database is not usable", body = ReadyResponse)))]
pub fn ready(app: &App, _req: &Req) -> Result<Resp, Error> {
    let db = app.db.check();
    let ready = db.is_ok() && !app.is_stopping();
    let checks = json!({
        "database": match &db { Ok(()) => "ok".to_string(), Err(e) => e.clone() },
        "accepting": if app.is_stopping() { "stopping" } else { "ok" },
    });
    Ok(Resp::json(
        if ready { 200 } else { 503 },
        &ReadyResponse {
            ready,
            checks,
            timestamp: app.clock.iso(),
        },
    ))
}
