//! The HTTP listener: tiny_http's accept thread and per-connection readers, our bounded pool
//! of handler threads, the dispatch that applies every cross-cutting rule in one place, and a
//! watchdog for the accept loop. A slow route's request is checked on a handler thread, then
//! handed whole to the slow pool (`pool`), which runs its handler and writes its answer.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

use super::framing::{self, Intake, Verdict};
use super::later::{Answers, Later, Start, Work};
use super::middleware;
use super::pool::SlowPool;
use super::ratelimit;
use super::request::{Req, parse_query};
use super::response::Resp;
use super::router::{Handler, Match, Router};
use super::write;
use crate::config::Config;
use crate::error::Error;
use crate::limiter::RateLimiter;
use crate::metrics::Metrics;

/// What the server needs from the state it serves. The application implements it where it
/// wires the listeners together (`src/serve.rs`), so this layer names no application type.
pub(crate) trait State: Send + Sync + 'static {
    /// Workers, body and header limits, trusted proxies, CORS.
    fn config(&self) -> &Config;
    /// Where every answered request is counted.
    fn metrics(&self) -> &Metrics;
    /// Graceful stop has begun: answer what is queued, then go.
    fn is_stopping(&self) -> bool;
    /// The listener is gone for good: the process must exit and be restarted.
    fn fail(&self, why: String);
    /// The request-rate counters (`ratelimit` decides what they count).
    fn limiter(&self) -> &RateLimiter;
    /// Unix seconds, for the rate-limit windows.
    fn now(&self) -> i64;
    /// The user a request's bearer token names, if its signature is valid: the rate limits
    /// count per user. Only the signature is checked (no database), so this is cheap and a
    /// forged token cannot pass; the handler still does the full check.
    fn bearer_user(&self, req: &Req) -> Option<String>;
}

/// Requests whose unread body is being drained on a side thread right now.
static DRAINING: AtomicUsize = AtomicUsize::new(0);
/// Past this many drains at once the log says so: clients are declaring bodies they do not
/// send, which the reverse proxy should cut off (its body timeout).
const DRAINING_WARN: usize = 256;

/// Binds a listening socket with the options accepted sockets inherit: TCP keepalive and
/// `TCP_USER_TIMEOUT` so dead peers are reaped, and a send timeout so a client that never
/// reads cannot hold a thread forever. No receive timeout: on the listening socket it would
/// also time out `accept()`, which ends tiny_http's accept loop.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3),
    )?;
    socket.set_tcp_user_timeout(Some(Duration::from_secs(60)))?;
    socket.set_write_timeout(Some(Duration::from_secs(30)))?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The HTTP listener, serving the routes of `router` with the state `S`.
pub(crate) struct HttpServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
    slow: Arc<SlowPool>,
    answers: Arc<Answers>,
}

impl HttpServer {
    pub(crate) fn start<S: State>(
        app: Arc<S>,
        router: Router<S>,
        listener: TcpListener,
    ) -> Result<HttpServer, String> {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // tiny_http reads each connection on a thread of its own pool for the connection's
        // whole life. Its pool (0.12.17, `util/task_pool_legacy.rs`) hands a new connection
        // to an idle thread if its count of idle threads is above zero, but that count only
        // drops once a woken thread runs: a burst of K connections against N < K idle threads
        // queues K - N of them behind keep-alive connections, until one closes (seconds;
        // forever under steady keep-alive). Idle threads above the minimum exit after 5 s, so
        // the stall came back after every pause. Kept alive, `HTTP_READER_THREADS` idle
        // threads take a burst of that many new connections at once; a larger burst can
        // still wait. Each costs a parked stack (a few kB resident; benches/burst.rs).
        let config = tiny_http::ServerConfig::new_http(addr)
            .map_err(|e| e.to_string())?
            .set_min_threads(app.config().http.reader_threads);
        let server =
            tiny_http::Server::from_listener(listener, tiny_http::ListenAddr::IP(addr), config)
                .map_err(|e| format!("cannot start the HTTP server: {e}"))?;
        let server = Arc::new(server);
        let router = Arc::new(router);
        let intake = Arc::new(Mutex::new(Intake::default()));
        let slow = Arc::new(SlowPool::new(app.config().http.slow_workers));
        let answers =
            Arc::new(Answers::start().map_err(|e| format!("cannot start the answer thread: {e}"))?);
        let mut workers = Vec::new();
        for i in 0..app.config().http.workers {
            let app = app.clone();
            let router = router.clone();
            let server = server.clone();
            let intake = intake.clone();
            let pools = Pools {
                slow: slow.clone(),
                answers: answers.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || worker(&app, &router, &server, &intake, &pools, addr))
                .map_err(|e| format!("cannot start worker threads: {e}"))?;
            workers.push(handle);
        }
        Ok(HttpServer {
            server,
            addr,
            workers,
            slow,
            answers,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and waits (up to `deadline`) for the ones in flight, on the
    /// handler threads, then on the slow pool (which the handler threads feed), then for the
    /// answers given later (which both feed).
    pub(crate) fn stop(self, deadline: Instant) {
        for w in self.workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.slow.close(deadline);
        self.answers.close(deadline);
        // Dropping the server stops its accept thread once a connection wakes it.
        drop(self.server);
        let _ = TcpStream::connect_timeout(&local(self.addr), Duration::from_millis(200));
    }
}

/// The address to reach a listener bound to a wildcard address.
pub(crate) fn local(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Where a handler thread hands on what it must not wait for.
struct Pools {
    /// Routes that wait on the outside world.
    slow: Arc<SlowPool>,
    /// Answers given once work queued elsewhere is done.
    answers: Arc<Answers>,
}

/// Pops requests one worker at a time: the framing verdict on a request (and the mark on its
/// connection) is taken before the request behind it can be popped (see `framing`).
fn worker<S: State>(
    app: &Arc<S>,
    router: &Router<S>,
    server: &tiny_http::Server,
    intake: &Mutex<Intake>,
    pools: &Pools,
    listen: SocketAddr,
) {
    loop {
        let stopping = app.is_stopping();
        let popped = {
            let mut intake = intake.lock().unwrap_or_else(|e| e.into_inner());
            let next = if stopping {
                // Answer what is already queued, then go.
                server.try_recv().map(Ok)
            } else {
                server.recv_timeout(Duration::from_millis(200))
            };
            match next {
                Ok(Ok(Some(rq))) => {
                    let verdict = intake.admit(&rq);
                    Some((rq, verdict))
                }
                Ok(Ok(None)) => None,
                // A malformed request: tiny_http already answered 400 and closed the connection.
                Ok(Err(e)) => {
                    log::debug!("unreadable request: {e}");
                    None
                }
                Err(e) => {
                    if !stopping {
                        app.fail(format!("the HTTP accept loop stopped: {e}"));
                    }
                    return;
                }
            }
        };
        match popped {
            Some((rq, Verdict::Admit)) => handle(app, router, pools, rq),
            Some((rq, Verdict::Refuse(reason))) => refuse(&**app, rq, reason, listen),
            Some((rq, Verdict::Discard)) => discard(rq),
            None if stopping => return,
            None => {}
        }
    }
}

/// Checks that the listener still accepts connections; after three failures in a row it
/// marks the process failed, and `main` exits non-zero so systemd restarts it.
pub(crate) fn spawn_watchdog<S: State>(
    app: Arc<S>,
    addr: SocketAddr,
) -> std::io::Result<JoinHandle<()>> {
    let target = local(addr);
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut failures = 0;
            let mut last = Instant::now();
            while !app.is_stopping() {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < app.config().http.watchdog_interval {
                    continue;
                }
                last = Instant::now();
                match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                    Ok(_) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        log::warn!("watchdog: cannot connect to {target}: {e} ({failures}/3)");
                        if failures >= 3 {
                            app.fail(format!("the HTTP listener on {target} stopped accepting"));
                            return;
                        }
                    }
                }
            }
        })
}

fn header_value<'a>(rq: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    rq.headers().get(name).map(|v| v.as_str())
}

/// The headers handlers may read. tiny_http offers lookup by name but no iteration.
const KNOWN_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "origin",
    "x-request-id",
    "x-forwarded-for",
    "idempotency-key",
    "access-control-request-method",
    "access-control-request-headers",
    "user-agent",
    "accept",
    // conditional requests (sync: ETags; If-Match)
    "if-none-match",
    "if-match",
];

/// Counts bytes written to it; measures the headers without copying them.
struct Counter(usize);

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// An upper bound of the header block's size. tiny_http keeps headers private but for their
/// `Debug` form, which holds every name and value plus a fixed overhead per header, so a huge
/// line and a flood of small ones both push it over the limit.
fn header_weight(rq: &tiny_http::Request) -> usize {
    use std::fmt::Write;
    let mut c = Counter(0);
    let _ = write!(c, "{:?}", rq.headers());
    c.0
}

/// What the dispatch learned about the body, so `respond` knows whether bytes are left.
struct BodyState {
    fully_read: bool,
}

fn handle<S: State>(app: &Arc<S>, router: &Router<S>, pools: &Pools, mut rq: tiny_http::Request) {
    let started = Instant::now();
    let mut body = BodyState { fully_read: false };
    let mut req = request_of(&**app, &rq);
    let resp = match dispatch(&**app, router, &mut rq, &mut body, &mut req) {
        Ok(Next::Answer(resp)) => resp,
        Ok(Next::Run {
            handler,
            pattern,
            slow: false,
        }) => call(&**app, handler, pattern, &req),
        Ok(Next::Run {
            handler,
            pattern,
            slow: true,
        }) => match pools.slow.reserve() {
            Some(slot) => {
                let app = app.clone();
                let answers = pools.answers.clone();
                slot.run(Box::new(move || {
                    let resp = call(&*app, handler, pattern, &req);
                    answer_or_start(&app, &answers, rq, req, resp, body, started);
                }));
                return;
            }
            None => error_response(&req, pool_full()),
        },
        Err(e) => error_response(&req, e),
    };
    answer_or_start(app, &pools.answers, rq, req, resp, body, started);
}

/// Answers now, or starts the work of an answer given later (`Resp::later`): the thread
/// goes on at once, and the answer thread writes the answer when the work is done. While
/// the answer thread holds a request of the same connection (pipelined), this thread waits
/// for the work and answers itself (see `Answers::open`).
fn answer_or_start<S: State>(
    app: &Arc<S>,
    answers: &Arc<Answers>,
    rq: tiny_http::Request,
    req: Req,
    mut resp: Resp,
    body: BodyState,
    started: Instant,
) {
    let Some(start) = resp.take_later::<S>() else {
        answer(&**app, rq, &req, resp, &body, started);
        return;
    };
    let Some(open) = rq.remote_addr().and_then(|peer| answers.open(*peer)) else {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Work<S>>(1);
        let later = Later::new(move |work| {
            let _ = tx.send(work);
        });
        begin(&**app, start, later);
        // A dropped `Later` sends its own error, so the channel always carries one.
        let resp = match rx.recv() {
            Ok(work) => finish(&**app, &req, work),
            Err(_) => error_response(&req, Error::internal("a deferred answer was lost")),
        };
        answer(&**app, rq, &req, resp, &body, started);
        return;
    };
    let (state, queue) = (app.clone(), answers.clone());
    let later = Later::new(move |work: Work<S>| {
        queue.run(move || {
            let resp = finish(&*state, &req, work);
            answer(&*state, rq, &req, resp, &body, started);
            drop(open);
        })
    });
    begin(&**app, start, later);
}

/// Runs `start`; a panic in it drops its `Later`, which answers 500, and leaves this thread
/// serving.
fn begin<S: State>(app: &S, start: Start<S>, later: Later<S>) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| start(app, later))).is_err() {
        log::error!("starting a deferred answer panicked");
    }
}

/// The answer a finished work gives; its error or panic as an error answer.
fn finish<S: State>(app: &S, req: &Req, work: Work<S>) -> Resp {
    match std::panic::catch_unwind(AssertUnwindSafe(|| work(app))) {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => error_response(req, e),
        Err(_) => error_response(req, Error::internal("a deferred answer panicked")),
    }
}

/// Every slot of the slow pool is taken: the request is refused at once rather than queued
/// behind answers that may take a minute.
fn pool_full() -> Error {
    static REFUSED: AtomicUsize = AtomicUsize::new(0);
    if REFUSED.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
        log::warn!("the slow pool is full (HTTP_SLOW_WORKERS): answering 503");
    }
    Error::Unavailable {
        code: "server_busy",
        detail: "The server is busy with long requests; please retry".into(),
    }
}

/// Finishes the response (CORS and security headers), logs it and writes it.
fn answer<S: State>(
    app: &S,
    rq: tiny_http::Request,
    req: &Req,
    mut resp: Resp,
    body: &BodyState,
    started: Instant,
) {
    middleware::finish(app.config(), req, &mut resp);
    access_log(app, req, &resp, started);
    if resp.stream.is_some() {
        stream(app, rq, resp);
        return;
    }
    let unread = rq.body_length().unwrap_or(0) > 0 && !body.fully_read;
    let settled = write::settled(&rq, body.fully_read);
    send(rq, resp, unread, settled);
}

/// Counts the request and writes the access-log line, with the client address the rate
/// limiter keys on.
fn access_log<S: State>(app: &S, req: &Req, resp: &Resp, started: Instant) {
    let elapsed = started.elapsed();
    app.metrics().record(resp.status, elapsed);
    log::info!(
        "{} {} {} {:.1}ms client={} rid={}",
        req.method,
        req.path,
        resp.status,
        elapsed.as_secs_f64() * 1000.0,
        req.client_ip,
        req.request_id
    );
}

/// Ambiguous framing: one 400, then the connection is closed (see `framing`). The answer is
/// written on the raw writer so the connection is shut for writing before tiny_http may write
/// anything after it.
fn refuse<S: State>(app: &S, rq: tiny_http::Request, reason: &'static str, listen: SocketAddr) {
    let started = Instant::now();
    let req = request_of(app, &rq);
    let e = Error::bad_request(
        "invalid_framing",
        format!("Ambiguous request framing: {reason}"),
    );
    let mut resp = error_response(&req, e);
    middleware::finish(app.config(), &req, &mut resp);
    access_log(app, &req, &resp, started);
    // tiny_http's `Response` drops a `Connection` header, so this head is written here.
    let mut head = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        resp.content_type,
        resp.body.len()
    );
    push_headers(&mut head, &resp.headers);
    let closing = framing::Closing::begin(listen, rq.remote_addr().copied());
    let mut w = rq.into_writer();
    let mut written = w.write_all(head.as_bytes());
    if req.method != "HEAD" {
        written = written.and_then(|_| w.write_all(&resp.body));
    }
    let written = written.and_then(|_| w.flush());
    if let Err(e) = written {
        log::debug!("writing a framing refusal failed: {e}");
    }
    closing.finish();
}

/// A request pipelined behind a refused one: nothing is routed and nothing is written. The
/// flush waits for the refusal ahead of it to be written and the connection shut, so the
/// writer tiny_http queues after this one cannot write first.
fn discard(rq: tiny_http::Request) {
    log::warn!(
        "discarded a request pipelined behind a refused one from {:?}",
        rq.remote_addr()
    );
    let mut w = rq.into_writer();
    let _ = w.flush();
}

/// Writes the response. If the client declared a body we never read, tiny_http drains it when
/// the request is dropped (with a fixed buffer), which waits on the client for as long as it
/// likes; do that on a side thread so a hostile `Content-Length` cannot hold a handler thread.
///
/// There is deliberately no cap that falls back to draining here: with one, 256 +
/// `HTTP_WORKERS` clients declaring a body and never sending it stopped every handler
/// (tests/hostile_http.rs). tiny_http already keeps one uncapped thread per connection, so
/// a small drain thread for such a connection adds little; the proxy bounds both.
fn send(rq: tiny_http::Request, response: Resp, unread: bool, settled: bool) {
    if !unread {
        write::respond(rq, response, settled);
        return;
    }
    let now = DRAINING.fetch_add(1, Ordering::Relaxed) + 1;
    if now >= DRAINING_WARN && now.is_multiple_of(64) {
        log::warn!("{now} requests are waiting for bodies their clients declared");
    }
    // The request reaches the thread through a channel, so it is still ours to answer if the
    // thread cannot be started.
    let (tx, rx) = std::sync::mpsc::channel::<(tiny_http::Request, Resp)>();
    let spawned = std::thread::Builder::new()
        .name("drain".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Ok((rq, response)) = rx.recv() {
                write::respond(rq, response, false);
            }
            DRAINING.fetch_sub(1, Ordering::Relaxed);
        });
    let job = (rq, response);
    let job = match spawned {
        Ok(_) => match tx.send(job) {
            Ok(()) => return,
            Err(std::sync::mpsc::SendError(job)) => job,
        },
        Err(e) => {
            DRAINING.fetch_sub(1, Ordering::Relaxed);
            log::warn!("could not start a drain thread ({e}); draining on a handler thread");
            job
        }
    };
    write::respond(job.0, job.1, false);
}

/// Sends every `write` as one HTTP chunk, so an event leaves whole and at once.
struct Chunked<'a>(&'a mut dyn Write);

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", buf.len())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Appends our response headers to a head written by hand, and the blank line that ends it.
fn push_headers(head: &mut String, headers: &[(String, String)]) {
    for (k, v) in headers {
        // The same rule as every other answer's head (`write`): nothing that could split it.
        if write::is_token(k) && write::is_field_value(v) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
}

/// A streamed response: tiny_http's `Response` buffers 8 KiB per chunk, so we write the head
/// and the chunks ourselves on the raw connection and flush each one.
fn stream<S: State>(app: &S, rq: tiny_http::Request, mut resp: Resp) {
    let Some(body) = resp.take_stream::<S>() else {
        return;
    };
    let mut w = rq.into_writer();
    let mut head = format!(
        "HTTP/1.1 {} OK\r\nContent-Type: {}\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n",
        resp.status, resp.content_type
    );
    push_headers(&mut head, &resp.headers);
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    body(app, &mut Chunked(&mut *w));
    let _ = w.write_all(b"0\r\n\r\n").and_then(|_| w.flush());
}

/// The request as handlers see it, before routing and without the body.
fn request_of<S: State>(app: &S, rq: &tiny_http::Request) -> Req {
    let url = rq.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (url.clone(), Vec::new()),
    };
    let headers: Vec<(String, String)> = KNOWN_HEADERS
        .iter()
        .filter_map(|name| header_value(rq, name).map(|v| (name.to_string(), v.to_string())))
        .collect();
    let peer = rq
        .remote_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let client_ip = middleware::client_ip(
        peer,
        header_value(rq, "x-forwarded-for"),
        &app.config().http.trusted_proxies,
    );
    Req {
        method: rq.method().as_str().to_ascii_uppercase(),
        path: middleware::loggable_path(&path).to_string(),
        query,
        request_id: middleware::request_id(header_value(rq, "x-request-id")),
        headers,
        body: Vec::new(),
        client_ip,
        peer,
        params: Vec::new(),
    }
}

/// What the checks decided: an answer already (a preflight), or the handler to run.
enum Next<S> {
    Answer(Resp),
    Run {
        handler: Handler<S>,
        pattern: &'static str,
        slow: bool,
    },
}

/// Every check before the handler: header size, preflight, routing, content type, the body,
/// the rate limits.
fn dispatch<S: State>(
    app: &S,
    router: &Router<S>,
    rq: &mut tiny_http::Request,
    body: &mut BodyState,
    req: &mut Req,
) -> Result<Next<S>, Error> {
    if header_weight(rq) > middleware::MAX_HEADER_WEIGHT {
        return Err(Error::HeadersTooLarge);
    }
    // Preflight comes before authentication and rate limiting, on any path.
    if req.method == "OPTIONS" {
        return Ok(Next::Answer(middleware::preflight(
            app.config(),
            req.header("origin"),
        )));
    }
    let (route, params) = match router.find(&req.method, &req.path) {
        Match::Found(route, params) => (route, params),
        Match::MethodNotAllowed(allow) => return Err(Error::MethodNotAllowed { allow }),
        Match::NotFound => return Err(Error::not_found("Not Found")),
    };
    req.params = params;
    if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        check_content_type(req.header("content-type"))?;
        req.body = read_body(rq, app.config().http.max_body_bytes, body)?;
    }
    ratelimit::before_handler(app, route.class, req)?;
    Ok(Next::Run {
        handler: route.handler,
        pattern: route.pattern,
        slow: route.slow,
    })
}

/// Runs the handler; its panic is a 500, not a lost thread.
fn call<S: State>(app: &S, handler: Handler<S>, pattern: &str, req: &Req) -> Resp {
    let result = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(app, req))) {
        Ok(result) => result,
        Err(_) => Err(Error::internal(format!("handler for {pattern} panicked"))),
    };
    result.unwrap_or_else(|e| error_response(req, e))
}

pub(crate) fn error_response(req: &Req, e: Error) -> Resp {
    if let Error::Internal(msg) = &e {
        log::error!("{} {} rid={}: {msg}", req.method, req.path, req.request_id);
    }
    let mut resp = Resp::json(e.status(), &e.body());
    for (k, v) in e.headers() {
        resp = resp.with_header(k, v);
    }
    resp
}

/// JSON routes refuse bodies declared as forms, multipart or XML (415); no type is fine.
fn check_content_type(ct: Option<&str>) -> Result<(), Error> {
    let Some(ct) = ct else { return Ok(()) };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let refused = essence == "application/x-www-form-urlencoded"
        || essence.starts_with("multipart/")
        || essence.ends_with("/xml")
        || essence.ends_with("+xml");
    if refused {
        return Err(Error::UnsupportedMediaType { got: essence });
    }
    Ok(())
}

/// Reads the body with a hard cap: a declared length over the cap is refused before reading,
/// and an undeclared (chunked) one is cut at cap + 1 bytes.
fn read_body(
    rq: &mut tiny_http::Request,
    max: usize,
    state: &mut BodyState,
) -> Result<Vec<u8>, Error> {
    if rq.body_length().is_some_and(|n| n > max) {
        return Err(Error::PayloadTooLarge { limit: max });
    }
    let mut buf = Vec::with_capacity(rq.body_length().unwrap_or(0).min(max));
    rq.as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            Error::Validation(vec![crate::error::FieldError::new(
                vec![serde_json::Value::from("body")],
                format!("Could not read the request body: {e}"),
                "body_read_error",
            )])
        })?;
    if buf.len() > max {
        return Err(Error::PayloadTooLarge { limit: max });
    }
    state.fully_read = true;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(check_content_type(None).is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("text/plain")).is_ok());
        for bad in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
            "text/xml",
            "application/soap+xml",
        ] {
            assert_eq!(check_content_type(Some(bad)).expect_err(bad).status(), 415);
        }
    }
}
