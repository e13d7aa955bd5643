//! Go versions: module versions, which are semantic versions, and the Go toolchain's
//! release names, which are mapped onto them.
//!
//! # Format
//!
//! - A module version is `vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]` as in
//!   [`super::semver`]. The `v` is optional here, since OSV's Go ranges leave it out.
//!   Go's shorthands `v1` and `v1.2` mean `v1.0.0` and `v1.2.0`. A pseudo-version
//!   (`v0.0.0-20191109021931-daa7c04131f5`, `v1.2.4-0.20230101000000-abcdefabcdef`) is
//!   an ordinary pre-release, and orders by its timestamp as SemVer orders it. `+BUILD`
//!   (in practice `+incompatible`) does not take part in the ordering.
//! - A toolchain release is `go` followed by `MAJOR[.MINOR[.PATCH]]` and optionally
//!   `rcN` or `betaN` (`go1.21.3`, `go1.21`, `go1.21rc2`, `go1.19beta1`); the same
//!   without `go` (`1.21rc2`) is read alike. It maps as the Go vulnerability database
//!   maps it: missing numbers are 0 and `rcN`/`betaN` becomes the pre-release `rc.N` /
//!   `beta.N`, so `go1.21rc2` is `1.21.0-rc.2` and comes before `go1.21.0`, and `go1.21`
//!   is `1.21.0`.
//!
//! # Ordering
//!
//! SemVer precedence, on the mapped version.

use super::semver::SemverVersion;

/// Reads a Go module or toolchain version as the semantic version it orders as.
pub(super) fn parse(text: &str) -> Result<SemverVersion, String> {
    if let Some(release) = text.strip_prefix("go") {
        let mapped = toolchain(release).ok_or_else(|| {
            "not a Go release: go, then numbers, then optionally rcN or betaN".to_owned()
        })?;
        return SemverVersion::parse(&mapped);
    }
    let bare = text.strip_prefix('v').unwrap_or(text);
    match toolchain(bare) {
        Some(mapped) => SemverVersion::parse(&mapped),
        None => SemverVersion::parse(text),
    }
}

/// A toolchain release `MAJOR[.MINOR[.PATCH]][{rc|beta}N]` as SemVer text; `None` when
/// `release` is not of that form.
fn toolchain(release: &str) -> Option<String> {
    let end = release
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(release.len());
    let (numbers, pre_release) = release.split_at_checked(end)?;
    let mut numbers = numbers.split('.');
    let major = numbers.next()?;
    let minor = numbers.next().unwrap_or("0");
    let patch = numbers.next().unwrap_or("0");
    if numbers.next().is_some() {
        return None;
    }
    if pre_release.is_empty() {
        return Some(format!("{major}.{minor}.{patch}"));
    }
    let (label, number) = ["rc", "beta"]
        .iter()
        .find_map(|label| Some((label, pre_release.strip_prefix(label)?)))?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{major}.{minor}.{patch}-{label}.{number}"))
}
