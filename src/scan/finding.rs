//! Findings: a known vulnerability that affects one package of an image, in the shape
//! of ECR's `DescribeImageScanFindings`.
//!
//! ECR describes a finding by `name` (the vulnerability's id, a CVE where there is
//! one), `description`, `uri` (a link to the advisory), `severity` (one of
//! `CRITICAL`, `HIGH`, `MEDIUM`, `LOW`, `INFORMATIONAL`, `UNDEFINED`) and `attributes`,
//! a list of key/value pairs (`package_name`, `package_version`, `CVSS3_SCORE`,
//! `CVSS3_VECTOR`, …); the scan's summary counts findings per severity
//! (`findingSeverityCounts`). [`Finding`] holds the same facts as typed fields and
//! serializes them in camelCase; [`Finding::attributes`] yields ECR's pairs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scan::osv::cvss::{Cvss, CvssVersion};
use crate::scan::package::PackageKind;

/// How severe a finding is, with ECR's names; ordered from least to most severe, with
/// [`Severity::Undefined`] (nothing known) below all the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// No source rated the vulnerability.
    Undefined,
    /// Rated as no risk (a CVSS score of 0, Ubuntu's `negligible`).
    Informational,
    /// Low.
    Low,
    /// Medium (GitHub's and Red Hat's `moderate`).
    Medium,
    /// High (Red Hat's `important`).
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    /// ECR's name (`CRITICAL`, `HIGH`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Undefined => "UNDEFINED",
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The package a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FindingPackage {
    /// The installed package's name (the binary package, for distributions whose
    /// advisories name source packages).
    pub name: String,
    /// The installed version.
    pub version: String,
    /// The package system that installed it, written as [`PackageKind::as_str`] does.
    #[serde(with = "kind_name")]
    pub kind: PackageKind,
    /// The file it was found in, relative to the image root.
    pub path: String,
}

/// One vulnerability in one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The vulnerability's id: the CVE when the advisory is about exactly one
    /// (`CVE-2023-4911`), else the advisory's own id (`DSA-5514-1`, `GHSA-…`).
    pub name: String,
    /// The advisory's summary, or the start of its details.
    pub description: String,
    /// A link to the advisory.
    pub uri: String,
    /// How severe it is.
    pub severity: Severity,
    /// The affected package.
    pub package: FindingPackage,
    /// The first version that fixes it on this package's line, when the advisory
    /// names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// The other ids of the vulnerability: the advisory's own id when `name` is its
    /// CVE, and the advisory's aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The CVSS score the severity was computed from, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<Cvss>,
}

impl Finding {
    /// The finding's facts as ECR's `attributes` list them, in ECR's key names:
    /// `package_name`, `package_version`, then `CVSS3_SCORE` and `CVSS3_VECTOR` (or
    /// `CVSS2_SCORE` and `CVSS2_VECTOR`) when the severity came from a CVSS vector,
    /// then `fixed_in_version` when a fix is known.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("package_name", self.package.name.clone()),
            ("package_version", self.package.version.clone()),
        ];
        if let Some(cvss) = &self.cvss {
            let (score, vector) = match cvss.version {
                CvssVersion::V2 => ("CVSS2_SCORE", "CVSS2_VECTOR"),
                CvssVersion::V3_0 | CvssVersion::V3_1 => ("CVSS3_SCORE", "CVSS3_VECTOR"),
            };
            pairs.push((score, cvss.score.to_string()));
            pairs.push((vector, cvss.vector.clone()));
        }
        if let Some(fixed) = &self.fixed_version {
            pairs.push(("fixed_in_version", fixed.clone()));
        }
        pairs
    }
}

/// How many findings there are of each severity, as ECR's `findingSeverityCounts`:
/// serialized as a map from severity name to count, without the severities that
/// have none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FindingCounts(BTreeMap<Severity, u64>);

impl FindingCounts {
    /// The counts of `findings`.
    pub fn of(findings: &[Finding]) -> Self {
        let mut counts = FindingCounts::default();
        for finding in findings {
            *counts.0.entry(finding.severity).or_insert(0) += 1;
        }
        counts
    }

    /// Adds `other`'s counts to these (an image index sums its platforms').
    pub fn add(&mut self, other: &FindingCounts) {
        for (severity, n) in &other.0 {
            let count = self.0.entry(*severity).or_insert(0);
            *count = count.saturating_add(*n);
        }
    }

    /// The count for `severity`.
    pub fn get(&self, severity: Severity) -> u64 {
        self.0.get(&severity).copied().unwrap_or(0)
    }

    /// The count over every severity.
    pub fn total(&self) -> u64 {
        self.0.values().fold(0, |sum, n| sum.saturating_add(*n))
    }

    /// The counts keyed by ECR's severity names, without the zero counts.
    pub fn as_map(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(severity, n)| (severity.as_str().to_owned(), *n))
            .collect()
    }
}

/// A [`PackageKind`] as its lower-case name (`dpkg`, `npm`, …).
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::scan::package::PackageKind;

    pub(super) fn serialize<S: Serializer>(
        kind: &PackageKind,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(kind.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PackageKind, D::Error> {
        let name = String::deserialize(deserializer)?;
        PackageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown package kind {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, cvss: Option<Cvss>) -> Finding {
        Finding {
            name: "CVE-2023-4911".into(),
            description: "buffer overflow in ld.so's GLIBC_TUNABLES handling".into(),
            uri: "https://security-tracker.debian.org/tracker/CVE-2023-4911".into(),
            severity,
            package: FindingPackage {
                name: "libc6".into(),
                version: "2.36-9+deb12u1".into(),
                kind: PackageKind::Dpkg,
                path: "var/lib/dpkg/status".into(),
            },
            fixed_version: Some("2.36-9+deb12u3".into()),
            aliases: vec!["DEBIAN-CVE-2023-4911".into()],
            cvss,
        }
    }

    #[test]
    fn severities_order_and_serialize_with_ecr_names() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Informational);
        assert!(Severity::Informational > Severity::Undefined);
        for severity in Severity::ALL {
            let json = serde_json::to_string(&severity).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", severity.as_str()));
            assert_eq!(serde_json::from_str::<Severity>(&json).ok(), Some(severity));
        }
    }

    #[test]
    fn a_finding_round_trips_in_camel_case() {
        let cvss = Cvss::v3("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H").ok();
        let original = finding(Severity::High, cvss);
        let json = serde_json::to_value(&original).unwrap_or_default();
        assert_eq!(json["fixedVersion"], "2.36-9+deb12u3");
        assert_eq!(json["package"]["kind"], "dpkg");
        assert_eq!(json["severity"], "HIGH");
        assert_eq!(json["cvss"]["score"], 7.8);
        assert_eq!(serde_json::from_value::<Finding>(json).ok(), Some(original));
    }

    #[test]
    fn attributes_use_ecr_keys() {
        let cvss = Cvss::v3("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H").ok();
        let pairs = finding(Severity::High, cvss).attributes();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "package_name",
                "package_version",
                "CVSS3_SCORE",
                "CVSS3_VECTOR",
                "fixed_in_version"
            ]
        );
        assert_eq!(pairs[2].1, "7.8");
        let v2 = Cvss::v2("AV:N/AC:L/Au:N/C:P/I:N/A:N").ok();
        let pairs = finding(Severity::Medium, v2).attributes();
        assert_eq!(pairs[2], ("CVSS2_SCORE", "5.0".to_owned()));
        assert_eq!(finding(Severity::Undefined, None).attributes().len(), 3);
    }

    #[test]
    fn counts_per_severity() {
        let findings = [
            finding(Severity::High, None),
            finding(Severity::High, None),
            finding(Severity::Low, None),
        ];
        let mut counts = FindingCounts::of(&findings);
        assert_eq!(counts.get(Severity::High), 2);
        assert_eq!(counts.get(Severity::Critical), 0);
        counts.add(&FindingCounts::of(&findings[2..]));
        assert_eq!(counts.total(), 4);
        let json = serde_json::to_string(&counts).unwrap_or_default();
        assert_eq!(json, r#"{"LOW":2,"HIGH":2}"#);
        assert_eq!(
            serde_json::from_str::<FindingCounts>(&json).ok(),
            Some(counts.clone())
        );
        assert_eq!(counts.as_map().get("LOW"), Some(&2));
    }
}
