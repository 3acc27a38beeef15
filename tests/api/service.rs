//! The service routes answer in the contract's shape, and every response carries the
//! cross-cutting headers.

use crate::common;

use common::*;
use serde_json::json;

#[test]
fn root_and_health_routes_answer_in_the_contract_shape() {
    let t = spawn_app();
    let root = get(t.http, "/").json();
    assert_eq!(root["name"], "Wealth Coach AI");
    assert_eq!(root["status"], "operational");
    assert_eq!(root["docs"], "/docs");
    assert_eq!(root["health"], "/api/v1/health");
    assert!(root["version"].is_string());

    assert_eq!(get(t.http, "/health").json(), json!({"status": "healthy"}));

    let h = get(t.http, "/api/v1/health").json();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["service"], "Wealth Coach AI");
    let ts = h["timestamp"].as_str().expect("timestamp");
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");

    let d = get(t.http, "/api/v1/health/detailed").json();
    assert_eq!(d["status"], "healthy");
    assert_eq!(d["environment"], "test");
    assert_eq!(d["dependencies"]["database"]["status"], "healthy");
    assert_eq!(d["dependencies"]["database"]["journal_mode"], "wal");
    assert!(
        d["dependencies"]["database"]["size_bytes"]
            .as_u64()
            .expect("size")
            > 0
    );
    assert_eq!(d["dependencies"]["llm"]["status"], "not_configured");
    assert_eq!(d["dependencies"]["llm"]["has_api_key"], false);
    assert_eq!(d["dependencies"]["sms"]["provider"], "console");
    assert!(d["dependencies"]["cache"]["hit_rate"].is_number());
}

#[test]
fn ready_is_503_when_the_database_file_is_gone() {
    let t = spawn_app();
    let r = get(t.http, "/api/v1/ready");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
    std::fs::remove_file(t.db_path()).expect("remove db");
    let r = get(t.http, "/api/v1/ready");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    assert!(
        r.json()["checks"]["database"]
            .as_str()
            .expect("reason")
            .contains("removed")
    );
    let d = get(t.http, "/api/v1/health/detailed").json();
    assert_eq!(d["status"], "degraded");
}

#[test]
fn unknown_paths_are_404_json_and_wrong_methods_405_with_allow() {
    let t = spawn_app();
    let r = get(t.http, "/api/v1/nothing-here");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"detail": "Not Found", "code": "not_found"})
    );

    let r = request(t.http, "DELETE", "/api/v1/health", &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], "method_not_allowed");
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn every_response_has_request_id_and_security_headers() {
    let t = spawn_app();
    for (method, path) in [
        ("GET", "/health"),
        ("GET", "/missing"),
        ("PUT", "/health"),
        ("GET", "/openapi.json"),
    ] {
        let r = request(t.http, method, path, &[], None);
        let rid = r.header("X-Request-ID").expect("request id");
        assert_eq!(rid.len(), 36, "{method} {path}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
        assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"));
        assert!(r.header("Content-Security-Policy").is_some());
        assert!(
            r.header("Strict-Transport-Security").is_none(),
            "HSTS only in production"
        );
    }
    let r = request(
        t.http,
        "GET",
        "/health",
        &[("X-Request-ID", "abc-123")],
        None,
    );
    assert_eq!(r.header("X-Request-ID"), Some("abc-123"));
}

#[test]
fn cors_allows_listed_origins_only_and_preflight_is_204_anywhere() {
    let t = spawn_app_with(&[("CORS_ORIGINS", "https://app.example.com")]);
    let pre = request(
        t.http,
        "OPTIONS",
        "/api/v1/anything/at/all",
        &[
            ("Origin", "https://app.example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        pre.header("Access-Control-Allow-Headers"),
        // The contract's four, and the conditional headers of its ETags and If-Match.
        Some("authorization, content-type, idempotency-key, x-request-id, if-match, if-none-match")
    );
    assert!(
        pre.header("Access-Control-Allow-Methods")
            .expect("methods")
            .contains("PATCH")
    );

    let evil = request(
        t.http,
        "OPTIONS",
        "/api/v1/health",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        None,
    );
    assert_eq!(evil.status, 204);
    assert_eq!(evil.header("Access-Control-Allow-Origin"), None);

    // Also on errors.
    let r = request(
        t.http,
        "GET",
        "/nope",
        &[("Origin", "https://app.example.com")],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert_ne!(r.header("Access-Control-Allow-Origin"), Some("*"));
    // A browser app reads the ETag it sends back in If-None-Match.
    let exposed = r.header("Access-Control-Expose-Headers").expect("exposed");
    assert!(
        exposed
            .split(',')
            .any(|h| h.trim().eq_ignore_ascii_case("etag")),
        "{exposed}"
    );
}

#[test]
fn metrics_count_requests_and_report_percentiles() {
    let t = spawn_app();
    for _ in 0..5 {
        assert_eq!(get(t.http, "/health").status, 200);
    }
    assert_eq!(get(t.http, "/missing").status, 404);
    let m = get(t.http, "/api/v1/metrics").json();
    assert!(m["requests"]["total"].as_u64().expect("total") >= 6);
    assert!(m["requests"]["success"].as_u64().expect("success") >= 5);
    assert!(m["requests"]["errors"].as_u64().expect("errors") >= 1);
    assert!(
        m["latency_ms"]["p99"].as_f64().expect("p99")
            >= m["latency_ms"]["p50"].as_f64().expect("p50")
    );
    assert_eq!(m["websocket"]["connections"], 0);
    assert!(m["uptime_seconds"].is_u64());

    let p = get(t.http, "/metrics");
    assert_eq!(p.status, 200);
    let text = p.text();
    assert!(
        text.contains("# TYPE wealthcoach_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("wealthcoach_http_requests_total{outcome=\"error\"}"),
        "{text}"
    );
    assert!(
        text.contains("wealthcoach_http_request_duration_ms{quantile=\"0.99\"}"),
        "{text}"
    );
}

#[test]
fn metrics_and_stats_need_loopback_or_the_token() {
    // The test client is on loopback, so pretend to be a remote client behind a trusted proxy.
    let t = spawn_app_with(&[
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("METRICS_TOKEN", "metrics-token-123"),
    ]);
    for path in ["/metrics", "/api/v1/metrics", "/api/v1/stats"] {
        let r = request(
            t.http,
            "GET",
            path,
            &[("X-Forwarded-For", "203.0.113.7")],
            None,
        );
        assert_eq!(r.status, 403, "{path}");
        let r = request(
            t.http,
            "GET",
            path,
            &[
                ("X-Forwarded-For", "203.0.113.7"),
                ("Authorization", "Bearer metrics-token-123"),
            ],
            None,
        );
        assert_eq!(r.status, 200, "{path}");
    }
}

#[test]
fn stats_are_real_counts() {
    let t = spawn_app();
    let s = get(t.http, "/api/v1/stats").json();
    assert_eq!(s["users"]["total"], 0);
    assert_eq!(s["conversations"]["total"], 0);
    assert_eq!(s["queries"]["total"], 0);
    assert_eq!(s["costs"]["llm_tokens_today"], 0);
    t.app()
        .db
        .write(|tx| {
            tx.execute(
                "INSERT INTO users (id, mobile_number, password_hash, full_name, last_seen_at)
                 VALUES ('u1', '+919876543210', 'x', 'Asha', strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                [],
            )?;
            Ok(())
        })
        .expect("insert");
    let s = get(t.http, "/api/v1/stats").json();
    assert_eq!(s["users"]["total"], 1);
    assert_eq!(s["users"]["active_today"], 1);
}

#[test]
fn docs_and_openapi_are_served_from_the_binary() {
    let t = spawn_app();
    let r = get(t.http, "/docs");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/docs/"));
    let index = get(t.http, "/docs/");
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("Content-Type")
            .expect("type")
            .starts_with("text/html")
    );
    assert!(index.text().contains("swagger-ui"));
    let init = get(t.http, "/docs/swagger-initializer.js");
    assert_eq!(init.status, 200);
    assert!(init.text().contains("/openapi.json"));
    let bundle = get(t.http, "/docs/swagger-ui-bundle.js");
    assert_eq!(bundle.status, 200);
    assert!(bundle.body.len() > 100_000);

    let doc = get(t.http, "/openapi.json").json();
    assert!(
        doc["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.1.")
    );
    assert!(doc["paths"]["/api/v1/health"]["get"].is_object());
}

#[test]
fn every_route_is_in_the_openapi_document() {
    let doc: serde_json::Value =
        serde_json::from_str(crate::internals::openapi_document()).expect("valid JSON");
    let router = crate::internals::routes();
    for r in router.routes().iter().filter(|r| r.documented) {
        let method = r.method.to_ascii_lowercase();
        assert!(
            doc["paths"][r.pattern][&method].is_object(),
            "{} {} is missing from /openapi.json",
            r.method,
            r.pattern
        );
    }
}
