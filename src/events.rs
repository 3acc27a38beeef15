//! In-process events for a user's open sockets (`/ws/notifications`): a write publishes,
//! every subscriber of that user receives. Nothing is kept for users with no socket open.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use serde_json::Value;

#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<HashMap<String, Vec<Sender<Value>>>>,
}

impl Hub {
    pub fn subscribe(&self, user: &str) -> Receiver<Value> {
        let (tx, rx) = channel();
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.entry(user.to_string()).or_default().push(tx);
        rx
    }

    /// Delivers to every live subscriber of the user; forgets the ones whose socket is gone.
    pub fn publish(&self, user: &str, event: Value) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = subs.get_mut(user) {
            list.retain(|tx| tx.send(event.clone()).is_ok());
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
        assert!(hub.subscribers.lock().expect("lock").get("a").is_none());
    }
}
