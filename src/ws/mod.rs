//! The WebSocket listener on `WS_PORT`: its own `TcpListener`, a thread per socket, and a
//! loop with a short read timeout so one thread can push frames, answer pings, notice a
//! dead peer and a server stop. `/ws/chat` and `/ws/notifications` are served; any other
//! path gets a 404 at the handshake, and a request that is not an upgrade gets a 426. The
//! handshake also admits or refuses the client's address (`admission`); authenticated sockets
//! are listed per user (`sessions`), which replaces and ends them.

pub(crate) mod admission;
pub(crate) mod auth;
pub(crate) mod frames;
pub(crate) mod notifications;
pub(crate) mod sessions;
pub(crate) mod wire;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::app::App;
use crate::auth::AuthUser;
use frames::ServerFrame;
use sessions::Live;
use wire::{Outlet, Wire};

/// How long a client may take to finish the HTTP upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// While idle: how long a read of the socket waits (bounds how late a server stop is seen).
pub(crate) const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Serves an authenticated `/ws/chat` socket until it ends. The chat module provides it, so
/// this module needs nothing of chat's.
pub(crate) type ChatHandler = fn(&Arc<App>, Socket, AuthUser, &Live) -> Ended;

/// What the server keeps about its sockets, shared by its threads (not by the rest of the
/// application).
#[derive(Default)]
pub(crate) struct Sockets {
    /// Authenticated sockets per (user, endpoint): the per-user cap and the session watcher.
    pub(crate) sessions: sessions::Sessions,
    /// Unauthenticated sockets per client address, for `WS_MAX_PENDING_PER_IP`.
    pub(crate) pending: Arc<admission::Pending>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Chat,
    Notifications,
}

impl Endpoint {
    fn from_path(path: &str) -> Option<Endpoint> {
        match path.trim_end_matches('/') {
            "/ws/chat" => Some(Endpoint::Chat),
            "/ws/notifications" => Some(Endpoint::Notifications),
            _ => None,
        }
    }
}

/// What the handshake learned: where the client wants to go, the `?token=` it brought, and
/// its place among its address's unauthenticated sockets.
#[derive(Default)]
pub(crate) struct Upgrade {
    pub(crate) endpoint: Option<Endpoint>,
    pub(crate) token: Option<String>,
    pub(crate) pending: Option<admission::PendingSlot>,
}

pub(crate) struct WsServer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl WsServer {
    pub(crate) fn start(
        app: Arc<App>,
        listener: TcpListener,
        chat: ChatHandler,
    ) -> Result<WsServer, String> {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let sockets = Arc::new(Sockets::default());
        let watcher = sessions::spawn_watcher(app.clone(), sockets.clone())
            .map_err(|e| format!("cannot start the WebSocket session watcher: {e}"))?;
        let accept = std::thread::Builder::new()
            .name("ws-accept".into())
            .spawn(move || accept_loop(&app, &sockets, &listener, chat))
            .map_err(|e| format!("cannot start the WebSocket listener: {e}"))?;
        Ok(WsServer {
            addr,
            accept,
            watcher,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wakes the accept loop (it checks the stop flag after each accept) and waits for it.
    pub(crate) fn stop(self, deadline: Instant) {
        let _ = TcpStream::connect_timeout(
            &crate::http::server::local(self.addr),
            Duration::from_millis(200),
        );
        while !(self.accept.is_finished() && self.watcher.is_finished())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn accept_loop(app: &Arc<App>, sockets: &Arc<Sockets>, listener: &TcpListener, chat: ChatHandler) {
    loop {
        let accepted = listener.accept();
        if app.is_stopping() {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends pass; back off instead of spinning or giving up.
                log::warn!("ws accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let open = app.metrics.ws_connections.load(Ordering::Relaxed);
        if open >= app.config.ws.max_connections as i64 {
            log::warn!("ws: refusing a connection, {open} already open");
            refuse(stream, 503, "Too many connections");
            continue;
        }
        let app = app.clone();
        let sockets = sockets.clone();
        let spawned = std::thread::Builder::new()
            .name("ws".into())
            .stack_size(256 * 1024)
            .spawn(move || serve(&app, &sockets, stream, chat));
        if let Err(e) = spawned {
            log::error!("ws: cannot start a socket thread: {e}");
        }
    }
}

/// The JSON body of every HTTP answer on the WebSocket port: the API's error shape.
fn refusal_body(detail: &str, code: &str) -> String {
    json!({"detail": detail, "code": code}).to_string()
}

/// A plain HTTP answer on the WebSocket port, for requests that never became a WebSocket.
fn refuse(mut stream: TcpStream, status: u16, detail: &str) {
    // Each status keeps its own code: a full server used to answer 503 "bad_request".
    let (reason, code) = match status {
        400 => ("Bad Request", "bad_request"),
        426 => ("Upgrade Required", "upgrade_required"),
        _ => ("Service Unavailable", "too_many_connections"),
    };
    let body = refusal_body(detail, code);
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUpgrade: websocket\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

pub(crate) fn ws_config(app: &App) -> WebSocketConfig {
    WebSocketConfig::default()
        // tungstenite's default 128 KiB read buffer (zeroed before reads) per socket would be
        // 125 MB for a thousand sockets; it still grows for a large frame.
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(app.config.ws.max_frame_bytes))
        .max_frame_size(Some(app.config.ws.max_frame_bytes))
}

fn query_token(query: Option<&str>) -> Option<String> {
    let pairs = crate::http::request::parse_query(query?);
    pairs
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The handshake's refusal of an upgrade: a JSON body, and `Retry-After`.
fn refused_upgrade(r: &admission::Refused) -> ErrorResponse {
    use tungstenite::http::{HeaderValue, StatusCode};
    let body = refusal_body(&r.detail, r.code);
    let mut e = ErrorResponse::new(Some(body));
    *e.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let h = e.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("retry-after", HeaderValue::from(r.retry_after));
    if let Some((limit, reset_at)) = r.rate {
        h.insert("x-ratelimit-limit", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(0));
        h.insert("x-ratelimit-reset", HeaderValue::from(reset_at));
    }
    e
}

fn serve(app: &Arc<App>, sockets: &Sockets, stream: TcpStream, chat: ChatHandler) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_nodelay(true);
    let Ok(spare) = stream.try_clone() else {
        return;
    };
    let Ok(wire) = Wire::new(stream) else {
        return;
    };
    let mut upgrade = Upgrade::default();
    // tungstenite's callback type fixes the error type; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let endpoint = Endpoint::from_path(req.uri().path());
        if endpoint.is_none() {
            let mut e = ErrorResponse::new(Some(refusal_body("Not Found", "not_found")));
            *e.status_mut() = tungstenite::http::StatusCode::NOT_FOUND;
            return Err(e);
        }
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let client = crate::http::middleware::client_ip(
            peer.ip(),
            forwarded,
            &app.config.http.trusted_proxies,
        );
        upgrade.pending =
            Some(admission::admit(app, &sockets.pending, client).map_err(|r| refused_upgrade(&r))?);
        upgrade.endpoint = endpoint;
        upgrade.token = query_token(req.uri().query());
        Ok(resp)
    };
    let mut ws = match tungstenite::accept_hdr_with_config(wire, callback, Some(ws_config(app))) {
        Ok(ws) => ws,
        Err(tungstenite::HandshakeError::Failure(e)) => {
            // Our callback's 404 was already written; anything else was not a valid upgrade.
            if !matches!(e, tungstenite::Error::Http(_)) {
                log::debug!("ws handshake refused: {e}");
                refuse(
                    spare,
                    426,
                    "This port serves WebSocket upgrades for /ws/chat and /ws/notifications",
                );
            }
            return;
        }
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            refuse(
                spare,
                400,
                "The WebSocket handshake did not complete in time",
            );
            return;
        }
    };
    // The clone was for refusing a failed handshake; the socket has two descriptors already
    // (the wire's reads and its writes).
    drop(spare);
    let Some(endpoint) = upgrade.endpoint else {
        return;
    };
    app.metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    ws.get_mut().dont_wait = true;
    let socket = Socket {
        ws,
        endpoint,
        waiting: None,
        pending: upgrade.pending,
    };
    run(app, &sockets.sessions, socket, upgrade.token, chat);
    app.metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}

/// Authenticates an upgraded socket, lists it among its user's sockets (`sessions`) and
/// serves its endpoint until it ends.
fn run(
    app: &Arc<App>,
    sessions: &sessions::Sessions,
    mut sock: Socket,
    query_token: Option<String>,
    chat: ChatHandler,
) {
    let Some(user) = auth::authenticate(app, &mut sock, query_token) else {
        return;
    };
    sock.authenticated();
    let cap = app.config.ws.max_connections_per_user;
    let member = sessions.join(&user, sock.endpoint, cap);
    let ended = match sock.endpoint {
        Endpoint::Chat => chat(app, sock, user, &member),
        Endpoint::Notifications => notifications::serve(app, sock, &user, &member),
    };
    log::debug!("ws socket ended: {ended:?}");
}

/// One accepted WebSocket and what it serves.
pub(crate) struct Socket {
    pub(crate) ws: WebSocket<Wire>,
    pub(crate) endpoint: Endpoint,
    /// The read timeout set on the socket for `wait` (`None`: the handshake's).
    waiting: Option<Duration>,
    /// Held until the socket authenticates: it counts against `WS_MAX_PENDING_PER_IP`.
    pending: Option<admission::PendingSlot>,
}

/// What ended a socket's loop.
#[derive(Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the variants say how a socket ended
pub(crate) enum Ended {
    ClientClosed,
    Gone,
    ServerStopping,
    TooBig,
    /// A newer socket of the same user took this one's place (4000).
    Replaced,
    /// The access token expired and no fresh one came in band (4001).
    SessionExpired,
    /// Logged out everywhere, deleted or deactivated (4001).
    SessionEnded,
    /// An in-band `authenticate` that failed (1008, with the reason).
    AuthFailed(&'static str),
}

impl Socket {
    /// The socket has authenticated: it no longer counts as pending for its address.
    pub(crate) fn authenticated(&mut self) {
        self.pending = None;
    }

    /// Sends a frame. Writes block (`wire`): a client that stops reading and lets the
    /// socket's buffer fill is dropped after the write timeout (10 s).
    pub(crate) fn send(&mut self, frame: &ServerFrame) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(frame.to_text()))
    }

    /// Writes an answer's pieces from another thread (`wire::Outlet`).
    pub(crate) fn outlet(&self) -> Outlet {
        self.ws.get_ref().outlet()
    }

    /// A write to the socket failed, from this thread or an outlet's.
    pub(crate) fn is_broken(&self) -> bool {
        self.ws.get_ref().is_broken()
    }

    /// Closes as the way the loop ended asks: 1009 for an oversized frame.
    pub(crate) fn close_for(&mut self, ended: &Ended) {
        match ended {
            Ended::TooBig => self.close(CloseCode::Size, "Message too big"),
            Ended::ServerStopping => self.close(CloseCode::Away, "Server shutting down"),
            Ended::Replaced => self.close(CloseCode::from(4000), "Replaced by a newer connection"),
            Ended::SessionExpired => self.close(CloseCode::from(4001), "Session expired"),
            Ended::SessionEnded => self.close(CloseCode::from(4001), "Session ended"),
            Ended::AuthFailed(reason) => self.close(CloseCode::Policy, reason),
            // tungstenite queued the reply to the client's close; send it.
            Ended::ClientClosed => {
                let _ = self.ws.flush();
            }
            Ended::Gone => {}
        }
    }

    pub(crate) fn close(&mut self, code: CloseCode, reason: &str) {
        let _ = self.ws.close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        }));
        // After an oversized frame the reader is mid-frame; reading on is not allowed (it
        // would parse the rest of that frame): send the close and go.
        if code == CloseCode::Size {
            let _ = self.ws.flush();
            return;
        }
        // Give the close frame a moment to leave and the client's reply to arrive.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            match self.ws.read() {
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    let _ = self.ws.flush();
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Reads without waiting: `Ok(None)` when the client sent nothing yet.
    pub(crate) fn poll(&mut self) -> Result<Option<Message>, Ended> {
        self.ws.get_mut().dont_wait = true;
        self.read_frame()
    }

    /// Waits up to `timeout` for a frame: how an idle socket sleeps without polling, so a
    /// thousand idle sockets cost no CPU and a client's message is read the moment it lands.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<Option<Message>, Ended> {
        self.ws.get_mut().dont_wait = false;
        if self.waiting != Some(timeout) {
            if self
                .ws
                .get_ref()
                .stream()
                .set_read_timeout(Some(timeout))
                .is_err()
            {
                return Err(Ended::Gone);
            }
            self.waiting = Some(timeout);
        }
        self.read_frame()
    }

    fn read_frame(&mut self) -> Result<Option<Message>, Ended> {
        match self.ws.read() {
            Ok(Message::Close(_)) => Err(Ended::ClientClosed),
            Ok(m) => Ok(Some(m)),
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                // tungstenite queues pong replies; push them out while idle.
                let _ = self.ws.flush();
                Ok(None)
            }
            Err(tungstenite::Error::Capacity(_)) => Err(Ended::TooBig),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Err(Ended::ClientClosed)
            }
            Err(_) => Err(Ended::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_tokens() {
        assert_eq!(Endpoint::from_path("/ws/chat"), Some(Endpoint::Chat));
        assert_eq!(
            Endpoint::from_path("/ws/notifications/"),
            Some(Endpoint::Notifications)
        );
        assert_eq!(Endpoint::from_path("/ws/other"), None);
        assert_eq!(
            query_token(Some("a=1&token=abc%2Edef")),
            Some("abc.def".into())
        );
        assert_eq!(query_token(Some("token=")), None);
        assert_eq!(query_token(None), None);
    }
}
