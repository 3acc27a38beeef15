//! The SQLite database: one writer connection behind a mutex (every write is one
//! `BEGIN IMMEDIATE` transaction), and an r2d2 pool of readers that never wait for it (WAL).
//!
//! Who owns which table (from `sql/`): only the owner runs SQL on it; others call its functions.
//! - `auth`: `users` (`users.rs`), `refresh_tokens` (`tokens.rs`), `revoked_access_tokens`
//!   (`revocation.rs`), `otp_codes`, `otp_retired`, `otp_sends`, `otp_failures`,
//!   `verified_numbers` (`otp.rs`), `login_failures` (`lockout.rs`).
//! - `budget`: `allocation_categories`, `allocation_types` (`catalog.rs`), `user_allocations`
//!   (`allocations.rs`, `monthly.rs`), `allocation_rollover` (`rollover.rs`), `monthly_budgets`,
//!   `transactions` (`transactions.rs`),
//!   `idempotency_keys` (`idempotency.rs`).
//! - `recurring`: `recurring`, `recurring_skips` (`rules.rs`). It also reads the posted
//!   occurrences (`transactions.recurring_id`/`occurrence_date`, added by its migration) there,
//!   joined with the rules, so a view costs one query per kind of row, not one per rule.
//! - `profile`: `user_profiles` (`onboarding.rs`), `user_preferences` (`preferences.rs`).
//! - `chat`: `chat_sessions`, `chat_messages` (`history.rs`), `chat_tool_calls` (`toolloop.rs`), `llm_usage_daily` (`quota.rs`);
//!   the operator's counts and the export read them through `records.rs`.
//! - `notifications`: `notifications` (`store.rs`).
//! - `db`: `schema_migrations`.
//!
//! Deleting a user cascades (`ON DELETE CASCADE` in the schema) to every table with a
//! `user_id`; the export reads each table through its owner (`profile/export.rs`).

mod backup;
mod group;
mod migrate;
mod rows;
mod watch;

pub use backup::{backup_rotate, backup_to, integrity_check, restore_from};
pub(crate) use migrate::apply_migrations;
pub(crate) use rows::user_rows;
pub(crate) use watch::Watch;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::config::{Config, Synchronous};
use crate::error::{Error, Result};
use crate::replication::Monitor;

const BUSY_TIMEOUT_MS: u32 = 5000;

/// Compiled statements each connection keeps (rusqlite's default is 16). The code has about
/// 90 `prepare_cached` sites; with 16, a POST's own statements could push each other out and be
/// compiled again on every request.
const STATEMENT_CACHE: usize = 128;

/// WAL frames (pages) past which the checkpoint thread truncates the file: 64 MiB at the
/// default 4 KiB page size. Normally the WAL restarts long before (`WAL_RESTART_FRAMES`);
/// this is for when readers keep it from restarting.
const WAL_TRUNCATE_FRAMES: i64 = 16384;
/// After a restart the WAL file keeps its size for reuse, down to at most this.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
/// WAL frames past which the checkpoint thread finishes on the writer (`on_writer`), so the
/// next commit restarts the WAL: 4 MiB.
const WAL_RESTART_FRAMES: i64 = 1024;
/// How long the truncating checkpoint waits for readers, holding the writer's mutex. The
/// restarting one does not wait at all: beside 1,000 chat prepares reading at once, a 50 ms
/// wait every 100 ms held the writer half of the time (benches/chat.rs).
const TRUNCATE_WAIT_MS: u64 = 50;
/// With replication on, Litestream owns the WAL. Only if its socket has been silent this long
/// and the WAL is past [`LAST_RESORT_WAL_BYTES`] do we truncate it ourselves, so a dead
/// Litestream cannot let the WAL fill the disk.
const LAST_RESORT_SILENCE: Duration = Duration::from_secs(5 * 60);
const LAST_RESORT_WAL_BYTES: u64 = 64 * 1024 * 1024;
/// Between two last-resort attempts (each fails at once if Litestream holds the WAL).
const LAST_RESORT_EVERY: Duration = Duration::from_secs(60);

/// What a write that may refuse came to. A refusal is a value, not an `Err`, because
/// [`Db::write`] rolls back on `Err` and the counters behind the refusal must stay written.
#[must_use]
pub enum Outcome<T> {
    Done(T),
    Refused(Error),
}

impl<T> Outcome<T> {
    /// The refusal as the error the caller answers with, once its transaction committed.
    pub(crate) fn into_result(self) -> Result<T> {
        match self {
            Outcome::Done(v) => Ok(v),
            Outcome::Refused(e) => Err(e),
        }
    }
}

pub struct Db {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    /// Group commit for writes made with [`Db::write_in_group`].
    group: group::Group,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Held for the life of the server so a second server or a `restore` cannot open the same
    /// file underneath it.
    _lock: File,
    /// (device, inode) of the file at open: if they change, someone replaced or deleted it.
    identity: Option<(u64, u64)>,
    /// Tells the checkpoint thread and the replication poller to end.
    stop: Arc<AtomicBool>,
    /// What Litestream's control socket last said (off when `REPLICA_BUCKET` is empty).
    replication: Arc<Monitor>,
    /// The rows of the watched tables each write changed (`watch.rs`).
    watch: Arc<Watch>,
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Folds the WAL into the database file every 100 ms from its own connection, so the fsyncs
/// of a checkpoint never happen inside a write transaction while the writer lock is held
/// (SQLite's automatic checkpoint would run them in whichever commit crossed the threshold).
///
/// With replication on, Litestream holds a read transaction and runs its own checkpoints: a
/// checkpoint from us would stall writers (TRUNCATE) or make it re-upload the whole database,
/// so the thread only keeps the last resort ([`last_resort`]).
fn spawn_checkpointer(
    path: PathBuf,
    sync: Synchronous,
    stop: Arc<AtomicBool>,
    replication: Arc<Monitor>,
    writer: Arc<Mutex<Connection>>,
) {
    let spawned = std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            let conn = match Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("checkpoint thread: cannot open {}: {e}", path.display());
                    return;
                }
            };
            if let Err(e) = conn.execute_batch(&pragmas(sync)) {
                log::error!("checkpoint thread: {e}");
            }
            // This connection only runs PASSIVE (which never waits) when replication is off;
            // the checkpoints that hold writers off run on the writer (`on_writer`). Beside
            // Litestream its last resort never waits at all: a busy WAL means Litestream is
            // alive.
            let wait = if replication.enabled() { 0 } else { 1000 };
            if let Err(e) = conn.busy_timeout(Duration::from_millis(wait)) {
                log::error!("checkpoint thread: {e}");
            }
            // Every 100 ms: at 6,000 POST/s the WAL grows ~170 MB a second (3 pages a
            // commit), and a once-a-second TRUNCATE held writers off for ~100 ms while it
            // copied all of that (wrk p99 105-250 ms). Ten times as often, each one is short.
            let mut ticks = 0u32;
            let mut last_attempt: Option<std::time::Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                ticks += 1;
                if replication.enabled() {
                    // Litestream checkpoints; ours is only the last resort, once a second.
                    if ticks.is_multiple_of(10) {
                        last_resort(&conn, &path, &replication, &mut last_attempt);
                    }
                    continue;
                }
                // PASSIVE: copies what no reader still needs, never waits for readers or the writer.
                let tick_started = std::time::Instant::now();
                let passive =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
                match passive {
                    // Under a steady stream of commits PASSIVE never catches up (commits land
                    // while it copies), so the WAL never restarted and grew without bound
                    // (300 MB of WAL for 7 MB of data; tests/disk_full.rs checks it).
                    // Finishing on the writer, with no commit in between, lets the next
                    // commit restart the WAL from its start. If readers keep that from
                    // happening, the file is truncated past WAL_TRUNCATE_FRAMES.
                    Ok(frames) if frames >= WAL_TRUNCATE_FRAMES => {
                        on_writer(&writer, "TRUNCATE", TRUNCATE_WAIT_MS);
                    }
                    // No wait: an older reader makes it give up until the next tick.
                    Ok(frames) if frames >= WAL_RESTART_FRAMES => {
                        catch_up(&conn, frames, tick_started);
                        on_writer(&writer, "RESTART", 0);
                    }
                    Ok(_) => {}
                    Err(e) => log::warn!("WAL checkpoint failed: {e}"),
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the checkpoint thread: {e}");
    }
}

/// More PASSIVE passes before a restart, while the last one still found many new frames:
/// what the restart must copy under the writer's mutex, and fsync, is what was committed
/// since the last pass. The database file's fsync costs ~40 µs a page on this VM. Under wrk's
/// linked POSTs at ~6,000/s, a restart every ~150 ms held the writer 14-20 ms on average
/// (max 34 ms) after one pass, 10-11 ms after three, 7-8 ms after five; wrk's POST p99 went
/// from 21-29 ms to 12-15 ms (README, "Issue 11's bars in one run").
///
/// Only while passes are quick: each one ends in fsyncs, and on a slow disk (a CI run failed
/// on it; here every fsync delayed 200 ms with strace) four more passes took 0.8 s while
/// the WAL grew past 32 MiB (tests/disk_full.rs). A slow pass means the restart should come now.
fn catch_up(conn: &Connection, mut frames: i64, started: std::time::Instant) {
    for _ in 0..4 {
        if started.elapsed() >= CATCH_UP_BUDGET {
            return;
        }
        let pass = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match pass {
            Ok(now) if now - frames >= CATCH_UP_FRAMES => frames = now,
            Ok(_) => return,
            Err(e) => {
                log::warn!("WAL checkpoint failed: {e}");
                return;
            }
        }
    }
}

/// New frames below which one more pass before a restart is not worth it.
const CATCH_UP_FRAMES: i64 = 64;
/// Time since the tick's own pass began past which no further pass starts. Under the money
/// bench's POSTs (~8,000/s) the tick's pass took 4.8 ms at the median, 19 ms at p90.
const CATCH_UP_BUDGET: Duration = Duration::from_millis(50);

/// A checkpoint run on the writer's own connection while holding its mutex, after the
/// checkpoint thread's own PASSIVE copied the bulk concurrently: what is left is the last
/// few milliseconds of commits and the database file's fsync.
///
/// From another connection, TRUNCATE made writers wait in SQLite's busy handler, which
/// sleeps in growing steps (up to 100 ms); and TRUNCATE's ftruncate and fsync cost ~20 ms
/// (strace). wrk's POST p99 was 40-130 ms at 6,000 POST/s. Writers now wait on the mutex and
/// go the moment it is released, and the common case is a RESTART that lets the next commit
/// rewrite the WAL from its start (no ftruncate). Only readers can make it wait, for `wait_ms`: a reader
/// still on old frames leaves the rest for the next tick.
fn on_writer(writer: &Mutex<Connection>, mode: &str, wait_ms: u64) {
    let conn = writer.lock().unwrap_or_else(|p| p.into_inner());
    let set = |ms: u64| conn.busy_timeout(Duration::from_millis(ms));
    let done = set(wait_ms)
        .and_then(|_| conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())));
    if let Err(e) = done {
        log::warn!("WAL checkpoint ({mode}) failed: {e}");
    }
    if let Err(e) = set(u64::from(BUSY_TIMEOUT_MS)) {
        log::error!("cannot restore the writer's busy timeout: {e}");
    }
}

/// Replication on: `wal_checkpoint(TRUNCATE)` (busy_timeout 0, so it never waits and never
/// stalls a writer) only when Litestream's socket has been silent for
/// [`LAST_RESORT_SILENCE`] and the WAL is past [`LAST_RESORT_WAL_BYTES`]. Litestream takes one
/// full snapshot when it comes back.
fn last_resort(
    conn: &Connection,
    path: &Path,
    replication: &Monitor,
    last_attempt: &mut Option<std::time::Instant>,
) {
    let wal = crate::replication::wal_bytes(path);
    let silent = replication.silent_for();
    if silent < LAST_RESORT_SILENCE
        || wal <= LAST_RESORT_WAL_BYTES
        || last_attempt.is_some_and(|t| t.elapsed() < LAST_RESORT_EVERY)
    {
        return;
    }
    *last_attempt = Some(std::time::Instant::now());
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => log::warn!(
            "Litestream silent for {} s and the WAL at {wal} bytes: truncated it (Litestream \
             will take a full snapshot)",
            silent.as_secs()
        ),
        Ok(_) => log::warn!(
            "Litestream silent for {} s, WAL at {wal} bytes: truncation busy (a reader holds it)",
            silent.as_secs()
        ),
        Err(e) => log::warn!("WAL checkpoint (last resort) failed: {e}"),
    }
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn pragmas(sync: Synchronous) -> String {
    let sync = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    // busy_timeout first: the others may need the lock.
    format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = {sync};
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16000;"
    )
}

/// A connection for operator commands that run beside a live server (`user deactivate`):
/// no lock, no migrations, the same pragmas.
pub fn open_for_admin(path: &Path) -> std::result::Result<Connection, String> {
    if !path.exists() {
        return Err(format!("{}: no database there", path.display()));
    }
    check_existing_file(path)?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The server's checkpoint thread (or Litestream) folds the WAL, never this connection.
    conn.execute_batch(&pragmas(Synchronous::Full))
        .and_then(|()| conn.execute_batch("PRAGMA wal_autocheckpoint = 0;"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(conn)
}

/// The lock file that marks a database as in use by a server.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the server's lock on the database, or says who holds it.
pub(crate) fn take_lock(db: &Path) -> std::result::Result<File, String> {
    let path = lock_path(db);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the database {} is in use by a running server (lock {})",
            db.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Refuses a file that exists but is not a SQLite database, so a damaged file is never
/// silently replaced by a fresh one.
fn check_existing_file(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let Ok(mut f) = File::open(path) else {
        return Ok(());
    };
    let mut header = [0u8; 16];
    let n = f
        .read(&mut header)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if n == 0 {
        // An empty file is what SQLite itself creates; treat it as a new database.
        return Ok(());
    }
    if n < 16 || &header != b"SQLite format 3\0" {
        return Err(format!(
            "{} is not a SQLite database (damaged or wrong file); refusing to start. \
             Restore a backup with `wealthcoach restore <file>`",
            path.display()
        ));
    }
    Ok(())
}

impl Db {
    /// Opens (creating the folder and file if needed), checks and migrates the database.
    pub fn open(config: &Config) -> std::result::Result<Db, String> {
        let path = config.db.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let lock = take_lock(&path)?;
        check_existing_file(&path)?;

        let mut writer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let init = pragmas(config.db.synchronous);
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        writer
            .execute_batch(&init)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| format!("{}: cannot enable WAL: {e}", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!(
                "{}: journal_mode is {mode}, not wal",
                path.display()
            ));
        }
        // A damaged file whose header survived shows up here, before anything writes to it.
        let quick: String = writer
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        if quick != "ok" {
            return Err(format!(
                "{} failed its integrity check: {quick}",
                path.display()
            ));
        }
        // Checkpoints run on their own thread (`spawn_checkpointer`) or in Litestream, never
        // inside commits, migrations included.
        writer
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES};"
            ))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        apply_migrations(&mut writer).map_err(|e| format!("migrations failed: {e}"))?;
        backup::renew_epoch_after_replica_restore(&writer, &path)?;
        // What the writer changes in these tables is heard by `sync::known` (the users'
        // change counters) and `auth::recent` (remembered bearer checks).
        let watch = Arc::new(
            Watch::install(&writer, &["sync_counters", "users"])
                .map_err(|e| format!("cannot watch the writer's tables: {e}"))?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let replication = Arc::new(Monitor::new(&config.replication, &path));
        crate::replication::spawn(replication.clone(), stop.clone());
        let writer = Arc::new(Mutex::new(writer));
        spawn_checkpointer(
            path.clone(),
            config.db.synchronous,
            stop.clone(),
            replication.clone(),
            writer.clone(),
        );

        let reader_init = init.clone();
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| {
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                c.execute_batch(&reader_init)
            });
        let readers = r2d2::Pool::builder()
            // r2d2 would run `SELECT 1` on every checkout; a broken connection shows up as an
            // error on use anyway, and an authenticated read takes two checkouts.
            .test_on_check_out(false)
            .max_size(config.db.pool_size)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .map_err(|e| format!("cannot open reader pool: {e}"))?;
        let identity = file_identity(&path);
        let group = group::Group::start(writer.clone(), watch.clone())
            .map_err(|e| format!("cannot start the group-commit thread: {e}"))?;
        Ok(Db {
            path,
            writer,
            group,
            readers,
            _lock: lock,
            identity,
            stop,
            replication,
            watch,
        })
    }

    /// Whoever wants to hear of changed sync counters or users listens here.
    pub(crate) fn watch(&self) -> &Watch {
        &self.watch
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Litestream as last heard by the poller.
    pub(crate) fn replication(&self) -> &Monitor {
        &self.replication
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: SQLite rolled back
        // the open transaction when the Transaction was dropped during unwinding.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer; commits on `Ok`.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = match f(&tx) {
            Ok(v) => tx.commit().map(|()| v).map_err(Error::from),
            Err(e) => {
                drop(tx); // rolls back
                Err(e)
            }
        };
        self.watch.after(&conn);
        out
    }

    /// [`Db::write`] through the group-commit thread (`group.rs`): jobs queued together run
    /// in one transaction, each in its own savepoint and in the order queued; this returns the
    /// job's value once its batch committed, or its error.
    pub(crate) fn write_in_group<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.group
            .submit(job)
            .recv()
            .unwrap_or_else(|_| Err(Error::internal("the database writer stopped")))
    }

    /// [`Db::write_in_group`] without waiting: `then` gets the job's value once its batch
    /// committed, or its error. It runs on the group's thread, so it must only hand the
    /// outcome on (an HTTP answer goes to `http::later`). Dropped uncalled if the writer is
    /// gone.
    pub(crate) fn write_in_group_then<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
        then: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        self.group.submit_then(job, then);
    }

    /// [`Db::write`] for a rule that must commit what it counted even when it refuses (a wrong
    /// code, a wrong password, a reused refresh token): `f` returns its refusal as
    /// [`Outcome::Refused`], the transaction commits, and the refusal comes back as the `Err`.
    /// An `Err` from `f` itself still rolls everything back.
    pub fn write_or_refuse<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<Outcome<T>>,
    ) -> Result<T> {
        self.write(f)?.into_result()
    }

    /// Runs `f` on a pooled read-only connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.get()?;
        f(&conn)
    }

    /// Is the database usable right now? Used by `/ready` and `/health/detailed`.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if file_identity(&self.path) != self.identity {
            return Err("the database file was removed or replaced".into());
        }
        self.read(|c| {
            c.query_row("SELECT count(*) FROM schema_migrations", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(Error::from)
        })
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
    }

    pub(crate) fn journal_mode(&self) -> Result<String> {
        self.read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
    }

    /// Bytes of the main file plus its WAL.
    pub(crate) fn size_bytes(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        [self.path.clone(), PathBuf::from(wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Online, consistent copy while the server keeps serving.
    pub fn backup_to(&self, dest: &Path) -> std::result::Result<(), String> {
        let conn = self.readers.get().map_err(|e| e.to_string())?;
        backup::backup_connection(&conn, dest)
    }

    /// Folds the WAL into the main file; called at shutdown. Not with replication on: beside a
    /// running Litestream it would wait out the busy timeout, and with Litestream stopped it
    /// would make it re-upload the whole database at its next start.
    pub fn checkpoint(&self) {
        if self.replication.enabled() {
            return;
        }
        let conn = self.writer();
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            log::warn!("WAL checkpoint at shutdown failed: {e}");
        }
    }
}

/// Databases for unit tests, migrated exactly as the server's.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A fresh in-memory database with every migration applied.
    pub(crate) fn memory() -> Connection {
        let mut c = Connection::open_in_memory().expect("memory db");
        c.execute_batch("PRAGMA foreign_keys = ON")
            .expect("foreign keys");
        apply_migrations(&mut c).expect("migrations");
        c
    }

    /// A server-shaped [`Db`] (writer, readers, WAL) in a fresh folder, removed on drop.
    pub(crate) struct TempDb {
        pub(crate) db: Db,
        dir: PathBuf,
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The settings `pairs` (over the defaults), with the database in a fresh folder.
    pub(crate) fn on_disk(pairs: &[(&str, &str)]) -> (TempDb, Config) {
        let dir = std::env::temp_dir().join(format!("wealthcoach-unit-{}", crate::random::hex(8)));
        let url = dir.join("test.db").display().to_string();
        let mut all = pairs.to_vec();
        all.push(("DATABASE_URL", &url));
        let config = Config::from_pairs(&all).expect("test settings");
        let db = Db::open(&config).expect("open test db");
        (TempDb { db, dir }, config)
    }
}

#[cfg(test)]
mod build {
    use rusqlite::Connection;

    /// `.cargo/config.toml` builds SQLite without its process-wide mutexes on every allocation
    /// (memory statistics) and on every page fetch (one page cache shared by all connections,
    /// which `SQLITE_ENABLE_MEMORY_MANAGEMENT` implies). A build that lost those flags (a
    /// `LIBSQLITE3_FLAGS` of the builder's own replaces ours) fails here.
    #[test]
    fn sqlite_is_built_without_its_global_mutexes() {
        let c = Connection::open_in_memory().expect("memory db");
        let mut stmt = c.prepare("PRAGMA compile_options").expect("pragma");
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .expect("options")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
