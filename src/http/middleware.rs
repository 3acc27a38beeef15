//! The cross-cutting pieces every response goes through, as plain functions called in one
//! place (`server::dispatch`): request id, client address, CORS, security headers, limits.

use std::net::IpAddr;

use super::request::Req;
use super::response::Resp;
use crate::config::Config;

/// Headers weighing more than this (see `server::header_weight`: bytes plus about 60 per
/// header) get a 431: room for a few dozen ordinary headers and long tokens.
pub(crate) const MAX_HEADER_WEIGHT: usize = 32 * 1024;

/// The contract's four, then the conditional headers its ETags and `If-Match` need (an
/// extension: without them a browser app could not send either).
pub(crate) const CORS_ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, x-request-id, if-match, if-none-match";
pub(crate) const CORS_ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// `ETag` so that a browser app can read the tag it sends back in `If-None-Match`.
const CORS_EXPOSE_HEADERS: &str =
    "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, ETag";

const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
// Swagger UI loads its own script, styles and inline SVG data: images, all from us.
const CSP_DOCS: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                        script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'";

/// The client's id if it is a sane one (so it can go in logs), else a fresh one.
pub(crate) fn request_id(given: Option<&str>) -> String {
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            id.to_string()
        }
        _ => crate::random::uuid(),
    }
}

/// The address of the real client: the peer, or, when the peer is a trusted proxy, the last
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub(crate) fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for part in xff.rsplit(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => last = ip,
            Ok(ip) => return ip,
            Err(_) => return last,
        }
    }
    last
}

/// The allowed origin to echo, if the request came from one we list.
pub(crate) fn allowed_origin<'a>(config: &Config, origin: Option<&'a str>) -> Option<&'a str> {
    origin.filter(|o| config.cors.origins.iter().any(|allowed| allowed == o))
}

pub(crate) fn preflight(config: &Config, req_origin: Option<&str>) -> Resp {
    let mut r = Resp::empty(204)
        .with_header("Access-Control-Allow-Methods", CORS_ALLOW_METHODS)
        .with_header("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS)
        .with_header("Access-Control-Max-Age", "600");
    if let Some(o) = allowed_origin(config, req_origin) {
        r = r.with_header("Access-Control-Allow-Origin", o);
        if config.cors.allow_credentials {
            r = r.with_header("Access-Control-Allow-Credentials", "true");
        }
    }
    r.with_header("Vary", "Origin")
}

/// Adds what every response carries: request id, CORS for listed origins, security headers.
pub(crate) fn finish(config: &Config, req: &Req, resp: &mut Resp) {
    let mut add = |k: &str, v: &str| {
        if resp.header(k).is_none() {
            resp.headers.push((k.to_string(), v.to_string()));
        }
    };
    add("X-Request-ID", &req.request_id);
    add("X-Content-Type-Options", "nosniff");
    add("X-Frame-Options", "DENY");
    add("Referrer-Policy", "no-referrer");
    let docs = req.path == "/docs" || req.path.starts_with("/docs/") || req.path == "/redoc";
    add(
        "Content-Security-Policy",
        if docs { CSP_DOCS } else { CSP_API },
    );
    if config.is_production() {
        add(
            "Strict-Transport-Security",
            "max-age=63072000; includeSubDomains",
        );
    }
    if let Some(o) = allowed_origin(config, req.header("origin")) {
        add("Access-Control-Allow-Origin", o);
        if config.cors.allow_credentials {
            add("Access-Control-Allow-Credentials", "true");
        }
        add("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
        add("Vary", "Origin");
    }
}

/// The path and nothing of the query: queries can hold tokens (`/ws/chat?token=`).
pub(crate) fn loggable_path(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_echoed_only_when_sane() {
        assert_eq!(request_id(Some("abc-123")), "abc-123");
        assert_ne!(request_id(Some("evil\nlog line")), "evil\nlog line");
        assert_eq!(request_id(Some(&"x".repeat(500))).len(), 36);
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let client: IpAddr = "203.0.113.9".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(client_ip(stranger, Some("203.0.113.9"), &[proxy]), stranger);
        assert_eq!(
            client_ip(proxy, Some("1.2.3.4, 203.0.113.9"), &[proxy]),
            client
        );
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
        assert_eq!(client_ip(proxy, Some("garbage"), &[proxy]), proxy);
        // An unparseable entry stops the walk: the client is the last trusted hop, the one
        // address the rate limiter and the access log both use for it.
        assert_eq!(
            client_ip(proxy, Some("garbage, 127.0.0.1"), &[proxy]),
            proxy
        );
        assert_eq!(client_ip(proxy, Some("unknown"), &[proxy]), proxy);
    }

    #[test]
    fn queries_never_reach_the_log() {
        assert_eq!(loggable_path("/ws/chat?token=secret"), "/ws/chat");
    }
}
