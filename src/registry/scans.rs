//! Scans: the scanner run after a push commits (when the repository has
//! `scan_on_push`) or on demand, its results stored as referrers of the image, and the
//! scan's state in `scan/<repo>@<digest>`.
//!
//! A scan never holds up a push: the push spawns it after its commit point and returns;
//! at most [`RegistryBuilder::scan_concurrency`](super::RegistryBuilder::scan_concurrency)
//! scans run at once in a process, the rest wait for a permit. The record is claimed
//! `IN_PROGRESS` by compare-and-swap before the scan starts and completed by
//! compare-and-swap on that version, so two processes never both finish one scan; a
//! claim older than [`SCAN_CLAIM`] belongs to a process that died and is taken over.
//! A process that dies before claiming leaves no record: [`Registry::scan_unscanned`]
//! finds such images.
//!
//! An index is not scanned itself: each of its platform manifests is, and the index's
//! status and findings are those of its children, combined when read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

use super::Registry;
use super::schema::{InRepo, SCANS};
use crate::blob::ByteStream;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::EventId;
use crate::manifest::{Manifest, ManifestContent};
use crate::meta::{Expect, Version};
use crate::reference::RepoName;
use crate::scan::{
    Finding, FindingCounts, Inventory, LayerReader, SbomFormat, ScanOutcome, ScanStatus,
    ScanTarget, Scanner,
};

/// Default number of scans one process runs at once.
pub const DEFAULT_SCAN_CONCURRENCY: usize = 2;

/// How long an `IN_PROGRESS` claim holds before another process may take the scan over.
pub const SCAN_CLAIM: Duration = Duration::from_secs(30 * 60);

/// The scan state of one image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScanRecord {
    pub(crate) status: ScanStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) started_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completed_at_ms: Option<u64>,
    /// The SBOM referrer's manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sbom: Option<Digest>,
    /// The findings referrer's manifest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) findings: Option<Digest>,
    #[serde(default)]
    pub(crate) counts: FindingCounts,
    /// The vulnerability data the findings were matched against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) database: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) events: Vec<EventId>,
}

impl super::outbox::CarriesEvents for ScanRecord {
    fn carried(&mut self) -> &mut Vec<EventId> {
        &mut self.events
    }
}

/// Where an image's scan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageScan {
    /// The status, with ECR's names.
    pub status: ScanStatus,
    /// Why the scan failed or the image is unsupported.
    pub reason: Option<String>,
    /// When the scan started.
    pub started_at: SystemTime,
    /// When it ended.
    pub completed_at: Option<SystemTime>,
    /// Findings per severity.
    pub counts: FindingCounts,
    /// The digest of the SBOM stored as a referrer of the image.
    pub sbom: Option<Digest>,
    /// The digest of the findings stored as a referrer of the image.
    pub findings_artifact: Option<Digest>,
    /// The identity of the vulnerability data matched against.
    pub database: Option<String>,
}

/// A scan with its findings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanFindings {
    /// Where the scan stands.
    pub scan: ImageScan,
    /// The findings, most severe first (empty until the scan is complete).
    pub findings: Vec<Finding>,
}

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

impl From<&ScanRecord> for ImageScan {
    fn from(record: &ScanRecord) -> Self {
        ImageScan {
            status: record.status,
            reason: record.reason.clone(),
            started_at: at(record.started_at_ms),
            completed_at: record.completed_at_ms.map(at),
            counts: record.counts.clone(),
            sbom: record.sbom.clone(),
            findings_artifact: record.findings.clone(),
            database: record.database.clone(),
        }
    }
}

/// The scanner and what runs it in this process.
pub(crate) struct ScanRunner {
    pub(crate) scanner: Option<Arc<dyn Scanner>>,
    pub(crate) sbom_format: SbomFormat,
    pub(crate) scan_on_push_by_default: bool,
    permits: Arc<Semaphore>,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl ScanRunner {
    pub(crate) fn new(
        scanner: Option<Arc<dyn Scanner>>,
        concurrency: usize,
        sbom_format: SbomFormat,
        scan_on_push_by_default: bool,
    ) -> Self {
        ScanRunner {
            scanner,
            sbom_format,
            scan_on_push_by_default,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }
}

/// Reads an image's layers through its repository.
struct RepositoryLayers {
    registry: Registry,
    repo: RepoName,
}

#[async_trait]
impl LayerReader for RepositoryLayers {
    async fn open(&self, digest: &Digest) -> Result<ByteStream> {
        Ok(self
            .registry
            .read_blob(&self.repo, digest, None)
            .await?
            .stream)
    }
}

/// What claiming a scan found.
enum Claim {
    /// This caller runs the scan; the record is at this version.
    Won(ScanRecord, Version),
    /// Another scan holds a fresh claim.
    Running(ScanRecord),
}

impl Registry {
    pub(super) fn scanner(&self) -> Result<Arc<dyn Scanner>> {
        self.inner.scans.scanner.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "this registry has no scanner (RegistryBuilder::scanner)",
            )
        })
    }

    /// Scans the image `digest` in `repo` now and waits for the result (an index: each
    /// of its platform manifests). A scan another process is running is waited for by
    /// reading its record, not run twice.
    pub async fn scan_image(&self, repo: &RepoName, digest: &Digest) -> Result<ImageScan> {
        self.scanner()?;
        let manifest = self.scanned_manifest(repo, digest).await?;
        if let ManifestContent::Index { manifests } = manifest.content() {
            for child in manifests {
                if self.manifest_record(repo, &child.digest).await?.is_some() {
                    Box::pin(self.scan_image(repo, &child.digest)).await?;
                }
            }
            return self.combined_scan(repo, manifests).await;
        }
        match self.claim_scan(repo, digest).await? {
            Claim::Running(record) => Ok(ImageScan::from(&record)),
            Claim::Won(record, version) => self.run_scan(repo, digest, record, version).await,
        }
    }

    /// Starts a scan of `digest` and returns at once (ECR's `StartImageScan`): the image
    /// is `IN_PROGRESS` when this returns.
    pub async fn start_scan(&self, repo: &RepoName, digest: &Digest) -> Result<ImageScan> {
        self.scanner()?;
        let manifest = self.scanned_manifest(repo, digest).await?;
        if let ManifestContent::Index { manifests } = manifest.content() {
            for child in manifests {
                if self.manifest_record(repo, &child.digest).await?.is_some() {
                    Box::pin(self.start_scan(repo, &child.digest)).await?;
                }
            }
            return self.combined_scan(repo, manifests).await;
        }
        match self.claim_scan(repo, digest).await? {
            Claim::Running(record) => Ok(ImageScan::from(&record)),
            Claim::Won(record, version) => {
                let scan = ImageScan::from(&record);
                self.spawn_claimed(repo.clone(), digest.clone(), record, version);
                Ok(scan)
            }
        }
    }

    /// Where the scan of `digest` stands; `None` when it was never scanned.
    pub async fn scan_status(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ImageScan>> {
        let manifest = self.scanned_manifest(repo, digest).await?;
        if let ManifestContent::Index { manifests } = manifest.content() {
            return match self.combined_scan(repo, manifests).await {
                Ok(scan) => Ok(Some(scan)),
                Err(e) if e.kind() == ErrorKind::ScanNotFound => Ok(None),
                Err(e) => Err(e),
            };
        }
        Ok(SCANS
            .get(self.meta(), &InRepo::new(repo, digest))
            .await?
            .map(|(record, _)| ImageScan::from(&record)))
    }

    /// The findings of the last complete scan of `digest` (an index: of all its
    /// platform manifests), as ECR's `DescribeImageScanFindings` lists them.
    /// [`ErrorKind::ScanNotFound`] when the image was never scanned.
    pub async fn scan_findings(&self, repo: &RepoName, digest: &Digest) -> Result<ScanFindings> {
        let manifest = self.scanned_manifest(repo, digest).await?;
        if let ManifestContent::Index { manifests } = manifest.content() {
            let scan = self.combined_scan(repo, manifests).await?;
            let mut findings = Vec::new();
            for child in manifests {
                if let Ok(found) = Box::pin(self.scan_findings(repo, &child.digest)).await {
                    findings.extend(found.findings);
                }
            }
            return Ok(ScanFindings { scan, findings });
        }
        let Some((record, _)) = SCANS.get(self.meta(), &InRepo::new(repo, digest)).await? else {
            return Err(Error::new(
                ErrorKind::ScanNotFound,
                format!("image {digest} in {repo} has not been scanned"),
            ));
        };
        let findings = match &record.findings {
            Some(artifact) => self.read_findings(repo, artifact).await?,
            None => Vec::new(),
        };
        Ok(ScanFindings {
            scan: ImageScan::from(&record),
            findings,
        })
    }

    /// The package inventory of the last complete scan of the image manifest `digest`,
    /// read back from its stored SBOM. [`ErrorKind::ScanNotFound`] when it has none.
    pub async fn scan_inventory(&self, repo: &RepoName, digest: &Digest) -> Result<Inventory> {
        let record = SCANS.get(self.meta(), &InRepo::new(repo, digest)).await?;
        match record.and_then(|(record, _)| record.sbom) {
            Some(sbom) => self.read_sbom(repo, &sbom).await,
            None => Err(Error::new(
                ErrorKind::ScanNotFound,
                format!("image {digest} in {repo} has no complete scan"),
            )),
        }
    }

    /// Whether repositories created without settings scan on push
    /// ([`RegistryBuilder::scan_on_push_by_default`](super::RegistryBuilder::scan_on_push_by_default)).
    pub fn scan_on_push_by_default(&self) -> bool {
        self.inner.scans.scan_on_push_by_default
    }

    /// Waits until every scan this process started has ended.
    pub async fn wait_for_scans(&self) {
        loop {
            let idle = self.inner.scans.idle.notified();
            if self.inner.scans.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Called after a push commits: spawns a scan when the repository asks for one and
    /// the manifest is an image (not an artifact, not an index).
    pub(super) fn scan_after_push(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
        scan_on_push: bool,
    ) {
        if !scan_on_push || self.inner.scans.scanner.is_none() || !is_image(manifest) {
            return;
        }
        let registry = self.clone();
        let (repo, digest) = (repo.clone(), digest.clone());
        self.track(async move {
            let claimed = registry.claim_scan(&repo, &digest).await;
            if let Ok(Claim::Won(record, version)) = claimed {
                registry
                    .run_scan_logged(&repo, &digest, record, version)
                    .await;
            }
        });
    }

    fn spawn_claimed(&self, repo: RepoName, digest: Digest, record: ScanRecord, version: Version) {
        let registry = self.clone();
        self.track(async move {
            registry
                .run_scan_logged(&repo, &digest, record, version)
                .await;
        });
    }

    /// Runs `work` in the background, counted for [`Registry::wait_for_scans`].
    fn track(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let registry = self.clone();
        registry
            .inner
            .scans
            .in_flight
            .fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            work.await;
            let scans = &registry.inner.scans;
            if scans.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                scans.idle.notify_waiters();
            }
        });
    }

    async fn run_scan_logged(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: ScanRecord,
        version: Version,
    ) {
        if let Err(e) = self.run_scan(repo, digest, record, version).await {
            tracing::warn!(repo = %repo, digest = %digest, error = %e, "scan not recorded");
        }
    }

    /// The manifest at `digest`, which must be in `repo`.
    /// Read without counting as a pull: scanning must not keep an image alive under a
    /// lifecycle rule on pull times.
    async fn scanned_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Manifest> {
        let Some(record) = self.manifest_record(repo, digest).await? else {
            return Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!("manifest {digest} is not in repository {repo}"),
            ));
        };
        let raw = self.get_bytes_in(repo, digest).await?;
        Manifest::parse(raw, Some(&record.media_type))
    }

    /// Claims the scan of `digest`: creates or takes over its record as `IN_PROGRESS`.
    async fn claim_scan(&self, repo: &RepoName, digest: &Digest) -> Result<Claim> {
        let key = InRepo::new(repo, digest);
        loop {
            let now = self.now_millis();
            let current = SCANS.get(self.meta(), &key).await?;
            let expect = match &current {
                Some((record, _))
                    if record.status == ScanStatus::InProgress
                        && now.saturating_sub(record.started_at_ms)
                            < SCAN_CLAIM.as_millis() as u64 =>
                {
                    return Ok(Claim::Running(record.clone()));
                }
                Some((_, version)) => Expect::Version(*version),
                None => Expect::Absent,
            };
            let previous = current.map(|(record, _)| record);
            let record = ScanRecord {
                status: ScanStatus::InProgress,
                reason: None,
                started_at_ms: now,
                completed_at_ms: None,
                // Kept until the new results replace them, so they can be removed then.
                sbom: previous.as_ref().and_then(|p| p.sbom.clone()),
                findings: previous.as_ref().and_then(|p| p.findings.clone()),
                counts: FindingCounts::default(),
                database: None,
                events: Vec::new(),
            };
            match SCANS.put(self.meta(), &key, &record, expect).await {
                Ok(version) => return Ok(Claim::Won(record, version)),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs the scanner on a claimed image and records how it ended.
    async fn run_scan(
        &self,
        repo: &RepoName,
        digest: &Digest,
        claimed: ScanRecord,
        version: Version,
    ) -> Result<ImageScan> {
        let scanner = self.scanner()?;
        let _permit = self.inner.scans.permits.clone().acquire_owned().await;
        let manifest = self.scanned_manifest(repo, digest).await?;
        let target = target(repo, digest, &manifest);
        // The SBOM names the image's own layers, as the scan read them.
        let layer_digests: Vec<String> = target
            .iter()
            .flat_map(|t| t.layers.iter().map(|l| l.digest.to_string()))
            .collect();
        let outcome = match target {
            Some(target) => {
                let layers = RepositoryLayers {
                    registry: self.clone(),
                    repo: repo.clone(),
                };
                scanner.scan(&target, &layers).await
            }
            None => {
                ScanOutcome::Unsupported("an artifact or index, not an image manifest".to_owned())
            }
        };
        let mut record = claimed.clone();
        record.completed_at_ms = Some(self.now_millis());
        match outcome {
            ScanOutcome::Complete(report) => {
                record.status = ScanStatus::Complete;
                record.counts = FindingCounts::of(&report.findings);
                record.database = report.database.clone();
                let stored = self
                    .store_results(repo, digest, layer_digests, report)
                    .await?;
                record.sbom = Some(stored.sbom);
                record.findings = Some(stored.findings);
            }
            ScanOutcome::Unsupported(reason) => {
                record.status = ScanStatus::UnsupportedImage;
                record.reason = Some(reason);
                record.sbom = None;
                record.findings = None;
            }
            ScanOutcome::Failed(reason) => {
                record.status = ScanStatus::Failed;
                record.reason = Some(reason);
                record.sbom = None;
                record.findings = None;
            }
        }
        self.complete_scan(repo, digest, &claimed, version, record)
            .await
    }

    /// Combines the scans of an index's children: the least finished status wins.
    async fn combined_scan(
        &self,
        repo: &RepoName,
        children: &[crate::manifest::Descriptor],
    ) -> Result<ImageScan> {
        let mut combined: Option<ImageScan> = None;
        for child in children {
            let Some((record, _)) = SCANS
                .get(self.meta(), &InRepo::new(repo, &child.digest))
                .await?
            else {
                continue;
            };
            let scan = ImageScan::from(&record);
            combined = Some(match combined {
                None => scan,
                Some(mut sum) => {
                    sum.counts.add(&scan.counts);
                    if rank(scan.status) < rank(sum.status) {
                        sum.status = scan.status;
                        sum.reason = scan.reason;
                    }
                    sum.started_at = sum.started_at.min(scan.started_at);
                    sum.completed_at = sum.completed_at.max(scan.completed_at);
                    sum.sbom = None;
                    sum.findings_artifact = None;
                    sum
                }
            });
        }
        combined.ok_or_else(|| {
            Error::new(
                ErrorKind::ScanNotFound,
                "no platform manifest of this index has been scanned",
            )
        })
    }
}

/// How finished a status is, for combining an index's children.
fn rank(status: ScanStatus) -> u8 {
    match status {
        ScanStatus::InProgress => 0,
        ScanStatus::Failed => 1,
        ScanStatus::ScanEligibilityExpired => 2,
        ScanStatus::UnsupportedImage => 3,
        ScanStatus::Complete => 4,
    }
}

/// Whether a manifest is an image a scan applies to: an image manifest whose config is
/// an image config and that refers to no subject.
pub(super) fn is_image(manifest: &Manifest) -> bool {
    manifest.subject().is_none()
        && matches!(manifest.content(), ManifestContent::Image { config, .. }
            if config.media_type == "application/vnd.oci.image.config.v1+json"
                || config.media_type == "application/vnd.docker.container.image.v1+json")
}

fn target(repo: &RepoName, digest: &Digest, manifest: &Manifest) -> Option<ScanTarget> {
    match manifest.content() {
        ManifestContent::Image { config, layers } if manifest.subject().is_none() => {
            Some(ScanTarget {
                repo: repo.clone(),
                digest: digest.clone(),
                config: (**config).clone(),
                layers: layers.clone(),
                platform: config.platform.clone(),
            })
        }
        _ => None,
    }
}
