//! [`BlobStore`] over any `object_store::ObjectStore`.
//!
//! Layout under the store's root:
//!
//! - `blobs/<algorithm>/<first two hex>/<hex>.whrf`: published blobs in the at-rest
//!   format ([`crate::codec`]: frames, compressed where it helps, encrypted when a KEK is
//!   set, else named for the blob), written only after verification (the two-character fan-out keeps local
//!   directories small);
//! - `blobs/<algorithm>/<first two hex>/<hex>`: published blobs stored as received (the
//!   form [`AtRest::plain`] writes, and every blob of stores from before the format);
//! - `keys/<algorithm>/<first two hex>/<hex>/<salt>/<kek>`: an encrypted blob's data key,
//!   wrapped once per KEK that may read it;
//! - `uploads/<staging id>/<part>`: durable parts of unfinished writes.
//!
//! A write streams through bounded memory: bytes are cut into parts of `part_size` and
//! sent as a multipart upload with a few parts in flight, while hashing goes on in order
//! and frames are sealed on blocking threads. Publishing a single-part write is a
//! rename; a write checkpointed into several parts is joined inside the backend by a
//! [`Composer`] when the store has one, else by streaming the parts into the final
//! object. Either way the final object appears atomically, because object stores make
//! multipart uploads and renames visible only when complete. An encrypted
//! blob's wrapped key is stored before the blob appears.
//!
//! A read of an encoded blob fetches its header and frame index, then only the frames
//! that hold the range asked for (`reads.rs`).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::compose::Composer;
use super::encoded;
use super::encoding::Encoding;
use super::objects::{BLOBS, ENCODED_SUFFIX, Form, Objects, UPLOADS, is_safe_id};
use super::sizes::Sizes;
use super::wraps::{RotationProgress, Wraps};
use super::writer::ObjectBlobWriter;
use super::{
    AtRest, BlobInfo, BlobRead, BlobStore, BlobWriter, Footprint, StagingInfo, WriterState,
};
use crate::codec::DEFAULT_FRAME_SIZE;
use crate::digest::{Algorithm, Digest, Digester};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::KeyProvider;

/// Default size of one part of a multipart upload: above S3's 5 MiB minimum, small
/// enough that a few in flight stay well under the memory budget of a stream.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Default number of parts uploaded concurrently by one writer.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 3;

/// A content-addressed [`BlobStore`] kept in an `ObjectStore`: local filesystem, memory,
/// S3 or any other backend `object_store` supports.
///
/// New blobs are stored as its [`AtRest`] says (by default compressed where that helps,
/// not encrypted); [`BlobStore::writer_with`] overrides it per write. Encryption needs a
/// [`KeyProvider`] ([`ObjectBlobStore::with_key_provider`]).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// use wharf::keys::MemoryKeyProvider;
/// use wharf::{Algorithm, AtRest, BlobStore, BlobStoreExt, Digest, ObjectBlobStore};
///
/// let keys = MemoryKeyProvider::default();
/// keys.generate("main")?;
/// let blobs = ObjectBlobStore::new(Arc::new(InMemory::new()))
///     .with_key_provider(Arc::new(keys))
///     .with_at_rest(AtRest::encrypted("main"));
/// let data = bytes::Bytes::from_static(b"layer bytes");
/// let digest = Digest::of(Algorithm::Sha256, &data);
/// blobs.put_bytes(&digest, data.clone()).await?;
/// assert_eq!(blobs.get_bytes(&digest).await?, data);
/// assert_eq!(blobs.read(&digest, Some(0..5)).await?.bytes().await?, "layer");
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    objects: Objects,
    at_rest: AtRest,
}

impl ObjectBlobStore {
    /// A blob store at the root of `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            objects: Objects {
                wraps: Wraps::new(store.clone(), None),
                store,
                part_size: DEFAULT_PART_SIZE,
                parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
                frame_size: DEFAULT_FRAME_SIZE,
                composer: None,
                logical_sizes: Arc::default(),
            },
            at_rest: AtRest::default(),
        }
    }

    /// Sets the multipart part size (at least 5 MiB for S3; smaller only for tests).
    pub fn with_part_size(mut self, part_size: usize) -> Self {
        self.objects.part_size = part_size.max(1);
        self
    }

    /// Sets how many parts one writer uploads at once.
    pub fn with_parts_in_flight(mut self, parts: usize) -> Self {
        self.objects.parts_in_flight = parts.max(1);
        self
    }

    /// Sets how [`BlobStore::writer`] stores new blobs and which KEKs
    /// [`BlobStore::read`] may use.
    pub fn with_at_rest(mut self, at_rest: AtRest) -> Self {
        self.at_rest = at_rest;
        self
    }

    /// Sets the provider that wraps and unwraps data keys.
    pub fn with_key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.objects.wraps = Wraps::new(self.objects.store.clone(), Some(provider));
        self
    }

    /// Sets the [`Composer`] that publishes writes staged in several parts (and single
    /// parts larger than [`Composer::rename_limit`]) inside the backend. Without one,
    /// such parts are read back and written again, and on S3 a single part over 5 GiB
    /// cannot be published (`CopyObject` refuses it): give an S3 store an
    /// `S3Composer`.
    pub fn with_composer(mut self, composer: Arc<dyn Composer>) -> Self {
        self.objects.composer = Some(composer);
        self
    }

    /// Sets the logical bytes per frame of new encoded blobs (a power of two from
    /// 64 KiB to 64 MiB; default [`DEFAULT_FRAME_SIZE`]).
    pub fn with_frame_size(mut self, frame_size: usize) -> Self {
        self.objects.frame_size = frame_size;
        self
    }

    /// The footprint of `digest`'s encoded object, or `None`: from the remembered sizes
    /// while the object's stored size is the one they were read with (a metadata
    /// lookup), else from its footer.
    async fn encoded_footprint(&self, digest: &Digest) -> Result<Option<Footprint>> {
        if let Some(known) = self.objects.logical_sizes.get(digest) {
            match self.objects.head(digest, Form::Encoded).await? {
                None => return Ok(None),
                Some(stored) if stored == known.stored => {
                    return Ok(Some(Footprint {
                        logical: known.logical,
                        stored,
                    }));
                }
                Some(_) => {}
            }
        }
        let path = self.objects.object_path(digest, Form::Encoded);
        let sizes = encoded::sizes(&self.objects.store, &path, digest).await?;
        Ok(sizes.map(|(logical, stored)| {
            self.objects
                .logical_sizes
                .remember(digest, Sizes { logical, stored });
            Footprint { logical, stored }
        }))
    }

    /// The default [`AtRest`].
    pub fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects.store
    }

    /// The forms to look for a blob in, most likely first for a reader of `at_rest`.
    fn forms(at_rest: &AtRest) -> [Form; 2] {
        if at_rest.is_plain() {
            [Form::Raw, Form::Encoded]
        } else {
            [Form::Encoded, Form::Raw]
        }
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn writer(&self, algorithm: Algorithm) -> Result<Box<dyn BlobWriter>> {
        self.writer_with(algorithm, &self.at_rest.clone()).await
    }

    async fn writer_with(
        &self,
        algorithm: Algorithm,
        at_rest: &AtRest,
    ) -> Result<Box<dyn BlobWriter>> {
        let staging_id = crate::util::random_id();
        let encoding = if at_rest.is_plain() {
            None
        } else {
            Some(Encoding::start(&self.objects, &staging_id, at_rest).await?)
        };
        Ok(Box::new(ObjectBlobWriter::new(
            &self.objects,
            staging_id,
            Digester::new(algorithm),
            Vec::new(),
            encoding,
            false,
        )))
    }

    async fn start_state(
        &self,
        staging_id: &str,
        algorithm: Algorithm,
        at_rest: &AtRest,
    ) -> Result<WriterState> {
        let mut state = WriterState::new(staging_id, algorithm);
        if !is_safe_id(staging_id) {
            return Err(unknown_staging(staging_id));
        }
        if !at_rest.is_plain() {
            let encoding = Encoding::start(&self.objects, staging_id, at_rest).await?;
            state.encoding = Some(encoding.initial_state()?);
        }
        Ok(state)
    }

    async fn resume_writer(&self, state: &WriterState) -> Result<Box<dyn BlobWriter>> {
        let staged: u64 = state.parts.iter().map(|p| p.len).sum();
        if !is_safe_id(&state.staging_id) {
            return Err(unknown_staging(&state.staging_id));
        }
        let encoding = match &state.encoding {
            Some(encoding) => Some(Encoding::resume(&self.objects, state, encoding).await?),
            None if staged != state.len() => {
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "writer state for staging area {:?} is inconsistent: parts hold {staged} bytes, hash covers {}",
                        state.staging_id,
                        state.len()
                    ),
                ));
            }
            None => None,
        };
        let hasher = Digester::resume(&state.hash)?;
        // A state of no bytes staged nothing (starting a write writes no object), so a
        // write resumed from it that ends in memory has no staging area to list and
        // remove. Whatever an earlier attempt left there without recording it goes
        // with upload expiry, as staging no session owns.
        let may_be_staged = !state.is_empty() || !state.parts.is_empty();
        Ok(Box::new(ObjectBlobWriter::new(
            &self.objects,
            state.staging_id.clone(),
            hasher,
            state.parts.clone(),
            encoding,
            may_be_staged,
        )))
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self.footprint(digest).await?.map(|f| BlobInfo {
            digest: digest.clone(),
            size: f.logical,
        }))
    }

    async fn footprint(&self, digest: &Digest) -> Result<Option<Footprint>> {
        for form in Self::forms(&self.at_rest) {
            let found = match form {
                Form::Raw => self
                    .objects
                    .head(digest, Form::Raw)
                    .await?
                    .map(|size| Footprint {
                        logical: size,
                        stored: size,
                    }),
                Form::Encoded => self.encoded_footprint(digest).await?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    async fn read(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<BlobRead> {
        self.read_with(digest, range, &self.at_rest.clone()).await
    }

    async fn read_with(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
        at_rest: &AtRest,
    ) -> Result<BlobRead> {
        for form in Self::forms(at_rest) {
            let read = match form {
                Form::Raw => self.objects.read_raw(digest, range.clone()).await?,
                Form::Encoded => {
                    self.objects
                        .read_encoded(digest, range.clone(), at_rest)
                        .await?
                }
            };
            if let Some(read) = read {
                return Ok(read);
            }
        }
        Err(Objects::unknown(digest))
    }

    async fn grant(&self, digest: &Digest, at_rest: &AtRest) -> Result<()> {
        // A repository that writes unencrypted still reads through its KEK.
        match at_rest.read_keks().next() {
            Some(kek) => self.objects.grant_encoded(digest, kek).await,
            None => Ok(()),
        }
    }

    async fn rotate_kek(
        &self,
        from: &str,
        to: &str,
        progress: &(dyn Fn(RotationProgress) + Send + Sync),
    ) -> Result<RotationProgress> {
        self.objects.wraps.rotate(from, to, progress).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.objects.logical_sizes.forget(digest);
        for form in [Form::Encoded, Form::Raw] {
            match self
                .objects
                .store
                .delete(&self.objects.object_path(digest, form))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::storage(format!("deleting blob {digest}"), e)),
            }
        }
        // After the data: a wrap without its blob is harmless, a blob without its wrap is not.
        self.objects.wraps.remove_all(digest).await
    }

    fn list(&self) -> BoxStream<'static, Result<BlobInfo>> {
        let store = self.objects.store.clone();
        self.objects
            .store
            .list(Some(&Path::from(BLOBS)))
            .map_err(|e| Error::storage("listing blobs", e))
            .map_ok(move |meta| {
                let store = store.clone();
                async move {
                    let parts: Vec<_> = meta.location.parts().collect();
                    let [_, algorithm, _, name] = parts.as_slice() else {
                        return Ok(None);
                    };
                    let (hex, encoded) = match name.as_ref().strip_suffix(ENCODED_SUFFIX) {
                        Some(hex) => (hex, true),
                        None => (name.as_ref(), false),
                    };
                    let Ok(digest) = format!("{}:{hex}", algorithm.as_ref()).parse::<Digest>()
                    else {
                        return Ok(None);
                    };
                    let size = if encoded {
                        match encoded::sizes(&store, &meta.location, &digest).await {
                            Ok(Some((logical, _))) => logical,
                            Ok(None) => return Ok(None),
                            // Damaged at rest: still listed (a collection must see it),
                            // with its stored size; reading it reports the damage.
                            Err(e) if e.kind() == ErrorKind::CorruptData => meta.size,
                            Err(e) => return Err(e),
                        }
                    } else {
                        meta.size
                    };
                    Ok(Some(BlobInfo { digest, size }))
                }
            })
            .try_buffered(8)
            .try_filter_map(|found| async move { Ok(found) })
            .boxed()
    }
    fn list_staging(&self) -> BoxStream<'static, Result<StagingInfo>> {
        let listing = self.objects.store.list(Some(&Path::from(UPLOADS)));
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
        self.objects.discard_staging(staging_id).await
    }
}

/// A staging id wharf did not make: it must not reach a storage path.
fn unknown_staging(staging_id: &str) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!(
            "writer state for staging area {staging_id:?} is inconsistent: its id is not one wharf makes"
        ),
    )
}
