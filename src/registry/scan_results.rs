//! A scan's results as OCI referrers of the image: the SBOM and the findings, each an
//! artifact manifest (empty config, one layer) whose `subject` is the image, so the
//! referrers API finds them by `artifactType`. And the record that ends a scan.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Registry;
use super::outbox::{Applied, Outcome};
use super::scans::{ImageScan, ScanRecord};
use super::schema::{InRepo, SCANS};
use crate::blob::BlobInfo;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::manifest::{Manifest, ManifestContent, OCI_EMPTY, OCI_IMAGE_MANIFEST};
use crate::meta::Version;
use crate::reference::{Reference, RepoName};
use crate::scan::sbom::{self, LocatedPackage as SbomPackage, SbomSubject};
use crate::scan::{
    FINDINGS_ARTIFACT_TYPE, Finding, FindingCounts, Inventory, LocatedPackage, OsRelease,
    SbomFormat, ScanReport,
};

/// The digests of a scan's stored referrers.
pub(super) struct StoredResults {
    pub(super) sbom: Digest,
    pub(super) findings: Digest,
}

/// The findings document, stored as the findings artifact's one layer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FindingsDocument {
    repository_name: String,
    image_digest: String,
    image_scan_completed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vulnerability_database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operating_system: Option<String>,
    finding_severity_counts: FindingCounts,
    findings: Vec<Finding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// What a findings artifact records of a scan.
pub(super) struct FindingsReport {
    pub(super) os: Option<OsRelease>,
    pub(super) findings: Vec<Finding>,
    pub(super) database: Option<String>,
    pub(super) notes: Vec<String>,
}

impl Registry {
    /// Stores the SBOM and the findings of `report` as referrers of `digest`.
    pub(super) async fn store_results(
        &self,
        repo: &RepoName,
        digest: &Digest,
        layers: Vec<String>,
        report: ScanReport,
    ) -> Result<StoredResults> {
        let ScanReport {
            inventory,
            findings,
            database,
            notes,
        } = report;
        let findings = FindingsReport {
            os: inventory.os.clone(),
            findings,
            database,
            notes,
        };
        let sbom = self.store_sbom(repo, digest, layers, inventory).await?;
        let findings = self.store_findings(repo, digest, &findings).await?;
        Ok(StoredResults { sbom, findings })
    }

    /// Stores the SBOM of `inventory` as a referrer of `digest`. The document is streamed
    /// into its blob as it is written: an inventory of tens of thousands of packages makes
    /// tens of MiB of SBOM, which memory never holds.
    async fn store_sbom(
        &self,
        repo: &RepoName,
        digest: &Digest,
        layers: Vec<String>,
        inventory: Inventory,
    ) -> Result<Digest> {
        let format = self.inner.scans.sbom_format;
        let now = self.now();
        let (repository, image) = (repo.to_string(), digest.to_string());
        let document = self
            .push_written_blob(repo, move |out| {
                let packages: Vec<SbomPackage<'_>> = inventory
                    .packages
                    .iter()
                    .map(|p| SbomPackage {
                        package: &p.package,
                        layer: p.layer.as_deref(),
                    })
                    .collect();
                let subject = SbomSubject {
                    repository: &repository,
                    digest: &image,
                    platform: None,
                    os: inventory.os.as_ref(),
                    layers: &layers,
                    created: chrono::DateTime::<chrono::Utc>::from(now),
                    tool_version: env!("CARGO_PKG_VERSION"),
                };
                sbom::write_to(format, &subject, &packages, out)
            })
            .await?;
        let completed = crate::lifecycle::format_rfc3339(now);
        self.push_referrer(repo, digest, format.media_type(), &document, &completed)
            .await
    }

    /// Stores `report` as the findings referrer of `digest`.
    pub(super) async fn store_findings(
        &self,
        repo: &RepoName,
        digest: &Digest,
        report: &FindingsReport,
    ) -> Result<Digest> {
        let completed = crate::lifecycle::format_rfc3339(self.now());
        let findings = FindingsDocument {
            repository_name: repo.to_string(),
            image_digest: digest.to_string(),
            image_scan_completed_at: completed.clone(),
            vulnerability_database: report.database.clone(),
            operating_system: report.os.as_ref().map(os_name),
            finding_severity_counts: FindingCounts::of(&report.findings),
            findings: report.findings.clone(),
            notes: report.notes.clone(),
        };
        let body = serde_json::to_vec(&findings)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("encoding findings: {e}")))?;
        let layer_digest = Digest::of(Algorithm::Sha256, &body);
        let layer = self
            .push_blob(repo, &layer_digest, Bytes::from(body))
            .await?;
        self.push_referrer(repo, digest, FINDINGS_ARTIFACT_TYPE, &layer, &completed)
            .await
    }

    /// The inventory in the SBOM artifact `artifact`, in whichever format it was written.
    pub(super) async fn read_sbom(&self, repo: &RepoName, artifact: &Digest) -> Result<Inventory> {
        let (artifact_type, body) = self.artifact(repo, artifact).await?;
        let format = [SbomFormat::CycloneDx, SbomFormat::Spdx]
            .into_iter()
            .find(|f| f.media_type() == artifact_type)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!("SBOM artifact {artifact} in {repo} has type {artifact_type}"),
                )
            })?;
        let contents = sbom::read(format, &body).map_err(|e| {
            Error::new(
                ErrorKind::CorruptData,
                format!("SBOM artifact {artifact} in {repo} is not readable: {e}"),
            )
        })?;
        Ok(Inventory {
            os: contents.os,
            packages: contents
                .packages
                .into_iter()
                .map(|(package, layer)| LocatedPackage { package, layer })
                .collect(),
        })
    }

    /// Pushes an artifact of `artifact_type` whose one layer is the blob `layer`, already
    /// in `repo`, and whose subject is `subject`.
    async fn push_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: &str,
        layer: &BlobInfo,
        created: &str,
    ) -> Result<Digest> {
        let Some(image) = self.manifest_record(repo, subject).await? else {
            return Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!("image {subject} left {repo} while it was scanned"),
            ));
        };
        let empty = Bytes::from_static(b"{}");
        let empty_digest = Digest::of(Algorithm::Sha256, &empty);
        self.push_blob(repo, &empty_digest, empty).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty_digest.as_str(), "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer.digest.as_str(), "size": layer.size}],
            "subject": {"mediaType": image.media_type, "digest": subject.as_str(), "size": image.size},
            "annotations": {"org.opencontainers.image.created": created},
        });
        let raw = Bytes::from(manifest.to_string());
        let digest = Digest::of(Algorithm::Sha256, &raw);
        self.push_manifest(
            repo,
            &Reference::Digest(digest.clone()),
            raw,
            Some(OCI_IMAGE_MANIFEST),
        )
        .await?;
        Ok(digest)
    }

    /// The findings stored in the artifact `artifact`.
    pub(super) async fn read_findings(
        &self,
        repo: &RepoName,
        artifact: &Digest,
    ) -> Result<Vec<Finding>> {
        let (_, body) = self.artifact(repo, artifact).await?;
        let document: FindingsDocument = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::CorruptData,
                format!("findings artifact {artifact} in {repo} is not readable: {e}"),
            )
        })?;
        Ok(document.findings)
    }

    /// The artifact type and the one layer of an artifact this registry stored.
    async fn artifact(&self, repo: &RepoName, artifact: &Digest) -> Result<(String, Bytes)> {
        let raw = self.get_bytes_in(repo, artifact).await?;
        let manifest = Manifest::parse(raw, Some(OCI_IMAGE_MANIFEST))?;
        let ManifestContent::Image { layers, .. } = manifest.content() else {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!("scan artifact {artifact} in {repo} is not an artifact manifest"),
            ));
        };
        let Some(layer) = layers.first() else {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!("scan artifact {artifact} in {repo} has no layer"),
            ));
        };
        let body = self.get_bytes_in(repo, &layer.digest).await?;
        Ok((layer.media_type.clone(), body))
    }

    /// Ends a scan: writes `record` over the claim (at `version`) with its event, then
    /// removes the previous scan's referrers. A claim taken over meanwhile wins: this
    /// scan's referrers are removed instead.
    pub(super) async fn complete_scan(
        &self,
        repo: &RepoName,
        digest: &Digest,
        claimed: &ScanRecord,
        version: Version,
        record: ScanRecord,
    ) -> Result<ImageScan> {
        let tags = self.tags_pointing_at(repo, digest).await?;
        let event = Event::ImageScanned {
            repo: repo.clone(),
            digest: digest.clone(),
            status: record.status.as_str().to_owned(),
            counts: record.counts.as_map(),
            tags,
        };
        let applied = self
            .commit_with_event(&SCANS, &InRepo::new(repo, digest), |current| {
                Ok(match current {
                    Some((_, now)) if now == version => {
                        Some((Outcome::Put(record.clone()), event.clone()))
                    }
                    _ => None,
                })
            })
            .await?;
        let (superseded, scan) = match applied {
            Applied::Put(written, _) => {
                let old = [&claimed.sbom, &claimed.findings];
                let new = [&written.sbom, &written.findings];
                let gone: Vec<Digest> = old
                    .into_iter()
                    .flatten()
                    .filter(|d| !new.contains(&&Some((*d).clone())))
                    .cloned()
                    .collect();
                (gone, ImageScan::from(&written))
            }
            Applied::Unchanged | Applied::Deleted => {
                let mine: Vec<Digest> = [&record.sbom, &record.findings]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                let now = SCANS.get(self.meta(), &InRepo::new(repo, digest)).await?;
                let scan =
                    now.map_or_else(|| ImageScan::from(&record), |(r, _)| ImageScan::from(&r));
                (mine, scan)
            }
        };
        for artifact in superseded {
            match self.delete_manifest(repo, &artifact).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::ManifestUnknown => {}
                Err(e) => return Err(e),
            }
        }
        Ok(scan)
    }
}

/// `debian 12`, `alpine 3.19.1`: the OS as findings documents name it.
fn os_name(os: &OsRelease) -> String {
    match &os.version_id {
        Some(version) => format!("{} {version}", os.id),
        None => os.id.clone(),
    }
}
