//! Retention: notifications are kept [`KEEP_DAYS`] days. A thread deletes older ones when the
//! server starts and then once a day (by the app's clock, so tests move it instead of waiting).

use std::sync::Arc;
use std::time::Duration;

use super::store::{self, KEEP_DAYS};
use crate::app::App;
use crate::db::Db;
use crate::error::{Error, Result};

/// Between two sweeps, in seconds of the app's clock.
pub(crate) const EVERY_SECS: i64 = 86_400;

/// After a failed sweep, the next try.
const RETRY_SECS: i64 = 3_600;

/// How often the thread looks at the clock (and at whether the server is stopping).
const TICK: Duration = Duration::from_millis(100);

/// Deletes every notification created more than [`KEEP_DAYS`] days before `now` (unix
/// seconds); how many went.
pub(crate) fn run(db: &Db, now: i64) -> Result<usize> {
    let cutoff = jiff::Timestamp::from_second(now - KEEP_DAYS * 86_400).map_err(Error::internal)?;
    let cutoff = crate::clock::iso(cutoff);
    // Sync's tombstones are kept as long (`crate::sync::TOMBSTONE_DAYS`): one daily sweep.
    let tombstones = jiff::Timestamp::from_second(now - crate::sync::TOMBSTONE_DAYS * 86_400)
        .map_err(Error::internal)?;
    let tombstones = crate::clock::iso(tombstones);
    db.write(|tx| {
        crate::sync::sweep(tx, &tombstones)?;
        store::sweep(tx, &cutoff)
    })
}

/// Starts the sweeping thread; it ends when the server stops.
pub(crate) fn spawn(app: Arc<App>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("notification-sweep".into())
        .spawn(move || {
            let mut next = app.clock.unix();
            while !app.is_stopping() {
                let now = app.clock.unix();
                if now >= next {
                    next = match run(&app.db, now) {
                        Ok(n) => {
                            if n > 0 {
                                log::info!("deleted {n} notifications older than {KEEP_DAYS} days");
                            }
                            now + EVERY_SECS
                        }
                        // A busy or full disk: try again in an hour.
                        Err(e) => {
                            log::warn!("notification sweep failed: {e:?}");
                            now + RETRY_SECS
                        }
                    };
                }
                std::thread::sleep(TICK);
            }
        })
        .map(|_| ())
}
