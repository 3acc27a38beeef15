//! One `Config`, read once at start from the environment and an optional `.env` file.
//!
//! Every limit a user can trip is a named setting with a default here. Parsing collects every
//! problem instead of stopping at the first, so an operator fixes a bad file in one go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the server runs: production turns on the strict start-up checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Environment {
    Development,
    Staging,
    Production,
    Test,
}

impl Environment {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Staging => "staging",
            Environment::Production => "production",
            Environment::Test => "test",
        }
    }
}

/// How hard SQLite flushes: NORMAL survives a process crash, FULL also a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Synchronous {
    Normal,
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SmsProvider {
    Console,
    Webhook,
    BulkSmsInd,
    Twilio,
}

impl SmsProvider {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            SmsProvider::Console => "console",
            SmsProvider::Webhook => "webhook",
            SmsProvider::BulkSmsInd => "bulksmsind",
            SmsProvider::Twilio => "twilio",
        }
    }
}

/// The secret that signs tokens and keys OTP hashes. Never printed.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(s: String) -> Secret {
        Secret(s)
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Values that ship in sample files and tutorials: never acceptable in production.
const KNOWN_WEAK_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change-me",
    "your-secret-key",
    "your-secret-key-here",
    "your-super-secret-key-change-in-production",
    "dev-secret",
    "development",
];
pub(crate) const MIN_SECRET_LEN: usize = 32;
/// 32 times `a` is long but guessable. (64 hex digits miss one of the 16 about 1 time in
/// 40, so install.sh and the README generate base64 secrets.)
pub(crate) const MIN_SECRET_DISTINCT: usize = 16;

fn distinct_chars(s: &str) -> usize {
    s.chars().collect::<std::collections::HashSet<_>>().len()
}

/// Every setting, grouped by concern; each group's environment variables share a prefix
/// (`OTP_*`, `WS_*`, `SMS_*`, …). The server's identity stays at the top.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) environment: Environment,
    pub log_level: log::LevelFilter,
    /// The log's buffer between the threads that log and its writer: `LOG_BUFFER_BYTES`.
    pub log_buffer_bytes: usize,
    pub(crate) app_name: String,
    pub host: IpAddr,
    pub port: u16,
    pub ws_port: u16,
    pub(crate) app_timezone: jiff::tz::TimeZone,
    pub(crate) app_timezone_name: String,
    pub http: HttpSettings,
    pub(crate) cors: CorsSettings,
    pub db: DbSettings,
    pub(crate) tokens: TokenSettings,
    pub(crate) rate_limit: RateLimits,
    pub(crate) ws: WsSettings,
    pub(crate) features: Features,
    pub(crate) cache: CacheSettings,
    pub sms: SmsSettings,
    pub(crate) otp: OtpRules,
    pub(crate) login: LoginRules,
    pub(crate) llm: LlmSettings,
    pub(crate) chat: ChatLimits,
    pub replication: ReplicationSettings,
    /// How often the recurring ticker posts due `auto_post` occurrences and sends bill
    /// reminders (it also runs at start-up): `RECURRING_TICK_SECONDS`, at least 1.
    pub(crate) recurring_tick: Duration,
    /// Warnings to log once logging is up (e.g. REDIS_URL ignored).
    pub warnings: Vec<String>,
}

/// The HTTP listener and the server's life cycle.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Handler threads for the HTTP listener (the bounded pool): `HTTP_WORKERS`.
    pub(crate) workers: usize,
    /// Threads for the routes that wait on the outside world (chat answers, the SMS gateway),
    /// at most this many at once; past it such a request is answered 503: `HTTP_SLOW_WORKERS`.
    pub(crate) slow_workers: usize,
    /// tiny_http reader threads kept alive while idle: `HTTP_READER_THREADS` (see
    /// `http::server::HttpServer::start`).
    pub(crate) reader_threads: usize,
    pub max_body_bytes: usize,
    pub trusted_proxies: Vec<IpAddr>,
    pub(crate) metrics_token: Option<Secret>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) watchdog_interval: Duration,
}

/// `CORS_*`.
#[derive(Clone, Debug)]
pub(crate) struct CorsSettings {
    pub(crate) origins: Vec<String>,
    pub(crate) allow_credentials: bool,
}

/// `DATABASE_URL`, `DB_*`.
#[derive(Clone, Debug)]
pub struct DbSettings {
    pub path: PathBuf,
    pub(crate) synchronous: Synchronous,
    pub(crate) pool_size: u32,
}

/// `JWT_SECRET_KEY` and the token lifetimes.
#[derive(Clone, Debug)]
pub(crate) struct TokenSettings {
    /// Signs tokens and keys OTP hashes. `None` until start-up fills it (from the environment,
    /// or a generated development key).
    pub(crate) secret: Option<Secret>,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
}

/// `RATE_LIMIT_*` and `CHAT_RATE_LIMIT_PER_MINUTE`.
#[derive(Clone, Debug)]
pub(crate) struct RateLimits {
    pub(crate) enabled: bool,
    pub(crate) per_minute: u32,
    pub(crate) per_hour: u32,
    pub(crate) per_day: u32,
    pub(crate) chat_per_minute: u32,
}

/// `WS_*`.
#[derive(Clone, Debug)]
pub(crate) struct WsSettings {
    pub(crate) max_connections_per_user: usize,
    pub(crate) max_connections: usize,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) auth_timeout: Duration,
    pub(crate) max_frame_bytes: usize,
    /// Upgrades per client address per minute, while rate limiting is on.
    pub(crate) upgrades_per_minute: u32,
    /// Sockets one address may hold open before they authenticate.
    pub(crate) max_pending_per_ip: usize,
}

/// `ENABLE_*`.
#[derive(Clone, Debug)]
pub(crate) struct Features {
    pub(crate) user_registration: bool,
    pub(crate) email_registration: bool,
    pub(crate) chat: bool,
    pub(crate) docs: bool,
}

/// `CACHE_ENABLED`, `QUERY_CACHE_TTL`.
#[derive(Clone, Debug)]
pub(crate) struct CacheSettings {
    pub(crate) enabled: bool,
    pub(crate) query_ttl: Duration,
}

/// `SMS_*`, `DEFAULT_COUNTRY_CODE` and the providers' own settings.
#[derive(Clone, Debug)]
pub struct SmsSettings {
    pub default_country_code: String,
    pub(crate) allowed_countries: Vec<String>,
    pub(crate) provider: SmsProvider,
    pub webhook_url: Option<String>,
    pub(crate) webhook_token: Option<Secret>,
    pub(crate) template: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) daily_limit: u32,
    pub(crate) bulksms: BulkSmsSettings,
    pub(crate) twilio: TwilioSettings,
}

/// `BULKSMS_*`. Missing ones are reported by the sender (only the chosen provider needs them).
#[derive(Clone, Debug)]
pub(crate) struct BulkSmsSettings {
    pub(crate) base_url: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) sendername: Option<String>,
    pub(crate) apikey: Option<Secret>,
    pub(crate) peid: Option<String>,
    pub(crate) templateid: Option<String>,
}

/// `TWILIO_*`. Missing ones are reported by the sender (only the chosen provider needs them).
#[derive(Clone, Debug)]
pub(crate) struct TwilioSettings {
    pub(crate) base_url: Option<String>,
    pub(crate) account_sid: Option<String>,
    pub(crate) auth_token: Option<Secret>,
    pub(crate) from_number: Option<String>,
}

/// `OTP_*`.
#[derive(Clone, Debug)]
pub(crate) struct OtpRules {
    pub(crate) ttl: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) attempt_window: Duration,
    pub(crate) resend_cooldown: Duration,
    pub(crate) max_sends_per_hour: u32,
    pub(crate) max_sends_per_day: u32,
    pub(crate) max_sends_per_ip_per_hour: u32,
}

/// `LOGIN_*`.
#[derive(Clone, Debug)]
pub(crate) struct LoginRules {
    pub(crate) max_failures: u32,
    pub(crate) max_failures_any_ip: u32,
}

/// `OPENAI_*`: the upstream model.
#[derive(Clone, Debug)]
pub(crate) struct LlmSettings {
    pub(crate) api_key: Option<Secret>,
    pub(crate) base_url: String,
    pub(crate) model: String,
    pub(crate) max_tokens: u32,
    pub(crate) temperature: f64,
    pub(crate) timeout: Duration,
    /// USD per million prompt / completion tokens, for the cost estimate.
    pub(crate) price_prompt_per_mtok: f64,
    pub(crate) price_completion_per_mtok: f64,
    /// `OPENAI_TOOLS`: whether the coach offers its tools upstream.
    pub(crate) tools: ToolsMode,
}

/// `OPENAI_TOOLS`: `auto` offers tools until the upstream refuses them (then not for 10
/// minutes), `on` always offers them, `off` never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToolsMode {
    Auto,
    On,
    Off,
}

impl ToolsMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ToolsMode::Auto => "auto",
            ToolsMode::On => "on",
            ToolsMode::Off => "off",
        }
    }
}

/// `CHAT_*_TOKEN_LIMIT`.
#[derive(Clone, Debug)]
pub(crate) struct ChatLimits {
    pub(crate) daily_token_limit: u64,
    pub(crate) global_daily_token_limit: u64,
}

/// `REPLICA_*`, `LITESTREAM_*`: continuous replication by a Litestream process beside the
/// server. The server never talks to the bucket: it only needs to know whether replication is
/// on, where Litestream's control socket is, and what to hand `litestream restore` in the drill.
#[derive(Clone, Debug)]
pub struct ReplicationSettings {
    /// `REPLICA_BUCKET`; `None` (empty or unset) = replication off.
    pub(crate) bucket: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    /// `REPLICA_RESTORE_FROM`, defaulting to `REPLICA_PATH`.
    pub(crate) restore_from: Option<String>,
    pub(crate) access_key_id: Option<Secret>,
    pub(crate) secret_access_key: Option<Secret>,
    /// `LITESTREAM_SOCKET`, default `<dir of the database>/litestream.sock`.
    pub socket: PathBuf,
    /// `LITESTREAM_BIN`, default `litestream` (from PATH).
    pub(crate) bin: PathBuf,
    /// `LITESTREAM_CONFIG`; unset = Litestream's own default.
    pub(crate) config_file: Option<PathBuf>,
    /// `REPLICA_POLL_SECONDS`: how often the socket is asked.
    pub(crate) poll: Duration,
    /// `REPLICA_LAG_SECONDS`: an older last sync is `lagging`.
    pub(crate) lag: Duration,
}

impl ReplicationSettings {
    pub fn enabled(&self) -> bool {
        self.bucket.is_some()
    }
}

/// Reads settings out of a name → value map and remembers every problem.
struct Reader<'a> {
    vars: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl<'a> Reader<'a> {
    fn raw(&self, name: &str) -> Option<&'a str> {
        self.vars
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_string()
    }

    fn opt_string(&self, name: &str) -> Option<String> {
        self.raw(name).map(str::to_string)
    }

    fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => match v.parse::<T>() {
                Ok(x) => x,
                Err(_) => {
                    self.errors
                        .push(format!("{name}: expected {what}, got {v:?}"));
                    default
                }
            },
        }
    }

    /// A count that must be at least `min`.
    fn count(&mut self, name: &str, default: u32, min: u32) -> u32 {
        let v = self.parse(name, default, "a whole number");
        if v < min {
            self.errors
                .push(format!("{name}: must be at least {min}, got {v}"));
            return default;
        }
        v
    }

    fn seconds(&mut self, name: &str, default: u64) -> Duration {
        Duration::from_secs(self.parse(name, default, "a number of seconds"))
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                self.errors
                    .push(format!("{name}: expected true or false, got {other:?}"));
                default
            }
        }
    }

    /// A list given as a JSON array (`["a","b"]`) or comma-separated (`a,b`).
    fn list(&mut self, name: &str, default: &[&str]) -> Vec<String> {
        let Some(v) = self.raw(name) else {
            return default.iter().map(|s| s.to_string()).collect();
        };
        if v.starts_with('[') {
            match serde_json::from_str::<Vec<String>>(v) {
                Ok(items) => items
                    .into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                Err(_) => {
                    self.errors
                        .push(format!("{name}: not a JSON list of strings: {v:?}"));
                    Vec::new()
                }
            }
        } else {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }
    }
}

/// `DATABASE_URL` is a path or a `sqlite://` URL (`sqlite:///abs/path`, `sqlite:///./rel`).
pub(crate) fn database_path_from_url(url: &str) -> Result<PathBuf, String> {
    let rest = if let Some(r) = url.strip_prefix("sqlite+aiosqlite://") {
        r
    } else if let Some(r) = url.strip_prefix("sqlite://") {
        r
    } else if url.contains("://") {
        return Err(format!(
            "DATABASE_URL: only SQLite is supported (a file path or sqlite:// URL), got {url:?}"
        ));
    } else {
        return Ok(PathBuf::from(url));
    };
    // sqlite:///./x.db → ./x.db ; sqlite:////abs → /abs ; sqlite:///abs → /abs (SQLAlchemy reads
    // three slashes as relative, but our operators write absolute paths that way).
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let path = if rest.starts_with("./") || rest.starts_with("../") || rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    if path.is_empty() || path == "/" || path.contains(":memory:") {
        return Err(format!("DATABASE_URL: needs a file path, got {url:?}"));
    }
    Ok(PathBuf::from(path))
}

/// `ENVIRONMENT`: where the server runs.
fn read_environment(r: &mut Reader) -> Environment {
    match r
        .string("ENVIRONMENT", "development")
        .to_ascii_lowercase()
        .as_str()
    {
        "development" | "dev" | "local" => Environment::Development,
        "staging" => Environment::Staging,
        "production" | "prod" => Environment::Production,
        "test" | "testing" => Environment::Test,
        other => {
            r.errors.push(format!(
                "ENVIRONMENT: expected development, staging, production or test, got {other:?}"
            ));
            Environment::Development
        }
    }
}

fn read_log_level(r: &mut Reader) -> log::LevelFilter {
    match r.string("LOG_LEVEL", "info").to_ascii_lowercase().as_str() {
        "trace" => log::LevelFilter::Trace,
        "debug" => log::LevelFilter::Debug,
        "info" => log::LevelFilter::Info,
        "warning" | "warn" => log::LevelFilter::Warn,
        "error" | "critical" => log::LevelFilter::Error,
        "off" => log::LevelFilter::Off,
        other => {
            r.errors.push(format!(
                "LOG_LEVEL: expected debug, info, warning or error, got {other:?}"
            ));
            log::LevelFilter::Info
        }
    }
}

/// `APP_TIMEZONE`: the zone that decides where a day and a month begin; its name and the zone.
fn read_timezone(r: &mut Reader) -> (String, jiff::tz::TimeZone) {
    let name = r.string("APP_TIMEZONE", "UTC");
    let zone = match jiff::tz::TimeZone::get(&name) {
        Ok(tz) => tz,
        Err(_) => {
            r.errors
                .push(format!("APP_TIMEZONE: unknown IANA time zone {name:?}"));
            jiff::tz::TimeZone::UTC
        }
    };
    (name, zone)
}

/// Two handler threads per core: the money benchmark's best warm `/allocations` p99 with near
/// its best throughput on 2 cores (README, Performance). More only time-slice the cores: the
/// slow routes are on their own pool, so no handler thread waits on the outside world.
fn default_workers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(2)
}

impl HttpSettings {
    fn read(r: &mut Reader, production: bool, warnings: &mut Vec<String>) -> HttpSettings {
        let workers = r.count("HTTP_WORKERS", default_workers(), 1) as usize;
        let slow_workers = r.count("HTTP_SLOW_WORKERS", 64, 1) as usize;
        let reader_threads = r.count("HTTP_READER_THREADS", 256, 1) as usize;
        let max_body_bytes = r.count("MAX_BODY_BYTES", 1024 * 1024, 1024) as usize;
        let mut trusted_proxies = Vec::new();
        for p in r.list("TRUSTED_PROXIES", &[]) {
            match p.parse::<IpAddr>() {
                Ok(ip) => trusted_proxies.push(ip),
                Err(_) => r
                    .errors
                    .push(format!("TRUSTED_PROXIES: not an IP address: {p:?}")),
            }
        }
        if production && trusted_proxies.is_empty() {
            // Behind a proxy on the same host every client then arrives from loopback: one
            // rate-limit bucket for everyone, and the operator routes open to all.
            warnings.push(
                "TRUSTED_PROXIES is empty: behind a local reverse proxy every client looks like \
                 loopback (set it to the proxy's address)"
                    .to_string(),
            );
        }
        HttpSettings {
            workers,
            slow_workers,
            reader_threads,
            max_body_bytes,
            trusted_proxies,
            metrics_token: r.opt_string("METRICS_TOKEN").map(Secret),
            shutdown_timeout: r.seconds("SHUTDOWN_TIMEOUT_SECONDS", 10),
            watchdog_interval: r.seconds("WATCHDOG_INTERVAL_SECONDS", 5),
        }
    }
}

impl CorsSettings {
    fn read(r: &mut Reader) -> CorsSettings {
        let origins = r.list("CORS_ORIGINS", &[]);
        if origins.iter().any(|o| o == "*") {
            r.errors.push(
                "CORS_ORIGINS: '*' is not allowed (credentials are sent); list the origins".into(),
            );
        }
        CorsSettings {
            origins,
            allow_credentials: r.flag("CORS_ALLOW_CREDENTIALS", true),
        }
    }
}

impl DbSettings {
    fn read(r: &mut Reader) -> DbSettings {
        let path = match database_path_from_url(&r.string("DATABASE_URL", "./data/wealthcoach.db"))
        {
            Ok(p) => p,
            Err(e) => {
                r.errors.push(e);
                PathBuf::from("./data/wealthcoach.db")
            }
        };
        let synchronous = match r
            .string("DB_SYNCHRONOUS", "NORMAL")
            .to_ascii_uppercase()
            .as_str()
        {
            "NORMAL" => Synchronous::Normal,
            "FULL" => Synchronous::Full,
            other => {
                r.errors.push(format!(
                    "DB_SYNCHRONOUS: expected NORMAL or FULL, got {other:?}"
                ));
                Synchronous::Normal
            }
        };
        DbSettings {
            path,
            synchronous,
            pool_size: r.count("DB_POOL_SIZE", 8, 1),
        }
    }
}

impl TokenSettings {
    fn read(r: &mut Reader, production: bool) -> TokenSettings {
        let secret = r
            .opt_string("JWT_SECRET_KEY")
            .or_else(|| r.opt_string("SECRET_KEY"))
            .map(Secret);
        if production {
            match &secret {
                None => r.errors.push(
                    "JWT_SECRET_KEY: must be set in production (openssl rand -base64 48)".into(),
                ),
                Some(s) if s.0.chars().count() < MIN_SECRET_LEN => r.errors.push(format!(
                    "JWT_SECRET_KEY: too short for production ({} characters, need {MIN_SECRET_LEN})",
                    s.0.chars().count()
                )),
                Some(s) if distinct_chars(&s.0) < MIN_SECRET_DISTINCT => r.errors.push(format!(
                    "JWT_SECRET_KEY: too repetitive for production ({} distinct characters, need {MIN_SECRET_DISTINCT})",
                    distinct_chars(&s.0)
                )),
                Some(s) if KNOWN_WEAK_SECRETS.contains(&s.0.to_ascii_lowercase().as_str()) => r
                    .errors
                    .push("JWT_SECRET_KEY: is a published default value".into()),
                Some(_) => {}
            }
        }
        let access_minutes = r.count("ACCESS_TOKEN_EXPIRE_MINUTES", 30, 1);
        let refresh_days = r.count("REFRESH_TOKEN_EXPIRE_DAYS", 7, 1);
        TokenSettings {
            secret,
            access_ttl: Duration::from_secs(u64::from(access_minutes) * 60),
            refresh_ttl: Duration::from_secs(u64::from(refresh_days) * 86_400),
        }
    }
}

impl RateLimits {
    fn read(r: &mut Reader, production: bool) -> RateLimits {
        RateLimits {
            enabled: r.flag("RATE_LIMIT_ENABLED", production),
            per_minute: r.count("RATE_LIMIT_PER_MINUTE", 60, 1),
            per_hour: r.count("RATE_LIMIT_PER_HOUR", 1000, 1),
            per_day: r.count("RATE_LIMIT_PER_DAY", 10000, 1),
            chat_per_minute: r.count("CHAT_RATE_LIMIT_PER_MINUTE", 10, 1),
        }
    }
}

impl WsSettings {
    fn read(r: &mut Reader) -> WsSettings {
        WsSettings {
            max_connections_per_user: r.count("WS_MAX_CONNECTIONS_PER_USER", 3, 1) as usize,
            max_connections: r.count("WS_MAX_CONNECTIONS", 4096, 1) as usize,
            heartbeat_interval: r.seconds("WS_HEARTBEAT_INTERVAL", 30),
            auth_timeout: r.seconds("WS_AUTH_TIMEOUT_SECONDS", 30),
            max_frame_bytes: r.count("WS_MAX_FRAME_BYTES", 64 * 1024, 1024) as usize,
            upgrades_per_minute: r.count("WS_UPGRADES_PER_MINUTE", 60, 1),
            max_pending_per_ip: r.count("WS_MAX_PENDING_PER_IP", 10, 1) as usize,
        }
    }
}

impl Features {
    fn read(r: &mut Reader) -> Features {
        Features {
            user_registration: r.flag("ENABLE_USER_REGISTRATION", true),
            email_registration: r.flag("ENABLE_EMAIL_REGISTRATION", true),
            chat: r.flag("ENABLE_CHAT", true),
            docs: r.flag("ENABLE_DOCS", true),
        }
    }
}

impl CacheSettings {
    fn read(r: &mut Reader, warnings: &mut Vec<String>) -> CacheSettings {
        let enabled = r.flag("CACHE_ENABLED", true);
        let query_ttl = r.seconds("QUERY_CACHE_TTL", 3600);
        if r.raw("REDIS_URL").is_some() {
            warnings.push(
                "REDIS_URL is set but ignored: the cache lives in the server process".to_string(),
            );
        }
        CacheSettings { enabled, query_ttl }
    }
}

impl SmsSettings {
    fn read(r: &mut Reader, production: bool) -> SmsSettings {
        let default_country_code = r.string("DEFAULT_COUNTRY_CODE", "91");
        if default_country_code.is_empty()
            || default_country_code.len() > 3
            || !default_country_code.bytes().all(|b| b.is_ascii_digit())
        {
            r.errors.push(format!(
                "DEFAULT_COUNTRY_CODE: expected 1 to 3 digits, got {default_country_code:?}"
            ));
        }
        let allowed_countries = r
            .list("SMS_ALLOWED_COUNTRIES", &["91"])
            .into_iter()
            .map(|c| c.trim_start_matches('+').to_string())
            .collect();
        let provider = match r
            .string("SMS_PROVIDER", "console")
            .to_ascii_lowercase()
            .as_str()
        {
            "console" => SmsProvider::Console,
            "webhook" => SmsProvider::Webhook,
            "bulksmsind" | "bulksms" => SmsProvider::BulkSmsInd,
            "twilio" => SmsProvider::Twilio,
            other => {
                r.errors.push(format!(
                    "SMS_PROVIDER: expected console, webhook, bulksmsind or twilio, got {other:?}"
                ));
                SmsProvider::Console
            }
        };
        if production && provider == SmsProvider::Console {
            r.errors.push(
                "SMS_PROVIDER: 'console' only logs codes; choose webhook, bulksmsind or twilio in production"
                    .into(),
            );
        }
        let webhook_url = r.opt_string("SMS_WEBHOOK_URL");
        if provider == SmsProvider::Webhook && webhook_url.is_none() {
            r.errors
                .push("SMS_WEBHOOK_URL: required with SMS_PROVIDER=webhook".into());
        }
        SmsSettings {
            default_country_code,
            allowed_countries,
            provider,
            webhook_url,
            webhook_token: r.opt_string("SMS_WEBHOOK_TOKEN").map(Secret),
            template: r.opt_string("SMS_TEMPLATE"),
            timeout: r.seconds("SMS_TIMEOUT_SECONDS", 10),
            daily_limit: r.count("SMS_DAILY_LIMIT", 1000, 0),
            bulksms: BulkSmsSettings {
                base_url: r.opt_string("BULKSMS_BASE_URL"),
                username: r.opt_string("BULKSMS_USERNAME"),
                sendername: r.opt_string("BULKSMS_SENDERNAME"),
                apikey: r.opt_string("BULKSMS_APIKEY").map(Secret),
                peid: r.opt_string("BULKSMS_PEID"),
                templateid: r.opt_string("BULKSMS_TEMPLATEID"),
            },
            twilio: TwilioSettings {
                base_url: r.opt_string("TWILIO_BASE_URL"),
                account_sid: r.opt_string("TWILIO_ACCOUNT_SID"),
                auth_token: r.opt_string("TWILIO_AUTH_TOKEN").map(Secret),
                from_number: r.opt_string("TWILIO_FROM_NUMBER"),
            },
        }
    }
}

impl OtpRules {
    fn read(r: &mut Reader) -> OtpRules {
        OtpRules {
            ttl: r.seconds("OTP_TTL_SECONDS", 300),
            max_attempts: r.count("OTP_MAX_ATTEMPTS", 5, 1),
            attempt_window: r.seconds("OTP_ATTEMPT_WINDOW_SECONDS", 3600),
            resend_cooldown: r.seconds("OTP_RESEND_COOLDOWN_SECONDS", 30),
            max_sends_per_hour: r.count("OTP_MAX_SENDS_PER_HOUR", 5, 1),
            max_sends_per_day: r.count("OTP_MAX_SENDS_PER_DAY", 10, 1),
            max_sends_per_ip_per_hour: r.count("OTP_MAX_SENDS_PER_IP_PER_HOUR", 20, 1),
        }
    }
}

impl LoginRules {
    fn read(r: &mut Reader) -> LoginRules {
        LoginRules {
            max_failures: r.count("LOGIN_MAX_FAILURES", 5, 1),
            max_failures_any_ip: r.count("LOGIN_MAX_FAILURES_ANY_IP", 20, 1),
        }
    }
}

impl LlmSettings {
    fn read(r: &mut Reader) -> LlmSettings {
        let api_key = r.opt_string("OPENAI_API_KEY").map(Secret);
        let base_url = r
            .string("OPENAI_BASE_URL", "https://api.openai.com/v1")
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            r.errors.push(format!(
                "OPENAI_BASE_URL: expected an http(s) URL, got {base_url:?}"
            ));
        }
        let model = r.string("OPENAI_MODEL", "gpt-4o-mini");
        let max_tokens = r.count("OPENAI_MAX_TOKENS", 500, 1);
        let temperature = r.parse("OPENAI_TEMPERATURE", 0.7f64, "a number");
        if !(0.0..=2.0).contains(&temperature) {
            r.errors.push(format!(
                "OPENAI_TEMPERATURE: must be between 0 and 2, got {temperature}"
            ));
        }
        let tools = match r
            .string("OPENAI_TOOLS", "auto")
            .to_ascii_lowercase()
            .as_str()
        {
            "auto" => ToolsMode::Auto,
            "on" => ToolsMode::On,
            "off" => ToolsMode::Off,
            other => {
                r.errors.push(format!(
                    "OPENAI_TOOLS: expected auto, on or off, got {other:?}"
                ));
                ToolsMode::Auto
            }
        };
        LlmSettings {
            tools,
            api_key,
            base_url,
            model,
            max_tokens,
            temperature,
            timeout: r.seconds("OPENAI_TIMEOUT", 60),
            price_prompt_per_mtok: r.parse("OPENAI_PRICE_PROMPT_PER_MTOK", 0.15f64, "a number"),
            price_completion_per_mtok: r.parse(
                "OPENAI_PRICE_COMPLETION_PER_MTOK",
                0.60f64,
                "a number",
            ),
        }
    }
}

impl ChatLimits {
    fn read(r: &mut Reader) -> ChatLimits {
        ChatLimits {
            daily_token_limit: r.parse("CHAT_DAILY_TOKEN_LIMIT", 50_000u64, "a whole number"),
            global_daily_token_limit: r.parse(
                "CHAT_GLOBAL_DAILY_TOKEN_LIMIT",
                2_000_000u64,
                "a whole number",
            ),
        }
    }
}

impl ReplicationSettings {
    fn read(r: &mut Reader, db_path: &Path) -> ReplicationSettings {
        let bucket = r.opt_string("REPLICA_BUCKET");
        let path = r.opt_string("REPLICA_PATH");
        let endpoint = r.opt_string("REPLICA_ENDPOINT");
        let access_key_id = r.opt_string("LITESTREAM_ACCESS_KEY_ID").map(Secret);
        let secret_access_key = r.opt_string("LITESTREAM_SECRET_ACCESS_KEY").map(Secret);
        if bucket.is_some() {
            // Litestream would start and fail on every upload: name each gap now instead.
            let missing = [
                ("REPLICA_PATH", path.is_none()),
                ("LITESTREAM_ACCESS_KEY_ID", access_key_id.is_none()),
                ("LITESTREAM_SECRET_ACCESS_KEY", secret_access_key.is_none()),
            ];
            for (name, _) in missing.iter().filter(|(_, gap)| *gap) {
                r.errors
                    .push(format!("{name}: required when REPLICA_BUCKET is set"));
            }
        }
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            r.errors.push(format!(
                "REPLICA_ENDPOINT: expected an http(s) URL or nothing (AWS), got {e:?}"
            ));
        }
        let dir = match db_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let socket = r
            .opt_string("LITESTREAM_SOCKET")
            .map_or_else(|| dir.join("litestream.sock"), PathBuf::from);
        ReplicationSettings {
            bucket,
            restore_from: r
                .opt_string("REPLICA_RESTORE_FROM")
                .or_else(|| path.clone()),
            path,
            endpoint,
            region: r.opt_string("REPLICA_REGION"),
            access_key_id,
            secret_access_key,
            socket,
            bin: PathBuf::from(r.string("LITESTREAM_BIN", "litestream")),
            config_file: r.opt_string("LITESTREAM_CONFIG").map(PathBuf::from),
            poll: Duration::from_secs(u64::from(r.count("REPLICA_POLL_SECONDS", 5, 1))),
            lag: Duration::from_secs(u64::from(r.count("REPLICA_LAG_SECONDS", 10, 1))),
        }
    }
}

impl Config {
    /// The process environment plus `.env` (the environment wins), as a map.
    pub(crate) fn environment_map() -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(iter) = dotenvy::from_path_iter(Path::new(".env")) {
            for (k, v) in iter.flatten() {
                vars.insert(k, v);
            }
        }
        for (k, v) in std::env::vars() {
            vars.insert(k, v);
        }
        vars
    }

    pub fn from_env() -> Result<Config, Vec<String>> {
        Config::from_map(&Config::environment_map())
    }

    /// Test helper: a config from a few pairs, everything else at its default.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Config, Vec<String>> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    /// Reads every group, then answers every problem found, or the config.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, Vec<String>> {
        let mut r = Reader {
            vars,
            errors: Vec::new(),
        };
        let mut warnings = Vec::new();

        let environment = read_environment(&mut r);
        let production = environment == Environment::Production;
        let debug = r.flag("DEBUG", false);
        let log_level = read_log_level(&mut r);
        let log_buffer_bytes = r.count("LOG_BUFFER_BYTES", 1024 * 1024, 1024) as usize;
        let host = r.parse(
            "HOST",
            IpAddr::from([127, 0, 0, 1]),
            "an IP address (e.g. 127.0.0.1)",
        );
        let port = r.parse("PORT", 8000u16, "a port number");
        let ws_port = r.parse("WS_PORT", 8001u16, "a port number");
        if port != 0 && port == ws_port {
            r.errors
                .push(format!("WS_PORT: must differ from PORT (both are {port})"));
        }
        let http = HttpSettings::read(&mut r, production, &mut warnings);
        let db = DbSettings::read(&mut r);
        let tokens = TokenSettings::read(&mut r, production);
        if production && debug {
            r.errors.push("DEBUG: must be false in production".into());
        }
        let (app_timezone_name, app_timezone) = read_timezone(&mut r);
        let cors = CorsSettings::read(&mut r);
        let rate_limit = RateLimits::read(&mut r, production);
        let ws = WsSettings::read(&mut r);
        let features = Features::read(&mut r);
        let cache = CacheSettings::read(&mut r, &mut warnings);
        let sms = SmsSettings::read(&mut r, production);
        let otp = OtpRules::read(&mut r);
        let login = LoginRules::read(&mut r);
        let llm = LlmSettings::read(&mut r);
        let chat = ChatLimits::read(&mut r);
        let replication = ReplicationSettings::read(&mut r, &db.path);
        let app_name = r.string("APP_NAME", "Wealth Coach AI");
        let recurring_tick =
            Duration::from_secs(u64::from(r.count("RECURRING_TICK_SECONDS", 60, 1)));

        if !r.errors.is_empty() {
            return Err(r.errors);
        }
        Ok(Config {
            environment,
            log_level,
            log_buffer_bytes,
            app_name,
            host,
            port,
            ws_port,
            app_timezone,
            app_timezone_name,
            http,
            cors,
            db,
            tokens,
            rate_limit,
            ws,
            features,
            cache,
            sms,
            otp,
            login,
            llm,
            chat,
            replication,
            recurring_tick,
            warnings,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// The folder that holds the database (and the generated development secret).
    pub(crate) fn data_dir(&self) -> PathBuf {
        match self.db.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// A summary for `check-config`, secrets shown only as set / not set.
    pub fn summary(&self) -> Vec<(String, String)> {
        let set = |s: &Option<Secret>| if s.is_some() { "set" } else { "not set" }.to_string();
        vec![
            ("ENVIRONMENT".into(), self.environment.as_str().into()),
            ("HOST".into(), self.host.to_string()),
            ("PORT".into(), self.port.to_string()),
            ("WS_PORT".into(), self.ws_port.to_string()),
            ("DATABASE".into(), self.db.path.display().to_string()),
            ("JWT_SECRET_KEY".into(), set(&self.tokens.secret)),
            ("SMS_PROVIDER".into(), self.sms.provider.as_str().into()),
            ("OPENAI_API_KEY".into(), set(&self.llm.api_key)),
            ("OPENAI_BASE_URL".into(), self.llm.base_url.clone()),
            ("OPENAI_MODEL".into(), self.llm.model.clone()),
            ("OPENAI_TOOLS".into(), self.llm.tools.as_str().into()),
            ("APP_TIMEZONE".into(), self.app_timezone_name.clone()),
            (
                "RATE_LIMIT_ENABLED".into(),
                self.rate_limit.enabled.to_string(),
            ),
            ("CORS_ORIGINS".into(), self.cors.origins.join(",")),
            (
                "REPLICA_BUCKET".into(),
                self.replication
                    .bucket
                    .clone()
                    .unwrap_or_else(|| "not set (replication off)".into()),
            ),
            (
                "REPLICA_PATH".into(),
                self.replication.path.clone().unwrap_or_default(),
            ),
            (
                "REPLICA_RESTORE_FROM".into(),
                self.replication.restore_from.clone().unwrap_or_default(),
            ),
            (
                "REPLICA_ENDPOINT".into(),
                self.replication.endpoint.clone().unwrap_or_default(),
            ),
            (
                "LITESTREAM_ACCESS_KEY_ID".into(),
                set(&self.replication.access_key_id),
            ),
            (
                "LITESTREAM_SECRET_ACCESS_KEY".into(),
                set(&self.replication.secret_access_key),
            ),
            (
                "LITESTREAM_SOCKET".into(),
                self.replication.socket.display().to_string(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_pairs(&[]).expect("defaults are valid");
        assert_eq!(c.port, 8000);
        assert_eq!(c.ws_port, 8001);
        assert_eq!(c.db.path, PathBuf::from("./data/wealthcoach.db"));
        assert_eq!(c.tokens.access_ttl, Duration::from_secs(30 * 60));
        assert_eq!(c.tokens.refresh_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(c.http.max_body_bytes, 1024 * 1024);
        assert_eq!(c.otp.max_attempts, 5);
        assert_eq!(c.sms.daily_limit, 1000);
        assert_eq!(c.ws.max_connections_per_user, 3);
        assert_eq!(c.ws.upgrades_per_minute, 60);
        assert_eq!(c.ws.max_pending_per_ip, 10);
        assert!(
            !c.rate_limit.enabled,
            "rate limiting is on by default only in production"
        );
        assert_eq!(c.sms.allowed_countries, vec!["91".to_string()]);
    }

    #[test]
    fn openai_tools_is_auto_on_or_off() {
        let mode = |v: &str| Config::from_pairs(&[("OPENAI_TOOLS", v)]).map(|c| c.llm.tools);
        assert_eq!(
            Config::from_pairs(&[]).map(|c| c.llm.tools).ok(),
            Some(ToolsMode::Auto)
        );
        assert_eq!(mode("ON").ok(), Some(ToolsMode::On));
        assert_eq!(mode("off").ok(), Some(ToolsMode::Off));
        let errs = mode("sometimes").expect_err("must refuse");
        assert!(
            errs.iter().any(|e| e.starts_with("OPENAI_TOOLS:")),
            "{errs:?}"
        );
    }

    #[test]
    fn production_refuses_weak_settings_naming_each() {
        let errs = Config::from_pairs(&[
            ("ENVIRONMENT", "production"),
            ("JWT_SECRET_KEY", "short"),
            ("DEBUG", "true"),
        ])
        .expect_err("must refuse");
        assert!(
            errs.iter().any(|e| e.starts_with("JWT_SECRET_KEY")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.starts_with("DEBUG")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.starts_with("SMS_PROVIDER")),
            "{errs:?}"
        );
    }

    #[test]
    fn production_secret_needs_sixteen_distinct_characters() {
        let with = |secret: &str| {
            Config::from_pairs(&[
                ("ENVIRONMENT", "production"),
                ("JWT_SECRET_KEY", secret),
                ("SMS_PROVIDER", "webhook"),
                ("SMS_WEBHOOK_URL", "https://sms.example/send"),
            ])
        };
        let errs = with(&"a".repeat(32)).expect_err("32 x a is refused");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("JWT_SECRET_KEY") && e.contains("distinct")),
            "{errs:?}"
        );
        let errs = with(&"0123456789abcde".repeat(3)).expect_err("15 distinct are refused");
        assert!(
            errs.iter().any(|e| e.starts_with("JWT_SECRET_KEY")),
            "{errs:?}"
        );
        with("0123456789abcdef0123456789abcdef").expect("16 distinct in 32 pass");
    }

    #[test]
    fn secret_key_is_an_alias() {
        let c = Config::from_pairs(&[("SECRET_KEY", "abc")]).expect("valid");
        assert_eq!(c.tokens.secret.expect("set").expose(), "abc");
    }

    #[test]
    fn lists_accept_json_or_commas() {
        let a = Config::from_pairs(&[(
            "CORS_ORIGINS",
            r#"["https://a.example","https://b.example"]"#,
        )])
        .expect("valid");
        let b = Config::from_pairs(&[("CORS_ORIGINS", "https://a.example, https://b.example")])
            .expect("valid");
        assert_eq!(a.cors.origins, b.cors.origins);
        assert_eq!(a.cors.origins.len(), 2);
    }

    #[test]
    fn database_url_forms() {
        assert_eq!(
            database_path_from_url("sqlite:///./data/x.db").expect("ok"),
            PathBuf::from("./data/x.db")
        );
        assert_eq!(
            database_path_from_url("sqlite:////var/lib/w/x.db").expect("ok"),
            PathBuf::from("/var/lib/w/x.db")
        );
        assert_eq!(
            database_path_from_url("/var/lib/w/x.db").expect("ok"),
            PathBuf::from("/var/lib/w/x.db")
        );
        assert!(database_path_from_url("postgresql://x").is_err());
    }

    #[test]
    fn bad_values_are_each_reported() {
        let errs = Config::from_pairs(&[("PORT", "eighty"), ("APP_TIMEZONE", "Mars/Olympus")])
            .expect_err("invalid");
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn the_recurring_tick_is_a_whole_number_of_seconds_from_one() {
        let ok = |v: &str| {
            Config::from_pairs(&[("RECURRING_TICK_SECONDS", v)]).map(|c| c.recurring_tick)
        };
        assert_eq!(
            Config::from_pairs(&[]).map(|c| c.recurring_tick).ok(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(ok("1").ok(), Some(Duration::from_secs(1)));
        for bad in ["0", "-1", "1.5", "soon"] {
            let errs = ok(bad).expect_err(bad);
            assert!(errs[0].starts_with("RECURRING_TICK_SECONDS"), "{errs:?}");
        }
    }

    #[test]
    fn one_bad_value_per_group_is_each_reported_in_one_go() {
        let bad = [
            ("HTTP_WORKERS", "0"),
            ("DB_SYNCHRONOUS", "OFF"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon"),
            ("CORS_ORIGINS", "*"),
            ("RATE_LIMIT_PER_MINUTE", "0"),
            ("WS_MAX_FRAME_BYTES", "10"),
            ("ENABLE_DOCS", "maybe"),
            ("CACHE_ENABLED", "perhaps"),
            ("SMS_PROVIDER", "pigeon"),
            ("OTP_MAX_ATTEMPTS", "0"),
            ("LOGIN_MAX_FAILURES", "-1"),
            ("OPENAI_TEMPERATURE", "3"),
            ("CHAT_DAILY_TOKEN_LIMIT", "lots"),
        ];
        let errs = Config::from_pairs(&bad).expect_err("invalid");
        assert_eq!(errs.len(), bad.len(), "{errs:?}");
        for (name, _) in bad {
            assert!(errs.iter().any(|e| e.starts_with(name)), "{name}: {errs:?}");
        }
    }

    #[test]
    fn provider_settings_are_typed_and_trimmed() {
        let c = Config::from_pairs(&[
            ("BULKSMS_APIKEY", "  key  "),
            ("BULKSMS_PEID", " "),
            ("TWILIO_FROM_NUMBER", "+15005550006"),
        ])
        .expect("valid");
        let key = c.sms.bulksms.apikey.as_ref().expect("set");
        assert_eq!(key.expose(), "key");
        assert_eq!(format!("{key:?}"), "Secret(***)");
        assert!(c.sms.bulksms.peid.is_none(), "blank is unset");
        assert_eq!(c.sms.twilio.from_number.as_deref(), Some("+15005550006"));
        assert!(c.sms.twilio.account_sid.is_none());
    }

    #[test]
    fn production_without_trusted_proxies_warns() {
        let prod = [
            ("ENVIRONMENT", "production"),
            (
                "JWT_SECRET_KEY",
                "a-production-secret-with-many-distinct-chars-0123456789",
            ),
            ("SMS_PROVIDER", "webhook"),
            ("SMS_WEBHOOK_URL", "http://127.0.0.1:9/sms"),
        ];
        let c = Config::from_pairs(&prod).expect("valid");
        assert!(c.warnings.iter().any(|w| w.contains("TRUSTED_PROXIES")));
        let mut with_proxy = prod.to_vec();
        with_proxy.push(("TRUSTED_PROXIES", "127.0.0.1"));
        let c = Config::from_pairs(&with_proxy).expect("valid");
        assert!(!c.warnings.iter().any(|w| w.contains("TRUSTED_PROXIES")));
        let dev = Config::from_pairs(&[]).expect("valid");
        assert!(!dev.warnings.iter().any(|w| w.contains("TRUSTED_PROXIES")));
    }

    #[test]
    fn replication_is_off_without_a_bucket_and_names_each_gap_with_one() {
        let off = Config::from_pairs(&[("DATABASE_URL", "/var/lib/w/x.db")]).expect("valid");
        assert!(!off.replication.enabled());
        assert_eq!(
            off.replication.socket,
            PathBuf::from("/var/lib/w/litestream.sock")
        );
        assert_eq!(off.replication.poll, Duration::from_secs(5));
        assert_eq!(off.replication.lag, Duration::from_secs(10));
        let errs = Config::from_pairs(&[("REPLICA_BUCKET", "b")]).expect_err("gaps");
        for name in [
            "REPLICA_PATH",
            "LITESTREAM_ACCESS_KEY_ID",
            "LITESTREAM_SECRET_ACCESS_KEY",
        ] {
            assert!(errs.iter().any(|e| e.starts_with(name)), "{name}: {errs:?}");
        }
        let on = Config::from_pairs(&[
            ("REPLICA_BUCKET", "b"),
            ("REPLICA_PATH", "vm1"),
            ("LITESTREAM_ACCESS_KEY_ID", "id"),
            ("LITESTREAM_SECRET_ACCESS_KEY", "very-secret-value"),
        ])
        .expect("complete");
        assert!(on.replication.enabled());
        assert_eq!(on.replication.restore_from.as_deref(), Some("vm1"));
        let printed = format!("{:?} {:?}", on.replication, on.summary());
        assert!(!printed.contains("very-secret-value"), "{printed}");
    }

    #[test]
    fn redis_url_is_a_warning_not_an_error() {
        let c = Config::from_pairs(&[("REDIS_URL", "redis://localhost")]).expect("valid");
        assert!(c.warnings.iter().any(|w| w.contains("REDIS_URL")));
    }
}
