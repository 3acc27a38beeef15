//! `/api/v1/chat/*`: one-shot answers, answers streamed as server-sent events, and the
//! conversation history.

use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::answer::{self, Plan, Question};
use super::history;
use super::upstream::ChatMessage;
use crate::app::App;
use crate::auth::{AuthUser, require_user};
use crate::error::{Error, Result};
use crate::http::{Req, Resp};
use crate::input::{Count, Fields, FromJson, Invalid, string_within};

struct QuestionText(String);

impl FromJson for QuestionText {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        let s = string_within(v, 1, super::ws::MAX_QUESTION_CHARS)?;
        if s.trim().is_empty() {
            return Err(Invalid::new(
                "String should have at least 1 character",
                "string_too_short",
            ));
        }
        Ok(QuestionText(s.trim().to_string()))
    }
}

struct History(Vec<ChatMessage>);

impl FromJson for History {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        let Some(items) = v.as_array() else {
            return Err(Invalid::new("Input should be a valid list", "list_type"));
        };
        if items.len() > 20 {
            return Err(Invalid::new(
                "List should have at most 20 items",
                "too_long",
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let role = item.get("role").and_then(Value::as_str);
            let content = item.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r @ ("user" | "assistant")), Some(c)) if c.chars().count() <= 10_000 => out
                    .push(ChatMessage {
                        role: r.into(),
                        content: c.into(),
                    }),
                _ => {
                    return Err(Invalid::new(
                        "Each item needs role 'user' or 'assistant' and a content string",
                        "value_error",
                    ));
                }
            }
        }
        Ok(History(out))
    }
}

struct SessionId(String);

impl FromJson for SessionId {
    fn from_json(v: &Value) -> std::result::Result<Self, Invalid> {
        string_within(v, 1, 64).map(SessionId)
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryItem {
    /// `user` or `assistant`.
    #[schema(pattern = "^(user|assistant)$")]
    pub(crate) role: String,
    #[schema(max_length = 10000)]
    pub(crate) content: String,
    /// Read and ignored: any JSON value.
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) timestamp: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatRequest {
    #[schema(min_length = 1, max_length = 2000)]
    pub(crate) message: String,
    #[schema(max_items = 20)]
    pub(crate) conversation_history: Option<Vec<HistoryItem>>,
    pub(crate) use_rag: Option<bool>,
    pub(crate) stream: Option<bool>,
    /// Continues this session (404 if it is another user's); a new one when absent.
    #[schema(min_length = 1, max_length = 64)]
    pub(crate) session_id: Option<String>,
}

/// Parses a chat request and resolves its session (another user's is a 404).
fn question(app: &App, req: &Req, me: &AuthUser) -> Result<Question> {
    super::require_enabled(&app.config)?;
    let mut f = Fields::body(req)?;
    let text = f.required::<QuestionText>("message");
    let history = f.optional::<History>("conversation_history");
    let _ = f.optional::<bool>("use_rag");
    let _ = f.optional::<bool>("stream");
    let session = f.optional::<SessionId>("session_id");
    f.finish()?;
    let (text, history, session) = (text?, history?, session?);
    let session_id = match session {
        Some(SessionId(id)) => {
            if app
                .db
                .read(|c| history::taken_by_other(c, &me.user.id, &id))?
            {
                return Err(session_not_found());
            }
            id
        }
        None => crate::random::uuid(),
    };
    Ok(Question {
        user_id: me.user.id.clone(),
        full_name: me.user.full_name.clone(),
        session_id,
        text: text.0,
        client_history: history.map(|h| h.0).unwrap_or_default(),
    })
}

fn session_not_found() -> Error {
    Error::NotFound {
        code: "session_not_found",
        detail: "Session not found".into(),
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatResponse {
    pub(crate) response: String,
    pub(crate) sources: Vec<String>,
    pub(crate) conversation_id: String,
    pub(crate) timestamp: String,
    pub(crate) cached: bool,
    /// Prompt + completion tokens.
    pub(crate) tokens_used: u64,
    /// Present and true when the model could not answer and this came from the user's numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fallback: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/chat/message", tag = "chat", security(("bearer" = [])),
    request_body = ChatRequest,
    responses((status = 200, body = ChatResponse), (status = 401),
              (status = 403, description = "Account deactivated (`account_deactivated`) or not allowed; `chat_disabled` when ENABLE_CHAT is false"),
              (status = 404, description = "Another user's session"), (status = 422), (status = 429)))]
pub(crate) fn message(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let q = question(app, req, &me)?;
    let coach = super::coach(app);
    let (text, cached, tokens, fallback) = match answer::prepare(&coach, &q)? {
        Plan::Cached(text) => ((*text).clone(), true, 0, false),
        Plan::Fallback { answer: text, .. } => (text, false, 0, true),
        Plan::Stream(p) => {
            let end = answer::run_to_end(&coach, q.clone(), p, |_| true);
            (
                end.text,
                false,
                end.tokens.unwrap_or(0),
                end.failed.is_some(),
            )
        }
    };
    Ok(Resp::json(
        200,
        &ChatResponse {
            response: text,
            sources: Vec::new(),
            conversation_id: q.session_id.clone(),
            timestamp: app.clock.iso(),
            cached,
            tokens_used: tokens,
            fallback: fallback.then_some(true),
        },
    ))
}

/// What the SSE stream sends: each one `data:` line holding an object whose `type` is the
/// variant's name in snake case.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SseEvent<'a> {
    SessionId {
        session_id: &'a str,
    },
    Token {
        content: &'a str,
    },
    Error {
        error: &'a str,
    },
    /// `tools_used`: the tools the answer looked things up with, in the order of first use.
    Done {
        tools_used: &'a [String],
    },
}

/// One server-sent event, written and flushed whole (the web client splits on newlines and
/// does not buffer across reads).
fn event(w: &mut dyn Write, e: &SseEvent<'_>) -> bool {
    // A derived `Serialize` of strings cannot fail.
    let line = format!("data: {}\n\n", serde_json::to_string(e).unwrap_or_default());
    w.write_all(line.as_bytes()).and_then(|_| w.flush()).is_ok()
}

#[utoipa::path(post, path = "/api/v1/chat/message/stream", tag = "chat", security(("bearer" = [])),
    request_body = ChatRequest,
    responses((status = 200, description = "`text/event-stream`: a `session_id` event, `token` events, then `done`; on failure one `error` event and the fallback as tokens",
               content_type = "text/event-stream"),
              (status = 401), (status = 403, description = "Account deactivated (`account_deactivated`) or not allowed; `chat_disabled` when ENABLE_CHAT is false"),
              (status = 404), (status = 422)))]
pub(crate) fn message_stream(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let q = question(app, req, &me)?;
    Ok(Resp::stream(
        "text/event-stream",
        move |app: &App, w: &mut dyn Write| {
            if !event(
                w,
                &SseEvent::SessionId {
                    session_id: &q.session_id,
                },
            ) {
                return;
            }
            let coach = super::coach(app);
            let plan = match answer::prepare(&coach, &q) {
                Ok(p) => p,
                Err(e) => {
                    log::error!("chat stream: preparing failed: {e:?}");
                    let _ = event(
                        w,
                        &SseEvent::Error {
                            error: answer::FAILED,
                        },
                    );
                    let _ = event(w, &SseEvent::Done { tools_used: &[] });
                    return;
                }
            };
            let mut tools_used = Vec::new();
            match plan {
                Plan::Cached(text) => {
                    let _ = event(w, &SseEvent::Token { content: &text });
                }
                Plan::Fallback {
                    message,
                    answer: text,
                    ..
                } => {
                    let _ = event(w, &SseEvent::Error { error: &message });
                    let _ = event(w, &SseEvent::Token { content: &text });
                }
                Plan::Stream(p) => {
                    // No `status` events here: between `session_id` and `done` only tokens
                    // (and one error before a fallback) may come (shared/API.md, exact rules).
                    let mut gone = false;
                    let end = answer::run_to_end(&coach, q.clone(), p, |piece| {
                        gone = !event(w, &SseEvent::Token { content: piece });
                        !gone
                    });
                    if gone {
                        return;
                    }
                    if let Some(error) = &end.failed {
                        let _ = event(w, &SseEvent::Error { error });
                        let _ = event(w, &SseEvent::Token { content: &end.text });
                    }
                    tools_used = end.tools_used;
                }
            }
            let _ = event(
                w,
                &SseEvent::Done {
                    tools_used: &tools_used,
                },
            );
        },
    ))
}

/// `?skip=` and `?limit=` of the history routes.
type Skip = Count<0, 1_000_000>;
type PageSize = Count<1, 200>;

fn page(req: &Req, default_limit: i64) -> Result<(i64, i64)> {
    let mut f = Fields::query(req);
    let skip = f.optional::<Skip>("skip");
    let limit = f.optional::<PageSize>("limit");
    f.finish()?;
    Ok((
        skip?.map(|s| i64::from(s.0)).unwrap_or(0),
        limit?.map(|l| i64::from(l.0)).unwrap_or(default_limit),
    ))
}

#[utoipa::path(get, path = "/api/v1/chat/sessions", tag = "chat", security(("bearer" = [])),
    params(("skip" = Option<i64>, Query, minimum = 0, maximum = 1000000),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1..200, default 20")),
    responses((status = 200, body = history::SessionsResponse), (status = 401), (status = 422)))]
pub(crate) fn sessions(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let (skip, limit) = page(req, 20)?;
    let body = app
        .db
        .read(|c| history::sessions(c, &me.user.id, skip, limit))?;
    Ok(Resp::json(200, &body))
}

#[utoipa::path(get, path = "/api/v1/chat/sessions/{session_id}/messages", tag = "chat", security(("bearer" = [])),
    params(("session_id" = String, Path,),
           ("skip" = Option<i64>, Query, minimum = 0, maximum = 1000000, description = "counted back from the newest message"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1..200, default 50")),
    responses((status = 200, body = history::MessagesResponse), (status = 401), (status = 404)))]
pub(crate) fn session_messages(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let (skip, limit) = page(req, 50)?;
    let id = req.param("session_id");
    let body = app.db.read(|c| {
        if !history::owns(c, &me.user.id, id)? {
            return Err(session_not_found());
        }
        history::messages(c, id, skip, limit)
    })?;
    Ok(Resp::json(200, &body))
}

#[utoipa::path(delete, path = "/api/v1/chat/conversations/{conversation_id}", tag = "chat", security(("bearer" = [])),
    params(("conversation_id" = String, Path,)),
    responses((status = 200, description = "Deleted with its messages", body = crate::auth::handlers::MessageResponse),
              (status = 401), (status = 404)))]
pub(crate) fn delete_conversation(app: &App, req: &Req) -> Result<Resp> {
    let me = require_user(app, req)?;
    let id = req.param("conversation_id");
    if !app
        .db
        .write(|tx| history::delete_session(tx, &me.user.id, id))?
    {
        return Err(Error::NotFound {
            code: "conversation_not_found",
            detail: "Conversation not found".into(),
        });
    }
    Ok(Resp::ok(
        json!({"message": "Conversation deleted successfully"}),
    ))
}
