//! Online garbage collection: reclaims blobs that no manifest in any repository
//! references, and abandoned upload sessions, while pushes, pulls and deletes go on.
//!
//! # How it stays safe without a lock
//!
//! Three kinds of metadata carry it (see `blob_records.rs` beside this file and
//! `docs/storage-layout.md`):
//!
//! - a **blob record** per stored blob, `live`, `condemned` or `deleting`;
//! - a **reference** per (manifest, blob) pair, written by a push *before* its manifest
//!   record, and left in place when the manifest is deleted;
//! - a **candidate** per blob that may have become garbage: written when the blob is first
//!   stored and when a manifest that held it is deleted.
//!
//! A pass visits candidates only, a bounded page at a time, so a steady-state pass costs
//! what changed since the last one, not the size of the store. For each candidate older
//! than the grace period it looks for a reference whose manifest is still there (pruning
//! references whose manifest is gone). Finding none, it *condemns* the blob record by
//! compare-and-swap, looks again, moves the record to `deleting` by compare-and-swap, and
//! only then removes the links, the bytes and the record.
//!
//! A push writes its reference and *then* reads the blob record; the collector writes the
//! record and *then* reads the references. One of them sees the other: the collector
//! backs off, or the push rescues the condemned record by compare-and-swap (which makes
//! the collector's next compare-and-swap fail), or the push finds the blob `deleting` and
//! fails with `MANIFEST_BLOB_UNKNOWN` before its manifest is visible. Uploads and mounts
//! *claim* a blob (record back to `live`, touch time refreshed) before they publish or
//! link it, and wait out a removal in progress, so new bytes are never removed after they
//! were written.
//!
//! The **grace period** ([`RegistryBuilder::gc_grace`](crate::RegistryBuilder::gc_grace),
//! an hour by default) protects what the handshake cannot see: a blob uploaded but not
//! yet named by a manifest (the client pushes the manifest next), and a reference whose
//! manifest record is not written yet. A candidate, or a reference without a manifest,
//! is left alone until it is older than the grace period, and a push that took more than
//! half of it between its references and its commit point fails rather than commit
//! (checked right before the write that commits, on every attempt), so
//! a collection never judges a push that can still commit. It should exceed the time a
//! client takes between uploading its last blob and pushing its manifest, as zot's
//! `gcDelay` must. Processes must agree on it and their clocks within half of it.
//!
//! A store written before collection existed has no records: the first collection
//! records every link and every manifest's blobs, once, before it judges anything.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use wharf::{Algorithm, Digest, GcOptions, Registry};
//!
//! // No grace period: only for a store where nothing is pushed during a collection.
//! let registry = Registry::builder()
//!     .object_store(Arc::new(wharf::object_store::memory::InMemory::new()))
//!     .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
//!     .gc_grace(Duration::ZERO)
//!     .build()?;
//! let repo = "app".parse()?;
//! let layer = bytes::Bytes::from_static(b"never referenced");
//! registry.push_blob(&repo, &Digest::of(Algorithm::Sha256, &layer), layer).await?;
//!
//! let now = GcOptions { grace: Duration::ZERO, ..GcOptions::default() };
//! let preview = registry.collect_garbage(&GcOptions { dry_run: true, ..now.clone() }).await?;
//! assert_eq!(preview.reclaimed_blobs, 1);
//! let report = registry.collect_garbage(&now).await?;
//! assert_eq!((report.reclaimed_blobs, report.reclaimed_logical_bytes), (1, 16));
//! # Ok::<(), wharf::Error>(()) }).unwrap();
//! ```

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use super::Registry;
use super::blob_records::{BlobRecord, BlobState, CandidateRecord, STALLED_DELETION};
use super::schema::{BLOBS, GC_CANDIDATES, Prefix, REFS, ScannedRow};
use crate::blob::Footprint;
use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::meta::{Expect, Version};
use crate::reference::RepoName;

/// Default grace period: how old a candidate blob, or a reference without its manifest,
/// must be before a collection may remove it.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(60 * 60);

/// How a collection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// See [`DEFAULT_GC_GRACE`] and the module docs. Never shorter than the registry's
    /// own ([`RegistryBuilder::gc_grace`](crate::RegistryBuilder::gc_grace)), which pushes
    /// are held to: a shorter value here is raised to it.
    pub grace: Duration,
    /// Candidates examined per step (one metadata page); bounds the memory of a pass.
    pub batch: usize,
    /// Candidates examined at once within a step (hides object-store latency).
    pub concurrency: usize,
    /// Report what would be reclaimed without changing anything.
    pub dry_run: bool,
    /// Also examine every blob in the store, not only candidates: recovers blobs written
    /// by other tools or older versions. Lists the whole store; not for every pass.
    pub full_scan: bool,
    /// Also expire idle upload sessions ([`Registry::expire_uploads`]).
    pub expire_uploads: bool,
    /// A blob left `condemned` or `deleting` this long is taken as abandoned by a
    /// collector that stopped, and this one finishes the work.
    pub take_over_after: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GC_GRACE,
            batch: 1000,
            concurrency: 8,
            dry_run: false,
            full_scan: false,
            expire_uploads: true,
            take_over_after: STALLED_DELETION,
        }
    }
}

/// What a collection did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Candidate blobs examined.
    pub examined: u64,
    /// Blobs removed (or that would be).
    pub reclaimed_blobs: u64,
    /// Their sizes as clients see them.
    pub reclaimed_logical_bytes: u64,
    /// The bytes they took in the store.
    pub reclaimed_stored_bytes: u64,
    /// Candidates a manifest still references: no longer candidates.
    pub still_referenced: u64,
    /// Candidates younger than the grace period, or busy: left for a later pass.
    pub deferred: u64,
    /// References whose manifest is gone, removed.
    pub pruned_references: u64,
    /// Upload sessions expired.
    pub expired_uploads: u64,
    /// Staging areas without a session removed.
    pub orphaned_staging: u64,
}

impl GcReport {
    fn add(&mut self, other: &GcReport) {
        self.examined += other.examined;
        self.reclaimed_blobs += other.reclaimed_blobs;
        self.reclaimed_logical_bytes += other.reclaimed_logical_bytes;
        self.reclaimed_stored_bytes += other.reclaimed_stored_bytes;
        self.still_referenced += other.still_referenced;
        self.deferred += other.deferred;
        self.pruned_references += other.pruned_references;
        self.expired_uploads += other.expired_uploads;
        self.orphaned_staging += other.orphaned_staging;
    }
}

/// Where the next [`Registry::gc_step`] continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcCursor(String);

/// A blob under examination: from a candidate record, or from a full scan.
struct Candidate {
    digest: Digest,
    /// The candidate record's version, to remove it only if no one re-marked it.
    record: Option<(Version, u64)>,
}

impl Registry {
    /// Runs a whole collection: expires idle uploads, then examines every candidate (and,
    /// with [`GcOptions::full_scan`], every stored blob), step by step.
    #[tracing::instrument(level = "info", skip_all, fields(dry_run = options.dry_run), err(level = "debug", Display))]
    pub async fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        self.ensure_holds_recorded().await?;
        if options.expire_uploads && !options.dry_run {
            let expired = self.expire_uploads().await?;
            report.expired_uploads = expired.sessions as u64;
            report.orphaned_staging = expired.orphaned_staging as u64;
        }
        if options.full_scan {
            self.scan_all_blobs(options, &mut report).await?;
        }
        let mut cursor = None;
        loop {
            let (step, next) = self.gc_step(options, cursor.as_ref()).await?;
            report.add(&step);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(report),
            }
        }
    }

    /// One bounded step of a collection: examines up to [`GcOptions::batch`] candidates
    /// after `after`, and says where to continue (`None` when all were seen). Embedders
    /// that want to spread a pass over time call this on their own schedule.
    #[tracing::instrument(level = "debug", skip_all, fields(dry_run = options.dry_run), err(level = "debug", Display))]
    pub async fn gc_step(
        &self,
        options: &GcOptions,
        after: Option<&GcCursor>,
    ) -> Result<(GcReport, Option<GcCursor>)> {
        if after.is_none() {
            self.ensure_holds_recorded().await?;
        }
        let page = GC_CANDIDATES
            .scan_page(
                self.meta(),
                &Prefix::all(),
                after.map(|c| c.0.as_str()),
                options.batch.max(1),
            )
            .await?;
        let next = page.last().map(|e| GcCursor(e.store_key.clone()));
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        let candidates = page.into_iter().filter_map(candidate_of);
        let results: Vec<GcReport> = futures::stream::iter(candidates)
            .map(|candidate| self.examine(candidate, options))
            .buffer_unordered(options.concurrency.max(1))
            .try_collect()
            .await?;
        for step in &results {
            report.add(step);
        }
        Ok((report, next))
    }

    async fn scan_all_blobs(&self, options: &GcOptions, report: &mut GcReport) -> Result<()> {
        let mut blobs = self
            .blob_store()
            .list()
            .map_ok(|info| Candidate {
                digest: info.digest,
                record: None,
            })
            .map(|candidate| async move { self.examine(candidate?, options).await })
            .buffer_unordered(options.concurrency.max(1));
        while let Some(step) = blobs.next().await {
            report.add(&step?);
        }
        Ok(())
    }

    /// Examines one blob and removes it if nothing holds it.
    async fn examine(&self, candidate: Candidate, options: &GcOptions) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run: options.dry_run,
            examined: 1,
            ..GcReport::default()
        };
        let digest = &candidate.digest;
        let now = self.now_millis();
        let Some((record, version)) = self.blob_record(digest).await? else {
            self.examine_untracked(&candidate, options, &mut report)
                .await?;
            return Ok(report);
        };
        match record.state {
            BlobState::Deleting if record.stalled(now, options.take_over_after) => {
                if !options.dry_run {
                    let size = self.footprint(digest).await?;
                    self.finish_deletion(digest, &record, version, size).await?;
                    self.drop_candidate(&candidate).await?;
                    Self::reclaimed(&mut report, size);
                }
                return Ok(report);
            }
            BlobState::Condemned if record.stalled(now, options.take_over_after) => {}
            BlobState::Live => {}
            // Another collector is on it.
            _ => {
                report.deferred = 1;
                return Ok(report);
            }
        }
        if !self
            .judged_garbage(&candidate, &record, options, now, &mut report)
            .await?
        {
            return Ok(report);
        }
        if options.dry_run {
            let size = self.footprint(digest).await?;
            Self::reclaimed(&mut report, size);
            return Ok(report);
        }
        self.condemn_and_remove(&candidate, record, version, options, now, &mut report)
            .await?;
        Ok(report)
    }

    /// A candidate with no blob record: stored without one (another tool, an older
    /// version) is tracked from now on and judged after the grace period; not stored at
    /// all, its candidate entry goes.
    async fn examine_untracked(
        &self,
        candidate: &Candidate,
        options: &GcOptions,
        report: &mut GcReport,
    ) -> Result<()> {
        if self.blob_store().stat(&candidate.digest).await?.is_some() {
            if !options.dry_run {
                self.claim_blob(&candidate.digest, None).await?;
            }
            report.deferred = 1;
        } else if !options.dry_run {
            self.drop_candidate(candidate).await?;
        }
        Ok(())
    }

    /// Whether a blob is garbage now: past the grace period, and no manifest holds it
    /// (one that does drops the candidate; a push in flight defers it).
    async fn judged_garbage(
        &self,
        candidate: &Candidate,
        record: &BlobRecord,
        options: &GcOptions,
        now: u64,
        report: &mut GcReport,
    ) -> Result<bool> {
        let grace = self.gc_grace(options).as_millis() as u64;
        let since = candidate.record.map_or(0, |(_, since)| since);
        if now.saturating_sub(since.max(record.touched_at_ms)) < grace {
            report.deferred = 1;
            return Ok(false);
        }
        match self
            .holders(&candidate.digest, options, now, report)
            .await?
        {
            Holders::Some => {
                report.still_referenced = 1;
                if !options.dry_run {
                    self.drop_candidate(candidate).await?;
                }
                Ok(false)
            }
            Holders::InFlight => {
                report.deferred = 1;
                Ok(false)
            }
            Holders::None => Ok(true),
        }
    }

    /// Condemns a blob judged garbage, looks for holders again, then commits to the
    /// removal: each step a compare-and-swap that a push rescuing the blob makes fail.
    async fn condemn_and_remove(
        &self,
        candidate: &Candidate,
        record: BlobRecord,
        version: Version,
        options: &GcOptions,
        now: u64,
        report: &mut GcReport,
    ) -> Result<()> {
        let digest = &candidate.digest;
        let Some(condemned) = self
            .swap_state(digest, &record, version, BlobState::Condemned)
            .await?
        else {
            report.deferred = 1;
            return Ok(());
        };
        if !matches!(
            self.holders(digest, options, now, report).await?,
            Holders::None
        ) {
            let _ = self
                .swap_state(digest, &record, condemned, BlobState::Live)
                .await?;
            report.deferred = 1;
            return Ok(());
        }
        let Some(deleting) = self
            .swap_state(digest, &record, condemned, BlobState::Deleting)
            .await?
        else {
            report.deferred = 1;
            return Ok(());
        };
        let size = self.footprint(digest).await?;
        let record = BlobRecord {
            state: BlobState::Deleting,
            ..record
        };
        self.finish_deletion(digest, &record, deleting, size)
            .await?;
        self.drop_candidate(candidate).await?;
        Self::reclaimed(report, size);
        Ok(())
    }

    /// The grace period a collection uses: the option, but never below the registry's.
    fn gc_grace(&self, options: &GcOptions) -> Duration {
        options.grace.max(self.inner_gc_grace())
    }

    /// Counts a reclaimed blob (its event is announced with the record's removal, in
    /// `finish_deletion`).
    fn reclaimed(report: &mut GcReport, size: Option<Footprint>) {
        let footprint = size.unwrap_or_default();
        report.reclaimed_blobs = 1;
        report.reclaimed_logical_bytes = footprint.logical;
        report.reclaimed_stored_bytes = footprint.stored;
    }

    async fn footprint(&self, digest: &Digest) -> Result<Option<Footprint>> {
        self.blob_store().footprint(digest).await
    }

    /// Moves a blob record to `state` if it is still at `version`; the new version, or
    /// `None` if someone changed it first.
    async fn swap_state(
        &self,
        digest: &Digest,
        record: &BlobRecord,
        version: Version,
        state: BlobState,
    ) -> Result<Option<Version>> {
        let next = BlobRecord {
            state,
            touched_at_ms: self.now_millis(),
            ..record.clone()
        };
        match BLOBS
            .put(self.meta(), digest, &next, Expect::Version(version))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn drop_candidate(&self, candidate: &Candidate) -> Result<()> {
        let Some((version, _)) = candidate.record else {
            return Ok(());
        };
        match GC_CANDIDATES
            .delete(self.meta(), &candidate.digest, Expect::Version(version))
            .await
        {
            // Marked again since it was read: the next pass looks again.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other,
        }
    }

    /// Whether any manifest holds `blob`, pruning references whose manifest is gone.
    async fn holders(
        &self,
        blob: &Digest,
        options: &GcOptions,
        now: u64,
        report: &mut GcReport,
    ) -> Result<Holders> {
        let within = Prefix::holds_on(blob);
        let grace = self.gc_grace(options).as_millis() as u64;
        let mut after: Option<String> = None;
        let mut in_flight = false;
        loop {
            let page = REFS
                .scan_page(self.meta(), &within, after.as_deref(), 100)
                .await?;
            let Some(last) = page.last() else {
                return Ok(if in_flight {
                    Holders::InFlight
                } else {
                    Holders::None
                });
            };
            after = Some(last.store_key.clone());
            for entry in page {
                // An unreadable reference holds nothing; it must not stop every collection.
                let Ok(holder) = &entry.value else {
                    continue;
                };
                let Ok(repo) = holder.repo.parse::<RepoName>() else {
                    continue;
                };
                match self.raw_manifest_record(&repo, &holder.manifest).await? {
                    // An archived image keeps only its manifest in this store; its config
                    // and layers live in the archive store, unless a restore holds them
                    // again (a reference newer than the archiving).
                    Some((manifest, _))
                        if manifest
                            .archived_at_ms
                            .is_some_and(|archived| holder.at_ms <= archived)
                            && &holder.manifest != blob => {}
                    Some((manifest, _))
                        if !manifest.pending
                            || self.is_visible(&repo, &holder.manifest, &manifest).await? =>
                    {
                        return Ok(Holders::Some);
                    }
                    // A push between its hold and its record, or one that stopped there:
                    // only time tells them apart.
                    _ if now.saturating_sub(holder.at_ms) < grace => in_flight = true,
                    _ => {
                        if !options.dry_run {
                            match REFS.delete_scanned(self.meta(), &entry).await {
                                // Re-written by a push since: it holds again.
                                Err(e) if e.kind() == ErrorKind::Conflict => in_flight = true,
                                Err(e) => return Err(e),
                                Ok(()) => report.pruned_references += 1,
                            }
                        }
                    }
                }
            }
        }
    }
}

enum Holders {
    /// A manifest that exists references the blob.
    Some,
    /// Only references younger than the grace period whose manifest is not there (yet).
    InFlight,
    /// Nothing references it.
    None,
}

fn candidate_of(entry: ScannedRow<Digest, CandidateRecord>) -> Option<Candidate> {
    let digest = entry.key.ok()?;
    let since = entry.value.map_or(0, |record| record.since_ms);
    Some(Candidate {
        digest,
        record: Some((entry.version, since)),
    })
}

#[cfg(test)]
mod tests;
