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

use super::Registry;
use super::manifests::ManifestRecord;
use super::outbox::{SlotState, Witness};
use super::schema::{
    BLOBS, GC_CANDIDATES, GC_LAYOUT, InRepo, LINKS, MANIFESTS, Prefix, REFS, RefKey, Retry, Row,
    Singleton,
};
use crate::blob::Footprint;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::meta::{Durability, Expect, Version, Write};
use crate::reference::RepoName;

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
    /// Whether the record has sat in its state for `after` or longer at `now_ms`.
    pub(crate) fn stalled(&self, now_ms: u64, after: Duration) -> bool {
        now_ms.saturating_sub(self.touched_at_ms) >= after.as_millis() as u64
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

/// The latest moment a push may reach its commit point after recording its holds.
///
/// A collection treats a hold whose manifest is not visible as a push in flight only for
/// its grace period, so a push must commit within half of it or not at all. The check
/// runs right before the write that commits, on every attempt: lost races, their
/// back-off and the outbox can stretch the time between holding and committing far
/// beyond the push's own work.
#[derive(Debug, Clone)]
pub(crate) struct HoldDeadline {
    by_ms: u64,
    limit: Duration,
    pushing: String,
}

impl HoldDeadline {
    /// Fails with a retryable `Conflict` once `now_ms` is past the deadline.
    pub(crate) fn check(&self, now_ms: u64) -> Result<()> {
        if now_ms <= self.by_ms {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "{} took longer than {:?} between recording its blobs and committing; push it again",
                self.pushing, self.limit
            ),
        )
        .retryable())
    }
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
        BLOBS.get(self.meta(), digest).await
    }

    /// The deadline of a push of `manifest` to `repo` whose holds are recorded from now
    /// on; `None` without a grace period (nothing is collected while anything is pushed).
    pub(crate) fn hold_deadline(&self, repo: &RepoName, manifest: &Digest) -> Option<HoldDeadline> {
        let limit = self.inner.gc_grace / 2;
        (!limit.is_zero()).then(|| HoldDeadline {
            by_ms: self.now_millis() + limit.as_millis() as u64,
            limit,
            pushing: format!("push of {manifest} to {repo}"),
        })
    }

    /// Checks `deadline`, if there is one, against the registry's clock.
    pub(crate) fn check_hold_deadline(&self, deadline: Option<&HoldDeadline>) -> Result<()> {
        deadline.map_or(Ok(()), |d| d.check(self.now_millis()))
    }

    /// Marks `digest` as possibly garbage from now on.
    pub(crate) async fn add_candidate(&self, digest: &Digest) -> Result<()> {
        let write = self.candidate_write(digest)?;
        self.meta()
            .batch(vec![write], Durability::Durable)
            .await
            .map(drop)
    }

    /// The write that marks `digest` as possibly garbage from now on.
    fn candidate_write(&self, digest: &Digest) -> Result<Write> {
        let record = CandidateRecord {
            since_ms: self.now_millis(),
        };
        GC_CANDIDATES.put_write(digest, &record, Expect::Any)
    }

    /// Claims `digest` before its bytes are published or linked (into `repo`, if given):
    /// creates its record, or makes it `live` again with a fresh touch time. Waits for a
    /// collector that is removing it, so the bytes written next are not removed after.
    /// Returns whether the record is new.
    ///
    /// A claim that creates the record is a relaxed batch: the link or manifest commit
    /// that follows is durable and carries it. A crash before that commit can take it
    /// back, but nothing was acknowledged then, and bytes published meanwhile are
    /// untracked until a full-scan collection
    /// ([`GcOptions::full_scan`](crate::GcOptions::full_scan)) or the next upload of the
    /// same digest adopts them. A claim of an existing record (rescuing a condemned
    /// blob, refreshing its touch time) is durable: the link after it may already
    /// exist and write nothing, so no later commit would carry it.
    pub(crate) async fn claim_blob(
        &self,
        digest: &Digest,
        repo: Option<&RepoName>,
    ) -> Result<bool> {
        self.claim_blob_with(digest, repo, &[]).await
    }

    /// [`Registry::claim_blob`], with `also` written in the claim's batch (after it):
    /// writes that need no commit of their own, such as the end of the upload session
    /// that stored the bytes.
    pub(crate) async fn claim_blob_with(
        &self,
        digest: &Digest,
        repo: Option<&RepoName>,
        also: &[Write],
    ) -> Result<bool> {
        let key = BLOBS.key(digest);
        let mut retry = Retry::new(&key);
        loop {
            let (next, expect, created) = match self.blob_record(digest).await? {
                None => {
                    let record = BlobRecord {
                        state: BlobState::Live,
                        touched_at_ms: self.now_millis(),
                        repos: repo.map(|r| vec![r.to_string()]).unwrap_or_default(),
                    };
                    (record, Expect::Absent, true)
                }
                Some((record, version)) if record.state == BlobState::Deleting => {
                    if record.stalled(self.now_millis(), STALLED_DELETION) {
                        let footprint = self.inner.blobs.footprint(digest).await?;
                        self.finish_deletion(digest, &record, version, footprint)
                            .await?;
                    } else {
                        tokio::time::sleep(DELETION_WAIT).await;
                    }
                    continue;
                }
                Some((mut record, version)) => {
                    record.state = BlobState::Live;
                    record.touched_at_ms = self.now_millis();
                    if let Some(repo) = repo {
                        let name = repo.to_string();
                        if let Err(at) = record.repos.binary_search(&name) {
                            record.repos.insert(at, name);
                        }
                    }
                    (record, Expect::Version(version), false)
                }
            };
            let mut writes = Vec::with_capacity(2 + also.len());
            if created {
                // A candidate from the start, as it may never be referenced: written
                // before the record (in one batch with it where batches are atomic).
                writes.push(self.candidate_write(digest)?);
            }
            writes.push(BLOBS.put_write(digest, &next, expect)?);
            writes.extend_from_slice(also);
            let durability = if created {
                Durability::Relaxed
            } else {
                Durability::Durable
            };
            match self.meta().batch(writes, durability).await {
                Ok(_) => return Ok(created),
                Err(e) if e.kind() == ErrorKind::Conflict => retry.again(e).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes a blob whose record is `deleting`: its links, its bytes, then the record.
    /// Any party may finish a removal a stopped collector left. Ownership is renewed by
    /// compare-and-swap just before the bytes go, so a collector that stalled and was
    /// taken over stops instead of removing bytes written since. `footprint` is the
    /// blob's as read before its removal began; its reclaim event reports the size.
    pub(crate) async fn finish_deletion(
        &self,
        digest: &Digest,
        record: &BlobRecord,
        version: Version,
        footprint: Option<Footprint>,
    ) -> Result<()> {
        for repo in &record.repos {
            if let Ok(repo) = repo.parse::<RepoName>() {
                LINKS
                    .delete(self.meta(), &InRepo::new(&repo, digest), Expect::Any)
                    .await?;
            }
        }
        let renewed = BlobRecord {
            touched_at_ms: self.now_millis(),
            ..record.clone()
        };
        let version = match BLOBS
            .put(self.meta(), digest, &renewed, Expect::Version(version))
            .await
        {
            Ok(version) => version,
            // Taken over, or already finished: not ours to remove any more.
            Err(e) if e.kind() == ErrorKind::Conflict => return Ok(()),
            Err(e) => return Err(e),
        };
        // The record's removal is the commit point of the reclaim event.
        let event = Event::BlobReclaimed {
            digest: digest.clone(),
            size: footprint.map_or(0, |f| f.logical),
        };
        let witness = Witness::Removed {
            key: BLOBS.key(digest),
        };
        let announced = self.announce(&event, witness, Vec::new()).await?;
        self.inner.blobs.delete(digest).await?;
        self.within_deadline(&announced)?;
        match BLOBS
            .delete(self.meta(), digest, Expect::Version(version))
            .await
        {
            Err(e) if e.kind() == ErrorKind::Conflict => {
                self.mark(&announced, SlotState::Void).await;
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => {
                self.mark(&announced, SlotState::Committed).await;
                self.after_commit(event);
                Ok(())
            }
        }
    }

    /// A manifest of `repo`, visible now, that lists `blob`.
    pub(super) async fn manifest_holding(
        &self,
        repo: &RepoName,
        blob: &Digest,
    ) -> Result<Option<Digest>> {
        let within = Prefix::holds_on(blob);
        let mut after = None;
        while let Some(page) = REFS.next_page(self.meta(), &within, &mut after).await? {
            for row in page {
                let holder = row.value;
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
        self.record_holds(
            repo,
            manifest,
            std::slice::from_ref(blob),
            Vec::new(),
            Durability::Durable,
        )
        .await?;
        self.confirm_held(repo, manifest, blob, linked).await
    }

    /// Records that `manifest` in `repo` holds each of `blobs`, in one batch after
    /// `first` (writes the caller needs before the holds), as durable as `durability`
    /// says. Each hold must then be confirmed with [`Registry::confirm_held`].
    pub(crate) async fn record_holds(
        &self,
        repo: &RepoName,
        manifest: &Digest,
        blobs: &[Digest],
        first: Vec<Write>,
        durability: Durability,
    ) -> Result<()> {
        let holder = RefRecord {
            repo: repo.to_string(),
            manifest: manifest.clone(),
            at_ms: self.now_millis(),
        };
        let mut writes = first;
        for blob in blobs {
            let key = RefKey::new(blob, repo, manifest);
            writes.push(REFS.put_write(&key, &holder, Expect::Any)?);
        }
        self.meta().batch(writes, durability).await.map(drop)
    }

    /// Confirms that `blob`, whose hold by `manifest` is recorded, is still there (see
    /// the module docs): a condemned record is made live again; a removed blob is
    /// [`ErrorKind::ManifestBlobUnknown`]. `linked` says the blob must also still be
    /// linked in `repo`.
    pub(crate) async fn confirm_held(
        &self,
        repo: &RepoName,
        manifest: &Digest,
        blob: &Digest,
        linked: bool,
    ) -> Result<()> {
        let gone = || {
            Error::new(
                ErrorKind::ManifestBlobUnknown,
                format!(
                    "blob {blob} was garbage-collected while manifest {manifest} was pushed to {repo}: push the blob again"
                ),
            )
        };
        let key = BLOBS.key(blob);
        let mut retry = Retry::new(&key);
        loop {
            match self.blob_record(blob).await? {
                Some((record, _)) if record.state == BlobState::Live => break,
                Some((mut record, version)) if record.state == BlobState::Condemned => {
                    record.state = BlobState::Live;
                    record.touched_at_ms = self.now_millis();
                    match BLOBS
                        .put(self.meta(), blob, &record, Expect::Version(version))
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::Conflict => retry.again(e).await?,
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
                        touched_at_ms: self.now_millis(),
                        repos: Vec::new(),
                    };
                    match BLOBS.create(self.meta(), blob, &record).await {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::Conflict => retry.again(e).await?,
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

/// The record saying every link and manifest of the store has its holds recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayoutRecord {
    holds: u32,
}

impl Registry {
    /// Records the holds of one manifest record written before garbage collection.
    async fn record_holds_of(&self, row: Row<InRepo<Digest>, ManifestRecord>) -> Result<()> {
        let Row {
            key,
            value: mut record,
            version,
        } = row;
        let (repo, digest) = (&key.repo, &key.item);
        if record.held {
            return Ok(());
        }
        let raw = self.get_bytes_in(repo, digest).await?;
        let manifest = crate::manifest::Manifest::parse_stored(raw, &record.media_type)?;
        record.blobs = super::manifests::stored_blobs(&manifest).cloned().collect();
        for blob in &record.blobs {
            self.hold_blob(repo, digest, blob, false).await?;
        }
        self.hold_blob(repo, digest, digest, false).await?;
        record.held = true;
        match MANIFESTS
            .put(self.meta(), &key, &record, Expect::Version(version))
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
        if GC_LAYOUT.get(self.meta(), &Singleton).await?.is_some() {
            return Ok(());
        }
        let mut after = None;
        // Page by page: a store may hold millions of links.
        while let Some(page) = LINKS
            .next_page(self.meta(), &Prefix::all(), &mut after)
            .await?
        {
            for row in page {
                let InRepo { repo, item: digest } = row.key;
                if !self
                    .blob_record(&digest)
                    .await?
                    .is_some_and(|(record, _)| record.repos.contains(&repo.to_string()))
                {
                    self.claim_blob(&digest, Some(&repo)).await?;
                }
            }
        }
        let mut after = None;
        while let Some(page) = MANIFESTS
            .next_page(self.meta(), &Prefix::all(), &mut after)
            .await?
        {
            for row in page {
                self.record_holds_of(row).await?;
            }
        }
        GC_LAYOUT
            .put(
                self.meta(),
                &Singleton,
                &LayoutRecord { holds: 1 },
                Expect::Any,
            )
            .await
            .map(|_| ())
    }
}
