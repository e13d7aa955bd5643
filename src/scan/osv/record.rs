//! One OSV record (ossf.github.io/osv-schema), read into the [`Advisory`] that matching
//! uses.
//!
//! # The fields read
//!
//! A record is a JSON object. `id` (required) names it (`CVE-2023-4911`, `GHSA-…`,
//! `DSA-5514-1`, `ALSA-2024:2447`); `aliases` are other ids of the same vulnerability;
//! `modified` is an RFC 3339 UTC time; `withdrawn`, when present, retracts the record.
//! `summary` and `details` describe it; `references[{type, url}]` link to it (`type`
//! `ADVISORY`, `WEB`, `REPORT`, `FIX`, `PACKAGE`, …). Severity comes from
//! `severity[{type, score}]` (`CVSS_V2`, `CVSS_V3`, `CVSS_V4` vectors, or `Ubuntu` with
//! a priority word), `database_specific.severity` (GitHub: `CRITICAL`, `HIGH`,
//! `MODERATE`, `LOW`), and the same fields inside each `affected` entry (see
//! [`severity`]).
//!
//! Each `affected[]` entry names a `package{ecosystem, name}` (`Debian:12`/`glibc`,
//! `PyPI`/`requests`) and the versions affected: an explicit `versions[]` list and
//! `ranges[{type, events[]}]`. A range's type is `ECOSYSTEM` (the package system's own
//! ordering), `SEMVER`, or `GIT` (commit hashes, which an installed package does not
//! have: dropped here). Each event has exactly one of `introduced` (`"0"` means before
//! every version), `fixed`, `last_affected` or `limit` (`"*"` means no limit); see
//! [`range`](super::range) for how they are evaluated.
//!
//! Unknown fields are ignored, and a `null` list reads as an empty one. A record whose
//! JSON does not parse, whose `id` is not a plain identifier, or which has an event
//! with no field or several is rejected with a [`RecordError`] naming where.

use std::fmt;

use self::wire::{WireRecord, WireReference};
use super::severity::{self, Rating};

pub(crate) mod wire;

/// The largest record read, in bytes.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// The longest id kept, in bytes; longer aliases are dropped.
pub const MAX_ID_LEN: usize = 128;

/// The most aliases kept per record.
pub const MAX_ALIASES: usize = 32;

/// The longest description kept, in bytes (cut at a character boundary).
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// The longest reference URL used as a finding's link, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// One advisory: what matching needs of an OSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advisory {
    /// The record's id.
    pub id: String,
    /// The name findings carry: the CVE id when the record is about exactly one CVE,
    /// else [`id`](Self::id) (see [`display_name`]).
    pub name: String,
    /// The record's aliases that are plain identifiers, at most [`MAX_ALIASES`].
    pub aliases: Vec<String>,
    /// `modified`, as written (empty when absent).
    pub modified: String,
    /// The summary, else the start of the details.
    pub description: String,
    /// The first `ADVISORY` reference, else the first `WEB` one, else the record's page
    /// on osv.dev.
    pub uri: String,
    /// The record's own severity (its `affected` entries may override it).
    pub rating: Rating,
    /// The packages affected (entries without a package, or with only `GIT` ranges and
    /// no versions, are dropped).
    pub affected: Vec<Affected>,
}

/// A package an advisory affects, and which of its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// The OSV ecosystem with its release (`Debian:12`, `Alpine:v3.19`, `PyPI`).
    pub ecosystem: String,
    /// The package's name in that ecosystem.
    pub name: String,
    /// The version ranges.
    pub ranges: Vec<Range>,
    /// Versions listed as affected.
    pub versions: Vec<String>,
    /// This package's severity: the entry's own sources first, then the record's.
    pub rating: Rating,
}

/// How a range's versions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeKind {
    /// `ECOSYSTEM`: the package system's ordering.
    Ecosystem,
    /// `SEMVER`: SemVer 2.0.0 (Go's flavour for Go modules).
    Semver,
}

/// A version range: events that open and close it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// How its versions are ordered.
    pub kind: RangeKind,
    /// Its events, in the record's order.
    pub events: Vec<Event>,
}

/// One event of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Versions from this one on are affected; `None` is `"0"`, before every version.
    Introduced(Option<String>),
    /// Versions from this one on are not.
    Fixed(String),
    /// Versions after this one are not.
    LastAffected(String),
    /// Only versions below this one are in the range; `None` is `"*"`, no limit.
    Limit(Option<String>),
}

/// Why a record was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The record is larger than [`MAX_RECORD_BYTES`].
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The JSON does not parse or does not have the schema's shape.
    Json {
        /// The line where reading stopped (1-based).
        line: usize,
        /// The column where reading stopped (1-based).
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// The `id` is empty, too long, or has characters other than letters, digits and
    /// `-_.:`.
    BadId {
        /// The id, cut to [`MAX_ID_LEN`] characters.
        id: String,
    },
    /// An event of a range has no field or several.
    BadEvent {
        /// The index of the `affected` entry.
        affected: usize,
        /// The index of the range in it.
        range: usize,
        /// The index of the event in it.
        event: usize,
        /// How many of `introduced`, `fixed`, `last_affected`, `limit` it has.
        fields: usize,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::TooLarge { bytes } => {
                write!(
                    f,
                    "record of {bytes} bytes, over the {MAX_RECORD_BYTES}-byte cap"
                )
            }
            RecordError::Json {
                line,
                column,
                message,
            } => {
                write!(
                    f,
                    "not an OSV record (line {line}, column {column}): {message}"
                )
            }
            RecordError::BadId { id } => write!(f, "id {id:?} is not a plain identifier"),
            RecordError::BadEvent {
                affected,
                range,
                event,
                fields,
            } => write!(
                f,
                "affected[{affected}].ranges[{range}].events[{event}] has {fields} of \
                 introduced/fixed/last_affected/limit, not exactly one"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// What reading a record gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRecord {
    /// The advisory.
    pub advisory: Advisory,
    /// `withdrawn`, when the record has been retracted (it then matches nothing).
    pub withdrawn: Option<String>,
}

/// Reads one OSV record.
pub fn parse(bytes: &[u8]) -> Result<ParsedRecord, RecordError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { bytes: bytes.len() });
    }
    let record: WireRecord = serde_json::from_slice(bytes).map_err(|e| RecordError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if !is_plain_id(&record.id) {
        return Err(RecordError::BadId {
            id: record.id.chars().take(MAX_ID_LEN).collect(),
        });
    }
    let record_rating = severity::rate(&record, None);
    let mut affected = Vec::new();
    for (a, entry) in record.affected.iter().enumerate() {
        let Some(package) = &entry.package else {
            continue;
        };
        let mut ranges = Vec::new();
        for (r, range) in entry.ranges.iter().enumerate() {
            let kind = match range.kind.as_str() {
                "ECOSYSTEM" => RangeKind::Ecosystem,
                "SEMVER" => RangeKind::Semver,
                _ => continue,
            };
            let events = range
                .events
                .iter()
                .enumerate()
                .map(|(e, event)| {
                    event.read().ok_or(RecordError::BadEvent {
                        affected: a,
                        range: r,
                        event: e,
                        fields: event.field_count(),
                    })
                })
                .collect::<Result<Vec<Event>, RecordError>>()?;
            ranges.push(Range { kind, events });
        }
        if ranges.is_empty() && entry.versions.is_empty() {
            continue;
        }
        affected.push(Affected {
            ecosystem: package.ecosystem.clone(),
            name: package.name.clone(),
            ranges,
            versions: entry.versions.clone(),
            rating: severity::rate(&record, Some(entry)),
        });
    }
    let aliases: Vec<String> = record
        .aliases
        .iter()
        .filter(|alias| is_plain_id(alias) && **alias != record.id)
        .take(MAX_ALIASES)
        .cloned()
        .collect();
    let advisory = Advisory {
        name: display_name(&record.id, &aliases).to_owned(),
        description: description(&record),
        uri: link(&record),
        rating: record_rating,
        affected,
        aliases,
        modified: record.modified.unwrap_or_default(),
        id: record.id,
    };
    Ok(ParsedRecord {
        advisory,
        withdrawn: record.withdrawn,
    })
}

/// The name a finding shows, as ECR shows CVE ids: `id` when it is a CVE; else the
/// one CVE among `aliases`, when there is exactly one (a GitHub or Go advisory about
/// one CVE); else the CVE a distribution's per-CVE record is named after
/// (`UBUNTU-CVE-2023-4911`, `DEBIAN-CVE-…`, `ALPINE-CVE-…`, which list it under
/// `upstream` or `related` rather than `aliases`); else `id` (a DSA or an RHSA covering
/// several CVEs).
pub fn display_name<'a>(id: &'a str, aliases: &'a [String]) -> &'a str {
    if is_cve(id) {
        return id;
    }
    let mut cves = aliases.iter().filter(|alias| is_cve(alias));
    if let (Some(cve), None) = (cves.next(), cves.next()) {
        return cve;
    }
    id.find("-CVE-")
        .and_then(|at| id.get(at + 1..))
        .filter(|embedded| is_cve(embedded))
        .unwrap_or(id)
}

/// Whether `id` is `CVE-<year>-<number>`: four digits, then four or more.
fn is_cve(id: &str) -> bool {
    let digits =
        |s: &str, at_least: usize| s.len() >= at_least && s.bytes().all(|b| b.is_ascii_digit());
    match id
        .strip_prefix("CVE-")
        .and_then(|rest| rest.split_once('-'))
    {
        Some((year, number)) => year.len() == 4 && digits(year, 4) && digits(number, 4),
        None => false,
    }
}

/// Whether `id` is 1 to [`MAX_ID_LEN`] bytes of letters, digits and `-_.:`.
fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn description(record: &WireRecord) -> String {
    let text = [&record.summary, &record.details]
        .into_iter()
        .flatten()
        .map(|text| text.trim())
        .find(|text| !text.is_empty())
        .unwrap_or_default();
    let mut end = text.len().min(MAX_DESCRIPTION_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

fn link(record: &WireRecord) -> String {
    let usable = |reference: &&WireReference| {
        reference.url.len() <= MAX_URL_LEN
            && (reference.url.starts_with("https://") || reference.url.starts_with("http://"))
    };
    ["ADVISORY", "WEB"]
        .into_iter()
        .find_map(|kind| {
            record
                .references
                .iter()
                .filter(usable)
                .find(|reference| reference.kind == kind)
        })
        .map_or_else(
            || format!("https://osv.dev/vulnerability/{}", record.id),
            |r| r.url.clone(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(json: &str) -> Result<ParsedRecord, RecordError> {
        parse(json.as_bytes())
    }

    #[test]
    fn reads_a_github_advisory() {
        let json = r#"{
            "id": "GHSA-j8r2-6x86-q33q", "modified": "2023-09-20T19:19:30Z",
            "aliases": ["CVE-2023-32681"],
            "summary": "Unintended leak of Proxy-Authorization header in requests",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}]}],
            "references": [
                {"type": "WEB", "url": "https://github.com/psf/requests/security/advisories/GHSA-j8r2-6x86-q33q"},
                {"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2023-32681"}],
            "database_specific": {"severity": "MODERATE"}
        }"#;
        let advisory = parse_json(json).map(|p| p.advisory);
        let Ok(advisory) = advisory else {
            panic!("{advisory:?}");
        };
        assert_eq!(advisory.name, "CVE-2023-32681");
        assert_eq!(
            advisory.uri,
            "https://nvd.nist.gov/vuln/detail/CVE-2023-32681"
        );
        assert_eq!(advisory.modified, "2023-09-20T19:19:30Z");
        assert_eq!(
            advisory.affected[0].ranges[0].events,
            [
                Event::Introduced(Some("2.3.0".into())),
                Event::Fixed("2.31.0".into())
            ]
        );
    }

    #[test]
    fn special_event_values_and_dropped_ranges() {
        let json = r#"{"id": "OSV-2024-1", "aliases": null, "affected": [
            {"package": {"ecosystem": "crates.io", "name": "x"},
             "ranges": [{"type": "GIT", "repo": "https://example.com/x", "events": [{"introduced": "abc"}]},
                        {"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "*"}]}]},
            {"package": {"ecosystem": "crates.io", "name": "git-only"},
             "ranges": [{"type": "GIT", "events": [{"introduced": "abc"}]}]},
            {"ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]}"#;
        let Ok(parsed) = parse_json(json) else {
            panic!("rejected");
        };
        let affected = &parsed.advisory.affected;
        assert_eq!(
            affected.len(),
            1,
            "GIT-only and package-less entries are dropped"
        );
        assert_eq!(affected[0].ranges.len(), 1);
        assert_eq!(affected[0].ranges[0].kind, RangeKind::Semver);
        assert_eq!(
            affected[0].ranges[0].events,
            [Event::Introduced(None), Event::Limit(None)]
        );
        assert_eq!(
            parsed.advisory.uri,
            "https://osv.dev/vulnerability/OSV-2024-1"
        );
    }

    #[test]
    fn rejections_name_the_problem() {
        let two_fields = r#"{"id": "X-1", "affected": [{"package": {"ecosystem": "npm", "name": "a"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0", "fixed": "1.0.2"}]}]}]}"#;
        assert_eq!(
            parse_json(two_fields).err(),
            Some(RecordError::BadEvent {
                affected: 0,
                range: 0,
                event: 0,
                fields: 2
            })
        );
        assert_eq!(
            parse_json(r#"{"id": "../../etc/passwd"}"#).err(),
            Some(RecordError::BadId {
                id: "../../etc/passwd".into()
            })
        );
        assert!(matches!(
            parse_json(r#"{"id": 5}"#),
            Err(RecordError::Json { line: 1, .. })
        ));
        assert!(matches!(
            parse_json(r#"{"summary": "no id"}"#),
            Err(RecordError::Json { .. })
        ));
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert_eq!(
            parse(&huge).err(),
            Some(RecordError::TooLarge {
                bytes: MAX_RECORD_BYTES + 1
            })
        );
    }

    #[test]
    fn names_prefer_the_one_cve() {
        let cves = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            display_name(
                "GO-2023-1571",
                &cves(&["CVE-2022-41723", "GHSA-vvpx-j8f3-3w6h"])
            ),
            "CVE-2022-41723"
        );
        assert_eq!(display_name("UBUNTU-CVE-2023-4911", &[]), "CVE-2023-4911");
        assert_eq!(
            display_name("DSA-5514-1", &cves(&["CVE-2023-4911", "CVE-2023-4806"])),
            "DSA-5514-1"
        );
        assert_eq!(
            display_name("CVE-2021-44228", &cves(&["GHSA-jfh8-c2jp-5v3q"])),
            "CVE-2021-44228"
        );
        assert_eq!(display_name("RUSTSEC-2023-0044", &[]), "RUSTSEC-2023-0044");
        assert_eq!(
            display_name("DEBIAN-CVE-2023-4911-EXTRA", &[]),
            "DEBIAN-CVE-2023-4911-EXTRA"
        );
    }

    #[test]
    fn descriptions_are_capped_at_a_character_boundary() {
        let details = "é".repeat(MAX_DESCRIPTION_BYTES);
        let json = serde_json::json!({"id": "X-2", "summary": "", "details": details}).to_string();
        let Ok(parsed) = parse_json(&json) else {
            panic!("rejected");
        };
        assert_eq!(parsed.advisory.description.len(), MAX_DESCRIPTION_BYTES);
        assert!(parsed.advisory.description.chars().all(|c| c == 'é'));
    }
}
