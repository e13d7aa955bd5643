//! Image scanning: what an image holds (a package inventory, written out as an SBOM) and
//! which known vulnerabilities affect it (findings matched against OSV data).
//!
//! The registry runs a [`Scanner`] after a push commits (when the repository has
//! `scan_on_push`) or on demand, and stores what it returns next to the image as OCI
//! referrers: the SBOM with `artifactType` `application/vnd.cyclonedx+json` (or
//! `application/spdx+json`) and the findings with [`FINDINGS_ARTIFACT_TYPE`], both with
//! the image manifest as `subject`, so any OCI client finds them through the referrers
//! API. An embedder can plug in another scanner (Trivy, a commercial service) behind the
//! same trait.
//!
//! The built-in scanner ([`BuiltinScanner`]) walks the layers once ([`walk`]): each is
//! decompressed as a stream, read as tar, and the few files the analyzers want
//! ([`inventory`]) are read, size-capped, and analyzed at once, with OCI whiteouts
//! applied across layers ([`overlay`]). It finds the OS release, Debian and Ubuntu (dpkg),
//! Alpine (apk) and RPM (sqlite rpmdb) packages, Python distributions, npm packages, and
//! the modules compiled into Go binaries and Rust binaries built with `cargo auditable`.
//! Packages are matched against offline OSV records ([`osv`]) with each ecosystem's own
//! version ordering ([`version`]), aware of the distribution release.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::blob::ByteStream;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{Descriptor, Platform};
use crate::reference::RepoName;

mod builtin;
pub mod decompress;
pub mod finding;
pub mod inventory;
pub mod osv;
pub mod overlay;
pub mod package;
pub mod sbom;
pub mod sqlite;
pub mod tar;
pub mod version;
pub mod walk;

pub use self::builtin::{BuiltinScanner, ScanLimits};
pub use self::finding::{Finding, FindingCounts, Severity};
pub use self::package::{InventoryError, OsRelease, Package, PackageKind, SourcePackage};
pub use self::sbom::SbomFormat;

/// The `artifactType` of the findings a scan stores as a referrer of the image.
pub const FINDINGS_ARTIFACT_TYPE: &str = "application/vnd.dev.wharf.scan.findings.v1+json";

/// Where an image's scan stands, with ECR's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanStatus {
    /// The scan has started and not finished.
    InProgress,
    /// The scan finished; its findings are stored.
    Complete,
    /// The scan could not finish: the image is malformed, hostile, or could not be read.
    Failed,
    /// The image cannot be scanned by design (an artifact, an unsupported layer format
    /// or package database); the reason says which.
    UnsupportedImage,
    /// The image has not been pushed or pulled within the rescan window, so its
    /// findings are no longer matched against new vulnerability data.
    ScanEligibilityExpired,
}

impl ScanStatus {
    /// ECR's name for the status (`IN_PROGRESS`, `COMPLETE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::InProgress => "IN_PROGRESS",
            ScanStatus::Complete => "COMPLETE",
            ScanStatus::Failed => "FAILED",
            ScanStatus::UnsupportedImage => "UNSUPPORTED_IMAGE",
            ScanStatus::ScanEligibilityExpired => "SCAN_ELIGIBILITY_EXPIRED",
        }
    }
}

impl fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A package of an inventory, with the layer it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedPackage {
    /// The package.
    pub package: Package,
    /// The digest of the layer whose files hold it, when known.
    pub layer: Option<String>,
}

/// What an image holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The operating system, when the image has an `os-release`.
    pub os: Option<OsRelease>,
    /// Every package found, sorted.
    pub packages: Vec<LocatedPackage>,
}

/// One image manifest to scan.
#[derive(Debug, Clone)]
pub struct ScanTarget {
    /// The repository it was pushed to.
    pub repo: RepoName,
    /// The image manifest's digest.
    pub digest: Digest,
    /// The config blob's descriptor.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// The platform, when an index names it.
    pub platform: Option<Platform>,
}

/// Reads the blobs of the image being scanned.
#[async_trait]
pub trait LayerReader: Send + Sync {
    /// The whole blob, as a stream that ends with an error when its bytes do not match
    /// its digest.
    async fn open(&self, digest: &Digest) -> Result<ByteStream>;
}

/// What a scan found, when it finished.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanReport {
    /// The package inventory (written out as the SBOM).
    pub inventory: Inventory,
    /// The vulnerabilities found, most severe first.
    pub findings: Vec<Finding>,
    /// The identity of the vulnerability data matched against, if any.
    pub database: Option<String>,
    /// Files skipped, databases that could not be read, ecosystems without data.
    pub notes: Vec<String>,
}

/// How a scan ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanOutcome {
    /// The scan finished.
    Complete(ScanReport),
    /// The image cannot be scanned by design; the reason says why.
    Unsupported(String),
    /// The scan failed; the reason says why.
    Failed(String),
}

/// Scans images: the built-in [`BuiltinScanner`], or one an embedder plugs in.
///
/// # Contract
///
/// 1. `scan` never panics on any image content and reads each layer at most once.
/// 2. The same image and the same vulnerability data give the same report.
/// 3. `rematch` gives the findings `scan` would give for an image whose inventory is the
///    one passed, without reading any layer.
#[async_trait]
pub trait Scanner: Send + Sync + fmt::Debug + 'static {
    /// Scans one image manifest.
    async fn scan(&self, target: &ScanTarget, layers: &dyn LayerReader) -> ScanOutcome;

    /// An identity of the vulnerability data in use, which changes when it does.
    fn database(&self) -> Option<String> {
        None
    }

    /// Matches an inventory read back from a stored SBOM against the current data;
    /// `None` when this scanner cannot (the registry then scans the image again).
    fn rematch(&self, inventory: &Inventory) -> Option<Vec<Finding>> {
        let _ = inventory;
        None
    }
}
