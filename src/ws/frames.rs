//! What goes over the sockets, as types: `ServerFrame` (everything the server sends, on both
//! endpoints) is turned into JSON here and nowhere else, and `ClientMessage` is what a
//! client's text frame is parsed into before any handler sees it.

use serde::Serialize;
use serde_json::Value;

use crate::notify::hub::Event;

/// A frame the server sends. Each serialises as an object whose `type` is the variant's name
/// in snake case; optional fields that are `None` are left out, as each frame always did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame {
    Connected {
        message: &'static str,
        timestamp: String,
        /// `/ws/chat` only: the conversation a message without `conversation_id` joins.
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
    },
    /// `/ws/notifications` answers without a timestamp, `/ws/chat` with one.
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        timestamp: Option<String>,
    },
    Heartbeat {
        timestamp: String,
    },
    Authenticated {
        expires_at: String,
        timestamp: String,
    },
    Error {
        code: &'static str,
        message: String,
    },
    /// A piece, or the end, of a chat answer.
    Response(Response),
    /// `/ws/chat`, between rounds of an answer: the coach runs a tool (`status`: `looking_up`).
    Status {
        status: &'static str,
        tool: String,
    },
    /// An in-process event, sent as the event serialises itself (it carries its own `type`).
    #[serde(untagged)]
    Event(Event),
}

impl ServerFrame {
    pub(crate) fn error(code: &'static str, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid_json() -> ServerFrame {
        ServerFrame::error("invalid_json", "Invalid JSON format")
    }

    /// A `type` this endpoint does not serve; `None` when the frame had no string `type`.
    pub(crate) fn unknown_type(kind: Option<&str>) -> ServerFrame {
        ServerFrame::error(
            "unknown_type",
            format!("Unknown message type: {}", kind.unwrap_or("None")),
        )
    }

    /// The one place a frame becomes text.
    pub(crate) fn to_text(&self) -> String {
        // A derived `Serialize` of strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The token counts of an answer, as the chat frames carry them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct TokenUsage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
}

/// A `response` frame: the answer so far (`content`), and how it came to be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Response {
    pub(crate) content: String,
    #[serde(flatten)]
    pub(crate) state: Answer,
    pub(crate) timestamp: String,
}

/// What a `response` frame says about its answer. Every variant but `Piece` ends the answer
/// (`done: true`) and names its conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Answer {
    /// A streamed piece; `content` is the whole answer so far.
    Piece { delta: String, done: False },
    /// The client's `cancel`: what was streamed until then.
    Cancelled {
        done: True,
        cancelled: True,
        session_id: String,
    },
    /// From the answer cache: no tokens spent.
    Cached {
        done: True,
        cached: True,
        session_id: String,
        usage: TokenUsage,
        tools_used: Vec<String>,
    },
    /// The upstream could not answer; a canned answer instead.
    Fallback {
        done: True,
        fallback: True,
        cached: False,
        session_id: String,
        tools_used: Vec<String>,
    },
    /// The upstream's answer, complete. `tools_used`: the tools it looked things up with, in
    /// the order of first use.
    Complete {
        done: True,
        cached: False,
        session_id: String,
        usage: TokenUsage,
        tools_used: Vec<String>,
    },
}

/// A JSON `true` that is always true: the frames' fixed flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct True;

/// A JSON `false` that is always false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct False;

impl Serialize for True {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(true)
    }
}

impl Serialize for False {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(false)
    }
}

impl Answer {
    pub(crate) fn piece(delta: String) -> Answer {
        Answer::Piece { delta, done: False }
    }

    pub(crate) fn cancelled(session_id: String) -> Answer {
        Answer::Cancelled {
            done: True,
            cancelled: True,
            session_id,
        }
    }

    pub(crate) fn cached(session_id: String) -> Answer {
        Answer::Cached {
            done: True,
            cached: True,
            session_id,
            usage: TokenUsage::default(),
            tools_used: Vec::new(),
        }
    }

    pub(crate) fn fallback(session_id: String, tools_used: Vec<String>) -> Answer {
        Answer::Fallback {
            done: True,
            fallback: True,
            cached: False,
            session_id,
            tools_used,
        }
    }

    pub(crate) fn complete(
        session_id: String,
        usage: TokenUsage,
        tools_used: Vec<String>,
    ) -> Answer {
        Answer::Complete {
            done: True,
            cached: False,
            session_id,
            usage,
            tools_used,
        }
    }
}

/// A client's text frame, parsed. What it cannot be parsed into is the error frame to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientMessage {
    /// `token` is `None` when it is missing, empty or not a string.
    Authenticate {
        token: Option<String>,
    },
    /// `content` is trimmed, and empty when missing or not a string.
    Message {
        content: String,
        conversation: Conversation,
    },
    Ping,
    Cancel,
}

/// The `conversation_id` of a `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conversation {
    /// Missing or `null`: the socket's own conversation.
    Current,
    /// A string of 1 to 64 bytes.
    Named(String),
    /// Anything else.
    Invalid,
}

impl ClientMessage {
    /// Parses a text frame: invalid JSON and an unknown `type` are the error frames to send.
    pub(crate) fn parse(text: &str) -> Result<ClientMessage, ServerFrame> {
        let v: Value = serde_json::from_str(text).map_err(|_| ServerFrame::invalid_json())?;
        let string = |key: &str| v.get(key).and_then(Value::as_str);
        match string("type") {
            Some("ping") => Ok(ClientMessage::Ping),
            Some("cancel") => Ok(ClientMessage::Cancel),
            Some("authenticate") => Ok(ClientMessage::Authenticate {
                token: string("token")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            }),
            Some("message") => Ok(ClientMessage::Message {
                content: string("content").unwrap_or("").trim().to_string(),
                conversation: match v.get("conversation_id") {
                    None | Some(Value::Null) => Conversation::Current,
                    Some(Value::String(id)) if !id.is_empty() && id.len() <= 64 => {
                        Conversation::Named(id.clone())
                    }
                    Some(_) => Conversation::Invalid,
                },
            }),
            other => Err(ServerFrame::unknown_type(other)),
        }
    }

    /// The message's `type`, as the client wrote it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Authenticate { .. } => "authenticate",
            ClientMessage::Message { .. } => "message",
            ClientMessage::Ping => "ping",
            ClientMessage::Cancel => "cancel",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(f: &ServerFrame) -> Value {
        serde_json::from_str(&f.to_text()).unwrap_or(Value::Null)
    }

    #[test]
    fn frames_keep_their_wire_shape() {
        let t = || "2026-01-01T00:00:00Z".to_string();
        let response = |state| {
            ServerFrame::Response(Response {
                content: "ab".into(),
                state,
                timestamp: t(),
            })
        };
        let usage = TokenUsage {
            prompt_tokens: 3,
            completion_tokens: 4,
        };
        let cases = [
            (
                ServerFrame::Pong { timestamp: None },
                json!({"type": "pong"}),
            ),
            (
                ServerFrame::Connected {
                    message: "hi",
                    timestamp: t(),
                    session_id: Some("s".into()),
                },
                json!({"type": "connected", "message": "hi", "timestamp": t(), "session_id": "s"}),
            ),
            (
                ServerFrame::error("busy", "x"),
                json!({"type": "error", "code": "busy", "message": "x"}),
            ),
            (
                response(Answer::piece("b".into())),
                json!({"type": "response", "content": "ab", "delta": "b", "done": false, "timestamp": t()}),
            ),
            (
                response(Answer::cancelled("s".into())),
                json!({"type": "response", "content": "ab", "done": true, "cancelled": true,
                       "session_id": "s", "timestamp": t()}),
            ),
            (
                response(Answer::cached("s".into())),
                json!({"type": "response", "content": "ab", "done": true, "cached": true, "session_id": "s",
                       "usage": {"prompt_tokens": 0, "completion_tokens": 0}, "tools_used": [],
                       "timestamp": t()}),
            ),
            (
                response(Answer::fallback("s".into(), Vec::new())),
                json!({"type": "response", "content": "ab", "done": true, "fallback": true, "cached": false,
                       "session_id": "s", "tools_used": [], "timestamp": t()}),
            ),
            (
                response(Answer::complete(
                    "s".into(),
                    usage,
                    vec!["get_month_summary".into()],
                )),
                json!({"type": "response", "content": "ab", "done": true, "cached": false, "session_id": "s",
                       "usage": {"prompt_tokens": 3, "completion_tokens": 4},
                       "tools_used": ["get_month_summary"], "timestamp": t()}),
            ),
            (
                ServerFrame::Status {
                    status: "looking_up",
                    tool: "get_transactions".into(),
                },
                json!({"type": "status", "status": "looking_up", "tool": "get_transactions"}),
            ),
            (
                ServerFrame::Event(Event::Notification {
                    kind: "budget_alert".into(),
                    id: 7,
                    payload: match json!({"category": "Food", "month": 3, "year": 2026,
                                          "budget": 100, "actual": 100.5})
                    {
                        Value::Object(m) => m,
                        _ => serde_json::Map::new(),
                    },
                }),
                json!({"type": "budget_alert", "id": 7, "category": "Food", "month": 3,
                       "year": 2026, "budget": 100, "actual": 100.5}),
            ),
            (
                ServerFrame::Heartbeat { timestamp: t() },
                json!({"type": "heartbeat", "timestamp": t()}),
            ),
        ];
        for (frame, wire) in cases {
            assert_eq!(value(&frame), wire, "{frame:?}");
        }
    }

    #[test]
    fn client_messages_are_parsed_at_the_edge() {
        let parse = ClientMessage::parse;
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientMessage::Ping));
        assert_eq!(parse("{nope"), Err(ServerFrame::invalid_json()));
        assert_eq!(
            parse(r#"{"type":"dance"}"#),
            Err(ServerFrame::error(
                "unknown_type",
                "Unknown message type: dance"
            ))
        );
        for no_type in [r#"{"type":5}"#, "[1]", "7", "{}"] {
            assert_eq!(
                parse(no_type),
                Err(ServerFrame::error(
                    "unknown_type",
                    "Unknown message type: None"
                ))
            );
        }
        assert_eq!(
            parse(r#"{"type":"authenticate","token":""}"#),
            Ok(ClientMessage::Authenticate { token: None })
        );
        assert_eq!(
            parse(r#"{"type":"message","content":5,"conversation_id":""}"#),
            Ok(ClientMessage::Message {
                content: String::new(),
                conversation: Conversation::Invalid
            })
        );
        assert_eq!(
            parse(r#"{"type":"message","content":" hi ","conversation_id":"c1"}"#),
            Ok(ClientMessage::Message {
                content: "hi".into(),
                conversation: Conversation::Named("c1".into())
            })
        );
    }
}
