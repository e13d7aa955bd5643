//! Manifests on [`Registry`]: push, pull, stat, delete, platform resolution.
//!
//! A manifest in a repository is the record `manifest/<repo>@<digest>`; its bytes are a
//! blob in the blob store, so identical manifests in several repositories are stored once.
//! `parent/<repo>@<child>/<index>` is the reverse index of index children, written ahead
//! of the index's record and checked against it when read (see `docs/storage-layout.md`;
//! tags are in `tags.rs`, referrers in `referrers.rs`).
//!
//! A push writes the bytes, the referrers entry and the reverse index entries, then the
//! manifest record. By digest, that record is the commit point. By tag, the record is
//! written staged (invisible unless a tag points at it), the tag move is the commit
//! point, and the record is committed after it: a crash leaves the push wholly invisible
//! or visible together with its tag (see `docs/storage-layout.md`).

use bytes::Bytes;

use super::Registry;
pub(crate) use super::manifest_records::ManifestRecord;
use super::schema::{Marker, Nested, PARENTS};
use super::tags::PushCommit;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::manifest::{Descriptor, Manifest, ManifestMediaType};
use crate::meta::{Durability, Expect, Write};
use crate::reference::{Reference, RepoName, Tag};

/// A manifest as stored: its bytes, digest and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// The digest of the bytes.
    pub digest: Digest,
    /// The media type to serve as `Content-Type`.
    pub media_type: String,
    /// The bytes exactly as pushed.
    pub raw: Bytes,
}

/// A manifest's identity, type and size, as a `HEAD` request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The digest of the bytes.
    pub digest: Digest,
    /// The media type to serve as `Content-Type`.
    pub media_type: String,
    /// The size of the bytes.
    pub size: u64,
}

/// What a manifest push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    /// The manifest's digest (in the algorithm of the reference pushed to, if a digest).
    pub digest: Digest,
    /// Its media type.
    pub media_type: ManifestMediaType,
    /// The subject it refers to, for the `OCI-Subject` response header.
    pub subject: Option<Digest>,
}

/// The blobs of `manifest` that live in the registry: foreign layers (with `urls`) live
/// outside it.
pub(crate) fn stored_blobs(manifest: &Manifest) -> impl Iterator<Item = &Digest> {
    manifest
        .blobs()
        .filter(|d| d.urls.is_empty())
        .map(|d| &d.digest)
}

impl Registry {
    pub(super) fn manifest_unknown(repo: &RepoName, reference: &dyn std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::ManifestUnknown,
            format!("manifest {reference} is not in repository {repo}"),
        )
    }

    /// A descriptor of a stored manifest (an index entry, a subject) must state its size
    /// and media type, as a layer's size must match its blob.
    fn check_descriptor(
        repo: &RepoName,
        field: &str,
        descriptor: &Descriptor,
        stored: &ManifestRecord,
    ) -> Result<()> {
        let digest = &descriptor.digest;
        if descriptor.size != stored.size {
            return Err(Error::new(
                ErrorKind::ManifestInvalid,
                format!(
                    "{field}: {digest} is listed with size {}, but the manifest in {repo} has {} bytes",
                    descriptor.size, stored.size
                ),
            ));
        }
        if descriptor.media_type != stored.media_type {
            return Err(Error::new(
                ErrorKind::ManifestInvalid,
                format!(
                    "{field}: {digest} is listed as {:?}, but the manifest in {repo} is {:?}",
                    descriptor.media_type, stored.media_type
                ),
            ));
        }
        Ok(())
    }

    /// Checks that every blob and child manifest `manifest` needs is in `repo`.
    async fn check_references(&self, repo: &RepoName, manifest: &Manifest) -> Result<()> {
        let mut missing = Vec::new();
        for blob in manifest.blobs().filter(|d| d.urls.is_empty()) {
            match self.linked(repo, &blob.digest).await? {
                None => missing.push(blob.digest.to_string()),
                Some(link) if link.size != blob.size => {
                    return Err(Error::new(
                        ErrorKind::ManifestInvalid,
                        format!(
                            "manifest lists {} with size {}, but the blob in {repo} has {} bytes",
                            blob.digest, blob.size, link.size
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        for child in manifest.children() {
            match self.manifest_record(repo, &child.digest).await? {
                None => missing.push(child.digest.to_string()),
                Some(stored) => Self::check_descriptor(repo, "manifests", child, &stored)?,
            }
        }
        // A subject may be pushed after its referrers; one that is here must match.
        if let Some(subject) = manifest.subject()
            && let Some(stored) = self.manifest_record(repo, &subject.digest).await?
        {
            Self::check_descriptor(repo, "subject", subject, &stored)?;
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::ManifestBlobUnknown,
            format!(
                "manifest references content not in repository {repo}: {}",
                missing.join(", ")
            ),
        ))
    }

    /// Pushes a manifest by tag or by digest.
    ///
    /// The body is validated ([`Manifest::parse`]); a digest reference must match it;
    /// every blob it lists must be linked in `repo` and every child manifest pushed there
    /// ([`ErrorKind::ManifestBlobUnknown`] names what is missing). A push by tag moves the
    /// tag by compare-and-swap: concurrent pushes to one tag are applied one after
    /// another, each recorded in the tag's history.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, reference = %reference), err(level = "debug", Display))]
    pub async fn push_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        raw: Bytes,
        content_type: Option<&str>,
    ) -> Result<PushedManifest> {
        let manifest = Manifest::parse_with_limit(raw, content_type, self.inner.max_manifest_size)?;
        let repository = self.repository_for_push(repo).await?;
        if let Reference::Digest(expected) = reference {
            let actual = manifest.digest_with(expected.algorithm());
            if &actual != expected {
                return Err(Error::new(
                    ErrorKind::DigestInvalid,
                    format!("manifest pushed as {expected} has digest {actual}"),
                ));
            }
        }
        self.check_references(repo, &manifest).await?;
        // Stored under the digest it was pushed by (sha256 unless the client chose otherwise).
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(_) => manifest.digest().clone(),
        };
        self.claim_blob(&digest, None).await?;
        self.put_bytes_in(repo, &digest, manifest.raw().clone())
            .await?;
        let deadline = self.hold_deadline(repo, &digest);
        let record = self.hold_manifest_blobs(repo, &digest, &manifest).await?;
        self.check_hold_deadline(deadline.as_ref())?;
        match reference {
            // The record is the commit point of a push by digest.
            Reference::Digest(_) => {
                let event = Event::ManifestPushed {
                    repo: repo.clone(),
                    digest: digest.clone(),
                    media_type: record.media_type.clone(),
                    size: record.size,
                    tag: None,
                    previous: None,
                };
                self.commit_pushed_record(repo, &digest, &record, event, deadline.as_ref())
                    .await?;
            }
            // The tag move is the commit point of a push by tag: the record is staged
            // (invisible) before it and committed after it, so a crash in between leaves
            // either nothing visible or the manifest and its tag together.
            // Where batches are atomic, the record is committed in the tag move's batch.
            Reference::Tag(tag) => {
                let atomic = self.meta().atomic_batches();
                if !atomic {
                    self.stage_manifest_record(repo, &digest, &record).await?;
                    self.check_hold_deadline(deadline.as_ref())?;
                }
                let mutable = repository.settings.tag_is_mutable(tag);
                let pushed = |from: Option<&Digest>| Event::ManifestPushed {
                    repo: repo.clone(),
                    digest: digest.clone(),
                    media_type: record.media_type.clone(),
                    size: record.size,
                    tag: Some(tag.clone()),
                    previous: from.cloned(),
                };
                let moved = self
                    .move_tag(
                        repo,
                        tag,
                        Some(&digest),
                        |now| Self::may_move(repo, tag, mutable, now, &digest),
                        pushed,
                        Some(PushCommit {
                            deadline: deadline.as_ref(),
                            record: &record,
                        }),
                    )
                    .await?;
                if !(atomic && moved) {
                    self.commit_manifest_record(repo, &digest, &record).await?;
                }
            }
        }
        if let Some((subject, entry)) = Self::referrer_entry(&digest, &manifest) {
            self.confirm_referrer(repo, &subject, &entry).await?;
        }
        // Pushing an archived image again restores it, as in ECR: its blobs were just
        // checked and held.
        self.reactivate(repo, &digest).await?;
        self.scan_after_push(repo, &digest, &manifest, repository.settings.scan_on_push);
        Ok(PushedManifest {
            digest,
            media_type: manifest.media_type(),
            subject: record.subject,
        })
    }

    /// The entries that find a manifest before its record exists (readers check them
    /// against the record): a parent entry under each child it lists.
    fn index_writes(repo: &RepoName, digest: &Digest, manifest: &Manifest) -> Result<Vec<Write>> {
        let mut writes = Vec::new();
        for child in manifest.children() {
            let key = Nested::new(repo, &child.digest, digest);
            writes.push(PARENTS.put_write(&key, &Marker, Expect::Any)?);
        }
        Ok(writes)
    }

    /// The manifest's subject and its descriptor as the referrers API lists it.
    fn referrer_entry(digest: &Digest, manifest: &Manifest) -> Option<(Digest, Descriptor)> {
        let subject = manifest.subject()?;
        let entry = Descriptor {
            media_type: manifest.media_type().as_str().to_owned(),
            digest: digest.clone(),
            size: manifest.raw().len() as u64,
            artifact_type: manifest.referrer_artifact_type().map(str::to_owned),
            annotations: manifest.annotations().clone(),
            urls: Vec::new(),
            platform: None,
        };
        Some((subject.digest.clone(), entry))
    }

    /// Indexes the manifest and holds every blob it stores (and its own bytes) before its
    /// record exists, in one batch, so a collector either sees the holds or the push sees
    /// the collector (see `blob_records.rs`); returns the record to commit.
    async fn hold_manifest_blobs(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
    ) -> Result<ManifestRecord> {
        let blobs: Vec<Digest> = stored_blobs(manifest).cloned().collect();
        // Each blob once (a layer may be listed twice; a batch names each key once),
        // and its own bytes.
        let mut held = blobs.clone();
        held.push(digest.clone());
        held.sort();
        held.dedup();
        if let Some((subject, entry)) = Self::referrer_entry(digest, manifest) {
            self.list_referrer(repo, &subject, &entry).await?;
        }
        let index = Self::index_writes(repo, digest, manifest)?;
        // Relaxed: the holds must be there for a collector (which reads them at once)
        // before the record is, and durable with it, which the record's durable commit
        // makes them (MetaStore contract, point 10). Lost at a crash before it, they held
        // blobs for a push that never committed.
        self.record_holds(repo, digest, &held, index, Durability::Relaxed)
            .await?;
        for blob in &blobs {
            self.confirm_held(repo, digest, blob, true).await?;
        }
        self.confirm_held(repo, digest, digest, false).await?;
        Ok(ManifestRecord {
            media_type: manifest.media_type().as_str().to_owned(),
            size: manifest.raw().len() as u64,
            pushed_at_ms: self.now_millis(),
            blob_bytes: manifest.blobs().map(|b| b.size).sum(),
            subject: manifest.subject().map(|s| s.digest.clone()),
            artifact_type: manifest.artifact_type().map(str::to_owned),
            children: manifest
                .children()
                .iter()
                .map(|c| c.digest.clone())
                .collect(),
            blobs,
            archived_at_ms: None,
            restored_at_ms: None,
            held: true,
            pending: false,
            events: Vec::new(),
        })
    }

    /// Whether a tag that points at `now` may move to `to`: an immutable tag never
    /// moves once set.
    fn may_move(
        repo: &RepoName,
        tag: &Tag,
        mutable: bool,
        now: Option<&Digest>,
        to: &Digest,
    ) -> Result<bool> {
        match now {
            Some(current) if !mutable && current != to => Err(Error::new(
                ErrorKind::TagImmutable,
                format!(
                    "tag {tag} in {repo} is immutable and points at {current}; it cannot move to {to}"
                ),
            )),
            _ => Ok(true),
        }
    }

    /// Points `tag` at the manifest `digest`, already pushed to `repo` (the `?tag=` of a
    /// push by digest). Tag immutability holds as for a push by tag.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, tag = %tag, digest = %digest), err(level = "debug", Display))]
    pub async fn tag_manifest(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
        let repository = self.repository(repo).await?;
        let reference = Reference::Digest(digest.clone());
        self.resolve(repo, &reference).await?;
        let mutable = repository.settings.tag_is_mutable(tag);
        let moved = |from: Option<&Digest>| Event::TagMoved {
            repo: repo.clone(),
            tag: tag.clone(),
            from: from.cloned(),
            to: digest.clone(),
        };
        self.move_tag(
            repo,
            tag,
            Some(digest),
            |now| Self::may_move(repo, tag, mutable, now, digest),
            moved,
            None,
        )
        .await?;
        // A delete of the manifest that ran meanwhile may have missed the new tag: a tag
        // never points at nothing, so it goes again.
        if self.manifest_record(repo, digest).await?.is_none() {
            self.untag(repo, tag, digest, None).await?;
            return Err(Self::manifest_unknown(repo, digest));
        }
        Ok(())
    }

    pub(super) async fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(Digest, ManifestRecord)> {
        let digest = match reference {
            Reference::Tag(tag) => self.resolve_tag(repo, tag).await?,
            Reference::Digest(d) => d.clone(),
        };
        let record = self
            .manifest_record(repo, &digest)
            .await?
            .ok_or_else(|| Self::manifest_unknown(repo, reference))?;
        if let Some(since) = record.archived_at_ms {
            return Err(Self::image_archived(repo, &digest, since));
        }
        Ok((digest, record))
    }

    /// A manifest's digest, media type and size, without its bytes (`HEAD`).
    pub async fn stat_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        let (digest, record) = self.resolve(repo, reference).await?;
        Ok(ManifestInfo {
            digest,
            media_type: record.media_type,
            size: record.size,
        })
    }

    /// A manifest's bytes, by tag or digest.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo, reference = %reference), err(level = "debug", Display))]
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let (digest, record) = self.resolve(repo, reference).await?;
        let raw = match self.inner.manifests.get(&digest) {
            Some(raw) => raw,
            None => {
                let raw = self.get_bytes_in(repo, &digest).await?;
                self.inner.manifests.insert(&digest, &raw);
                raw
            }
        };
        self.record_pull(repo, &digest).await?;
        Ok(StoredManifest {
            digest,
            media_type: record.media_type,
            raw,
        })
    }

    /// The child of the index at `reference` that best fits `platform`, with the
    /// precedence `containerd` and `docker pull` use ([`Manifest::select_platform`]).
    pub async fn resolve_platform(
        &self,
        repo: &RepoName,
        reference: &Reference,
        platform: &crate::manifest::Platform,
    ) -> Result<Descriptor> {
        let stored = self.get_manifest(repo, reference).await?;
        let manifest = Manifest::parse_stored(stored.raw, &stored.media_type)?;
        if !manifest.media_type().is_index() {
            return Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!(
                    "{reference} in {repo} is an image manifest, not an index: it has no platforms to choose from"
                ),
            ));
        }
        manifest.select_platform(platform).cloned().ok_or_else(|| {
            let offered: Vec<String> = manifest
                .children()
                .iter()
                .filter_map(|c| c.platform.as_ref().map(crate::manifest::Platform::to_text))
                .collect();
            Error::new(
                ErrorKind::ManifestUnknown,
                format!(
                    "index {reference} in {repo} has no manifest for {}; it offers {}",
                    platform.to_text(),
                    if offered.is_empty() {
                        "none".to_owned()
                    } else {
                        offered.join(", ")
                    }
                ),
            )
        })
    }
}
