//! A fake OpenAI-compatible chat completions server for black-box tests: the protocol that
//! api.openai.com, llama.cpp's `llama-server`, Ollama and vLLM speak on
//! `POST /v1/chat/completions`. Point the server under test at it with
//! `OPENAI_BASE_URL = fake.base_url()` (`http://127.0.0.1:PORT/v1`).
//!
//! What it does:
//! - records every request (method, target, headers with lower-cased names, body);
//! - answers `"stream": true` with Server-Sent Events in OpenAI's chunk format, ending in
//!   `data: [DONE]`, and anything else with one `chat.completion` JSON object;
//! - misbehaves on request ([`Fault`]): error statuses, stalls, dropped connections, garbage
//!   and error events, UTF-8 split across TCP writes;
//! - calls tools the way api.openai.com streams them ([`Script`], [`FakeLlm::set_script`],
//!   [`FakeLlm::set_call_forever`]): `tool_calls` deltas by `index`, the id and name once,
//!   the arguments in fragments (two calls may interleave), `finish_reason: "tool_calls"`;
//!   and refuses requests that carry `tools` like a server without tool support
//!   ([`FakeLlm::set_refuse_tools`]);
//! - notices a client that goes away mid-answer ([`FakeLlm::client_closed_count`],
//!   [`FakeLlm::wait_client_closed`]), which is how a test proves a cancel reached upstream.
//!
//! Settings apply to the requests that arrive after they are made, so a test may change them
//! between requests. One thread accepts; each connection has a thread of its own. Every wait
//! is bounded, and the server stops when the `FakeLlm` is dropped.
//!
//! Use it from a test crate with `mod fake_llm;`.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// The answer's pieces when nothing else is set.
pub const DEFAULT_PIECES: [&str; 4] = ["Hello", ", ", "world", "!"];

/// The answer's pieces under [`Fault::SplitUtf8`]; they join to "You can save ₹500 a month.".
pub const SPLIT_UTF8_PIECES: [&str; 3] = ["You can save ", "₹500", " a month."];

/// How long a [`Fault::StallAfter`] stream stays silent before the fake gives up and closes.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// How long a connection may sit idle between requests before the fake closes it.
const IDLE_LIMIT: Duration = Duration::from_secs(5);
/// The most requests served on one kept-alive connection.
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// The largest request head and body accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The pause between the two halves of a split write ([`Fault::SplitUtf8`]).
const SPLIT_PAUSE: Duration = Duration::from_millis(30);
/// How often a waiting stream looks whether the client is still there.
const WATCH_SLICE: Duration = Duration::from_millis(20);

/// A way for the next answers to go wrong. The `usize` of the `…After` faults counts content
/// pieces already sent; a count at or past the number of pieces acts after the last piece,
/// before the final `finish_reason: "stop"` chunk. Only `Status` applies to non-streaming
/// requests; the others need a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    None,
    /// Answer with this status and this body (`Content-Type: application/json`), e.g.
    /// `Fault::Status(429, r#"{"error":{"message":"slow down"}}"#.into())`.
    Status(u16, String),
    /// After this many pieces send nothing more, keeping the connection open until the client
    /// goes away (counted as a client close) or [`STALL_LIMIT`] passes (then close quietly).
    StallAfter(usize),
    /// After this many pieces close the TCP connection: no stop chunk, no `[DONE]`, and when
    /// chunked no terminating zero-length chunk either.
    DropAfter(usize),
    /// After this many pieces send the line `data: {not json`, then carry on normally: the
    /// remaining pieces, the stop chunk, usage and `[DONE]`.
    GarbageAfter(usize),
    /// After this many pieces send `data: {"error":{"message":"boom"}}` and end the response
    /// properly (terminating chunk when chunked), with no stop chunk and no `[DONE]`.
    ErrorEventAfter(usize),
    /// Answer [`SPLIT_UTF8_PIECES`] instead of the set pieces, writing every event in two TCP
    /// writes with a pause between them: the event holding "₹" is cut inside that character's
    /// three bytes, every other one after `dat` of its `data:`. When chunked, each half is an
    /// HTTP chunk of its own.
    SplitUtf8,
}

/// One tool call of a scripted answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeCall {
    pub id: String,
    pub name: String,
    /// The arguments' text exactly as streamed (may be broken JSON on purpose).
    pub arguments: String,
}

impl FakeCall {
    pub fn new(id: &str, name: &str, arguments: &str) -> FakeCall {
        FakeCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// What one chat request is answered with, in place of the set pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Script {
    /// These pieces, then `finish_reason: "stop"`.
    Text(Vec<String>),
    /// `text` first (what a model may say before calling), then the calls: each call's first
    /// delta carries its `index`, `id`, `type` and `name` with empty arguments, and the
    /// arguments follow in fragments of `fragment` characters. With `interleave`, the calls'
    /// fragments alternate (0, 1, 0, 1…). Ends with `finish_reason: "tool_calls"`.
    Calls {
        text: Vec<String>,
        calls: Vec<FakeCall>,
        fragment: usize,
        interleave: bool,
    },
}

impl Script {
    /// These calls, arguments in fragments of 4 characters, one call after the other.
    pub fn calls(calls: Vec<FakeCall>) -> Script {
        Script::Calls {
            text: Vec::new(),
            calls,
            fragment: 4,
            interleave: false,
        }
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent (`/v1/chat/completions`).
    pub target: String,
    /// Header names lower-cased (`authorization`, `content-type`, …), in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text, after undoing a chunked transfer encoding.
    pub body: String,
    /// The body parsed as JSON; `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Recorded {
    /// The first value of this header; the name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether the request asked for a streamed answer (`"stream": true`).
    pub fn is_stream(&self) -> bool {
        self.json["stream"].as_bool() == Some(true)
    }
}

/// Everything a test can set; copied for each request as it arrives.
#[derive(Clone)]
struct Settings {
    pieces: Vec<String>,
    interval: Duration,
    first_byte_delay: Duration,
    fault: Fault,
    /// Taken by the next chat request, in place of `fault`.
    fault_once: Option<Fault>,
    chunked: bool,
    usage: bool,
    keepalive_comments: bool,
    lying_keepalive: bool,
    /// Taken one per chat request, oldest first, before anything else but a refusal.
    script: std::collections::VecDeque<Script>,
    /// Answers every request that carries `tools` (once the script is used up).
    call_forever: Option<FakeCall>,
    /// Status and body for every request that carries `tools`.
    refuse_tools: Option<(u16, String)>,
}

/// How many answers the client abandoned, and how many of them a `wait_client_closed` has
/// already reported.
#[derive(Default)]
struct Closes {
    count: usize,
    reported: usize,
}

struct Shared {
    settings: Mutex<Settings>,
    requests: Mutex<Vec<Recorded>>,
    closes: Mutex<Closes>,
    closed_signal: Condvar,
    completed: AtomicUsize,
    stopping: AtomicBool,
    /// (prompt, completion) tokens of each usage chunk sent, in order.
    usages: Mutex<Vec<(u64, u64)>>,
}

impl Shared {
    /// The settings for one chat request, using up a one-time fault.
    fn settings_for_request(&self) -> Settings {
        let mut settings = self.settings.lock().unwrap();
        let mut snapshot = settings.clone();
        if let Some(once) = settings.fault_once.take() {
            snapshot.fault = once;
        }
        // The snapshot keeps only this request's step of the script.
        snapshot.script = settings.script.pop_front().into_iter().collect();
        snapshot
    }

    fn count_client_closed(&self) {
        self.closes.lock().unwrap().count += 1;
        self.closed_signal.notify_all();
    }
}

/// The running fake; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeLlm {
    /// Listens on 127.0.0.1 at a port the OS picks; streams [`DEFAULT_PIECES`] close-delimited,
    /// with no delays and no fault, until told otherwise.
    pub fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake LLM server");
        let addr = listener.local_addr().expect("the fake's local address");
        let shared = Arc::new(Shared {
            settings: Mutex::new(Settings {
                pieces: DEFAULT_PIECES.iter().map(|p| p.to_string()).collect(),
                interval: Duration::ZERO,
                first_byte_delay: Duration::ZERO,
                fault: Fault::None,
                fault_once: None,
                chunked: false,
                usage: true,
                keepalive_comments: false,
                lying_keepalive: false,
                script: Default::default(),
                call_forever: None,
                refuse_tools: None,
            }),
            requests: Mutex::new(Vec::new()),
            closes: Mutex::new(Closes::default()),
            closed_signal: Condvar::new(),
            completed: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            usages: Mutex::new(Vec::new()),
        });
        let for_acceptor = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(listener, for_acceptor));
        FakeLlm {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the value for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.requests.lock().unwrap().last().cloned()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Answers abandoned by the client: a write failed (broken pipe, reset), or the client
    /// closed its side while the fake was waiting (first-byte delay, interval, stall; a
    /// half-close of the client's writing side counts too). With no interval a short stream
    /// may be written whole into the socket buffers before the close is seen.
    pub fn client_closed_count(&self) -> usize {
        self.shared.closes.lock().unwrap().count
    }

    /// Waits up to `timeout` for a client close that no earlier call reported; true if one
    /// came (or had already come). Each close is reported once, so a test can call this after
    /// each cancel it makes.
    pub fn wait_client_closed(&self, timeout: Duration) -> bool {
        let closes = self.shared.closes.lock().unwrap();
        let (mut closes, _) = self
            .shared
            .closed_signal
            .wait_timeout_while(closes, timeout, |c| c.count <= c.reported)
            .unwrap();
        if closes.count > closes.reported {
            closes.reported += 1;
            true
        } else {
            false
        }
    }

    /// Streams whose `data: [DONE]` was written (the close or zero-length chunk after it may
    /// still fail); a client that has read `[DONE]` always finds its stream counted here.
    pub fn completed_count(&self) -> usize {
        self.shared.completed.load(Ordering::SeqCst)
    }

    /// The answer, one SSE event per piece; the non-streaming answer is their concatenation.
    pub fn set_pieces(&self, pieces: Vec<String>) {
        self.change(|s| s.pieces = pieces);
    }

    /// The pause before each piece after the first.
    pub fn set_interval(&self, interval: Duration) {
        self.change(|s| s.interval = interval);
    }

    /// The pause between reading a request and sending the status line.
    pub fn set_first_byte_delay(&self, delay: Duration) {
        self.change(|s| s.first_byte_delay = delay);
    }

    /// Applies to every following request until changed.
    pub fn set_fault(&self, fault: Fault) {
        self.change(|s| s.fault = fault);
    }

    /// Applies to the next chat request only; later ones get the fault of `set_fault`.
    pub fn set_fault_once(&self, fault: Fault) {
        self.change(|s| s.fault_once = Some(fault));
    }

    /// Streams with `Transfer-Encoding: chunked` (true) or delimited by closing the connection
    /// (false, the default).
    pub fn set_chunked(&self, chunked: bool) {
        self.change(|s| s.chunked = chunked);
    }

    /// Whether usage is reported (default true); false leaves it out even when the request
    /// asks for it with `"stream_options": {"include_usage": true}`.
    pub fn set_usage(&self, usage: bool) {
        self.change(|s| s.usage = usage);
    }

    /// Sends an SSE comment line `: keep-alive` before each piece after the first.
    pub fn set_keepalive_comments(&self, on: bool) {
        self.change(|s| s.keepalive_comments = on);
    }

    /// Like llama-server: say `Connection: keep-alive`, then close after the response anyway.
    /// When false (the default) the fake keeps the connection for another request whenever the
    /// response's end can be told without a close (chunked stream, error, non-streaming) and
    /// the client did not ask for `Connection: close`; otherwise it says `Connection: close`.
    pub fn set_lying_keepalive(&self, on: bool) {
        self.change(|s| s.lying_keepalive = on);
    }

    /// The next chat requests are answered with these, one each, in order; after them the
    /// fake answers as set before. A refusal ([`FakeLlm::set_refuse_tools`]) still comes
    /// first, without using up a step.
    pub fn set_script(&self, script: Vec<Script>) {
        self.change(|s| s.script = script.into());
    }

    /// A model that never stops calling: every request that carries `tools` (and has no step
    /// of the script left) is answered with this call, its id suffixed with `-N` (N counting
    /// requests). Requests without tools get the set pieces.
    pub fn set_call_forever(&self, call: Option<FakeCall>) {
        self.change(|s| s.call_forever = call);
    }

    /// An upstream without tool support: every request that carries `tools` is answered with
    /// this status and body, e.g. `(400, r#"{"error":{"message":"tools param requires --jinja flag"}}"#)`.
    pub fn set_refuse_tools(&self, refusal: Option<(u16, String)>) {
        self.change(|s| s.refuse_tools = refusal);
    }

    /// (prompt, completion) tokens of every usage chunk sent so far, in order.
    pub fn reported_usages(&self) -> Vec<(u64, u64)> {
        self.shared.usages.lock().unwrap().clone()
    }

    fn change(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.shared.settings.lock().unwrap());
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The acceptor is blocked in accept(); a connection wakes it to see the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(stream) = stream {
            let shared = shared.clone();
            std::thread::spawn(move || serve_connection(stream, &shared));
        }
    }
}

/// Why an answer ended before `[DONE]`.
enum Cut {
    /// The client went away: counted in `client_closed_count`.
    ClientGone,
    /// The fake ended it on purpose (a fault, the stall limit, shutting down).
    ByFake,
}

/// Serves requests on one connection until either side closes it, it idles for
/// [`IDLE_LIMIT`], or [`MAX_REQUESTS_PER_CONNECTION`] have been served.
fn serve_connection(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let _ = stream.set_read_timeout(Some(IDLE_LIMIT));
        let Some(request) = read_request(&mut reader) else {
            break;
        };
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let number = {
            let mut requests = shared.requests.lock().unwrap();
            requests.push(request.clone());
            requests.len()
        };
        let mut conn = Conn {
            stream: &stream,
            shared,
            chunked: false,
        };
        if !conn.answer(&request, number) {
            break;
        }
    }
    // Both handles share the socket; shutting it down is what makes the client see the end.
    let _ = stream.shutdown(Shutdown::Both);
}

/// One response being written.
struct Conn<'a> {
    stream: &'a TcpStream,
    shared: &'a Shared,
    /// Whether `send` frames its bytes as HTTP chunks.
    chunked: bool,
}

impl Conn<'_> {
    /// Answers the `number`th request (from 1); true if the connection may serve another.
    fn answer(&mut self, request: &Recorded, number: usize) -> bool {
        let path = request.target.split('?').next().unwrap_or("");
        if request.method != "POST" || path != "/v1/chat/completions" {
            let body = error_json(&format!("no route for {} {}", request.method, path));
            return self.plain(404, &body, wants_keep_alive(request), false);
        }
        let settings = self.shared.settings_for_request();
        let reuse = wants_keep_alive(request) && !settings.lying_keepalive;
        if let Err(cut) = self.pause(settings.first_byte_delay) {
            return self.cut_short(cut);
        }
        if let Fault::Status(status, body) = &settings.fault {
            return self.plain(*status, body, reuse, settings.lying_keepalive);
        }
        if request.json.is_null() {
            let body = error_json("the request body is not JSON");
            return self.plain(400, &body, reuse, settings.lying_keepalive);
        }
        let has_tools = request.json.get("tools").is_some();
        if let Some((status, body)) = settings.refuse_tools.as_ref().filter(|_| has_tools) {
            return self.plain(*status, body, reuse, settings.lying_keepalive);
        }
        let answer = Answer::new(request, number, &settings);
        if !request.is_stream() {
            let body = answer.completion_json(&settings).to_string();
            return self.plain(200, &body, reuse, settings.lying_keepalive);
        }
        let reuse = reuse && settings.chunked;
        match self.stream_answer(&answer, &settings, reuse) {
            Ok(()) => reuse,
            Err(cut) => self.cut_short(cut),
        }
    }

    /// Books an answer that ended early; the connection is not reused after one.
    fn cut_short(&self, cut: Cut) -> bool {
        if let Cut::ClientGone = cut {
            self.shared.count_client_closed();
        }
        false
    }

    /// A complete response with a `Content-Length`; true if the connection may be reused.
    fn plain(&mut self, status: u16, body: &str, reuse: bool, lying: bool) -> bool {
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: {}\r\n\r\n",
            reason(status),
            body.len(),
            connection_header(reuse || lying),
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        match self.write(&bytes) {
            Ok(()) => reuse,
            Err(cut) => self.cut_short(cut),
        }
    }

    /// The whole event stream, from the status line to `[DONE]`.
    fn stream_answer(
        &mut self,
        answer: &Answer,
        settings: &Settings,
        reuse: bool,
    ) -> Result<(), Cut> {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             Connection: {}\r\n{}\r\n",
            connection_header(reuse || settings.lying_keepalive),
            if settings.chunked {
                "Transfer-Encoding: chunked\r\n"
            } else {
                ""
            },
        );
        self.write(head.as_bytes())?;
        self.chunked = settings.chunked;
        let pieces = &answer.pieces;
        for sent in 0..=pieces.len() {
            match settings.fault {
                Fault::StallAfter(n) if n == sent => return self.stall(),
                Fault::DropAfter(n) if n == sent => return Err(Cut::ByFake),
                Fault::GarbageAfter(n) if n == sent => self.send(b"data: {not json\n\n")?,
                Fault::ErrorEventAfter(n) if n == sent => {
                    self.send(b"data: {\"error\":{\"message\":\"boom\"}}\n\n")?;
                    self.end_body()?;
                    return Err(Cut::ByFake);
                }
                _ => {}
            }
            let Some(piece) = pieces.get(sent) else {
                break;
            };
            if sent > 0 {
                self.pause(settings.interval)?;
                if settings.keepalive_comments {
                    self.send(b": keep-alive\n\n")?;
                }
            }
            let event = answer.piece_event(sent, piece);
            if settings.fault == Fault::SplitUtf8 {
                self.send_in_two(event.as_bytes())?;
            } else {
                self.send(event.as_bytes())?;
            }
        }
        for event in &answer.call_events {
            self.pause(settings.interval)?;
            self.send(event.as_bytes())?;
        }
        self.send(answer.stop_event().as_bytes())?;
        if let Some(event) = answer.usage_event() {
            self.send(event.as_bytes())?;
            let u = answer.usage_json();
            self.shared.usages.lock().unwrap().push((
                u["prompt_tokens"].as_u64().unwrap_or(0),
                u["completion_tokens"].as_u64().unwrap_or(0),
            ));
        }
        // Counted before the write, so a client that has read `[DONE]` finds it counted.
        let completed = &self.shared.completed;
        completed.fetch_add(1, Ordering::SeqCst);
        if let Err(cut) = self.send(b"data: [DONE]\n\n") {
            completed.fetch_sub(1, Ordering::SeqCst);
            return Err(cut);
        }
        self.end_body()
    }

    /// Sends one piece of the body: raw, or as one HTTP chunk.
    fn send(&mut self, bytes: &[u8]) -> Result<(), Cut> {
        if !self.chunked {
            return self.write(bytes);
        }
        let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
        framed.extend_from_slice(bytes);
        framed.extend_from_slice(b"\r\n");
        self.write(&framed)
    }

    /// Sends an event in two writes, cut inside "₹" if it has one, else inside `data:`.
    fn send_in_two(&mut self, event: &[u8]) -> Result<(), Cut> {
        let rupee = "₹".as_bytes();
        let cut = event
            .windows(rupee.len())
            .position(|w| w == rupee)
            .map_or(3, |at| at + 1);
        self.send(&event[..cut])?;
        self.pause(SPLIT_PAUSE)?;
        self.send(&event[cut..])
    }

    /// Ends a chunked body with its zero-length chunk; nothing for a close-delimited one.
    fn end_body(&mut self) -> Result<(), Cut> {
        if self.chunked {
            self.write(b"0\r\n\r\n")?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Cut> {
        let mut stream = self.stream;
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(|_| Cut::ClientGone)
    }

    /// Sends nothing for up to [`STALL_LIMIT`], watching for the client to leave.
    fn stall(&mut self) -> Result<(), Cut> {
        self.pause(STALL_LIMIT)?;
        Err(Cut::ByFake)
    }

    /// Waits `total`, looking every [`WATCH_SLICE`] whether the client has closed its side or
    /// the fake is stopping.
    fn pause(&mut self, total: Duration) -> Result<(), Cut> {
        let end = Instant::now() + total;
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return Err(Cut::ByFake);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let slice = left.min(WATCH_SLICE).max(Duration::from_millis(1));
            let _ = self.stream.set_read_timeout(Some(slice));
            let mut probe = [0u8; 1];
            match self.stream.peek(&mut probe) {
                Ok(0) => return Err(Cut::ClientGone),
                // The client sent more (a pipelined request): it is still there.
                Ok(_) => std::thread::sleep(slice),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Err(Cut::ClientGone),
            }
        }
    }
}

/// What one chat request is answered with.
struct Answer {
    /// `chatcmpl-N`, N counting requests from 1.
    id: String,
    created: u64,
    model: String,
    pieces: Vec<String>,
    /// Whether the request asked for usage and the fake is set to give it.
    usage_asked: bool,
    prompt_tokens: u64,
    /// Tool-call chunks sent after the pieces, each an SSE event (empty: none).
    call_events: Vec<String>,
}

impl Answer {
    fn new(request: &Recorded, number: usize, settings: &Settings) -> Answer {
        let body = &request.json;
        let mut script = settings.script.front().cloned();
        if script.is_none()
            && body.get("tools").is_some()
            && let Some(call) = &settings.call_forever
        {
            let call = FakeCall {
                id: format!("{}-{number}", call.id),
                ..call.clone()
            };
            script = Some(Script::calls(vec![call]));
        }
        let (pieces, calls) = match script {
            Some(Script::Text(pieces)) => (pieces, None),
            Some(Script::Calls {
                text,
                calls,
                fragment,
                interleave,
            }) => (text, Some((calls, fragment, interleave))),
            None if settings.fault == Fault::SplitUtf8 => (
                SPLIT_UTF8_PIECES.iter().map(|p| p.to_string()).collect(),
                None,
            ),
            None => (settings.pieces.clone(), None),
        };
        let mut answer = Answer {
            id: format!("chatcmpl-{number}"),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: body["model"].as_str().unwrap_or("fake-model").to_string(),
            pieces,
            usage_asked: settings.usage
                && body["stream_options"]["include_usage"].as_bool() == Some(true),
            prompt_tokens: prompt_tokens(body),
            call_events: Vec::new(),
        };
        if let Some((calls, fragment, interleave)) = calls {
            answer.call_events = answer.tool_call_events(&calls, fragment.max(1), interleave);
        }
        answer
    }

    /// The tool-call deltas, as api.openai.com sends them.
    fn tool_call_events(
        &self,
        calls: &[FakeCall],
        fragment: usize,
        interleave: bool,
    ) -> Vec<String> {
        let delta = |calls: Value| {
            let choice = json!({"index": 0, "delta": {"tool_calls": calls}, "finish_reason": null});
            self.chunk_event(Some(choice), Value::Null)
        };
        let fragments: Vec<Vec<String>> = calls
            .iter()
            .map(|c| {
                let chars: Vec<char> = c.arguments.chars().collect();
                chars.chunks(fragment).map(|f| f.iter().collect()).collect()
            })
            .collect();
        let head = |i: usize, c: &FakeCall| {
            delta(json!([{"index": i, "id": c.id, "type": "function",
                          "function": {"name": c.name, "arguments": ""}}]))
        };
        let piece = |i: usize, f: &str| delta(json!([{"index": i, "function": {"arguments": f}}]));
        let mut events = Vec::new();
        if interleave {
            for (i, c) in calls.iter().enumerate() {
                events.push(head(i, c));
            }
            let longest = fragments.iter().map(Vec::len).max().unwrap_or(0);
            for n in 0..longest {
                for (i, f) in fragments.iter().enumerate() {
                    if let Some(f) = f.get(n) {
                        events.push(piece(i, f));
                    }
                }
            }
        } else {
            for (i, c) in calls.iter().enumerate() {
                events.push(head(i, c));
                for f in &fragments[i] {
                    events.push(piece(i, f));
                }
            }
        }
        events
    }

    /// One `chat.completion.chunk` event. Like api.openai.com, every chunk carries
    /// `"usage":null` when usage was asked for, and only the last one a real usage.
    fn chunk_event(&self, choice: Option<Value>, usage: Value) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choice.into_iter().collect::<Vec<_>>(),
        });
        if self.usage_asked {
            chunk["usage"] = usage;
        }
        format!("data: {chunk}\n\n")
    }

    fn piece_event(&self, index: usize, piece: &str) -> String {
        let delta = if index == 0 {
            json!({"role": "assistant", "content": piece})
        } else {
            json!({"content": piece})
        };
        let choice = json!({"index": 0, "delta": delta, "finish_reason": null});
        self.chunk_event(Some(choice), Value::Null)
    }

    fn stop_event(&self) -> String {
        let reason = if self.call_events.is_empty() {
            "stop"
        } else {
            "tool_calls"
        };
        let choice = json!({"index": 0, "delta": {}, "finish_reason": reason});
        self.chunk_event(Some(choice), Value::Null)
    }

    /// The `"choices":[]` chunk with the token counts, when usage was asked for.
    fn usage_event(&self) -> Option<String> {
        self.usage_asked
            .then(|| self.chunk_event(None, self.usage_json()))
    }

    /// Prompt tokens are the words of the messages' text; completion tokens the pieces and
    /// the tool-call chunks.
    fn usage_json(&self) -> Value {
        let completion = (self.pieces.len() + self.call_events.len()) as u64;
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    /// The non-streaming answer; usage is left out only when `set_usage(false)`.
    fn completion_json(&self, settings: &Settings) -> Value {
        let mut body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.pieces.concat()},
                "finish_reason": "stop",
            }],
        });
        if settings.usage {
            body["usage"] = self.usage_json();
        }
        body
    }
}

/// Counts the words of every message's text (a string, or text parts), at least 1.
fn prompt_tokens(body: &Value) -> u64 {
    let mut words = 0;
    for message in body["messages"].as_array().into_iter().flatten() {
        let content = &message["content"];
        let parts = content
            .as_array()
            .map_or(vec![content], |p| p.iter().collect());
        for part in parts {
            let text = part.as_str().or(part["text"].as_str()).unwrap_or("");
            words += text.split_whitespace().count() as u64;
        }
    }
    words.max(1)
}

fn error_json(message: &str) -> String {
    json!({"error": {"message": message, "type": "invalid_request_error"}}).to_string()
}

/// HTTP/1.1 keeps the connection unless the client says `Connection: close`.
fn wants_keep_alive(request: &Recorded) -> bool {
    !request
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

fn connection_header(keep_alive: bool) -> &'static str {
    if keep_alive { "keep-alive" } else { "close" }
}

/// Reads one request: head up to the blank line, then a body sized by `Content-Length` or
/// sent with `Transfer-Encoding: chunked`. `None` at end of stream, on a timeout or on
/// anything malformed (the connection is then closed).
fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
    let mut budget = MAX_HEAD_BYTES;
    let first = head_line(reader, &mut budget)?;
    let mut words = first.split(' ');
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let line = head_line(reader, &mut budget)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut request = Recorded {
        method,
        target,
        headers,
        body: String::new(),
        json: Value::Null,
    };
    let raw = if request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked_body(reader)?
    } else {
        let length: usize = request
            .header("content-length")
            .unwrap_or("0")
            .parse()
            .ok()?;
        if length > MAX_BODY_BYTES {
            return None;
        }
        let mut raw = vec![0; length];
        reader.read_exact(&mut raw).ok()?;
        raw
    };
    request.body = String::from_utf8_lossy(&raw).into_owned();
    request.json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Some(request)
}

/// The chunks' data, through the zero-length chunk and any trailers.
fn read_chunked_body(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut budget = MAX_HEAD_BYTES;
    let mut raw = Vec::new();
    loop {
        let size_line = head_line(reader, &mut budget)?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        if size == 0 {
            while !head_line(reader, &mut budget)?.is_empty() {}
            return Some(raw);
        }
        if raw.len() + size > MAX_BODY_BYTES {
            return None;
        }
        let start = raw.len();
        raw.resize(start + size, 0);
        reader.read_exact(&mut raw[start..]).ok()?;
        if !head_line(reader, &mut budget)?.is_empty() {
            return None;
        }
    }
}

/// One CRLF- (or LF-) terminated line without its ending, charged against `budget`.
fn head_line(reader: &mut impl BufRead, budget: &mut usize) -> Option<String> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(*budget as u64)
        .read_until(b'\n', &mut line)
        .ok()?;
    if read == 0 || line.last() != Some(&b'\n') {
        return None;
    }
    *budget -= read;
    let text = String::from_utf8(line).ok()?;
    Some(text.trim_end_matches(['\r', '\n']).to_string())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
