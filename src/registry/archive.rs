//! The archive storage class on [`Registry`]: moving an image's blobs to a colder store,
//! and restoring them.
//!
//! Archiving copies the image's config and layers into the archive store, then marks the
//! manifest record archived (the commit point): from then on the image is listed, but
//! pulling its manifest is [`ErrorKind::ImageArchived`]. Its blobs become garbage
//! candidates in the main store; those no standard image holds are reclaimed by the next
//! collection, which is what makes the move a move. The manifest's own bytes stay in the
//! main store, so listing, inventory and restore need no archive read.
//!
//! Restoring claims each blob (so a collection leaves it alone for its grace period),
//! copies back what the main store no longer has, links and holds it again, and only
//! then clears the mark.

use futures::StreamExt;

use super::Registry;
use super::manifests::ManifestRecord;
use super::outbox::{CarriesEvents, Outcome, SlotState, Witness};
use super::schema::{InRepo, MANIFESTS};
use crate::blob::{AtRest, BlobStore};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::meta::Expect;
use crate::reference::{RepoName, Tag};
use crate::util::from_millis;

impl Registry {
    fn archive(&self) -> Result<&std::sync::Arc<dyn BlobStore>> {
        self.inner.archive.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "this registry has no archive store: set one with RegistryBuilder::archive_store",
            )
        })
    }

    pub(super) fn image_archived(repo: &RepoName, digest: &Digest, since_ms: u64) -> Error {
        Error::new(
            ErrorKind::ImageArchived,
            format!(
                "image {digest} in {repo} was archived at {}: restore it before pulling",
                crate::lifecycle::rfc3339::format(from_millis(since_ms))
            ),
        )
    }

    /// Copies `digest` from one blob store to another unless it is there already.
    /// Both stores are read and written as `at_rest` says (the repository's keys).
    async fn copy_blob(
        from: &dyn BlobStore,
        to: &dyn BlobStore,
        digest: &Digest,
        at_rest: &AtRest,
    ) -> Result<()> {
        if to.stat(digest).await?.is_some() {
            return to.grant(digest, at_rest).await;
        }
        let mut read = from.read_with(digest, None, at_rest).await?;
        let mut writer = to.writer_with(digest.algorithm(), at_rest).await?;
        while let Some(chunk) = read.stream.next().await {
            match chunk {
                Ok(chunk) => writer.write(chunk).await?,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        writer.commit(digest, None).await.map(|_| ())
    }

    /// Moves an image to the archive storage class: it stays listed, but cannot be pulled
    /// until [`Registry::restore_image`]. Needs an archive store
    /// ([`RegistryBuilder::archive_store`](crate::RegistryBuilder::archive_store)).
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, digest = %digest), err(level = "debug", Display))]
    pub async fn archive_image(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.archive_image_guarded(repo, digest, None, None)
            .await
            .map(|_| ())
    }

    /// [`Registry::archive_image`], only while exactly the tags `expected` point at the
    /// image (when given); `Ok(false)` if they changed.
    pub(super) async fn archive_image_guarded(
        &self,
        repo: &RepoName,
        digest: &Digest,
        expected: Option<&[Tag]>,
        rule: Option<u32>,
    ) -> Result<bool> {
        let archive = self.archive()?.clone();
        let Some((record, version)) = self.raw_manifest_record(repo, digest).await? else {
            return Err(Self::manifest_unknown(repo, digest));
        };
        if !self.is_visible(repo, digest, &record).await? {
            return Err(Self::manifest_unknown(repo, digest));
        }
        if record.archived_at_ms.is_some() {
            return Ok(true);
        }
        if let Some(expected) = expected
            && self.tags_pointing_at(repo, digest).await? != expected
        {
            return Ok(false);
        }
        let at_rest = self.at_rest_for(repo).await?;
        for blob in &record.blobs {
            Self::copy_blob(self.inner.blobs.as_ref(), archive.as_ref(), blob, &at_rest).await?;
        }
        let mut archived = ManifestRecord {
            archived_at_ms: Some(self.now_millis()),
            pending: false,
            ..record.clone()
        };
        // The commit point; a record changed since it was read means a new decision.
        let key = InRepo::new(repo, digest);
        let event = Event::ImageArchived {
            repo: repo.clone(),
            digest: digest.clone(),
            rule,
        };
        let witness = Witness::Carried {
            keys: vec![MANIFESTS.key(&key)],
        };
        let announced = self.announce(&event, witness, Vec::new()).await?;
        archived.carry(&announced.id);
        self.within_deadline(&announced)?;
        let archived_version = match MANIFESTS
            .put(self.meta(), &key, &archived, Expect::Version(version))
            .await
        {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::Conflict => {
                self.mark(&announced, SlotState::Void).await;
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        self.mark(&announced, SlotState::Committed).await;
        self.after_commit(event);
        if let Some(expected) = expected
            && self.tags_pointing_at(repo, digest).await? != expected
        {
            // Tagged again while its blobs were copied: the decision is stale, so the
            // image stays standard (the copies are left for the archive).
            let standard = ManifestRecord {
                archived_at_ms: None,
                ..archived
            };
            MANIFESTS
                .put(
                    self.meta(),
                    &key,
                    &standard,
                    Expect::Version(archived_version),
                )
                .await?;
            return Ok(false);
        }
        self.release_blobs(&record.blobs).await?;
        Ok(true)
    }

    /// Clears the archive mark of a manifest whose blobs a push just held again.
    pub(super) async fn reactivate(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let event = Event::ImageRestored {
            repo: repo.clone(),
            digest: digest.clone(),
        };
        self.commit_with_event(&MANIFESTS, &InRepo::new(repo, digest), |record| {
            let Some((record, _)) = record.filter(|(r, _)| r.archived_at_ms.is_some()) else {
                return Ok(None);
            };
            let restored = ManifestRecord {
                archived_at_ms: None,
                restored_at_ms: Some(self.now_millis()),
                ..record.clone()
            };
            Ok(Some((Outcome::Put(restored), event.clone())))
        })
        .await
        .map(drop)
    }

    /// Brings an archived image back to the standard storage class, pullable again.
    /// Does nothing for an image that is not archived.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, digest = %digest), err(level = "debug", Display))]
    pub async fn restore_image(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let Some((record, _)) = self.raw_manifest_record(repo, digest).await? else {
            return Err(Self::manifest_unknown(repo, digest));
        };
        if record.archived_at_ms.is_none() {
            return Ok(());
        }
        let archive = self.archive()?.clone();
        let at_rest = self.at_rest_for(repo).await?;
        for blob in &record.blobs {
            self.claim_blob(blob, Some(repo)).await?;
            Self::copy_blob(archive.as_ref(), self.inner.blobs.as_ref(), blob, &at_rest).await?;
            let info = self.inner.blobs.stat(blob).await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::BlobUnknown,
                    format!("blob {blob} of {digest} vanished while it was restored"),
                )
            })?;
            self.link(repo, &info, None).await?;
            self.hold_blob(repo, digest, blob, true).await?;
        }
        self.reactivate(repo, digest).await
    }
}
