//! Who a socket belongs to: the `?token=` of the upgrade or a first `authenticate` message,
//! and the in-band `authenticate` that renews an open socket's session (both endpoints).

use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use super::frames::{ClientMessage, ServerFrame};
use super::sessions::Live;
use super::{Ended, IDLE_WAIT, Socket};
use crate::app::App;
use crate::auth::{AuthUser, authenticate_token};

/// Authenticates the socket: `?token=` from the upgrade, or a first `authenticate` message
/// within `WS_AUTH_TIMEOUT_SECONDS`. On failure the socket is closed with 1008.
pub(crate) fn authenticate(
    app: &App,
    sock: &mut Socket,
    query_token: Option<String>,
) -> Option<AuthUser> {
    let refuse = |sock: &mut Socket, reason: &str| {
        sock.close(CloseCode::Policy, reason);
        None
    };
    let token = match query_token {
        Some(t) => t,
        None => {
            let deadline = Instant::now() + app.config.ws.auth_timeout;
            let first = loop {
                if Instant::now() >= deadline {
                    return refuse(sock, "Authentication timeout");
                }
                if app.is_stopping() {
                    sock.close(CloseCode::Away, "Server shutting down");
                    return None;
                }
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                match sock.wait(left.min(IDLE_WAIT)) {
                    Ok(Some(Message::Text(t))) => break t.to_string(),
                    Ok(Some(Message::Binary(_))) => return refuse(sock, "Authentication required"),
                    Ok(Some(_)) | Ok(None) => {}
                    Err(_) => return None,
                }
            };
            match ClientMessage::parse(&first) {
                Ok(ClientMessage::Authenticate { token: Some(t) }) => t,
                _ => return refuse(sock, "Authentication required"),
            }
        }
    };
    match check_token(app, &token) {
        Ok(user) => Some(user),
        Err(reason) => refuse(sock, reason),
    }
}

/// The full check of an access token, or the close reason the contract gives its failure.
fn check_token(app: &App, token: &str) -> Result<AuthUser, &'static str> {
    match authenticate_token(app, token, false) {
        Ok(user) => Ok(user),
        Err(crate::error::Error::Forbidden { .. }) => Err("Authentication failed"),
        Err(_) => Err("Invalid token"),
    }
}

/// An `authenticate` on a socket that is already open: a fresh token of the same user carries
/// the socket past the old token's expiry; a bad one closes it like a failed first attempt.
pub(crate) fn reauthenticate(
    app: &App,
    live: &Live,
    token: Option<&str>,
) -> Result<(AuthUser, ServerFrame), Ended> {
    let token = token.ok_or(Ended::AuthFailed("Authentication required"))?;
    let user = check_token(app, token).map_err(Ended::AuthFailed)?;
    if user.user.id != live.user_id() {
        return Err(Ended::AuthFailed("Invalid token"));
    }
    live.renew(&user);
    let expires_at = jiff::Timestamp::from_second(user.expires_at)
        .map(crate::clock::iso)
        .unwrap_or_default();
    let reply = ServerFrame::Authenticated {
        expires_at,
        timestamp: app.clock.iso(),
    };
    Ok((user, reply))
}
