//! SBOMs: an image's inventory written as CycloneDX 1.5 JSON (the default) or SPDX 2.3
//! JSON, and read back, so a stored SBOM can be matched against new vulnerability data
//! without reading the image's layers again.
//!
//! # What a document holds
//!
//! Both formats describe the image (its repository as the name, its manifest digest as
//! the version), one element for the operating system from `os-release`, and one per
//! package with its name and version as the package system writes them, its declared
//! licence and its purl ([`purl`]). wharf's own facts ride along under names in a
//! `wharf:` namespace ([`facts`]): CycloneDX `properties`, SPDX `annotations`. They are
//! what makes reading back lossless: the package system (`wharf:package:kind`), the file
//! it was found in, its architecture, its layer, its source package. The purl is derived
//! data (a PyPI name in it is normalised, for one) and is only checked on the way back:
//! it must parse, and its type must be the package system's.
//!
//! Each format's own rules are in the docs of the `cyclonedx` and `spdx` modules.
//!
//! # Determinism
//!
//! The same input gives the same bytes: packages are sorted (by package, then layer),
//! element ids are derived from the packages in that order, and the document's UUID
//! comes from a SHA-256 of the image digest, the format and the creation time, which the
//! caller passes in. JSON is compact, with fields in a fixed order.
//!
//! # Limits
//!
//! [`write()`] takes any inventory and holds one element at a time ([`write_to()`]
//! streams the document). [`read()`] takes documents of at most [`MAX_SBOM_BYTES`] with
//! at most [`MAX_PACKAGES`] packages, and at most [`MAX_FACTS`] properties, annotations,
//! licences or references on one element; a longer list is an error when its first
//! extra entry is reached, before it is stored. What reading back does not need (SPDX
//! relationships, CycloneDX metadata) is skipped unread.
//! A package takes some 500 bytes of CycloneDX and 1,200 of SPDX (one annotation per
//! fact), so the size cap is reached first: at about 250,000 CycloneDX packages or
//! 100,000 SPDX ones. Real images hold a few thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use sha2::{Digest as _, Sha256};

use self::purl::PurlError;
use crate::scan::package::{OsRelease, Package, PackageKind};

mod cyclonedx;
pub mod facts;
pub mod purl;
mod spdx;

/// The largest document [`read()`] accepts: 128 MiB.
pub const MAX_SBOM_BYTES: usize = 128 * 1024 * 1024;

/// The most packages [`read()`] accepts in one document.
pub const MAX_PACKAGES: usize = 200_000;

/// The most properties (CycloneDX) or annotations (SPDX) [`read()`] accepts on one element.
/// wharf writes at most six on a package, and one per layer on the image (overlay
/// filesystems stack at most 128 layers).
pub const MAX_FACTS: usize = 1000;

/// An SBOM format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SbomFormat {
    /// CycloneDX 1.5 JSON.
    #[default]
    CycloneDx,
    /// SPDX 2.3 JSON.
    Spdx,
}

impl SbomFormat {
    /// The media type: the `artifactType` of the referrer that stores the document.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
            SbomFormat::Spdx => "application/spdx+json",
        }
    }

    /// The format named `cyclonedx` or `spdx`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cyclonedx" => Some(SbomFormat::CycloneDx),
            "spdx" => Some(SbomFormat::Spdx),
            _ => None,
        }
    }

    /// `cyclonedx` or `spdx`, as [`parse`](Self::parse) reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "cyclonedx",
            SbomFormat::Spdx => "spdx",
        }
    }
}

impl fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The image an SBOM describes.
#[derive(Debug, Clone)]
pub struct SbomSubject<'a> {
    /// The repository, such as `team/app`.
    pub repository: &'a str,
    /// The image manifest's digest (`sha256:…`).
    pub digest: &'a str,
    /// The platform, such as `linux/amd64`, when known.
    pub platform: Option<&'a str>,
    /// The operating system, when the image has an `os-release`.
    pub os: Option<&'a OsRelease>,
    /// The layer digests, base first.
    pub layers: &'a [String],
    /// When the SBOM was made: passed in, so the same input gives the same bytes.
    pub created: DateTime<Utc>,
    /// wharf's version, named as the tool that made the document.
    pub tool_version: &'a str,
}

/// A package with the layer whose files hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocatedPackage<'a> {
    /// The package.
    pub package: &'a Package,
    /// The digest of its layer, when known.
    pub layer: Option<&'a str>,
}

/// What [`read()`] finds in a document [`write()`] made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SbomContents {
    /// The operating system.
    pub os: Option<OsRelease>,
    /// The packages, each with the digest of its layer, in the document's order (which
    /// [`write()`] sorts).
    pub packages: Vec<(Package, Option<String>)>,
}

/// Why a document could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SbomError {
    /// The document is larger than [`MAX_SBOM_BYTES`].
    TooLarge {
        /// Its size in bytes.
        size: usize,
    },
    /// The document is not JSON in the shape this module writes, or a list in it is
    /// longer than its cap; the reason names the field, line and column.
    Malformed {
        /// The format it was read as.
        format: SbomFormat,
        /// What was wrong.
        reason: String,
    },
    /// The document is another format or version.
    WrongFormat {
        /// The field that says so (`bomFormat`, `specVersion`, `spdxVersion`).
        field: &'static str,
        /// What it holds.
        found: String,
    },
    /// A package or OS element lacks one of wharf's facts.
    MissingFact {
        /// The element's id (`bom-ref` or `SPDXID`).
        element: String,
        /// The fact's name.
        fact: &'static str,
    },
    /// An element carries one of wharf's facts twice.
    DuplicateFact {
        /// The element's id.
        element: String,
        /// The fact's name.
        fact: &'static str,
    },
    /// A fact's value makes no sense: an unknown package kind, a source version without
    /// a source package.
    BadFact {
        /// The element's id.
        element: String,
        /// The fact's name.
        fact: &'static str,
        /// Its value.
        value: String,
    },
    /// A package's purl is not a package URL.
    BadPurl {
        /// The element's id.
        element: String,
        /// The purl as written.
        purl: String,
        /// Why it is not one.
        error: PurlError,
    },
    /// A package's purl has another type than its package system's.
    PurlMismatch {
        /// The element's id.
        element: String,
        /// The purl as written.
        purl: String,
        /// The package system the facts name.
        kind: PackageKind,
    },
    /// The document has a second operating-system element.
    TwoOperatingSystems {
        /// The second one's id.
        element: String,
    },
}

impl fmt::Display for SbomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SbomError::TooLarge { size } => {
                write!(
                    f,
                    "SBOM of {size} bytes is over the {MAX_SBOM_BYTES}-byte limit"
                )
            }
            SbomError::Malformed { format, reason } => write!(f, "{format} SBOM: {reason}"),
            SbomError::WrongFormat { field, found } => {
                write!(f, "SBOM {field} is {found:?}, not what wharf writes")
            }
            SbomError::MissingFact { element, fact } => {
                write!(f, "SBOM element {element:?} has no {fact}")
            }
            SbomError::DuplicateFact { element, fact } => {
                write!(f, "SBOM element {element:?} has {fact} twice")
            }
            SbomError::BadFact {
                element,
                fact,
                value,
            } => write!(f, "SBOM element {element:?}: {fact} {value:?} is not valid"),
            SbomError::BadPurl {
                element,
                purl,
                error,
            } => write!(f, "SBOM element {element:?}: purl {purl:?} {error}"),
            SbomError::PurlMismatch {
                element,
                purl,
                kind,
            } => write!(
                f,
                "SBOM element {element:?}: purl {purl:?} is not of type {}, as a {kind} package's is",
                purl::type_of(*kind)
            ),
            SbomError::TwoOperatingSystems { element } => {
                write!(f, "SBOM element {element:?} is a second operating system")
            }
        }
    }
}

impl std::error::Error for SbomError {}

/// Writes the SBOM of `packages` (in any order: the document sorts them) in `format`.
pub fn write(
    format: SbomFormat,
    subject: &SbomSubject<'_>,
    packages: &[LocatedPackage<'_>],
) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to memory cannot fail: serde_json fails only on maps with non-string keys,
    // which the documents do not have, and on a failing writer.
    let _ = write_to(format, subject, packages, &mut out);
    out
}

/// [`write()`] into `out`, one element at a time: beside `out`'s own buffer, memory holds
/// the sorted list of references and the element ids, never the document's elements
/// all at once (a document of 60,000 packages would take some 60 MiB of them).
pub fn write_to(
    format: SbomFormat,
    subject: &SbomSubject<'_>,
    packages: &[LocatedPackage<'_>],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut packages = packages.to_vec();
    packages.sort();
    let written = match format {
        SbomFormat::CycloneDx => {
            serde_json::to_writer(&mut *out, &cyclonedx::document(subject, &packages))
        }
        SbomFormat::Spdx => serde_json::to_writer(&mut *out, &spdx::document(subject, &packages)),
    };
    written.map_err(std::io::Error::other)
}

/// A list serialized from an iterator made when it is serialized, so that its entries
/// exist one at a time. Serializing it a second time writes an empty list.
struct Streamed<F>(std::cell::Cell<Option<F>>);

impl<F> Streamed<F> {
    fn new(make: F) -> Self {
        Streamed(std::cell::Cell::new(Some(make)))
    }
}

impl<F, I> serde::Serialize for Streamed<F>
where
    F: FnOnce() -> I,
    I: IntoIterator,
    I::Item: serde::Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(make) => serializer.collect_seq(make()),
            None => serializer.collect_seq(std::iter::empty::<I::Item>()),
        }
    }
}

/// Reads back the OS and the packages, with their layers, from a document [`write()`]
/// made in `format`.
pub fn read(format: SbomFormat, data: &[u8]) -> Result<SbomContents, SbomError> {
    if data.len() > MAX_SBOM_BYTES {
        return Err(SbomError::TooLarge { size: data.len() });
    }
    let malformed = |error: serde_json::Error| SbomError::Malformed {
        format,
        reason: error.to_string(),
    };
    match format {
        SbomFormat::CycloneDx => cyclonedx::read(serde_json::from_slice(data).map_err(malformed)?),
        SbomFormat::Spdx => spdx::read(serde_json::from_slice(data).map_err(malformed)?),
    }
}

/// The creation time as both formats want it: RFC 3339 in UTC, whole seconds, `Z`.
fn timestamp(subject: &SbomSubject<'_>) -> String {
    subject.created.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A UUID with the form of a random (version 4) one, made from a SHA-256 of the image
/// digest, the format and the creation time, so that the same input gives the same one.
fn document_uuid(subject: &SbomSubject<'_>, format: SbomFormat) -> String {
    let mut hash = Sha256::new();
    for part in [
        subject.digest,
        format.as_str(),
        &subject.created.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let mut bytes = [0u8; 16];
    for (byte, hashed) in bytes.iter_mut().zip(hash.finalize().iter()) {
        *byte = *hashed;
    }
    // RFC 9562: the version (4) in the high nibble of byte 6, the variant (binary 10)
    // in the top bits of byte 8.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (at, byte) in bytes.iter().enumerate() {
        if matches!(at, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Hands out element ids, unique within one document: the first claim of a base gets
/// it as is, later ones the base with `separator` and a count (2, 3, …).
struct UniqueIds {
    separator: &'static str,
    taken: BTreeSet<String>,
    /// Per base, the count to try next, so that many claims of one base stay linear.
    next: BTreeMap<String, usize>,
}

impl UniqueIds {
    fn new(separator: &'static str) -> Self {
        UniqueIds {
            separator,
            taken: BTreeSet::new(),
            next: BTreeMap::new(),
        }
    }

    fn claim(&mut self, base: String) -> String {
        if self.taken.insert(base.clone()) {
            return base;
        }
        let count = self.next.entry(base.clone()).or_insert(2);
        loop {
            let candidate = format!("{base}{}{count}", self.separator);
            *count += 1;
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
    }
}

/// Reads a document's list of packages, capped at [`MAX_PACKAGES`].
fn package_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped_list(d, MAX_PACKAGES, "packages")
}

/// Reads an element's list of properties, annotations, licences or references, capped
/// at [`MAX_FACTS`].
fn fact_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    capped_list(d, MAX_FACTS, "entries")
}

/// Reads a JSON array of at most `limit` entries, failing at the first one past it.
fn capped_list<'de, D, T>(
    deserializer: D,
    limit: usize,
    what: &'static str,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Capped<T> {
        limit: usize,
        what: &'static str,
        entries: std::marker::PhantomData<T>,
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Capped<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {} {}", self.limit, self.what)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = seq.next_element()? {
                if entries.len() == self.limit {
                    return Err(serde::de::Error::custom(format_args!(
                        "more than {} {}",
                        self.limit, self.what
                    )));
                }
                entries.push(entry);
            }
            Ok(entries)
        }
    }

    deserializer.deserialize_seq(Capped {
        limit,
        what,
        entries: std::marker::PhantomData,
    })
}
