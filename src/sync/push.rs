//! The `{"type":"sync","cursor"}` frame on `/ws/notifications`. Once a second, a thread reads
//! the counters of the users who have a notifications socket open (one query per 500 users)
//! and tells each user whose counter moved since the last look. So the frame follows every
//! commit whatever wrote it (a route, the ticker, a cascade), at most one a second per user,
//! and its cursor is the counter read after those commits: a pull with it returns nothing
//! older. A user's first look only records the counter (the app pulls when it connects).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::error::Result;
use crate::notify::hub::Event;

/// Between two looks: the coalescing window.
const EVERY: Duration = Duration::from_secs(1);

/// Users per query.
const CHUNK: usize = 500;

/// The counters of `users` (0 for a user with none yet).
fn counters(app: &App, users: &[String]) -> Result<Vec<(String, i64)>> {
    let list = serde_json::to_string(users).map_err(crate::error::Error::internal)?;
    app.db.read(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT u.value, coalesce(s.seq, 0) FROM json_each(?1) u
             LEFT JOIN sync_counters s ON s.user_id = u.value",
        )?;
        let rows = stmt
            .query_map([&list], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    })
}

/// One look: publishes to each user whose counter moved; `seen` keeps the last values.
pub(crate) fn look(app: &App, seen: &mut HashMap<String, i64>) {
    let users = app.events.users();
    // A set: with thousands of sockets open, a scan of the list per entry would be quadratic.
    let open: HashSet<&String> = users.iter().collect();
    seen.retain(|u, _| open.contains(u));
    for chunk in users.chunks(CHUNK) {
        let now = match counters(app, chunk) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("sync push: cannot read counters: {e:?}");
                return;
            }
        };
        for (user, seq) in now {
            app.known.observe(&user, seq);
            match seen.insert(user.clone(), seq) {
                Some(before) if before < seq => {
                    let cursor = super::cursor::encode(&app.sync, &user, seq);
                    app.events.publish(&user, Event::Sync { cursor });
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn spawn(app: Arc<App>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sync-push".into())
        .spawn(move || {
            let mut seen = HashMap::new();
            let mut next = Instant::now() + EVERY;
            while !app.is_stopping() {
                if Instant::now() >= next {
                    look(&app, &mut seen);
                    next = Instant::now() + EVERY;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .map(|_| ())
}
