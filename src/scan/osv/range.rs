//! Whether an installed version is among an advisory's affected versions.
//!
//! # Evaluation (the OSV schema's, section "Evaluation")
//!
//! A version `v` is affected when the `versions` list has a version equal to it, or
//! when any range has it. A range first applies its `limit` events: when it has any,
//! `v` must be below one of them (`"*"` is no limit). Then, with the events sorted by
//! version (`introduced: "0"` first), a walk starts unaffected and each event in turn
//! may change that: `introduced` at or below `v` makes it affected, `fixed` at or below
//! `v` unaffected, `last_affected` below `v` unaffected.
//!
//! The walk's answer is set by the last event that changed it, and the events that
//! change it are exactly those at or below `v`: so it is the *greatest* such event that
//! decides, and no sort is needed. One pass finds it, comparing each firing event with
//! the greatest so far; at equal versions a closing event (`fixed`, then
//! `last_affected`) counts as later than an `introduced`, so `introduced: 1.0` with
//! `fixed: 1.0` affects nothing. Not sorting keeps a comparison that is not a total
//! order (a malformed version) from doing more than giving a wrong answer.
//!
//! When `v` is affected, the fixed version reported is that of the range's nearest
//! closing event above `v`: the smallest `fixed` above `v`, unless a `last_affected` at
//! or above `v` comes first (then none is known).
//!
//! `ECOSYSTEM` ranges compare with the package system's ordering, `SEMVER` ranges with
//! SemVer (Go's flavour, which reads `v1.2.3` and `go1.21`, for Go packages). A range
//! with a version its ordering cannot read is not a match; it is reported instead.

use std::cmp::Ordering;

use super::record::{Affected, Event, Range, RangeKind};
use crate::scan::version::{VersionError, VersionScheme, compare};

/// What an affected entry says about a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The version is affected; the fix, when one is known.
    Affected {
        /// The first version that fixes it on this line.
        fixed: Option<String>,
    },
    /// The version is not affected.
    NotAffected,
    /// No range that could be read has the version, and some range could not be read.
    Unreadable(VersionError),
}

/// What `entry` says about `version`, with `scheme` the package system's ordering.
pub fn evaluate(entry: &Affected, scheme: VersionScheme, version: &str) -> Verdict {
    let mut unreadable = None;
    for range in &entry.ranges {
        let scheme = match (range.kind, scheme) {
            (RangeKind::Ecosystem, scheme) | (RangeKind::Semver, scheme @ VersionScheme::Go) => {
                scheme
            }
            (RangeKind::Semver, _) => VersionScheme::Semver,
        };
        match in_range(range, scheme, version) {
            Ok(Some(fixed)) => return Verdict::Affected { fixed },
            Ok(None) => {}
            Err(error) => unreadable = unreadable.or(Some(error)),
        }
    }
    // A listed version the ordering cannot read is skipped: PyPI's lists hold
    // pre-PEP 440 versions that no installed package can have.
    if entry
        .versions
        .iter()
        .any(|listed| compare(scheme, listed, version) == Ok(Ordering::Equal))
    {
        return Verdict::Affected { fixed: None };
    }
    unreadable.map_or(Verdict::NotAffected, Verdict::Unreadable)
}

/// `Some(fixed version)` when the range has `version`.
fn in_range(
    range: &Range,
    scheme: VersionScheme,
    version: &str,
) -> Result<Option<Option<String>>, VersionError> {
    // `version` against an event's version.
    let against = |other: &str| compare(scheme, version, other);
    let mut has_limit = false;
    let mut below_a_limit = false;
    for event in &range.events {
        if let Event::Limit(limit) = event {
            has_limit = true;
            below_a_limit |= match limit {
                None => true,
                Some(limit) => against(limit)? == Ordering::Less,
            };
        }
    }
    if has_limit && !below_a_limit {
        return Ok(None);
    }
    // The greatest event that fires, with the rank that orders equal versions.
    let mut deciding: Option<(&Event, Option<&str>)> = None;
    for event in &range.events {
        let (fires, at) = match event {
            Event::Introduced(None) => (true, None),
            Event::Introduced(Some(at)) | Event::Fixed(at) => {
                (against(at)? != Ordering::Less, Some(at.as_str()))
            }
            Event::LastAffected(at) => (against(at)? == Ordering::Greater, Some(at.as_str())),
            Event::Limit(_) => (false, None),
        };
        if !fires {
            continue;
        }
        let later = match deciding {
            None => true,
            Some((best, best_at)) => match (at, best_at) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(at), Some(best_at)) => match compare(scheme, at, best_at)? {
                    Ordering::Greater => true,
                    Ordering::Less => false,
                    Ordering::Equal => rank(event) > rank(best),
                },
            },
        };
        if later {
            deciding = Some((event, at));
        }
    }
    if !matches!(deciding, Some((Event::Introduced(_), _))) {
        return Ok(None);
    }
    next_fix(range, scheme, version).map(Some)
}

/// Where an event falls among events of the same version.
fn rank(event: &Event) -> u8 {
    match event {
        Event::Introduced(_) | Event::Limit(_) => 0,
        Event::LastAffected(_) => 1,
        Event::Fixed(_) => 2,
    }
}

/// The `fixed` version of the closing event nearest above `version`, if that is a
/// `fixed` event.
fn next_fix(
    range: &Range,
    scheme: VersionScheme,
    version: &str,
) -> Result<Option<String>, VersionError> {
    let mut nearest: Option<(&str, bool)> = None;
    for event in &range.events {
        let (at, is_fix) = match event {
            Event::Fixed(at) if compare(scheme, version, at)? == Ordering::Less => {
                (at.as_str(), true)
            }
            Event::LastAffected(at) if compare(scheme, version, at)? != Ordering::Greater => {
                (at.as_str(), false)
            }
            _ => continue,
        };
        let nearer = match nearest {
            None => true,
            Some((best, _)) => compare(scheme, at, best)? == Ordering::Less,
        };
        if nearer {
            nearest = Some((at, is_fix));
        }
    }
    Ok(nearest.and_then(|(at, is_fix)| is_fix.then(|| at.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::osv::severity::Rating;

    fn entry(kind: RangeKind, events: &[Event], versions: &[&str]) -> Affected {
        Affected {
            ecosystem: String::new(),
            name: String::new(),
            ranges: vec![Range {
                kind,
                events: events.to_vec(),
            }],
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            rating: Rating::undefined(),
        }
    }

    fn introduced(v: &str) -> Event {
        Event::Introduced((v != "0").then(|| v.to_owned()))
    }

    fn fixed(v: &str) -> Event {
        Event::Fixed(v.to_owned())
    }

    fn affected(fixed: Option<&str>) -> Verdict {
        Verdict::Affected {
            fixed: fixed.map(str::to_owned),
        }
    }

    #[test]
    fn two_lines_with_their_own_fixes() {
        // GO-2023-1571's stdlib range, with the events out of order.
        let stdlib = entry(
            RangeKind::Semver,
            &[
                fixed("1.20.1"),
                introduced("0"),
                introduced("1.20.0"),
                fixed("1.19.6"),
            ],
            &[],
        );
        let verdict = |v: &str| evaluate(&stdlib, VersionScheme::Go, v);
        assert_eq!(verdict("v1.19.5"), affected(Some("1.19.6")));
        assert_eq!(verdict("v1.19.6"), Verdict::NotAffected);
        assert_eq!(verdict("v1.20.0"), affected(Some("1.20.1")));
        assert_eq!(verdict("v1.20.1"), Verdict::NotAffected);
        // A release candidate of 1.20 sorts before 1.20.0, after 1.19.6.
        assert_eq!(verdict("v1.20.0-rc.3"), Verdict::NotAffected);
    }

    #[test]
    fn last_affected_and_limit() {
        let capped = entry(
            RangeKind::Semver,
            &[introduced("1.0.0"), Event::LastAffected("1.4.2".into())],
            &[],
        );
        assert_eq!(
            evaluate(&capped, VersionScheme::Semver, "1.4.2"),
            affected(None)
        );
        assert_eq!(
            evaluate(&capped, VersionScheme::Semver, "1.4.3"),
            Verdict::NotAffected
        );
        assert_eq!(
            evaluate(&capped, VersionScheme::Semver, "0.9.0"),
            Verdict::NotAffected
        );
        let limited = entry(
            RangeKind::Semver,
            &[introduced("0"), Event::Limit(Some("2.0.0".into()))],
            &[],
        );
        assert_eq!(
            evaluate(&limited, VersionScheme::Semver, "1.9.9"),
            affected(None)
        );
        assert_eq!(
            evaluate(&limited, VersionScheme::Semver, "2.0.0"),
            Verdict::NotAffected
        );
        let unlimited = entry(
            RangeKind::Semver,
            &[introduced("0"), Event::Limit(None)],
            &[],
        );
        assert_eq!(
            evaluate(&unlimited, VersionScheme::Semver, "99.0.0"),
            affected(None)
        );
    }

    #[test]
    fn equal_versions_close_rather_than_open() {
        let empty = entry(
            RangeKind::Semver,
            &[introduced("1.0.0"), fixed("1.0.0")],
            &[],
        );
        assert_eq!(
            evaluate(&empty, VersionScheme::Semver, "1.0.0"),
            Verdict::NotAffected
        );
    }

    #[test]
    fn a_fix_after_a_last_affected_line_is_not_its_fix() {
        let range = entry(
            RangeKind::Semver,
            &[
                introduced("0"),
                Event::LastAffected("1.5.0".into()),
                introduced("2.0.0"),
                fixed("2.3.0"),
            ],
            &[],
        );
        assert_eq!(
            evaluate(&range, VersionScheme::Semver, "1.2.0"),
            affected(None)
        );
        assert_eq!(
            evaluate(&range, VersionScheme::Semver, "1.6.0"),
            Verdict::NotAffected
        );
        assert_eq!(
            evaluate(&range, VersionScheme::Semver, "2.1.0"),
            affected(Some("2.3.0"))
        );
    }

    #[test]
    fn listed_versions_match_by_equality_in_the_scheme() {
        let listed = entry(RangeKind::Ecosystem, &[], &["2.0", "not a version!"]);
        assert_eq!(
            evaluate(&listed, VersionScheme::Pep440, "2.0.0"),
            affected(None)
        );
        assert_eq!(
            evaluate(&listed, VersionScheme::Pep440, "2.0.1"),
            Verdict::NotAffected
        );
    }

    #[test]
    fn dpkg_tilde_at_the_boundary() {
        // DSA-5532-1: openssl in Debian 12 fixed in 3.0.11-1~deb12u2.
        let openssl = entry(
            RangeKind::Ecosystem,
            &[introduced("0"), fixed("3.0.11-1~deb12u2")],
            &[],
        );
        let verdict = |v: &str| evaluate(&openssl, VersionScheme::Dpkg, v);
        assert_eq!(
            verdict("3.0.11-1~deb12u1"),
            affected(Some("3.0.11-1~deb12u2"))
        );
        assert_eq!(verdict("3.0.11-1~deb12u2"), Verdict::NotAffected);
        // The unstable upload the backport came from sorts after it.
        assert_eq!(verdict("3.0.11-1"), Verdict::NotAffected);
    }

    #[test]
    fn unreadable_versions_are_reported_not_matched() {
        let range = entry(RangeKind::Ecosystem, &[introduced("0"), fixed("1.0")], &[]);
        assert!(matches!(
            evaluate(&range, VersionScheme::Pep440, "not-a-version!"),
            Verdict::Unreadable(_)
        ));
        let bad_event = entry(RangeKind::Ecosystem, &[introduced("0"), fixed("?!")], &[]);
        assert!(matches!(
            evaluate(&bad_event, VersionScheme::Pep440, "1.0"),
            Verdict::Unreadable(_)
        ));
    }
}
