//! `/ws/chat` and `/ws/notifications`: authentication (first, and renewed in band), joining
//! the user's live sockets (`crate::ws::sessions`), and the loop that owns the socket. One
//! thread per socket. While idle it sleeps in a read of the socket, so a message is handled
//! the moment it lands and idle sockets cost nothing. While answering it waits on its own
//! channel of upstream pieces, forwarding each the moment it arrives, and reads the socket
//! without waiting in between, so a `cancel` is seen within `WAIT`. Each turn of a loop also
//! looks at the socket's session flag (replaced, expired, ended).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use super::answer::{self, Pending, Plan, Question};
use super::history;
use super::upstream::{self, StreamEvent, StreamHandle, UpstreamError};
use crate::app::App;
use crate::auth::{AuthUser, authenticate_token};
use crate::http::ratelimit::Quota;
use crate::ws::sessions::Live;
use crate::ws::{Ended, Endpoint, Socket, error_frame};

/// While answering: how long the loop waits on its channel before looking at the socket.
const WAIT: Duration = Duration::from_millis(25);
/// Notifications: how long the loop waits for an event before reading the socket.
const NOTIFY_WAIT: Duration = Duration::from_millis(250);
/// While idle: how long a read of the socket waits (bounds how late a server stop is seen).
const IDLE_WAIT: Duration = Duration::from_millis(500);
pub const MAX_QUESTION_CHARS: usize = 2000;

fn now(app: &App) -> String {
    app.clock.iso()
}

/// Authenticates the socket: `?token=` from the upgrade, or a first `authenticate` message
/// within `WS_AUTH_TIMEOUT_SECONDS`. On failure the socket is closed with 1008.
fn authenticate(app: &App, sock: &mut Socket, query_token: Option<String>) -> Option<AuthUser> {
    let refuse = |sock: &mut Socket, reason: &str| {
        sock.close(CloseCode::Policy, reason);
        None
    };
    let token = match query_token {
        Some(t) => t,
        None => {
            let deadline = Instant::now() + app.config.ws_auth_timeout;
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
            let v: Value = serde_json::from_str(&first).unwrap_or(Value::Null);
            match message_token(&v) {
                Some(t) => t,
                None => return refuse(sock, "Authentication required"),
            }
        }
    };
    match check_token(app, &token) {
        Ok(user) => Some(user),
        Err(reason) => refuse(sock, reason),
    }
}

/// The token of an `{"type":"authenticate","token"}` message.
fn message_token(v: &Value) -> Option<String> {
    match (
        v.get("type").and_then(Value::as_str),
        v.get("token").and_then(Value::as_str),
    ) {
        (Some("authenticate"), Some(t)) if !t.is_empty() => Some(t.to_string()),
        _ => None,
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
fn reauthenticate(app: &App, live: &Live, v: &Value) -> Result<(AuthUser, Value), Ended> {
    let token = message_token(v).ok_or(Ended::AuthFailed("Authentication required"))?;
    let user = check_token(app, &token).map_err(Ended::AuthFailed)?;
    if user.user.id != live.user_id() {
        return Err(Ended::AuthFailed("Invalid token"));
    }
    live.renew(&user);
    let expires = jiff::Timestamp::from_second(user.expires_at)
        .map(crate::clock::iso)
        .unwrap_or_default();
    let reply = json!({"type": "authenticated", "expires_at": expires, "timestamp": now(app)});
    Ok((user, reply))
}

/// Serves an upgraded socket until it ends.
pub fn serve(app: &App, mut sock: Socket, query_token: Option<String>) {
    let Some(user) = authenticate(app, &mut sock, query_token) else {
        return;
    };
    sock.authenticated();
    let cap = app.config.ws_max_connections_per_user;
    let member = app.ws_sessions.join(&user, sock.endpoint, cap);
    let ended = match sock.endpoint {
        Endpoint::Chat => ChatSocket::new(app, sock, user, &member).run(),
        Endpoint::Notifications => notifications(app, &mut sock, &user, &member),
    };
    log::debug!("ws socket ended: {ended:?}");
}

/// What a notifications socket answers to a client's frame: `authenticate` renews the
/// socket's session, the rest is shared.
fn notification_reply(app: &App, live: &Live, text: &str) -> Result<Option<Value>, Ended> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("type").and_then(Value::as_str) == Some("authenticate") => {
            reauthenticate(app, live, &v).map(|(_, reply)| Some(reply))
        }
        _ => Ok(crate::ws::basic_reply(text)),
    }
}

fn notifications(app: &App, sock: &mut Socket, user: &AuthUser, live: &Live) -> Ended {
    let rx = app.events.subscribe(&user.user.id);
    if sock
        .send_json(&json!({"type": "connected", "message": "Connected to notifications", "timestamp": now(app)}))
        .is_err()
    {
        return Ended::Gone;
    }
    let mut next_beat = Instant::now() + app.config.ws_heartbeat_interval;
    loop {
        if app.is_stopping() {
            sock.close(CloseCode::Away, "Server shutting down");
            return Ended::ServerStopping;
        }
        if let Some(e) = live.ending() {
            sock.close_for(&e);
            return e;
        }
        match rx.recv_timeout(NOTIFY_WAIT) {
            Ok(event) => {
                if sock.send_json(&event).is_err() {
                    return Ended::Gone;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + app.config.ws_heartbeat_interval;
            if sock
                .send_json(&json!({"type": "heartbeat", "timestamp": now(app)}))
                .is_err()
            {
                return Ended::Gone;
            }
        }
        loop {
            match sock.poll() {
                Ok(Some(Message::Text(t))) => match notification_reply(app, live, t.as_str()) {
                    Ok(Some(reply)) => {
                        if sock.send_json(&reply).is_err() {
                            return Ended::Gone;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        sock.close_for(&e);
                        return e;
                    }
                },
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    sock.close_for(&e);
                    return e;
                }
            }
        }
    }
}

/// The upstream events of the stream with this id (a cancelled stream may still talk).
type Inbound = (u64, StreamEvent);

struct Answering {
    id: u64,
    handle: StreamHandle,
    question: Question,
    pending: Pending,
    content: String,
}

struct ChatSocket<'a> {
    app: &'a App,
    sock: Socket,
    user: AuthUser,
    live: &'a Live,
    session_id: String,
    tx: Sender<Inbound>,
    rx: Receiver<Inbound>,
    answering: Option<Answering>,
    next_id: u64,
}

impl<'a> ChatSocket<'a> {
    fn new(app: &'a App, sock: Socket, user: AuthUser, live: &'a Live) -> ChatSocket<'a> {
        let (tx, rx) = channel();
        ChatSocket {
            app,
            sock,
            user,
            live,
            session_id: crate::random::uuid(),
            tx,
            rx,
            answering: None,
            next_id: 0,
        }
    }

    fn send(&mut self, v: Value) -> Result<(), Ended> {
        self.sock.send_json(&v).map_err(|_| Ended::Gone)
    }

    fn error(&mut self, code: &str, message: &str) -> Result<(), Ended> {
        self.send(error_frame(code, message))
    }

    fn run(mut self) -> Ended {
        let connected = json!({"type": "connected", "message": "Connected to Wealth Coach AI",
                               "timestamp": now(self.app), "session_id": self.session_id});
        let ended = match self.send(connected) {
            Ok(()) => self.pump(),
            Err(e) => e,
        };
        // A client that left mid-answer stops the upstream read too.
        if let Some(a) = self.answering.take() {
            a.handle.cancel();
            answer::finish_cancelled(self.app, &a.question, &a.content);
        }
        match ended {
            Ended::ServerStopping => self.sock.close(CloseCode::Away, "Server shutting down"),
            ref e => self.sock.close_for(e),
        }
        ended
    }

    fn pump(&mut self) -> Ended {
        loop {
            if self.app.is_stopping() {
                return Ended::ServerStopping;
            }
            if let Some(e) = self.live.ending() {
                return e;
            }
            if self.answering.is_none() {
                // Idle: sleep on the socket itself. Events of a cancelled stream may still
                // trickle in; they are dropped by `on_stream`.
                while let Ok(ev) = self.rx.try_recv() {
                    if let Err(e) = self.on_stream(ev) {
                        return e;
                    }
                }
                match self.sock.wait(IDLE_WAIT) {
                    Ok(Some(msg)) => {
                        if let Err(e) = self.on_message(msg) {
                            return e;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return e,
                }
                continue;
            }
            // Answering: pieces are forwarded the moment they arrive; the client is read
            // between them without waiting.
            let first = self.rx.recv_timeout(WAIT).ok();
            for ev in first
                .into_iter()
                .chain(std::iter::from_fn(|| self.rx.try_recv().ok()))
                .collect::<Vec<_>>()
            {
                if let Err(e) = self.on_stream(ev) {
                    return e;
                }
            }
            loop {
                match self.sock.poll() {
                    Ok(Some(msg)) => {
                        if let Err(e) = self.on_message(msg) {
                            return e;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return e,
                }
            }
        }
    }

    fn on_message(&mut self, msg: Message) -> Result<(), Ended> {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(_) => return self.error("invalid_json", "Invalid JSON format"),
            _ => return Ok(()),
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            return self.error("invalid_json", "Invalid JSON format");
        };
        match v.get("type").and_then(Value::as_str) {
            Some("ping") => self.send(json!({"type": "pong", "timestamp": now(self.app)})),
            Some("cancel") => self.cancel(),
            Some("message") => self.on_question(&v),
            Some("authenticate") => {
                let (user, reply) = reauthenticate(self.app, self.live, &v)?;
                self.user = user;
                self.send(reply)
            }
            Some(other) => self.error("unknown_type", &format!("Unknown message type: {other}")),
            None => self.error("unknown_type", "Unknown message type: None"),
        }
    }

    fn cancel(&mut self) -> Result<(), Ended> {
        let Some(a) = self.answering.take() else {
            return Ok(());
        };
        a.handle.cancel();
        answer::finish_cancelled(self.app, &a.question, &a.content);
        self.send(
            json!({"type": "response", "content": a.content, "done": true, "cancelled": true,
                         "session_id": a.question.session_id, "timestamp": now(self.app)}),
        )
    }

    fn on_question(&mut self, v: &Value) -> Result<(), Ended> {
        let content = v
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string();
        if content.is_empty() {
            return self.error("empty_message", "Empty message");
        }
        if content.chars().count() > MAX_QUESTION_CHARS {
            return self.error("message_too_long", "Message too long");
        }
        if self.answering.is_some() {
            return self.error(
                "busy",
                "An answer is already in progress; send cancel first",
            );
        }
        let session = match v.get("conversation_id") {
            None | Some(Value::Null) => self.session_id.clone(),
            Some(Value::String(id)) if !id.is_empty() && id.len() <= 64 => {
                let taken = self
                    .app
                    .db
                    .read(|c| history::taken_by_other(c, &self.user.user.id, id));
                match taken {
                    Ok(false) => id.clone(),
                    Ok(true) => return self.error("not_found", "Conversation not found"),
                    Err(_) => return self.error("server_error", answer::FAILED),
                }
            }
            Some(_) => {
                return self.error("invalid_conversation", "conversation_id must be a string");
            }
        };
        if self.app.config.rate_limit_enabled {
            let q = [Quota {
                limit: self.app.config.chat_rate_limit_per_minute,
                window: 60,
            }];
            let key = format!("chat:user:{}", self.user.user.id);
            if let Err(r) = self.app.limiter.check(&key, &q, self.app.clock.unix()) {
                return self.error(
                    "rate_limited",
                    &format!("Too many messages; try again in {} seconds", r.retry_after),
                );
            }
        }
        let question = Question {
            user_id: self.user.user.id.clone(),
            full_name: self.user.user.full_name.clone(),
            session_id: session,
            text: content,
            client_history: Vec::new(),
        };
        let plan = match answer::prepare(self.app, &question) {
            Ok(p) => p,
            Err(e) => {
                log::error!("chat: preparing an answer failed: {e:?}");
                return self.error("server_error", answer::FAILED);
            }
        };
        match plan {
            Plan::Cached(text) => {
                answer::finish_cached(self.app, &question, &text);
                self.send(json!({"type": "response", "content": *text, "done": true, "cached": true,
                    "session_id": question.session_id, "usage": {"prompt_tokens": 0, "completion_tokens": 0},
                    "timestamp": now(self.app)}))
            }
            Plan::Fallback {
                code,
                message,
                answer: text,
            } => {
                self.error(code, &message)?;
                answer::finish_fallback(self.app, &question, &text);
                self.fallback_frame(&text, &question.session_id)
            }
            Plan::Stream(pending) => {
                self.next_id += 1;
                let id = self.next_id;
                let tx = self.tx.clone();
                let handle =
                    upstream::start(&self.app.config, pending.messages.clone(), move |ev| {
                        tx.send((id, ev)).is_ok()
                    });
                self.answering = Some(Answering {
                    id,
                    handle,
                    question,
                    pending,
                    content: String::new(),
                });
                Ok(())
            }
        }
    }

    fn fallback_frame(&mut self, text: &str, session: &str) -> Result<(), Ended> {
        self.send(json!({"type": "response", "content": text, "done": true, "fallback": true, "cached": false,
                         "session_id": session, "timestamp": now(self.app)}))
    }

    fn on_stream(&mut self, (id, ev): Inbound) -> Result<(), Ended> {
        let Some(a) = self.answering.as_mut().filter(|a| a.id == id) else {
            return Ok(());
        };
        match ev {
            StreamEvent::Delta(piece) => {
                a.content.push_str(&piece);
                let frame = json!({"type": "response", "content": a.content, "delta": piece, "done": false,
                                   "timestamp": now(self.app)});
                self.send(frame)
            }
            StreamEvent::Finished(reported) => {
                let Some(a) = self.answering.take() else {
                    return Ok(());
                };
                let usage = answer::usage_of(&a.pending, &a.content, reported);
                answer::complete(self.app, &a.pending, &a.content, usage);
                // Saved before the final frame: a client that fetches the history on `done`
                // finds the answer there.
                answer::finish_streamed(self.app, &a.question, &a.pending, &a.content, usage);
                self.send(
                    json!({"type": "response", "content": a.content, "done": true,
                    "cached": false, "session_id": a.question.session_id, "usage": usage,
                    "timestamp": now(self.app)}),
                )
            }
            StreamEvent::Failed(UpstreamError::Cancelled) => Ok(()),
            StreamEvent::Failed(why) => {
                let Some(a) = self.answering.take() else {
                    return Ok(());
                };
                let text = answer::failed(self.app, &a.pending, &why);
                self.error("upstream_unavailable", answer::FAILED)?;
                answer::finish_fallback(self.app, &a.question, &text);
                self.fallback_frame(&text, &a.question.session_id)
            }
        }
    }
}
