//! The one source of time. Tests move it forward instead of sleeping (OTP expiry, lockouts).

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Default)]
pub struct Clock {
    /// Seconds added to the system time; only tests change it.
    offset_secs: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> jiff::Timestamp {
        let offset = jiff::SignedDuration::from_secs(self.offset_secs.load(Ordering::Relaxed));
        jiff::Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    }

    /// Unix seconds.
    pub fn unix(&self) -> i64 {
        self.now().as_second()
    }

    /// ISO 8601 UTC with `Z`, to the second: the contract's timestamp format.
    pub fn iso(&self) -> String {
        iso(self.now())
    }

    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// `2025-10-18T00:00:00Z`.
pub(crate) fn iso(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_has_z_and_no_fraction() {
        let t = jiff::Timestamp::from_second(1_760_745_600).expect("valid");
        assert_eq!(iso(t), "2025-10-18T00:00:00Z");
    }

    #[test]
    fn advance_moves_now() {
        let c = Clock::default();
        let before = c.unix();
        c.advance(3600);
        assert!(c.unix() - before >= 3600);
    }
}
