//! Time, injectable: everything that compares times (session expiry, throttling windows, token
//! expiry) reads this clock, so tests can move it forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// The system clock plus an offset that only tests change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_millis: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
            + Duration::milliseconds(self.offset_millis.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward. For tests.
    pub fn advance(&self, by: Duration) {
        self.offset_millis
            .fetch_add(by.whole_milliseconds() as i64, Ordering::Relaxed);
    }
}
