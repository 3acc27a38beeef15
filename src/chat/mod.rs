//! The AI money coach: answers streamed over the WebSocket and over HTTP (JSON or server-sent
//! events), grounded in the user's own numbers, with history, an answer cache, cost limits and
//! a fallback that always answers.

pub mod answer;
pub mod context;
pub mod history;
pub mod http;
pub mod quota;
pub mod records;
pub mod sse;
pub mod upstream;
pub mod ws;

use crate::api::ApiPath;
use crate::app::App;
use crate::http::Route;

/// The slice of `App` an answer uses.
fn coach(app: &App) -> answer::Coach<'_> {
    answer::Coach {
        db: &app.db,
        config: &app.config,
        clock: &app.clock,
        catalog: &app.catalog,
        answers: &app.answers,
        metrics: &app.metrics,
    }
}

pub fn routes() -> Vec<Route<App>> {
    vec![
        http::__path_message::route(http::message).chat(),
        http::__path_message_stream::route(http::message_stream).chat(),
        http::__path_sessions::route(http::sessions),
        http::__path_session_messages::route(http::session_messages),
        http::__path_delete_conversation::route(http::delete_conversation),
    ]
}
