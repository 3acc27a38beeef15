//! Pieces every load benchmark needs, written with std only: the real server started
//! in-process on OS-picked ports with its own temporary database, or as a child process whose
//! memory, threads and CPU time `/proc` tells apart from the bench's; a keep-alive HTTP/1.1
//! client over a plain `TcpStream`, a runner that spreads requests over client threads and
//! times each one, and percentiles. Use it from a bench with `mod support;`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use wealthcoach::{Config, Running};

/// A server started for a benchmark; shut down and its folder removed when dropped.
pub struct BenchServer {
    running: Option<Running>,
    addr: SocketAddr,
    dir: PathBuf,
}

impl BenchServer {
    /// Starts the server with the benchmark settings; `extra` overrides or adds settings.
    pub fn start(extra: &[(&str, &str)]) -> BenchServer {
        let dir = bench_dir();
        let vars = bench_settings(&dir, &[("PORT", "0"), ("WS_PORT", "0")], extra);
        let config = Config::from_map(&vars)
            .unwrap_or_else(|errors| panic!("bench config refused: {errors:?}"));
        wealthcoach::logging::init(config.log_level);
        let running =
            wealthcoach::start(config).unwrap_or_else(|e| panic!("the server did not start: {e}"));
        BenchServer {
            addr: running.http_addr(),
            running: Some(running),
            dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app(&self) -> &wealthcoach::App {
        &self.running.as_ref().expect("server is running").app
    }
}

/// A fresh temporary folder for one benchmark server.
fn bench_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("wealthcoach-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The benchmark settings with the database in `dir`: the defaults, then `ports`, then `extra`
/// (later pairs win).
fn bench_settings(
    dir: &Path,
    ports: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> HashMap<String, String> {
    let db = dir.join("bench.db");
    let db = db.to_str().expect("the temp dir path is UTF-8").to_string();
    let settings = [
        ("ENVIRONMENT", "test"),
        ("JWT_SECRET_KEY", "bench-secret-bench-secret-bench-secret-4"),
        ("DATABASE_URL", db.as_str()),
        ("HOST", "127.0.0.1"),
        ("LOG_LEVEL", "error"),
        ("RATE_LIMIT_ENABLED", "false"),
    ];
    settings
        .iter()
        .chain(ports)
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server binary run as a child process, so that its memory and threads can be read from
/// `/proc` apart from the benchmark's own. Its folder (database) is removed when dropped, after
/// a SIGTERM and, if it has not exited within 10 s, a SIGKILL.
pub struct ServerProcess {
    child: Child,
    http: SocketAddr,
    ws: SocketAddr,
    dir: PathBuf,
}

impl ServerProcess {
    /// Runs the release binary Cargo built with this bench (`target/release/wealthcoach`) with
    /// the benchmark settings, `extra` on top, on two free ports, with an empty environment
    /// otherwise and the temporary folder as its working directory (so no `.env` is read).
    /// Returns once `GET /health` answers 200. The child inherits this process's limits, so
    /// raise the file-descriptor limit ([`raise_fd_limit`]) first.
    pub fn start(extra: &[(&str, &str)]) -> ServerProcess {
        let dir = bench_dir();
        let (http, ws) = (free_port(), free_port());
        let (http_port, ws_port) = (http.port().to_string(), ws.port().to_string());
        let ports = [("PORT", http_port.as_str()), ("WS_PORT", ws_port.as_str())];
        let child = Command::new(env!("CARGO_BIN_EXE_wealthcoach"))
            .arg("serve")
            .env_clear()
            .envs(bench_settings(&dir, &ports, extra))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_wealthcoach")));
        let mut server = ServerProcess {
            child,
            http,
            ws,
            dir,
        };
        server.wait_ready(Duration::from_secs(30));
        server
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited at start: {status}");
            }
            let health = Client::connect(self.http).and_then(|mut c| c.get("/health"));
            if health.is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer /health within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn ws_addr(&self) -> SocketAddr {
        self.ws
    }

    /// Its memory, threads and CPU time now; `None` once it has gone.
    pub fn stats(&self) -> Option<ProcStats> {
        ProcStats::of(&self.pid().to_string())
    }

    /// See [`ProcStats::reset_peak`].
    pub fn reset_peak(&self) -> io::Result<()> {
        ProcStats::reset_peak(&self.pid().to_string())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pid = self.pid() as i32;
        // SAFETY: kill(2) with the id of our own child, which has not been waited for yet.
        unsafe { sys::kill(pid, sys::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port on 127.0.0.1 nobody listened on a moment ago (the OS picks it; the listener is
/// closed again, so another process could take it before the server does).
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port to find a free one");
    listener.local_addr().expect("the probe's local address")
}

/// A process's memory, threads and CPU time, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    /// The peak resident set size so far (`VmHWM`), kB.
    pub hwm_kb: u64,
    /// The resident set size now (`VmRSS`), kB.
    pub rss_kb: u64,
    pub threads: u64,
    /// User plus system CPU time of all its threads.
    pub cpu: Duration,
}

impl ProcStats {
    /// `pid` is a process id or `self`.
    pub fn of(pid: &str) -> Option<ProcStats> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        // utime and stime are the 14th and 15th fields; the name (2nd) may hold spaces, so
        // count from its closing parenthesis. Clock ticks are 100 a second on Linux.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ProcStats {
            hwm_kb: field("VmHWM:")?,
            rss_kb: field("VmRSS:")?,
            threads: field("Threads:")?,
            cpu: Duration::from_millis(ticks * 10),
        })
    }

    pub fn rss_mb(&self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }

    pub fn hwm_mb(&self) -> f64 {
        self.hwm_kb as f64 / 1024.0
    }

    /// Lowers a process's `VmHWM` to its current RSS (`/proc/<pid>/clear_refs`, Linux 4.0+),
    /// so that the next reading shows the peak of what came after.
    pub fn reset_peak(pid: &str) -> io::Result<()> {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
    }
}

/// Raises this process's soft limit on open files to at least `want` (within the hard limit);
/// children started afterwards inherit it. Returns the soft limit in force.
pub fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = sys::RLimit { cur: 0, max: 0 };
    // SAFETY: getrlimit/setrlimit(2) with a pointer to a live struct of the kernel's layout.
    unsafe {
        if sys::getrlimit(sys::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.cur < want {
            let raised = sys::RLimit {
                cur: want.min(limit.max),
                max: limit.max,
            };
            if sys::setrlimit(sys::RLIMIT_NOFILE, &raised) == 0 {
                limit.cur = raised.cur;
            }
        }
    }
    limit.cur
}

/// The three libc calls the benches need, declared here rather than adding a dependency.
mod sys {
    /// `struct rlimit` (64-bit `rlim_t`).
    #[repr(C)]
    pub struct RLimit {
        pub cur: u64,
        pub max: u64,
    }

    pub const RLIMIT_NOFILE: i32 = 7;
    pub const SIGTERM: i32 = 15;

    unsafe extern "C" {
        pub fn getrlimit(resource: i32, limit: *mut RLimit) -> i32;
        pub fn setrlimit(resource: i32, limit: *const RLimit) -> i32;
        pub fn kill(pid: i32, signal: i32) -> i32;
    }
}

/// Registers a user by email (password `Secret#123`); the `201` answer's body.
pub fn register(client: &mut Client, email: &str) -> Result<Reply, String> {
    let body = serde_json::json!({
        "email": email,
        "password": "Secret#123",
        "full_name": "Bench User",
    });
    let reply = client
        .post_json("/api/v1/auth/register", &body.to_string())
        .map_err(|e| format!("register {email}: {e}"))?;
    if reply.status != 201 {
        return Err(format!(
            "register {email}: {} {}",
            reply.status,
            reply.text()
        ));
    }
    Ok(reply)
}

/// A response: status and body (always read by its `Content-Length`).
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A string field of a JSON body.
    pub fn json_str(&self, field: &str) -> Result<String, String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.text()))?;
        v.get(field)
            .and_then(|f| f.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("no string {field:?} in {}", self.text()))
    }
}

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One keep-alive HTTP/1.1 connection. Requests go one at a time; if the server answers
/// `Connection: close`, the next request opens a new connection and `reconnects` counts it.
pub struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    pub reconnects: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let mut client = Client {
            addr,
            stream: None,
            buf: Vec::with_capacity(8192),
            reconnects: 0,
        };
        client.open()?;
        Ok(client)
    }

    fn open(&mut self) -> io::Result<&mut TcpStream> {
        let stream = TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        self.buf.clear();
        Ok(self.stream.insert(stream))
    }

    pub fn get(&mut self, path: &str) -> io::Result<Reply> {
        self.send("GET", path, None)
    }

    pub fn post_json(&mut self, path: &str, json: &str) -> io::Result<Reply> {
        self.send("POST", path, Some(json))
    }

    /// Writes the request in one `write` (head and body together) and reads the reply.
    pub fn send(&mut self, method: &str, path: &str, json: Option<&str>) -> io::Result<Reply> {
        self.send_with(method, path, &[], json)
    }

    /// `GET` with `Authorization: Bearer <token>`.
    pub fn get_auth(&mut self, path: &str, token: &str) -> io::Result<Reply> {
        let bearer = format!("Bearer {token}");
        self.send_with("GET", path, &[("Authorization", &bearer)], None)
    }

    /// `POST` of a JSON body with `Authorization: Bearer <token>`.
    pub fn post_json_auth(&mut self, path: &str, token: &str, json: &str) -> io::Result<Reply> {
        let bearer = format!("Bearer {token}");
        self.send_with("POST", path, &[("Authorization", &bearer)], Some(json))
    }

    /// Like `send`, with extra header lines given as (name, value).
    pub fn send_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json: Option<&str>,
    ) -> io::Result<Reply> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = json {
            request.push_str("Content-Type: application/json\r\n");
            request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            request.push_str("\r\n");
        }
        let stream = match self.stream.as_mut() {
            Some(s) => s,
            None => {
                self.reconnects += 1;
                self.open()?
            }
        };
        stream.write_all(request.as_bytes())?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| bad_data("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad_data(format!("bad status line {status_line:?}")))?;
        let mut length = None;
        let mut close = false;
        for (name, value) in lines.filter_map(|l| l.split_once(':')) {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let length = length.ok_or_else(|| bad_data(format!("no Content-Length in {head:?}")))?;
        let end = head_end + 4 + length;
        while self.buf.len() < end {
            self.fill()?;
        }
        let body = self.buf[head_end + 4..end].to_vec();
        self.buf.drain(..end);
        if close {
            self.stream = None;
        }
        Ok(Reply { status, body })
    }

    fn fill(&mut self) -> io::Result<()> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no connection"))?;
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection mid-response",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The `p`th percentile (0 < p <= 100) of sorted samples, by the nearest-rank method.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What a load run measured.
pub struct Run<S> {
    /// From the moment every client thread was connected and released until the last finished.
    pub wall: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
    /// One line per failed request; a thread stops at its first failure.
    pub failures: Vec<String>,
    /// Requests never sent because their thread had stopped.
    pub not_run: usize,
    pub reconnects: u64,
    /// Each thread's state as it ended, in thread order.
    pub states: Vec<S>,
}

impl<S> Run<S> {
    pub fn ok(&self) -> usize {
        self.latencies.len()
    }

    /// Requests that failed or were never sent.
    pub fn failed(&self) -> usize {
        self.failures.len() + self.not_run
    }

    pub fn throughput(&self) -> f64 {
        self.ok() as f64 / self.wall.as_secs_f64()
    }

    pub fn millis(&self, p: f64) -> f64 {
        percentile(&self.latencies, p).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }

    /// A one-line summary, then one line per failure.
    pub fn print(&self, label: &str) {
        println!(
            "{label:<22} {:>5} ok {:>3} failed  wall {:>7.3} s  {:>7.0} req/s  \
             p50 {:>6.2}  p95 {:>6.2}  p99 {:>6.2}  max {:>6.2} ms  reconnects {}",
            self.ok(),
            self.failed(),
            self.wall.as_secs_f64(),
            self.throughput(),
            self.millis(50.0),
            self.millis(95.0),
            self.millis(99.0),
            self.millis(100.0),
            self.reconnects,
        );
        for f in &self.failures {
            println!("    FAILED {f}");
        }
        if self.not_run > 0 {
            println!("    {} requests not sent after a failure", self.not_run);
        }
    }
}

/// Runs `per_thread` requests on each of `states.len()` client threads, each thread with its
/// own keep-alive connection and its own state. Threads connect first, then start together;
/// `step` sends one request (updating the state, e.g. the next token) and is timed.
pub fn run<S, F>(addr: SocketAddr, states: Vec<S>, per_thread: usize, step: F) -> Run<S>
where
    S: Send,
    F: Fn(&mut Client, &mut S) -> Result<(), String> + Sync,
{
    let barrier = Barrier::new(states.len() + 1);
    let thread = |t: usize, state: S| {
        let client = Client::connect(addr);
        barrier.wait();
        let mut end = ThreadEnd::new(per_thread, state);
        let mut client = match client {
            Ok(c) => c,
            Err(e) => {
                end.failure = Some(format!("thread {t}: cannot connect: {e}"));
                end.not_run = per_thread;
                return end;
            }
        };
        for i in 0..per_thread {
            let started = Instant::now();
            match step(&mut client, &mut end.state) {
                Ok(()) => end.latencies.push(started.elapsed()),
                Err(e) => {
                    end.failure = Some(format!("thread {t} request {i}: {e}"));
                    end.not_run = per_thread - i - 1;
                    break;
                }
            }
        }
        end.reconnects = client.reconnects;
        end
    };
    let (started, ends) = with_clients(states, "client", thread, || {
        barrier.wait();
        Instant::now()
    });
    Run::gather(started.elapsed(), ends)
}

/// What one client thread ends with.
struct ThreadEnd<S> {
    latencies: Vec<Duration>,
    failure: Option<String>,
    not_run: usize,
    reconnects: u64,
    state: S,
}

impl<S> ThreadEnd<S> {
    fn new(requests: usize, state: S) -> ThreadEnd<S> {
        ThreadEnd {
            latencies: Vec::with_capacity(requests),
            failure: None,
            not_run: 0,
            reconnects: 0,
            state,
        }
    }
}

/// Runs `client(t, state)` on a thread of its own (named `name-t`) for each state, and
/// `conduct` on this thread meanwhile. Returns what `conduct` returned, once every client
/// thread has ended, and their ends in thread order.
fn with_clients<S, C, M, T>(
    states: Vec<S>,
    name: &str,
    client: C,
    conduct: M,
) -> (T, Vec<ThreadEnd<S>>)
where
    S: Send,
    C: Fn(usize, S) -> ThreadEnd<S> + Sync,
    M: FnOnce() -> T,
{
    std::thread::scope(|scope| {
        let client = &client;
        let handles: Vec<_> = states
            .into_iter()
            .enumerate()
            .map(|(t, state)| {
                std::thread::Builder::new()
                    .name(format!("{name}-{t}"))
                    .spawn_scoped(scope, move || client(t, state))
                    .expect("cannot start a client thread")
            })
            .collect();
        let out = conduct();
        let ends = handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect();
        (out, ends)
    })
}

impl<S> Run<S> {
    /// The run of some client threads, in thread order, that took `wall`.
    fn gather(wall: Duration, ends: impl IntoIterator<Item = ThreadEnd<S>>) -> Run<S> {
        let mut out = Run {
            wall,
            latencies: Vec::new(),
            failures: Vec::new(),
            not_run: 0,
            reconnects: 0,
            states: Vec::new(),
        };
        for end in ends {
            out.latencies.extend(end.latencies);
            out.failures.extend(end.failure);
            out.not_run += end.not_run;
            out.reconnects += end.reconnects;
            out.states.push(end.state);
        }
        out.latencies.sort_unstable();
        out
    }
}

/// Runs `rounds` bursts over `states.len()` client threads, each with its own keep-alive
/// connection and state. In each round every thread first calls `prepare` (untimed: say, a
/// write that makes its next read a cache miss), then all threads wait for each other and
/// send one timed `step` at the same moment. `wall` adds up only the timed phases, from the
/// release until the last step of the round returned, so `throughput` leaves `prepare` out.
/// A thread that fails stops sending but keeps meeting the others at every round.
pub fn bursts<S, P, F>(
    addr: SocketAddr,
    states: Vec<S>,
    rounds: usize,
    prepare: P,
    step: F,
) -> Run<S>
where
    S: Send,
    P: Fn(&mut Client, &mut S, usize) -> Result<(), String> + Sync,
    F: Fn(&mut Client, &mut S) -> Result<(), String> + Sync,
{
    let barrier = Barrier::new(states.len() + 1);
    let thread = |t: usize, state: S| {
        let mut end = ThreadEnd::new(rounds, state);
        let mut client = Client::connect(addr)
            .map_err(|e| end.failure = Some(format!("thread {t}: cannot connect: {e}")))
            .ok();
        for round in 0..rounds {
            // Untimed; after a failure the thread only keeps the others company.
            let ready = match client.as_mut() {
                Some(c) => prepare(c, &mut end.state, round)
                    .map_err(|e| format!("thread {t} round {round} (untimed): {e}")),
                None => Err(String::new()),
            };
            barrier.wait();
            match (ready, client.as_mut()) {
                (Ok(()), Some(c)) => {
                    let started = Instant::now();
                    match step(c, &mut end.state) {
                        Ok(()) => end.latencies.push(started.elapsed()),
                        Err(e) => {
                            end.failure = Some(format!("thread {t} round {round}: {e}"));
                            client = None;
                        }
                    }
                }
                (ready, _) => {
                    if let Err(e) = ready
                        && end.failure.is_none()
                    {
                        end.failure = Some(e);
                    }
                    end.not_run += 1;
                    client = None;
                }
            }
            barrier.wait();
        }
        end.reconnects = client.map_or(0, |c| c.reconnects);
        end
    };
    let (wall, ends) = with_clients(states, "burst", thread, || {
        let mut wall = Duration::ZERO;
        for _ in 0..rounds {
            barrier.wait();
            let started = Instant::now();
            barrier.wait();
            wall += started.elapsed();
        }
        wall
    });
    Run::gather(wall, ends)
}
