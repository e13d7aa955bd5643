//! [`SmallObjects`]: small published blobs and data-key wraps kept in the metadata store.
//!
//! On a local disk, a blob's own file costs more than its bytes: a durable publish
//! writes the file, syncs it, renames it into place and syncs its directory, two trips
//! to the device besides the one the registry's metadata commit makes anyway. For a
//! blob of a few KiB (an image config, a manifest, a small layer) those trips are most
//! of what a push costs; an encrypted blob's data-key wrap, a few hundred bytes in a
//! directory of its own, costs as much again.
//!
//! `SmallObjects` wraps the store blobs are kept in. A whole-object put of at most
//! [`SMALL_OBJECT_LIMIT`] bytes under `blobs/` (a published blob, in any form) or
//! `keys/` (a data-key wrap) goes to the metadata store instead, table `object/`, as a
//! *relaxed* write (see [`Durability::Relaxed`]): it is ordered before, and made
//! durable by, the metadata store's next durable commit. The registry makes one before
//! it acknowledges what needs the object: a blob's link or its manifest's record; a
//! wrap is written before its blob's object, or, granted to another KEK or rotated to
//! one, before the link or the rotation's record that relies on it. So an object that
//! something durable relies on is durable too; lost at a crash before that commit, it
//! goes with everything that would have relied on it. The wrapped store is durable on
//! its own, so it must not get ahead of a wrap: before it changes anything under
//! `blobs/` or `keys/` while a wrap written here may not be durable yet, the metadata
//! store is synced ([`MetaStore::sync`]).
//!
//! Everything else (larger objects, multipart writes, staging areas) goes to the
//! wrapped store as before. Reads and lookups look in the table first (a
//! point read on the caller's thread), then in the wrapped store, so objects written
//! before, or by a build without this, are still found. Deletes remove both and are
//! durable.
//!
//! The one rule for whoever builds it: the metadata store must be the registry's own,
//! so that the registry's durable commits are the ones that carry these writes.
//! [`Registry::open_local`](crate::Registry::open_local) and the server's local mode
//! build it so.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, RenameTargetMode,
};

mod wraps_first;

use self::wraps_first::{Replacing, WrapsSynced};
use super::schema::{Key, Prefix, SMALL_OBJECTS, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Durability, Expect, MetaStore, Version};

/// The largest object kept in the metadata store, in bytes (as stored: with the at-rest
/// header and frames).
pub const SMALL_OBJECT_LIMIT: usize = 16 * 1024;

/// Where published blobs and data-key wraps are: the only objects kept in the metadata
/// store.
const KEPT: [&str; 2] = ["blobs", "keys"];

/// Objects per page of a listing.
const LIST_PAGE: usize = 256;

/// Deletes at once in [`ObjectStore::delete_stream`].
const DELETES_IN_FLIGHT: usize = 8;

/// A blob store's object store with its small published blobs and wraps in the
/// metadata store (see the module's docs).
#[derive(Debug, Clone)]
pub struct SmallObjects {
    objects: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetaStore>,
    limit: usize,
    wraps: Arc<WrapsSynced>,
}

impl std::fmt::Display for SmallObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmallObjects({})", self.objects)
    }
}

/// The key of an object in table `object/`: its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectPath(Path);

impl Key for ObjectPath {
    /// `blobs/sha512/<2 hex>/<128 hex>.whrf` is 149 bytes, a wrap's path at most 178
    /// and its KEK's name; longer paths stay out.
    const MAX_LEN: usize = 320;
    fn write(&self, out: &mut String) {
        out.push_str(self.0.as_ref());
    }
    fn parse(text: &str) -> Result<Self> {
        Path::parse(text).map(Self).map_err(|e| {
            Error::new(
                ErrorKind::CorruptData,
                format!("metadata key part {text:?} is not an object path: {e}"),
            )
        })
    }
}

/// An object kept in table `object/`: when it was written, then its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmallObject {
    modified_ms: u64,
    bytes: Bytes,
}

impl Value for SmallObject {
    /// 8 bytes, the write's time in milliseconds since the Unix epoch (little-endian),
    /// then the object's bytes as they are.
    fn encode(&self) -> Result<Bytes> {
        let mut out = Vec::with_capacity(8 + self.bytes.len());
        out.extend_from_slice(&self.modified_ms.to_le_bytes());
        out.extend_from_slice(&self.bytes);
        Ok(out.into())
    }
    fn decode(raw: &[u8], key: &str) -> Result<Self> {
        let Some((time, bytes)) = raw.split_first_chunk::<8>() else {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "metadata record {key:?} is {} bytes, shorter than its time",
                    raw.len()
                ),
            ));
        };
        Ok(Self {
            modified_ms: u64::from_le_bytes(*time),
            bytes: Bytes::copy_from_slice(bytes),
        })
    }
}

impl SmallObjects {
    /// `objects` with its published blobs and wraps of at most [`SMALL_OBJECT_LIMIT`]
    /// bytes kept in `meta`, which must be the metadata store of the registry the blobs
    /// are for.
    pub fn new(objects: Arc<dyn ObjectStore>, meta: Arc<dyn MetaStore>) -> Self {
        Self {
            objects,
            meta,
            limit: SMALL_OBJECT_LIMIT,
            wraps: Arc::default(),
        }
    }

    /// Keeps objects of at most `bytes` in the metadata store instead (0: none).
    pub fn with_limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// The table key of `location` if objects there may be kept in the table.
    fn key(location: &Path) -> Option<ObjectPath> {
        let kept = location
            .parts()
            .next()
            .is_some_and(|p| KEPT.contains(&p.as_ref()));
        (kept && location.as_ref().len() <= ObjectPath::MAX_LEN)
            .then(|| ObjectPath(location.clone()))
    }

    /// The object at `location` if the table holds it.
    async fn find(&self, location: &Path) -> object_store::Result<Option<(SmallObject, Version)>> {
        let Some(key) = Self::key(location) else {
            return Ok(None);
        };
        SMALL_OBJECTS
            .get(&*self.meta, &key)
            .await
            .map_err(|e| failed(location, e))
    }

    /// Removes the table's object at `location` if there is one; whether there was.
    async fn remove(&self, location: &Path) -> object_store::Result<bool> {
        let Some((_, version)) = self.find(location).await? else {
            return Ok(false);
        };
        let key = Self::key(location).expect("found under its key");
        match SMALL_OBJECTS
            .delete(&*self.meta, &key, Expect::Version(version))
            .await
        {
            Ok(()) => Ok(true),
            // Replaced meanwhile: the newer write stands, as it would on a file system.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(true),
            Err(e) => Err(failed(location, e)),
        }
    }

    /// Puts `bytes` at `location` in the table if it belongs there, expecting `expect`:
    /// `None` if it does not (too large, or neither a published blob nor a wrap).
    async fn put_small(
        &self,
        location: &Path,
        bytes: &Bytes,
        expect: Expect,
    ) -> object_store::Result<Option<PutResult>> {
        let fits = self.limit > 0 && bytes.len() <= self.limit;
        let Some(key) = Self::key(location).filter(|_| fits) else {
            return Ok(None);
        };
        let object = SmallObject {
            modified_ms: now_ms(),
            bytes: bytes.clone(),
        };
        let write = SMALL_OBJECTS
            .put_write(&key, &object, expect)
            .map_err(|e| failed(location, e))?;
        let versions = self
            .meta
            .batch(vec![write], Durability::Relaxed)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Conflict => already_exists(location),
                _ => failed(location, e),
            })?;
        if location
            .parts()
            .next()
            .is_some_and(|p| p.as_ref() == "keys")
        {
            self.wraps.written();
        }
        Ok(Some(PutResult {
            e_tag: versions.first().copied().flatten().map(e_tag),
            version: None,
            extensions: Default::default(),
        }))
    }

    /// A copy or rename to `to` whose source the wrapped store holds: refused over an
    /// object the table holds if it must `create`, else `op`, once the wraps the
    /// `touched` places may rely on are durable; then the table's object at `to`, which
    /// would hide the result, taken out.
    async fn in_wrapped(
        &self,
        to: &Path,
        create: bool,
        touched: &[&Path],
        op: impl Future<Output = object_store::Result<()>>,
    ) -> object_store::Result<()> {
        if create && self.find(to).await?.is_some() {
            return Err(already_exists(to));
        }
        self.sync_before_wrapped(touched).await?;
        op.await?;
        self.remove(to).await?;
        Ok(())
    }

    /// Whether the wrapped store has an object at `location`.
    async fn wrapped_has(&self, location: &Path) -> object_store::Result<bool> {
        match self.objects.head(location).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn delete_one(&self, location: &Path) -> object_store::Result<()> {
        let removed = self.remove(location).await?;
        self.sync_before_wrapped(&[location]).await?;
        match self.objects.delete(location).await {
            Err(object_store::Error::NotFound { .. }) if removed => Ok(()),
            other => other,
        }
    }

    /// The table's objects under `prefix` (all of them for `None`), page by page.
    fn list_small(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let within = match prefix {
            Some(p) if Self::key(p).is_some() => format!("{p}/"),
            Some(p) if !p.as_ref().is_empty() => return stream::empty().boxed(),
            _ => String::new(),
        };
        let meta = self.meta.clone();
        let pages = stream::try_unfold(Some(None), move |after: Option<Option<ObjectPath>>| {
            let meta = meta.clone();
            let within = Prefix::new(within.clone());
            async move {
                let Some(after) = after else {
                    return Ok::<_, object_store::Error>(None);
                };
                let rows = SMALL_OBJECTS
                    .list(&*meta, &within, after.as_ref(), LIST_PAGE)
                    .await
                    .map_err(|e| failed(&Path::from(within.text.as_str()), e))?;
                // A full page may have more after it; a shorter one is the last.
                let next = match rows.last() {
                    Some(last) if rows.len() == LIST_PAGE => Some(Some(last.key.clone())),
                    _ => None,
                };
                let metas: Vec<_> = rows
                    .into_iter()
                    .map(|row| Ok(object_meta(&row.key.0, &row.value, row.version)))
                    .collect();
                Ok(Some((stream::iter(metas), next)))
            }
        });
        pages.try_flatten().boxed()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn e_tag(version: Version) -> String {
    format!("\"small-{}\"", version.get())
}

fn object_meta(location: &Path, object: &SmallObject, version: Version) -> ObjectMeta {
    let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(object.modified_ms);
    ObjectMeta {
        location: location.clone(),
        last_modified: modified.into(),
        size: object.bytes.len() as u64,
        e_tag: Some(e_tag(version)),
        version: None,
    }
}

/// The answer to `options` from an object in the table.
fn answer(
    location: &Path,
    object: SmallObject,
    version: Version,
    options: &GetOptions,
) -> object_store::Result<GetResult> {
    let meta = object_meta(location, &object, version);
    options.check_preconditions(&meta)?;
    let range = match &options.range {
        Some(range) => range.as_range(meta.size).map_err(|e| {
            failed(
                location,
                Error::new(ErrorKind::RangeInvalid, format!("range: {e}")),
            )
        })?,
        None => 0..meta.size,
    };
    let bytes = if options.head {
        Bytes::new()
    } else {
        object.bytes.slice(range.start as usize..range.end as usize)
    };
    Ok(GetResult {
        payload: GetResultPayload::Stream(stream::once(async { Ok(bytes) }).boxed()),
        meta,
        range,
        attributes: Attributes::default(),
        extensions: Default::default(),
    })
}

fn failed(location: &Path, error: Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "SmallObjects",
        source: format!("{location}: {error}").into(),
    }
}

/// The put a copy or rename out of the table makes: one that must not overwrite, or one
/// that may.
fn put_mode(create: bool) -> PutMode {
    match create {
        true => PutMode::Create,
        false => PutMode::Overwrite,
    }
}

fn already_exists(location: &Path) -> object_store::Error {
    object_store::Error::AlreadyExists {
        path: location.to_string(),
        source: "an object is there already".into(),
    }
}

#[async_trait]
impl ObjectStore for SmallObjects {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(options.mode, PutMode::Create) && self.find(location).await?.is_some() {
            return Err(already_exists(location));
        }
        let plain = options.attributes.is_empty() && options.tags.encoded().is_empty();
        if plain && payload.content_length() <= self.limit {
            let expect = match &options.mode {
                // An object the wrapped store holds is written over there, so that no
                // place is in both (a listing would name it twice).
                PutMode::Overwrite if self.wrapped_has(location).await? => None,
                PutMode::Overwrite => Some(Expect::Any),
                PutMode::Create if self.wrapped_has(location).await? => {
                    return Err(already_exists(location));
                }
                PutMode::Create => Some(Expect::Absent),
                // Conditional updates are the wrapped store's to judge.
                PutMode::Update(_) => None,
            };
            if let Some(expect) = expect {
                let bytes = Bytes::from(payload.clone());
                if let Some(done) = self.put_small(location, &bytes, expect).await? {
                    return Ok(done);
                }
            }
        }
        self.sync_before_wrapped(&[location]).await?;
        let done = self.objects.put_opts(location, payload, options).await?;
        // The table's copy would hide the new object.
        self.remove(location).await?;
        Ok(done)
    }

    /// Multipart writes go to the wrapped store; where the table may hold an object,
    /// the write takes it out when it completes, as it would hide the result.
    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.objects.put_multipart_opts(location, options).await?;
        if Self::key(location).is_none() {
            return Ok(upload);
        }
        Ok(Box::new(Replacing {
            upload,
            store: self.clone(),
            location: location.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        match self.find(location).await? {
            Some((object, version)) => answer(location, object, version, &options),
            None => self.objects.get_opts(location, options).await,
        }
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let Some((object, _)) = self.find(location).await? else {
            return self.objects.get_ranges(location, ranges).await;
        };
        let size = object.bytes.len() as u64;
        ranges
            .iter()
            .map(|r| match r.start <= r.end && r.end <= size {
                true => Ok(object.bytes.slice(r.start as usize..r.end as usize)),
                false => Err(failed(
                    location,
                    Error::new(
                        ErrorKind::RangeInvalid,
                        format!("range {r:?} is outside the object's {size} bytes"),
                    ),
                )),
            })
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        locations
            .map(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    this.delete_one(&location).await?;
                    Ok(location)
                }
            })
            .buffered(DELETES_IN_FLIGHT)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.list_small(prefix)
            .chain(self.objects.list(prefix))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let after = offset.clone();
        self.list_small(prefix)
            .try_filter(move |meta| std::future::ready(meta.location > after))
            .chain(self.objects.list_with_offset(prefix, offset))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.objects.list_with_delimiter(prefix).await?;
        let depth = prefix.map_or(0, |p| p.parts().count());
        let mut common: BTreeSet<Path> = listed.common_prefixes.drain(..).collect();
        let mut small = self.list_small(prefix);
        while let Some(meta) = small.try_next().await? {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() == depth + 1 {
                listed.objects.push(meta);
            } else {
                common.insert(Path::from_iter(parts.into_iter().take(depth + 1)));
            }
        }
        listed.common_prefixes = common.into_iter().collect();
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let create = matches!(options.mode, CopyMode::Create);
        let Some((object, _)) = self.find(from).await? else {
            let copy = self.objects.copy_opts(from, to, options);
            return self.in_wrapped(to, create, &[to], copy).await;
        };
        self.put_opts(to, object.bytes.into(), put_mode(create).into())
            .await
            .map(drop)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let create = matches!(options.target_mode, RenameTargetMode::Create);
        let Some((object, _)) = self.find(from).await? else {
            let rename = self.objects.rename_opts(from, to, options);
            return self.in_wrapped(to, create, &[from, to], rename).await;
        };
        self.put_opts(to, object.bytes.into(), put_mode(create).into())
            .await?;
        self.delete_one(from).await
    }
}
