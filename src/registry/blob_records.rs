//! Blob records: the handshake that lets garbage collection run while pushes go on.
//!
//! Every stored blob has a record `blob/<digest>` in one of three states. Writers *claim*
//! a blob before they publish or link it (creating the record, or moving it back to
//! `live` and refreshing its touch time); a manifest push writes a reference
//! `ref/<blob>/<hash of repo and manifest>` for each blob it lists and then *confirms* the
//! record. The collector *condemns* a record by compare-and-swap, looks for references
//! again, and only then marks it `deleting` and removes links, bytes and record, in that
//! order.
//!
//! Both sides write first and read second (a push: reference, then record; the
//! collector: record, then references), so on a linearizable metadata store at least one
//! of them sees the other: either the collector finds the reference and backs off, or
//! the push finds the condemned record and rescues it by compare-and-swap, or finds it
//! `deleting` and fails with `MANIFEST_BLOB_UNKNOWN`. A manifest never becomes visible
//! over a blob that is gone. See `gc.rs` for the collector's side.
//!
//! Blobs that may have become garbage are listed as *candidates* `gc/candidate/<digest>`:
//! written when a blob is first stored and when a manifest that held it is deleted, so a
//! steady-state collection visits only those, never the whole store. References outlive
//! their manifest until the collector prunes them, so a push of the same manifest racing
//! its delete never loses its hold.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Registry, decode, encode, link_key};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Expect, Version};
use crate::reference::RepoName;
use crate::util::now_millis;

/// Where a blob stands with the garbage collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BlobState {
    /// Stored and usable.
    Live,
    /// A collector found no reference and is checking once more; a writer may rescue it.
    Condemned,
    /// Being removed: no one may use it until the record is gone.
    Deleting,
}

/// What wharf keeps about a stored blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlobRecord {
    pub(crate) state: BlobState,
    /// When a writer last claimed it, or when its state last changed.
    pub(crate) touched_at_ms: u64,
    /// Repositories it was linked into (a superset: unlinks do not shrink it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) repos: Vec<String>,
}

impl BlobRecord {
    /// Whether the record has sat in its state for `after` or longer.
    pub(crate) fn stalled(&self, after: Duration) -> bool {
        now_millis().saturating_sub(self.touched_at_ms) >= after.as_millis() as u64
    }
}

/// A manifest's hold on one blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefRecord {
    pub(crate) repo: String,
    pub(crate) manifest: Digest,
    pub(crate) at_ms: u64,
}

/// A blob that may have become garbage, since `since_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CandidateRecord {
    pub(crate) since_ms: u64,
}

pub(crate) const BLOB_RECORD_PREFIX: &str = "blob/";
pub(crate) const CANDIDATE_PREFIX: &str = "gc/candidate/";

pub(crate) fn blob_record_key(digest: &Digest) -> String {
    format!("{BLOB_RECORD_PREFIX}{digest}")
}

pub(crate) fn candidate_key(digest: &Digest) -> String {
    format!("{CANDIDATE_PREFIX}{digest}")
}

pub(crate) fn ref_prefix(blob: &Digest) -> String {
    format!("ref/{blob}/")
}

/// The reference key of `manifest` in `repo` on `blob`. The pair is hashed so the key
/// stays short whatever the repository name and digest algorithms.
fn ref_key(blob: &Digest, repo: &RepoName, manifest: &Digest) -> String {
    let holder = Digest::of(Algorithm::Sha256, format!("{repo}@{manifest}").as_bytes());
    format!("{}{}", ref_prefix(blob), holder.hex())
}

/// How long a claim waits for a collector that is removing the same blob.
const DELETION_WAIT: Duration = Duration::from_millis(20);

/// After this long in `condemned` or `deleting`, a record is taken as left by a collector
/// that stopped, and whoever meets it finishes the removal. Well above object_store's
/// default retry timeout (3 minutes), so a collector is not taken over while one of its
/// storage calls is still being retried.
pub(crate) const STALLED_DELETION: Duration = Duration::from_secs(10 * 60);

impl Registry {
    pub(crate) async fn blob_record(
        &self,
        digest: &Digest,
    ) -> Result<Option<(BlobRecord, Version)>> {
        let key = blob_record_key(digest);
        match self.inner.meta.get(&key).await? {
            Some(v) => Ok(Some((decode(&v.value, &key)?, v.version))),
            None => Ok(None),
        }
    }

    /// Marks `digest` as possibly garbage from now on.
    pub(crate) async fn add_candidate(&self, digest: &Digest) -> Result<()> {
        let record = CandidateRecord {
            since_ms: now_millis(),
        };
        self.inner
            .meta
            .put(&candidate_key(digest), encode(&record)?, Expect::Any)
            .await
            .map(|_| ())
    }

    /// Claims `digest` before its bytes are published or linked (into `repo`, if given):
    /// creates its record, or makes it `live` again with a fresh touch time. Waits for a
    /// collector that is removing it, so the bytes written next are not removed after.
    /// Returns whether the record is new.
    pub(crate) async fn claim_blob(
        &self,
        digest: &Digest,
        repo: Option<&RepoName>,
    ) -> Result<bool> {
        let key = blob_record_key(digest);
        loop {
            let (next, expect, created) = match self.blob_record(digest).await? {
                None => {
                    // A candidate from the start: it may never be referenced.
                    self.add_candidate(digest).await?;
                    let record = BlobRecord {
                        state: BlobState::Live,
                        touched_at_ms: now_millis(),
                        repos: repo.map(|r| vec![r.to_string()]).unwrap_or_default(),
                    };
                    (record, Expect::Absent, true)
                }
                Some((record, version)) if record.state == BlobState::Deleting => {
                    if record.stalled(STALLED_DELETION) {
                        self.finish_deletion(digest, &record, version).await?;
                    } else {
                        tokio::time::sleep(DELETION_WAIT).await;
                    }
                    continue;
                }
                Some((mut record, version)) => {
                    record.state = BlobState::Live;
                    record.touched_at_ms = now_millis();
                    if let Some(repo) = repo {
                        let name = repo.to_string();
                        if let Err(at) = record.repos.binary_search(&name) {
                            record.repos.insert(at, name);
                        }
                    }
                    (record, Expect::Version(version), false)
                }
            };
            match self.inner.meta.put(&key, encode(&next)?, expect).await {
                Ok(_) => return Ok(created),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a blob whose record is `deleting`: its links, its bytes, then the record.
    /// Any party may finish a removal a stopped collector left. Ownership is renewed by
    /// compare-and-swap just before the bytes go, so a collector that stalled and was
    /// taken over stops instead of removing bytes written since.
    pub(crate) async fn finish_deletion(
        &self,
        digest: &Digest,
        record: &BlobRecord,
        version: Version,
    ) -> Result<()> {
        for repo in &record.repos {
            if let Ok(repo) = repo.parse::<RepoName>() {
                self.inner
                    .meta
                    .delete(&link_key(&repo, digest), Expect::Any)
                    .await?;
            }
        }
        let renewed = BlobRecord {
            touched_at_ms: now_millis(),
            ..record.clone()
        };
        let version = match self
            .inner
            .meta
            .put(
                &blob_record_key(digest),
                encode(&renewed)?,
                Expect::Version(version),
            )
            .await
        {
            Ok(version) => version,
            // Taken over, or already finished: not ours to remove any more.
            Err(e) if e.kind() == ErrorKind::Conflict => return Ok(()),
            Err(e) => return Err(e),
        };
        self.inner.blobs.delete(digest).await?;
        match self
            .inner
            .meta
            .delete(&blob_record_key(digest), Expect::Version(version))
            .await
        {
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other,
        }
    }

    /// A manifest of `repo`, visible now, that lists `blob`.
    pub(super) async fn manifest_holding(
        &self,
        repo: &RepoName,
        blob: &Digest,
    ) -> Result<Option<Digest>> {
        let prefix = ref_prefix(blob);
        let mut after = None;
        while let Some(page) = self.next_page(&prefix, &mut after).await? {
            for entry in page {
                let holder: RefRecord = decode(&entry.value, &entry.key)?;
                if holder.repo != repo.as_str() {
                    continue;
                }
                // Holds outlive their manifests until the collector drops them.
                if self
                    .manifest_record(repo, &holder.manifest)
                    .await?
                    .is_some()
                {
                    return Ok(Some(holder.manifest));
                }
            }
        }
        Ok(None)
    }

    /// Records that `manifest` in `repo` holds `blob`, then confirms the blob is still
    /// there (see the module docs). `linked` says the blob must also still be linked in
    /// `repo` (layers and configs; not the manifest's own bytes).
    pub(crate) async fn hold_blob(
        &self,
        repo: &RepoName,
        manifest: &Digest,
        blob: &Digest,
        linked: bool,
    ) -> Result<()> {
        let holder = RefRecord {
            repo: repo.to_string(),
            manifest: manifest.clone(),
            at_ms: now_millis(),
        };
        self.inner
            .meta
            .put(
                &ref_key(blob, repo, manifest),
                encode(&holder)?,
                Expect::Any,
            )
            .await?;
        let gone = || {
            Error::new(
                ErrorKind::ManifestBlobUnknown,
                format!(
                    "blob {blob} was garbage-collected while manifest {manifest} was pushed to {repo}: push the blob again"
                ),
            )
        };
        let key = blob_record_key(blob);
        loop {
            match self.blob_record(blob).await? {
                Some((record, _)) if record.state == BlobState::Live => break,
                Some((mut record, version)) if record.state == BlobState::Condemned => {
                    record.state = BlobState::Live;
                    record.touched_at_ms = now_millis();
                    match self
                        .inner
                        .meta
                        .put(&key, encode(&record)?, Expect::Version(version))
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::Conflict => continue,
                        Err(e) => return Err(e),
                    }
                }
                Some(_) => return Err(gone()),
                // Never tracked (stored by an older version or directly through the blob
                // store), or removed completely: the bytes tell which.
                None => {
                    if self.inner.blobs.stat(blob).await?.is_none() {
                        return Err(gone());
                    }
                    let record = BlobRecord {
                        state: BlobState::Live,
                        touched_at_ms: now_millis(),
                        repos: Vec::new(),
                    };
                    match self
                        .inner
                        .meta
                        .put(&key, encode(&record)?, Expect::Absent)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::Conflict => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // A collector that finished removing the blob removed its links first; a record
        // seen live since then belongs to a new upload whose bytes may not be there yet.
        if linked && self.linked(repo, blob).await?.is_none() {
            return Err(gone());
        }
        Ok(())
    }

    /// Marks the blobs `manifest` held as candidates once it is deleted. Its references
    /// stay: the collector prunes a reference once the manifest record is gone, so a push
    /// of the same manifest racing the delete keeps its hold.
    pub(crate) async fn release_blobs(&self, blobs: &[Digest]) -> Result<()> {
        for blob in blobs {
            self.add_candidate(blob).await?;
        }
        Ok(())
    }
}

/// The metadata key saying the store's holds are all recorded.
const LAYOUT_KEY: &str = "gc/layout";

impl Registry {
    /// Records the holds of one manifest record written before garbage collection.
    async fn record_holds_of(&self, entry: &crate::meta::Entry) -> Result<()> {
        let Some((repo, digest)) = entry.key["manifest/".len()..].rsplit_once('@') else {
            return Ok(());
        };
        let (Ok(repo), Ok(digest)) = (repo.parse::<RepoName>(), digest.parse::<Digest>()) else {
            return Ok(());
        };
        let mut record: super::manifests::ManifestRecord = decode(&entry.value, &entry.key)?;
        if record.held {
            return Ok(());
        }
        let raw = self.get_bytes_in(&repo, &digest).await?;
        let manifest = crate::manifest::Manifest::parse_stored(raw, &record.media_type)?;
        record.blobs = super::manifests::stored_blobs(&manifest).cloned().collect();
        for blob in &record.blobs {
            self.hold_blob(&repo, &digest, blob, false).await?;
        }
        self.hold_blob(&repo, &digest, &digest, false).await?;
        record.held = true;
        match self
            .inner
            .meta
            .put(&entry.key, encode(&record)?, Expect::Version(entry.version))
            .await
        {
            // Changed since it was listed: a push or delete that records its own holds.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Makes sure every blob and every manifest's holds are recorded, once per store:
    /// records written before garbage collection existed have none, and a collector that
    /// did not know them would take their blobs for garbage. Walks all links and
    /// manifests the first time; afterwards it is one read.
    pub(crate) async fn ensure_holds_recorded(&self) -> Result<()> {
        if self.inner.meta.get(LAYOUT_KEY).await?.is_some() {
            return Ok(());
        }
        let mut after: Option<String> = None;
        // Page by page: a store may hold millions of links.
        while let Some(page) = self.next_page("link/", &mut after).await? {
            for entry in page {
                let Some((repo, digest)) = entry.key["link/".len()..].rsplit_once('@') else {
                    continue;
                };
                if let (Ok(repo), Ok(digest)) = (repo.parse::<RepoName>(), digest.parse::<Digest>())
                    && !self
                        .blob_record(&digest)
                        .await?
                        .is_some_and(|(record, _)| record.repos.contains(&repo.to_string()))
                {
                    self.claim_blob(&digest, Some(&repo)).await?;
                }
            }
        }
        let mut after: Option<String> = None;
        while let Some(page) = self.next_page("manifest/", &mut after).await? {
            for entry in page {
                self.record_holds_of(&entry).await?;
            }
        }
        self.inner
            .meta
            .put(
                LAYOUT_KEY,
                bytes::Bytes::from_static(b"{\"holds\":1}"),
                Expect::Any,
            )
            .await
            .map(|_| ())
    }
}
