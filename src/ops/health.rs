//! Service routes: `/`, `/health`, `/api/v1/health`, `/api/v1/health/detailed`, `/api/v1/ready`.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::Error;
use crate::http::{Req, Resp};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize, ToSchema)]
pub(crate) struct RootResponse {
    #[schema(example = "Wealth Coach AI")]
    pub(crate) name: String,
    pub(crate) version: String,
    #[schema(example = "operational")]
    pub(crate) status: String,
    #[schema(example = "/docs")]
    pub(crate) docs: String,
    #[schema(example = "/api/v1/health")]
    pub(crate) health: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SimpleHealth {
    #[schema(example = "healthy")]
    pub(crate) status: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HealthResponse {
    #[schema(example = "healthy")]
    pub(crate) status: String,
    pub(crate) service: String,
    pub(crate) version: String,
    #[schema(example = "2025-10-18T09:30:00Z")]
    pub(crate) timestamp: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DatabaseStatus {
    pub(crate) status: String,
    pub(crate) journal_mode: String,
    pub(crate) size_bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CacheStatus {
    pub(crate) status: String,
    pub(crate) entries: u64,
    pub(crate) hit_rate: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LlmStatus {
    /// `configured` or `not_configured`.
    pub(crate) status: String,
    pub(crate) model: String,
    pub(crate) has_api_key: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SmsStatus {
    pub(crate) status: String,
    pub(crate) provider: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LogStatus {
    /// Lines dropped since start because the log could not keep up (see `logging`).
    pub(crate) dropped_lines: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Dependencies {
    pub(crate) database: DatabaseStatus,
    pub(crate) cache: CacheStatus,
    pub(crate) llm: LlmStatus,
    pub(crate) sms: SmsStatus,
    pub(crate) log: LogStatus,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DetailedHealth {
    /// `healthy` or `degraded`.
    pub(crate) status: String,
    pub(crate) service: String,
    pub(crate) version: String,
    pub(crate) timestamp: String,
    pub(crate) environment: String,
    pub(crate) dependencies: Dependencies,
    pub(crate) chat: ChatStatus,
    /// Litestream's replication as last polled; does not change `status`.
    pub(crate) replication: crate::replication::Report,
}

/// The coach.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChatStatus {
    /// Whether the coach offers its tools upstream: `on` and `off` as `OPENAI_TOOLS` says;
    /// under `auto`, `auto:offered`, or `auto:backed_off` for the 10 minutes after the
    /// upstream refused a request with tools.
    #[schema(pattern = "^(on|off|auto:offered|auto:backed_off)$")]
    pub(crate) tools: &'static str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ReadyResponse {
    pub(crate) ready: bool,
    #[schema(value_type = Object)]
    pub(crate) checks: serde_json::Value,
    pub(crate) timestamp: String,
}

#[utoipa::path(get, path = "/", tag = "service",
    responses((status = 200, description = "Service identity", body = RootResponse)))]
pub(crate) fn root(app: &App, _req: &Req) -> Result<Resp, Error> {
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
pub(crate) fn health(_app: &App, _req: &Req) -> Result<Resp, Error> {
    Ok(Resp::json(
        200,
        &SimpleHealth {
            status: "healthy".into(),
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/health", tag = "service",
    responses((status = 200, description = "Liveness with identity", body = HealthResponse)))]
pub(crate) fn api_health(app: &App, _req: &Req) -> Result<Resp, Error> {
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
pub(crate) fn detailed(app: &App, _req: &Req) -> Result<Resp, Error> {
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
            log: LogStatus {
                dropped_lines: crate::logging::dropped_lines(),
            },
        },
        chat: ChatStatus {
            tools: app.chat_tools.state(app.clock.unix()),
        },
        replication: app.db.replication().report(),
    };
    Ok(Resp::json(200, &body))
}

#[utoipa::path(get, path = "/api/v1/ready", tag = "service",
    responses((status = 200, description = "Ready to serve", body = ReadyResponse),
              (status = 503, description = "The database is not usable", body = ReadyResponse)))]
pub(crate) fn ready(app: &App, _req: &Req) -> Result<Resp, Error> {
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
