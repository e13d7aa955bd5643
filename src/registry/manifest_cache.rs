//! Manifests' bytes kept in memory by digest, so a hot manifest is served without reading
//! (and decoding, decrypting and hashing) its blob again.
//!
//! Safe to keep for as long as there is room: a manifest's bytes never change (the digest
//! names them), they enter only after a read verified them against the digest, and a
//! read still goes through the manifest's record first, so what is deleted or was never
//! pushed to a repository is not served from here. Bounded by bytes; the oldest entries
//! go first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::digest::Digest;

/// Bytes kept at most by default: a few thousand typical manifests.
pub(super) const DEFAULT_MANIFEST_CACHE_BYTES: usize = 32 << 20;

/// Verified manifest bytes by digest, oldest first out.
#[derive(Debug)]
pub(super) struct ManifestCache {
    capacity: usize,
    state: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    bytes: usize,
    entries: HashMap<Digest, Bytes>,
    order: VecDeque<Digest>,
}

impl ManifestCache {
    /// A cache of at most `capacity` bytes (zero: nothing is kept).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(Kept::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of `digest`, if kept.
    pub(super) fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.lock().entries.get(digest).cloned()
    }

    /// Keeps `raw`, the verified bytes of `digest`, making room by forgetting the oldest.
    pub(super) fn insert(&self, digest: &Digest, raw: &Bytes) {
        if raw.len() > self.capacity / 4 {
            return;
        }
        let mut kept = self.lock();
        if kept.entries.contains_key(digest) {
            return;
        }
        while kept.bytes + raw.len() > self.capacity {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            if let Some(gone) = kept.entries.remove(&oldest) {
                kept.bytes -= gone.len();
            }
        }
        kept.bytes += raw.len();
        kept.entries.insert(digest.clone(), raw.clone());
        kept.order.push_back(digest.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    fn manifest(n: u8, len: usize) -> (Digest, Bytes) {
        let raw = Bytes::from(vec![n; len]);
        (Digest::of(Algorithm::Sha256, &raw), raw)
    }

    #[test]
    fn keeps_what_fits_and_forgets_the_oldest_first() {
        let cache = ManifestCache::new(400);
        let (a, raw_a) = manifest(1, 100);
        let (b, raw_b) = manifest(2, 100);
        let (c, raw_c) = manifest(3, 100);
        let (d, raw_d) = manifest(4, 100);
        let (e, raw_e) = manifest(5, 100);
        for (digest, raw) in [(&a, &raw_a), (&b, &raw_b), (&c, &raw_c), (&d, &raw_d)] {
            cache.insert(digest, raw);
        }
        assert_eq!(cache.get(&a), Some(raw_a.clone()));
        cache.insert(&e, &raw_e);
        assert_eq!(cache.get(&a), None, "the oldest made room");
        assert_eq!(cache.get(&b), Some(raw_b));
        assert_eq!(cache.get(&e), Some(raw_e));
        assert_eq!(cache.lock().bytes, 400);
    }

    #[test]
    fn large_manifests_and_a_zero_capacity_keep_nothing() {
        let cache = ManifestCache::new(400);
        let (big, raw) = manifest(9, 101);
        cache.insert(&big, &raw);
        assert_eq!(cache.get(&big), None);
        let off = ManifestCache::new(0);
        let (small, raw) = manifest(1, 1);
        off.insert(&small, &raw);
        assert_eq!(off.get(&small), None);
    }
}
