//! The AI money coach: answers streamed over the WebSocket and over HTTP (JSON or server-sent
//! events), grounded in the user's own numbers, with history, an answer cache, cost limits and
//! a fallback that always answers.

pub(crate) mod answer;
pub(crate) mod context;
pub(crate) mod handlers;
pub(crate) mod history;
pub(crate) mod quota;
pub(crate) mod records;
pub(crate) mod sse;
pub mod toolloop;
pub(crate) mod tools;
pub(crate) mod upstream;
pub(crate) mod ws;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::Route;

/// `ENABLE_CHAT=false` turns the coach off: questions are refused (403 `chat_disabled`, or
/// an `error` frame on the socket) before anything reaches the model; history stays readable.
fn require_enabled(config: &crate::config::Config) -> crate::error::Result<()> {
    if config.features.chat {
        return Ok(());
    }
    Err(crate::error::Error::Forbidden {
        code: "chat_disabled",
        detail: "The AI coach is turned off on this server".into(),
    })
}

/// The slice of `App` an answer uses.
fn coach(app: &App) -> answer::Coach<'_> {
    answer::Coach {
        db: &app.db,
        config: &app.config,
        clock: &app.clock,
        catalog: &app.catalog,
        answers: &app.answers,
        metrics: &app.metrics,
        tools: &app.chat_tools,
    }
}

pub fn routes() -> Vec<Route<App>> {
    vec![
        handlers::__path_message::route(handlers::message)
            .chat()
            .slow(),
        handlers::__path_message_stream::route(handlers::message_stream)
            .chat()
            .slow(),
        handlers::__path_sessions::route(handlers::sessions),
        handlers::__path_session_messages::route(handlers::session_messages),
        handlers::__path_delete_conversation::route(handlers::delete_conversation),
    ]
}
