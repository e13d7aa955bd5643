//! Logical sizes of encoded blobs, remembered by digest.
//!
//! An encoded object keeps its logical size in its footer, so learning it takes a read
//! of the object's end. A digest names its bytes, so their size never changes: once
//! read, a stat needs only to learn that the object is still there, from its metadata.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::digest::Digest;

/// Sizes remembered at most; past it the map starts again (a re-read costs one ranged
/// read). About 100 bytes each.
const CAPACITY: usize = 1 << 16;

/// Logical sizes of encoded blobs read so far.
#[derive(Debug, Default)]
pub(super) struct LogicalSizes {
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl LogicalSizes {
    pub(super) fn get(&self, digest: &Digest) -> Option<u64> {
        self.lock().get(digest).copied()
    }

    pub(super) fn remember(&self, digest: &Digest, size: u64) {
        let mut sizes = self.lock();
        if sizes.len() >= CAPACITY {
            sizes.clear();
        }
        sizes.insert(digest.clone(), size);
    }

    /// Forgets `digest`: its object is being removed, and one stored again may have
    /// been read from a footer that was damaged.
    pub(super) fn forget(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, u64>> {
        self.sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
