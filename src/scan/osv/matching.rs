//! Which advisories affect a package, as findings.
//!
//! For each package, [`ecosystem::lookup`] names the
//! ecosystem, the names to look up and the version to compare; the index gives the
//! affected entries filed under those names; entries of another release of the
//! distribution are passed over; [`range::evaluate`] decides.
//!
//! Each affected package gives one finding per vulnerability: advisories found twice
//! (an rpm under its own and its source package's name) or filed twice under the same
//! name (a GitHub and a Go advisory of one CVE) are merged, keeping the first one's
//! text and fix, the union of their ids, and the more severe rating.
//!
//! A finding's severity is its entry's [`Rating`]. When the
//! advisory has none and is named after a CVE, it borrows the CVSS v3 rating of another
//! loaded advisory of that CVE (Debian's and Alpine's records carry no severity; an
//! Ubuntu or GitHub record of the same CVE carries NVD's vector).
//!
//! What cannot be matched is counted in the [`MatchReport`]: packages on a
//! distribution or release without data ([`NotCovered`]), and versions the package
//! system's ordering cannot read, which match nothing.

use std::collections::BTreeMap;

use super::OsvDatabase;
use super::ecosystem::{self, NotCovered};
use super::range::{self, Verdict};
use super::record::{Advisory, Affected, MAX_ALIASES};
use super::severity::{Rating, RatingSource};
use crate::scan::finding::{Finding, FindingPackage};
use crate::scan::package::{OsRelease, Package};
use crate::scan::version::compare;

/// The most unreadable versions a report lists; the rest are only counted.
pub const MAX_LISTED_UNREADABLE: usize = 100;

/// The findings for an inventory, and what could not be matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchReport {
    /// The findings, most severe first, then by name, package and path.
    pub findings: Vec<Finding>,
    /// Packages not matched, counted by why.
    pub not_covered: BTreeMap<NotCovered, usize>,
    /// Versions that could not be compared (at most [`MAX_LISTED_UNREADABLE`]).
    pub unreadable: Vec<UnreadableVersion>,
    /// How many comparisons failed in all.
    pub unreadable_count: usize,
}

/// A version comparison that failed, so a package was not matched against an
/// advisory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableVersion {
    /// The advisory, or `None` when the installed version itself cannot be read.
    pub advisory: Option<String>,
    /// The package.
    pub package: String,
    /// The installed version.
    pub version: String,
    /// Why the comparison failed.
    pub reason: String,
}

impl MatchReport {
    /// One line per reason packages were not matched, and one for unreadable
    /// versions, for a scan report's notes.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .not_covered
            .iter()
            .map(|(reason, count)| format!("{reason} ({count} packages)"))
            .collect();
        if let Some(first) = self.unreadable.first() {
            let against = first
                .advisory
                .as_deref()
                .map_or_else(String::new, |id| format!(" against {id}"));
            notes.push(format!(
                "{} version comparisons failed and matched nothing; the first: {} {}{against}: {}",
                self.unreadable_count, first.package, first.version, first.reason
            ));
        }
        notes
    }

    fn unreadable(&mut self, unreadable: UnreadableVersion) {
        self.unreadable_count += 1;
        if self.unreadable.len() < MAX_LISTED_UNREADABLE {
            self.unreadable.push(unreadable);
        }
    }
}

impl OsvDatabase {
    /// The findings for one package of an image running `os` (`None`: no os-release
    /// was found), without the report of what was not matched.
    pub fn matches(&self, os: Option<&OsRelease>, package: &Package) -> Vec<Finding> {
        let mut report = MatchReport::default();
        self.match_package(os, package, &mut report);
        report.findings
    }

    /// The findings for every package of an image running `os`, and what could not be
    /// matched.
    pub fn match_inventory<'a>(
        &self,
        os: Option<&OsRelease>,
        packages: impl IntoIterator<Item = &'a Package>,
    ) -> MatchReport {
        let mut report = MatchReport::default();
        for package in packages {
            self.match_package(os, package, &mut report);
        }
        report.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.package.name.cmp(&b.package.name))
                .then_with(|| a.package.path.cmp(&b.package.path))
                .then_with(|| a.package.version.cmp(&b.package.version))
        });
        report
    }

    fn match_package(&self, os: Option<&OsRelease>, package: &Package, report: &mut MatchReport) {
        let lookup = match ecosystem::lookup(os, package) {
            Ok(lookup) => lookup,
            Err(reason) => {
                *report.not_covered.entry(reason).or_insert(0) += 1;
                return;
            }
        };
        let mut candidates = lookup
            .names
            .iter()
            .flat_map(|name| self.candidates(lookup.base, name))
            .filter(|(_, entry)| lookup.releases.accepts(&entry.ecosystem))
            .peekable();
        if candidates.peek().is_none() {
            return;
        }
        let unreadable = |advisory: Option<&str>, reason: String| UnreadableVersion {
            advisory: advisory.map(str::to_owned),
            package: package.name.clone(),
            version: lookup.version.clone(),
            reason,
        };
        if let Err(error) = compare(lookup.scheme, &lookup.version, &lookup.version) {
            report.unreadable(unreadable(None, error.to_string()));
            return;
        }
        let mut findings: Vec<Finding> = Vec::new();
        for (advisory, entry) in candidates {
            match range::evaluate(entry, lookup.scheme, &lookup.version) {
                Verdict::Affected { fixed } => {
                    merge(&mut findings, self.finding(advisory, entry, package, fixed))
                }
                Verdict::NotAffected => {}
                Verdict::Unreadable(error) => {
                    report.unreadable(unreadable(Some(&advisory.id), error.to_string()))
                }
            }
        }
        report.findings.extend(findings);
    }

    fn finding(
        &self,
        advisory: &Advisory,
        entry: &Affected,
        package: &Package,
        fixed: Option<String>,
    ) -> Finding {
        let rating = match entry.rating.source {
            RatingSource::None => {
                self.cve_rating(&advisory.name)
                    .map_or_else(Rating::undefined, |borrowed| Rating {
                        source: RatingSource::SameCve,
                        ..borrowed.clone()
                    })
            }
            _ => entry.rating.clone(),
        };
        let mut aliases = Vec::with_capacity(advisory.aliases.len() + 1);
        if advisory.name != advisory.id {
            aliases.push(advisory.id.clone());
        }
        aliases.extend(
            advisory
                .aliases
                .iter()
                .filter(|alias| **alias != advisory.name)
                .cloned(),
        );
        Finding {
            name: advisory.name.clone(),
            description: advisory.description.clone(),
            uri: advisory.uri.clone(),
            severity: rating.severity,
            package: FindingPackage {
                name: package.name.clone(),
                version: package.version.clone(),
                kind: package.kind,
                path: package.path.clone(),
            },
            fixed_version: fixed,
            aliases,
            cvss: rating.cvss,
        }
    }
}

/// Adds `finding` to one package's `findings`, merged into one of the same name.
fn merge(findings: &mut Vec<Finding>, finding: Finding) {
    let Some(seen) = findings.iter_mut().find(|f| f.name == finding.name) else {
        findings.push(finding);
        return;
    };
    for alias in finding.aliases {
        if seen.aliases.len() < 2 * MAX_ALIASES && !seen.aliases.contains(&alias) {
            seen.aliases.push(alias);
        }
    }
    if seen.fixed_version.is_none() {
        seen.fixed_version = finding.fixed_version;
    }
    let more_severe = finding.severity > seen.severity;
    let same_but_scored =
        finding.severity == seen.severity && seen.cvss.is_none() && finding.cvss.is_some();
    if more_severe || same_but_scored {
        seen.severity = finding.severity;
        seen.cvss = finding.cvss;
    }
}
