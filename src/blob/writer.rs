//! The write of one blob into an [`ObjectBlobStore`] through its staging area.
//!
//! Logical bytes are hashed in order while, for an encoded write, a [`FrameEncoder`]
//! turns them into stored bytes (frames are sealed on a blocking thread, several at
//! once). The stored bytes go to staged parts; a checkpoint makes them durable and keeps
//! the at most one frame of logical bytes the encoder still holds in a small `tail`
//! object beside them.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::encoded::logical_stream;
use super::hashing::PipelinedDigester;
use super::object::{Form, ObjectBlobStore};
use super::part_writer::PartWriter;
use super::reads::verify;
use super::{BlobInfo, BlobStore, BlobWriter, EncodingState, StagedPart, WriterState};
use crate::codec::{
    DEFAULT_FRAME_SIZE, DataKey, EncoderSnapshot, FrameEncoder, Header, Layout, SealedFrames,
    open_with_random_nonce, seal_with_random_nonce,
};
use crate::digest::{Digest, Digester};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::WrappedKey;

/// What a wrap of a staging area's data key is bound to.
pub(super) fn staging_context(staging_id: &str) -> Vec<u8> {
    [b"wharf staging ".as_slice(), staging_id.as_bytes()].concat()
}

/// The encoding side of a write.
#[derive(Debug)]
pub(super) struct Encoding {
    /// `None` while it works on a blocking thread, once finished, and in a resumed
    /// write until bytes come ([`ObjectBlobWriter::encoder_ready`]).
    pub(super) encoder: Option<FrameEncoder>,
    /// What a resumed write rebuilds its encoder from, with the held bytes in `tail`.
    pub(super) resume_from: Option<EncoderSnapshot>,
    pub(super) key: Option<DataKey>,
    /// The data key wrapped for the staging area (checkpoints carry it, never the key).
    pub(super) wrapped: Option<WrappedKey>,
    /// The held bytes saved by the last checkpoint, and their digest.
    pub(super) tail: Option<(StagedPart, Digest)>,
    /// The batch of frames being sealed on blocking threads.
    pub(super) sealing: Option<tokio::task::JoinHandle<SealedFrames>>,
    /// The saved held bytes were gone at resume: the staging area was cleaned up after
    /// the blob was published by an earlier attempt whose end was not recorded. Bytes
    /// are still hashed, so a commit finds the stored blob; nothing can be stored.
    pub(super) lost: bool,
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("encoding a blob: task failed: {e}"),
    )
}

impl Encoding {
    fn encoder(&mut self) -> Result<FrameEncoder> {
        if self.lost {
            return Err(Error::new(
                ErrorKind::BlobUploadInvalid,
                "the upload's staged bytes are gone and its blob is not stored: start the upload again",
            ));
        }
        self.encoder.take().ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                "the blob's encoder was lost to an earlier failure",
            )
        })
    }

    /// Encodes `data`. Full frames are sealed on blocking threads, one batch at a time
    /// while the next fills, so hashing, filling and sealing overlap; returns the frames
    /// sealed so far, in order.
    async fn push(&mut self, data: Bytes) -> Result<Vec<Vec<u8>>> {
        if self.lost {
            return Ok(Vec::new());
        }
        let mut encoder = self.encoder()?;
        encoder.fill(&data);
        let mut out = Vec::new();
        let mut result = Ok(());
        while let Some(job) = encoder.take_job(false) {
            if let Some(sealing) = self.sealing.take() {
                match sealing.await {
                    Ok(sealed) => out.extend(encoder.accept(sealed)),
                    Err(e) => {
                        result = Err(task_failed(e));
                        break;
                    }
                }
            }
            self.sealing = Some(tokio::task::spawn_blocking(move || job.run()));
        }
        // After a failed sealing task the encoder has frames it will never get back:
        // it stays unusable, and the write fails from here on.
        result.map(|()| {
            self.encoder = Some(encoder);
            out
        })
    }

    /// Waits for the batch being sealed; returns its frames.
    async fn drain(&mut self) -> Result<Vec<Vec<u8>>> {
        let Some(sealing) = self.sealing.take() else {
            return Ok(Vec::new());
        };
        let mut encoder = self.encoder()?;
        let sealed = sealing.await.map_err(task_failed)?;
        let out = encoder.accept(sealed);
        self.encoder = Some(encoder);
        Ok(out)
    }

    async fn flush(&mut self) -> Result<Vec<Vec<u8>>> {
        let mut out = self.drain().await?;
        let mut encoder = self.encoder()?;
        let (encoder, sealed) = tokio::task::spawn_blocking(move || {
            let sealed = encoder.flush_frames();
            (encoder, sealed)
        })
        .await
        .map_err(task_failed)?;
        self.encoder = Some(encoder);
        out.extend(sealed);
        Ok(out)
    }

    /// Seals everything left, the last frame and the index: stored bytes in order.
    async fn finish(&mut self) -> Result<Vec<Vec<u8>>> {
        let mut out = self.drain().await?;
        let encoder = self.encoder()?;
        out.push(
            tokio::task::spawn_blocking(move || encoder.finish())
                .await
                .map_err(task_failed)?,
        );
        Ok(out)
    }
}

/// The write of one blob through the staging area.
#[derive(Debug)]
pub(super) struct ObjectBlobWriter {
    pub(super) blobs: ObjectBlobStore,
    pub(super) staging_id: String,
    pub(super) staging: Path,
    pub(super) hasher: PipelinedDigester,
    pub(super) parts: Vec<StagedPart>,
    pub(super) current: Option<PartWriter>,
    pub(super) encoding: Option<Encoding>,
    /// The header, for an encoded write.
    pub(super) header: Option<Header>,
    /// The KEK a deduplicated blob must become readable through.
    pub(super) kek: Option<String>,
    /// Whether the staging area may hold anything (a checkpoint was taken, here or
    /// before a resume); otherwise a write that ends in memory has nothing to remove.
    pub(super) staged: bool,
}

impl ObjectBlobWriter {
    /// Rebuilds a resumed write's encoder, reading back the bytes it held.
    async fn encoder_ready(&mut self) -> Result<()> {
        let Some(encoding) = self.encoding.as_mut() else {
            return Ok(());
        };
        if encoding.resume_from.is_none() {
            return Ok(());
        }
        let held = match &encoding.tail {
            Some((tail, digest)) => {
                let path = self.staging.clone().join(tail.name.as_str());
                let read = |e| Error::storage(format!("reading {path}"), e);
                let stored = match self.blobs.object_store().get(&path).await {
                    Ok(got) => got.bytes().await.map_err(read)?,
                    Err(object_store::Error::NotFound { .. }) => {
                        encoding.resume_from = None;
                        encoding.lost = true;
                        return Ok(());
                    }
                    Err(e) => return Err(read(e)),
                };
                let held = match &encoding.key {
                    Some(key) => open_with_random_nonce(
                        key,
                        &tail_aad(&self.staging_id, &tail.name),
                        &stored,
                    )?,
                    None => stored.to_vec(),
                };
                if held.len() as u64 != tail.len || Digest::of(digest.algorithm(), &held) != *digest
                {
                    return Err(Error::new(
                        ErrorKind::CorruptData,
                        format!("{path} does not hold the bytes the checkpoint saved"),
                    ));
                }
                held
            }
            None => Vec::new(),
        };
        let snapshot = encoding.resume_from.take().expect("checked above");
        encoding.encoder = Some(FrameEncoder::resume(snapshot, encoding.key.as_ref(), held)?);
        Ok(())
    }

    fn stored_len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum::<u64>() + self.current.as_ref().map_or(0, |c| c.len)
    }

    /// Sends stored bytes to the current part (the header first, for an encoded object).
    async fn push_stored(&mut self, data: Bytes) -> Result<()> {
        let first = self.stored_len() == 0;
        if self.current.is_none() {
            let name = format!("{:06}-{}", self.parts.len(), crate::util::random_id());
            self.current = Some(
                self.blobs
                    .part_writer(self.staging.clone().join(name.as_str())),
            );
        }
        let current = self.current.as_mut().expect("just set");
        if first && let Some(header) = &self.header {
            current
                .push(Bytes::copy_from_slice(&header.encode()))
                .await?;
        }
        current.push(data).await
    }

    /// Drops the part being written and everything staged.
    async fn discard(&mut self) -> Result<()> {
        let in_memory = self.current.as_ref().is_none_or(PartWriter::is_buffered);
        if let Some(part) = self.current.take() {
            part.abort().await;
        }
        if in_memory && !self.staged && self.parts.is_empty() {
            return Ok(());
        }
        self.blobs.discard_staging(&self.staging_id).await
    }

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

    /// The staged parts, one stream of stored bytes.
    async fn staged_bytes(&mut self) -> Result<super::ByteStream> {
        let mut streams = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            streams.push(self.blobs.read_part(&self.staging, part).await?);
        }
        Ok(stream::iter(streams).flatten().boxed())
    }

    /// Hashes the staged logical bytes with `algorithm`: for a digest of another
    /// algorithm than the write was hashed with. `footer` is the encoded object's index.
    async fn rehash(&mut self, expected: &Digest, footer: Option<&[u8]>) -> Result<Digest> {
        let mut hasher = Digester::new(expected.algorithm());
        let mut chunks = self.staged_bytes().await?;
        if let (Some(header), Some(footer)) = (&self.header, footer) {
            let key = self.encoding.as_ref().and_then(|e| e.key.as_ref());
            let layout = Layout::parse(&header.encode(), footer, self.stored_len(), key)?;
            let logical = layout.logical_size();
            chunks = logical_stream(chunks, 0, layout.into(), 0..logical, expected.clone());
        }
        while let Some(chunk) = chunks.next().await {
            hasher.update(&chunk?);
        }
        Ok(hasher.finish())
    }

    /// Stores the data key's wrap for `digest` before the object becomes visible.
    async fn store_wrap(&mut self, digest: &Digest) -> Result<()> {
        if let (Some(header), Some(key), Some(kek)) = (
            &self.header,
            self.encoding.as_ref().and_then(|e| e.key.as_ref()),
            &self.kek,
        ) {
            self.blobs
                .wraps()
                .store(digest, &header.salt, key, kek)
                .await?;
        }
        Ok(())
    }

    fn form(&self) -> Form {
        if self.header.is_some() {
            Form::Encoded
        } else {
            Form::Raw
        }
    }

    async fn publish(&mut self, info: &BlobInfo) -> Result<()> {
        let store = self.blobs.object_store().clone();
        let target = self.blobs.object_path(&info.digest, self.form());
        let context = || format!("publishing blob {}", info.digest);
        if self
            .blobs
            .grant_existing(&info.digest, self.kek.as_deref())
            .await?
        {
            // Already stored (content addressing makes the copies identical).
            return self.blobs.discard_staging(&self.staging_id).await;
        }
        self.store_wrap(&info.digest).await?;
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
            _ => {
                let mut joined = self.blobs.part_writer(target);
                let mut chunks = self.staged_bytes().await?;
                while let Some(chunk) = chunks.next().await {
                    joined.push(chunk?).await?;
                }
                joined.finish().await?;
            }
        }
        if self.kek.is_some() {
            self.blobs.reconcile_published(&info.digest).await?;
        }
        self.blobs.discard_staging(&self.staging_id).await
    }

    /// Saves the logical bytes the encoder still holds, replacing the last such save.
    async fn save_tail(&mut self) -> Result<Option<EncodingState>> {
        let Some(encoding) = self.encoding.as_mut() else {
            return Ok(None);
        };
        let encoder = encoding.encoder.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                "the blob's encoder was lost to an earlier failure",
            )
        })?;
        let held = encoder.held();
        let snapshot = encoder.snapshot();
        encoding.tail = None;
        if !held.is_empty() {
            // A fresh name each time: the state that names an earlier tail may be the
            // last one recorded, and a concurrent resume of the same state writes its own.
            // Earlier tails go with the staging area.
            let name = format!(
                "tail-{:010}-{}",
                snapshot.frame_lens.len(),
                crate::util::random_id()
            );
            let digest = Digest::of(crate::digest::Algorithm::Sha256, held);
            let stored = match &encoding.key {
                Some(key) => seal_with_random_nonce(key, &tail_aad(&self.staging_id, &name), held)?,
                None => held.to_vec(),
            };
            let path = self.staging.clone().join(name.as_str());
            self.blobs
                .object_store()
                .put(&path, PutPayload::from(stored))
                .await
                .map_err(|e| Error::storage(format!("writing {path}"), e))?;
            let part = StagedPart {
                name,
                len: held.len() as u64,
            };
            encoding.tail = Some((part, digest));
        }
        Ok(Some(EncodingState::new(
            &snapshot,
            encoding.wrapped.clone(),
            encoding.tail.clone(),
        )))
    }
}

/// What sealed held bytes are bound to: the staging area and the object's name.
fn tail_aad(staging_id: &str, name: &str) -> Vec<u8> {
    [
        b"wharf tail ".as_slice(),
        staging_id.as_bytes(),
        b"/",
        name.as_bytes(),
    ]
    .concat()
}

#[async_trait::async_trait]
impl BlobWriter for ObjectBlobWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.encoder_ready().await?;
        self.hasher.update(&data).await?;
        let Some(frame_size) = self.encoding.as_ref().map(|e| {
            e.encoder
                .as_ref()
                .map_or(DEFAULT_FRAME_SIZE, FrameEncoder::frame_size)
        }) else {
            return self.push_stored(data).await;
        };
        // A few frames at a time, so a large chunk is neither copied whole before
        // sealing nor held sealed whole before storage.
        let step = 4 * frame_size;
        for at in (0..data.len()).step_by(step) {
            let piece = data.slice(at..(at + step).min(data.len()));
            let encoding = self.encoding.as_mut().expect("checked above");
            for frame in encoding.push(piece).await? {
                self.push_stored(frame.into()).await?;
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.hasher.len()
    }

    async fn checkpoint(&mut self) -> Result<WriterState> {
        self.encoder_ready().await?;
        if let Some(encoding) = self.encoding.as_mut() {
            for frame in encoding.flush().await? {
                self.push_stored(frame.into()).await?;
            }
        }
        self.seal_current().await?;
        self.staged = true;
        let encoding = self.save_tail().await?;
        Ok(WriterState {
            staging_id: self.staging_id.clone(),
            hash: self.hasher.settle().await?.state(),
            parts: self.parts.clone(),
            encoding,
        })
    }

    async fn commit(
        mut self: Box<Self>,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<BlobInfo> {
        let size = self.hasher.len();
        let same_algorithm = expected.algorithm() == self.hasher.algorithm();
        if same_algorithm {
            // Verified before anything else: a mismatch or a blob stored already needs
            // no more encoding or writing.
            let actual = self.hasher.settle().await?.peek();
            let info = BlobInfo {
                digest: actual.clone(),
                size,
            };
            if let Err(err) = verify(expected, &actual, size, expected_size) {
                self.discard().await?;
                return Err(err);
            }
            if self
                .blobs
                .grant_existing(&actual, self.kek.as_deref())
                .await?
            {
                self.discard().await?;
                return Ok(info);
            }
        }
        self.encoder_ready().await?;
        let mut footer = None;
        if let Some(encoding) = self.encoding.as_mut() {
            let stored = encoding.finish().await?;
            let last = stored.last().expect("finishing gives the index at least");
            let footer_len = Layout::footer_len(last)?;
            footer = Some(last[last.len() - footer_len..].to_vec());
            for bytes in stored {
                self.push_stored(bytes.into()).await?;
            }
        }
        let buffered =
            self.parts.is_empty() && self.current.as_ref().is_none_or(PartWriter::is_buffered);
        if buffered && same_algorithm {
            // Nothing has reached storage yet: write the blob once, in place, with no
            // staged copy to rename.
            let actual = self.hasher.settle().await?.peek();
            self.store_wrap(&actual).await?;
            let target = self.blobs.object_path(&actual, self.form());
            let mut bytes = match self.current.take() {
                Some(part) => part,
                None => self.blobs.part_writer(target.clone()),
            };
            bytes.path = target;
            bytes.finish().await?;
            if self.kek.is_some() {
                self.blobs.reconcile_published(&actual).await?;
            }
            if self.staged {
                // A checkpoint may have saved held bytes in the staging area.
                self.blobs.discard_staging(&self.staging_id).await?;
            }
            return Ok(BlobInfo {
                digest: actual,
                size,
            });
        }
        // A failure here leaves the staging area to upload expiry.
        self.seal_current().await?;
        let actual = if same_algorithm {
            self.hasher.settle().await?.peek()
        } else {
            // The write was hashed with another algorithm than the client's digest uses
            // (sessions start before the digest is known): hash the staged parts once.
            let actual = self.rehash(expected, footer.as_deref()).await?;
            if let Err(err) = verify(expected, &actual, size, expected_size) {
                self.blobs.discard_staging(&self.staging_id).await?;
                return Err(err);
            }
            actual
        };
        let info = BlobInfo {
            digest: actual,
            size,
        };
        self.publish(&info).await?;
        Ok(info)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.discard().await
    }
}
