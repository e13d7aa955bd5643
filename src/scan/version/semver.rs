//! Semantic versions, as SemVer 2.0.0 defines and orders them: npm packages and Rust
//! crates, and (through [`super::go`]) Go modules.
//!
//! # Format
//!
//! `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, with an optional leading `v`:
//!
//! - MAJOR, MINOR and PATCH are decimal numbers without leading zeros (`0` itself is
//!   fine, `01` is not);
//! - PRERELEASE and BUILD are dot-separated identifiers of ASCII letters, digits and
//!   `-`, none empty; a pre-release identifier of digits only is a number and must not
//!   have a leading zero either.
//!
//! # Ordering
//!
//! MAJOR, MINOR and PATCH as numbers, in that order. Then a version with a pre-release
//! is before the same version without one. Two pre-releases compare identifier by
//! identifier: numbers as numbers, other identifiers as ASCII strings, a number before
//! any other identifier, and when one list is a prefix of the other the shorter first.
//! Build metadata does not take part: `1.0.0+a` equals `1.0.0+b`.
//!
//! So `1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2 <
//! 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0`.

use std::cmp::Ordering;

use super::compare_numbers;

/// A semantic version, parsed; the build metadata is checked and dropped.
#[derive(Debug, Clone)]
pub(super) struct SemverVersion {
    core: [String; 3],
    pre_release: Vec<Identifier>,
}

/// A pre-release identifier.
#[derive(Debug, Clone)]
enum Identifier {
    Number(String),
    Text(String),
}

impl SemverVersion {
    /// Reads a semantic version, or says what is wrong with it.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (text, build) = match text.split_once('+') {
            Some((text, build)) => (text, Some(build)),
            None => (text, None),
        };
        let (core, pre_release) = match text.split_once('-') {
            Some((core, pre_release)) => (core, Some(pre_release)),
            None => (text, None),
        };
        let mut numbers = core.split('.');
        let mut number = |name: &str| match numbers.next() {
            Some(number) => check_number(name, number).map(|()| number.to_owned()),
            None => Err(format!("no {name} number: not MAJOR.MINOR.PATCH")),
        };
        let core = [number("major")?, number("minor")?, number("patch")?];
        if numbers.next().is_some() {
            return Err("more than three numbers before the pre-release".to_owned());
        }
        let pre_release = match pre_release {
            Some(pre_release) => {
                check_identifiers("pre-release", pre_release)?;
                pre_release
                    .split('.')
                    .map(Identifier::parse)
                    .collect::<Result<_, _>>()?
            }
            None => Vec::new(),
        };
        if let Some(build) = build {
            check_identifiers("build metadata", build)?;
        }
        Ok(SemverVersion { core, pre_release })
    }

    /// Orders two semantic versions by precedence.
    pub(super) fn compare(&self, other: &Self) -> Ordering {
        let by_core = self
            .core
            .iter()
            .zip(&other.core)
            .map(|(a, b)| compare_numbers(a.as_bytes(), b.as_bytes()))
            .find(|order| order.is_ne())
            .unwrap_or(Ordering::Equal);
        by_core.then_with(
            || match (self.pre_release.is_empty(), other.pre_release.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre_releases(&self.pre_release, &other.pre_release),
            },
        )
    }
}

/// Accepts a number without a leading zero.
fn check_number(name: &str, number: &str) -> Result<(), String> {
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the {name} number {number:?} is not a decimal number"
        ));
    }
    if number.len() > 1 && number.starts_with('0') {
        return Err(format!("the {name} number {number:?} has a leading zero"));
    }
    Ok(())
}

/// Accepts dot-separated identifiers, each non-empty ASCII letters, digits and `-`.
fn check_identifiers(name: &str, text: &str) -> Result<(), String> {
    let valid = |identifier: &str| {
        !identifier.is_empty()
            && identifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    match text.split('.').find(|identifier| !valid(identifier)) {
        Some(bad) => Err(format!(
            "the {name} has the identifier {bad:?}, which is empty or not letters, digits and '-'"
        )),
        None => Ok(()),
    }
}

impl Identifier {
    /// A checked pre-release identifier: a number when it is digits only.
    fn parse(identifier: &str) -> Result<Self, String> {
        if identifier.bytes().all(|b| b.is_ascii_digit()) {
            check_number("pre-release", identifier)?;
            Ok(Identifier::Number(identifier.to_owned()))
        } else {
            Ok(Identifier::Text(identifier.to_owned()))
        }
    }
}

fn compare_pre_releases(a: &[Identifier], b: &[Identifier]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|pair| match pair {
            (Identifier::Number(a), Identifier::Number(b)) => {
                compare_numbers(a.as_bytes(), b.as_bytes())
            }
            (Identifier::Text(a), Identifier::Text(b)) => a.cmp(b),
            (Identifier::Number(_), Identifier::Text(_)) => Ordering::Less,
            (Identifier::Text(_), Identifier::Number(_)) => Ordering::Greater,
        })
        .find(|order| order.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}
