//! Logout is durable (API.md "Security rules"), shown as the attack: a user logs out on a
//! shared device, the server restarts (a deploy, a crash), and whoever kept the old access
//! token tries it again. The built binary runs as a child process; the restart is a `kill -9`
//! right after the logout was answered, on the same database file.

use crate::{common, reliability_support};

use std::net::SocketAddr;

use common::PASSWORD;
use reliability_support::*;
use serde_json::{Value, json};

const EMAIL: &str = "durable@example.com";

fn post(addr: SocketAddr, path: &str, bearer: Option<&str>, body: &Value) -> Reply {
    let text = body.to_string();
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    exchange(addr, "POST", path, &headers, Some(text.as_bytes())).reply(path)
}

/// The access and refresh tokens of a register or login answer.
fn tokens(r: &Reply) -> (String, String) {
    assert!(matches!(r.status, 200 | 201), "{} {}", r.status, r.text());
    let v = r.json();
    let field = |name: &str| v[name].as_str().expect("a token").to_string();
    (field("access_token"), field("refresh_token"))
}

fn me(addr: SocketAddr, access: &str) -> Reply {
    call(addr, "GET", "/api/v1/users/me", access, None, &[]).reply("GET /users/me")
}

fn refused(r: &Reply, code: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["code"], code, "{}", r.text());
}

#[test]
fn a_logged_out_access_token_stays_refused_after_a_restart() {
    let dir = TempDir::new("auth-durable");
    let db = dir.path("app.db");
    let url = db.to_str().expect("utf-8 temp path").to_string();
    let vars = server_vars(&url, "NORMAL");
    let mut server = Server::start(&dir.0, &vars, "before");
    let addr = server.addr;

    let body = json!({"email": EMAIL, "password": PASSWORD, "full_name": "Durable Tester"});
    let (gone, gone_refresh) = tokens(&post(addr, "/api/v1/auth/register", None, &body));
    let login = json!({"email": EMAIL, "password": PASSWORD});
    let (kept, _) = tokens(&post(addr, "/api/v1/auth/login", None, &login));

    let out = post(
        addr,
        "/api/v1/auth/logout",
        Some(&gone),
        &json!({ "refresh_token": gone_refresh }),
    );
    assert_eq!(out.status, 200, "{}", out.text());
    refused(&me(addr, &gone), "token_revoked");
    server.kill9();

    let server = Server::start(&dir.0, &vars, "after");
    let addr = server.addr;
    refused(&me(addr, &gone), "token_revoked");
    // Control: the other session's access token, as old, still opens the route.
    let r = me(addr, &kept);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["email"], EMAIL);
}
