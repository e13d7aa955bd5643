//! Rust binaries built with `cargo auditable`: the crates compiled into them.
//!
//! # The format
//!
//! `cargo auditable` (rust-secure-code/cargo-auditable) links the build's dependency
//! tree into the ELF section `.dep-v0` as zlib-compressed (RFC 1950) JSON:
//!
//! ```json
//! {"format": 1, "packages": [
//!   {"name": "adler", "version": "1.0.2", "source": "crates.io"},
//!   {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
//!   {"name": "app", "version": "0.1.0", "source": "local", "dependencies": [0, 1], "root": true}
//! ]}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `name`, `version` | the crate as Cargo.toml declares it (required) |
//! | `source` | `crates.io`, `registry` (another registry), `git`, `local` (a path or workspace crate), or another word for sources yet to come (required) |
//! | `kind` | `runtime` (the default, may be left out) or `build`: needed only to build (build scripts and their dependencies; from format 1 on, procedural macros too) |
//! | `dependencies` | indices into `packages` (ignored here) |
//! | `root` | `true` for the crate the binary belongs to (default `false`) |
//!
//! `format` (absent = 0) says where the data came from; every revision keeps these
//! fields, so it is not checked. Other fields are ignored.
//!
//! # Packages
//!
//! A crate is reported (see [`AuditedCrate::is_reported`]) when it is compiled into the
//! binary (`kind` runtime: build-only crates ran on the build machine and are not in it)
//! and it came from somewhere advisories can name it: crates.io, another registry or git.
//! The root crate is reported too, even when `local`: it is the binary's own package.
//! Other local crates (workspace members, path dependencies) are left out: they are not
//! published, and a local crate sharing a crates.io name would be matched against that
//! unrelated crate's advisories.
//!
//! # Limits
//!
//! The section may inflate to at most [`MAX_JSON_BYTES`] (more is a zlib bomb, and an
//! error) and list at most [`MAX_CRATES`] crates.

use std::fmt;
use std::io::Read;

use flate2::read::ZlibDecoder;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::elf::{self, ElfError};
use crate::scan::package::{InventoryError, Package, PackageKind};

/// The section `cargo auditable` writes.
pub const SECTION: &str = ".dep-v0";

/// The most bytes the section may inflate to. Real dependency lists take a few hundred
/// kilobytes at most.
pub const MAX_JSON_BYTES: usize = 8 * 1024 * 1024;

/// The most crates read from one binary.
pub const MAX_CRATES: usize = 20_000;

/// One crate of the recorded dependency tree.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuditedCrate {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where it came from.
    pub source: CrateSource,
    /// Whether it is compiled in or only needed to build.
    #[serde(default)]
    pub kind: DependencyKind,
    /// Whether it is the crate the binary belongs to.
    #[serde(default)]
    pub root: bool,
}

/// Where a crate came from (`source`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "String", into = "String")]
pub enum CrateSource {
    /// `crates.io`.
    CratesIo,
    /// `registry`: a registry other than crates.io.
    Registry,
    /// `git`: a git repository.
    Git,
    /// `local`: a path dependency or workspace member.
    Local,
    /// A source this reader does not know, as written.
    Other(String),
}

impl From<String> for CrateSource {
    fn from(source: String) -> Self {
        match source.as_str() {
            "crates.io" => CrateSource::CratesIo,
            "registry" => CrateSource::Registry,
            "git" => CrateSource::Git,
            "local" => CrateSource::Local,
            _ => CrateSource::Other(source),
        }
    }
}

impl From<CrateSource> for String {
    fn from(source: CrateSource) -> Self {
        match source {
            CrateSource::CratesIo => "crates.io".to_owned(),
            CrateSource::Registry => "registry".to_owned(),
            CrateSource::Git => "git".to_owned(),
            CrateSource::Local => "local".to_owned(),
            CrateSource::Other(other) => other,
        }
    }
}

/// Whether a crate ends up in the binary (`kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    /// `runtime`: compiled into the binary (also when it is a build dependency too).
    #[default]
    Runtime,
    /// `build`: only needed to build it.
    Build,
}

impl AuditedCrate {
    /// Whether the crate is reported as a package: compiled in, and from crates.io,
    /// another registry or git, or the root crate (see the module documentation).
    pub fn is_reported(&self) -> bool {
        let named_by_advisories = match self.source {
            CrateSource::CratesIo | CrateSource::Registry | CrateSource::Git => true,
            CrateSource::Local => self.root,
            CrateSource::Other(_) => false,
        };
        self.kind == DependencyKind::Runtime && named_by_advisories
    }
}

/// Why a binary's `.dep-v0` section could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// The ELF structure around it is damaged.
    Elf(ElfError),
    /// The section is not a zlib stream.
    Inflate {
        /// The decoder's complaint.
        reason: String,
    },
    /// The section inflates to more than [`MAX_JSON_BYTES`].
    TooLarge,
    /// The JSON is malformed or does not have the expected shape (including a list of
    /// more than [`MAX_CRATES`] crates).
    Json {
        /// What is wrong, with its line and column.
        reason: String,
    },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Elf(error) => write!(f, "{error}"),
            AuditError::Inflate { reason } => {
                write!(f, "section {SECTION} does not inflate: {reason}")
            }
            AuditError::TooLarge => write!(
                f,
                "section {SECTION} inflates to more than {MAX_JSON_BYTES} bytes"
            ),
            AuditError::Json { reason } => {
                write!(f, "section {SECTION} is not a dependency list: {reason}")
            }
        }
    }
}

impl std::error::Error for AuditError {}

impl From<ElfError> for AuditError {
    fn from(error: ElfError) -> Self {
        AuditError::Elf(error)
    }
}

impl From<AuditError> for InventoryError {
    fn from(error: AuditError) -> Self {
        InventoryError::new("cargo auditable", error.to_string())
    }
}

/// The reported crates of `binary` (an ELF file), as packages found at `path`; none for
/// a binary without a `.dep-v0` section.
pub fn parse(binary: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    let crates = read_crates(binary)?.unwrap_or_default();
    Ok(crates
        .into_iter()
        .filter(AuditedCrate::is_reported)
        .map(|audited| Package {
            kind: PackageKind::Cargo,
            name: audited.name,
            version: audited.version,
            source: None,
            arch: None,
            license: None,
            path: path.to_owned(),
        })
        .collect())
}

/// Every crate recorded in `binary` (an ELF file), build-only and local ones included;
/// `None` without a `.dep-v0` section.
pub fn read_crates(binary: &[u8]) -> Result<Option<Vec<AuditedCrate>>, AuditError> {
    elf::section_data(binary, SECTION)?
        .map(decode_section)
        .transpose()
}

/// Every crate recorded in the bytes of a `.dep-v0` section.
pub fn decode_section(section: &[u8]) -> Result<Vec<AuditedCrate>, AuditError> {
    let mut json = Vec::new();
    // One byte past the cap tells a stream at the cap from a bigger one.
    let limit = u64::try_from(MAX_JSON_BYTES).map_or(u64::MAX, |max| max.saturating_add(1));
    ZlibDecoder::new(section)
        .take(limit)
        .read_to_end(&mut json)
        .map_err(|error| AuditError::Inflate {
            reason: error.to_string(),
        })?;
    if json.len() > MAX_JSON_BYTES {
        return Err(AuditError::TooLarge);
    }
    let list: DependencyList = serde_json::from_slice(&json).map_err(|error| AuditError::Json {
        reason: error.to_string(),
    })?;
    Ok(list.packages)
}

/// The section's JSON document.
#[derive(Deserialize)]
struct DependencyList {
    #[serde(deserialize_with = "at_most_max_crates")]
    packages: Vec<AuditedCrate>,
}

/// Reads the `packages` list, stopping at the first crate past [`MAX_CRATES`].
fn at_most_max_crates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<AuditedCrate>, D::Error> {
    struct Bounded;

    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<AuditedCrate>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_CRATES} packages")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut crates = Vec::new();
            while let Some(audited) = seq.next_element()? {
                if crates.len() == MAX_CRATES {
                    return Err(de::Error::custom(format!(
                        "more than {MAX_CRATES} packages"
                    )));
                }
                crates.push(audited);
            }
            Ok(crates)
        }
    }

    deserializer.deserialize_seq(Bounded)
}
