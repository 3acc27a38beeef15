//! The command line: `serve` (default), `migrate`, `backup <file>`, `restore <file>`,
//! `check-config`, `replica-drill`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wealthcoach::{Config, db, logging};

const HELP: &str = "\
wealthcoach: the Wealth Coach AI server

Usage: wealthcoach [COMMAND]

Commands:
  serve            Start the HTTP and WebSocket listeners (the default)
  migrate          Apply database migrations and exit
  backup <file>    Write a consistent copy of the database to <file> (safe while serving)
  backup-rotate <dir>
                   Write <dir>/wealthcoach-<time>.db and keep the newest BACKUP_KEEP (7)
  restore <file>   Replace the database with <file> after checking it (server stopped);
                   the current database is kept aside as <db>.pre-restore-<time>
  replica-drill    Restore the Litestream replica to a temporary file, compare row counts
                   with the live database, record the verdict in <db dir>/replica-drill.json
                   (shown in /api/v1/health/detailed); exit 0 when it passes, 1 when not
  check-config     Validate the configuration, print a summary (no secrets) and exit
  user deactivate <mobile|email>
                   Block a user: every request and login gets 403, every session is revoked
                   (returns after about a second: a running server may use a user row read
                   up to a second before)
  user activate <mobile|email>
                   Unblock a user (sessions revoked earlier stay revoked)
  help, --help     Show this text

Configuration comes from the environment and an optional .env file; see README.md.";

fn load_config() -> Result<Config, ExitCode> {
    match Config::from_env() {
        Ok(c) => {
            logging::init_buffered(c.log_level, c.log_buffer_bytes);
            for w in &c.warnings {
                log::warn!("{w}");
            }
            Ok(c)
        }
        Err(problems) => {
            for p in problems {
                eprintln!("configuration error: {p}");
            }
            Err(ExitCode::from(2))
        }
    }
}

fn serve() -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("cannot install the signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    let running = match wealthcoach::start(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    wealthcoach::ops::systemd::notify("READY=1");
    loop {
        if let Some(why) = running.app.failure() {
            // The listener is gone; exit so the supervisor restarts us.
            log::error!("exiting: {why}");
            return ExitCode::from(70);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    log::info!("stopping: finishing requests in flight");
    wealthcoach::ops::systemd::notify("STOPPING=1");
    running.shutdown();
    log::info!("stopped");
    ExitCode::SUCCESS
}

fn with_db_path(f: impl FnOnce(&Config) -> Result<String, String>) -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    match f(&config) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let code = run();
    // The log's writer thread ends with the process: let it write what is queued first
    // ("stopped", or why the server exits).
    log::logger().flush();
    code
}

fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(0), arg(1)) {
        (None | Some("serve"), _) => serve(),
        (Some("migrate"), _) => with_db_path(|c| {
            let db = db::Db::open(c)?;
            // Fold the WAL into the main file: otherwise the migrated schema stays in
            // `<db>-wal`, and a plain copy of the database file is an empty database.
            db.checkpoint();
            Ok(format!("database {} is up to date", db.path().display()))
        }),
        (Some("backup"), Some(file)) => with_db_path(|c| {
            db::backup_to(&c.db.path, Path::new(file))?;
            Ok(format!("backup written to {file} (integrity ok)"))
        }),
        (Some("backup-rotate"), Some(dir)) => with_db_path(|c| {
            let keep = std::env::var("BACKUP_KEEP")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(7);
            let file = db::backup_rotate(&c.db.path, Path::new(dir), keep)?;
            Ok(format!(
                "backup written to {} (integrity ok); keeping {keep}",
                file.display()
            ))
        }),
        (Some("restore"), Some(file)) => with_db_path(|c| {
            let kept = db::restore_from(&c.db.path, Path::new(file), &c.replication.socket)?;
            Ok(match kept {
                Some(p) => format!(
                    "restored {file}; the previous database is kept at {}",
                    p.display()
                ),
                None => format!("restored {file}"),
            })
        }),
        (Some("replica-drill"), _) => with_db_path(|c| {
            wealthcoach::replication::drill(c).map(|d| format!("replica drill ok: {d}"))
        }),
        (Some("check-config"), _) => with_db_path(|c| {
            let mut out = String::from("configuration ok\n");
            for (k, v) in c.summary() {
                out.push_str(&format!("  {k}={v}\n"));
            }
            Ok(out.trim_end().to_string())
        }),
        (Some("user"), Some(action @ ("activate" | "deactivate"))) => match arg(2) {
            Some(who) => with_db_path(|c| {
                // A plain connection, not `Db::open`: this runs beside a live server.
                let mut conn = db::open_for_admin(&c.db.path)?;
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| e.to_string())?;
                let now = jiff::Timestamp::now().as_second();
                let active = action == "activate";
                let id = wealthcoach::auth::users::set_active(
                    &tx,
                    who,
                    active,
                    &c.sms.default_country_code,
                    now,
                )?;
                tx.commit().map_err(|e| e.to_string())?;
                // A running server may answer from a user row read up to this long ago
                // (`auth::recent`): once this returns, none does.
                std::thread::sleep(
                    wealthcoach::auth::recent::FRESH + std::time::Duration::from_millis(250),
                );
                Ok(format!("user {id} {action}d"))
            }),
            None => {
                eprintln!("usage: wealthcoach user {action} <mobile|email>");
                ExitCode::from(2)
            }
        },
        (Some("help" | "--help" | "-h"), _) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        (Some(cmd @ ("backup" | "restore" | "backup-rotate")), None) => {
            eprintln!("usage: wealthcoach {cmd} <file>");
            ExitCode::from(2)
        }
        (Some(other), _) => {
            eprintln!("unknown command {other:?}\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}
