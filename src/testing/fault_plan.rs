//! When a fault-injecting wrapper ([`FaultyStore`](super::FaultyStore),
//! [`FaultyMeta`](super::FaultyMeta)) fails: the operation count and the armed fault they
//! share the shape of.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How a [`FaultyStore`](super::FaultyStore) or [`FaultyMeta`](super::FaultyMeta) fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Only the chosen operation fails; later ones succeed (a transient error).
    FailOnce,
    /// The chosen operation and every later one fail, as if the process died there.
    Crash,
}

/// Operations counted since arming, and the one that fails (`usize::MAX`: none).
#[derive(Debug)]
pub(super) struct FaultPlan {
    ops: AtomicUsize,
    fail_at: AtomicUsize,
    crash: AtomicBool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            ops: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(usize::MAX),
            crash: AtomicBool::new(false),
        }
    }
}

impl FaultPlan {
    /// Arms a fault at operation `fail_at`, counting from zero again.
    pub(super) fn arm(&self, fail_at: usize, mode: FaultMode) {
        self.ops.store(0, Ordering::SeqCst);
        self.crash.store(mode == FaultMode::Crash, Ordering::SeqCst);
        self.fail_at.store(fail_at, Ordering::SeqCst);
    }

    /// Every operation succeeds again.
    pub(super) fn disarm(&self) {
        self.fail_at.store(usize::MAX, Ordering::SeqCst);
    }

    /// Operations counted since the last arming.
    pub(super) fn operations(&self) -> usize {
        self.ops.load(Ordering::SeqCst)
    }

    /// Whether an armed fault has fired.
    pub(super) fn fired(&self) -> bool {
        self.operations() > self.fail_at.load(Ordering::SeqCst)
    }

    /// Counts one operation: `Some(n)`, its number, when it must fail.
    pub(super) fn strike(&self) -> Option<usize> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let fail_at = self.fail_at.load(Ordering::SeqCst);
        let crashed = self.crash.load(Ordering::SeqCst) && n > fail_at;
        (n == fail_at || crashed).then_some(n)
    }
}
