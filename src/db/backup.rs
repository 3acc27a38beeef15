//! Online backup and checked restore.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

fn tmp_beside(dest: &Path) -> PathBuf {
    with_suffix(dest, &format!(".tmp-{}", std::process::id()))
}

/// `PRAGMA integrity_check` on a file, opened read-only.
pub fn integrity_check(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("{}: not a usable database: {e}", path.display()))?;
    if result != "ok" {
        return Err(format!(
            "{}: integrity check failed: {result}",
            path.display()
        ));
    }
    conn.query_row("SELECT count(*) FROM schema_migrations", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|_| format!("{}: not a Wealth Coach database", path.display()))?;
    Ok(())
}

/// Copies every page in one step, i.e. inside one read transaction on the source.
///
/// The copy used to go in steps of 256 pages with pauses between them. SQLite restarts such a
/// backup from page one whenever another connection commits between two steps, so under a
/// steady stream of writes a database of more than a few hundred pages never finished backing
/// up (`wealthcoach backup` hung; tests/cli.rs found it). The database is always in WAL mode,
/// where a reader does not block writers, so one step holds nobody up: the server keeps
/// committing to the WAL while the copy reads its snapshot.
fn copy_all_pages(b: &Backup<'_, '_>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match b.step(-1).map_err(|e| format!("backup: {e}"))? {
            StepResult::Done => return Ok(()),
            // Only while a lock cannot be had (e.g. a checkpoint is resetting the WAL).
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return Err("backup: the database stayed locked for 60 s".into()),
        }
    }
}

/// Copies the database behind `conn` page by page (consistent even while others write) into a
/// temporary file, checks it, then renames it to `dest`, so `dest` is never half-written.
pub(crate) fn backup_connection(conn: &Connection, dest: &Path) -> Result<(), String> {
    let tmp = tmp_beside(dest);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut out = Connection::open(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        {
            let b = Backup::new(conn, &mut out).map_err(|e| format!("backup: {e}"))?;
            copy_all_pages(&b)?;
        }
        // The copy is a plain rollback-journal file: one self-contained file to ship.
        out.execute_batch("PRAGMA journal_mode = DELETE;")
            .map_err(|e| format!("backup: {e}"))?;
        drop(out);
        integrity_check(&tmp)?;
        std::fs::rename(&tmp, dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `path` + `suffix`, e.g. the `-wal` file beside a database.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where `p` really points: symlinks and `.`/`..` resolved, also for a file not there yet.
fn resolved(p: &Path) -> Option<PathBuf> {
    if let Ok(full) = std::fs::canonicalize(p) {
        return Some(full);
    }
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = std::fs::canonicalize(dir.unwrap_or(Path::new("."))).ok()?;
    Some(dir.join(p.file_name()?))
}

/// Is `other` the database or one of the files kept beside it (WAL, shared memory, lock)?
fn is_database_file(db: &Path, other: &Path) -> bool {
    let (Some(db), Some(other)) = (resolved(db), resolved(other)) else {
        return false;
    };
    ["", "-wal", "-shm", ".lock"]
        .iter()
        .any(|suffix| with_suffix(&db, suffix) == other)
}

/// `wealthcoach backup <file>`: works while the server runs (WAL lets us read beside it).
pub fn backup_to(db: &Path, dest: &Path) -> Result<(), String> {
    if !db.exists() {
        return Err(format!("{}: no database there", db.display()));
    }
    // Renaming the finished copy onto the database (or its WAL) would swap the file under a
    // running server, whose later writes then go to a deleted inode and are lost.
    if is_database_file(db, dest) {
        return Err(format!(
            "{} is the database itself (or a file beside it); back up to another file",
            dest.display()
        ));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(|e| e.to_string())?;
    backup_connection(&conn, dest)
}

/// Renames a database together with its WAL, which may hold committed pages.
fn move_with_wal(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
    let wal = with_suffix(from, "-wal");
    if wal.exists() {
        std::fs::rename(&wal, with_suffix(to, "-wal"))
            .map_err(|e| format!("cannot move {}: {e}", wal.display()))?;
    }
    // Shared memory is rebuilt from the WAL; a stale one must not sit beside the new file.
    let _ = std::fs::remove_file(with_suffix(from, "-shm"));
    Ok(())
}

/// Moves the current database to `<db>.pre-restore-<unix time>`. A second restore within the
/// same second gets `-2`, `-3`, ... instead of overwriting the first one's kept copy (a rename
/// replaces its target, so the original database would be gone).
fn set_aside(db: &Path) -> Result<PathBuf, String> {
    // Fold any WAL into the old file first so the kept copy is complete on its own.
    if let Ok(c) = Connection::open(db) {
        let _ = c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }
    let base = with_suffix(
        db,
        &format!(".pre-restore-{}", jiff::Timestamp::now().as_second()),
    );
    let mut aside = base.clone();
    let mut n = 1;
    while aside.exists() || with_suffix(&aside, "-wal").exists() {
        n += 1;
        aside = with_suffix(&base, &format!("-{n}"));
    }
    move_with_wal(db, &aside)?;
    Ok(aside)
}

/// Litestream's local state beside a database: `.<name>-litestream/`.
fn litestream_dir(db: &Path) -> Option<PathBuf> {
    let name = db.file_name()?.to_string_lossy();
    Some(
        db.parent()
            .unwrap_or(Path::new(""))
            .join(format!(".{name}-litestream")),
    )
}

/// `wealthcoach restore <file>`: refuses a damaged file, a running server and a running
/// Litestream (its control socket `litestream_socket` answers), keeps the current database
/// aside as `<db>.pre-restore-<unix time>`, then puts the copy in place and removes
/// Litestream's local state for the old file (what `litestream reset` does), so its next start
/// takes a clean snapshot of the restored one. Returns where the previous database was kept,
/// if there was one.
pub fn restore_from(
    db: &Path,
    src: &Path,
    litestream_socket: &Path,
) -> Result<Option<PathBuf>, String> {
    // Restoring the database onto itself used to move it aside and then fail to copy the
    // (moved) source, leaving nothing at DATABASE_URL for the next start to notice.
    if is_database_file(db, src) {
        return Err(format!(
            "{} is the database itself; restore from a backup file",
            src.display()
        ));
    }
    integrity_check(src)?;
    let _lock = super::take_lock(db).map_err(|e| format!("{e}; stop the server first"))?;
    // Replacing the file under a running Litestream would have it replicate a mix of both.
    if crate::replication::answers(litestream_socket) {
        return Err(format!(
            "Litestream is running (its control socket {} answers); stop it first \
             (systemctl stop wealthcoach-replicate); the database is unchanged",
            litestream_socket.display()
        ));
    }
    // Stage and check the copy beside the database before anything moves, so a copy that
    // fails (disk full, unreadable file) leaves the current database where it was.
    let tmp = tmp_beside(db);
    let staged = std::fs::copy(src, &tmp)
        .map_err(|e| format!("cannot copy {}: {e}", src.display()))
        .and_then(|_| integrity_check(&tmp))
        .and_then(|()| new_sync_epoch(&tmp));
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&tmp, suffix));
    }
    let kept = staged.and_then(|()| db.exists().then(|| set_aside(db)).transpose());
    let kept = match kept {
        Ok(k) => k,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, db) {
        // Put the old database back rather than leave nothing in its place.
        let back = match &kept {
            Some(aside) => move_with_wal(aside, db).err(),
            None => None,
        };
        let _ = std::fs::remove_file(&tmp);
        return Err(match back {
            None => format!("cannot put the copy in place: {e}; the database is unchanged"),
            Some(b) => format!("cannot put the copy in place: {e}; and {b}"),
        });
    }
    if let Some(dir) = litestream_dir(db).filter(|d| d.exists())
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        return Err(format!(
            "restored, but could not remove Litestream's state {}: {e}; remove it before \
             starting Litestream",
            dir.display()
        ));
    }
    Ok(kept)
}

/// A new sync epoch (`sync_meta`, see `crate::sync`) in the staged copy before it goes in
/// place, so every cursor handed out before the restore is refused with 410 `cursor_reset`
/// rather than silently skipping what the restore took back. A copy from before sync existed
/// has no such table: its migration writes a fresh epoch anyway.
fn new_sync_epoch(path: &Path) -> Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_meta')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if has_table {
        conn.execute(
            "UPDATE sync_meta SET epoch = lower(hex(randomblob(8))) WHERE id = 1",
            [],
        )
        .map_err(|e| format!("cannot renew the sync epoch in {}: {e}", path.display()))?;
    }
    conn.close()
        .map_err(|(_, e)| format!("{}: {e}", path.display()))
}

/// Beside a database that `deploy/replica-restore` has just brought back from the Litestream
/// replica: the server renews the sync epoch at its next start, then removes the marker.
pub(crate) fn replica_restored_marker(db: &Path) -> PathBuf {
    with_suffix(db, ".replica-restored")
}

/// A database restored from the replica carries the lost VM's sync epoch, and the writes lost
/// with the VM (up to about a second) handed out counter values that new writes will hand out
/// again with other content: a client that pulled one of them would skip the new ones. A new
/// epoch makes every cursor from before the loss a 410 `cursor_reset` instead.
pub(crate) fn renew_epoch_after_replica_restore(
    conn: &rusqlite::Connection,
    db: &Path,
) -> Result<(), String> {
    let marker = replica_restored_marker(db);
    if !marker.exists() {
        return Ok(());
    }
    conn.execute(
        "UPDATE sync_meta SET epoch = lower(hex(randomblob(8))) WHERE id = 1",
        [],
    )
    .map_err(|e| format!("cannot renew the sync epoch after a replica restore: {e}"))?;
    std::fs::remove_file(&marker)
        .map_err(|e| format!("cannot remove {}: {e}", marker.display()))?;
    log::info!("restored from the replica: new sync epoch, every client pulls again");
    Ok(())
}

/// `wealthcoach backup-rotate <dir>`: a new `wealthcoach-<UTC time>.db` in `dir`, checked like
/// every backup, then only the newest `keep` such files are kept. Returns the new file.
pub fn backup_rotate(db: &Path, dir: &Path, keep: usize) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let dest = dir.join(format!("wealthcoach-{stamp}.db"));
    backup_to(db, &dest)?;
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wealthcoach-") && n.ends_with(".db"))
        })
        .collect();
    // The names sort by time.
    backups.sort();
    let excess = backups.len().saturating_sub(keep.max(1));
    for old in &backups[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            log::warn!("could not remove old backup {}: {e}", old.display());
        }
    }
    Ok(dest)
}
