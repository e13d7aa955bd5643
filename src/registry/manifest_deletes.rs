//! Deleting a manifest: refused while an index lists it; its tags go first, then the
//! record by compare-and-swap (the commit point), then its referrer and index entries,
//! with its blobs released to the collector before and after.

use super::Registry;
use super::outbox::{SlotState, Witness};
use super::schema::{InRepo, MANIFESTS, Nested, PARENTS, Prefix, REFERRERS, TAGGED};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::meta::Expect;
use crate::reference::{RepoName, Tag};

/// Why a manifest is deleted: it decides the delete's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeleteCause {
    /// A caller asked.
    Explicit,
    /// A lifecycle rule (its priority; `None` for a referrer that went with its subject).
    Expired(Option<u32>),
}

impl Registry {
    /// Deletes a manifest from `repo`, with its tags and its referrers entry. Refused with
    /// [`ErrorKind::ManifestReferenced`] while an index in `repo` lists it. The bytes stay
    /// for garbage collection.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, digest = %digest), err(level = "debug", Display))]
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.delete_manifest_guarded(repo, digest, None, DeleteCause::Explicit)
            .await
            .map(|_| ())
    }

    /// [`Registry::delete_manifest`], but only while exactly the tags `expected` point at
    /// it (a lifecycle decision made on them): `Ok(false)` if a tag moved to or from it
    /// first, or it was pushed again during the delete. The manifest then stays, though
    /// the tags the decision was made on may already be gone.
    pub(super) async fn delete_manifest_guarded(
        &self,
        repo: &RepoName,
        digest: &Digest,
        expected: Option<&[Tag]>,
        cause: DeleteCause,
    ) -> Result<bool> {
        let key = InRepo::new(repo, digest);
        let (record, version) = match self.raw_manifest_record(repo, digest).await? {
            Some((record, version)) if self.is_visible(repo, digest, &record).await? => {
                (record, version)
            }
            _ => return Err(Self::manifest_unknown(repo, digest)),
        };
        let tags_changed = |now: &[Tag]| expected.is_some_and(|expected| now != expected);
        if tags_changed(&self.tags_pointing_at(repo, digest).await?) {
            return Ok(false);
        }
        let parents = PARENTS
            .list_all(self.meta(), &Prefix::of_subject(repo, digest))
            .await?;
        for entry in parents {
            let parent = &entry.key.item;
            if self.manifest_record(repo, parent).await?.is_some() {
                return Err(Error::new(
                    ErrorKind::ManifestReferenced,
                    format!(
                        "manifest {digest} in {repo} is listed by index {parent}: delete the index first"
                    ),
                ));
            }
            // Left by an index push that never finished or an index since deleted.
            PARENTS.delete(self.meta(), &entry.key, Expect::Any).await?;
        }
        // Candidates ahead of the commit point, so a crash after it leaks nothing (the
        // grace period keeps the collector from judging them before the delete is done).
        let mut held = record.blobs.clone();
        held.push(digest.clone());
        self.release_blobs(&held).await?;
        // Tags go first, so a crash never leaves a tag pointing at nothing; a crash after
        // them leaves the manifest untagged, and deleting it again finishes the job.
        // `move_tag` removes each reverse entry with its tag; entries left by tags that
        // moved elsewhere are checked against the tag when read.
        let tagged = Prefix::of_subject(repo, digest);
        for reverse in TAGGED.list_all(self.meta(), &tagged).await? {
            let tag = reverse.key.item;
            // A guarded delete removes only the tags it was decided on.
            if expected.is_some_and(|expected| !expected.contains(&tag)) {
                continue;
            }
            let rule = match cause {
                DeleteCause::Explicit => None,
                DeleteCause::Expired(rule) => rule,
            };
            self.untag(repo, &tag, digest, rule).await?;
        }
        // Marked before the commit point, so no listing confirms it from here on.
        if let Some(subject) = &record.subject {
            self.mark_referrer_deleting(repo, subject, digest).await?;
        }
        // The commit point: from here the manifest is gone; the rest tidies up after it.
        let event = match cause {
            DeleteCause::Explicit => Event::ManifestDeleted {
                repo: repo.clone(),
                digest: digest.clone(),
            },
            DeleteCause::Expired(rule) => Event::ImageExpired {
                repo: repo.clone(),
                digest: digest.clone(),
                rule,
            },
        };
        let witness = Witness::Removed {
            key: MANIFESTS.key(&key),
        };
        let announced = self
            .announce(&event, witness, record.events.clone())
            .await?;
        self.within_deadline(&announced)?;
        match MANIFESTS
            .delete(self.meta(), &key, Expect::Version(version))
            .await
        {
            // Pushed again meanwhile: a guarded delete plans again; for a plain delete
            // the push came after it, and the manifest is there again.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                self.mark(&announced, SlotState::Void).await;
                self.keep_listed(repo, digest, &record).await?;
                return Ok(expected.is_none());
            }
            other => other?,
        }
        self.mark(&announced, SlotState::Committed).await;
        self.after_commit(event);
        if expected.is_some() && !self.tags_pointing_at(repo, digest).await?.is_empty() {
            // A tag moved to it just before the commit point: the decision was made on
            // other tags, so the manifest comes back (a push racing it re-commits too).
            self.commit_manifest_record(repo, digest, &record).await?;
            self.keep_listed(repo, digest, &record).await?;
            return Ok(false);
        }
        if self.raw_manifest_record(repo, digest).await?.is_some() {
            // A push re-committed it: its referrers and index entries are its own again.
            return Ok(true);
        }
        self.forget_pulls(repo, digest).await?;
        if let Some(subject) = &record.subject {
            self.unlist_referrer(repo, subject, digest).await?;
            // An entry of the older layout, if a store from before the lists kept one.
            let entry = Nested::new(repo, subject, digest);
            REFERRERS.delete(self.meta(), &entry, Expect::Any).await?;
        }
        for child in &record.children {
            let entry = Nested::new(repo, child, digest);
            PARENTS.delete(self.meta(), &entry, Expect::Any).await?;
        }
        // Again after the commit point: a collection that looked in between dropped the
        // candidates while the manifest still held its blobs.
        self.release_blobs(&held).await?;
        Ok(true)
    }

    /// After a delete that did not happen (the manifest was pushed or tagged again): its
    /// referrer entry is `pending` again, so a listing may confirm it.
    async fn keep_listed(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &super::manifests::ManifestRecord,
    ) -> Result<()> {
        match &record.subject {
            Some(subject) => self.unmark_referrer_deleting(repo, subject, digest).await,
            None => Ok(()),
        }
    }
}
