//! [`Clock`]: where the registry reads the time of day.
//!
//! Every time the registry records or judges by (push, pull and link times, tag moves,
//! upload expiry, garbage-collection grace, archive and restore times) comes from the
//! builder's clock, so tests and simulations can move time on instead of sleeping
//! (`testing::ManualClock` under the `testing` feature). Timeouts
//! and caches inside one process keep using the monotonic clock.

use std::fmt;
use std::time::SystemTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time in milliseconds since the Unix epoch (the unit metadata
    /// records store); 0 before the epoch.
    fn now_millis(&self) -> u64 {
        crate::util::to_millis(self.now())
    }
}

/// The operating system's clock: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
