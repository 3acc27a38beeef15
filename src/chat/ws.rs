//! `/ws/chat`: the loop that owns an authenticated chat socket (`crate::ws` did the upgrade,
//! the authentication and the joining of the user's live sockets). One thread per socket.
//! While idle it sleeps in a read of the socket, so a message is handled the moment it lands
//! and idle sockets cost nothing. While answering it waits on its own channel of upstream
//! events, and reads the socket without waiting in between, so a `cancel` is seen within
//! `WAIT_MAX`. The pieces of a round without tools do not pass through it: the thread that
//! reads them from the upstream writes them (`Pieces`). Each turn of the loop also looks at
//! the socket's session flag (replaced, expired, ended).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use tungstenite::Message;

use super::answer::{self, Plan, Question};
use super::history;
use super::toolloop::{Shows, Step, Turn};
use super::upstream::{StreamEvent, Usage};
use crate::app::App;
use crate::auth::AuthUser;
use crate::http::ratelimit::{chat_quota, user_key};
use crate::ws::frames::{Answer, ClientMessage, Conversation, Response, ServerFrame, TokenUsage};
use crate::ws::sessions::Live;
use crate::ws::wire::Outlet;
use crate::ws::{Ended, IDLE_WAIT, Socket, auth};

/// While answering: how long the loop waits on its channel before looking at the socket…
const WAIT: Duration = Duration::from_millis(25);
/// …doubling, while the channel stays silent, up to this. While a model thinks before its
/// first token, at a fixed 25 ms, 1,000 sockets waiting for one woke 40,000 times a second, and `perf` put 15% of the server's samples of a burst in those wake-ups
/// (`benches/chat.rs`, `BENCH_FIRST_TOKEN_MS=1000`). A `cancel` is still seen within this.
const WAIT_MAX: Duration = Duration::from_millis(100);
pub(crate) const MAX_QUESTION_CHARS: usize = 2000;

/// Serves an authenticated `/ws/chat` socket until it ends (`crate::ws::ChatHandler`).
pub(crate) fn serve(app: &Arc<App>, sock: Socket, user: AuthUser, live: &Live) -> Ended {
    ChatSocket::new(app, sock, user, live).run()
}

/// Shows an answer's pieces from the upstream's reader thread: each is a `response` frame
/// written straight to the socket.
struct Pieces {
    outlet: Outlet,
    app: Arc<App>,
}

impl Shows for Pieces {
    fn begin(&self, id: u64, shown: &str) {
        self.outlet.begin(id, shown);
    }

    fn show(&self, id: u64, piece: String) -> bool {
        self.outlet.show(id, piece, |content, piece| {
            ServerFrame::Response(Response {
                content: content.to_string(),
                state: Answer::piece(piece),
                timestamp: self.app.clock.iso(),
            })
            .to_text()
        })
    }

    fn end(&self, id: u64) -> Option<String> {
        self.outlet.end(id)
    }
}

impl From<Usage> for TokenUsage {
    fn from(u: Usage) -> TokenUsage {
        TokenUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        }
    }
}

/// The upstream events of the answer with this id (a cancelled answer may still talk).
type Inbound = (u64, StreamEvent);

struct Answering {
    id: u64,
    turn: Turn,
}

struct ChatSocket<'a> {
    app: &'a App,
    /// What answering uses of `app`.
    coach: answer::Coach<'a>,
    sock: Socket,
    user: AuthUser,
    live: &'a Live,
    session_id: String,
    tx: Sender<Inbound>,
    rx: Receiver<Inbound>,
    answering: Option<Answering>,
    next_id: u64,
    pieces: Arc<dyn Shows>,
}

impl<'a> ChatSocket<'a> {
    fn new(app: &'a Arc<App>, sock: Socket, user: AuthUser, live: &'a Live) -> ChatSocket<'a> {
        let (tx, rx) = channel();
        let pieces = Arc::new(Pieces {
            outlet: sock.outlet(),
            app: app.clone(),
        });
        ChatSocket {
            app,
            coach: super::coach(app),
            sock,
            user,
            live,
            session_id: crate::random::uuid(),
            tx,
            rx,
            answering: None,
            next_id: 0,
            pieces,
        }
    }

    fn send(&mut self, frame: ServerFrame) -> Result<(), Ended> {
        self.sock.send(&frame).map_err(|_| Ended::Gone)
    }

    fn error(&mut self, code: &'static str, message: impl Into<String>) -> Result<(), Ended> {
        self.send(ServerFrame::error(code, message))
    }

    /// A `response` frame: the answer so far and its state.
    fn respond(&mut self, content: String, state: Answer) -> Result<(), Ended> {
        let timestamp = self.app.clock.iso();
        self.send(ServerFrame::Response(Response {
            content,
            state,
            timestamp,
        }))
    }

    fn run(mut self) -> Ended {
        let connected = ServerFrame::Connected {
            message: "Connected to Wealth Coach AI",
            timestamp: self.app.clock.iso(),
            session_id: Some(self.session_id.clone()),
        };
        let ended = match self.send(connected) {
            Ok(()) => self.pump(),
            Err(e) => e,
        };
        // A client that left mid-answer stops the upstream read too.
        if let Some(mut a) = self.answering.take() {
            a.turn.cancel();
            answer::finish_cancelled(&self.coach, &a.turn.question, &a.turn.shown);
        }
        self.sock.close_for(&ended);
        ended
    }

    fn pump(&mut self) -> Ended {
        let mut wait = WAIT;
        loop {
            if self.app.is_stopping() {
                return Ended::ServerStopping;
            }
            if let Some(e) = self.live.ending() {
                return e;
            }
            if self.answering.is_none() {
                wait = WAIT;
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
            // Answering: events are taken the moment they arrive; the client is read between
            // them without waiting. A piece written from the upstream's thread may have
            // failed: the socket is gone.
            if self.sock.is_broken() {
                return Ended::Gone;
            }
            let first = self.rx.recv_timeout(wait).ok();
            wait = if first.is_some() {
                WAIT
            } else {
                (wait * 2).min(WAIT_MAX)
            };
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
        let parsed = match msg {
            Message::Text(t) => ClientMessage::parse(t.as_str()),
            Message::Binary(_) => Err(ServerFrame::invalid_json()),
            _ => return Ok(()),
        };
        match parsed {
            Ok(ClientMessage::Ping) => {
                let timestamp = Some(self.app.clock.iso());
                self.send(ServerFrame::Pong { timestamp })
            }
            Ok(ClientMessage::Cancel) => self.cancel(),
            Ok(ClientMessage::Message {
                content,
                conversation,
            }) => self.on_question(content, conversation),
            Ok(ClientMessage::Authenticate { token }) => {
                let (user, reply) = auth::reauthenticate(self.app, self.live, token.as_deref())?;
                self.user = user;
                self.send(reply)
            }
            Err(frame) => self.send(frame),
        }
    }

    fn cancel(&mut self) -> Result<(), Ended> {
        let Some(mut a) = self.answering.take() else {
            return Ok(());
        };
        a.turn.cancel();
        answer::finish_cancelled(&self.coach, &a.turn.question, &a.turn.shown);
        self.respond(a.turn.shown, Answer::cancelled(a.turn.question.session_id))
    }

    fn on_question(&mut self, content: String, conversation: Conversation) -> Result<(), Ended> {
        if let Err(e) = super::require_enabled(&self.app.config) {
            let detail = e.detail();
            return self.error(e.code(), detail.as_str().unwrap_or_default());
        }
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
        let session = match conversation {
            Conversation::Current => self.session_id.clone(),
            Conversation::Named(id) => {
                let taken = self
                    .app
                    .db
                    .read(|c| history::taken_by_other(c, &self.user.user.id, &id));
                match taken {
                    Ok(false) => id,
                    Ok(true) => return self.error("not_found", "Conversation not found"),
                    Err(_) => return self.error("server_error", answer::FAILED),
                }
            }
            Conversation::Invalid => {
                return self.error("invalid_conversation", "conversation_id must be a string");
            }
        };
        let key = user_key(&self.user.user.id);
        let now = self.app.clock.unix();
        if let Err(r) = chat_quota(&self.app.limiter, &self.app.config, &key, now) {
            return self.error(
                "rate_limited",
                format!("Too many messages; try again in {} seconds", r.retry_after),
            );
        }
        let question = Question {
            user_id: self.user.user.id.clone(),
            full_name: self.user.user.full_name.clone(),
            session_id: session,
            text: content,
            client_history: Vec::new(),
        };
        let plan = match answer::prepare(&self.coach, &question) {
            Ok(p) => p,
            Err(e) => {
                log::error!("chat: preparing an answer failed: {e:?}");
                return self.error("server_error", answer::FAILED);
            }
        };
        match plan {
            Plan::Cached(text) => {
                self.respond(text.to_string(), Answer::cached(question.session_id))
            }
            Plan::Fallback {
                code,
                message,
                answer: text,
            } => {
                self.error(code, message)?;
                self.respond(text, Answer::fallback(question.session_id, Vec::new()))
            }
            Plan::Stream(pending) => {
                self.next_id += 1;
                let id = self.next_id;
                let turn = Turn::start(
                    &self.coach,
                    question,
                    pending,
                    id,
                    self.tx.clone(),
                    Some(self.pieces.clone()),
                );
                self.answering = Some(Answering { id, turn });
                Ok(())
            }
        }
    }

    fn on_stream(&mut self, (id, ev): Inbound) -> Result<(), Ended> {
        let Some(a) = self.answering.as_mut().filter(|a| a.id == id) else {
            return Ok(());
        };
        // `content` of each piece frame: what was shown before it, and the piece.
        let mut content = a.turn.shown.clone();
        let steps = a.turn.on_event(&self.coach, ev);
        for step in steps {
            match step {
                Step::Show(piece) => {
                    content.push_str(&piece);
                    self.respond(content.clone(), Answer::piece(piece))?;
                }
                Step::LookingUp(tool) => self.send(ServerFrame::Status {
                    status: "looking_up",
                    tool,
                })?,
                // Saved before the final frame: a client that fetches the history on `done`
                // finds the answer there.
                Step::Done { usage, tools_used } => {
                    let Some(a) = self.answering.take() else {
                        return Ok(());
                    };
                    let state =
                        Answer::complete(a.turn.question.session_id, usage.into(), tools_used);
                    self.respond(a.turn.shown, state)?;
                }
                Step::Failed {
                    code,
                    message,
                    answer: text,
                    tools_used,
                } => {
                    let Some(a) = self.answering.take() else {
                        return Ok(());
                    };
                    self.error(code, message)?;
                    self.respond(
                        text,
                        Answer::fallback(a.turn.question.session_id, tools_used),
                    )?;
                }
            }
        }
        Ok(())
    }
}
