//! Manifests, tags and referrers on [`Registry`].
//!
//! Keys (see `docs/storage-layout.md`):
//!
//! - `manifest/<repo>@<digest>`: a [`ManifestRecord`]; the manifest's bytes are a blob in
//!   the blob store, so identical manifests in several repositories are stored once;
//! - `tag/<repo>@<tag>`: the digest a tag points at, with the tag's bounded history, in one
//!   record so a move and its history change together under one compare-and-swap;
//! - `referrer/<repo>@<subject>/<digest>`: a referrer of `subject` and its descriptor;
//! - `tagged/<repo>@<digest>/<tag>` and `parent/<repo>@<child>/<index>`: reverse indexes
//!   for deletes, written ahead of what they index and checked against it when read.
//!
//! A push writes the bytes, the referrers entry and the reverse index entries, then the
//! manifest record. By digest, that record is the commit point. By tag, the record is
//! written staged (invisible unless a tag points at it), the tag move is the commit
//! point, and the record is committed after it: a crash leaves the push wholly invisible
//! or visible together with its tag (see `docs/storage-layout.md`).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Registry, decode, encode, link_key};
use crate::blob::BlobStoreExt;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest, ManifestMediaType, OCI_IMAGE_INDEX};
use crate::meta::Expect;
use crate::reference::{Reference, RepoName, Tag};
use crate::upload::{from_millis, now_millis};

/// Moves kept in a tag's history; older ones are dropped.
pub const TAG_HISTORY_LEN: usize = 50;
/// Attempts at moving a tag under contention before giving up.
const TAG_MOVE_ATTEMPTS: usize = 64;

/// What wharf keeps about a manifest in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ManifestRecord {
    pub(super) media_type: String,
    pub(super) size: u64,
    pub(super) pushed_at_ms: u64,
    /// Bytes of the config and layers the manifest lists.
    #[serde(default)]
    pub(super) blob_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) subject: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) children: Vec<Digest>,
    /// Staged by a push by tag whose tag move (its commit point) may not have happened:
    /// visible only while a tag points at it, until the push clears the flag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) pending: bool,
}

/// A tag's target and history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct TagRecord {
    pub(super) digest: Option<Digest>,
    history: Vec<TagMove>,
}

/// One move of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMove {
    /// Where the tag pointed before (`None`: it was created).
    pub from: Option<Digest>,
    /// Where it points after (`None`: it was deleted).
    pub to: Option<Digest>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl TagMove {
    /// When the move happened.
    pub fn at(&self) -> std::time::SystemTime {
        from_millis(self.at_ms)
    }
}

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

/// The referrers of a subject, as the distribution spec's referrers API returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// An OCI image index listing the referrers' descriptors.
    pub index: Bytes,
    /// Whether an `artifactType` filter was applied (`OCI-Filters-Applied: artifactType`).
    pub filtered: bool,
}

pub(super) fn manifest_prefix(repo: &RepoName) -> String {
    format!("manifest/{repo}@")
}

fn manifest_key(repo: &RepoName, digest: &Digest) -> String {
    format!("manifest/{repo}@{digest}")
}

pub(super) fn tag_prefix(repo: &RepoName) -> String {
    format!("tag/{repo}@")
}

fn tag_key(repo: &RepoName, tag: &Tag) -> String {
    format!("{}{tag}", tag_prefix(repo))
}

fn referrer_prefix(repo: &RepoName, subject: &Digest) -> String {
    format!("referrer/{repo}@{subject}/")
}

/// Reverse index: the tags that (may) point at `digest`. Entries are written before a tag
/// moves to the digest and removed after it moves away, so a crash leaves only extra
/// entries, which readers check against the tag itself.
fn tagged_prefix(repo: &RepoName, digest: &Digest) -> String {
    format!("tagged/{repo}@{digest}/")
}

/// Reverse index: the indexes in `repo` that list `child`, written before the index's
/// record.
fn parent_prefix(repo: &RepoName, child: &Digest) -> String {
    format!("parent/{repo}@{child}/")
}

impl Registry {
    fn manifest_unknown(repo: &RepoName, reference: &dyn std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::ManifestUnknown,
            format!("manifest {reference} is not in repository {repo}"),
        )
    }

    /// A manifest's record, visible or not, with its version.
    async fn raw_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<(ManifestRecord, crate::meta::Version)>> {
        let key = manifest_key(repo, digest);
        match self.inner.meta.get(&key).await? {
            Some(v) => Ok(Some((decode(&v.value, &key)?, v.version))),
            None => Ok(None),
        }
    }

    /// A manifest's record if the manifest is visible in `repo`.
    pub(super) async fn manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        match self.raw_manifest_record(repo, digest).await? {
            Some((record, _)) if self.is_visible(repo, digest, &record).await? => Ok(Some(record)),
            _ => Ok(None),
        }
    }

    /// Whether a record is visible: committed, or staged by a push whose tag now points
    /// at it (the tag move was the push's commit point).
    pub(super) async fn is_visible(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<bool> {
        Ok(!record.pending || !self.tags_pointing_at(repo, digest).await?.is_empty())
    }

    /// The tags that point at `digest` now: reverse-index entries checked against the tags.
    async fn tags_pointing_at(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Tag>> {
        let prefix = tagged_prefix(repo, digest);
        let mut tags = Vec::new();
        for key in self.list_all_keys(&prefix).await? {
            let tag: Tag = key[prefix.len()..].parse()?;
            if self.tag_target(repo, &tag).await?.as_ref() == Some(digest) {
                tags.push(tag);
            }
        }
        Ok(tags)
    }

    /// Where a tag points, if anywhere.
    async fn tag_target(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        let key = tag_key(repo, tag);
        match self.inner.meta.get(&key).await? {
            Some(v) => Ok(decode::<TagRecord>(&v.value, &key)?.digest),
            None => Ok(None),
        }
    }

    /// Stages the record of a push by tag: invisible until the tag moves to it. An
    /// existing record stays as it is.
    async fn stage_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<()> {
        let staged = ManifestRecord {
            pending: true,
            ..record.clone()
        };
        match self
            .inner
            .meta
            .put(
                &manifest_key(repo, digest),
                encode(&staged)?,
                Expect::Absent,
            )
            .await
        {
            Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
            _ => Ok(()),
        }
    }

    /// Makes a manifest's record committed: clears `pending`, or writes `record` if there
    /// is none (a concurrent delete removed it: the push wins). The first push time stands.
    async fn commit_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<()> {
        loop {
            let (next, expect) = match self.raw_manifest_record(repo, digest).await? {
                None => (record.clone(), Expect::Absent),
                Some((existing, _)) if !existing.pending => return Ok(()),
                Some((existing, version)) => (
                    ManifestRecord {
                        pending: false,
                        ..existing
                    },
                    Expect::Version(version),
                ),
            };
            let next = ManifestRecord {
                pending: false,
                ..next
            };
            match self
                .inner
                .meta
                .put(&manifest_key(repo, digest), encode(&next)?, expect)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits a staged record that a tag about to move away makes visible, so the
    /// manifest stays visible after the move. Does nothing for absent or committed records.
    async fn settle_pending(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        match self.raw_manifest_record(repo, digest).await? {
            Some((record, _)) if record.pending => {
                self.commit_manifest_record(repo, digest, &record).await
            }
            _ => Ok(()),
        }
    }

    /// Checks that every blob and child manifest `manifest` needs is in `repo`.
    async fn check_references(&self, repo: &RepoName, manifest: &Manifest) -> Result<()> {
        let mut missing = Vec::new();
        // Foreign layers (with `urls`) live outside the registry.
        for blob in manifest.blobs().filter(|d| d.urls.is_empty()) {
            let key = link_key(repo, &blob.digest);
            match self.inner.meta.get(&key).await? {
                None => missing.push(blob.digest.to_string()),
                Some(v) => {
                    let link: super::LinkRecord = decode(&v.value, &key)?;
                    if link.size != blob.size {
                        return Err(Error::new(
                            ErrorKind::ManifestInvalid,
                            format!(
                                "manifest lists {} with size {}, but the blob in {repo} has {} bytes",
                                blob.digest, blob.size, link.size
                            ),
                        ));
                    }
                }
            }
        }
        for child in manifest.children() {
            if self.manifest_record(repo, &child.digest).await?.is_none() {
                missing.push(child.digest.to_string());
            }
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
        self.inner
            .blobs
            .put_bytes(&digest, manifest.raw().clone())
            .await?;
        let subject = manifest.subject().map(|s| s.digest.clone());
        if let Some(subject) = &subject {
            let entry = Descriptor {
                media_type: manifest.media_type().as_str().to_owned(),
                digest: digest.clone(),
                size: manifest.raw().len() as u64,
                artifact_type: manifest.referrer_artifact_type().map(str::to_owned),
                annotations: manifest.annotations().clone(),
                urls: Vec::new(),
                platform: None,
            };
            let key = format!("{}{digest}", referrer_prefix(repo, subject));
            self.inner
                .meta
                .put(&key, encode(&entry)?, Expect::Any)
                .await?;
        }
        let children: Vec<Digest> = manifest
            .children()
            .iter()
            .map(|c| c.digest.clone())
            .collect();
        for child in &children {
            let key = format!("{}{digest}", parent_prefix(repo, child));
            self.inner.meta.put(&key, Bytes::new(), Expect::Any).await?;
        }
        let record = ManifestRecord {
            media_type: manifest.media_type().as_str().to_owned(),
            size: manifest.raw().len() as u64,
            pushed_at_ms: now_millis(),
            blob_bytes: manifest.blobs().map(|b| b.size).sum(),
            subject: subject.clone(),
            artifact_type: manifest.artifact_type().map(str::to_owned),
            children,
            pending: false,
        };
        match reference {
            // The record is the commit point of a push by digest.
            Reference::Digest(_) => self.commit_manifest_record(repo, &digest, &record).await?,
            // The tag move is the commit point of a push by tag: the record is staged
            // (invisible) before it and committed after it, so a crash in between leaves
            // either nothing visible or the manifest and its tag together.
            Reference::Tag(tag) => {
                self.stage_manifest_record(repo, &digest, &record).await?;
                let mutable = repository.settings.tag_is_mutable(tag);
                self.move_tag(repo, tag, Some(&digest), |now| match now {
                    Some(current) if !mutable && current != &digest => Err(Error::new(
                        ErrorKind::TagImmutable,
                        format!(
                            "tag {tag} in {repo} is immutable and points at {current}; it cannot move to {digest}"
                        ),
                    )),
                    _ => Ok(true),
                })
                .await?;
                self.commit_manifest_record(repo, &digest, &record).await?;
            }
        }
        Ok(PushedManifest {
            digest,
            media_type: manifest.media_type(),
            subject,
        })
    }

    /// Points `tag` at `to` (`None` removes it) if `when` holds for where it points now,
    /// by compare-and-swap, recording the move and keeping the reverse index ahead of it.
    async fn move_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        to: Option<&Digest>,
        when: impl Fn(Option<&Digest>) -> Result<bool>,
    ) -> Result<()> {
        let key = tag_key(repo, tag);
        if let Some(to) = to {
            let reverse = format!("{}{tag}", tagged_prefix(repo, to));
            self.inner
                .meta
                .put(&reverse, Bytes::new(), Expect::Any)
                .await?;
        }
        for _ in 0..TAG_MOVE_ATTEMPTS {
            let (mut record, expect) = match self.inner.meta.get(&key).await? {
                Some(v) => (
                    decode::<TagRecord>(&v.value, &key)?,
                    Expect::Version(v.version),
                ),
                None => (TagRecord::default(), Expect::Absent),
            };
            if record.digest.as_ref() == to || !when(record.digest.as_ref())? {
                return Ok(());
            }
            if let Some(old) = &record.digest {
                // The old target may be visible only through this tag.
                self.settle_pending(repo, old).await?;
            }
            record.history.push(TagMove {
                from: record.digest.take(),
                to: to.cloned(),
                at_ms: now_millis(),
            });
            let overflow = record.history.len().saturating_sub(TAG_HISTORY_LEN);
            record.history.drain(..overflow);
            let from = record.history.last().and_then(|m| m.from.clone());
            record.digest = to.cloned();
            match self.inner.meta.put(&key, encode(&record)?, expect).await {
                Ok(_) => {
                    if let Some(from) = from {
                        let reverse = format!("{}{tag}", tagged_prefix(repo, &from));
                        self.inner.meta.delete(&reverse, Expect::Any).await?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "tag {tag} in {repo}: too many concurrent moves, gave up after {TAG_MOVE_ATTEMPTS} attempts"
            ),
        ))
    }

    /// The digest `tag` points at; [`ErrorKind::ManifestUnknown`] if there is none.
    pub async fn resolve_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Digest> {
        let key = tag_key(repo, tag);
        let record: Option<TagRecord> = match self.inner.meta.get(&key).await? {
            Some(v) => Some(decode(&v.value, &key)?),
            None => None,
        };
        record
            .and_then(|r| r.digest)
            .ok_or_else(|| Self::manifest_unknown(repo, tag))
    }

    async fn resolve(
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
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let (digest, record) = self.resolve(repo, reference).await?;
        let raw = self.inner.blobs.get_bytes(&digest).await?;
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
        let manifest =
            Manifest::parse_with_limit(stored.raw, Some(&stored.media_type), usize::MAX)?;
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

    /// Tags of `repo` in lexical order, after `last`, at most `n` (the `tags/list` API).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: usize,
        last: Option<&Tag>,
    ) -> Result<Vec<Tag>> {
        self.repository(repo).await?;
        let prefix = tag_prefix(repo);
        let after = last.map(|t| tag_key(repo, t));
        let entries = self.inner.meta.list(&prefix, after.as_deref(), n).await?;
        let mut tags = Vec::with_capacity(entries.len());
        for entry in entries {
            // Deleted tags keep their history record with no target.
            let record: TagRecord = decode(&entry.value, &entry.key)?;
            if record.digest.is_some() {
                tags.push(entry.key[prefix.len()..].parse()?);
            }
        }
        Ok(tags)
    }

    /// Where `tag` pointed over time, oldest first (at most [`TAG_HISTORY_LEN`] moves).
    pub async fn tag_history(&self, repo: &RepoName, tag: &Tag) -> Result<Vec<TagMove>> {
        let key = tag_key(repo, tag);
        match self.inner.meta.get(&key).await? {
            Some(v) => Ok(decode::<TagRecord>(&v.value, &key)?.history),
            None => Ok(Vec::new()),
        }
    }

    /// Removes a tag; the manifest stays.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        self.resolve_tag(repo, tag).await?;
        self.move_tag(repo, tag, None, |_| Ok(true)).await
    }

    /// Deletes a manifest from `repo`, with its tags and its referrers entry. Refused with
    /// [`ErrorKind::ManifestReferenced`] while an index in `repo` lists it. The bytes stay
    /// for garbage collection.
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let key = manifest_key(repo, digest);
        let (record, version) = match self.raw_manifest_record(repo, digest).await? {
            Some((record, version)) if self.is_visible(repo, digest, &record).await? => {
                (record, version)
            }
            _ => return Err(Self::manifest_unknown(repo, digest)),
        };
        let parents = self.list_all_keys(&parent_prefix(repo, digest)).await?;
        for parent_key in parents {
            let parent: Digest = parent_key[parent_prefix(repo, digest).len()..].parse()?;
            if self.manifest_record(repo, &parent).await?.is_some() {
                return Err(Error::new(
                    ErrorKind::ManifestReferenced,
                    format!(
                        "manifest {digest} in {repo} is listed by index {parent}: delete the index first"
                    ),
                ));
            }
            // Left by an index push that never finished or an index since deleted.
            self.inner.meta.delete(&parent_key, Expect::Any).await?;
        }
        // The commit point: from here the manifest is gone; the rest tidies up after it.
        self.inner
            .meta
            .delete(&key, Expect::Version(version))
            .await?;
        let tagged = tagged_prefix(repo, digest);
        for reverse in self.list_all_keys(&tagged).await? {
            let tag: Tag = reverse[tagged.len()..].parse()?;
            self.move_tag(repo, &tag, None, |now| Ok(now == Some(digest)))
                .await?;
            self.inner.meta.delete(&reverse, Expect::Any).await?;
        }
        self.forget_pulls(repo, digest).await?;
        if let Some(subject) = &record.subject {
            let entry = format!("{}{digest}", referrer_prefix(repo, subject));
            self.inner.meta.delete(&entry, Expect::Any).await?;
        }
        for child in &record.children {
            let entry = format!("{}{digest}", parent_prefix(repo, child));
            self.inner.meta.delete(&entry, Expect::Any).await?;
        }
        Ok(())
    }

    /// Every key under `prefix`, page by page.
    async fn list_all_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let page = self
                .inner
                .meta
                .list_keys(prefix, keys.last().map(String::as_str), 1000)
                .await?;
            if page.is_empty() {
                return Ok(keys);
            }
            keys.extend(page);
        }
    }

    /// The referrers of `subject` in `repo`, as an OCI image index, optionally only those
    /// of `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let prefix = referrer_prefix(repo, subject);
        let mut descriptors = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .meta
                .list(&prefix, after.as_deref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for entry in page {
                let descriptor: Descriptor = decode(&entry.value, &entry.key)?;
                if artifact_type.is_some_and(|t| descriptor.artifact_type.as_deref() != Some(t)) {
                    continue;
                }
                // An entry written by a push that had not finished is not a referrer yet.
                if self
                    .manifest_record(repo, &descriptor.digest)
                    .await?
                    .is_some()
                {
                    descriptors.push(descriptor);
                }
            }
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Index<'a> {
            schema_version: u32,
            media_type: &'a str,
            manifests: Vec<Descriptor>,
        }
        let index = serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: OCI_IMAGE_INDEX,
            manifests: descriptors,
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("encoding referrers of {subject}: {e}"),
            )
        })?;
        Ok(Referrers {
            index: index.into(),
            filtered: artifact_type.is_some(),
        })
    }
}
