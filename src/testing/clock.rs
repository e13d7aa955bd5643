//! [`ManualClock`]: time that moves only when a test says so.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::clock::Clock;

/// A [`Clock`] that stands still until [`ManualClock::advance`] or [`ManualClock::set`]
/// moves it, so tests of expiry, grace periods and pull times need not sleep.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use wharf::Clock;
/// use wharf::testing::ManualClock;
///
/// let clock = ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now_millis(), 1_060_000);
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    /// A clock standing at `time`.
    pub fn at(time: SystemTime) -> Self {
        Self(Mutex::new(time))
    }

    /// A clock standing at the system's time now.
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    /// Moves the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock to `time` (backwards too, to test clock skew).
    pub fn set(&self, time: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = time;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
