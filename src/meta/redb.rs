//! The embedded metadata store on redb: the single-machine default.
//!
//! Writes are group-committed: one thread owns redb's single writer, takes every batch
//! that is waiting (a `put` or `delete` is a batch of one), applies them one after
//! another in one transaction (each with its own compare-and-swaps, as if alone, all of a
//! batch or none of it) and commits once, so concurrent writers share one durable commit
//! instead of queueing for one each. A batch is answered only after the commit that holds
//! it is durable; a failed commit fails every batch in it and applies none.
//!
//! A relaxed batch commits on the caller's thread when no commit is under way: it
//! writes nothing to disk (redb keeps its pages until the next durable commit), so it
//! takes microseconds, less than the hand-off to the writer thread and back.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::{
    Durability, Entry, Expect, MetaStore, Version, Versioned, Write, check_batch, check_key,
    conflict, expectation_holds,
};
use crate::error::{Error, ErrorKind, Result};

/// Values, each stored as its 8-byte little-endian version followed by the value bytes.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("wharf_meta");
/// One counter for all keys, so versions never repeat, even across delete and re-create.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("wharf_meta_counters");
const LAST_VERSION: &str = "last_version";

/// Most batches joined in one transaction.
const GROUP_LIMIT: usize = 256;

/// A [`MetaStore`] in one redb database file: ACID, crash-safe, one writer at a time.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wharf::{Expect, MetaStore, RedbMetaStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = RedbMetaStore::open(dir.path().join("meta.redb"))?;
/// store.put("tags/app/latest", "sha256:…".into(), Expect::Absent).await?;
/// assert_eq!(store.list_keys("tags/app/", None, 10).await?, ["tags/app/latest"]);
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct RedbMetaStore {
    db: Arc<Database>,
    writer: Arc<GroupWriter>,
}

/// The writes of one [`MetaStore::batch`] (one write, for `put` and `delete`).
struct Batch {
    writes: Vec<Write>,
    durability: Durability,
}

/// A batch waiting for the next group commit.
struct PendingBatch {
    batch: Batch,
    answer: oneshot::Sender<Result<Vec<Option<Version>>>>,
}

/// The thread that owns the database's writer, and how much it has committed.
#[derive(Debug)]
struct GroupWriter {
    queue: Option<mpsc::Sender<PendingBatch>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counts: Arc<CommitCounts>,
    /// Held while a transaction is open: by the writer thread for each group, and by a
    /// caller committing a relaxed batch in place (which only tries it).
    committing: Arc<Mutex<()>>,
}

/// Transactions the writer committed: all of them, and those synced to disk.
#[derive(Debug, Default)]
struct CommitCounts {
    all: AtomicU64,
    synced: AtomicU64,
}

impl GroupWriter {
    fn start(db: Arc<Database>) -> Result<Self> {
        let (queue, waiting) = mpsc::channel();
        let counts = Arc::new(CommitCounts::default());
        let committing = Arc::new(Mutex::new(()));
        let (counted, lock) = (counts.clone(), committing.clone());
        let thread = std::thread::Builder::new()
            .name("wharf-meta-commit".into())
            .spawn(move || commit_groups(&db, &waiting, &counted, &lock))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Storage,
                    format!("starting the metadata writer: {e}"),
                )
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counts,
            committing,
        })
    }
}

impl Drop for GroupWriter {
    /// Closes the queue and waits for the thread, so the database is closed (and another
    /// process may open it) once the last handle is gone.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for a write, takes every other one waiting, commits them as
/// one transaction, answers each; until every handle is gone.
fn commit_groups(
    db: &Database,
    waiting: &mpsc::Receiver<PendingBatch>,
    counts: &CommitCounts,
    committing: &Mutex<()>,
) {
    while let Ok(first) = waiting.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let batches: Vec<&Batch> = group.iter().map(|pending| &pending.batch).collect();
        let committed = {
            let _held = committing
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            commit_group(db, &batches, counts)
        };
        match committed {
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
}

/// Applies `group` in order in one transaction and commits it, counting the commit:
/// each batch's own outcome (a compare-and-swap that did not hold fails that batch
/// alone), or the error that failed them all. The caller holds the `committing` lock.
fn commit_group(
    db: &Database,
    group: &[&Batch],
    counts: &CommitCounts,
) -> Result<Vec<BatchOutcome>> {
    let mut txn = db.begin_write().map_err(|e| db_error("begin", e))?;
    // A group is synced if any batch in it must be; one of relaxed batches only is
    // not, and the next synced commit carries it to disk.
    let synced = group.iter().any(|b| b.durability == Durability::Durable);
    if !synced {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| db_error("relaxed durability", e))?;
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for write in group {
        outcomes.push(apply(&txn, write)?);
    }
    txn.commit().map_err(|e| db_error("commit", e))?;
    counts.all.fetch_add(1, Ordering::Relaxed);
    counts
        .synced
        .fetch_add(u64::from(synced), Ordering::Relaxed);
    Ok(outcomes)
}

/// One batch's outcome within its group.
type BatchOutcome = Result<Vec<Option<Version>>>;

/// One batch within a group's transaction: `Ok(Err(..))` when an expectation does not
/// hold or a key's record is corrupt (which fails that batch alone, before it changed
/// anything), `Err` when the database failed (which fails the group).
fn apply(txn: &WriteTransaction, batch: &Batch) -> Result<Result<Vec<Option<Version>>>> {
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
    let mut counters = txn
        .open_table(COUNTERS)
        .map_err(|e| db_error("open table", e))?;
    let mut last = counters
        .get(LAST_VERSION)
        .map_err(|e| db_error("get", e))?
        .map_or(0, |v| v.value());
    let mut versions = Vec::with_capacity(batch.writes.len());
    let mut record = Vec::new();
    for write in &batch.writes {
        match write {
            Write::Put { key, value, .. } => {
                last += 1;
                record.clear();
                record.extend_from_slice(&last.to_le_bytes());
                record.extend_from_slice(value);
                entries
                    .insert(key.as_str(), record.as_slice())
                    .map_err(|e| db_error("insert", e))?;
                versions.push(Some(Version(last)));
            }
            Write::Delete { key, .. } => {
                entries
                    .remove(key.as_str())
                    .map_err(|e| db_error("remove", e))?;
                versions.push(None);
            }
        }
    }
    counters
        .insert(LAST_VERSION, last)
        .map_err(|e| db_error("insert", e))?;
    Ok(Ok(versions))
}

fn db_error(context: &str, err: impl Into<redb::Error>) -> Error {
    let err: redb::Error = err.into();
    Error::new(
        ErrorKind::Storage,
        format!("metadata database: {context}: {err}"),
    )
    .with_source(err)
}

/// The error for a database another process holds open (redb takes an exclusive lock):
/// what it is, who holds it when that can be found, and what to do.
fn in_use(path: &Path) -> Error {
    let holders = holders_of(path);
    let who = if holders.is_empty() {
        "another process".to_owned()
    } else {
        holders.join(", ")
    };
    Error::new(
        ErrorKind::DatabaseInUse,
        format!(
            "metadata database {} is open in {who}: one process at a time may hold it. \
             Stop that process (a running registry serves the same data over HTTP), or \
             work on a copy of the directory",
            path.display()
        ),
    )
}

/// The processes with `path` open, as `pid 123 (command line)`: read from `/proc`, so
/// on Linux only, and only those this user may inspect.
fn holders_of(path: &Path) -> Vec<String> {
    let Ok(target) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for process in processes.flatten() {
        let name = process.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == std::process::id().to_string() {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link == target));
        if holds {
            let command = std::fs::read(process.path().join("cmdline"))
                .map(|raw| {
                    String::from_utf8_lossy(&raw)
                        .split('\0')
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            holders.push(format!("pid {pid} ({command})"));
        }
    }
    holders
}

fn decode(key: &str, raw: &[u8]) -> Result<Versioned> {
    if raw.len() < 8 {
        return Err(Error::new(
            ErrorKind::CorruptData,
            format!(
                "metadata key {key:?}: stored record is {} bytes, shorter than its header",
                raw.len()
            ),
        ));
    }
    let (version, value) = raw.split_at(8);
    Ok(Versioned {
        version: Version(u64::from_le_bytes(version.try_into().expect("8 bytes"))),
        value: Bytes::copy_from_slice(value),
    })
}

impl RedbMetaStore {
    /// Opens the database at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => in_use(path),
            e => db_error(&format!("opening {}", path.display()), e),
        })?;
        // Create the tables up front so read transactions never meet a missing table.
        let txn = db.begin_write().map_err(|e| db_error("begin", e))?;
        txn.open_table(ENTRIES)
            .map_err(|e| db_error("open table", e))?;
        txn.open_table(COUNTERS)
            .map_err(|e| db_error("open table", e))?;
        txn.commit().map_err(|e| db_error("commit", e))?;
        let db = Arc::new(db);
        let writer = Arc::new(GroupWriter::start(db.clone())?);
        Ok(Self { db, writer })
    }

    /// Transactions committed so far by this store's writer, however many writes each
    /// held. For benches and reports.
    pub fn commits(&self) -> u64 {
        self.writer.counts.all.load(Ordering::Relaxed)
    }

    /// Of [`commits`](Self::commits), those synced to disk (an `fdatasync` each): every
    /// one with a durable batch in it.
    pub fn synced_commits(&self) -> u64 {
        self.writer.counts.synced.load(Ordering::Relaxed)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Storage,
                    format!("metadata database task failed: {e}"),
                )
            })?
    }

    /// Applies `writes` in the next group commit; answers once that commit is durable
    /// (or, for a relaxed batch, done). A relaxed batch commits in place when no commit
    /// is under way.
    async fn write(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<Vec<Option<Version>>> {
        check_batch(&writes)?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Batch { writes, durability };
        if durability == Durability::Relaxed
            && let Ok(_held) = self.writer.committing.try_lock()
        {
            let mut outcomes = commit_group(&self.db, &[&batch], &self.writer.counts)?;
            return outcomes.pop().expect("one outcome per batch");
        }
        let stopped = || Error::new(ErrorKind::Storage, "the metadata writer stopped");
        let (answer, answered) = oneshot::channel();
        let queue = self.writer.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(PendingBatch { batch, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl MetaStore for RedbMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        check_key(key)?;
        // A point read runs in place: it takes microseconds from redb's cache (a page
        // read at worst, never a sync), while a hand-off to the blocking pool and back
        // costs more than the read. Every request of a registry makes a few of these.
        let txn = self
            .db
            .begin_read()
            .map_err(|e| db_error("begin read", e))?;
        let entries = txn
            .open_table(ENTRIES)
            .map_err(|e| db_error("open table", e))?;
        match entries.get(key).map_err(|e| db_error("get", e))? {
            Some(raw) => decode(key, raw.value()).map(Some),
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<Version> {
        let key = key.to_owned();
        let versions = self
            .write(vec![Write::Put { key, value, expect }], Durability::Durable)
            .await?;
        versions.first().copied().flatten().ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                "the metadata writer answered no version",
            )
        })
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<()> {
        let key = key.to_owned();
        self.write(vec![Write::Delete { key, expect }], Durability::Durable)
            .await
            .map(drop)
    }

    fn atomic_batches(&self) -> bool {
        true
    }

    async fn batch(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<Vec<Option<Version>>> {
        self.write(writes, durability).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| db_error("begin read", e))?;
            let entries = txn
                .open_table(ENTRIES)
                .map_err(|e| db_error("open table", e))?;
            let lower = match start_after.as_deref() {
                Some(after) if after >= prefix.as_str() => Bound::Excluded(after),
                _ => Bound::Included(prefix.as_str()),
            };
            let range = entries
                .range::<&str>((lower, Bound::Unbounded))
                .map_err(|e| db_error("range", e))?;
            let mut out = Vec::new();
            for item in range {
                if out.len() >= limit {
                    break;
                }
                let (key, raw) = item.map_err(|e| db_error("range", e))?;
                let key = key.value();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                let Versioned { version, value } = decode(key, raw.value())?;
                out.push(Entry {
                    key: key.to_owned(),
                    version,
                    value,
                });
            }
            Ok(out)
        })
        .await
    }
}
