//! Version ordering per package system: whether an installed version comes before the
//! version an advisory says fixes it.
//!
//! Each package system orders versions its own way, and each has a submodule that states
//! its format and ordering in full:
//!
//! | scheme | used for | form |
//! |---|---|---|
//! | [`Dpkg`](VersionScheme::Dpkg) | Debian, Ubuntu | `[epoch:]upstream[-revision]`, ordered as Debian Policy 5.6.12 and `dpkg` |
//! | [`Apk`](VersionScheme::Apk) | Alpine | `1.2.3a_rc1~hash-r0`, ordered as `apk version` |
//! | [`Rpm`](VersionScheme::Rpm) | Fedora, RHEL and rebuilds, Amazon Linux | `[epoch:]version[-release]`, ordered as `rpmvercmp` |
//! | [`Pep440`](VersionScheme::Pep440) | Python | `[N!]N(.N)*[{a,b,rc}N][.postN][.devN][+local]`, ordered as PEP 440 |
//! | [`Semver`](VersionScheme::Semver) | npm, Cargo | `MAJOR.MINOR.PATCH[-pre][+build]`, ordered as SemVer 2.0.0 |
//! | [`Go`](VersionScheme::Go) | Go modules, the Go toolchain | `vMAJOR.MINOR.PATCH[-pre][+incompatible]`, `go1.21rc2`, ordered as SemVer |
//!
//! What the schemes share:
//!
//! - A version is at most [`MAX_VERSION_LEN`] bytes; a longer one, or an empty one, is an
//!   error in every scheme. Parsing is one pass over the text and the parsed form holds
//!   little more than a copy of it, so a hostile version costs no more than that.
//! - Runs of decimal digits compare as numbers of any length: leading zeros dropped, then
//!   the longer run is the larger, then digit by digit. Nothing is converted to a machine
//!   integer, so `18446744073709551616` (2^64) is simply larger than
//!   `18446744073709551615`. (Alpine's own tool compares in 64 bits; versions past that
//!   are not real.)
//! - Equal is equal in the scheme, not as strings: `1.0` equals `1.0.0` in PEP 440, `0:1.0`
//!   equals `1.0` in dpkg.
//!
//! Every scheme's comparison is antisymmetric and every valid version equals itself. All
//! but rpm's are also transitive; rpm's is not quite, because it compares releases only
//! when both versions have one (see [`VersionScheme::Rpm`]), as rpm itself does.

use std::cmp::Ordering;
use std::fmt;

use crate::scan::package::PackageKind;

mod apk;
mod dpkg;
mod go;
mod pep440;
mod rpm;
mod semver;

/// The longest version accepted, in bytes, in every scheme.
pub const MAX_VERSION_LEN: usize = 256;

/// How versions of one package system are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionScheme {
    /// Debian and Ubuntu packages: `[epoch:]upstream[-revision]` ordered as `dpkg`
    /// orders them (`~` before everything, even the end of the version).
    Dpkg,
    /// Alpine packages: `digits{.digits}[letter]{_suffix[N]}[~hash][-rN]` ordered as
    /// `apk version` orders them.
    Apk,
    /// RPM packages: `[epoch:]version[-release]` ordered by `rpmvercmp`. A missing epoch
    /// is 0. The releases are compared only when both versions have one, as rpm does for
    /// dependency ranges: an advisory's `1.0` covers every release of 1.0.
    Rpm,
    /// Python distributions: PEP 440, with every spelling it normalises.
    Pep440,
    /// npm packages and Rust crates: SemVer 2.0.0, with a leading `v` tolerated.
    Semver,
    /// Go modules (SemVer with a `v`, pseudo-versions, `+incompatible`) and the Go
    /// toolchain's releases (`go1.21.3`, `go1.21rc2`), mapped onto SemVer.
    Go,
}

impl VersionScheme {
    /// Every scheme, in declaration order.
    pub const ALL: [VersionScheme; 6] = [
        VersionScheme::Dpkg,
        VersionScheme::Apk,
        VersionScheme::Rpm,
        VersionScheme::Pep440,
        VersionScheme::Semver,
        VersionScheme::Go,
    ];

    /// The scheme for a package kind: dpkg, apk and rpm their own; Python PEP 440; npm
    /// and Cargo SemVer; Go Go's.
    pub fn of(kind: PackageKind) -> VersionScheme {
        match kind {
            PackageKind::Dpkg => VersionScheme::Dpkg,
            PackageKind::Apk => VersionScheme::Apk,
            PackageKind::Rpm => VersionScheme::Rpm,
            PackageKind::Python => VersionScheme::Pep440,
            PackageKind::Npm | PackageKind::Cargo => VersionScheme::Semver,
            PackageKind::Go => VersionScheme::Go,
        }
    }

    /// The scheme's lower-case name: `dpkg`, `apk`, `rpm`, `pep440`, `semver`, `go`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionScheme::Dpkg => "dpkg",
            VersionScheme::Apk => "apk",
            VersionScheme::Rpm => "rpm",
            VersionScheme::Pep440 => "pep440",
            VersionScheme::Semver => "semver",
            VersionScheme::Go => "go",
        }
    }
}

impl fmt::Display for VersionScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version that is not valid in its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionError {
    /// The scheme it was read in.
    pub scheme: VersionScheme,
    /// The version as given, cut to its first [`MAX_VERSION_LEN`] bytes.
    pub version: String,
    /// What is wrong with it, naming the part and, where it helps, the byte offset.
    pub reason: String,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid {} version: {}",
            self.version, self.scheme, self.reason
        )
    }
}

impl std::error::Error for VersionError {}

/// A version parsed in its scheme, to compare with many others without reading it again.
#[derive(Debug, Clone)]
pub struct Version {
    parsed: Parsed,
}

/// The parsed form, per scheme.
#[derive(Debug, Clone)]
enum Parsed {
    Dpkg(dpkg::DpkgVersion),
    Apk(apk::ApkVersion),
    Rpm(rpm::RpmVersion),
    Pep440(pep440::Pep440Version),
    Semver(semver::SemverVersion),
    Go(semver::SemverVersion),
}

impl Version {
    /// Reads `text` as a version of `scheme`.
    pub fn parse(scheme: VersionScheme, text: &str) -> Result<Version, VersionError> {
        let error = |reason: String| VersionError {
            scheme,
            version: clip(text).to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(error("empty".to_owned()));
        }
        if text.len() > MAX_VERSION_LEN {
            return Err(error(format!(
                "{} bytes long, more than the {MAX_VERSION_LEN} allowed",
                text.len()
            )));
        }
        let parsed = match scheme {
            VersionScheme::Dpkg => dpkg::DpkgVersion::parse(text).map(Parsed::Dpkg),
            VersionScheme::Apk => apk::ApkVersion::parse(text).map(Parsed::Apk),
            VersionScheme::Rpm => rpm::RpmVersion::parse(text).map(Parsed::Rpm),
            VersionScheme::Pep440 => pep440::Pep440Version::parse(text).map(Parsed::Pep440),
            VersionScheme::Semver => semver::SemverVersion::parse(text).map(Parsed::Semver),
            VersionScheme::Go => go::parse(text).map(Parsed::Go),
        };
        parsed.map(|parsed| Version { parsed }).map_err(error)
    }

    /// The scheme the version was read in.
    pub fn scheme(&self) -> VersionScheme {
        match self.parsed {
            Parsed::Dpkg(_) => VersionScheme::Dpkg,
            Parsed::Apk(_) => VersionScheme::Apk,
            Parsed::Rpm(_) => VersionScheme::Rpm,
            Parsed::Pep440(_) => VersionScheme::Pep440,
            Parsed::Semver(_) => VersionScheme::Semver,
            Parsed::Go(_) => VersionScheme::Go,
        }
    }

    /// How this version orders against `other`; `None` when they are of different
    /// schemes, which do not compare.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        Some(match (&self.parsed, &other.parsed) {
            (Parsed::Dpkg(a), Parsed::Dpkg(b)) => a.compare(b),
            (Parsed::Apk(a), Parsed::Apk(b)) => a.compare(b),
            (Parsed::Rpm(a), Parsed::Rpm(b)) => a.compare(b),
            (Parsed::Pep440(a), Parsed::Pep440(b)) => a.compare(b),
            (Parsed::Semver(a), Parsed::Semver(b)) | (Parsed::Go(a), Parsed::Go(b)) => a.compare(b),
            _ => return None,
        })
    }
}

/// Compares two versions of one scheme. Err when either is not a valid version of it
/// (the first one that is not, `a` before `b`).
pub fn compare(scheme: VersionScheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    let a = Version::parse(scheme, a)?;
    let b = Version::parse(scheme, b)?;
    // Both were read in `scheme`, so they always compare.
    Ok(a.compare(&b).unwrap_or(Ordering::Equal))
}

/// The first [`MAX_VERSION_LEN`] bytes of `text`, cut back to a character boundary.
fn clip(text: &str) -> &str {
    let mut end = text.len().min(MAX_VERSION_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Compares two runs of ASCII digits as the numbers they write, whatever their length.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let (_, a) = split_run(a, |d| d == b'0');
    let (_, b) = split_run(b, |d| d == b'0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Splits `bytes` after its leading run of bytes for which `keep` holds.
fn split_run(bytes: &[u8], keep: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let end = bytes.iter().position(|&b| !keep(b)).unwrap_or(bytes.len());
    bytes.split_at(end)
}
