//! Keeping scans current without reading layers again: when the vulnerability data
//! changes, each complete scan is matched again from the inventory in its stored SBOM
//! (ECR's continuous scanning). And the sweep that finds images a crash left unscanned.

use std::time::Duration;

use super::Registry;
use super::scan_results::FindingsReport;
use super::scans::{SCAN_CLAIM, ScanRecord};
use super::schema::{InRepo, MANIFESTS, PULLS, Prefix, REPOSITORIES, SCANS};
use crate::digest::Digest;
use crate::error::Result;
use crate::meta::{Expect, Version};
use crate::reference::RepoName;
use crate::scan::{FindingCounts, ScanStatus};

/// What [`Registry::rematch_scans`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RematchReport {
    /// Scans matched again from their SBOM.
    pub rematched: usize,
    /// Scans already matched against the current data.
    pub current: usize,
    /// Images past the eligibility window, marked `SCAN_ELIGIBILITY_EXPIRED`.
    pub expired: usize,
    /// Scans that could not be matched again (their SBOM unreadable, or the scanner
    /// cannot rematch): started again from the layers.
    pub rescanned: usize,
}

impl Registry {
    /// Matches every complete scan whose vulnerability data differs from the scanner's
    /// current data again, from the inventory in its stored SBOM, and stores the new
    /// findings. An image neither pushed nor pulled within `eligibility` (when given) is
    /// marked [`ScanStatus::ScanEligibilityExpired`] instead, as ECR's continuous
    /// scanning stops after its window.
    pub async fn rematch_scans(&self, eligibility: Option<Duration>) -> Result<RematchReport> {
        let scanner = self.scanner()?;
        let current = scanner.database();
        let mut report = RematchReport::default();
        for row in SCANS.scan_all(self.meta()).await? {
            let (Ok(key), Ok(record)) = (row.key, row.value) else {
                continue;
            };
            let version = row.version;
            if record.status != ScanStatus::Complete {
                continue;
            }
            if record.database == current {
                report.current += 1;
                continue;
            }
            let (repo, digest) = (key.repo.clone(), key.item.clone());
            if let Some(window) = eligibility
                && !self.active_within(&repo, &digest, window).await?
            {
                let mut expired = record.clone();
                expired.status = ScanStatus::ScanEligibilityExpired;
                if SCANS
                    .put(self.meta(), &key, &expired, Expect::Version(version))
                    .await
                    .is_ok()
                {
                    report.expired += 1;
                }
                continue;
            }
            match self.rematch_one(&repo, &digest, &record, version).await {
                Ok(true) => report.rematched += 1,
                Ok(false) | Err(_) => {
                    self.start_scan(&repo, &digest).await?;
                    report.rescanned += 1;
                }
            }
        }
        Ok(report)
    }

    /// Matches one scan again from its SBOM; false when the scanner cannot.
    async fn rematch_one(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ScanRecord,
        version: Version,
    ) -> Result<bool> {
        let scanner = self.scanner()?;
        let Some(sbom) = &record.sbom else {
            return Ok(false);
        };
        let inventory = self.read_sbom(repo, sbom).await?;
        let Some(findings) = scanner.rematch(&inventory) else {
            return Ok(false);
        };
        let report = FindingsReport {
            os: inventory.os,
            findings,
            database: scanner.database(),
            notes: Vec::new(),
        };
        let artifact = self.store_findings(repo, digest, &report).await?;
        let mut updated = record.clone();
        updated.findings = Some(artifact);
        updated.counts = FindingCounts::of(&report.findings);
        updated.database = report.database;
        updated.completed_at_ms = Some(self.now_millis());
        self.complete_scan(repo, digest, record, version, updated)
            .await?;
        Ok(true)
    }

    /// Whether the image was pushed or pulled within `window`.
    async fn active_within(
        &self,
        repo: &RepoName,
        digest: &Digest,
        window: Duration,
    ) -> Result<bool> {
        let since = self.now_millis().saturating_sub(window.as_millis() as u64);
        let key = InRepo::new(repo, digest);
        let pushed = MANIFESTS
            .get(self.meta(), &key)
            .await?
            .map_or(0, |(record, _)| record.pushed_at_ms);
        let pulled = PULLS.get(self.meta(), &key).await?.map_or(0, |(at, _)| at);
        Ok(pushed.max(pulled) >= since)
    }

    /// Starts scans of the images in repositories with `scan_on_push` that have no scan
    /// record, or a claim older than [`SCAN_CLAIM`]: what a process that stopped between
    /// a push and its scan left behind. Returns how many it started.
    pub async fn scan_unscanned(&self) -> Result<usize> {
        self.scanner()?;
        let mut started = 0;
        let now = self.now_millis();
        for row in REPOSITORIES.list_all(self.meta(), &Prefix::all()).await? {
            let name = row.key;
            let repository = row.value.into_repository(&name);
            if !repository.settings.scan_on_push {
                continue;
            }
            let within = Prefix::in_repo(&name);
            for row in MANIFESTS.list_all(self.meta(), &within).await? {
                let digest = row.key.item;
                let record = row.value;
                if record.subject.is_some() || !record.children.is_empty() || record.pending {
                    continue;
                }
                let key = InRepo::new(&name, &digest);
                let stale = match SCANS.get(self.meta(), &key).await? {
                    None => true,
                    Some((scan, _)) => {
                        scan.status == ScanStatus::InProgress
                            && now.saturating_sub(scan.started_at_ms)
                                >= SCAN_CLAIM.as_millis() as u64
                    }
                };
                if stale && self.start_scan(&name, &digest).await.is_ok() {
                    started += 1;
                }
            }
        }
        Ok(started)
    }
}
