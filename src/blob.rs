//! The content-addressed blob store: one immutable copy of each blob, keyed by digest.
//!
//! Bytes enter through a [`BlobWriter`], which hashes them on the way to storage and
//! publishes them under their digest only at [`BlobWriter::commit`], after the digest
//! and size match what the caller expected. Until then they sit in a staging area that
//! no read can reach. A writer can [`checkpoint`](BlobWriter::checkpoint): everything
//! written so far becomes durable and the returned [`WriterState`] lets any process
//! resume the write later, hash state included.
//!
//! [`ObjectBlobStore`] implements the store over any `object_store::ObjectStore`.

mod at_rest;
pub mod compose;
mod encoded;
mod encoding;
mod hashing;
mod local_objects;
mod object;
mod objects;
mod part_writer;
mod read_stream;
mod reads;
mod sizes;
mod wraps;
mod writer;

pub use self::at_rest::AtRest;
pub use self::compose::{Composer, LocalComposer, StagedObject};
#[cfg(feature = "s3")]
pub use self::compose::{S3Composer, S3ComposerConfig};
pub use self::local_objects::{INLINE_READ_LIMIT, LocalObjects, local_objects};
pub use self::object::{DEFAULT_PART_SIZE, DEFAULT_PARTS_IN_FLIGHT, ObjectBlobStore};
pub use self::wraps::RotationProgress;
pub(crate) use self::wraps::check_kek_name;

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::codec::{Compression, EncoderSnapshot, HEADER_LEN, Header};
use crate::digest::{Algorithm, Digest, DigesterState};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::WrappedKey;

/// A stream of bytes with wharf errors, as blob reads produce and uploads consume.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A stored blob's identity and logical size.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobInfo {
    /// The digest of the blob's bytes.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An open read of a blob, or of a byte range of it.
pub struct BlobRead {
    /// The whole blob's identity and size.
    pub info: BlobInfo,
    /// The byte range the stream delivers.
    pub range: Range<u64>,
    /// The bytes. A full read is checked: content that does not match the digest ends
    /// the stream with [`ErrorKind::CorruptData`]. An encrypted blob's frames
    /// authenticate it (under a data key bound to the digest); every other full read is
    /// hashed again.
    pub stream: ByteStream,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead")
            .field("info", &self.info)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl BlobRead {
    /// Collects the whole stream into memory: for small blobs and tests.
    pub async fn bytes(self) -> Result<Bytes> {
        use futures::TryStreamExt;
        Ok(read_stream::concat(self.stream.try_collect().await?))
    }
}

/// A staged, durable part of an unfinished write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedPart {
    /// Object name of the part within the writer's staging area.
    pub name: String,
    /// Bytes in the part.
    pub len: u64,
}

/// Everything needed to resume an unfinished write in another process: the staging area,
/// the durable parts in order, and the hash state after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterState {
    /// The staging area's id.
    pub staging_id: String,
    /// The running hash over every byte in `parts`.
    pub hash: DigesterState,
    /// The durable parts, in order.
    pub parts: Vec<StagedPart>,
    /// For a write in the at-rest format: where the encoding stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<EncodingState>,
}

/// Where a write in the at-rest format ([`crate::codec`]) stands at a checkpoint: the
/// header, the frames sealed so far, the data key wrapped for the staging area (never
/// the key itself), and the staged copy of the logical bytes not yet sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodingState {
    header: String,
    zstd_level: Option<i32>,
    precompressed: Option<bool>,
    frame_lens: Vec<u32>,
    wrapped_key: Option<WrappedKey>,
    tail: Option<StagedPart>,
    /// The digest of the held bytes in `tail`, checked when they are read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail_digest: Option<Digest>,
}

impl EncodingState {
    pub(crate) fn new(
        snapshot: &EncoderSnapshot,
        wrapped_key: Option<WrappedKey>,
        tail: Option<(StagedPart, Digest)>,
    ) -> Self {
        let (tail, tail_digest) = tail.unzip();
        Self {
            header: crate::hex::encode(&snapshot.header.encode()),
            zstd_level: match snapshot.compression {
                Compression::Off => None,
                Compression::Zstd { level } => Some(level),
            },
            precompressed: snapshot.precompressed,
            frame_lens: snapshot.frame_lens.clone(),
            wrapped_key,
            tail,
            tail_digest,
        }
    }

    pub(crate) fn snapshot(&self) -> Result<EncoderSnapshot> {
        let bytes = crate::hex::decode(&self.header);
        let header = match bytes {
            Some(bytes) if bytes.len() == HEADER_LEN => Header::decode(&bytes)?,
            _ => {
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    "writer state has a malformed object header",
                ));
            }
        };
        Ok(EncoderSnapshot {
            header,
            compression: match self.zstd_level {
                None => Compression::Off,
                Some(level) => Compression::Zstd { level },
            },
            precompressed: self.precompressed,
            frame_lens: self.frame_lens.clone(),
        })
    }

    pub(crate) fn wrapped_key(&self) -> Option<&WrappedKey> {
        self.wrapped_key.as_ref()
    }

    pub(crate) fn tail(&self) -> Option<(&StagedPart, &Digest)> {
        self.tail.as_ref().zip(self.tail_digest.as_ref())
    }
}

impl WriterState {
    /// The state of a write that has not received a byte, staging into `staging_id`.
    pub fn new(staging_id: &str, algorithm: Algorithm) -> Self {
        Self {
            staging_id: staging_id.to_owned(),
            hash: crate::digest::Digester::new(algorithm).state(),
            parts: Vec::new(),
            encoding: None,
        }
    }

    /// Bytes durably written.
    pub fn len(&self) -> u64 {
        self.hash.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.hash.is_empty()
    }
}

/// A staging area found in storage, for expiring abandoned writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingInfo {
    /// The staging area's id.
    pub staging_id: String,
    /// When any of its parts was last written.
    pub last_modified: SystemTime,
}

/// An unfinished write of one blob.
#[async_trait]
pub trait BlobWriter: Send + fmt::Debug {
    /// Appends bytes.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Bytes written so far.
    fn len(&self) -> u64;

    /// Whether nothing was written so far.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every byte written so far durable and returns the state that resumes the
    /// write from exactly here ([`BlobStore::resume_writer`]).
    async fn checkpoint(&mut self) -> Result<WriterState>;

    /// Publishes the blob if its digest is `expected` and, when given, its size is
    /// `expected_size`. On mismatch nothing is published, the staged bytes are removed and
    /// the error is [`ErrorKind::DigestInvalid`] or [`ErrorKind::SizeInvalid`].
    /// Committing a blob that is already stored succeeds.
    async fn commit(
        self: Box<Self>,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo>;

    /// Drops the write and removes what it staged.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// A content-addressed store of immutable blobs.
///
/// # Contract
///
/// 1. A blob is readable only after a writer committed it with a matching digest and
///    size; a mismatch publishes nothing and removes the staged bytes.
/// 2. Committing a digest that is already stored succeeds and leaves one copy; concurrent
///    commits of the same digest all succeed.
/// 3. `read` returns exactly the committed bytes; a range returns exactly that slice; a
///    range past the end is [`ErrorKind::RangeInvalid`]; an unknown digest is
///    [`ErrorKind::BlobUnknown`].
/// 4. `stat` tells the size of a stored blob and `None` for others.
/// 5. `delete` removes a blob (deleting an absent blob succeeds); `list` yields every
///    stored blob once.
/// 6. A writer checkpointed and resumed — in this or another process — produces the same
///    blob as one written straight through; resuming never re-reads staged bytes.
/// 7. `discard_staging` removes everything an unfinished write staged; `list_staging`
///    shows staging areas that still hold parts.
/// 8. A blob written as an [`AtRest`] says (through `writer_with`, or `start_state` then
///    `resume_writer`) reads back exactly through `read_with` with that setting; an
///    encrypted one is [`ErrorKind::Denied`] to a reader whose KEKs have no wrap of its
///    key, and so is a write under a KEK the store cannot use.
/// 9. `grant` makes a stored blob readable through another KEK, and only then.
/// 10. `footprint` tells the logical size (the committed one) and the stored bytes of a
///     stored blob, and `None` for others; compressible data written compressed takes
///     fewer stored bytes than logical ones.
/// 11. `rotate_kek` leaves every blob wrapped under `from` readable through `to`,
///     without rewriting it, and reports what it moved.
///
/// `wharf::testing::blob_store` checks points 1 to 7 on any store, and 8 to 11
/// (`at_rest`) on one that encrypts.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// Starts a write hashed with `algorithm`.
    async fn writer(&self, algorithm: Algorithm) -> Result<Box<dyn BlobWriter>>;

    /// Continues a write from a checkpoint.
    async fn resume_writer(&self, state: &WriterState) -> Result<Box<dyn BlobWriter>>;

    /// Size of a stored blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>>;

    /// Reads a blob, or the byte `range` of it.
    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead>;

    /// Removes a stored blob.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Every stored blob.
    fn list(&self) -> BoxStream<'static, Result<BlobInfo>>;

    /// Staging areas of unfinished writes.
    fn list_staging(&self) -> BoxStream<'static, Result<StagingInfo>>;

    /// Removes a staging area and all its parts.
    async fn discard_staging(&self, staging_id: &str) -> Result<()>;

    // The at-rest methods have no defaults: a wrapper (metrics, caching) that forgot
    // one would silently store every repository's blobs with the store's own setting
    // and drop their keys. Wrappers forward them; stores without an at-rest format say
    // what they do in each.

    /// Starts a write stored as `at_rest` says (compression, the KEK to encrypt under).
    async fn writer_with(
        &self,
        algorithm: Algorithm,
        at_rest: &AtRest,
    ) -> Result<Box<dyn BlobWriter>>;

    /// The state of a write that has not received a byte, staging into `staging_id` and
    /// stored as `at_rest` says: what an upload session records before its first chunk,
    /// to continue with [`BlobStore::resume_writer`].
    async fn start_state(
        &self,
        staging_id: &str,
        algorithm: Algorithm,
        at_rest: &AtRest,
    ) -> Result<WriterState>;

    /// Reads a blob, or a byte range of it, unwrapping its data key through
    /// `at_rest`'s KEKs only: a reader whose KEKs have no wrap of the blob's key is
    /// [`ErrorKind::Denied`].
    async fn read_with(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
        at_rest: &AtRest,
    ) -> Result<BlobRead>;

    /// Makes a stored blob readable through `at_rest`'s KEK (a repository with its own
    /// key shares a blob another repository stored: the blob stays one copy, its data
    /// key wrapped once more).
    async fn grant(&self, digest: &Digest, at_rest: &AtRest) -> Result<()>;

    /// A stored blob's logical size and the bytes it takes in storage, or `None`.
    async fn footprint(&self, digest: &Digest) -> Result<Option<Footprint>>;

    /// Wraps again under `to` every data key wrapped under `from`, without rewriting any
    /// blob, reporting progress as it goes. Interrupted, it is finished by running it
    /// again. Stores without encryption have nothing to rotate.
    async fn rotate_kek(
        &self,
        from: &str,
        to: &str,
        progress: &(dyn Fn(RotationProgress) + Send + Sync),
    ) -> Result<RotationProgress>;
}

/// What a blob takes: its logical size and the bytes stored for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// The blob's size as clients see it.
    pub logical: u64,
    /// The bytes in storage (after compression, with the format's overhead).
    pub stored: u64,
}

/// Conveniences over any [`BlobStore`].
#[async_trait]
pub trait BlobStoreExt: BlobStore {
    /// Writes `data` as one blob, verified against `expected`.
    async fn put_bytes(&self, expected: &Digest, data: Bytes) -> Result<BlobInfo> {
        let mut writer = self.writer(expected.algorithm()).await?;
        let size = data.len() as u64;
        writer.write(data).await?;
        writer.commit(expected, Some(size)).await
    }

    /// Reads a whole blob into memory.
    async fn get_bytes(&self, digest: &Digest) -> Result<Bytes> {
        self.read(digest, None).await?.bytes().await
    }
}

impl<T: BlobStore + ?Sized> BlobStoreExt for T {}
