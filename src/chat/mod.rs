//! The AI money coach: answers streamed over the WebSocket and over HTTP (JSON or server-sent
//! events), grounded in the user's own numbers, with history, an answer cache, cost limits and
//! a fallback that always answers.

pub mod answer;
pub mod context;
pub mod history;
pub mod http;
pub mod quota;
pub mod sse;
pub mod upstream;
pub mod ws;

use crate::app::App;
use crate::http::{Route, route};

pub fn routes() -> Vec<Route<App>> {
    vec![
        route("POST", "/api/v1/chat/message", http::message).chat(),
        route("POST", "/api/v1/chat/message/stream", http::message_stream).chat(),
        route("GET", "/api/v1/chat/sessions", http::sessions),
        route(
            "GET",
            "/api/v1/chat/sessions/{session_id}/messages",
            http::session_messages,
        ),
        route(
            "DELETE",
            "/api/v1/chat/conversations/{conversation_id}",
            http::delete_conversation,
        ),
    ]
}
