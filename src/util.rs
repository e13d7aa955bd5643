//! Small helpers every layer uses: random ids and conversions of times to and from
//! milliseconds since the Unix epoch (the unit metadata records store; the time itself
//! comes from the registry's [`Clock`](crate::Clock)).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fresh random id: 128 bits as 32 lowercase hex characters.
pub(crate) fn random_id() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the operating system's random source is available");
    crate::hex::encode(&raw)
}

pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
