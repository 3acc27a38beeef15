//! What a handler returns: a status, headers and a body, turned into bytes in one place.

use serde::Serialize;
use serde_json::Value;

/// A body written piece by piece after the headers (server-sent events).
pub type StreamBody = Box<dyn FnOnce(&crate::app::App, &mut dyn std::io::Write) + Send>;

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// When set, the server writes the headers, then hands this the connection (through a
    /// chunked encoder that sends every `write` as one chunk); `body` is unused.
    pub stream: Option<StreamBody>,
}

impl Resp {
    pub fn json(status: u16, value: &impl Serialize) -> Resp {
        // Serializing our own types cannot fail (no maps with non-string keys); fall back to
        // an empty object rather than panic if it ever did.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Resp {
            status,
            headers: Vec::new(),
            body,
            content_type: "application/json",
            stream: None,
        }
    }

    pub fn ok(value: Value) -> Resp {
        Resp::json(200, &value)
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: "text/plain; charset=utf-8",
            stream: None,
        }
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body,
            content_type,
            stream: None,
        }
    }

    /// A 200 whose body `write` produces as it goes.
    pub fn stream(
        content_type: &'static str,
        write: impl FnOnce(&crate::app::App, &mut dyn std::io::Write) + Send + 'static,
    ) -> Resp {
        Resp {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            content_type,
            stream: Some(Box::new(write)),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
