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
    /// A request that offered tools was refused with this status, and the body named tools or
    /// templates: the upstream cannot take tools (`OPENAI_TOOLS=auto` asks again without).
    ToolsRefused(u16),
    /// Not the upstream's doing: the token quota ran out between two rounds of one answer.
    OverQuota(String),
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
            UpstreamError::ToolsRefused(s) => write!(f, "upstream refused tools ({s})"),
            UpstreamError::OverQuota(m) => write!(f, "{m}"),
        }
    }
}

/// What the reading thread reports, in order: deltas, then one `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamEvent {
    Delta(String),
    Finished(RoundEnd),
    Failed(UpstreamError),
}

/// How one streamed request ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RoundEnd {
    pub(crate) usage: Option<Usage>,
    /// The tools the model called, whole, in the order of their `index`.
    pub(crate) tool_calls: Vec<ToolCall>,
}

/// One tool call, put together from its deltas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ToolCall {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The raw JSON text the model wrote, unchecked.
    pub(crate) arguments: String,
}

/// One fragment of a tool call as a chunk carries it: the id and the name come once (in the
/// call's first fragment), the arguments in pieces.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ToolDelta {
    pub(crate) index: usize,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) arguments: Option<String>,
}

/// More parallel calls than any model makes: a stream claiming more is garbage.
const MAX_CALL_INDEX: usize = 64;
/// The most argument text kept per call; a model that writes more is cut (the call then fails
/// its JSON check and gets an error result).
const MAX_ARGUMENT_BYTES: usize = 16 * 1024;

/// Tool calls being put together from fragments that may interleave.
#[derive(Debug, Default)]
pub(crate) struct CallParts(Vec<ToolCall>);

impl CallParts {
    pub(crate) fn add(&mut self, d: ToolDelta) {
        if self.0.len() <= d.index {
            self.0.resize_with(d.index + 1, ToolCall::default);
        }
        let call = &mut self.0[d.index];
        if let Some(id) = d.id.filter(|i| !i.is_empty()) {
            call.id = id;
        }
        if let Some(name) = d.name.filter(|n| !n.is_empty()) {
            call.name = name;
        }
        if let Some(a) = d.arguments {
            let room = MAX_ARGUMENT_BYTES.saturating_sub(call.arguments.len());
            let mut cut = a.len().min(room);
            while !a.is_char_boundary(cut) {
                cut -= 1;
            }
            call.arguments.push_str(&a[..cut]);
        }
    }

    /// The calls, each with an id (made up from its index when the upstream sent none), and
    /// without the holes of indexes that never came.
    pub(crate) fn finish(self) -> Vec<ToolCall> {
        self.0
            .into_iter()
            .enumerate()
            .filter(|(_, c)| !(c.id.is_empty() && c.name.is_empty() && c.arguments.is_empty()))
            .map(|(i, mut c)| {
                if c.id.is_empty() {
                    c.id = format!("call_{i}");
                }
                c
            })
            .collect()
    }
}

/// The pieces of one parsed chunk.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Chunk {
    pub(crate) delta: Option<String>,
    pub(crate) usage: Option<Usage>,
    pub(crate) finished: bool,
    pub(crate) tool_calls: Vec<ToolDelta>,
}

fn tool_deltas(calls: &Value) -> Result<Vec<ToolDelta>, UpstreamError> {
    let Some(calls) = calls.as_array() else {
        return Ok(Vec::new());
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    calls
        .iter()
        .enumerate()
        .map(|(pos, c)| {
            // Some servers leave `index` out when they send one call per chunk.
            let index = match c.get("index") {
                None => pos,
                Some(i) => i
                    .as_u64()
                    .map(|i| i as usize)
                    .filter(|i| *i < MAX_CALL_INDEX)
                    .ok_or_else(|| UpstreamError::Garbage(format!("tool call index {i}")))?,
            };
            Ok(ToolDelta {
                index,
                id: text(c.get("id")),
                name: text(c.pointer("/function/name")),
                arguments: text(c.pointer("/function/arguments")),
            })
        })
        .collect()
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
        if let Some(calls) = choice.pointer("/delta/tool_calls") {
            chunk.tool_calls = tool_deltas(calls)?;
        }
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
    /// A handle for one answer: every request of it goes through this, so one cancel stops
    /// them all.
    pub(crate) fn new() -> StreamHandle {
        StreamHandle {
            cancelled: Arc::new(AtomicBool::new(false)),
            agent: Arc::new(std::sync::Mutex::new(None)),
        }
    }

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

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(timeout))
        .timeout_per_read(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        // One answer per agent: nothing to pool, and small buffers for a thousand streams
        // (`benches/chat.rs` with every stream at once: peak RSS 223-227 MB with 16 + 16 KiB,
        // 198-203 MB with these). The response head must fit in the input buffer (OpenAI's
        // is ~1 KiB); the request body goes out in pieces of the output buffer.
        .max_idle_connections(0)
        .input_buffer_size(8 * 1024)
        .output_buffer_size(4 * 1024)
        .accept_encoding("identity")
        .build()
        .into()
}

/// The request; `tools` is left out when empty (an empty array is refused by OpenAI).
pub(crate) fn request_body(config: &Config, messages: &[Value], tools: &[Value]) -> Value {
    let mut body = json!({
        "model": config.llm.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": config.llm.max_tokens,
        "temperature": config.llm.temperature,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools.to_vec());
        body["tool_choice"] = json!("auto");
    }
    body
}

/// Does an error body say the server cannot take tools? llama-server without `--jinja`
/// answers "tools param requires --jinja flag"; others name their chat template.
fn names_tools(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    lower.contains("tool") || lower.contains("template") || lower.contains("jinja")
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

/// Starts streaming one request (`request_body`) on a new thread, through `handle`. `sink`
/// gets every event and returns `false` when nobody listens any more (the stream then
/// stops). Retries once, on a fresh connection, when connecting fails or the server answers
/// 5xx before the first token.
pub(crate) fn start(
    config: &Config,
    body: Value,
    handle: &StreamHandle,
    sink: impl FnMut(StreamEvent) -> bool + Send + 'static,
) {
    let mut sink = sink;
    let Some(key) = config.llm.api_key.as_ref().map(|k| k.expose().to_string()) else {
        sink(StreamEvent::Failed(UpstreamError::NotConfigured));
        return;
    };
    if handle.is_cancelled() {
        sink(StreamEvent::Failed(UpstreamError::Cancelled));
        return;
    }
    let url = format!("{}/chat/completions", config.llm.base_url);
    // Only the timeout goes with the thread, not a copy of the whole configuration: a
    // thousand streams at once each held one.
    let timeout = config.llm.timeout;
    let h = handle.clone();
    // Shared with the thread, so the sink still hears of it when no thread can be started.
    let shared = Arc::new(std::sync::Mutex::new(Some(sink)));
    let for_thread = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("llm".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let Some(mut sink) = for_thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                return;
            };
            let mut attempt = 0;
            loop {
                attempt += 1;
                match run_once(timeout, &h, &url, &key, &body, &mut sink) {
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
        if let Some(mut sink) = shared.lock().unwrap_or_else(|p| p.into_inner()).take() {
            sink(StreamEvent::Failed(UpstreamError::Connect(
                "no thread for the upstream".into(),
            )));
        }
    }
}

enum Outcome {
    Done,
    /// Nothing was delivered yet: one more try may help.
    Retryable(UpstreamError),
    Failed(UpstreamError),
}

fn run_once(
    timeout: Duration,
    h: &StreamHandle,
    url: &str,
    key: &str,
    body: &Value,
    sink: &mut impl FnMut(StreamEvent) -> bool,
) -> Outcome {
    let agent = agent(timeout);
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
        if body.get("tools").is_some() && names_tools(&text) {
            return Outcome::Failed(UpstreamError::ToolsRefused(status));
        }
        return if status >= 500 {
            Outcome::Retryable(UpstreamError::Status(status))
        } else {
            Outcome::Failed(UpstreamError::Status(status))
        };
    }
    let reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut sse = SseReader::new(BufReader::with_capacity(4 * 1024, reader));
    let mut usage = None;
    let mut calls = CallParts::default();
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
                    if !c.tool_calls.is_empty() {
                        // Tool calls are delivered whole at the end; a retry after them
                        // would run them twice.
                        delivered = true;
                        c.tool_calls.into_iter().for_each(|d| calls.add(d));
                    }
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
    sink(StreamEvent::Finished(RoundEnd {
        usage,
        tool_calls: calls.finish(),
    }));
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
                ..Chunk::default()
            })
        );
        let c = parse_chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
        assert_eq!(
            c,
            Ok(Chunk {
                finished: true,
                ..Chunk::default()
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

    /// The calls a stream of chunks adds up to, as `run_once` reads them.
    fn calls_of(chunks: &[&str]) -> Result<Vec<ToolCall>, UpstreamError> {
        let mut parts = CallParts::default();
        for c in chunks {
            parse_chunk(c)?
                .tool_calls
                .into_iter()
                .for_each(|d| parts.add(d));
        }
        Ok(parts.finish())
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn a_tool_call_comes_together_from_split_arguments() {
        let calls = calls_of(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_month_summary","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ye"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ar\":2025,"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"month\":₹"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert_eq!(
            calls,
            Ok(vec![call(
                "call_a",
                "get_month_summary",
                r#"{"year":2025,"month":₹"#
            )])
        );
        let end =
            parse_chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#);
        assert!(end.is_ok_and(|c| c.finished));
    }

    #[test]
    fn interleaved_calls_are_kept_apart_by_index() {
        let calls = calls_of(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"one","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"two","arguments":"{\"y"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\":2}"}},{"index":0,"function":{"arguments":""}}]}}]}"#,
        ]);
        assert_eq!(
            calls,
            Ok(vec![
                call("a", "one", r#"{"x":1}"#),
                call("b", "two", r#"{"y":2}"#)
            ])
        );
        // No id and no index (one call per chunk): ids are made up, nothing is lost.
        let calls = calls_of(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"one","arguments":"{}"}}]}}]}"#,
        ]);
        assert_eq!(calls, Ok(vec![call("call_0", "one", "{}")]));
    }

    #[test]
    fn garbage_tool_calls_are_refused_or_cut() {
        for bad in [
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":-1,"id":"a"}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1000000,"id":"a"}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":"0","id":"a"}]}}]}"#,
        ] {
            assert!(
                matches!(parse_chunk(bad), Err(UpstreamError::Garbage(_))),
                "{bad}"
            );
        }
        // Not a list: no calls (a server that sends `null` between fragments).
        assert_eq!(
            parse_chunk(r#"{"choices":[{"index":0,"delta":{"tool_calls":null}}]}"#)
                .map(|c| c.tool_calls),
            Ok(vec![])
        );
        // Endless arguments are cut at a character boundary.
        let mut parts = CallParts::default();
        for _ in 0..10_000 {
            parts.add(ToolDelta {
                index: 0,
                arguments: Some("₹₹".into()),
                ..ToolDelta::default()
            });
        }
        let calls = parts.finish();
        assert!(calls[0].arguments.len() <= MAX_ARGUMENT_BYTES);
        assert!(calls[0].arguments.len() > MAX_ARGUMENT_BYTES - 8);
    }

    #[test]
    fn tools_go_upstream_only_when_there_are_some() {
        let config = Config::from_pairs(&[]).expect("config");
        let body = request_body(&config, &[json!({"role": "user", "content": "hi"})], &[]);
        assert!(body.get("tools").is_none());
        let tool = json!({"type": "function", "function": {"name": "x"}});
        let body = request_body(&config, &[], std::slice::from_ref(&tool));
        assert_eq!(body["tools"], json!([tool]));
        assert!(names_tools(
            r#"{"error":{"message":"tools param requires --jinja flag"}}"#
        ));
        assert!(names_tools("This model's chat Template does not support"));
        assert!(!names_tools(r#"{"error":{"message":"rate limited"}}"#));
    }

    #[test]
    fn no_key_sends_nothing() {
        let config =
            Config::from_pairs(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")]).expect("config");
        let (tx, rx) = std::sync::mpsc::channel();
        let body = request_body(&config, &[], &[]);
        start(&config, body, &StreamHandle::new(), move |e| {
            tx.send(e).is_ok()
        });
        assert_eq!(
            rx.recv().ok(),
            Some(StreamEvent::Failed(UpstreamError::NotConfigured))
        );
    }
}
