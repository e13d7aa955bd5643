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
use super::object::{Form, ObjectBlobStore, verify};
use super::part_writer::PartWriter;
use super::{BlobInfo, BlobStore, BlobWriter, EncodingState, StagedPart, WriterState};
use crate::codec::{DataKey, FrameEncoder, Header, Layout};
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
    /// `None` only while it works on a blocking thread, or once finished.
    pub(super) encoder: Option<FrameEncoder>,
    pub(super) key: Option<DataKey>,
    /// The data key wrapped for the staging area (checkpoints carry it, never the key).
    pub(super) wrapped: Option<WrappedKey>,
    /// The held bytes saved by the last checkpoint.
    pub(super) tail: Option<StagedPart>,
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("encoding a blob: task failed: {e}"),
    )
}

impl Encoding {
    fn encoder(&mut self) -> Result<FrameEncoder> {
        self.encoder.take().ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                "the blob's encoder was lost to an earlier failure",
            )
        })
    }

    /// Encodes `data`; frames are sealed on a blocking thread when there are some to seal.
    async fn push(&mut self, data: Bytes) -> Result<Vec<u8>> {
        let mut encoder = self.encoder()?;
        if encoder.seals_on_push(data.len()) {
            let (encoder, out) = tokio::task::spawn_blocking(move || {
                let out = encoder.push(&data);
                (encoder, out)
            })
            .await
            .map_err(task_failed)?;
            self.encoder = Some(encoder);
            Ok(out)
        } else {
            let out = encoder.push(&data);
            self.encoder = Some(encoder);
            Ok(out)
        }
    }

    async fn flush(&mut self) -> Result<Vec<u8>> {
        let mut encoder = self.encoder()?;
        let (encoder, out) = tokio::task::spawn_blocking(move || {
            let out = encoder.flush();
            (encoder, out)
        })
        .await
        .map_err(task_failed)?;
        self.encoder = Some(encoder);
        Ok(out)
    }

    async fn finish(&mut self) -> Result<Vec<u8>> {
        let encoder = self.encoder()?;
        tokio::task::spawn_blocking(move || encoder.finish())
            .await
            .map_err(task_failed)
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
}

impl ObjectBlobWriter {
    fn stored_len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum::<u64>() + self.current.as_ref().map_or(0, |c| c.len)
    }

    /// Sends stored bytes to the current part (the header first, for an encoded object).
    async fn push_stored(&mut self, data: Bytes) -> Result<()> {
        let first = self.stored_len() == 0;
        if self.current.is_none() {
            let name = format!("{:06}-{}", self.parts.len(), crate::upload::random_id());
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
        let held = Bytes::copy_from_slice(encoder.held());
        let snapshot = encoder.snapshot();
        let old = encoding.tail.take();
        if !held.is_empty() {
            let name = format!("tail-{}", crate::upload::random_id());
            let path = self.staging.clone().join(name.as_str());
            self.blobs
                .object_store()
                .put(&path, PutPayload::from(held.clone()))
                .await
                .map_err(|e| Error::storage(format!("writing {path}"), e))?;
            encoding.tail = Some(StagedPart {
                name,
                len: held.len() as u64,
            });
        }
        if let Some(old) = old {
            // Best effort: the staging area goes as a whole when the write ends.
            let _ = self
                .blobs
                .object_store()
                .delete(&self.staging.clone().join(old.name.as_str()))
                .await;
        }
        Ok(Some(EncodingState::new(
            &snapshot,
            encoding.wrapped.clone(),
            encoding.tail.clone(),
        )))
    }
}

#[async_trait::async_trait]
impl BlobWriter for ObjectBlobWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.hasher.update(&data).await?;
        let stored = match self.encoding.as_mut() {
            Some(encoding) => Bytes::from(encoding.push(data).await?),
            None => data,
        };
        if stored.is_empty() {
            return Ok(());
        }
        self.push_stored(stored).await
    }

    fn len(&self) -> u64 {
        self.hasher.len()
    }

    async fn checkpoint(&mut self) -> Result<WriterState> {
        if let Some(encoding) = self.encoding.as_mut() {
            let sealed = encoding.flush().await?;
            if !sealed.is_empty() {
                self.push_stored(sealed.into()).await?;
            }
        }
        self.seal_current().await?;
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
        let mut footer = None;
        if let Some(encoding) = self.encoding.as_mut() {
            let last = encoding.finish().await?;
            let footer_len = Layout::footer_len(&last)?;
            footer = Some(last[last.len() - footer_len..].to_vec());
            self.push_stored(last.into()).await?;
        }
        let buffered =
            self.parts.is_empty() && self.current.as_ref().is_none_or(PartWriter::is_buffered);
        if buffered && expected.algorithm() == self.hasher.algorithm() {
            // Nothing has reached storage yet: verify first, then write the blob once, in
            // place, with no staged copy to rename or remove.
            let actual = self.hasher.settle().await?.peek();
            // A checkpoint may have saved held bytes in the staging area.
            let staged = self.encoding.as_ref().is_some_and(|e| e.tail.is_some());
            if let Err(err) = verify(expected, &actual, size, expected_size) {
                if staged {
                    self.blobs.discard_staging(&self.staging_id).await?;
                }
                return Err(err);
            }
            if !self
                .blobs
                .grant_existing(&actual, self.kek.as_deref())
                .await?
            {
                self.store_wrap(&actual).await?;
                let target = self.blobs.object_path(&actual, self.form());
                let mut bytes = match self.current.take() {
                    Some(part) => part,
                    None => self.blobs.part_writer(target.clone()),
                };
                bytes.path = target;
                bytes.finish().await?;
            }
            if staged {
                self.blobs.discard_staging(&self.staging_id).await?;
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
            self.rehash(expected, footer.as_deref()).await?
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
