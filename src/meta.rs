//! The metadata store: a versioned key-value store with compare-and-swap.
//!
//! Tags, repository links and upload sessions live here. Every write states what it
//! expects to find ([`Expect`]), so concurrent writers cannot overwrite each other
//! unnoticed: the loser gets [`ErrorKind::Conflict`] and re-reads.
//!
//! Implementations: [`MemoryMetaStore`] (tests), [`RedbMetaStore`] (the embedded
//! single-machine default) and [`ObjectMetaStore`] (any `ObjectStore` with conditional
//! writes: S3, GCS, Azure, `InMemory`).

mod memory;
mod object;
mod redb;

pub use self::memory::MemoryMetaStore;
pub use self::object::ObjectMetaStore;
pub use self::redb::RedbMetaStore;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};

/// The version of a stored value.
///
/// Every successful write gives the key a new version; a store never hands out the same
/// version twice for one key, not even after a delete and re-create, so a
/// compare-and-swap cannot be fooled by a value that changed and changed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(u64);

impl Version {
    /// A version from its number (as returned by [`Version::get`]).
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The version's number; larger is newer for the same key.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// What a write expects to find before it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Apply whatever is there.
    Any,
    /// Apply only if the key does not exist.
    Absent,
    /// Apply only if the key exists at exactly this version.
    Version(Version),
}

/// A value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The version the value was read at.
    pub version: Version,
    /// The value.
    pub value: Bytes,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The version the value was read at.
    pub version: Version,
    /// The value.
    pub value: Bytes,
}

/// One write of a [`MetaStore::batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Writes `value` at `key` if `expect` holds, as [`MetaStore::put`].
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Bytes,
        /// What the key must hold first.
        expect: Expect,
    },
    /// Removes `key` if `expect` holds, as [`MetaStore::delete`].
    Delete {
        /// The key.
        key: String,
        /// What the key must hold first.
        expect: Expect,
    },
}

impl Write {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. } | Self::Delete { key, .. } => key,
        }
    }

    /// What the key must hold for the write to apply.
    pub fn expect(&self) -> Expect {
        match self {
            Self::Put { expect, .. } | Self::Delete { expect, .. } => *expect,
        }
    }
}

/// How soon a [`MetaStore::batch`] must survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage before `batch` returns: what every `put` and `delete` gets.
    Durable,
    /// May be lost at a crash or power loss until a durable batch commits after it (which
    /// makes it durable too), never torn: for records whose loss only restarts work, such
    /// as upload sessions. Stores without a cheaper path write it durably.
    Relaxed,
}

/// Longest key accepted, in bytes. Keys are built by wharf from validated names; the
/// bound keeps every implementation's encoding within its backend's limits.
pub const MAX_KEY_LEN: usize = 480;

/// A versioned key-value store with compare-and-swap.
///
/// # Contract
///
/// 1. `get` of a missing key is `None`; after `put` it returns the value and the version
///    `put` returned.
/// 2. `put` with [`Expect::Absent`] fails with `Conflict` if the key exists; with
///    [`Expect::Version`] it fails with `Conflict` unless the key exists at that version;
///    [`Expect::Any`] always applies. A failed write changes nothing.
/// 3. Every successful write returns a version never seen before for that key, including
///    after a delete and re-create.
/// 4. `delete` follows the same expectations; deleting a missing key with
///    [`Expect::Any`] succeeds, with [`Expect::Version`] it is `Conflict`.
/// 5. `list_keys` returns keys starting with `prefix`, strictly after `start_after` when
///    given, in ascending byte order, at most `limit` of them; deleted keys never appear.
/// 6. Of many concurrent `put`s with the same expectation, exactly one succeeds.
/// 7. Keys are non-empty UTF-8 of at most [`MAX_KEY_LEN`] bytes; values may be empty.
/// 8. `batch` applies its writes in the order given, each under its own expectation as
///    `put` and `delete` would, and returns each write's new version (`None` for a
///    delete). The first write whose expectation fails ends the batch with its `Conflict`;
///    none after it is applied. A batch whose keys repeat or break point 7 is refused with
///    `InvalidArgument` before anything is applied; an empty batch does nothing.
/// 9. Where `atomic_batches` is true, a batch is all or nothing: a failed one changes
///    nothing, and a reader sees all of a batch or none of it. Elsewhere the writes before
///    a failure stay (as they may after a crash part way), so callers order a batch's
///    writes such that every prefix of it is a safe state.
/// 10. A [`Durability::Relaxed`] batch is read back at once like any other; only a crash
///     may take it back, and with it every relaxed batch after it, until a durable batch
///     commits after them.
/// 11. Once `sync` returns, every relaxed batch that returned before it was called is
///     durable, as a durable batch after them would make it.
#[async_trait]
pub trait MetaStore: Send + Sync + fmt::Debug + 'static {
    /// Reads a key.
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;

    /// Writes a key if `expect` holds; returns the new version.
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<Version>;

    /// Deletes a key if `expect` holds.
    async fn delete(&self, key: &str, expect: Expect) -> Result<()>;

    /// Entries with `prefix`, after `start_after`, ascending, at most `limit`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>>;

    /// Whether [`MetaStore::batch`] is all or nothing (contract point 9). The default,
    /// `false`, is what the default `batch` gives.
    fn atomic_batches(&self) -> bool {
        false
    }

    /// Applies `writes` in order, each if its expectation holds, stopping at the first
    /// that does not (contract points 8 to 10).
    ///
    /// The default writes them one after another with `put` and `delete`, durably:
    /// ordered, not atomic. Stores that can commit several writes at once override it
    /// (and [`MetaStore::atomic_batches`]), which saves a durable commit per write.
    async fn batch(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<Vec<Option<Version>>> {
        let _ = durability;
        check_batch(&writes)?;
        let mut versions = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                Write::Put { key, value, expect } => {
                    versions.push(Some(self.put(&key, value, expect).await?));
                }
                Write::Delete { key, expect } => {
                    self.delete(&key, expect).await?;
                    versions.push(None);
                }
            }
        }
        Ok(versions)
    }

    /// Makes the relaxed batches that returned before it durable (contract point 11):
    /// for whoever is about to make something durable elsewhere that relies on them.
    ///
    /// The default does nothing, which is right for a store that writes relaxed batches
    /// durably, as the default `batch` does. A wrapper passes it on.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Keys with `prefix`, after `start_after`, ascending, at most `limit`.
    ///
    /// The default lists entries and drops their values; stores that can list keys
    /// without reading values override it.
    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let entries = self.list(prefix, start_after, limit).await?;
        Ok(entries.into_iter().map(|e| e.key).collect())
    }
}

/// Checks a key against contract point 7.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "metadata key must be 1 to {MAX_KEY_LEN} bytes, found {}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a batch against contract point 8: valid keys, none twice.
pub(crate) fn check_batch(writes: &[Write]) -> Result<()> {
    for write in writes {
        check_key(write.key())?;
    }
    // Every `put` and `delete` is a batch of one: it needs no set.
    if writes.len() < 2 {
        return Ok(());
    }
    let mut keys = std::collections::HashSet::with_capacity(writes.len());
    for write in writes {
        if !keys.insert(write.key()) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("metadata key {:?} appears twice in one batch", write.key()),
            ));
        }
    }
    Ok(())
}

/// The error for a compare-and-swap that did not hold.
pub(crate) fn conflict(key: &str, expect: Expect, found: Option<Version>) -> Error {
    let expected = match expect {
        Expect::Any => "anything".to_owned(),
        Expect::Absent => "no value".to_owned(),
        Expect::Version(v) => v.to_string(),
    };
    let found = found.map_or_else(|| "no value".to_owned(), |v| v.to_string());
    Error::new(
        ErrorKind::Conflict,
        format!("metadata key {key:?} changed: expected {expected}, found {found}"),
    )
    .retryable()
}

/// Whether `expect` holds against the current version of a key.
pub(crate) fn expectation_holds(expect: Expect, current: Option<Version>) -> bool {
    match (expect, current) {
        (Expect::Any, _) => true,
        (Expect::Absent, None) => true,
        (Expect::Version(want), Some(have)) => want == have,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind};

    #[test]
    fn lost_races_are_retryable() {
        let lost = conflict("k", Expect::Absent, None);
        assert_eq!(lost.kind(), ErrorKind::Conflict);
        assert!(lost.is_retryable());
        assert!(!Error::new(ErrorKind::Conflict, "already exists").is_retryable());
        assert!(!Error::new(ErrorKind::DigestInvalid, "x").is_retryable());
    }
}
