//! What an inventory finds: packages, the ecosystem each belongs to, and why a database
//! could not be read.
//!
//! Every analyzer (dpkg, apk, rpm, Python, npm, Go, Rust) turns the bytes of one file into
//! [`Package`]s. Analyzers are pure: they see bytes, never the filesystem, so a fuzzer can
//! drive each one and a hostile layer can only make them return an [`InventoryError`].

use std::fmt;

/// The package system a package was installed by; it decides how versions compare and
/// which vulnerability-database ecosystem holds its advisories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PackageKind {
    /// A Debian or Ubuntu package from `var/lib/dpkg/status` or `status.d/`.
    Dpkg,
    /// An Alpine package from `lib/apk/db/installed`.
    Apk,
    /// An RPM package from the rpmdb (Fedora, RHEL and its rebuilds, Amazon Linux).
    Rpm,
    /// A Python distribution from a `*.dist-info/METADATA` file.
    Python,
    /// An npm package from a `node_modules/**/package.json`.
    Npm,
    /// A Go module from a binary's build information.
    Go,
    /// A Rust crate from a binary built with `cargo auditable`.
    Cargo,
}

impl PackageKind {
    /// Every package system, in declaration order.
    pub const ALL: [PackageKind; 7] = [
        PackageKind::Dpkg,
        PackageKind::Apk,
        PackageKind::Rpm,
        PackageKind::Python,
        PackageKind::Npm,
        PackageKind::Go,
        PackageKind::Cargo,
    ];

    /// The package system whose [`PackageKind::as_str`] is `name`.
    pub fn named(name: &str) -> Option<PackageKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The lower-case name used in reports and SBOMs (`dpkg`, `apk`, `rpm`, `python`,
    /// `npm`, `go`, `cargo`).
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Dpkg => "dpkg",
            PackageKind::Apk => "apk",
            PackageKind::Rpm => "rpm",
            PackageKind::Python => "python",
            PackageKind::Npm => "npm",
            PackageKind::Go => "go",
            PackageKind::Cargo => "cargo",
        }
    }

    /// Whether the package belongs to the operating system (and so to its release).
    pub fn is_os(self) -> bool {
        matches!(
            self,
            PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm
        )
    }
}

impl fmt::Display for PackageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Package {
    /// The package system that installed it.
    pub kind: PackageKind,
    /// The name as the package system writes it (a Go module path, an npm name with its
    /// `@scope/`, a Python project name as its metadata spells it).
    pub name: String,
    /// The full version as the package system writes it: dpkg `epoch:upstream-revision`
    /// (the epoch only when the database has one), rpm `epoch:version-release` (the epoch
    /// only when set), apk `version-rN`, Go `v1.2.3`, the others as declared.
    pub version: String,
    /// The source package, where the format has one (dpkg `Source:`, rpm `SOURCERPM`,
    /// apk origin): advisories for distributions are filed against it.
    pub source: Option<SourcePackage>,
    /// The architecture, where the format records one.
    pub arch: Option<String>,
    /// The declared licence, as the format writes it, where it has one.
    pub license: Option<String>,
    /// The file the package was found in, relative to the image root, without a leading
    /// `/` (`var/lib/dpkg/status`, `usr/bin/app`).
    pub path: String,
}

/// A package's source package: the unit distributions publish advisories for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePackage {
    /// The source package's name.
    pub name: String,
    /// Its version, when it differs from the binary package's (dpkg `Source: x (1.2-3)`);
    /// `None` means the binary package's version.
    pub version: Option<String>,
}

/// Why a package database, metadata file or binary could not be read.
///
/// The scan of an image goes on without that file; the error is reported with the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    /// The format being read (`dpkg status`, `rpmdb`, `go buildinfo`, …).
    pub format: &'static str,
    /// What was wrong, naming the record or offset where that helps.
    pub reason: String,
}

impl InventoryError {
    /// An error reading `format`, for `reason`.
    pub fn new(format: &'static str, reason: impl Into<String>) -> Self {
        InventoryError {
            format,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.format, self.reason)
    }
}

impl std::error::Error for InventoryError {}

/// The operating system an image is built on, from `etc/os-release` (or
/// `usr/lib/os-release`): what decides which distribution advisories apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OsRelease {
    /// `ID`: `debian`, `ubuntu`, `alpine`, `fedora`, `rhel`, `amzn`, `rocky`, `almalinux`, …
    pub id: String,
    /// `VERSION_ID`: `12`, `22.04`, `3.19.1`, `2023`, … where the file has one (Debian
    /// testing and Alpine edge have none).
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`: `bookworm`, `jammy`, …
    pub version_codename: Option<String>,
    /// `ID_LIKE`, split on spaces: the distributions this one derives from.
    pub id_like: Vec<String>,
    /// `PRETTY_NAME`, for reports.
    pub pretty_name: Option<String>,
}
