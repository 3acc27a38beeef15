//! `/api/v1/metrics`, `/metrics` (Prometheus text) and `/api/v1/stats`: open to a loopback peer
//! that is not a trusted proxy, or with `Authorization: Bearer $METRICS_TOKEN`.

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::auth::users;
use crate::error::Error;
use crate::http::{Req, Resp};

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Local means the TCP peer itself is loopback and is not a trusted proxy: whatever a proxy
/// forwards (or a client claims in `X-Forwarded-For`) never makes a request local.
pub(crate) fn is_local(peer: IpAddr, trusted_proxies: &[IpAddr]) -> bool {
    peer.is_loopback() && !trusted_proxies.contains(&peer)
}

pub(crate) fn require_operator(app: &App, req: &Req) -> Result<(), Error> {
    if is_local(req.peer, &app.config.http.trusted_proxies) {
        return Ok(());
    }
    let bearer = req.header("authorization").and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    });
    match (&app.config.http.metrics_token, bearer) {
        (Some(token), Some(given))
            if constant_time_eq(token.expose().as_bytes(), given.trim().as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(Error::Forbidden {
            code: "forbidden",
            detail: "Metrics are available from loopback (not through a proxy) or with the metrics token".into(),
        }),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RequestCounts {
    pub(crate) total: u64,
    pub(crate) success: u64,
    pub(crate) errors: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LatencyMs {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CacheMetrics {
    pub(crate) enabled: bool,
    pub(crate) hit_rate: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LlmMetrics {
    pub(crate) model: String,
    pub(crate) requests: u64,
    pub(crate) total_tokens: u64,
    pub(crate) errors: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WsMetrics {
    pub(crate) connections: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LogMetrics {
    /// Log lines dropped since start because the log could not keep up (see `logging`).
    pub(crate) dropped_lines: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct MetricsResponse {
    pub(crate) timestamp: String,
    pub(crate) uptime_seconds: u64,
    pub(crate) requests: RequestCounts,
    pub(crate) latency_ms: LatencyMs,
    pub(crate) cache: CacheMetrics,
    pub(crate) llm: LlmMetrics,
    pub(crate) websocket: WsMetrics,
    pub(crate) log: LogMetrics,
}

fn snapshot(app: &App) -> MetricsResponse {
    let m = &app.metrics;
    let p = m.latency_ms();
    MetricsResponse {
        timestamp: app.clock.iso(),
        uptime_seconds: m.uptime().as_secs(),
        requests: RequestCounts {
            total: m.requests_total.load(Ordering::Relaxed),
            success: m.requests_success.load(Ordering::Relaxed),
            errors: m.requests_errors.load(Ordering::Relaxed),
        },
        latency_ms: LatencyMs {
            p50: p.p50,
            p95: p.p95,
            p99: p.p99,
        },
        cache: CacheMetrics {
            enabled: app.config.cache.enabled,
            hit_rate: m.cache_hit_rate(),
        },
        llm: LlmMetrics {
            model: app.config.llm.model.clone(),
            requests: m.llm_requests.load(Ordering::Relaxed),
            total_tokens: m.llm_tokens.load(Ordering::Relaxed),
            errors: m.llm_errors.load(Ordering::Relaxed),
        },
        websocket: WsMetrics {
            connections: m.ws_connections.load(Ordering::Relaxed),
        },
        log: LogMetrics {
            dropped_lines: crate::logging::dropped_lines(),
        },
    }
}

#[utoipa::path(get, path = "/api/v1/metrics", tag = "service",
    responses((status = 200, description = "Counters since start", body = MetricsResponse),
              (status = 403, description = "Not from loopback and no metrics token")))]
pub(crate) fn metrics_json(app: &App, req: &Req) -> Result<Resp, Error> {
    require_operator(app, req)?;
    Ok(Resp::json(200, &snapshot(app)))
}

#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "The same counters in Prometheus text format", content_type = "text/plain"),
              (status = 403, description = "Not from loopback and no metrics token")))]
pub(crate) fn metrics_prometheus(app: &App, req: &Req) -> Result<Resp, Error> {
    require_operator(app, req)?;
    let s = snapshot(app);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(&str, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "wealthcoach_uptime_seconds",
        "gauge",
        "Seconds since start.",
        &[("", s.uptime_seconds.to_string())],
    );
    metric(
        "wealthcoach_http_requests_total",
        "counter",
        "HTTP requests answered, by outcome.",
        &[
            ("{outcome=\"success\"}", s.requests.success.to_string()),
            ("{outcome=\"error\"}", s.requests.errors.to_string()),
        ],
    );
    metric(
        "wealthcoach_http_request_duration_ms",
        "summary",
        "Latency of recent HTTP requests in milliseconds.",
        &[
            ("{quantile=\"0.5\"}", s.latency_ms.p50.to_string()),
            ("{quantile=\"0.95\"}", s.latency_ms.p95.to_string()),
            ("{quantile=\"0.99\"}", s.latency_ms.p99.to_string()),
        ],
    );
    metric(
        "wealthcoach_cache_hit_ratio",
        "gauge",
        "Cache hits over lookups.",
        &[("", s.cache.hit_rate.to_string())],
    );
    metric(
        "wealthcoach_llm_requests_total",
        "counter",
        "Upstream LLM requests.",
        &[("", s.llm.requests.to_string())],
    );
    metric(
        "wealthcoach_llm_tokens_total",
        "counter",
        "LLM tokens used.",
        &[("", s.llm.total_tokens.to_string())],
    );
    metric(
        "wealthcoach_llm_errors_total",
        "counter",
        "Failed LLM requests.",
        &[("", s.llm.errors.to_string())],
    );
    metric(
        "wealthcoach_websocket_connections",
        "gauge",
        "Open WebSocket connections.",
        &[("", s.websocket.connections.to_string())],
    );
    metric(
        "wealthcoach_log_lines_dropped_total",
        "counter",
        "Log lines dropped because the log could not keep up.",
        &[("", s.log.dropped_lines.to_string())],
    );
    let repl = app.db.replication().report();
    metric(
        "wealthcoach_replication_up",
        "gauge",
        "1 when Litestream answers and its last upload is recent, else 0 (also when off).",
        &[("", u8::from(repl.status == "ok").to_string())],
    );
    metric(
        "wealthcoach_replication_last_sync_age_seconds",
        "gauge",
        "Seconds since Litestream's last successful upload; NaN when unknown or off.",
        &[(
            "",
            repl.last_sync_age_seconds
                .map_or_else(|| "NaN".to_string(), |a| a.to_string()),
        )],
    );
    metric(
        "wealthcoach_wal_bytes",
        "gauge",
        "Size of the database's WAL file.",
        &[("", repl.wal_bytes.to_string())],
    );
    Ok(Resp::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        out.into_bytes(),
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct UserStats {
    pub(crate) total: i64,
    pub(crate) active_today: i64,
    pub(crate) active_this_week: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ConversationStats {
    pub(crate) total: i64,
    pub(crate) today: i64,
    pub(crate) average_length: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct QueryStats {
    pub(crate) total: i64,
    pub(crate) today: i64,
    pub(crate) average_response_time_ms: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CostStats {
    pub(crate) llm_tokens_today: i64,
    pub(crate) estimated_cost_today: f64,
    pub(crate) estimated_cost_month: f64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StatsResponse {
    pub(crate) users: UserStats,
    pub(crate) conversations: ConversationStats,
    pub(crate) queries: QueryStats,
    pub(crate) costs: CostStats,
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "service",
    responses((status = 200, description = "Real counts from the database", body = StatsResponse),
              (status = 403, description = "Not from loopback and no metrics token")))]
pub(crate) fn stats(app: &App, req: &Req) -> Result<Resp, Error> {
    require_operator(app, req)?;
    let now = app.clock.now();
    let today = now.strftime("%Y-%m-%d").to_string();
    let day_start = format!("{today}T00:00:00Z");
    let week_start = crate::clock::iso(
        now.checked_sub(jiff::SignedDuration::from_hours(24 * 7))
            .unwrap_or(now),
    );
    let month_prefix = now.strftime("%Y-%m").to_string();
    let body = app.db.read(|c| {
        let chat = crate::chat::records::totals(c, &day_start, &today, &month_prefix)?;
        Ok(StatsResponse {
            users: UserStats {
                total: users::count(c, None)?,
                active_today: users::count(c, Some(&day_start))?,
                active_this_week: users::count(c, Some(&week_start))?,
            },
            conversations: ConversationStats {
                total: chat.sessions,
                today: chat.sessions_today,
                average_length: chat.average_length,
            },
            queries: QueryStats {
                total: chat.questions,
                today: chat.questions_today,
                average_response_time_ms: chat.average_response_ms,
            },
            costs: CostStats {
                llm_tokens_today: chat.tokens_today,
                estimated_cost_today: chat.cost_micros_today as f64 / 1e6,
                estimated_cost_month: chat.cost_micros_month as f64 / 1e6,
            },
        })
    })?;
    Ok(Resp::json(200, &body))
}
