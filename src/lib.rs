//! Wealth Coach AI server: one binary, two listeners (HTTP on `PORT`, WebSocket on
//! `WS_PORT`), one SQLite file. `start` builds everything; `main.rs` is the command line.

pub mod api;
pub mod app;
pub mod auth;
pub mod budget;
pub mod chat;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub(crate) mod export;
pub mod http;
pub mod input;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod profile;
pub mod random;
pub mod recurring;
pub mod replication;
pub mod serve;
pub(crate) mod sync;
pub mod ws;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub use app::App;
pub use config::Config;
pub use serve::routes;

/// In development with no secret set, a random one is kept beside the database so tokens
/// survive a restart. Production never gets here without a strong secret (config refuses).
pub fn ensure_secret(config: &mut Config) -> Result<(), String> {
    if config.tokens.secret.is_some() {
        return Ok(());
    }
    let dir = config.data_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(".jwt_secret");
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= config::MIN_SECRET_LEN => {
            // A copied or restored file may have come with looser permissions.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            s.trim().to_string()
        }
        _ => {
            let s = random::hex(32);
            write_private(&path, &s)?;
            log::warn!(
                "JWT_SECRET_KEY is not set: generated a development secret in {}",
                path.display()
            );
            s
        }
    };
    config.tokens.secret = Some(config::Secret::new(secret));
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// How long a stop waits for queued log lines (longer only if stderr is blocked).
const LOG_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A started server: both listeners up, the database open.
pub struct Running {
    pub app: Arc<App>,
    http: http::server::HttpServer,
    ws: ws::WsServer,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn http_addr(&self) -> SocketAddr {
        http::server::local(self.http.addr())
    }

    pub fn ws_addr(&self) -> SocketAddr {
        http::server::local(self.ws.addr())
    }

    /// Graceful stop: no new work, requests in flight finish (bounded by
    /// `SHUTDOWN_TIMEOUT_SECONDS`), sockets closed with 1001, WAL checkpointed.
    pub fn shutdown(mut self) {
        let deadline = Instant::now() + self.app.config.http.shutdown_timeout;
        self.app.begin_stop();
        self.http.stop(deadline);
        self.ws.stop(deadline);
        while self
            .app
            .metrics
            .ws_connections
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The recurring ticker sees the stop between two posts; each post is its own
        // database transaction, so waiting for it is short and loses nothing.
        if let Some(t) = self.ticker.take()
            && t.join().is_err()
        {
            log::error!("the recurring ticker panicked");
        }
        self.app.db.checkpoint();
        // The log is written by its own thread: what is queued is written before we return.
        logging::flush(LOG_FLUSH_WAIT);
    }
}

/// Opens the database, binds both listeners and starts serving.
pub fn start(mut config: Config) -> Result<Running, String> {
    ensure_secret(&mut config)?;
    let http_listener = http::server::bind(SocketAddr::new(config.host, config.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let ws_listener = http::server::bind(SocketAddr::new(config.host, config.ws_port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.ws_port))?;
    let db = db::Db::open(&config)?;
    let app = Arc::new(App::new(config, db)?);
    let http = http::server::HttpServer::start(app.clone(), routes(), http_listener)?;
    let ws = ws::WsServer::start(app.clone(), ws_listener, chat::ws::serve)?;
    http::server::spawn_watchdog(app.clone(), http.addr())
        .map_err(|e| format!("cannot start the watchdog: {e}"))?;
    notify::sweep::spawn(app.clone())
        .map_err(|e| format!("cannot start the notification sweep: {e}"))?;
    let ticker = recurring::ticker::spawn(app.clone())
        .map_err(|e| format!("cannot start the recurring ticker: {e}"))?;
    sync::push::spawn(app.clone()).map_err(|e| format!("cannot start the sync push: {e}"))?;
    log::info!(
        "{} {} serving HTTP on {} and WebSocket on {} ({})",
        app.config.app_name,
        ops::health::VERSION,
        http.addr(),
        ws.addr(),
        app.config.environment.as_str()
    );
    Ok(Running {
        app,
        http,
        ws,
        ticker: Some(ticker),
    })
}
