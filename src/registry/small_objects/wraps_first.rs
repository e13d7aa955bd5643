//! The wrapped store never gets ahead of the table's wraps.
//!
//! A data-key wrap in the table is a relaxed write; the wrapped store is durable on its
//! own. An encrypted blob too large for the table is an object there that relies on
//! its wrap, and a rotation deletes a wrap's old file once the new wrap is written.
//! After a crash the object would be there without its wrap (no key opens it, and every
//! later push of it fails), or the old file gone with the new wrap lost. So every
//! change under `blobs/` or `keys/` that reaches the wrapped store (puts, multipart
//! completions, copies, renames, deletes, and publishes by a [`Composer`]) syncs the
//! metadata store first, while a wrap this store wrote may not be durable yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};

use super::{SmallObjects, failed};
use crate::blob::{Composer, StagedObject};
use crate::error::{Error, Result};

/// How many relaxed wraps a store (with its clones) has written, and how many of them a
/// finished [`MetaStore::sync`](crate::MetaStore::sync) covers.
#[derive(Debug, Default)]
pub(super) struct WrapsSynced {
    written: AtomicU64,
    synced: AtomicU64,
}

impl WrapsSynced {
    /// A wrap went to the table.
    pub(super) fn written(&self) {
        self.written.fetch_add(1, Ordering::AcqRel);
    }
}

impl SmallObjects {
    /// `composer`, made to keep this store's rule: it publishes under `blobs/` only once
    /// the table's wraps are durable, and takes out a table object it would hide. Give
    /// it to the blob store this store serves.
    pub fn composer(&self, composer: Arc<dyn Composer>) -> Arc<dyn Composer> {
        Arc::new(WrapsFirst {
            inner: composer,
            store: self.clone(),
        })
    }

    /// Makes the table's wraps durable before the wrapped store changes at `locations`,
    /// if any is under `blobs/` or `keys/` and a wrap may not be durable yet.
    pub(super) async fn sync_before_wrapped(
        &self,
        locations: &[&Path],
    ) -> object_store::Result<()> {
        let written = self.wraps.written.load(Ordering::Acquire);
        let kept = locations.iter().find(|p| Self::key(p).is_some());
        let Some(location) = kept else {
            return Ok(());
        };
        if self.wraps.synced.load(Ordering::Acquire) >= written {
            return Ok(());
        }
        self.meta.sync().await.map_err(|e| failed(location, e))?;
        self.wraps.synced.fetch_max(written, Ordering::AcqRel);
        Ok(())
    }
}

/// A multipart write to the wrapped store at a place the table may hold an object.
#[derive(Debug)]
pub(super) struct Replacing {
    pub(super) upload: Box<dyn MultipartUpload>,
    pub(super) store: SmallObjects,
    pub(super) location: Path,
}

#[async_trait]
impl MultipartUpload for Replacing {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.store.sync_before_wrapped(&[&self.location]).await?;
        let done = self.upload.complete().await?;
        self.store.remove(&self.location).await?;
        Ok(done)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}

/// A composer publishing into the wrapped store of a [`SmallObjects`].
#[derive(Debug)]
struct WrapsFirst {
    inner: Arc<dyn Composer>,
    store: SmallObjects,
}

#[async_trait]
impl Composer for WrapsFirst {
    fn rename_limit(&self) -> u64 {
        self.inner.rename_limit()
    }

    async fn compose(&self, parts: &[StagedObject], target: &Path) -> Result<()> {
        let publishing = || format!("publishing {target}");
        self.store
            .sync_before_wrapped(&[target])
            .await
            .map_err(|e| Error::storage(publishing(), e))?;
        self.inner.compose(parts, target).await?;
        self.store
            .remove(target)
            .await
            .map_err(|e| Error::storage(publishing(), e))?;
        Ok(())
    }
}
