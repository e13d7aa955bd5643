//! The metadata store over any `ObjectStore` with conditional writes.
//!
//! Each key is one object, `<prefix>/k/<hex of key>`: hex keeps the byte order of keys
//! in the listing order of the bucket, so prefix listing is a ranged bucket listing.
//! A record is a one-byte marker, the 8-byte version and the value; a delete writes an
//! 8-byte tombstone holding the last version instead of removing the object, because
//! object stores have no conditional delete and a re-created key must continue the
//! version sequence. Listings tell tombstones by their size without reading them.
//!
//! Compare-and-swap rides on the store's conditional put: `Create` (`If-None-Match: *`)
//! and `Update` (`If-Match: <etag>`). Listing relies on lexicographic listing order, which
//! S3, GCS, Azure and `InMemory` provide.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Entry, Expect, MetaStore, Version, Versioned, check_key, conflict};
use crate::error::{Error, ErrorKind, Result};

const LIVE_MARKER: u8 = 1;
const TOMBSTONE_LEN: u64 = 8;
/// Values read at once when listing entries: a page of 100 tags is 100 reads on S3.
const LIST_READS_IN_FLIGHT: usize = 16;
/// Attempts for writes with [`Expect::Any`] before giving up under heavy contention.
const ANY_WRITE_ATTEMPTS: usize = 64;

/// A [`MetaStore`] kept as objects in an `ObjectStore` that supports conditional writes.
///
/// Build it with [`ObjectMetaStore::connect`], which probes the store and refuses one
/// that would silently break compare-and-swap.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use object_store::{local::LocalFileSystem, memory::InMemory};
/// use wharf::{ErrorKind, ObjectMetaStore};
///
/// let meta = ObjectMetaStore::connect(Arc::new(InMemory::new()), "meta").await?;
///
/// let dir = tempfile::tempdir().unwrap();
/// let local = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
/// let err = ObjectMetaStore::connect(local, "meta").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Unsupported);
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ObjectMetaStore {
    store: Arc<dyn ObjectStore>,
    keys: Path,
    probes: Path,
}

/// What one key's object holds.
enum Record {
    Live(Versioned),
    Tombstone(Version),
}

impl Record {
    fn version(&self) -> Version {
        match self {
            Self::Live(v) => v.version,
            Self::Tombstone(v) => *v,
        }
    }

    fn live_version(&self) -> Option<Version> {
        match self {
            Self::Live(v) => Some(v.version),
            Self::Tombstone(_) => None,
        }
    }
}

fn encode_live(version: Version, value: &[u8]) -> PutPayload {
    let mut out = BytesMut::with_capacity(9 + value.len());
    out.put_u8(LIVE_MARKER);
    out.put_u64_le(version.0);
    out.put_slice(value);
    PutPayload::from_bytes(out.freeze())
}

fn encode_tombstone(version: Version) -> PutPayload {
    PutPayload::from_bytes(Bytes::copy_from_slice(&version.0.to_le_bytes()))
}

fn decode(key: &str, raw: Bytes) -> Result<Record> {
    let corrupt = || {
        Error::new(
            ErrorKind::CorruptData,
            format!(
                "metadata key {key:?}: stored record of {} bytes is malformed",
                raw.len()
            ),
        )
    };
    if raw.len() as u64 == TOMBSTONE_LEN {
        return Ok(Record::Tombstone(Version(u64::from_le_bytes(
            raw[..8].try_into().expect("8 bytes"),
        ))));
    }
    if raw.len() < 9 || raw[0] != LIVE_MARKER {
        return Err(corrupt());
    }
    Ok(Record::Live(Versioned {
        version: Version(u64::from_le_bytes(raw[1..9].try_into().expect("8 bytes"))),
        value: raw.slice(9..),
    }))
}

fn to_hex(key: &str) -> String {
    crate::hex::encode(key.as_bytes())
}

fn from_hex(hex: &str) -> Option<String> {
    String::from_utf8(crate::hex::decode(hex)?).ok()
}

/// The largest hex name sorting before every name that starts with `hex_prefix`, so a
/// listing that starts after it begins exactly at the prefix.
fn offset_before(hex_prefix: &str) -> String {
    let mut s = hex_prefix.to_owned();
    match s.pop() {
        Some('0') | None => s,
        Some(c) => {
            let pred = if c == 'a' { '9' } else { (c as u8 - 1) as char };
            s.push(pred);
            s.push('z');
            s
        }
    }
}

impl ObjectMetaStore {
    /// Connects to `store`, keeping records under `prefix`, after probing that the store
    /// honours both kinds of conditional write.
    ///
    /// Fails with [`ErrorKind::Unsupported`] for stores without conditional update
    /// (object_store's `LocalFileSystem`, S3-compatible servers that ignore `If-Match`):
    /// use [`RedbMetaStore`](crate::RedbMetaStore) for metadata on one machine.
    pub async fn connect(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        let base = Path::from(prefix);
        let this = Self {
            store,
            keys: base.clone().join("k"),
            probes: base.clone().join("probe"),
        };
        this.probe().await?;
        Ok(this)
    }

    async fn probe(&self) -> Result<()> {
        let unsupported = |what: &str| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "object store {} cannot hold wharf metadata: {what}; use RedbMetaStore for \
                     metadata on a local disk, or a store with conditional writes (S3, GCS, \
                     Azure, MinIO, R2)",
                    self.store
                ),
            )
        };
        let path = self.probes.clone().join(crate::util::random_id().as_str());
        let create = PutOptions::from(PutMode::Create);
        let first = self
            .store
            .put_opts(&path, PutPayload::from_static(b"probe-1"), create.clone())
            .await
            .map_err(|e| Error::storage(format!("probing {}", self.store), e))?;
        let result = async {
            match self
                .store
                .put_opts(&path, PutPayload::from_static(b"probe-2"), create)
                .await
            {
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Ok(_) => return Err(unsupported("it ignores create-if-absent (If-None-Match)")),
                Err(e) => return Err(Error::storage("probing create-if-absent", e)),
            }
            let stale = PutMode::Update(UpdateVersion {
                e_tag: Some("\"wharf-stale-etag\"".into()),
                version: None,
            });
            match self
                .store
                .put_opts(&path, PutPayload::from_static(b"probe-3"), stale.into())
                .await
            {
                Err(object_store::Error::Precondition { .. }) => {}
                Ok(_) => return Err(unsupported("it ignores update-if-match (If-Match)")),
                Err(
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ) => return Err(unsupported("it has no conditional update")),
                Err(e) => return Err(Error::storage("probing update-if-match", e)),
            }
            if first.e_tag.is_none() {
                return Err(unsupported("it returns no ETag"));
            }
            self.store
                .put_opts(
                    &path,
                    PutPayload::from_static(b"probe-4"),
                    PutMode::Update(first.into()).into(),
                )
                .await
                .map_err(|e| Error::storage("probing update-if-match", e))?;
            Ok(())
        }
        .await;
        let _ = self.store.delete(&path).await;
        result
    }

    fn path(&self, key: &str) -> Path {
        self.keys.clone().join(to_hex(key).as_str())
    }

    /// Reads a key's record with the object version needed to update it.
    async fn read(&self, key: &str) -> Result<Option<(Record, UpdateVersion)>> {
        match self.store.get(&self.path(key)).await {
            Ok(got) => {
                let update = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let raw = got
                    .bytes()
                    .await
                    .map_err(|e| Error::storage(format!("reading metadata key {key:?}"), e))?;
                Ok(Some((decode(key, raw)?, update)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("reading metadata key {key:?}"), e)),
        }
    }

    /// Writes `payload` if the object is absent (`None`) or still at `update`.
    /// `Ok(false)` means the condition failed.
    async fn write_if(
        &self,
        key: &str,
        payload: PutPayload,
        update: Option<UpdateVersion>,
    ) -> Result<bool> {
        let mode = match update {
            None => PutMode::Create,
            Some(u) => PutMode::Update(u),
        };
        match self
            .store
            .put_opts(&self.path(key), payload, mode.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            // An update of an object that vanished cannot happen (records are never
            // removed) but is a failed condition all the same.
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::storage(format!("writing metadata key {key:?}"), e)),
        }
    }

    /// Applies a write (`Some(value)`) or delete (`None`) under `expect`.
    async fn apply(&self, key: &str, value: Option<Bytes>, expect: Expect) -> Result<Version> {
        check_key(key)?;
        for _ in 0..ANY_WRITE_ATTEMPTS {
            // Fast path: a create of a never-written key needs no read.
            let current = if expect == Expect::Absent && value.is_some() {
                None
            } else {
                self.read(key).await?
            };
            let live = current.as_ref().and_then(|(r, _)| r.live_version());
            if !super::expectation_holds(expect, live) {
                return Err(conflict(key, expect, live));
            }
            let next = Version(current.as_ref().map_or(0, |(r, _)| r.version().0) + 1);
            let payload = match (&value, live) {
                (Some(v), _) => encode_live(next, v),
                (None, Some(_)) => encode_tombstone(next),
                // Deleting what is not there.
                (None, None) => return Ok(next),
            };
            let update = current.map(|(_, u)| u);
            let blind_create = expect == Expect::Absent && update.is_none();
            if self.write_if(key, payload, update).await? {
                return Ok(next);
            }
            if blind_create {
                // The object exists: a live value (conflict) or a tombstone (re-create it).
                match self.read(key).await? {
                    Some((Record::Tombstone(last), update)) => {
                        let next = Version(last.0 + 1);
                        let payload = encode_live(next, value.as_deref().unwrap_or_default());
                        if self.write_if(key, payload, Some(update)).await? {
                            return Ok(next);
                        }
                    }
                    Some((Record::Live(v), _)) => {
                        return Err(conflict(key, expect, Some(v.version)));
                    }
                    None => {}
                }
                let found = self.read(key).await?.and_then(|(r, _)| r.live_version());
                return Err(conflict(key, expect, found));
            }
            if let Expect::Version(_) = expect {
                let found = self.read(key).await?.and_then(|(r, _)| r.live_version());
                return Err(conflict(key, expect, found));
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "metadata key {key:?}: too many concurrent writers, gave up after {ANY_WRITE_ATTEMPTS} attempts"
            ),
        ))
    }
}

#[async_trait]
impl MetaStore for ObjectMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        check_key(key)?;
        Ok(match self.read(key).await? {
            Some((Record::Live(v), _)) => Some(v),
            _ => None,
        })
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<Version> {
        self.apply(key, Some(value), expect).await
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<()> {
        self.apply(key, None, expect).await.map(drop)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        // One read per listed key, several in flight; a key deleted in between is skipped.
        let keys = self.list_keys(prefix, start_after, limit).await?;
        let reads = futures::stream::iter(keys)
            .map(|key| async move {
                let found = self.get(&key).await?;
                Ok::<_, Error>(found.map(|Versioned { version, value }| Entry {
                    key,
                    version,
                    value,
                }))
            })
            .buffered(LIST_READS_IN_FLIGHT);
        let out: Vec<Entry> = reads
            .try_filter_map(|e| async move { Ok(e) })
            .try_collect()
            .await?;
        Ok(out)
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let hex_prefix = to_hex(prefix);
        let mut offset = offset_before(&hex_prefix);
        if let Some(after) = start_after {
            offset = offset.max(to_hex(after));
        }
        let mut listing = if offset.is_empty() {
            self.store.list(Some(&self.keys))
        } else {
            self.store
                .list_with_offset(Some(&self.keys), &self.keys.clone().join(offset.as_str()))
        };
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(meta) = listing.next().await else {
                break;
            };
            let meta = meta.map_err(|e| Error::storage("listing metadata", e))?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if !name.starts_with(&hex_prefix) {
                if name > hex_prefix.as_str() {
                    break;
                }
                continue;
            }
            if meta.size == TOMBSTONE_LEN {
                continue;
            }
            if let Some(key) = from_hex(name) {
                out.push(key);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_sort_just_before_the_prefix() {
        for prefix in ["", "a", "ab", "tags/", "p", "0", "\u{10}"] {
            let hex = to_hex(prefix);
            let offset = offset_before(&hex);
            assert!(
                offset.as_str() < hex.as_str() || hex.is_empty(),
                "{prefix:?}"
            );
            // Every key below the prefix sorts at or before the offset.
            for below in ["", "`", "a", "aa", "tag", "o~", "/"] {
                let h = to_hex(below);
                if h < hex && !h.starts_with(&hex) {
                    assert!(h <= offset, "{below:?} vs {prefix:?}");
                }
            }
        }
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(from_hex(&to_hex("tags/a:b")).unwrap(), "tags/a:b");
        assert_eq!(from_hex("zz"), None);
    }
}
