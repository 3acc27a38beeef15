//! What a handler returns: a status, headers and a body, turned into bytes in one place.

use std::any::Any;
use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::later::{Later, Start};

/// A body written piece by piece after the headers (server-sent events), given the server's
/// state `S` and the connection.
pub(crate) type StreamBody<S> = Box<dyn FnOnce(&S, &mut dyn Write) + Send>;

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) content_type: &'static str,
    /// When set, the server writes the headers, then hands this the connection (through a
    /// chunked encoder that sends every `write` as one chunk); `body` is unused. It is a
    /// `StreamBody<S>` for the state `S` of the server that answers (see `take_stream`): `Resp`
    /// stays one type for every handler whatever the state.
    pub(crate) stream: Option<Box<dyn Any + Send>>,
    /// When set, this is not the answer yet: the server starts this work (a `later::Start<S>`,
    /// typed like `stream`) and answers when it finishes; the other fields are unused.
    pub(crate) later: Option<Box<dyn Any + Send>>,
}

impl Resp {
    pub(crate) fn json(status: u16, value: &impl Serialize) -> Resp {
        // Serializing our own types cannot fail (no maps with non-string keys); fall back to
        // an empty object rather than panic if it ever did.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Resp {
            status,
            headers: Vec::new(),
            body,
            content_type: "application/json",
            stream: None,
            later: None,
        }
    }

    pub(crate) fn ok(value: Value) -> Resp {
        Resp::json(200, &value)
    }

    pub(crate) fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            stream: None,
            later: None,
        }
    }

    pub(crate) fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body,
            content_type,
            stream: None,
            later: None,
        }
    }

    /// A 200 whose body `write` produces as it goes, given the server's state.
    pub(crate) fn stream<S: 'static>(
        content_type: &'static str,
        write: impl FnOnce(&S, &mut dyn Write) + Send + 'static,
    ) -> Resp {
        let body: StreamBody<S> = Box::new(write);
        Resp {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            content_type,
            stream: Some(Box::new(body)),
            later: None,
        }
    }

    /// The streamed body, if there is one written for state `S`. One server serves one state,
    /// so a body for another state is a programming error: it is dropped and logged.
    pub(crate) fn take_stream<S: 'static>(&mut self) -> Option<StreamBody<S>> {
        typed(self.stream.take()?, "a streamed body")
    }

    /// An answer given later: `start` runs on the handler thread once the handler returned,
    /// and hands the `Later` to the work it queued, which finishes it (see `later`).
    pub(crate) fn later<S: 'static>(start: impl FnOnce(&S, Later<S>) + Send + 'static) -> Resp {
        let start: Start<S> = Box::new(start);
        Resp {
            later: Some(Box::new(start)),
            ..Resp::empty(500)
        }
    }

    /// The work that gives this answer later, if there is one for state `S` (one server,
    /// one state: another is a programming error, dropped and logged like `take_stream`).
    pub(crate) fn take_later<S: 'static>(&mut self) -> Option<Start<S>> {
        typed(self.later.take()?, "a deferred answer")
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `held` as the `T` it was stored as; logged and dropped if it is another type.
fn typed<T: 'static>(held: Box<dyn Any + Send>, what: &str) -> Option<T> {
    match held.downcast::<T>() {
        Ok(v) => Some(*v),
        Err(_) => {
            log::error!("{what} was written for another server's state");
            None
        }
    }
}
