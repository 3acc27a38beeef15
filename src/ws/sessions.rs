//! The authenticated sockets, per user and endpoint: the per-user cap (the newest socket wins,
//! the oldest is told to go) and one watcher thread that ends sockets whose token has expired
//! or whose session is over (logout everywhere, account deleted or deactivated, possibly by
//! the command line in another process, so the watcher asks the database, not in-process
//! events). A socket only reads an atomic flag on each turn of its loop; nothing polls per
//! socket.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Ended, Endpoint, Sockets};
use crate::app::App;
use crate::auth::AuthUser;
use crate::auth::tokens::TOLERANCE_SECS;
use crate::auth::users;

/// How often the watcher looks at every live socket's token and user.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(2);

const LIVE: u8 = 0;
const REPLACED: u8 = 1;
const EXPIRED: u8 = 2;
const ENDED: u8 = 3;

/// One authenticated socket as the registry and the watcher see it.
pub(crate) struct Live {
    id: u64,
    user: String,
    /// The `token_version` and expiry (unix seconds) of the token it last authenticated with.
    ver: AtomicI64,
    expires_at: AtomicI64,
    ending: AtomicU8,
}

impl Live {
    /// Why the socket must close, once someone decided it must.
    pub(crate) fn ending(&self) -> Option<Ended> {
        match self.ending.load(Ordering::Relaxed) {
            REPLACED => Some(Ended::Replaced),
            EXPIRED => Some(Ended::SessionExpired),
            ENDED => Some(Ended::SessionEnded),
            _ => None,
        }
    }

    /// The first reason given wins.
    fn end(&self, why: u8) {
        let _ = self
            .ending
            .compare_exchange(LIVE, why, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A fresh token for the same user (an in-band `authenticate`) carries the socket on.
    pub(crate) fn renew(&self, user: &AuthUser) {
        self.ver.store(user.user.token_version, Ordering::Relaxed);
        self.expires_at.store(user.expires_at, Ordering::Relaxed);
    }

    pub(crate) fn user_id(&self) -> &str {
        &self.user
    }
}

type Registry = HashMap<(String, Endpoint), Vec<Arc<Live>>>;

#[derive(Default)]
pub(crate) struct Sessions {
    /// Oldest first.
    live: Mutex<Registry>,
    next_id: AtomicU64,
}

/// A socket's place in the registry; dropping it (the socket ended) gives the place back.
pub(crate) struct Member<'a> {
    sessions: &'a Sessions,
    key: (String, Endpoint),
    live: Arc<Live>,
}

impl std::ops::Deref for Member<'_> {
    type Target = Live;

    fn deref(&self) -> &Live {
        &self.live
    }
}

impl Drop for Member<'_> {
    fn drop(&mut self) {
        let mut map = self.sessions.lock();
        if let Some(list) = map.get_mut(&self.key) {
            list.retain(|l| l.id != self.live.id);
            if list.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a newly authenticated socket. Over `cap`, the user's oldest sockets on this
    /// endpoint are told to close (4000) and stop counting at once: a phone that changed
    /// networks leaves half-open sockets behind, and refusing the new one locked the app out.
    pub(crate) fn join(&self, user: &AuthUser, endpoint: Endpoint, cap: usize) -> Member<'_> {
        let live = Arc::new(Live {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user: user.user.id.clone(),
            ver: AtomicI64::new(user.user.token_version),
            expires_at: AtomicI64::new(user.expires_at),
            ending: AtomicU8::new(LIVE),
        });
        let key = (user.user.id.clone(), endpoint);
        let mut map = self.lock();
        let list = map.entry(key.clone()).or_default();
        let over = (list.len() + 1).saturating_sub(cap.max(1));
        for old in list.drain(..over) {
            old.end(REPLACED);
        }
        list.push(live.clone());
        Member {
            sessions: self,
            key,
            live,
        }
    }

    fn snapshot(&self) -> Vec<Arc<Live>> {
        self.lock().values().flatten().cloned().collect()
    }
}

/// One look at every live socket: an expired token (past the leeway HTTP allows too), or a
/// user logged out everywhere, deleted or deactivated, ends it. One query for all users.
pub(crate) fn sweep(app: &App, sessions: &Sessions) {
    let live = sessions.snapshot();
    if live.is_empty() {
        return;
    }
    let now = app.clock.unix();
    let leeway = TOLERANCE_SECS as i64;
    let ids: HashSet<&str> = live.iter().map(|l| l.user.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let states = match app.db.read(|c| users::session_states(c, &ids)) {
        Ok(s) => s,
        Err(e) => {
            // Busy or gone for a moment: the next sweep tries again.
            log::warn!("ws: cannot check the sessions of open sockets: {e:?}");
            return;
        }
    };
    for l in &live {
        let ended = match states.get(&l.user) {
            None => true,
            Some(s) => !s.active || s.token_version != l.ver.load(Ordering::Relaxed),
        };
        if ended {
            l.end(ENDED);
        } else if now > l.expires_at.load(Ordering::Relaxed) + leeway {
            l.end(EXPIRED);
        }
    }
}

/// The watcher: a sweep every [`SWEEP_EVERY`] until the server stops.
pub(crate) fn spawn_watcher(
    app: Arc<App>,
    sockets: Arc<Sockets>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ws-sessions".into())
        .spawn(move || {
            let mut next = Instant::now() + SWEEP_EVERY;
            while !app.is_stopping() {
                std::thread::sleep(Duration::from_millis(100));
                if Instant::now() >= next {
                    sweep(&app, &sockets.sessions);
                    next = Instant::now() + SWEEP_EVERY;
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::User;

    fn user(id: &str) -> AuthUser {
        AuthUser {
            user: User {
                id: id.into(),
                mobile_e164: None,
                mobile_display: None,
                email: None,
                full_name: String::new(),
                password_hash: None,
                is_active: true,
                token_version: 0,
                created_at: String::new(),
                updated_at: String::new(),
            },
            jti: "j".into(),
            expires_at: 100,
        }
    }

    #[test]
    fn the_newest_wins_and_the_oldest_are_told_to_go() {
        let s = Sessions::default();
        let a = s.join(&user("u"), Endpoint::Chat, 2);
        let b = s.join(&user("u"), Endpoint::Chat, 2);
        let other = s.join(&user("u"), Endpoint::Notifications, 2);
        assert!(a.ending().is_none() && b.ending().is_none());
        let c = s.join(&user("u"), Endpoint::Chat, 2);
        assert_eq!(a.ending(), Some(Ended::Replaced));
        assert!(b.ending().is_none() && c.ending().is_none() && other.ending().is_none());
        let d = s.join(&user("u"), Endpoint::Chat, 2);
        assert_eq!(b.ending(), Some(Ended::Replaced));
        assert!(c.ending().is_none() && d.ending().is_none());
        // A replaced socket leaving does not take a live one's place with it.
        drop(a);
        drop(b);
        assert_eq!(s.snapshot().len(), 3);
        drop((c, d, other));
        assert!(s.lock().is_empty());
    }

    #[test]
    fn the_first_reason_wins() {
        let s = Sessions::default();
        let a = s.join(&user("u"), Endpoint::Chat, 1);
        a.end(EXPIRED);
        a.end(ENDED);
        assert_eq!(a.ending(), Some(Ended::SessionExpired));
    }
}
