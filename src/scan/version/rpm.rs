//! RPM versions, as rpm reads an `epoch:version-release` and orders it with
//! `rpmvercmp`.
//!
//! # Format
//!
//! `[epoch:]version[-release]`, split at the first colon and the last hyphen:
//!
//! - The epoch is decimal digits; without one it is 0 (`0:1.0` equals `1.0`).
//! - The version and the release are made of ASCII letters, digits and `. _ + ~ ^`, the
//!   characters `rpmbuild` allows; neither may be empty (a trailing `-` is an error).
//! - The release is optional. Installed packages always have one; an advisory may name
//!   a bare version to mean every release of it.
//!
//! # Ordering
//!
//! Epochs compare as numbers, then the versions, then the releases, but the releases
//! only when both versions have one: `1.0` is equal to `1.0-5`, as rpm treats a range
//! bound without a release. (That makes the ordering not transitive across such
//! versions: `1.0-1 = 1.0 = 1.0-2` while `1.0-1 < 1.0-2`; nothing sorts by it.)
//!
//! Versions and releases compare by `rpmvercmp`: identical strings are equal; otherwise
//! both are cut into segments, each a run of ASCII digits or a run of ASCII letters,
//! with every other character (`.`, `_`, `+`) only separating them (`1.0` equals `1_0`).
//! Walking both, at each step:
//!
//! - `~` sorts before anything, even the end: `1.0~rc1 < 1.0`;
//! - `^` sorts after the end but before any further segment: `1.0 < 1.0^git1 < 1.0.1`;
//! - a number is greater than letters (`1.0 < 1.0.1`, `1.a < 1.1`); numbers compare as
//!   numbers, letters as ASCII strings;
//! - when one runs out, the one with a segment left is the greater.

use std::cmp::Ordering;

use super::{compare_numbers, split_run};

/// An RPM version, parsed.
#[derive(Debug, Clone)]
pub(super) struct RpmVersion {
    epoch: String,
    version: String,
    release: Option<String>,
}

impl RpmVersion {
    /// Reads an RPM `epoch:version-release`, or says what is wrong with it.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let (epoch, rest) = match text.split_once(':') {
            Some(("", _)) => return Err("the epoch before ':' is empty".to_owned()),
            Some((epoch, _)) if !epoch.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(format!("the epoch {epoch:?} is not a decimal number"));
            }
            Some((epoch, rest)) => (epoch, rest),
            None => ("0", text),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((version, release)) => (version, Some(release)),
            None => (rest, None),
        };
        check("version", version)?;
        if let Some(release) = release {
            check("release", release)?;
        }
        Ok(RpmVersion {
            epoch: epoch.to_owned(),
            version: version.to_owned(),
            release: release.map(str::to_owned),
        })
    }

    /// Orders two RPM versions: epoch, version, then release when both have one.
    pub(super) fn compare(&self, other: &Self) -> Ordering {
        let by_version = compare_numbers(self.epoch.as_bytes(), other.epoch.as_bytes())
            .then_with(|| rpmvercmp(self.version.as_bytes(), other.version.as_bytes()));
        match (&self.release, &other.release) {
            (Some(ours), Some(theirs)) => {
                by_version.then_with(|| rpmvercmp(ours.as_bytes(), theirs.as_bytes()))
            }
            _ => by_version,
        }
    }
}

/// Accepts a non-empty version or release of the characters rpmbuild allows.
fn check(name: &str, part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("the {name} is empty"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._+~^".contains(c);
    match part.char_indices().find(|&(_, c)| !allowed(c)) {
        Some((at, c)) => Err(format!(
            "the {name} has {c:?} at byte {at}, which rpm does not allow"
        )),
        None => Ok(()),
    }
}

/// Whether `c` only separates segments.
fn is_separator(c: u8) -> bool {
    !c.is_ascii_alphanumeric() && c != b'~' && c != b'^'
}

/// `rpmvercmp`: orders two versions or two releases segment by segment.
fn rpmvercmp(mut a: &[u8], mut b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    loop {
        a = split_run(a, is_separator).1;
        b = split_run(b, is_separator).1;
        let (next_a, next_b, order) = match (a.first().copied(), b.first().copied()) {
            (Some(b'~'), Some(b'~')) | (Some(b'^'), Some(b'^')) => {
                (a, b) = (
                    a.get(1..).unwrap_or_default(),
                    b.get(1..).unwrap_or_default(),
                );
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            // A caret is after the end but before a segment.
            (Some(b'^'), None) | (Some(_), Some(b'^')) => return Ordering::Greater,
            (None, Some(b'^')) | (Some(b'^'), Some(_)) => return Ordering::Less,
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(first), Some(_)) if first.is_ascii_digit() => {
                let (digits_a, rest_a) = split_run(a, |c| c.is_ascii_digit());
                let (digits_b, rest_b) = split_run(b, |c| c.is_ascii_digit());
                if digits_b.is_empty() {
                    // Letters against a number: the number is newer.
                    return Ordering::Greater;
                }
                (rest_a, rest_b, compare_numbers(digits_a, digits_b))
            }
            (Some(_), Some(_)) => {
                let (letters_a, rest_a) = split_run(a, |c| c.is_ascii_alphabetic());
                let (letters_b, rest_b) = split_run(b, |c| c.is_ascii_alphabetic());
                if letters_b.is_empty() {
                    return Ordering::Less;
                }
                (rest_a, rest_b, letters_a.cmp(letters_b))
            }
        };
        if order.is_ne() {
            return order;
        }
        (a, b) = (next_a, next_b);
    }
}
