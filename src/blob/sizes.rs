//! Sizes of encoded blobs, remembered by digest.
//!
//! An encoded object keeps its logical size in its footer, so learning it takes a read
//! of the object's end. A digest names its bytes, so their size never changes: once
//! read, a stat needs only the object's metadata, and trusts the remembered size while
//! the object's stored size is the one it was read with. A read that authenticates the
//! footer remembers what it found, so a size first read from a damaged footer does not
//! outlive the next read of the blob.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::digest::Digest;

/// Sizes remembered at most; past it the map starts again (a re-read costs one ranged
/// read). About 100 bytes each.
const CAPACITY: usize = 1 << 16;

/// A blob's logical size, and the stored size of the object it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sizes {
    pub(super) logical: u64,
    pub(super) stored: u64,
}

/// Sizes of encoded blobs read so far.
#[derive(Debug, Default)]
pub(super) struct LogicalSizes {
    sizes: Mutex<HashMap<Digest, Sizes>>,
}

impl LogicalSizes {
    pub(super) fn get(&self, digest: &Digest) -> Option<Sizes> {
        self.lock().get(digest).copied()
    }

    pub(super) fn remember(&self, digest: &Digest, sizes: Sizes) {
        let mut map = self.lock();
        if map.len() >= CAPACITY && !map.contains_key(digest) {
            map.clear();
        }
        map.insert(digest.clone(), sizes);
    }

    /// Forgets `digest`: its object is being removed.
    pub(super) fn forget(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Sizes>> {
        self.sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
