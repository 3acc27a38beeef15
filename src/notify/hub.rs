//! In-process events for a user's open sockets (`/ws/notifications`): a write publishes,
//! every subscriber of that user receives. Nothing is kept for users with no socket open.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use serde::Serialize;

/// What a write tells the user's open notification sockets. Serialises as the frame the
/// socket sends: an object with its `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The user's data changed: `{"type":"sync","cursor"}`, a cursor covering those commits
    /// (`crate::sync::push`).
    Sync { cursor: String },
    /// A notification that was stored in the user's inbox (`crate::notifications`):
    /// `{"type": <kind>, "id": <its id>, ...payload}`, so a `budget_alert` frame carries
    /// `category`, `month`, `year`, `budget` and `actual` beside its `id`.
    #[serde(untagged)]
    Notification {
        #[serde(rename = "type")]
        kind: String,
        id: i64,
        /// Never holds `type` or `id` (`notifications::store::notify` refuses those).
        #[serde(flatten)]
        payload: serde_json::Map<String, serde_json::Value>,
    },
}

/// Per user, the live subscriptions: (subscription id, sender).
type Subscribers<E> = HashMap<String, Vec<(u64, Sender<E>)>>;

/// The hub does not look at what it carries; the app's hub carries `Event`s.
pub struct Hub<E = Event> {
    subscribers: Mutex<Subscribers<E>>,
    next_id: AtomicU64,
}

impl<E> Default for Hub<E> {
    fn default() -> Self {
        Hub {
            subscribers: Mutex::default(),
            next_id: AtomicU64::default(),
        }
    }
}

/// One socket's subscription; dropping it (the socket ended) takes it out of the hub.
///
/// Before, a closed socket's sender stayed in the user's list until the next `publish` for
/// that user, and only a budget going over its limit publishes: an app that reconnects its
/// notifications socket (every time it comes to the foreground) added an entry per
/// connection that was never removed.
pub struct Subscription<'a, E = Event> {
    hub: &'a Hub<E>,
    user: String,
    id: u64,
    events: Receiver<E>,
}

/// Reads like the `Receiver` it wraps.
impl<E> std::ops::Deref for Subscription<'_, E> {
    type Target = Receiver<E>;

    fn deref(&self) -> &Receiver<E> {
        &self.events
    }
}

impl<E> Drop for Subscription<'_, E> {
    fn drop(&mut self) {
        let mut subs = self.hub.lock();
        if let Some(list) = subs.get_mut(&self.user) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                subs.remove(&self.user);
            }
        }
    }
}

impl<E> Hub<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers<E>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<E: Clone> Hub<E> {
    pub fn subscribe(&self, user: &str) -> Subscription<'_, E> {
        let (tx, rx) = channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(user.to_string())
            .or_default()
            .push((id, tx));
        Subscription {
            hub: self,
            user: user.to_string(),
            id,
            events: rx,
        }
    }

    /// The users with at least one live subscription.
    pub(crate) fn users(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Delivers to every live subscriber of the user; forgets the ones whose socket is gone.
    pub(crate) fn publish(&self, user: &str, event: E) {
        let mut subs = self.lock();
        if let Some(list) = subs.get_mut(user) {
            list.retain(|(_, tx)| tx.send(event.clone()).is_ok());
            if list.is_empty() {
                subs.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_that_users_subscribers_hear() {
        let hub = Hub::default();
        let a = hub.subscribe("a");
        let b = hub.subscribe("b");
        hub.publish("a", json!({"type": "x"}));
        assert_eq!(a.try_recv().ok(), Some(json!({"type": "x"})));
        assert!(b.try_recv().is_err());
        drop(a);
        hub.publish("a", json!({"type": "y"}));
        assert!(hub.lock().get("a").is_none());
    }

    #[test]
    fn closed_sockets_leave_nothing_behind_without_any_publish() {
        let hub: Hub = Hub::default();
        let kept = hub.subscribe("a");
        for _ in 0..100 {
            drop(hub.subscribe("a"));
            drop(hub.subscribe("b"));
        }
        assert_eq!(hub.lock().get("a").map(Vec::len), Some(1));
        assert!(hub.lock().get("b").is_none());
        drop(kept);
        assert!(hub.lock().is_empty());
    }
}
