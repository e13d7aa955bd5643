//! Fuzz bodies for the OSV data readers: records, zip exports and CVSS vectors. None
//! may panic, and what they accept keeps its invariants.

use std::io::Cursor;

use crate::scan::finding::Severity;
use crate::scan::osv::cvss::{Cvss, MAX_VECTOR_LEN};
use crate::scan::osv::record::{self, MAX_ALIASES, MAX_DESCRIPTION_BYTES};
use crate::scan::osv::zip::{MAX_ENTRY_BYTES, ZipArchive};
use crate::scan::osv::{OsvDatabase, ecosystem_base};
use crate::scan::package::{Package, PackageKind};

/// The most entries of one input the zip body reads.
const MAX_ZIP_ENTRIES_READ: usize = 64;

/// The most listed versions per affected entry the record body matches.
const MAX_VERSIONS_MATCHED: usize = 16;

/// One OSV record: loading it accounts for it exactly once; an accepted record loads
/// with a stable fingerprint; a package of a language ecosystem at a version the
/// record lists is found affected, or its version is reported unreadable; findings
/// stay within their caps and their severity agrees with their CVSS score.
pub fn parse_osv_record(data: &[u8]) {
    let parsed = record::parse(data);
    let (database, report) = OsvDatabase::from_records([("fuzz".to_owned(), data.to_vec())]);
    assert_eq!(
        database.len() + report.withdrawn + report.skipped_count(),
        1
    );
    let Ok(parsed) = parsed else {
        assert!(database.is_empty());
        return;
    };
    if parsed.withdrawn.is_some() {
        assert!(database.is_empty());
        return;
    }
    assert!(database.advisory(&parsed.advisory.id).is_some());
    assert!(parsed.advisory.description.len() <= MAX_DESCRIPTION_BYTES);
    assert!(parsed.advisory.aliases.len() <= MAX_ALIASES);
    let fingerprint = database.fingerprint();
    assert!(fingerprint.starts_with("sha256:") && fingerprint.len() == 7 + 64);
    let (again, _) = OsvDatabase::from_records([("other name".to_owned(), data.to_vec())]);
    assert_eq!(again.fingerprint(), fingerprint);

    for entry in &parsed.advisory.affected {
        let kind = match ecosystem_base(&entry.ecosystem) {
            "PyPI" => PackageKind::Python,
            "npm" => PackageKind::Npm,
            "Go" => PackageKind::Go,
            "crates.io" => PackageKind::Cargo,
            _ => continue,
        };
        for version in entry.versions.iter().take(MAX_VERSIONS_MATCHED) {
            let package = Package {
                kind,
                name: entry.name.clone(),
                version: version.clone(),
                source: None,
                arch: None,
                license: None,
                path: "fuzz".to_owned(),
            };
            let matched = database.match_inventory(None, [&package]);
            assert!(
                matched
                    .findings
                    .iter()
                    .any(|f| f.name == parsed.advisory.name)
                    || matched.unreadable_count > 0,
                "{} at listed version {version:?} was not found affected",
                entry.name
            );
            for finding in &matched.findings {
                assert!(finding.aliases.len() <= 2 * MAX_ALIASES);
                if let Some(cvss) = &finding.cvss {
                    assert_eq!(finding.severity, cvss.severity());
                }
            }
        }
    }
}

/// A zip archive: every entry read has the size and CRC-32 the directory gives, within
/// the cap.
pub fn read_osv_zip(data: &[u8]) {
    let Ok(mut archive) = ZipArchive::open(Cursor::new(data)) else {
        return;
    };
    let entries = archive.entries().to_vec();
    for (index, entry) in entries.iter().enumerate().take(MAX_ZIP_ENTRIES_READ) {
        if let Ok(bytes) = archive.read(index) {
            assert_eq!(bytes.len() as u64, entry.size);
            assert!(entry.size <= MAX_ENTRY_BYTES);
            assert_eq!(crc32fast::hash(&bytes), entry.crc32);
        }
    }
}

/// A CVSS vector: an accepted score is between 0 and 10 and rated accordingly; a v3
/// vector is not also a v2 one; temporal metrics do not change a base score.
pub fn parse_cvss(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v3) = Cvss::v3(text) {
        assert!(v3.score.tenths() <= 100);
        assert_eq!(
            v3.score.tenths() == 0,
            v3.severity() == Severity::Informational
        );
        assert!(Cvss::v2(text).is_err(), "{text:?} read as both v3 and v2");
        let with_temporal = format!("{text}/E:X");
        if !text.contains("/E:") && with_temporal.len() <= MAX_VECTOR_LEN {
            assert_eq!(Cvss::v3(&with_temporal).map(|c| c.score), Ok(v3.score));
        }
    }
    if let Ok(v2) = Cvss::v2(text) {
        assert!(v2.score.tenths() <= 100);
        assert_ne!(v2.severity(), Severity::Critical);
    }
}
