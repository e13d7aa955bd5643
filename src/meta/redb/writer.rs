//! The store's writer: group commits on a thread of their own, and relaxed batches held
//! in the [`Overlay`] until the next commit takes them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::overlay::Overlay;
use super::{COUNTERS, ENTRIES, LAST_VERSION, db_error, decode};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Durability, Version, Versioned, Write, conflict, expectation_holds};

/// Most batches joined in one transaction.
const GROUP_LIMIT: usize = 256;

/// The writes of one `batch` (one write, for `put` and `delete`).
pub(super) struct Batch {
    pub(super) writes: Vec<Write>,
    pub(super) durability: Durability,
}

/// A batch waiting for the next group commit.
struct PendingBatch {
    batch: Batch,
    answer: oneshot::Sender<BatchOutcome>,
}

/// One batch's outcome: the version of each write, or why it did not apply.
pub(super) type BatchOutcome = Result<Vec<Option<Version>>>;

/// What the writer thread and callers share.
#[derive(Debug)]
pub(super) struct Shared {
    /// The last version handed out; held while the store's contents change (a
    /// transaction open, or a relaxed batch joining the overlay), so every change
    /// sees the one before it whole.
    changing: Mutex<u64>,
    /// Relaxed writes no transaction holds yet; taken only inside `changing` to write,
    /// and by readers alone to read.
    pub(super) overlay: Mutex<Overlay>,
    /// Whether a relaxed write may not be durable yet: set as one joins the overlay or
    /// an unsynced commit takes it, cleared by a synced commit; written inside
    /// `changing`.
    unsynced: AtomicBool,
    commits: AtomicU64,
    synced: AtomicU64,
}

impl Shared {
    pub(super) fn overlay(&self) -> MutexGuard<'_, Overlay> {
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn commits(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.synced.load(Ordering::Relaxed),
        )
    }
}

/// The thread that owns the database's writer, and what it shares with callers.
#[derive(Debug)]
pub(super) struct GroupWriter {
    queue: Option<mpsc::Sender<PendingBatch>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub(super) shared: Arc<Shared>,
}

impl GroupWriter {
    /// Starts the writer of `db`, whose versions so far end at `last_version`.
    pub(super) fn start(db: Arc<Database>, last_version: u64) -> Result<Self> {
        let (queue, waiting) = mpsc::channel();
        let shared = Arc::new(Shared {
            changing: Mutex::new(last_version),
            overlay: Mutex::new(Overlay::default()),
            unsynced: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            synced: AtomicU64::new(0),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wharf-meta-commit".into())
            .spawn(move || commit_groups(&db, &waiting, &theirs))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Storage,
                    format!("starting the metadata writer: {e}"),
                )
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            shared,
        })
    }

    /// Applies `batch`: relaxed, into the overlay when no commit is under way and it has
    /// room; otherwise in the next group commit, answered once that commit is durable
    /// (or done, for a relaxed batch).
    pub(super) async fn write(&self, db: &Database, batch: Batch) -> BatchOutcome {
        if batch.durability == Durability::Relaxed
            && let Ok(mut last) = self.shared.changing.try_lock()
        {
            let mut overlay = self.shared.overlay();
            if overlay.has_room() {
                let held = hold(db, &mut overlay, &mut last, batch.writes);
                if held.is_ok() {
                    self.shared.unsynced.store(true, Ordering::Release);
                }
                return held;
            }
        }
        let stopped = || Error::new(ErrorKind::Storage, "the metadata writer stopped");
        let (answer, answered) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(PendingBatch { batch, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Makes every relaxed write so far durable: at once if no write is pending, else
    /// by a synced commit (of nothing more, unless other batches join it).
    pub(super) async fn sync(&self, db: &Database) -> Result<()> {
        if !self.shared.unsynced.load(Ordering::Acquire) {
            return Ok(());
        }
        let nothing = Batch {
            writes: Vec::new(),
            durability: Durability::Durable,
        };
        self.write(db, nothing).await.map(drop)
    }
}

impl Drop for GroupWriter {
    /// Closes the queue and waits for the thread (which commits what the overlay holds),
    /// so the database is closed (and another process may open it) once the last handle
    /// is gone.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A relaxed batch into the overlay: its expectations checked against the overlay,
/// then the database (no transaction is open: the caller holds `changing`).
fn hold(db: &Database, overlay: &mut Overlay, last: &mut u64, writes: Vec<Write>) -> BatchOutcome {
    let txn = db.begin_read().map_err(|e| db_error("begin read", e))?;
    let entries = txn
        .open_table(ENTRIES)
        .map_err(|e| db_error("open table", e))?;
    for write in &writes {
        let key = write.key();
        let current = match overlay.version(key) {
            Some(held) => held,
            None => match entries.get(key).map_err(|e| db_error("get", e))? {
                Some(raw) => Some(decode(key, raw.value())?.version),
                None => None,
            },
        };
        if !expectation_holds(write.expect(), current) {
            return Err(conflict(key, write.expect(), current));
        }
    }
    let mut versions = Vec::with_capacity(writes.len());
    for write in writes {
        // A removal takes a version too: the overlay's stamp tells whether a database
        // holds it (see `Overlay`).
        *last += 1;
        match write {
            Write::Put { key, value, .. } => {
                let version = Version::new(*last);
                overlay.record(key, Some(Versioned { version, value }), *last);
                versions.push(Some(version));
            }
            Write::Delete { key, .. } => {
                overlay.record(key, None, *last);
                versions.push(None);
            }
        }
    }
    Ok(versions)
}

/// The writer thread: waits for a write, takes every other one waiting, commits them as
/// one transaction, answers each; until every handle is gone, when it commits what the
/// overlay still holds.
fn commit_groups(db: &Database, waiting: &mpsc::Receiver<PendingBatch>, shared: &Shared) {
    while let Ok(first) = waiting.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let batches: Vec<&Batch> = group.iter().map(|pending| &pending.batch).collect();
        match commit_group(db, &batches, shared, false) {
            Ok(outcomes) => {
                for (write, outcome) in group.into_iter().zip(outcomes) {
                    let _ = write.answer.send(outcome);
                }
            }
            Err(failed) => {
                for write in group {
                    let error = Error::new(failed.kind(), failed.message().to_owned());
                    let _ = write.answer.send(Err(error));
                }
            }
        }
    }
    if !shared.overlay().is_empty()
        && let Err(e) = commit_group(db, &[], shared, true)
    {
        tracing::warn!(error = %e, "metadata writes held in memory were lost at close");
    }
}

/// Writes what the overlay holds, then applies `group` in order, in one transaction,
/// and commits it (synced if `sync` or any batch is durable), counting the commit:
/// each batch's own outcome (a compare-and-swap that did not hold fails that batch
/// alone), or the error that failed them all (the overlay then keeps its writes).
fn commit_group(
    db: &Database,
    group: &[&Batch],
    shared: &Shared,
    sync: bool,
) -> Result<Vec<BatchOutcome>> {
    let mut last = shared.changing.lock().unwrap_or_else(|p| p.into_inner());
    // Nothing joins the overlay while `changing` is held, so these are all of it.
    let held = shared.overlay().snapshot();
    let mut txn = db.begin_write().map_err(|e| db_error("begin", e))?;
    // A group of relaxed batches only is not synced: the next synced commit carries it.
    let synced = sync || group.iter().any(|b| b.durability == Durability::Durable);
    if !synced {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| db_error("relaxed durability", e))?;
    }
    store_held(&txn, &held)?;
    let mut outcomes = Vec::with_capacity(group.len());
    for batch in group {
        outcomes.push(apply(&txn, batch, &mut last)?);
    }
    txn.open_table(COUNTERS)
        .map_err(|e| db_error("open table", e))?
        .insert(LAST_VERSION, *last)
        .map_err(|e| db_error("insert", e))?;
    shared.overlay().begin_commit();
    let committed = txn.commit();
    let mut overlay = shared.overlay();
    if let Err(e) = committed {
        overlay.commit_failed();
        return Err(db_error("commit", e));
    }
    // Readers find these in the database from now on.
    overlay.clear();
    drop(overlay);
    shared.unsynced.store(!synced, Ordering::Release);
    shared.commits.fetch_add(1, Ordering::Relaxed);
    shared
        .synced
        .fetch_add(u64::from(synced), Ordering::Relaxed);
    Ok(outcomes)
}

/// The overlay's writes, with the versions they were given.
fn store_held(txn: &WriteTransaction, held: &[(String, Option<Versioned>)]) -> Result<()> {
    let mut entries = txn
        .open_table(ENTRIES)
        .map_err(|e| db_error("open table", e))?;
    let mut record = Vec::new();
    for (key, value) in held {
        match value {
            Some(value) => {
                encode_into(&mut record, value.version, &value.value);
                entries
                    .insert(key.as_str(), record.as_slice())
                    .map_err(|e| db_error("insert", e))?;
            }
            None => {
                entries
                    .remove(key.as_str())
                    .map_err(|e| db_error("remove", e))?;
            }
        }
    }
    Ok(())
}

/// A stored record: the version (8 bytes, little-endian), then the value.
fn encode_into(record: &mut Vec<u8>, version: Version, value: &[u8]) {
    record.clear();
    record.extend_from_slice(&version.get().to_le_bytes());
    record.extend_from_slice(value);
}

/// One batch within a group's transaction: `Ok(Err(..))` when an expectation does not
/// hold or a key's record is corrupt (which fails that batch alone, before it changed
/// anything), `Err` when the database failed (which fails the group).
fn apply(txn: &WriteTransaction, batch: &Batch, last: &mut u64) -> Result<BatchOutcome> {
    let mut entries = txn
        .open_table(ENTRIES)
        .map_err(|e| db_error("open table", e))?;
    // Every expectation first (keys are distinct, so no write affects another's check).
    for write in &batch.writes {
        let key = write.key();
        let current = match entries.get(key).map_err(|e| db_error("get", e))? {
            Some(raw) => match decode(key, raw.value()) {
                Ok(stored) => Some(stored.version),
                Err(corrupt) => return Ok(Err(corrupt)),
            },
            None => None,
        };
        if !expectation_holds(write.expect(), current) {
            return Ok(Err(conflict(key, write.expect(), current)));
        }
    }
    let mut versions = Vec::with_capacity(batch.writes.len());
    let mut record = Vec::new();
    for write in &batch.writes {
        match write {
            Write::Put { key, value, .. } => {
                *last += 1;
                encode_into(&mut record, Version::new(*last), value);
                entries
                    .insert(key.as_str(), record.as_slice())
                    .map_err(|e| db_error("insert", e))?;
                versions.push(Some(Version::new(*last)));
            }
            Write::Delete { key, .. } => {
                entries
                    .remove(key.as_str())
                    .map_err(|e| db_error("remove", e))?;
                versions.push(None);
            }
        }
    }
    Ok(Ok(versions))
}
