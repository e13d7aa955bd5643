//! The upload writers open in this process: each session's writer stays open between
//! appends, so consecutive chunks stream into one staged part instead of one part (and
//! one join) per chunk, and a slot's lock serializes the session's calls here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use crate::blob::BlobWriter;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Version;
use crate::upload::UploadId;

/// An upload's blob writer kept open in this process between appends.
#[derive(Debug)]
pub(crate) struct OpenWriter {
    pub(crate) writer: Box<dyn BlobWriter>,
    /// The session record's version this writer continues; any other version means
    /// the session moved on elsewhere and the writer is stale.
    pub(crate) version: Version,
    /// Bytes durable in the session record.
    pub(crate) durable: u64,
}

/// One session's place in [`OpenWriters`]: its lock serializes the session's calls in
/// this process.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) open: Option<OpenWriter>,
}

type SlotHandle = Arc<tokio::sync::Mutex<Slot>>;

/// The upload writers open in this process, by session.
#[derive(Debug, Default)]
pub(crate) struct OpenWriters {
    slots: Mutex<HashMap<UploadId, (SlotHandle, Instant)>>,
}

impl OpenWriters {
    fn slots(&self) -> MutexGuard<'_, HashMap<UploadId, (SlotHandle, Instant)>> {
        // Each operation on the map is a single insert, lookup or remove.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the session's slot, creating it if needed. The slot returned is the one in
    /// the map: a slot removed while this call waited for it is not handed out.
    pub(crate) async fn lock(&self, id: &UploadId) -> OwnedMutexGuard<Slot> {
        loop {
            let handle = {
                let mut slots = self.slots();
                let entry = slots
                    .entry(id.clone())
                    .or_insert_with(|| (SlotHandle::default(), Instant::now()));
                entry.1 = Instant::now();
                entry.0.clone()
            };
            let guard = handle.clone().lock_owned().await;
            if self
                .slots()
                .get(id)
                .is_some_and(|(h, _)| Arc::ptr_eq(h, &handle))
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
    ) -> Result<OwnedMutexGuard<Slot>> {
        // Uncontended, no timer is involved (a runtime without one works); a wait needs
        // the runtime's time driver.
        if let Some(guard) = self.try_lock_current(id) {
            return Ok(guard);
        }
        tokio::time::timeout(wait, self.lock(id))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "upload {id} is busy with another request for more than {wait:?}: try again"
                    ),
                )
                .retryable()
            })
    }

    /// The session's slot, created if needed, if it is free right now.
    fn try_lock_current(&self, id: &UploadId) -> Option<OwnedMutexGuard<Slot>> {
        let mut slots = self.slots();
        let entry = slots
            .entry(id.clone())
            .or_insert_with(|| (SlotHandle::default(), Instant::now()));
        entry.1 = Instant::now();
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
    pub(crate) fn try_lock(&self, id: &UploadId) -> Option<OwnedMutexGuard<Slot>> {
        let handle = self.slots().get(id)?.0.clone();
        handle.try_lock_owned().ok()
    }
}
