//! The LLM upstream: any OpenAI-compatible `/chat/completions` with `stream: true`, read on
//! its own thread and handed over piece by piece. Timeouts for connecting, the first byte and
//! each read, but none for the whole answer, so a long answer is never cut. A stream can be
//! cancelled from another thread at once (the agent is shut down under the blocked read).

use std::io::BufReader;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::sse::{SseEvent, SseReader};
use crate::config::Config;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChatMessage {
    pub(crate) role: String,
    pub(crate) content: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    /// No API key: nothing was sent.
    NotConfigured,
    /// The server answered with an error status (401, 429, 5xx…).
    Status(u16),
    Timeout,
    Connect(String),
    /// A line that is not a chunk we understand.
    Garbage(String),
    /// An `{"error": …}` object in the stream.
    ErrorEvent(String),
    /// The connection ended before `[DONE]` or a finish reason.
    Dropped,
    Cancelled,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::NotConfigured => write!(f, "no API key configured"),
            UpstreamError::Status(s) => write!(f, "upstream answered {s}"),
            UpstreamError::Timeout => write!(f, "upstream timed out"),
            UpstreamError::Connect(e) => write!(f, "cannot reach upstream: {e}"),
            UpstreamError::Garbage(e) => write!(f, "unreadable upstream stream: {e}"),
            UpstreamError::ErrorEvent(e) => write!(f, "upstream error event: {e}"),
            UpstreamError::Dropped => write!(f, "upstream closed the stream early"),
            UpstreamError::Cancelled => write!(f, "cancelled"),
        }
    }
}

/// What the reading thread reports, in order: deltas, then one `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamEvent {
    Delta(String),
    Finished(Option<Usage>),
    Failed(UpstreamError),
}

/// The pieces of one parsed chunk.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Chunk {
    pub(crate) delta: Option<String>,
    pub(crate) usage: Option<Usage>,
    pub(crate) finished: bool,
}

/// Reads one `chat.completion.chunk` (or an error object).
pub(crate) fn parse_chunk(data: &str) -> Result<Chunk, UpstreamError> {
    let v: Value = serde_json::from_str(data).map_err(|e| UpstreamError::Garbage(e.to_string()))?;
    if let Some(err) = v.get("error") {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(UpstreamError::ErrorEvent(msg.chars().take(200).collect()));
    }
    let mut chunk = Chunk::default();
    if let Some(choice) = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    {
        chunk.delta = choice
            .pointer("/delta/content")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        chunk.finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
    } else if v.get("choices").is_none() && v.get("usage").is_none() {
        return Err(UpstreamError::Garbage(
            "a chunk with neither choices nor usage".into(),
        ));
    }
    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
        chunk.usage = Some(Usage {
            prompt_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
            completion_tokens: u
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        });
    }
    Ok(chunk)
}

/// A running stream: cancel it from any thread.
#[derive(Clone)]
pub(crate) struct StreamHandle {
    cancelled: Arc<AtomicBool>,
    agent: Arc<std::sync::Mutex<Option<ureq::Agent>>>,
}

impl StreamHandle {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(agent) = self.agent.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // Closes the connection under a blocked read, so the reader returns at once.
            agent.shutdown();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

fn agent(config: &Config) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(config.llm.timeout))
        .timeout_per_read(Some(config.llm.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        // One answer per agent: nothing to pool, and small buffers for a thousand streams.
        .max_idle_connections(0)
        .input_buffer_size(16 * 1024)
        .output_buffer_size(16 * 1024)
        .accept_encoding("identity")
        .build()
        .into()
}

pub(crate) fn request_body(config: &Config, messages: &[ChatMessage]) -> Value {
    json!({
        "model": config.llm.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": config.llm.max_tokens,
        "temperature": config.llm.temperature,
    })
}

fn classify(e: &ureq::Error) -> UpstreamError {
    match e {
        ureq::Error::Timeout(_) => UpstreamError::Timeout,
        ureq::Error::Io(io)
            if io.kind() == std::io::ErrorKind::TimedOut
                || io.kind() == std::io::ErrorKind::WouldBlock =>
        {
            UpstreamError::Timeout
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            UpstreamError::Connect(io.to_string())
        }
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            UpstreamError::Connect(e.to_string())
        }
        ureq::Error::Io(_) => UpstreamError::Dropped,
        other => UpstreamError::Connect(other.to_string()),
    }
}

/// Starts streaming an answer on a new thread. `sink` gets every event and returns `false`
/// when nobody listens any more (the stream then stops). Retries once, on a fresh
/// connection, when connecting fails or the server answers 5xx before the first token.
pub(crate) fn start(
    config: &Config,
    messages: Vec<ChatMessage>,
    mut sink: impl FnMut(StreamEvent) -> bool + Send + 'static,
) -> StreamHandle {
    let handle = StreamHandle {
        cancelled: Arc::new(AtomicBool::new(false)),
        agent: Arc::new(std::sync::Mutex::new(None)),
    };
    let Some(key) = config.llm.api_key.as_ref().map(|k| k.expose().to_string()) else {
        sink(StreamEvent::Failed(UpstreamError::NotConfigured));
        return handle;
    };
    let url = format!("{}/chat/completions", config.llm.base_url);
    let body = request_body(config, &messages);
    let config = config.clone();
    let h = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("llm".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match run_once(&config, &h, &url, &key, &body, &mut sink) {
                    Outcome::Done => return,
                    Outcome::Retryable(e) if attempt < 2 && !h.is_cancelled() => {
                        log::warn!(
                            "LLM upstream failed before the first token ({e}); retrying once"
                        );
                    }
                    Outcome::Retryable(e) | Outcome::Failed(e) => {
                        let e = if h.is_cancelled() {
                            UpstreamError::Cancelled
                        } else {
                            e
                        };
                        sink(StreamEvent::Failed(e));
                        return;
                    }
                }
            }
        });
    if spawned.is_err() {
        log::error!("cannot start an LLM reader thread");
        handle.cancelled.store(true, Ordering::SeqCst);
    }
    handle
}

enum Outcome {
    Done,
    /// Nothing was delivered yet: one more try may help.
    Retryable(UpstreamError),
    Failed(UpstreamError),
}

fn run_once(
    config: &Config,
    h: &StreamHandle,
    url: &str,
    key: &str,
    body: &Value,
    sink: &mut impl FnMut(StreamEvent) -> bool,
) -> Outcome {
    let agent = agent(config);
    *h.agent.lock().unwrap_or_else(|p| p.into_inner()) = Some(agent.clone());
    if h.is_cancelled() {
        return Outcome::Failed(UpstreamError::Cancelled);
    }
    let resp = agent
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Accept", "text/event-stream")
        .send_json(body);
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            let e = classify(&e);
            return match e {
                UpstreamError::Connect(_) | UpstreamError::Dropped => Outcome::Retryable(e),
                other => Outcome::Failed(other),
            };
        }
    };
    let status = resp.status().as_u16();
    if status >= 400 {
        // Read a little of the error body for the log; never log the key.
        let text = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        log::warn!(
            "LLM upstream answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        return if status >= 500 {
            Outcome::Retryable(UpstreamError::Status(status))
        } else {
            Outcome::Failed(UpstreamError::Status(status))
        };
    }
    let reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut sse = SseReader::new(BufReader::with_capacity(8 * 1024, reader));
    let mut usage = None;
    let mut finished = false;
    let mut delivered = false;
    loop {
        if h.is_cancelled() {
            return Outcome::Failed(UpstreamError::Cancelled);
        }
        let event = match sse.next_event() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Outcome::Failed(UpstreamError::Garbage(e.to_string()));
            }
            Err(e) => {
                let err = if e.kind() == std::io::ErrorKind::TimedOut
                    || e.to_string().contains("timeout")
                {
                    UpstreamError::Timeout
                } else {
                    UpstreamError::Dropped
                };
                // A silent upstream has used up its timeout already: asking again doubled
                // the user's wait (the first-byte timeout was never retried either).
                return if delivered || err == UpstreamError::Timeout {
                    Outcome::Failed(err)
                } else {
                    Outcome::Retryable(err)
                };
            }
        };
        match event {
            SseEvent::Done => {
                finished = true;
                break;
            }
            SseEvent::Data(d) => match parse_chunk(&d) {
                Ok(c) => {
                    if let Some(u) = c.usage {
                        usage = Some(u);
                    }
                    finished |= c.finished;
                    if let Some(text) = c.delta {
                        delivered = true;
                        if !sink(StreamEvent::Delta(text)) {
                            return Outcome::Failed(UpstreamError::Cancelled);
                        }
                    }
                }
                Err(e) => return Outcome::Failed(e),
            },
        }
    }
    if !finished {
        return if delivered {
            Outcome::Failed(UpstreamError::Dropped)
        } else {
            Outcome::Retryable(UpstreamError::Dropped)
        };
    }
    sink(StreamEvent::Finished(usage));
    Outcome::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks() {
        let c = parse_chunk(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#,
        );
        assert_eq!(
            c,
            Ok(Chunk {
                delta: Some("Hi".into()),
                usage: None,
                finished: false
            })
        );
        let c = parse_chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
        assert_eq!(
            c,
            Ok(Chunk {
                delta: None,
                usage: None,
                finished: true
            })
        );
        let c = parse_chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
        );
        assert_eq!(
            c.map(|c| c.usage),
            Ok(Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            }))
        );
        assert!(
            matches!(parse_chunk(r#"{"error":{"message":"boom"}}"#), Err(UpstreamError::ErrorEvent(m)) if m == "boom")
        );
        assert!(matches!(
            parse_chunk("{not json"),
            Err(UpstreamError::Garbage(_))
        ));
        assert!(matches!(
            parse_chunk(r#"{"hello":1}"#),
            Err(UpstreamError::Garbage(_))
        ));
    }

    #[test]
    fn no_key_sends_nothing() {
        let config =
            Config::from_pairs(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")]).expect("config");
        let (tx, rx) = std::sync::mpsc::channel();
        start(&config, vec![], move |e| tx.send(e).is_ok());
        assert_eq!(
            rx.recv().ok(),
            Some(StreamEvent::Failed(UpstreamError::NotConfigured))
        );
    }
}
