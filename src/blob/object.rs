//! [`BlobStore`] over any `object_store::ObjectStore`.
//!
//! Layout under the store's root:
//!
//! - `blobs/<algorithm>/<first two hex>/<hex>`: published blobs, written only after
//!   verification (the two-character fan-out keeps local directories small);
//! - `uploads/<staging id>/<part>`: durable parts of unfinished writes.
//!
//! A write streams through bounded memory: bytes are cut into parts of `part_size` and
//! sent as a multipart upload with a few parts in flight, while hashing goes on in order.
//! Publishing a single-part write is a rename; a write checkpointed into several parts is
//! joined by streaming the parts into the final object. Either way the final object
//! appears atomically, because object stores make multipart uploads and renames visible
//! only when complete.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
};
use tokio::task::JoinSet;

use super::hashing::PipelinedDigester;
use super::read_stream::byte_stream;
use super::{BlobInfo, BlobRead, BlobStore, BlobWriter, StagedPart, StagingInfo, WriterState};
use crate::digest::{Algorithm, Digest, Digester};
use crate::error::{Error, ErrorKind, Result};

/// Default size of one part of a multipart upload: above S3's 5 MiB minimum, small
/// enough that a few in flight stay well under the memory budget of a stream.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Default number of parts uploaded concurrently by one writer.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 3;

const BLOBS: &str = "blobs";
const UPLOADS: &str = "uploads";

/// A content-addressed [`BlobStore`] kept in an `ObjectStore`: local filesystem, memory,
/// S3 or any other backend `object_store` supports.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// use wharf::{Algorithm, BlobStore, BlobStoreExt, Digest, ObjectBlobStore};
///
/// let blobs = ObjectBlobStore::new(Arc::new(InMemory::new()));
/// let data = bytes::Bytes::from_static(b"layer bytes");
/// let digest = Digest::of(Algorithm::Sha256, &data);
/// blobs.put_bytes(&digest, data.clone()).await?;
/// assert_eq!(blobs.get_bytes(&digest).await?, data);
/// assert_eq!(blobs.read(&digest, Some(0..5)).await?.bytes().await?, "layer");
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    part_size: usize,
    parts_in_flight: usize,
}

impl ObjectBlobStore {
    /// A blob store at the root of `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
        }
    }

    /// Sets the multipart part size (at least 5 MiB for S3; smaller only for tests).
    pub fn with_part_size(mut self, part_size: usize) -> Self {
        self.part_size = part_size.max(1);
        self
    }

    /// Sets how many parts one writer uploads at once.
    pub fn with_parts_in_flight(mut self, parts: usize) -> Self {
        self.parts_in_flight = parts.max(1);
        self
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn blob_path(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        Path::from_iter([BLOBS, digest.algorithm().as_str(), &hex[..2], hex])
    }

    fn staging_path(&self, staging_id: &str) -> Path {
        Path::from_iter([UPLOADS, staging_id])
    }

    fn new_writer(
        &self,
        staging_id: String,
        hasher: Digester,
        parts: Vec<StagedPart>,
    ) -> ObjectBlobWriter {
        ObjectBlobWriter {
            blobs: self.clone(),
            staging: self.staging_path(&staging_id),
            staging_id,
            hasher: PipelinedDigester::new(hasher),
            parts,
            current: None,
        }
    }

    fn part_writer(&self, path: Path) -> PartWriter {
        PartWriter {
            store: self.store.clone(),
            path,
            part_size: self.part_size,
            parts_in_flight: self.parts_in_flight,
            len: 0,
            pending: VecDeque::new(),
            pending_len: 0,
            upload: None,
            in_flight: JoinSet::new(),
        }
    }

    async fn head(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.store.head(&self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("looking up blob {digest}"), e)),
        }
    }

    /// The bytes of one staged part, read in large chunks like any blob read.
    async fn read_part(&self, staging: &Path, part: &StagedPart) -> Result<super::ByteStream> {
        let path = staging.clone().join(part.name.as_str());
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::storage(format!("reading {path}"), e))?;
        Ok(byte_stream(got, format!("reading {path}")))
    }

    fn unknown(digest: &Digest) -> Error {
        Error::new(
            ErrorKind::BlobUnknown,
            format!("blob {digest} is not stored"),
        )
    }

    fn range_invalid(digest: &Digest, range: &Range<u64>, size: u64) -> Error {
        Error::range_invalid(
            format!(
                "range {}-{} is outside blob {digest} of {size} bytes",
                range.start, range.end
            ),
            size,
        )
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn writer(&self, algorithm: Algorithm) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(self.new_writer(
            crate::upload::random_id(),
            Digester::new(algorithm),
            Vec::new(),
        )))
    }

    async fn resume_writer(&self, state: &WriterState) -> Result<Box<dyn BlobWriter>> {
        let staged: u64 = state.parts.iter().map(|p| p.len).sum();
        if staged != state.len() || !is_safe_id(&state.staging_id) {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "writer state for staging area {:?} is inconsistent: parts hold {staged} bytes, hash covers {}",
                    state.staging_id,
                    state.len()
                ),
            ));
        }
        let hasher = Digester::resume(&state.hash)?;
        Ok(Box::new(self.new_writer(
            state.staging_id.clone(),
            hasher,
            state.parts.clone(),
        )))
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self.head(digest).await?.map(|size| BlobInfo {
            digest: digest.clone(),
            size,
        }))
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead> {
        let path = self.blob_path(digest);
        let context = {
            let digest = digest.clone();
            move || format!("reading blob {digest}")
        };
        match range {
            Some(range) if range.start >= range.end => {
                let size = self
                    .head(digest)
                    .await?
                    .ok_or_else(|| Self::unknown(digest))?;
                if range.start > range.end || range.end > size {
                    return Err(Self::range_invalid(digest, &range, size));
                }
                Ok(BlobRead {
                    info: BlobInfo {
                        digest: digest.clone(),
                        size,
                    },
                    range,
                    stream: stream::empty().boxed(),
                })
            }
            Some(range) => {
                let options = GetOptions::new().with_range(Some(GetRange::Bounded(range.clone())));
                match self.store.get_opts(&path, options).await {
                    Ok(got) if got.range == range => Ok(BlobRead {
                        info: BlobInfo {
                            digest: digest.clone(),
                            size: got.meta.size,
                        },
                        range,
                        stream: byte_stream(got, context()),
                    }),
                    Ok(got) => Err(Self::range_invalid(digest, &range, got.meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Err(Self::unknown(digest)),
                    Err(e) => match self.head(digest).await? {
                        None => Err(Self::unknown(digest)),
                        Some(size) if range.end > size => {
                            Err(Self::range_invalid(digest, &range, size))
                        }
                        Some(_) => Err(Error::storage(context(), e)),
                    },
                }
            }
            None => match self.store.get(&path).await {
                Ok(got) => {
                    let size = got.meta.size;
                    let inner = byte_stream(got, context());
                    Ok(BlobRead {
                        info: BlobInfo {
                            digest: digest.clone(),
                            size,
                        },
                        range: 0..size,
                        stream: verify_stream(inner, digest.clone()),
                    })
                }
                Err(object_store::Error::NotFound { .. }) => Err(Self::unknown(digest)),
                Err(e) => Err(Error::storage(context(), e)),
            },
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match self.store.delete(&self.blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::storage(format!("deleting blob {digest}"), e)),
        }
    }

    fn list(&self) -> BoxStream<'static, Result<BlobInfo>> {
        self.store
            .list(Some(&Path::from(BLOBS)))
            .map_err(|e| Error::storage("listing blobs", e))
            .try_filter_map(|meta| async move {
                let parts: Vec<_> = meta.location.parts().collect();
                let [_, algorithm, _, hex] = parts.as_slice() else {
                    return Ok(None);
                };
                let digest = format!("{}:{}", algorithm.as_ref(), hex.as_ref());
                Ok(digest.parse().ok().map(|digest| BlobInfo {
                    digest,
                    size: meta.size,
                }))
            })
            .boxed()
    }

    fn list_staging(&self) -> BoxStream<'static, Result<StagingInfo>> {
        let listing = self.store.list(Some(&Path::from(UPLOADS)));
        stream::once(async move {
            let mut areas: std::collections::BTreeMap<String, std::time::SystemTime> =
                Default::default();
            let metas: Vec<_> = listing
                .try_collect()
                .await
                .map_err(|e| Error::storage("listing staging areas", e))?;
            for meta in metas {
                if let Some(id) = meta.location.parts().nth(1) {
                    let modified: std::time::SystemTime = meta.last_modified.into();
                    let entry = areas.entry(id.as_ref().to_owned()).or_insert(modified);
                    *entry = (*entry).max(modified);
                }
            }
            Ok::<_, Error>(stream::iter(areas.into_iter().map(
                |(staging_id, last_modified)| {
                    Ok(StagingInfo {
                        staging_id,
                        last_modified,
                    })
                },
            )))
        })
        .try_flatten()
        .boxed()
    }

    async fn discard_staging(&self, staging_id: &str) -> Result<()> {
        if !is_safe_id(staging_id) {
            return Err(Error::new(
                ErrorKind::BlobUploadInvalid,
                format!("staging id {staging_id:?} is not a valid id"),
            ));
        }
        let prefix = self.staging_path(staging_id);
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(Error::storage(
                    format!("discarding staging area {staging_id}"),
                    e,
                )),
            })
    }
}

/// Ids are generated by wharf (hex); anything else must not reach a storage path.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// Wraps a full read so the stream ends with an error if the bytes do not hash to
/// `digest`.
fn verify_stream(inner: super::ByteStream, digest: Digest) -> super::ByteStream {
    let hasher = Digester::new(digest.algorithm());
    stream::unfold(Some((inner, hasher, digest)), |state| async move {
        let (mut inner, mut hasher, digest) = state?;
        match inner.next().await {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                Some((Ok(chunk), Some((inner, hasher, digest))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => {
                let actual = hasher.finish();
                if actual == digest {
                    None
                } else {
                    Some((
                        Err(Error::new(
                            ErrorKind::CorruptData,
                            format!("stored blob {digest} is corrupt: its bytes hash to {actual}"),
                        )),
                        None,
                    ))
                }
            }
        }
    })
    .boxed()
}

/// Checks a written blob against what the caller expected.
fn verify(expected: &Digest, actual: &Digest, size: u64, expected_size: Option<u64>) -> Result<()> {
    if expected != actual {
        return Err(Error::new(
            ErrorKind::DigestInvalid,
            format!("content digest {actual} does not match the expected {expected}"),
        ));
    }
    match expected_size {
        Some(want) if want != size => Err(Error::new(
            ErrorKind::SizeInvalid,
            format!("blob {expected}: received {size} bytes, expected {want}"),
        )),
        _ => Ok(()),
    }
}

/// The write of one blob through the staging area.
#[derive(Debug)]
struct ObjectBlobWriter {
    blobs: ObjectBlobStore,
    staging_id: String,
    staging: Path,
    hasher: PipelinedDigester,
    parts: Vec<StagedPart>,
    current: Option<PartWriter>,
}

impl ObjectBlobWriter {
    /// Closes the part being written, making it durable.
    async fn seal_current(&mut self) -> Result<()> {
        if let Some(part) = self.current.take() {
            let len = part.len;
            let name = part.path.filename().unwrap_or_default().to_owned();
            if len == 0 {
                part.abort().await;
            } else {
                part.finish().await?;
                self.parts.push(StagedPart { name, len });
            }
        }
        Ok(())
    }

    async fn rehash(&mut self, algorithm: Algorithm) -> Result<Digest> {
        let mut hasher = Digester::new(algorithm);
        for part in &self.parts {
            let mut chunks = self.blobs.read_part(&self.staging, part).await?;
            while let Some(chunk) = chunks.next().await {
                hasher.update(&chunk?);
            }
        }
        Ok(hasher.finish())
    }

    async fn publish(&mut self, info: &BlobInfo) -> Result<()> {
        let store = &self.blobs.store;
        let target = self.blobs.blob_path(&info.digest);
        let context = || format!("publishing blob {}", info.digest);
        if self.blobs.head(&info.digest).await?.is_some() {
            // Already stored (content addressing makes the copies identical).
            return self.blobs.discard_staging(&self.staging_id).await;
        }
        match self.parts.as_slice() {
            [] => {
                store
                    .put(&target, PutPayload::new())
                    .await
                    .map_err(|e| Error::storage(context(), e))?;
            }
            [only] => {
                store
                    .rename(&self.staging.clone().join(only.name.as_str()), &target)
                    .await
                    .map_err(|e| Error::storage(context(), e))?;
            }
            parts => {
                let mut joined = self.blobs.part_writer(target);
                for part in parts {
                    let mut chunks = self.blobs.read_part(&self.staging, part).await?;
                    while let Some(chunk) = chunks.next().await {
                        joined.push(chunk?).await?;
                    }
                }
                joined.finish().await?;
            }
        }
        self.blobs.discard_staging(&self.staging_id).await
    }
}

#[async_trait]
impl BlobWriter for ObjectBlobWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.hasher.update(&data).await?;
        if self.current.is_none() {
            let name = format!("{:06}-{}", self.parts.len(), crate::upload::random_id());
            self.current = Some(
                self.blobs
                    .part_writer(self.staging.clone().join(name.as_str())),
            );
        }
        self.current.as_mut().expect("just set").push(data).await
    }

    fn len(&self) -> u64 {
        self.hasher.len()
    }

    async fn checkpoint(&mut self) -> Result<WriterState> {
        self.seal_current().await?;
        Ok(WriterState {
            staging_id: self.staging_id.clone(),
            hash: self.hasher.settle().await?.state(),
            parts: self.parts.clone(),
        })
    }

    async fn commit(
        mut self: Box<Self>,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo> {
        let size = self.hasher.len();
        let buffered =
            self.parts.is_empty() && self.current.as_ref().is_none_or(PartWriter::is_buffered);
        if buffered && expected.algorithm() == self.hasher.algorithm() {
            // Nothing has reached storage yet: verify first, then write the blob once, in
            // place, with no staged copy to rename or remove.
            let actual = self.hasher.settle().await?.peek();
            verify(expected, &actual, size, expected_size)?;
            if self.blobs.head(&actual).await?.is_none() {
                let target = self.blobs.blob_path(&actual);
                let mut bytes = match self.current.take() {
                    Some(part) => part,
                    None => self.blobs.part_writer(target.clone()),
                };
                bytes.path = target;
                bytes.finish().await?;
            }
            return Ok(BlobInfo {
                digest: actual,
                size,
            });
        }
        // A failure here leaves the staging area to upload expiry.
        self.seal_current().await?;
        let actual = if expected.algorithm() == self.hasher.algorithm() {
            self.hasher.settle().await?.peek()
        } else {
            // The write was hashed with another algorithm than the client's digest uses
            // (sessions start before the digest is known): hash the staged parts once.
            self.rehash(expected.algorithm()).await?
        };
        if let Err(err) = verify(expected, &actual, size, expected_size) {
            self.blobs.discard_staging(&self.staging_id).await?;
            return Err(err);
        }
        let info = BlobInfo {
            digest: actual,
            size,
        };
        self.publish(&info).await?;
        Ok(info)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if let Some(part) = self.current.take() {
            part.abort().await;
        }
        self.blobs.discard_staging(&self.staging_id).await
    }
}

/// One object written in parts of `part_size`, with a bounded number in flight. An
/// object smaller than one part is written with a single put.
struct PartWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    part_size: usize,
    parts_in_flight: usize,
    len: u64,
    pending: VecDeque<Bytes>,
    pending_len: usize,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: JoinSet<object_store::Result<()>>,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl PartWriter {
    /// Whether every byte is still in memory (nothing sent to storage yet).
    fn is_buffered(&self) -> bool {
        self.upload.is_none()
    }

    fn error(&self, e: object_store::Error) -> Error {
        Error::storage(format!("writing {}", self.path), e)
    }

    async fn push(&mut self, data: Bytes) -> Result<()> {
        self.len += data.len() as u64;
        self.pending_len += data.len();
        self.pending.push_back(data);
        while self.pending_len >= self.part_size {
            let part = self.take(self.part_size);
            self.send(part).await?;
        }
        Ok(())
    }

    /// Takes exactly `n` pending bytes (zero-copy slices).
    fn take(&mut self, mut n: usize) -> PutPayload {
        let mut slices = Vec::new();
        while n > 0 {
            let front = self.pending.front_mut().expect("enough pending bytes");
            let slice = if front.len() <= n {
                self.pending.pop_front().expect("front exists")
            } else {
                front.split_to(n)
            };
            n -= slice.len();
            self.pending_len -= slice.len();
            slices.push(slice);
        }
        slices.into_iter().collect()
    }

    async fn send(&mut self, part: PutPayload) -> Result<()> {
        if self.upload.is_none() {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(|e| self.error(e))?;
            self.upload = Some(upload);
        }
        let upload = self.upload.as_mut().expect("just set");
        self.in_flight.spawn(upload.put_part(part));
        while self.in_flight.len() > self.parts_in_flight {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(self.error(e)),
            Some(Err(e)) => Err(Error::new(
                ErrorKind::Storage,
                format!("writing {}: part upload task failed: {e}", self.path),
            )),
        }
    }

    async fn finish(mut self) -> Result<()> {
        let result = self.finish_inner().await;
        if result.is_err() {
            self.abort_inner().await;
        }
        result
    }

    async fn finish_inner(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let payload = self.take(self.pending_len);
            self.store
                .put(&self.path, payload)
                .await
                .map_err(|e| self.error(e))?;
            return Ok(());
        }
        if self.pending_len > 0 {
            let rest = self.take(self.pending_len);
            self.send(rest).await?;
        }
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let upload = self.upload.as_mut().expect("multipart started");
        upload
            .complete()
            .await
            .map_err(|e| Error::storage(format!("writing {}", self.path), e))?;
        Ok(())
    }

    async fn abort(mut self) {
        self.abort_inner().await;
    }

    async fn abort_inner(&mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(mut upload) = self.upload.take() {
            // Best effort: an abandoned multipart upload is invisible and expires in the
            // backend; staging areas are swept by upload expiry.
            let _ = upload.abort().await;
        }
    }
}
