//! Online backup and checked restore.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, backup::Backup};

fn tmp_beside(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(name)
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

/// Copies the database behind `conn` page by page (consistent even while others write) into a
/// temporary file, checks it, then renames it to `dest`, so `dest` is never half-written.
pub fn backup_connection(conn: &Connection, dest: &Path) -> Result<(), String> {
    let tmp = tmp_beside(dest);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut out = Connection::open(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        {
            let b = Backup::new(conn, &mut out).map_err(|e| format!("backup: {e}"))?;
            // Small steps with pauses so a writer is never starved during a long copy.
            b.run_to_completion(256, Duration::from_millis(2), None)
                .map_err(|e| format!("backup: {e}"))?;
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

/// `wealthcoach backup <file>`: works while the server runs (WAL lets us read beside it).
pub fn backup_to(db: &Path, dest: &Path) -> Result<(), String> {
    if !db.exists() {
        return Err(format!("{}: no database there", db.display()));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{}: {e}", db.display()))?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(|e| e.to_string())?;
    backup_connection(&conn, dest)
}

/// `wealthcoach restore <file>`: refuses a damaged file and a running server, keeps the
/// current database aside as `<db>.pre-restore-<unix time>`, then puts the copy in place.
/// Returns where the previous database was kept, if there was one.
pub fn restore_from(db: &Path, src: &Path) -> Result<Option<PathBuf>, String> {
    integrity_check(src)?;
    let _lock = super::take_lock(db).map_err(|e| format!("{e}; stop the server first"))?;
    let stamp = jiff::Timestamp::now().as_second();
    let mut kept = None;
    if db.exists() {
        let mut aside = db.as_os_str().to_owned();
        aside.push(format!(".pre-restore-{stamp}"));
        let aside = PathBuf::from(aside);
        // Fold any WAL into the old file first so the kept copy is complete on its own.
        if let Ok(c) = Connection::open(db) {
            let _ = c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        }
        std::fs::rename(db, &aside).map_err(|e| format!("cannot move the old database: {e}"))?;
        kept = Some(aside);
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    let tmp = tmp_beside(db);
    std::fs::copy(src, &tmp).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    std::fs::rename(&tmp, db).map_err(|e| format!("cannot put the copy in place: {e}"))?;
    integrity_check(db)?;
    Ok(kept)
}
