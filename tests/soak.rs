//! Soak: the built `wealthcoach` binary as a child process under a steady mixed load for
//! `WEALTHCOACH_SOAK_SECONDS` (default 60; 600 for the local ten-minute run), with the rate
//! limiter on and an OpenAI-compatible fake upstream.
//!
//! ```sh
//! cargo test --test soak -- --nocapture                                  # 60 s, as CI runs it
//! WEALTHCOACH_SOAK_SECONDS=600 cargo test --release --test soak -- --nocapture
//! ```
//!
//! Six client threads, each with its own account (two of them register a new one now and
//! then and carry on as it), log in by email, refresh, write transactions and allocation
//! budgets/actuals under `Idempotency-Key` (sometimes replaying one), read the month views,
//! chat over WebSocket (sometimes authenticating by message, pinging, cancelling) and over
//! HTTP (one-shot and SSE), and open and close the notifications socket. A seventh, noisy
//! client asks for `/users/me` every 20 ms and is meant to be refused with 429 once it has
//! used its `RATE_LIMIT_PER_MINUTE`. The others pace themselves well under every limit, so a
//! 429 for them is a failure.
//!
//! A sampler reads `/proc/<pid>/status` (VmRSS, Threads) and `/proc/<pid>/fd` every second,
//! and every request's latency is kept. A table is printed every 10 s and at the end. Then:
//!
//! 1. no failures: every answer has the status its request expects, every WebSocket frame is
//!    the one expected, no connection drops, the server logs no ERROR; the first few failures
//!    are printed with their request;
//! 2. memory, threads and open files level off: the maximum of the last third of the run is
//!    at most the middle third's × 1.15 plus a small slack, and once the load stops threads and
//!    descriptors return to the idle baseline measured before it; the cache of month views
//!    holds at most one view per account, month and kind;
//! 3. latency does not drift: p99 of the last third ≤ 2 × p99 of the first third + 20 ms, for
//!    the plain API requests (reads, writes, refreshes);
//! 4. the books balance: for every account and month, the balance totals equal the sums of the
//!    listed transactions, and both equal what the client itself wrote; the allocation totals
//!    equal the budgets and actuals it recorded. The same is checked live after each read.

mod common;
mod fake_llm;
mod soak_support;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use fake_llm::FakeLlm;
use serde_json::{Value, json};
use soak_support::{
    Answer, Child, Http, Rng, Sample, Scratch, WsPlan, clock_seed, db_kb, money_text, paise,
    percentile, recent_months, sample, sorted, sse_events, ws_chat, ws_notifications,
};

const SECRET: &str = "s0ak-t3st-s3cret-Hq7Wd2Lx9Pz4Nc6Vb8Rm1Ty";
const PASSWORD: &str = "Soak#Pass2024";
/// The clients that must never be refused, and the noisy one beside them.
const CLIENTS: usize = 6;
/// `RATE_LIMIT_PER_MINUTE`: per user (or per address before signing in).
const PER_MINUTE: u32 = 600;
/// What the polite clients allow themselves in any 60 s: per account, and from this address
/// without a token (logins, registrations, refreshes, all clients together). A sliding window
/// under the limit keeps every fixed minute window of the server under it too.
const ACCOUNT_BUDGET: usize = 450;
const ADDRESS_BUDGET: usize = 300;
/// The least time between the starts of two steps of one client.
const STEP_SPACING: Duration = Duration::from_millis(150);
const NOISY_SPACING: Duration = Duration::from_millis(20);
/// argon2 is slow in a debug build (about 0.7 s of CPU a hash), so logins and registrations
/// are spread out.
const LOGIN_EVERY: Duration = Duration::from_secs(15);
const REFRESH_EVERY: Duration = Duration::from_secs(4);
const REGISTER_EVERY: Duration = Duration::from_secs(25);
/// Idle time before the baseline is taken: tiny_http's extra pool threads end after 5 s idle.
const SETTLE: Duration = Duration::from_secs(7);
/// How long the threads and descriptors may take to come back to the baseline afterwards.
const RETURN_LIMIT: Duration = Duration::from_secs(20);
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What the fake upstream streams; the whole answer is these joined.
const PIECES: [&str; 6] = ["You ", "could ", "save ", "₹500 ", "a ", "month."];
const QUESTIONS: [&str; 8] = [
    "How am I doing this month?",
    "Where can I cut my spending?",
    "Should I build an emergency fund first?",
    "Is my entertainment budget too high?",
    "How much should I invest each month?",
    "What does my balance say about my habits?",
    "Am I on track for my goals?",
    "Give me one tip for next month.",
];

// Level-off slack, added to 1.15 × the middle third's maximum. The server's threads and
// descriptors move with the work in flight at the moment of a sample: each of the seven
// clients can hold a kept-alive HTTP connection (a tiny_http thread and a socket), a
// WebSocket (a thread and a socket) and an upstream stream (a reader thread and a socket),
// and tiny_http's pool keeps a few spare threads for 5 s. 16 covers that spread twice over;
// a leak of one per request would pass it within seconds. RSS: glibc hands memory back in
// large steps (arenas per thread, trimmed only at the top), and SQLite's page caches grow
// with the database (16 MB per connection at most); 8 MB is a few such steps.
const RSS_SLACK_KB: u64 = 8 * 1024;
const THREAD_SLACK: u64 = 16;
const FD_SLACK: u64 = 16;
/// How close to the baseline threads and descriptors must come back once the load stops.
const RETURN_SLACK: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Read,
    Write,
    Refresh,
    Login,
    Register,
    WsChat,
    HttpChat,
    SseChat,
    Notify,
    Noisy,
}

const CLASSES: [Class; 10] = [
    Class::Read,
    Class::Write,
    Class::Refresh,
    Class::Login,
    Class::Register,
    Class::WsChat,
    Class::HttpChat,
    Class::SseChat,
    Class::Notify,
    Class::Noisy,
];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Refresh => "refresh",
            Class::Login => "login",
            Class::Register => "register",
            Class::WsChat => "ws chat",
            Class::HttpChat => "http chat",
            Class::SseChat => "sse chat",
            Class::Notify => "ws notify",
            Class::Noisy => "noisy",
        }
    }

    /// The plain API requests whose p99 must not drift.
    fn is_api(self) -> bool {
        matches!(self, Class::Read | Class::Write | Class::Refresh)
    }

    fn is_chat(self) -> bool {
        matches!(self, Class::WsChat | Class::HttpChat | Class::SseChat)
    }
}

#[derive(Clone, Copy)]
struct Record {
    class: Class,
    /// Seconds since the load started when the request started (negative: warm-up).
    at: f64,
    ms: f64,
}

struct Failure {
    at: f64,
    who: String,
    request: String,
    what: String,
}

/// What every thread reports to.
struct Board {
    load_start: OnceLock<Instant>,
    records: Mutex<Vec<Record>>,
    failures: Mutex<Vec<Failure>>,
    /// 429s the noisy client was meant to get.
    limited: AtomicU64,
    cancelled: AtomicU64,
    cached: AtomicU64,
    replays: AtomicU64,
    /// Starts of requests without a token, for `ADDRESS_BUDGET`.
    address_window: Mutex<VecDeque<Instant>>,
}

impl Board {
    fn new() -> Board {
        Board {
            load_start: OnceLock::new(),
            records: Mutex::new(Vec::new()),
            failures: Mutex::new(Vec::new()),
            limited: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            address_window: Mutex::new(VecDeque::new()),
        }
    }

    fn at(&self, t: Instant) -> f64 {
        match self.load_start.get() {
            Some(&s) if t >= s => (t - s).as_secs_f64(),
            Some(&s) => -(s - t).as_secs_f64(),
            None => -1.0,
        }
    }

    fn now(&self) -> f64 {
        self.at(Instant::now())
    }

    fn record(&self, class: Class, started: Instant) {
        let r = Record {
            class,
            at: self.at(started),
            ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        self.records.lock().unwrap().push(r);
    }

    fn fail(&self, who: &str, request: &str, what: String) {
        self.failures.lock().unwrap().push(Failure {
            at: self.now(),
            who: who.to_string(),
            request: request.to_string(),
            what,
        });
    }

    fn failure_count(&self) -> usize {
        self.failures.lock().unwrap().len()
    }

    /// Waits until a request without a token fits in `ADDRESS_BUDGET`, and counts it.
    fn take_address_slot(&self) {
        take_slot(&self.address_window, ADDRESS_BUDGET);
    }
}

/// Waits until fewer than `budget` starts lie in the last 60 s, then adds this one.
fn take_slot(window: &Mutex<VecDeque<Instant>>, budget: usize) {
    loop {
        let wait = {
            let mut w = window.lock().unwrap();
            while w
                .front()
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(60))
            {
                w.pop_front();
            }
            if w.len() < budget {
                w.push_back(Instant::now());
                return;
            }
            Duration::from_secs(60).saturating_sub(w[0].elapsed())
        };
        thread::sleep(wait.max(Duration::from_millis(10)));
    }
}

/// What one account wrote in one month, as its client saw it answered.
#[derive(Clone, Debug, Default)]
struct Tally {
    income: i64,
    expense: i64,
    count: u64,
    actual: i64,
    /// The last budget set per allocation type.
    budgets: BTreeMap<String, i64>,
}

impl Tally {
    fn budget(&self) -> i64 {
        self.budgets.values().sum()
    }
}

struct Account {
    email: String,
    access: String,
    refresh: String,
    months: BTreeMap<(i32, u32), Tally>,
    /// Starts of this account's requests, for `ACCOUNT_BUDGET`.
    window: Mutex<VecDeque<Instant>>,
    /// The noisy account: its minute is used up, so the final check leaves it out.
    noisy: bool,
}

impl Account {
    fn from_tokens(email: String, v: &Value) -> Result<Account, String> {
        let token = |k: &str| {
            v[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("no {k} in {v}"))
        };
        Ok(Account {
            email,
            access: token("access_token")?,
            refresh: token("refresh_token")?,
            months: BTreeMap::new(),
            window: Mutex::new(VecDeque::new()),
            noisy: false,
        })
    }

    fn take_tokens(&mut self, v: &Value) -> Result<(), String> {
        match (v["access_token"].as_str(), v["refresh_token"].as_str()) {
            (Some(a), Some(r)) => {
                self.access = a.to_string();
                self.refresh = r.to_string();
                Ok(())
            }
            _ => Err(format!("no tokens in {v}")),
        }
    }
}

/// Where the clients send their requests, and the fixed facts they need.
struct Target {
    http: SocketAddr,
    ws: SocketAddr,
    run: String,
    type_ids: Vec<String>,
    months: Vec<(i32, u32)>,
    answer: String,
}

/// How a request went wrong; already reported to the board.
enum Refused {
    /// An answer with another status than expected.
    Status,
    /// No complete answer: the request may or may not have been carried out.
    Transport,
}

/// One request of a client.
struct Call<'r> {
    class: Class,
    method: &'static str,
    path: &'r str,
    body: Option<&'r Value>,
    /// An `Idempotency-Key`.
    key: Option<&'r str>,
    /// With the account's bearer token (counted against the account's budget); else without
    /// (counted against the address's).
    signed: bool,
    /// The status anything else is a failure for.
    expect: u16,
}

impl<'r> Call<'r> {
    fn get(path: &'r str) -> Call<'r> {
        Call {
            class: Class::Read,
            method: "GET",
            path,
            body: None,
            key: None,
            signed: true,
            expect: 200,
        }
    }

    fn post(class: Class, path: &'r str, body: &'r Value, expect: u16) -> Call<'r> {
        Call {
            class,
            method: "POST",
            path,
            body: Some(body),
            key: None,
            signed: true,
            expect,
        }
    }

    fn keyed(self, key: &'r str) -> Call<'r> {
        Call {
            key: Some(key),
            ..self
        }
    }

    fn unsigned(self) -> Call<'r> {
        Call {
            signed: false,
            ..self
        }
    }
}

struct Client<'a> {
    index: usize,
    name: String,
    board: &'a Board,
    target: &'a Target,
    http: Http,
    rng: Rng,
    accounts: Vec<Account>,
    registers: bool,
    next_key: u64,
    last_question: &'static str,
    last_login: Instant,
    last_refresh: Instant,
    last_register: Instant,
}

impl<'a> Client<'a> {
    fn new(
        index: usize,
        board: &'a Board,
        target: &'a Target,
        seed: u64,
        account: Account,
    ) -> Client<'a> {
        let now = Instant::now();
        Client {
            index,
            name: format!("client-{index}"),
            board,
            target,
            http: Http::new(target.http),
            rng: Rng::new(seed ^ (index as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D)),
            accounts: vec![account],
            registers: index < 2,
            next_key: 0,
            last_question: QUESTIONS[0],
            last_login: now,
            last_refresh: now,
            last_register: now,
        }
    }

    fn account(&self) -> &Account {
        self.accounts.last().expect("an account")
    }

    fn account_mut(&mut self) -> &mut Account {
        self.accounts.last_mut().expect("an account")
    }

    /// One request, within the budgets. Records its latency, and reports it unless it
    /// answered the status expected.
    fn call(&mut self, c: Call<'_>) -> Result<Answer, Refused> {
        let Call {
            class,
            method,
            path,
            body,
            key,
            signed,
            expect,
        } = c;
        if signed {
            take_slot(&self.account().window, ACCOUNT_BUDGET);
        } else {
            self.board.take_address_slot();
        }
        let bearer = format!("Bearer {}", self.account().access);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if signed {
            headers.push(("Authorization", &bearer));
        }
        let text = body.map(Value::to_string);
        if text.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        if let Some(k) = key {
            headers.push(("Idempotency-Key", k));
        }
        // Most requests reuse the connection, as apps do; some ask for a fresh one.
        let close = self.rng.chance(20);
        let started = Instant::now();
        let result = self.http.send(
            method,
            path,
            &headers,
            text.as_deref().map(str::as_bytes),
            close,
        );
        self.board.record(class, started);
        let request = format!("{method} {path}");
        match result {
            Ok(a) if a.status == expect => Ok(a),
            Ok(a) => {
                let what = format!("status {} (expected {expect}): {}", a.status, a.snippet());
                self.board.fail(&self.name, &request, what);
                Err(Refused::Status)
            }
            Err(e) => {
                self.board.fail(&self.name, &request, e);
                Err(Refused::Transport)
            }
        }
    }

    /// Reports a wrong answer to a request that got the right status.
    fn wrong(&self, request: &str, what: String) {
        self.board.fail(&self.name, request, what);
    }

    fn json_of(&self, request: &str, a: &Answer) -> Option<Value> {
        match a.json() {
            Ok(v) => Some(v),
            Err(e) => {
                self.wrong(request, e);
                None
            }
        }
    }

    fn key(&mut self) -> String {
        self.next_key += 1;
        format!("{}-{}-{}", self.target.run, self.name, self.next_key)
    }

    fn month(&mut self) -> (i32, u32) {
        *self.rng.pick(&self.target.months)
    }

    fn tally(&mut self, at: (i32, u32)) -> &mut Tally {
        self.account_mut().months.entry(at).or_default()
    }

    fn run(mut self, deadline: Instant) -> Vec<Account> {
        // Spread the clients' timed steps and first requests over their periods, so that
        // they do not all log in, refresh or register in the same instant: a steady load from
        // the first second, not a burst the first third of the run would be judged by.
        let begun = Instant::now();
        let share = self.index as f64 / CLIENTS as f64;
        let ago = |every: Duration| begun.checked_sub(every.mul_f64(share)).unwrap_or(begun);
        self.last_login = ago(LOGIN_EVERY);
        self.last_refresh = ago(REFRESH_EVERY);
        // The first registrations come early (8 and 12 s), so that short runs have some.
        let first = Duration::from_secs(8 + 4 * self.index as u64);
        self.last_register = begun
            .checked_sub(REGISTER_EVERY.saturating_sub(first))
            .unwrap_or(begun);
        let mut next = begun + STEP_SPACING.mul_f64(share);
        loop {
            let now = Instant::now();
            if next > now {
                thread::sleep(next - now);
            }
            if Instant::now() >= deadline {
                break;
            }
            let jitter = Duration::from_millis(self.rng.below(60));
            next = Instant::now() + STEP_SPACING + jitter;
            self.step();
        }
        self.http.disconnect();
        self.accounts
    }

    fn step(&mut self) {
        if self.registers && self.last_register.elapsed() >= REGISTER_EVERY {
            self.last_register = Instant::now();
            return self.register();
        }
        if self.last_login.elapsed() >= LOGIN_EVERY {
            self.last_login = Instant::now();
            return self.login();
        }
        if self.last_refresh.elapsed() >= REFRESH_EVERY {
            self.last_refresh = Instant::now();
            return self.refresh();
        }
        match self.rng.below(100) {
            0..41 => self.read(),
            41..45 => self.notifications(),
            45..65 => self.transaction(),
            65..75 => self.allocation(),
            75..87 => self.ws_chat(),
            87..94 => self.http_chat(),
            _ => self.sse_chat(),
        }
    }

    /// Every kind of step once, before the load: lazy start-up costs land before the baseline.
    fn warm_up(&mut self) {
        self.refresh();
        for _ in 0..2 {
            self.transaction();
            self.allocation();
        }
        for _ in 0..5 {
            self.read();
        }
        self.ws_chat();
        self.http_chat();
        self.sse_chat();
        self.notifications();
    }

    fn register(&mut self) {
        let n = self.accounts.len();
        let email = format!("{}-{}-{n}@soak.example.com", self.target.run, self.name);
        let body = json!({"email": email, "password": PASSWORD, "full_name": "Soak Client"});
        let path = "/api/v1/auth/register";
        let Ok(a) = self.call(Call::post(Class::Register, path, &body, 201).unsigned()) else {
            return;
        };
        let Some(v) = self.json_of(path, &a) else {
            return;
        };
        match Account::from_tokens(email, &v) {
            Ok(account) => self.accounts.push(account),
            Err(e) => self.wrong(path, e),
        }
    }

    fn login(&mut self) {
        let body = json!({"email": self.account().email, "password": PASSWORD});
        self.new_tokens(Class::Login, "/api/v1/auth/login", &body);
    }

    fn refresh(&mut self) {
        let body = json!({"refresh_token": self.account().refresh});
        self.new_tokens(Class::Refresh, "/api/v1/auth/refresh", &body);
    }

    /// A login or a refresh: the account goes on with the tokens it answers.
    fn new_tokens(&mut self, class: Class, path: &str, body: &Value) {
        let Ok(a) = self.call(Call::post(class, path, body, 200).unsigned()) else {
            return;
        };
        if let Some(v) = self.json_of(path, &a)
            && let Err(e) = self.account_mut().take_tokens(&v)
        {
            self.wrong(path, e);
        }
    }

    /// One of the reads the app makes, checked against what this client wrote.
    fn read(&mut self) {
        let (y, m) = self.month();
        let with_month = self.rng.chance(60);
        let expected = self
            .account()
            .months
            .get(&(y, m))
            .cloned()
            .unwrap_or_default();
        let path = match self.rng.below(5) {
            0 => format!("/api/v1/allocations?month={m}&year={y}"),
            1 if with_month => format!("/api/v1/transactions?limit=50&month={m}&year={y}"),
            1 => "/api/v1/transactions?limit=50".to_string(),
            2 if with_month => format!("/api/v1/monthly-budget?month={m}&year={y}"),
            2 => "/api/v1/monthly-budget".to_string(),
            3 => format!("/api/v1/transactions/balance?month={m}&year={y}"),
            _ => "/api/v1/users/me".to_string(),
        };
        let Ok(a) = self.call(Call::get(&path)) else {
            return;
        };
        let Some(v) = self.json_of(&path, &a) else {
            return;
        };
        let request = format!("GET {path}");
        let problem = if path.starts_with("/api/v1/allocations") {
            check_allocations(&v, &expected)
        } else if path.starts_with("/api/v1/transactions/balance") {
            check_balance(&v, &expected)
        } else if path.starts_with("/api/v1/transactions") {
            match v.as_array() {
                None => Some(format!("not a list: {}", cut(&v))),
                Some(rows) if rows.len() > 50 => Some(format!("{} rows for limit=50", rows.len())),
                Some(rows) if with_month && rows.len() as u64 != expected.count.min(50) => {
                    Some(format!(
                        "{} rows, but this client wrote {}",
                        rows.len(),
                        expected.count
                    ))
                }
                Some(_) => None,
            }
        } else if path.starts_with("/api/v1/monthly-budget") {
            match paise(&v["current_balance"]) {
                Err(e) => Some(e),
                Ok(b) if with_month && b != expected.income - expected.expense => Some(format!(
                    "current_balance {b} paise, but this client wrote {}",
                    expected.income - expected.expense
                )),
                Ok(_) => None,
            }
        } else {
            (v["email"] != self.account().email.as_str())
                .then(|| format!("someone else's profile: {}", cut(&v)))
        };
        if let Some(p) = problem {
            self.wrong(&request, p);
        }
    }

    fn transaction(&mut self) {
        let (y, m) = self.month();
        let income = self.rng.chance(35);
        let amount = 100 + self.rng.below(2_000_000) as i64;
        let day = 1 + self.rng.below(28);
        let category = *self
            .rng
            .pick(&["salary", "food", "rent", "travel", "fun", "misc"]);
        let body = json!({
            "type": if income { "income" } else { "expense" },
            "category": category,
            "amount": money_text(amount),
            "label": format!("soak {}", self.next_key),
            "transaction_date": format!("{y:04}-{m:02}-{day:02}T12:00:00Z"),
        });
        let key = self.key();
        let path = "/api/v1/transactions";
        let Some(answer) = self.keyed_write(path, &body, &key, 201) else {
            return;
        };
        let Some(v) = self.json_of(path, &answer) else {
            return;
        };
        let echoed = (v["month"].as_u64(), v["year"].as_i64(), paise(&v["amount"]));
        if echoed != (Some(m as u64), Some(y as i64), Ok(amount)) {
            self.wrong(path, format!("echoed {echoed:?} for {body}"));
        }
        let t = self.tally((y, m));
        if income {
            t.income += amount;
        } else {
            t.expense += amount;
        }
        t.count += 1;
        if self.rng.chance(15) {
            self.replay(path, &body, &key, &answer);
        }
    }

    /// A POST under an `Idempotency-Key`. When no answer came, the same request is sent
    /// again under the same key to learn whether it was carried out, so that the final check
    /// still knows what was written (the failure is counted all the same).
    fn keyed_write(&mut self, path: &str, body: &Value, key: &str, expect: u16) -> Option<Answer> {
        let call = || Call::post(Class::Write, path, body, expect).keyed(key);
        match self.call(call()) {
            Ok(a) => Some(a),
            Err(Refused::Transport) => self.call(call()).ok(),
            Err(Refused::Status) => None,
        }
    }

    /// The same request under the same key must give the first answer byte for byte.
    fn replay(&mut self, path: &str, body: &Value, key: &str, first: &Answer) {
        self.board.replays.fetch_add(1, Ordering::Relaxed);
        let call = Call::post(Class::Write, path, body, first.status).keyed(key);
        if let Ok(again) = self.call(call)
            && again.body != first.body
        {
            let what = format!(
                "replay of key {key} answered {} instead of {}",
                again.snippet(),
                first.snippet()
            );
            self.wrong(path, what);
        }
    }

    fn allocation(&mut self) {
        let (y, m) = self.month();
        let type_id = self.rng.pick(&self.target.type_ids).clone();
        let amount = self.rng.below(500_000) as i64;
        let budget = self.rng.chance(50);
        let (path, body) = if budget {
            let body = json!({"allocation_type_id": type_id, "budget_amount": money_text(amount),
                              "month": m, "year": y});
            ("/api/v1/allocations/budget", body)
        } else {
            let body = json!({"allocation_type_id": type_id, "actual_amount": money_text(amount),
                              "mode": "add", "notes": "soak", "month": m, "year": y});
            ("/api/v1/allocations/actual", body)
        };
        let key = self.key();
        let Some(answer) = self.keyed_write(path, &body, &key, 200) else {
            return;
        };
        let t = self.tally((y, m));
        if budget {
            t.budgets.insert(type_id, amount);
        } else {
            t.actual += amount;
        }
        if self.rng.chance(10) {
            self.replay(path, &body, &key, &answer);
        }
    }

    fn question(&mut self) -> &'static str {
        // Now and then the same question again, which the answer cache may serve.
        if !self.rng.chance(20) {
            self.last_question = *self.rng.pick(&QUESTIONS);
        }
        self.last_question
    }

    fn ws_chat(&mut self) {
        let question = self.question();
        let plan = WsPlan {
            auth_by_message: self.rng.chance(30),
            ping: self.rng.chance(30),
            cancel: self.rng.chance(25),
        };
        let started = Instant::now();
        let result = ws_chat(self.target.ws, &self.account().access, question, plan);
        self.board.record(Class::WsChat, started);
        let request = format!("WS /ws/chat {plan:?}");
        match result {
            Err(e) => self.wrong(&request, e),
            Ok(chat) => {
                if chat.cancelled {
                    self.board.cancelled.fetch_add(1, Ordering::Relaxed);
                } else if chat.content != self.target.answer {
                    self.wrong(&request, format!("answered {:?}", chat.content));
                }
                if chat.cached {
                    self.board.cached.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The app's notifications socket: open, ping, close.
    fn notifications(&mut self) {
        let started = Instant::now();
        let result = ws_notifications(self.target.ws, &self.account().access);
        self.board.record(Class::Notify, started);
        if let Err(e) = result {
            self.wrong("WS /ws/notifications", e);
        }
    }

    fn http_chat(&mut self) {
        let body = json!({"message": self.question()});
        let path = "/api/v1/chat/message";
        let Ok(a) = self.call(Call::post(Class::HttpChat, path, &body, 200)) else {
            return;
        };
        let Some(v) = self.json_of(path, &a) else {
            return;
        };
        if v["response"] != self.target.answer.as_str() || v.get("fallback").is_some() {
            self.wrong(path, format!("answered {}", cut(&v)));
        }
        if v["cached"] == true {
            self.board.cached.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn sse_chat(&mut self) {
        let body = json!({"message": self.question(), "session_id": null});
        let path = "/api/v1/chat/message/stream";
        let Ok(a) = self.call(Call::post(Class::SseChat, path, &body, 200)) else {
            return;
        };
        if let Err(e) = check_sse(&a, &self.target.answer) {
            self.wrong(path, e);
        }
    }
}

fn cut(v: &Value) -> String {
    v.to_string().chars().take(300).collect()
}

fn check_allocations(v: &Value, t: &Tally) -> Option<String> {
    let got = (paise(&v["total_budget"]), paise(&v["total_actual"]));
    (got != (Ok(t.budget()), Ok(t.actual))).then(|| {
        format!(
            "totals (budget, actual) {got:?}, but this client recorded ({}, {})",
            t.budget(),
            t.actual
        )
    })
}

fn check_balance(v: &Value, t: &Tally) -> Option<String> {
    let got = (
        paise(&v["total_income"]),
        paise(&v["total_expense"]),
        paise(&v["current_balance"]),
        v["transaction_count"].as_u64(),
    );
    let want = (
        Ok(t.income),
        Ok(t.expense),
        Ok(t.income - t.expense),
        Some(t.count),
    );
    (got != want).then(|| format!("balance {got:?}, but this client wrote {want:?}"))
}

/// `session_id` first, then only tokens, then `done`; the tokens make the whole answer.
fn check_sse(a: &Answer, answer: &str) -> Result<(), String> {
    if !a
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        return Err(format!("content type {:?}", a.header("content-type")));
    }
    let events = sse_events(&a.body)?;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let tokens: String = events
        .iter()
        .filter(|e| e["type"] == "token")
        .filter_map(|e| e["content"].as_str())
        .collect();
    let shape_ok = kinds.first() == Some(&"session_id")
        && kinds.last() == Some(&"done")
        && kinds.len() == events.len()
        && kinds[1..kinds.len() - 1].iter().all(|k| *k == "token");
    if !shape_ok || tokens != answer {
        return Err(format!("events {kinds:?}, tokens {tokens:?}"));
    }
    Ok(())
}

/// The noisy client: `/users/me` every 20 ms on one kept-alive connection. It is meant to
/// use up its minute and then be refused with a well-formed 429 until the minute ends.
fn noisy(board: &Board, target: &Target, account: Account, deadline: Instant) -> Account {
    let mut http = Http::new(target.http);
    let bearer = format!("Bearer {}", account.access);
    let path = "/api/v1/users/me";
    while Instant::now() < deadline {
        let started = Instant::now();
        let result = http.send("GET", path, &[("Authorization", &bearer)], None, false);
        board.record(Class::Noisy, started);
        match result {
            Ok(a) if a.status == 200 => {}
            Ok(a) if a.status == 429 => {
                board.limited.fetch_add(1, Ordering::Relaxed);
                let retry = a.header("retry-after").and_then(|v| v.parse::<u64>().ok());
                let limit = a.header("x-ratelimit-limit");
                if !retry.is_some_and(|s| (1..=60).contains(&s))
                    || limit != Some(PER_MINUTE.to_string().as_str())
                {
                    let what = format!("a 429 with Retry-After {retry:?}, limit {limit:?}");
                    board.fail("noisy", &format!("GET {path}"), what);
                }
            }
            Ok(a) => board.fail(
                "noisy",
                &format!("GET {path}"),
                format!("status {}: {}", a.status, a.snippet()),
            ),
            Err(e) => board.fail("noisy", &format!("GET {path}"), e),
        }
        thread::sleep(NOISY_SPACING);
    }
    account
}

fn soak_seconds() -> u64 {
    match std::env::var("WEALTHCOACH_SOAK_SECONDS") {
        Ok(v) => {
            let s: u64 = v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("WEALTHCOACH_SOAK_SECONDS={v:?} is not a number"));
            assert!(s >= 15, "WEALTHCOACH_SOAK_SECONDS must be at least 15");
            s
        }
        Err(_) => 60,
    }
}

/// Registers an account by email (before the load; failures are reported like any other).
fn register(board: &Board, target: &Target, who: &str) -> Option<Account> {
    let email = format!("{}-{who}-0@soak.example.com", target.run);
    let body =
        json!({"email": email, "password": PASSWORD, "full_name": "Soak Client"}).to_string();
    let mut http = Http::new(target.http);
    let started = Instant::now();
    let path = "/api/v1/auth/register";
    board.take_address_slot();
    let result = http.send(
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
        true,
    );
    board.record(Class::Register, started);
    match result.and_then(|a| {
        if a.status != 201 {
            return Err(format!("status {}: {}", a.status, a.snippet()));
        }
        Account::from_tokens(email, &a.json()?)
    }) {
        Ok(a) => Some(a),
        Err(e) => {
            board.fail(who, &format!("POST {path}"), e);
            None
        }
    }
}

/// Entries in the server's cache of month views, from `/api/v1/health/detailed`.
fn view_cache_entries(http: SocketAddr) -> Option<u64> {
    let a = Http::new(http)
        .send("GET", "/api/v1/health/detailed", &[], None, true)
        .ok()?;
    a.json().ok()?["dependencies"]["cache"]["entries"].as_u64()
}

/// The allocation type ids of the catalogue.
fn type_ids(http: SocketAddr, token: &str) -> Vec<String> {
    let mut c = Http::new(http);
    let bearer = format!("Bearer {token}");
    let a = c
        .send(
            "GET",
            "/api/v1/allocations",
            &[("Authorization", &bearer)],
            None,
            true,
        )
        .expect("GET /api/v1/allocations");
    assert_eq!(a.status, 200, "{}", a.snippet());
    let v = a.json().expect("allocations JSON");
    let ids: Vec<String> = v["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["allocation_types"].as_array().into_iter().flatten())
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    assert!(ids.len() >= 6, "allocation types: {ids:?}");
    ids
}

// --- the final check of the books ---------------------------------------------------------

/// Every transaction of a month, 200 a page: (count, income, expense) in paise.
fn listed_month(c: &mut Http, bearer: &str, (y, m): (i32, u32)) -> Result<(u64, i64, i64), String> {
    let (mut count, mut income, mut expense) = (0u64, 0i64, 0i64);
    let mut ids = std::collections::HashSet::new();
    loop {
        let path = format!("/api/v1/transactions?month={m}&year={y}&limit=200&offset={count}");
        let a = c.send("GET", &path, &[("Authorization", bearer)], None, false)?;
        if a.status != 200 {
            return Err(format!("GET {path}: status {}: {}", a.status, a.snippet()));
        }
        let v = a.json()?;
        let rows = v
            .as_array()
            .ok_or_else(|| format!("GET {path}: not a list"))?;
        for r in rows {
            let p = paise(&r["amount"])?;
            if r["type"] == "income" {
                income += p;
            } else {
                expense += p;
            }
            if !ids.insert(r["id"].as_str().unwrap_or_default().to_string()) {
                return Err(format!("GET {path}: a transaction listed twice: {r}"));
            }
        }
        count += rows.len() as u64;
        if rows.len() < 200 {
            return Ok((count, income, expense));
        }
    }
}

/// The invariant for one account and month: balance = listed sums = what the client wrote;
/// allocation totals = what it recorded. `Ok(transactions)` when it holds.
fn check_books(c: &mut Http, account: &Account, at: (i32, u32)) -> Result<u64, String> {
    let bearer = format!("Bearer {}", account.access);
    let (y, m) = at;
    let wrote = account.months.get(&at).cloned().unwrap_or_default();
    let get = |c: &mut Http, path: &str| -> Result<Value, String> {
        let a = c.send("GET", path, &[("Authorization", &bearer)], None, false)?;
        if a.status != 200 {
            return Err(format!("GET {path}: status {}: {}", a.status, a.snippet()));
        }
        a.json()
    };
    let balance = get(
        c,
        &format!("/api/v1/transactions/balance?month={m}&year={y}"),
    )?;
    let (count, income, expense) = listed_month(c, &bearer, at)?;
    let listed = Tally {
        income,
        expense,
        count,
        ..Tally::default()
    };
    if let Some(p) = check_balance(&balance, &listed) {
        return Err(format!("balance vs listed transactions: {p}"));
    }
    if (count, income, expense) != (wrote.count, wrote.income, wrote.expense) {
        return Err(format!(
            "listed ({count}, {income}, {expense}) but the client wrote ({}, {}, {})",
            wrote.count, wrote.income, wrote.expense
        ));
    }
    let allocations = get(c, &format!("/api/v1/allocations?month={m}&year={y}"))?;
    if let Some(p) = check_allocations(&allocations, &wrote) {
        return Err(format!("allocations: {p}"));
    }
    Ok(count)
}

// --- the report ----------------------------------------------------------------------------

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn latencies(records: &[Record], keep: impl Fn(&Record) -> bool) -> Vec<f64> {
    sorted(records.iter().filter(|r| keep(r)).map(|r| r.ms).collect())
}

/// One row of the running table, over the records and samples of `(from, to]`.
fn report_row(board: &Board, samples: &[Sample], from: f64, to: f64) {
    let records: Vec<Record> = board
        .records
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.at > from && r.at <= to)
        .copied()
        .collect();
    let api = latencies(&records, |r| r.class.is_api());
    let chat = latencies(&records, |r| r.class.is_chat());
    let last = samples.iter().rev().find(|s| s.at <= to + 0.5);
    let (rss, threads, fds, db) = last.map_or((0.0, 0, 0, 0.0), |s| {
        (mb(s.rss_kb), s.threads, s.fds, mb(s.db_kb))
    });
    println!(
        "{:>6.0} {:>7} {:>7.1} {:>6} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>6} {:>5} {:>6.1}",
        to,
        records.len(),
        records.len() as f64 / (to - from).max(0.001),
        board.limited.load(Ordering::Relaxed),
        board.failure_count(),
        percentile(&api, 50.0),
        percentile(&api, 99.0),
        percentile(&chat, 99.0),
        rss,
        threads,
        fds,
        db
    );
}

fn report_header() {
    println!(
        "every {REPORT_EVERY:?}: requests, latency and the last sample of that window; 429s and fails are totals so far"
    );
    println!(
        "{:>6} {:>7} {:>7} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>6} {:>5} {:>6}",
        "t s",
        "reqs",
        "req/s",
        "429s",
        "fails",
        "api p50",
        "api p99",
        "chat p99",
        "rss MB",
        "thr",
        "fds",
        "db MB"
    );
}

#[derive(Clone, Copy, Debug)]
struct Peaks {
    rss_kb: u64,
    threads: u64,
    fds: u64,
}

fn peaks(samples: &[Sample], from: f64, to: f64) -> Option<Peaks> {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    if inside.is_empty() {
        return None;
    }
    Some(Peaks {
        rss_kb: inside.iter().map(|s| s.rss_kb).max().unwrap_or(0),
        threads: inside.iter().map(|s| s.threads).max().unwrap_or(0),
        fds: inside.iter().map(|s| s.fds).max().unwrap_or(0),
    })
}

fn server_vars(db: &Path, upstream: String) -> Vec<(&'static str, String)> {
    vec![
        ("ENVIRONMENT", "test".into()),
        ("JWT_SECRET_KEY", SECRET.into()),
        ("DATABASE_URL", db.to_string_lossy().into_owned()),
        ("LOG_LEVEL", "warning".into()),
        ("SHUTDOWN_TIMEOUT_SECONDS", "5".into()),
        // Accounts left behind by a registration are checked at the very end.
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "240".into()),
        ("RATE_LIMIT_ENABLED", "true".into()),
        ("RATE_LIMIT_PER_MINUTE", PER_MINUTE.to_string()),
        // Only the minute limit is meant to bite, and only the noisy client.
        ("RATE_LIMIT_PER_HOUR", "1000000".into()),
        ("RATE_LIMIT_PER_DAY", "10000000".into()),
        ("CHAT_RATE_LIMIT_PER_MINUTE", "10000".into()),
        // All clients share 127.0.0.1, and they open sockets over and over.
        ("WS_UPGRADES_PER_MINUTE", "100000".into()),
        ("CHAT_DAILY_TOKEN_LIMIT", "0".into()),
        ("CHAT_GLOBAL_DAILY_TOKEN_LIMIT", "0".into()),
        ("OPENAI_API_KEY", "sk-soak-test".into()),
        ("OPENAI_BASE_URL", upstream),
        ("OPENAI_TIMEOUT", "30".into()),
    ]
}

/// Registers every client's first account and the noisy one together (argon2 keeps each
/// slow), and reads the catalogue's allocation types into `target`.
fn set_up_accounts(board: &Board, target: &mut Target) -> (Vec<Account>, Account) {
    let names: Vec<String> = (0..CLIENTS)
        .map(|i| format!("client-{i}"))
        .chain(std::iter::once("noisy".to_string()))
        .collect();
    let registered = thread::scope(|s| {
        let shared: &Target = target;
        let handles: Vec<_> = names
            .iter()
            .map(|n| s.spawn(move || register(board, shared, n)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a registering thread"))
            .collect::<Option<Vec<Account>>>()
    });
    let mut accounts = registered
        .unwrap_or_else(|| panic!("registering the accounts failed:\n{}", failures_text(board)));
    target.type_ids = type_ids(target.http, &accounts[0].access);
    let mut loud = accounts.pop().expect("the noisy account");
    loud.noisy = true;
    (accounts, loud)
}

/// The load itself: the clients, the noisy one and the sampler until `seconds` have passed,
/// with a row of the table every `REPORT_EVERY`. The samples, and every account as it ended.
fn load(
    board: &Board,
    target: &Target,
    clients: Vec<Client>,
    loud: Account,
    pid: u32,
    db: &Path,
    seconds: u64,
) -> (Vec<Sample>, Vec<Account>) {
    let samples: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let sampling = AtomicBool::new(true);
    let start = Instant::now();
    board.load_start.set(start).expect("the load starts once");
    let deadline = start + Duration::from_secs(seconds);
    let mut finished: Vec<Account> = Vec::new();
    thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut tick = Instant::now();
            while sampling.load(Ordering::Relaxed) {
                let Some(mut x) = sample(pid, board.now()) else {
                    board.fail("sampler", "/proc", format!("server {pid} is gone"));
                    return;
                };
                x.db_kb = db_kb(db);
                samples.lock().unwrap().push(x);
                tick += Duration::from_secs(1);
                thread::sleep(tick.saturating_duration_since(Instant::now()));
            }
        });
        let workers: Vec<_> = clients
            .into_iter()
            .map(|c| s.spawn(move || c.run(deadline)))
            .collect();
        let noisy_thread = s.spawn(|| noisy(board, target, loud, deadline));
        report_header();
        let mut last = 0.0;
        while Instant::now() < deadline {
            let next = Instant::now() + REPORT_EVERY;
            thread::sleep(next.min(deadline).saturating_duration_since(Instant::now()));
            let now = board.now();
            report_row(board, &samples.lock().unwrap(), last, now);
            last = now;
        }
        for w in workers {
            finished.extend(w.join().expect("a client thread"));
        }
        finished.push(noisy_thread.join().expect("the noisy thread"));
        sampling.store(false, Ordering::Relaxed);
        sampler.join().expect("the sampler");
    });
    (samples.into_inner().unwrap(), finished)
}

/// Polls until threads and descriptors are back near `baseline`, for at most
/// `RETURN_LIMIT`: the last sample, and how long it took if they came back.
fn back_to_idle(board: &Board, pid: u32, baseline: &Sample) -> (Sample, Option<Duration>) {
    let quiet = Instant::now();
    loop {
        let now = sample(pid, board.now()).expect("the server after the load");
        if now.threads <= baseline.threads + RETURN_SLACK && now.fds <= baseline.fds + RETURN_SLACK
        {
            return (now, Some(quiet.elapsed()));
        }
        if quiet.elapsed() >= RETURN_LIMIT {
            return (now, None);
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// The final check of the books over every account but the noisy one.
#[derive(Default)]
struct Books {
    accounts: usize,
    checked: usize,
    transactions: u64,
    problems: Vec<String>,
}

fn check_all_books(http: SocketAddr, accounts: &[Account], months: &[(i32, u32)]) -> Books {
    let mut books = Books::default();
    let mut c = Http::new(http);
    for a in accounts.iter().filter(|a| !a.noisy) {
        books.accounts += 1;
        for &at in months {
            match check_books(&mut c, a, at) {
                Ok(n) => {
                    books.checked += 1;
                    books.transactions += n;
                }
                Err(e) => books
                    .problems
                    .push(format!("{} {}-{:02}: {e}", a.email, at.0, at.1)),
            }
        }
    }
    books
}

/// Everything the run left to judge.
struct Outcome {
    records: Vec<Record>,
    samples: Vec<Sample>,
    load_end: f64,
    baseline: Sample,
    after: Sample,
    returned: Option<Duration>,
    views: Option<u64>,
    view_bound: u64,
    books: Books,
    log_errors: Vec<String>,
    log_warnings: usize,
    alive: bool,
    exit: Option<i32>,
}

impl Outcome {
    fn third(&self) -> f64 {
        self.load_end / 3.0
    }

    /// Sorted latencies of the requests of the load that `keep` keeps.
    fn latencies(&self, keep: impl Fn(&Record) -> bool) -> Vec<f64> {
        latencies(&self.records, |r| r.at >= 0.0 && keep(r))
    }

    /// API p99 of the first and the last third.
    fn api_p99(&self) -> (f64, f64) {
        let t = self.third();
        let first = self.latencies(|r| r.class.is_api() && r.at < t);
        let last = self.latencies(|r| r.class.is_api() && r.at >= 2.0 * t);
        (percentile(&first, 99.0), percentile(&last, 99.0))
    }

    /// The resource peaks of the first, middle and last third.
    fn thirds(&self) -> [Option<Peaks>; 3] {
        let t = self.third();
        [
            peaks(&self.samples, 0.0, t),
            peaks(&self.samples, t, 2.0 * t),
            peaks(&self.samples, 2.0 * t, f64::INFINITY),
        ]
    }
}

fn print_report(board: &Board, fake: &FakeLlm, o: &Outcome) {
    let t = o.third();
    println!("\nrequests by kind (ms; first/last third are the load's first and last 1/3):");
    println!(
        "{:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12}",
        "kind", "n", "p50", "p95", "p99", "max", "p99 first", "p99 last"
    );
    for class in CLASSES {
        let all = o.latencies(|r| r.class == class);
        let first = o.latencies(|r| r.class == class && r.at < t);
        let last = o.latencies(|r| r.class == class && r.at >= 2.0 * t);
        println!(
            "{:>10} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>12.1} {:>12.1}",
            class.name(),
            all.len(),
            percentile(&all, 50.0),
            percentile(&all, 95.0),
            percentile(&all, 99.0),
            all.last().copied().unwrap_or(0.0),
            percentile(&first, 99.0),
            percentile(&last, 99.0)
        );
    }
    let mut slow: Vec<&Record> = o
        .records
        .iter()
        .filter(|r| r.at >= 0.0 && (r.class.is_api() || r.class == Class::Noisy))
        .collect();
    slow.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    let slow: Vec<String> = slow
        .iter()
        .take(6)
        .map(|r| format!("{} {:.0} ms at {:.1} s", r.class.name(), r.ms, r.at))
        .collect();
    println!("slowest API requests: {}", slow.join(", "));
    println!("\nserver resources (max per third of the load):");
    println!("{:>10} {:>8} {:>8} {:>6}", "", "rss MB", "threads", "fds");
    let row = |name: &str, rss_kb: u64, threads: u64, fds: u64| {
        println!("{name:>10} {:>8.1} {threads:>8} {fds:>6}", mb(rss_kb));
    };
    let b = &o.baseline;
    row("baseline", b.rss_kb, b.threads, b.fds);
    for (name, p) in ["first", "middle", "last"].iter().zip(o.thirds()) {
        if let Some(p) = p {
            row(name, p.rss_kb, p.threads, p.fds);
        }
    }
    row("after", o.after.rss_kb, o.after.threads, o.after.fds);
    match o.returned {
        Some(d) => println!(
            "threads and fds back at the baseline {:.1} s after the load",
            d.as_secs_f64()
        ),
        None => println!("threads and fds not back at the baseline after {RETURN_LIMIT:?}"),
    }
    println!(
        "\nintended 429s {}, replays {}, cancelled chats {}, cached answers {}, upstream \
         requests {}, upstream streams abandoned by the server {}",
        board.limited.load(Ordering::Relaxed),
        board.replays.load(Ordering::Relaxed),
        board.cancelled.load(Ordering::Relaxed),
        board.cached.load(Ordering::Relaxed),
        fake.request_count(),
        fake.client_closed_count()
    );
    println!(
        "cached views after the load: {:?} (at most {})",
        o.views, o.view_bound
    );
    println!(
        "books: {} account-months checked, {} transactions, {} accounts; server log: {} ERROR, \
         {} WARN lines; exit code after SIGTERM {:?}",
        o.books.checked,
        o.books.transactions,
        o.books.accounts,
        o.log_errors.len(),
        o.log_warnings,
        o.exit
    );
}

/// Every assertion of the soak, as the problems found (none: it passed).
fn verdict(board: &Board, o: &Outcome) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    let failures = board.failures.lock().unwrap();
    if !failures.is_empty() {
        problems.push(format!(
            "{} failed requests; the first ones:\n{}",
            failures.len(),
            failures_text_of(&failures)
        ));
    }
    if board.limited.load(Ordering::Relaxed) == 0 {
        problems.push("the noisy client was never refused with 429".into());
    }
    for class in CLASSES {
        if o.latencies(|r| r.class == class).is_empty() {
            problems.push(format!("no {} request during the load", class.name()));
        }
    }
    if let [_, Some(mid), Some(last)] = o.thirds() {
        let checks = [
            ("RSS kB", mid.rss_kb, last.rss_kb, RSS_SLACK_KB),
            ("threads", mid.threads, last.threads, THREAD_SLACK),
            ("fds", mid.fds, last.fds, FD_SLACK),
        ];
        for (what, m, l, slack) in checks {
            if l > (m as f64 * 1.15) as u64 + slack {
                problems.push(format!(
                    "{what} kept growing: last third max {l} > middle third max {m} × 1.15 + {slack}"
                ));
            }
        }
    } else {
        problems.push("too few resource samples for thirds".into());
    }
    if o.returned.is_none() {
        problems.push(format!(
            "after the load: {} threads, {} fds; baseline {} and {} (+{RETURN_SLACK} allowed)",
            o.after.threads, o.after.fds, o.baseline.threads, o.baseline.fds
        ));
    }
    let (p99_first, p99_last) = o.api_p99();
    if p99_last > 2.0 * p99_first + 20.0 {
        problems.push(format!(
            "API p99 drifted: last third {p99_last:.1} ms > 2 × first third {p99_first:.1} ms + 20"
        ));
    }
    if o.views.is_none_or(|n| n > o.view_bound) {
        problems.push(format!(
            "{:?} views cached, more than one per account, month and view plus one counter per \
             account ({})",
            o.views, o.view_bound
        ));
    }
    problems.extend(o.books.problems.iter().take(10).cloned());
    if !o.log_errors.is_empty() {
        let first: Vec<&str> = o.log_errors.iter().take(10).map(String::as_str).collect();
        problems.push(format!("the server logged errors:\n{}", first.join("\n")));
    }
    if !o.alive {
        problems.push("the server died during the run".into());
    }
    if o.exit != Some(0) {
        problems.push(format!("SIGTERM ended the server with {:?}, not 0", o.exit));
    }
    problems
}

#[test]
fn soak_mixed_load_levels_off_and_keeps_the_books() {
    let seconds = soak_seconds();
    let seed = std::env::var("WEALTHCOACH_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    let scratch = Scratch::new("soak");
    let fake = FakeLlm::start();
    fake.set_pieces(PIECES.iter().map(|p| p.to_string()).collect());
    fake.set_interval(Duration::from_millis(10));
    let db = scratch.0.join("soak.db");
    let mut server = Child::start(&scratch.0, &server_vars(&db, fake.base_url()));
    let pid = server.pid();
    println!(
        "soak: {seconds} s, {CLIENTS} clients + 1 noisy, seed {seed} (WEALTHCOACH_SOAK_SEED), \
         server pid {pid}, http {}, ws {}, upstream {}",
        server.http,
        server.ws,
        fake.base_url()
    );

    let board = Board::new();
    let mut target = Target {
        http: server.http,
        ws: server.ws,
        run: format!("soak{}", seed % 1_000_000),
        type_ids: Vec::new(),
        months: recent_months(2),
        answer: PIECES.concat(),
    };
    let (accounts, loud) = set_up_accounts(&board, &mut target);
    let mut clients: Vec<Client> = accounts
        .into_iter()
        .enumerate()
        .map(|(i, a)| Client::new(i, &board, &target, seed, a))
        .collect();

    // Warm-up: every kind of step from every client, then quiet, then the baseline.
    thread::scope(|s| {
        for c in clients.iter_mut() {
            s.spawn(move || c.warm_up());
        }
    });
    thread::sleep(SETTLE);
    let baseline = sample(pid, 0.0).expect("the server's /proc entries");
    println!(
        "baseline after warm-up and {SETTLE:?} idle: rss {:.1} MB, {} threads, {} fds, \
         {:?} cached views; {} failures so far",
        mb(baseline.rss_kb),
        baseline.threads,
        baseline.fds,
        view_cache_entries(server.http),
        board.failure_count()
    );

    let (samples, finished) = load(&board, &target, clients, loud, pid, &db, seconds);
    let load_end = board.now();
    let (after, returned) = back_to_idle(&board, pid, &baseline);
    // Only live views may stay cached: one per account, month and view. Three kinds: the
    // allocation summary, the monthly budget and the list page the load reads (always
    // `limit=50`, and a missing month means the same month as a given one). Beside them each
    // account has one sync counter, which the views' ETags are made from (`src/sync/etag.rs`).
    let views = view_cache_entries(server.http);
    let accounts = finished.len() as u64 - 1;
    let view_bound = 3 * target.months.len() as u64 * accounts + accounts;
    let books = check_all_books(server.http, &finished, &target.months);
    let alive = server.alive();
    let exit = server.terminate(Duration::from_secs(20));
    let log = server.log_text();
    let outcome = Outcome {
        records: board.records.lock().unwrap().clone(),
        samples,
        load_end,
        baseline,
        after,
        returned,
        views,
        view_bound,
        books,
        log_errors: log
            .lines()
            .filter(|l| l.contains(" ERROR "))
            .map(str::to_string)
            .collect(),
        log_warnings: log.lines().filter(|l| l.contains(" WARN ")).count(),
        alive,
        exit,
    };
    print_report(&board, &fake, &outcome);
    let problems = verdict(&board, &outcome);
    let (p99_first, p99_last) = outcome.api_p99();
    println!(
        "\nchecks: API p99 first third {p99_first:.1} ms, last third {p99_last:.1} ms \
         (bound {:.1}); {}",
        2.0 * p99_first + 20.0,
        if problems.is_empty() {
            "all hold".to_string()
        } else {
            format!("{} problems", problems.len())
        }
    );
    assert!(
        problems.is_empty(),
        "soak problems:\n- {}",
        problems.join("\n- ")
    );
}

fn failures_text(board: &Board) -> String {
    failures_text_of(&board.failures.lock().unwrap())
}

fn failures_text_of(failures: &[Failure]) -> String {
    failures
        .iter()
        .take(8)
        .map(|f| format!("  at {:.1} s, {}: {} -> {}", f.at, f.who, f.request, f.what))
        .collect::<Vec<_>>()
        .join("\n")
}
