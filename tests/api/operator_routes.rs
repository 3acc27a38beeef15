//! `/metrics`, `/api/v1/metrics` and `/api/v1/stats` count as local only when the TCP peer
//! itself is loopback and not a trusted proxy. Through a proxy (here: any request whose peer is
//! 127.0.0.1 with TRUSTED_PROXIES=127.0.0.1) they need `METRICS_TOKEN`, whatever
//! `X-Forwarded-For` says; a direct loopback peer that is not a proxy (127.0.0.2) needs none.

use crate::common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use socket2::{Domain, Socket, Type};

const OPERATOR_ROUTES: [&str; 3] = ["/metrics", "/api/v1/metrics", "/api/v1/stats"];
const TOKEN: &str = "metrics-token-0123456789";

/// One `GET` from a client socket bound to `from`, so the server sees that peer.
fn get_from(from: IpAddr, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(from, 0).into()).expect("bind");
    s.connect(&addr.into()).expect("connect");
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send");
    read_reply(&mut s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn through_a_trusted_proxy_the_operator_routes_need_the_token_whatever_xff_says() {
    let t = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1"), ("METRICS_TOKEN", TOKEN)]);
    let proxy = ip("127.0.0.1");
    let bearer = format!("Bearer {TOKEN}");
    for path in OPERATOR_ROUTES {
        for xff in [
            None,
            Some("unknown"),
            Some("garbage"),
            Some("garbage, 127.0.0.1"),
            Some("127.0.0.1"),
            Some("::1"),
            Some("203.0.113.7"),
        ] {
            let mut headers = Vec::new();
            if let Some(x) = xff {
                headers.push(("X-Forwarded-For", x));
            }
            let r = get_from(proxy, t.http, path, &headers);
            assert_eq!(r.status, 403, "{path} XFF {xff:?}: {}", r.text());
            assert_eq!(r.json()["code"], "forbidden", "{path} XFF {xff:?}");

            headers.push(("Authorization", &bearer));
            let r = get_from(proxy, t.http, path, &headers);
            assert_eq!(r.status, 200, "{path} XFF {xff:?} with token: {}", r.text());
        }
        // A wrong token is no better than none.
        let r = get_from(
            proxy,
            t.http,
            path,
            &[("Authorization", "Bearer wrong-token-0123456789")],
        );
        assert_eq!(r.status, 403, "{path} wrong token");
    }
}

#[test]
fn a_direct_loopback_peer_that_is_not_a_proxy_is_local() {
    let t = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1"), ("METRICS_TOKEN", TOKEN)]);
    for path in OPERATOR_ROUTES {
        // Its X-Forwarded-For is not believed either way: it is no proxy.
        for xff in [None, Some("203.0.113.7"), Some("garbage")] {
            let headers: Vec<(&str, &str)> = xff.iter().map(|x| ("X-Forwarded-For", *x)).collect();
            let r = get_from(ip("127.0.0.2"), t.http, path, &headers);
            assert_eq!(r.status, 200, "{path} XFF {xff:?}: {}", r.text());
        }
    }
}

#[test]
fn without_trusted_proxies_loopback_is_local_and_without_a_token_configured_proxies_get_none() {
    // No TRUSTED_PROXIES: the loopback peer is local (production warns about this setup).
    let t = spawn_app();
    for path in OPERATOR_ROUTES {
        let r = get_from(
            ip("127.0.0.1"),
            t.http,
            path,
            &[("X-Forwarded-For", "203.0.113.7")],
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // A proxy with no METRICS_TOKEN configured: closed, even to a bearer of anything.
    let t = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1")]);
    for path in OPERATOR_ROUTES {
        let r = get_from(
            ip("127.0.0.1"),
            t.http,
            path,
            &[("X-Forwarded-For", "unknown"), ("Authorization", "Bearer ")],
        );
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
}
