//! The objects of an [`ObjectBlobStore`](super::ObjectBlobStore): where each kind lives
//! in the object store (the layout in `object.rs`'s docs), and the operations on single
//! published objects and staging areas that writes and reads share.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::compose::Composer;
use super::part_writer::PartWriter;
use super::sizes::LogicalSizes;
use super::wraps::{Wraps, delete_prefix};
use crate::codec::{HEADER_LEN, Header};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

pub(super) const BLOBS: &str = "blobs";
pub(super) const UPLOADS: &str = "uploads";
/// Name suffix of blobs in the at-rest format.
pub(super) const ENCODED_SUFFIX: &str = ".whrf";

/// The two forms a published blob can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// Stored as received.
    Raw,
    /// In the at-rest format.
    Encoded,
}

/// An object store with the blob layout and the settings of writes into it.
#[derive(Debug, Clone)]
pub(super) struct Objects {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) part_size: usize,
    pub(super) parts_in_flight: usize,
    pub(super) frame_size: usize,
    pub(super) wraps: Wraps,
    /// Joins staged parts inside the backend; without one they are streamed through.
    pub(super) composer: Option<Arc<dyn Composer>>,
    /// Encoded blobs' logical sizes read so far, so a stat is a metadata lookup.
    pub(super) logical_sizes: Arc<LogicalSizes>,
}

impl Objects {
    pub(super) fn object_path(&self, digest: &Digest, form: Form) -> Path {
        let hex = digest.hex();
        let name = match form {
            Form::Raw => hex.to_owned(),
            Form::Encoded => format!("{hex}{ENCODED_SUFFIX}"),
        };
        Path::from_iter([BLOBS, digest.algorithm().as_str(), &hex[..2], &name])
    }

    pub(super) fn staging_path(&self, staging_id: &str) -> Path {
        Path::from_iter([UPLOADS, staging_id])
    }

    pub(super) fn part_writer(&self, path: Path) -> PartWriter {
        PartWriter::new(
            self.store.clone(),
            path,
            self.part_size,
            self.parts_in_flight,
        )
    }

    /// The stored size of the blob in `form`, or `None`.
    pub(super) async fn head(&self, digest: &Digest, form: Form) -> Result<Option<u64>> {
        match self.store.head(&self.object_path(digest, form)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("looking up blob {digest}"), e)),
        }
    }

    /// If `digest` is stored, makes it readable through `kek` (when it is encrypted) and
    /// returns true.
    pub(super) async fn grant_existing(&self, digest: &Digest, kek: Option<&str>) -> Result<bool> {
        if self.head(digest, Form::Encoded).await?.is_some() {
            if let Some(kek) = kek {
                self.grant_encoded(digest, kek).await?;
            }
            return Ok(true);
        }
        Ok(self.head(digest, Form::Raw).await?.is_some())
    }

    /// The salt of `digest`'s encoded object when it is encrypted; `None` when there is
    /// no such object or it is not encrypted.
    async fn encrypted_salt(&self, digest: &Digest) -> Result<Option<[u8; 16]>> {
        let path = self.object_path(digest, Form::Encoded);
        match self.store.get_range(&path, 0..HEADER_LEN as u64).await {
            Ok(bytes) => Ok(Some(Header::decode(&bytes)?)
                .filter(Header::encrypted)
                .map(|header| header.salt)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(format!("reading blob {digest}"), e)),
        }
    }

    /// After publishing an encrypted `digest`: the object that won gets a wrap under
    /// every KEK a concurrent writer of the same blob wrapped under.
    pub(super) async fn reconcile_published(&self, digest: &Digest) -> Result<()> {
        match self.encrypted_salt(digest).await? {
            Some(salt) => self.wraps.reconcile(digest, &salt).await,
            None => Ok(()),
        }
    }

    pub(super) async fn grant_encoded(&self, digest: &Digest, kek: &str) -> Result<()> {
        match self.encrypted_salt(digest).await? {
            Some(salt) => self.wraps.grant(digest, &salt, kek).await,
            None => Ok(()),
        }
    }

    /// Removes everything staged under `staging_id`.
    pub(super) async fn discard_staging(&self, staging_id: &str) -> Result<()> {
        if !is_safe_id(staging_id) {
            return Err(Error::new(
                ErrorKind::BlobUploadInvalid,
                format!("staging id {staging_id:?} is not a valid id"),
            ));
        }
        delete_prefix(&self.store, &self.staging_path(staging_id))
            .await
            .map_err(|e| Error::storage(format!("discarding staging area {staging_id}"), e))
    }
}

/// Ids are generated by wharf (hex); anything else must not reach a storage path.
pub(super) fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}
