//! Who may upgrade, decided at the handshake (once the client's address is known, behind a
//! trusted proxy too): at most `WS_UPGRADES_PER_MINUTE` upgrades per address while rate
//! limiting is on, and at most `WS_MAX_PENDING_PER_IP` sockets per address that have not
//! authenticated yet, so idle unauthenticated sockets from one place cannot fill the server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::app::App;
use crate::limiter::{Quota, ip_key};

/// Unauthenticated sockets per address key.
#[derive(Default)]
pub(crate) struct Pending {
    counts: Mutex<HashMap<String, usize>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One unauthenticated socket's place in its address's count; dropped when it authenticates
/// or ends.
pub(crate) struct PendingSlot {
    pending: Arc<Pending>,
    key: String,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut map = self.pending.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Why an upgrade was refused, as the HTTP answer says it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) code: &'static str,
    pub(crate) detail: String,
    pub(crate) retry_after: u64,
    /// `X-RateLimit-*` headers: (limit, reset at).
    pub(crate) rate: Option<(u32, i64)>,
}

/// Counts the upgrade and takes a pending place, or says why not.
pub(crate) fn admit(
    app: &App,
    pending: &Arc<Pending>,
    client: IpAddr,
) -> Result<PendingSlot, Refused> {
    let key = ip_key(client);
    let c = &app.config;
    if c.rate_limit.enabled {
        let q = [Quota {
            limit: c.ws.upgrades_per_minute,
            window: 60,
        }];
        if let Err(r) = app
            .limiter
            .check(&format!("ws-upgrade:{key}"), &q, app.clock.unix())
        {
            return Err(Refused {
                code: "rate_limited",
                detail: format!(
                    "Too many WebSocket connections; try again in {} seconds",
                    r.retry_after
                ),
                retry_after: r.retry_after.max(1) as u64,
                rate: Some((r.limit, r.reset_at)),
            });
        }
    }
    let mut map = pending.lock();
    let n = map.entry(key.clone()).or_insert(0);
    if *n >= c.ws.max_pending_per_ip {
        return Err(Refused {
            code: "too_many_pending",
            detail: "Too many unauthenticated WebSocket connections from this address".into(),
            // A pending socket authenticates or is closed within the auth timeout.
            retry_after: c.ws.auth_timeout.as_secs().max(1),
            rate: None,
        });
    }
    *n += 1;
    Ok(PendingSlot {
        pending: pending.clone(),
        key,
    })
}
