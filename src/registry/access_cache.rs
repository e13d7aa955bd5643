//! What authorization reads of a repository (its `public` switch, its tags, its policy
//! parsed), kept for a moment: every request is authorized, and reading a record and a
//! policy and parsing the policy each time costs more than the decision.
//!
//! A change made through this registry forgets the repository's entry at once; a
//! change made by another process sharing the store applies within the time to live
//! ([`RegistryBuilder::access_cache_ttl`](super::RegistryBuilder::access_cache_ttl)), as
//! IAM's own policy changes take a moment to apply everywhere. Repositories that do not
//! exist are not kept: a push that creates one is seen by the next request.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::access::Policy;
use crate::reference::RepoName;

/// Entries kept at most; beyond, stale ones go, then all.
const CAPACITY: usize = 10_000;

/// What decisions on an existing repository read from metadata.
#[derive(Debug)]
pub(super) struct RepoAccess {
    pub(super) public: bool,
    pub(super) policy: Option<Policy>,
    pub(super) tags: BTreeMap<String, String>,
}

/// Recently read [`RepoAccess`] by repository.
#[derive(Debug)]
pub(super) struct AccessCache {
    ttl: Duration,
    entries: Mutex<HashMap<RepoName, (Instant, Arc<RepoAccess>)>>,
    /// Counts changes: a read that began before one is not kept (it may have seen the
    /// old state after the change forgot it).
    changes: AtomicU64,
}

/// When a read began, and how many changes had been made then.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadStart {
    at: Instant,
    changes: u64,
}

impl AccessCache {
    /// A cache keeping entries for `ttl` (zero: nothing is kept).
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RepoName, (Instant, Arc<RepoAccess>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `repo`'s entry, if read within the time to live.
    pub(super) fn get(&self, repo: &RepoName) -> Option<Arc<RepoAccess>> {
        let entries = self.lock();
        let (at, access) = entries.get(repo)?;
        (at.elapsed() < self.ttl).then(|| access.clone())
    }

    /// Marks the start of a read whose result may be kept.
    pub(super) fn start(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            changes: self.changes.load(Ordering::SeqCst),
        }
    }

    /// Keeps `access`, read since `start` (so an entry never outlives what it saw by
    /// more than the time to live), unless a change was made meanwhile.
    pub(super) fn put(&self, repo: &RepoName, start: ReadStart, access: Arc<RepoAccess>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if self.changes.load(Ordering::SeqCst) != start.changes {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(repo.clone(), (start.at, access));
    }

    /// Forgets `repo`'s entry: its settings or policy changed here.
    pub(super) fn forget(&self, repo: &RepoName) {
        let mut entries = self.lock();
        self.changes.fetch_add(1, Ordering::SeqCst);
        entries.remove(repo);
    }
}
