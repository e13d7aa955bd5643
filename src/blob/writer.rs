//! The write of one blob into an [`ObjectBlobStore`](super::ObjectBlobStore) through its
//! staging area.
//!
//! Logical bytes are hashed in order while, for an encoded write, the [`Encoding`] turns
//! them into stored bytes. The stored bytes go to staged parts; a checkpoint makes them
//! durable and keeps the at most one frame of logical bytes the encoder still holds in a
//! small `tail` object beside them. A commit verifies the digest first, then takes one
//! of two paths: a write that never left memory is stored once, in place; a staged one
//! is published by a rename or a join of its parts.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::compose::StagedObject;
use super::encoded::logical_stream;
use super::encoding::Encoding;
use super::hashing::PipelinedDigester;
use super::objects::{Form, Objects};
use super::part_writer::PartWriter;
use super::reads::verify;
use super::{BlobInfo, BlobWriter, StagedPart, WriterState};
use crate::codec::Layout;
use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};

/// The write of one blob through the staging area.
#[derive(Debug)]
pub(super) struct ObjectBlobWriter {
    objects: Objects,
    staging_id: String,
    staging: Path,
    hasher: PipelinedDigester,
    parts: Vec<StagedPart>,
    current: Option<PartWriter>,
    /// `None` for a write stored as received.
    encoding: Option<Encoding>,
    /// Whether the staging area may hold anything (a checkpoint was taken, here or
    /// before a resume); otherwise a write that ends in memory has nothing to remove.
    staged: bool,
}

impl ObjectBlobWriter {
    /// A write into `staging_id` that has hashed with `hasher` and staged `parts`;
    /// `staged` says whether the staging area may hold anything yet.
    pub(super) fn new(
        objects: &Objects,
        staging_id: String,
        hasher: Digester,
        parts: Vec<StagedPart>,
        encoding: Option<Encoding>,
        staged: bool,
    ) -> Self {
        Self {
            objects: objects.clone(),
            staging: objects.staging_path(&staging_id),
            staging_id,
            hasher: PipelinedDigester::new(hasher),
            parts,
            current: None,
            encoding,
            staged,
        }
    }

    /// The KEK the blob is wrapped under, if it is encrypted.
    fn kek(&self) -> Option<&str> {
        self.encoding.as_ref().and_then(|e| e.kek.as_deref())
    }
    /// Rebuilds a resumed write's encoder (see [`Encoding::make_ready`]).
    async fn encoder_ready(&mut self) -> Result<()> {
        match self.encoding.as_mut() {
            Some(encoding) => {
                encoding
                    .make_ready(&self.objects, &self.staging, &self.staging_id)
                    .await
            }
            None => Ok(()),
        }
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
                self.objects
                    .part_writer(self.staging.clone().join(name.as_str())),
            );
        }
        let current = self.current.as_mut().expect("just set");
        if first && let Some(encoding) = &self.encoding {
            current
                .push(Bytes::copy_from_slice(&encoding.header.encode()))
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
        self.objects.discard_staging(&self.staging_id).await
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
            streams.push(self.objects.read_part(&self.staging, part).await?);
        }
        Ok(stream::iter(streams).flatten().boxed())
    }

    /// Hashes the staged logical bytes with `algorithm`: for a digest of another
    /// algorithm than the write was hashed with. `footer` is the encoded object's index.
    async fn rehash(&mut self, expected: &Digest, footer: Option<&[u8]>) -> Result<Digest> {
        let mut hasher = Digester::new(expected.algorithm());
        let mut chunks = self.staged_bytes().await?;
        if let (Some(encoding), Some(footer)) = (&self.encoding, footer) {
            let header = encoding.header.encode();
            let layout = Layout::parse(&header, footer, self.stored_len(), encoding.key.as_ref())?;
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
        if let Some(encoding) = &self.encoding
            && let (Some(key), Some(kek)) = (&encoding.key, &encoding.kek)
        {
            self.objects
                .wraps
                .store(digest, &encoding.header.salt, key, kek)
                .await?;
        }
        Ok(())
    }

    fn form(&self) -> Form {
        if self.encoding.is_some() {
            Form::Encoded
        } else {
            Form::Raw
        }
    }

    async fn publish(&mut self, info: &BlobInfo) -> Result<()> {
        let store = self.objects.store.clone();
        let target = self.objects.object_path(&info.digest, self.form());
        let context = || format!("publishing blob {}", info.digest);
        if self
            .objects
            .grant_existing(&info.digest, self.kek())
            .await?
        {
            // Already stored (content addressing makes the copies identical).
            return self.objects.discard_staging(&self.staging_id).await;
        }
        self.store_wrap(&info.digest).await?;
        let rename_limit = self
            .objects
            .composer
            .as_ref()
            .map_or(u64::MAX, |c| c.rename_limit());
        match (self.parts.as_slice(), &self.objects.composer) {
            ([], _) => {
                store
                    .put(&target, PutPayload::new())
                    .await
                    .map_err(|e| Error::storage(context(), e))?;
            }
            ([only], _) if only.len <= rename_limit => {
                store
                    .rename(&self.staging.clone().join(only.name.as_str()), &target)
                    .await
                    .map_err(|e| Error::storage(context(), e))?;
            }
            (parts, Some(composer)) => {
                let staged: Vec<StagedObject> = parts
                    .iter()
                    .map(|part| StagedObject {
                        path: self.staging.clone().join(part.name.as_str()),
                        len: part.len,
                    })
                    .collect();
                composer.compose(&staged, &target).await?;
            }
            (_, None) => {
                let mut joined = self.objects.part_writer(target);
                let mut chunks = self.staged_bytes().await?;
                while let Some(chunk) = chunks.next().await {
                    joined.push(chunk?).await?;
                }
                joined.finish().await?;
            }
        }
        if self.kek().is_some() {
            self.objects.reconcile_published(&info.digest).await?;
        }
        self.objects.discard_staging(&self.staging_id).await
    }
}

impl ObjectBlobWriter {
    /// The first step of a commit whose digest uses the write's algorithm: verified
    /// before anything else, so a mismatch or a blob stored already needs no more
    /// encoding or writing. `Some` when the blob is stored already.
    async fn verify_early(
        &mut self,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<Option<BlobInfo>> {
        let size = self.hasher.len();
        let actual = self.hasher.settle().await?.peek();
        if let Err(err) = verify(expected, &actual, size, expected_size) {
            self.discard().await?;
            return Err(err);
        }
        if self.objects.grant_existing(&actual, self.kek()).await? {
            self.discard().await?;
            return Ok(Some(BlobInfo {
                digest: actual,
                size,
            }));
        }
        Ok(None)
    }

    /// Seals the rest of an encoded write and sends it to the current part; returns
    /// the encoded object's index (its footer), `None` for a write stored as received.
    async fn finish_encoding(&mut self) -> Result<Option<Vec<u8>>> {
        if self.encoding.is_none() {
            return Ok(None);
        }
        // The write's own hash of every byte, which is the blob's digest once verified
        // (a commit under another algorithm verifies by hashing again, and a read under
        // that digest does not find it named, so it hashes too).
        let written = self.hasher.settle().await?.peek();
        let encoding = self.encoding.as_mut().expect("checked above");
        let stored = encoding.finish(&written).await?;
        let last = stored.last().expect("finishing gives the index at least");
        let footer_len = Layout::footer_len(last)?;
        let footer = last[last.len() - footer_len..].to_vec();
        for bytes in stored {
            self.push_stored(bytes.into()).await?;
        }
        Ok(Some(footer))
    }

    /// Commits a verified write that never reached storage: the blob is written once,
    /// in place, with no staged copy to rename.
    async fn store_in_place(mut self: Box<Self>, size: u64) -> Result<BlobInfo> {
        let digest = self.hasher.settle().await?.peek();
        self.store_wrap(&digest).await?;
        let target = self.objects.object_path(&digest, self.form());
        let mut bytes = match self.current.take() {
            Some(part) => part,
            None => self.objects.part_writer(target.clone()),
        };
        bytes.path = target;
        bytes.finish().await?;
        if self.kek().is_some() {
            self.objects.reconcile_published(&digest).await?;
        }
        if self.staged {
            // A checkpoint may have saved held bytes in the staging area.
            self.objects.discard_staging(&self.staging_id).await?;
        }
        Ok(BlobInfo { digest, size })
    }

    /// For a digest of another algorithm than the write was hashed with (sessions start
    /// before the digest is known): hashes the staged parts once and verifies.
    async fn rehash_and_verify(
        &mut self,
        expected: &Digest,
        expected_size: Option<u64>,
        footer: Option<&[u8]>,
    ) -> Result<Digest> {
        let actual = self.rehash(expected, footer).await?;
        if let Err(err) = verify(expected, &actual, self.hasher.len(), expected_size) {
            self.objects.discard_staging(&self.staging_id).await?;
            return Err(err);
        }
        Ok(actual)
    }
}

#[async_trait::async_trait]
impl BlobWriter for ObjectBlobWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.encoder_ready().await?;
        self.hasher.update(&data).await?;
        let Some(frame_size) = self.encoding.as_ref().map(Encoding::frame_size) else {
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
        let encoding = match self.encoding.as_mut() {
            Some(encoding) => Some(
                encoding
                    .save_tail(&self.objects, &self.staging, &self.staging_id)
                    .await?,
            ),
            None => None,
        };
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
        if same_algorithm && let Some(stored) = self.verify_early(expected, expected_size).await? {
            return Ok(stored);
        }
        self.encoder_ready().await?;
        let footer = self.finish_encoding().await?;
        let in_memory =
            self.parts.is_empty() && self.current.as_ref().is_none_or(PartWriter::is_buffered);
        if in_memory && same_algorithm {
            return self.store_in_place(size).await;
        }
        // A failure from here leaves the staging area to upload expiry.
        self.seal_current().await?;
        let digest = if same_algorithm {
            self.hasher.settle().await?.peek()
        } else {
            self.rehash_and_verify(expected, expected_size, footer.as_deref())
                .await?
        };
        let info = BlobInfo { digest, size };
        self.publish(&info).await?;
        Ok(info)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.discard().await
    }
}
