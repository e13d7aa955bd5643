//! The embedded metadata store on redb: the single-machine default.
//!
//! Writes are group-committed: one thread owns redb's single writer, takes every batch
//! that is waiting (a `put` or `delete` is a batch of one), applies them one after
//! another in one transaction (each with its own compare-and-swaps, as if alone, all of a
//! batch or none of it) and commits once, so concurrent writers share one durable commit
//! instead of queueing for one each. A batch is answered only after the commit that holds
//! it is durable; a failed commit fails every batch in it and applies none.
//!
//! A relaxed batch need not reach the disk before the next durable commit, so it need
//! not be a transaction of its own either: when no commit is under way it is checked
//! and held in memory, in the [`Overlay`](overlay::Overlay), on the caller's thread,
//! and the next commit writes it before its own batches. Reads look in the overlay
//! first. An upload made three relaxed commits besides its one durable commit; each
//! was a hand-off to the writer thread and back, and each copied its B-tree paths anew
//! for the durable commit to write out.

mod overlay;
mod writer;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use self::writer::{Batch, GroupWriter};
use super::{
    Durability, Entry, Expect, MetaStore, Version, Versioned, Write, check_batch, check_key,
};
use crate::error::{Error, ErrorKind, Result};

/// Values, each stored as its 8-byte little-endian version followed by the value bytes.
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("wharf_meta");
/// One counter for all keys, so versions never repeat, even across delete and re-create.
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("wharf_meta_counters");
const LAST_VERSION: &str = "last_version";

/// Memory for redb's page cache and write buffer. redb's default (1 GiB) would let a
/// store that keeps small blobs (see `SmallObjects`) grow the process by its whole
/// size; the metadata a registry reads often is far smaller, and a page read past the
/// cache comes from the kernel's.
const CACHE_BYTES: usize = 16 << 20;

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

/// The last version the database of `txn` has handed out.
fn last_version(txn: &redb::ReadTransaction) -> Result<u64> {
    let counters = txn
        .open_table(COUNTERS)
        .map_err(|e| db_error("open table", e))?;
    let last = counters.get(LAST_VERSION).map_err(|e| db_error("get", e))?;
    Ok(last.map_or(0, |v| v.value()))
}

impl RedbMetaStore {
    /// Opens the database at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => in_use(path),
                e => db_error(&format!("opening {}", path.display()), e),
            })?;
        // Create the tables up front so read transactions never meet a missing table.
        let txn = db.begin_write().map_err(|e| db_error("begin", e))?;
        txn.open_table(ENTRIES)
            .map_err(|e| db_error("open table", e))?;
        let last_version = txn
            .open_table(COUNTERS)
            .map_err(|e| db_error("open table", e))?
            .get(LAST_VERSION)
            .map_err(|e| db_error("get", e))?
            .map_or(0, |v| v.value());
        txn.commit().map_err(|e| db_error("commit", e))?;
        let db = Arc::new(db);
        let writer = Arc::new(GroupWriter::start(db.clone(), last_version)?);
        Ok(Self { db, writer })
    }

    /// Transactions committed so far by this store's writer, however many writes each
    /// held. For benches and reports.
    pub fn commits(&self) -> u64 {
        self.writer.shared.commits().0
    }

    /// Of [`commits`](Self::commits), those synced to disk (an `fdatasync` each): every
    /// one with a durable batch in it.
    pub fn synced_commits(&self) -> u64 {
        self.writer.shared.commits().1
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

    /// Applies `writes` (see [`GroupWriter::write`]).
    async fn write(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<Vec<Option<Version>>> {
        check_batch(&writes)?;
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        self.writer
            .write(&self.db, Batch { writes, durability })
            .await
    }
}

#[async_trait]
impl MetaStore for RedbMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        check_key(key)?;
        // A point read runs in place: it takes microseconds from redb's cache (a page
        // read at worst, never a sync), while a hand-off to the blocking pool and back
        // costs more than the read. Every request of a registry makes a few of these.
        // The overlay first: once a commit has taken its writes, the database has them.
        // While one is under way, the database decides whether it has (see `Overlay`).
        let held = {
            let overlay = self.writer.shared.overlay();
            match overlay.get(key) {
                None => None,
                Some(held) if !overlay.committing() => return Ok(held.cloned()),
                Some(held) => Some((held.cloned(), overlay.high())),
            }
        };
        let txn = self
            .db
            .begin_read()
            .map_err(|e| db_error("begin read", e))?;
        if let Some((held, high)) = held
            && last_version(&txn)? < high
        {
            return Ok(held);
        }
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

    /// A synced commit if a relaxed write may not be durable yet; nothing otherwise.
    async fn sync(&self) -> Result<()> {
        self.writer.sync(&self.db).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let prefix = prefix.to_owned();
        let lower = match start_after {
            Some(after) if after >= prefix.as_str() => Bound::Excluded(after.to_owned()),
            _ => Bound::Included(prefix.clone()),
        };
        // The overlay before the database, as `get` does, unless the database already
        // has what it held (a commit took it meanwhile: see `Overlay`).
        let (held, high) = {
            let overlay = self.writer.shared.overlay();
            let lower = lower.as_ref().map(String::as_str);
            (overlay.range(&prefix, lower), overlay.high())
        };
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(|e| db_error("begin read", e))?;
            let held = match held.is_empty() || last_version(&txn)? < high {
                true => held,
                false => Vec::new(),
            };
            let entries = txn
                .open_table(ENTRIES)
                .map_err(|e| db_error("open table", e))?;
            let range = entries
                .range::<&str>((lower.as_ref().map(String::as_str), Bound::Unbounded))
                .map_err(|e| db_error("range", e))?;
            let stored = range.map_while(|item| match item {
                Err(e) => Some(Err(db_error("range", e))),
                Ok((key, raw)) => {
                    let key = key.value();
                    key.starts_with(prefix.as_str())
                        .then(|| decode(key, raw.value()).map(|value| (key.to_owned(), value)))
                }
            });
            let merged = overlay::merge(stored, held, limit)?;
            Ok(merged
                .into_iter()
                .map(|(key, Versioned { version, value })| Entry {
                    key,
                    version,
                    value,
                })
                .collect())
        })
        .await
    }
}
