//! The analyzers: which files of an image say what is installed, and how each is read.
//!
//! | what | where | cap |
//! |---|---|---|
//! | OS release | `etc/os-release`, else `usr/lib/os-release` (symlinks followed) | 64 KiB |
//! | dpkg | `var/lib/dpkg/status`, distroless `var/lib/dpkg/status.d/<name>` | 64 MiB, 1 MiB |
//! | apk | `lib/apk/db/installed` | 64 MiB |
//! | rpm | `var/lib/rpm/rpmdb.sqlite`, `usr/lib/sysimage/rpm/rpmdb.sqlite`; Berkeley DB `var/lib/rpm/Packages` | 128 MiB |
//! | Python | `…/<name>.dist-info/METADATA`, `…/<name>.egg-info/PKG-INFO` | 1 MiB |
//! | npm | `…/node_modules/[@scope/]<name>/package.json` | 1 MiB |
//! | Go, Rust | executable files that start with the ELF magic | 128 MiB |
//!
//! A file over its cap is skipped with a note. Berkeley DB rpmdbs (RHEL 7 and 8,
//! Amazon Linux 2) are read; SUSE's ndb is recognised but not read: an image whose only
//! package database is one is reported unsupported.

use super::package::{InventoryError, OsRelease, Package};
use super::walk::{Analyzers, Wanted};

pub mod apk;
pub mod cargo_auditable;
pub mod dpkg;
pub mod elf;
pub mod go;
pub mod npm;
pub mod os_release;
pub mod python;
pub mod rpm;

/// Where an image keeps its OS release, in the order they are tried.
pub const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// What one file said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The OS release.
    Os(OsRelease),
    /// Installed packages (possibly none).
    Packages(Vec<Package>),
    /// The file is a package database or binary that could not be read.
    Unreadable(InventoryError),
    /// A package database in a format not supported; the reason says which.
    Unsupported(String),
}

/// The built-in analyzers, with their caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinAnalyzers {
    /// The most bytes of one package database read (dpkg status, apk installed, rpmdb).
    pub max_database: usize,
    /// The most bytes of one binary read.
    pub max_binary: usize,
}

impl Default for BuiltinAnalyzers {
    fn default() -> Self {
        BuiltinAnalyzers {
            max_database: 64 * MIB,
            max_binary: 128 * MIB,
        }
    }
}

/// The kinds of file the analyzers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    OsRelease,
    DpkgStatus,
    DpkgStatusD,
    ApkInstalled,
    RpmSqlite,
    RpmBerkeleyDb,
    RpmNdb,
    PythonMetadata,
    NpmPackage,
    Binary,
}

fn file_kind(path: &str, mode: u32) -> Option<FileKind> {
    if OS_RELEASE.contains(&path) {
        return Some(FileKind::OsRelease);
    }
    if path == dpkg::STATUS {
        return Some(FileKind::DpkgStatus);
    }
    if let Some(name) = path.strip_prefix(dpkg::STATUS_D)
        && !name.contains('/')
        && !name.is_empty()
        && !name.ends_with(".md5sums")
    {
        return Some(FileKind::DpkgStatusD);
    }
    if path == apk::INSTALLED {
        return Some(FileKind::ApkInstalled);
    }
    if rpm::RPMDB_SQLITE.contains(&path) {
        return Some(FileKind::RpmSqlite);
    }
    if rpm::RPMDB_BDB.contains(&path) {
        return Some(FileKind::RpmBerkeleyDb);
    }
    if rpm::RPMDB_NDB.contains(&path) {
        return Some(FileKind::RpmNdb);
    }
    if python::is_metadata_path(path) {
        return Some(FileKind::PythonMetadata);
    }
    if npm::is_package_json_path(path) {
        return Some(FileKind::NpmPackage);
    }
    if mode & 0o111 != 0 {
        return Some(FileKind::Binary);
    }
    None
}

impl Analyzers for BuiltinAnalyzers {
    type Found = Found;

    fn wants(&self, path: &str, mode: u32, _size: u64) -> Option<Wanted> {
        let read = |cap| Wanted { cap, magic: None };
        Some(match file_kind(path, mode)? {
            FileKind::OsRelease => read(64 * KIB),
            FileKind::DpkgStatus | FileKind::ApkInstalled => read(self.max_database),
            FileKind::RpmSqlite | FileKind::RpmBerkeleyDb => read(self.max_database.max(128 * MIB)),
            FileKind::DpkgStatusD | FileKind::PythonMetadata | FileKind::NpmPackage => read(MIB),
            // Seen, not read: the analysis needs only the path.
            FileKind::RpmNdb => read(0),
            FileKind::Binary => Wanted {
                cap: self.max_binary,
                magic: Some(b"\x7fELF"),
            },
        })
    }

    fn follows(&self, path: &str) -> bool {
        OS_RELEASE.contains(&path)
            || path == dpkg::STATUS
            || path == apk::INSTALLED
            || rpm::RPMDB_SQLITE.contains(&path)
            || rpm::RPMDB_BDB.contains(&path)
    }

    fn analyze(&self, path: &str, data: &[u8]) -> Found {
        let packages = |result: Result<Vec<Package>, InventoryError>| match result {
            Ok(packages) => Found::Packages(packages),
            Err(e) => Found::Unreadable(e),
        };
        let single = |result: Result<Option<Package>, InventoryError>| {
            packages(result.map(|p| p.into_iter().collect()))
        };
        match file_kind(path, u32::MAX) {
            Some(FileKind::OsRelease) => match os_release::parse(data) {
                Ok(os) => Found::Os(os),
                Err(e) => Found::Unreadable(e),
            },
            Some(FileKind::DpkgStatus | FileKind::DpkgStatusD) => {
                packages(dpkg::parse_status(data, path))
            }
            Some(FileKind::ApkInstalled) => packages(apk::parse_installed(data, path)),
            Some(FileKind::RpmSqlite) => packages(rpm::parse_sqlite(data, path)),
            Some(FileKind::RpmBerkeleyDb) => packages(rpm::parse_bdb(data, path)),
            Some(FileKind::RpmNdb) => {
                Found::Unsupported(format!("{path}: {}", rpm::NDB_UNSUPPORTED))
            }
            Some(FileKind::PythonMetadata) => single(python::parse_metadata(data, path)),
            Some(FileKind::NpmPackage) => single(npm::parse_package_json(data, path)),
            Some(FileKind::Binary) | None => packages(binary(data, path)),
        }
    }
}

/// The modules of a Go binary and the crates of a `cargo auditable` one; either
/// reader failing does not hide what the other found.
fn binary(data: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    match (go::parse(data, path), cargo_auditable::parse(data, path)) {
        (Ok(mut modules), Ok(crates)) => {
            modules.extend(crates);
            Ok(modules)
        }
        (Ok(found), Err(e)) | (Err(e), Ok(found)) if found.is_empty() => Err(e),
        (Ok(found), Err(_)) | (Err(_), Ok(found)) => Ok(found),
        (Err(e), Err(_)) => Err(e),
    }
}
