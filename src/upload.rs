//! Upload sessions: resumable, chunked blob uploads that survive process restarts.
//!
//! A session is a record in the metadata store (`upload/<id>`) holding the repository,
//! timestamps and the [`WriterState`] of its blob writer: the durable staged parts and
//! the hash state after them. Each append resumes the writer from that state, streams the
//! chunk into a new staged part, checkpoints, and moves the record forward by
//! compare-and-swap. So any process over the same storage can continue a session, the
//! hash is never recomputed from the staged bytes, and of two racing appends at the same
//! offset exactly one lands (the other gets the current offset back).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::blob::WriterState;
use crate::error::{Error, ErrorKind, Result};
use crate::reference::RepoName;

/// A fresh random id: 128 bits as 32 lowercase hex characters.
pub(crate) fn random_id() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the operating system's random source is available");
    crate::hex::encode(&raw)
}

/// The opaque id of an upload session.
///
/// ```
/// use wharf::UploadId;
/// assert!("../../etc".parse::<UploadId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

impl UploadId {
    pub(crate) fn generate() -> Self {
        Self(random_id())
    }

    /// The id as text, for a `Location` URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UploadId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::new(
                ErrorKind::BlobUploadUnknown,
                format!(
                    "upload {:?} is not a valid upload id",
                    crate::digest::truncate_for_message(s)
                ),
            ))
        }
    }
}

impl TryFrom<String> for UploadId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> Self {
        id.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session.
    pub id: UploadId,
    /// The repository it uploads into.
    pub repo: RepoName,
    /// Bytes received and durable: the next chunk starts here.
    pub offset: u64,
    /// When the session started.
    pub started_at: SystemTime,
    /// When the session last received bytes.
    pub updated_at: SystemTime,
}

/// The persisted session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) repo: RepoName,
    pub(crate) started_at_ms: u64,
    pub(crate) updated_at_ms: u64,
    pub(crate) writer: WriterState,
}

impl SessionRecord {
    pub(crate) fn status(&self, id: &UploadId) -> UploadStatus {
        UploadStatus {
            id: id.clone(),
            repo: self.repo.clone(),
            offset: self.writer.len(),
            started_at: from_millis(self.started_at_ms),
            updated_at: from_millis(self.updated_at_ms),
        }
    }
}

pub(crate) fn now_millis() -> u64 {
    to_millis(SystemTime::now())
}

pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// What [`Registry::expire_uploads`](crate::Registry::expire_uploads) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Sessions whose record and staged parts were removed.
    pub sessions: usize,
    /// Staging areas without a session (left by a crash) that were removed.
    pub orphaned_staging: usize,
}

/// An upload's blob writer kept open in this process between appends, so consecutive
/// chunks stream into one staged part instead of one part (and one join) per chunk.
#[derive(Debug)]
pub(crate) struct OpenWriter {
    pub(crate) writer: Box<dyn crate::blob::BlobWriter>,
    /// The session record's version this writer continues; any other version means
    /// the session moved on elsewhere and the writer is stale.
    pub(crate) version: crate::meta::Version,
    /// Bytes durable in the session record.
    pub(crate) durable: u64,
}

/// One session's place in [`OpenWriters`]: its lock serializes the session's calls in
/// this process.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) open: Option<OpenWriter>,
}

type SlotHandle = std::sync::Arc<tokio::sync::Mutex<Slot>>;

/// The upload writers open in this process, by session.
#[derive(Debug, Default)]
pub(crate) struct OpenWriters {
    slots: std::sync::Mutex<std::collections::HashMap<UploadId, (SlotHandle, std::time::Instant)>>,
}

impl OpenWriters {
    fn slots(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<UploadId, (SlotHandle, std::time::Instant)>,
    > {
        // Each operation on the map is a single insert, lookup or remove.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the session's slot, creating it if needed. The slot returned is the one in
    /// the map: a slot removed while this call waited for it is not handed out.
    pub(crate) async fn lock(&self, id: &UploadId) -> tokio::sync::OwnedMutexGuard<Slot> {
        loop {
            let handle = {
                let mut slots = self.slots();
                let entry = slots
                    .entry(id.clone())
                    .or_insert_with(|| (SlotHandle::default(), std::time::Instant::now()));
                entry.1 = std::time::Instant::now();
                entry.0.clone()
            };
            let guard = handle.clone().lock_owned().await;
            if self
                .slots()
                .get(id)
                .is_some_and(|(h, _)| std::sync::Arc::ptr_eq(h, &handle))
            {
                return guard;
            }
        }
    }

    /// [`OpenWriters::lock`], giving up after `wait`: a session busy with a chunk whose
    /// body is slow answers others in bounded time, as a retryable
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict).
    pub(crate) async fn lock_within(
        &self,
        id: &UploadId,
        wait: Duration,
    ) -> crate::Result<tokio::sync::OwnedMutexGuard<Slot>> {
        // Uncontended, no timer is involved (a runtime without one works); a wait needs
        // the runtime's time driver.
        if let Some(guard) = self.try_lock_current(id) {
            return Ok(guard);
        }
        tokio::time::timeout(wait, self.lock(id))
            .await
            .map_err(|_| {
                crate::Error::new(
                    crate::ErrorKind::Conflict,
                    format!(
                        "upload {id} is busy with another request for more than {wait:?}: try again"
                    ),
                )
                .retryable()
            })
    }

    /// The session's slot, created if needed, if it is free right now.
    fn try_lock_current(&self, id: &UploadId) -> Option<tokio::sync::OwnedMutexGuard<Slot>> {
        let mut slots = self.slots();
        let entry = slots
            .entry(id.clone())
            .or_insert_with(|| (SlotHandle::default(), std::time::Instant::now()));
        entry.1 = std::time::Instant::now();
        entry.0.clone().try_lock_owned().ok()
    }

    /// Forgets a session's slot (its guard must be held, so no one else uses it).
    pub(crate) fn remove(&self, id: &UploadId) {
        self.slots().remove(id);
    }

    /// Number of sessions with a slot.
    pub(crate) fn len(&self) -> usize {
        self.slots().len()
    }

    /// Sessions with a slot, least recently used first.
    pub(crate) fn by_age(&self) -> Vec<UploadId> {
        let mut ids: Vec<_> = self
            .slots()
            .iter()
            .map(|(id, (_, used))| (*used, id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Locks a session's slot only if it exists and is free right now.
    pub(crate) fn try_lock(&self, id: &UploadId) -> Option<tokio::sync::OwnedMutexGuard<Slot>> {
        let handle = self.slots().get(id)?.0.clone();
        handle.try_lock_owned().ok()
    }
}
