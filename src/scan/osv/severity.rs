//! The severity of an advisory for one package, from whichever source the record has.
//!
//! Sources, in order of preference (the first that gives an answer wins; within each,
//! the `affected` entry's own field before the record's):
//!
//! 1. A `CVSS_V3` vector in `severity[]`, scored ([`cvss`](super::cvss)): the same
//!    scale for every database.
//! 2. A severity word in `database_specific.severity` (GitHub: `CRITICAL`, `HIGH`,
//!    `MODERATE`, `LOW`) or `ecosystem_specific.severity`.
//! 3. Ubuntu's priority: `ecosystem_specific.ubuntu_priority` or a `severity[]` entry of
//!    type `Ubuntu` (`negligible`, `low`, `medium`, `high`, `critical`).
//! 4. The Red Hat-style word that starts the summary of AlmaLinux, Rocky and Red Hat
//!    errata (`Important: openssl security update`).
//! 5. A `CVSS_V2` vector, scored.
//!
//! Words map as `critical` → critical, `high`/`important` → high, `medium`/`moderate` →
//! medium, `low` → low, `negligible`/`none` → informational; other words (Ubuntu's
//! `untriaged`) give no answer. `CVSS_V4` vectors are not scored. A record with none of
//! these is [`Severity::Undefined`]; matching may then borrow the CVSS rating of
//! another record about the same CVE (see [`matching`](super::matching)).

use serde_json::Value;

use super::cvss::Cvss;
use super::record::wire::{WireAffected, WireRecord, WireScore};
use crate::scan::finding::Severity;

/// A severity and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    /// The severity.
    pub severity: Severity,
    /// The scored vector, when the severity came from one.
    pub cvss: Option<Cvss>,
    /// The source that gave it.
    pub source: RatingSource,
}

/// Which source gave a [`Rating`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RatingSource {
    /// A CVSS v3 vector.
    CvssV3,
    /// A database's or ecosystem's severity word.
    Database,
    /// Ubuntu's priority.
    UbuntuPriority,
    /// The word starting a Red Hat-style summary.
    Summary,
    /// A CVSS v2 vector.
    CvssV2,
    /// The CVSS v3 rating of another record about the same CVE.
    SameCve,
    /// No source: the severity is undefined.
    None,
}

impl Rating {
    /// No severity known.
    pub fn undefined() -> Rating {
        Rating {
            severity: Severity::Undefined,
            cvss: None,
            source: RatingSource::None,
        }
    }

    fn of_word(severity: Severity, source: RatingSource) -> Rating {
        Rating {
            severity,
            cvss: None,
            source,
        }
    }

    fn of_cvss(cvss: Cvss, source: RatingSource) -> Rating {
        Rating {
            severity: cvss.severity(),
            cvss: Some(cvss),
            source,
        }
    }
}

/// The rating of `record`, or of its `entry` when given (the entry's fields first).
pub(super) fn rate(record: &WireRecord, entry: Option<&WireAffected>) -> Rating {
    let scores = || {
        entry
            .map_or(&[][..], |e| e.severity.as_slice())
            .iter()
            .chain(&record.severity)
    };
    let vector = |kind: &str, score: fn(&str) -> Option<Cvss>| {
        scores()
            .filter(|s| s.kind == kind)
            .find_map(|s: &WireScore| score(&s.score))
    };
    if let Some(cvss) = vector("CVSS_V3", |v| Cvss::v3(v).ok()) {
        return Rating::of_cvss(cvss, RatingSource::CvssV3);
    }
    let field = |object: Option<&Value>, key: &str| {
        object
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .and_then(word)
    };
    let ecosystem_specific = entry.and_then(|e| e.ecosystem_specific.as_ref());
    let database_word = field(entry.and_then(|e| e.database_specific.as_ref()), "severity")
        .or_else(|| field(ecosystem_specific, "severity"))
        .or_else(|| field(record.database_specific.as_ref(), "severity"));
    if let Some(severity) = database_word {
        return Rating::of_word(severity, RatingSource::Database);
    }
    let ubuntu = field(ecosystem_specific, "ubuntu_priority").or_else(|| {
        scores()
            .filter(|s| s.kind == "Ubuntu")
            .find_map(|s| word(&s.score))
    });
    if let Some(severity) = ubuntu {
        return Rating::of_word(severity, RatingSource::UbuntuPriority);
    }
    if let Some(severity) = record.summary.as_deref().and_then(summary_word) {
        return Rating::of_word(severity, RatingSource::Summary);
    }
    if let Some(cvss) = vector("CVSS_V2", |v| Cvss::v2(v).ok()) {
        return Rating::of_cvss(cvss, RatingSource::CvssV2);
    }
    Rating::undefined()
}

/// A severity word, in any case.
fn word(text: &str) -> Option<Severity> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "critical" => Severity::Critical,
        "high" | "important" => Severity::High,
        "medium" | "moderate" => Severity::Medium,
        "low" => Severity::Low,
        "negligible" | "none" => Severity::Informational,
        _ => return None,
    })
}

/// The severity a Red Hat-style erratum summary starts with (`Moderate: …`).
fn summary_word(summary: &str) -> Option<Severity> {
    let (first, _) = summary.split_once(':')?;
    ["Critical", "Important", "Moderate", "Low"]
        .contains(&first)
        .then(|| word(first))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(json: serde_json::Value) -> (Severity, RatingSource) {
        let record: Result<WireRecord, _> = serde_json::from_value(json);
        let Ok(record) = record else {
            panic!("not a record");
        };
        let rating = rate(&record, record.affected.first());
        (rating.severity, rating.source)
    }

    #[test]
    fn cvss_v3_comes_first() {
        let json = serde_json::json!({
            "id": "GHSA-35jh-r3h4-6jhm",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
            "database_specific": {"severity": "LOW"}
        });
        assert_eq!(rating(json), (Severity::High, RatingSource::CvssV3));
    }

    #[test]
    fn database_words_map_moderate_to_medium() {
        let json =
            serde_json::json!({"id": "GHSA-x", "database_specific": {"severity": "MODERATE"}});
        assert_eq!(rating(json), (Severity::Medium, RatingSource::Database));
        // A v4-only record falls through to its other sources.
        let json = serde_json::json!({
            "id": "GHSA-y",
            "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}],
            "database_specific": {"severity": "CRITICAL"}
        });
        assert_eq!(rating(json), (Severity::Critical, RatingSource::Database));
    }

    #[test]
    fn ubuntu_priorities_in_both_places() {
        let json = serde_json::json!({"id": "UBUNTU-CVE-2023-1", "severity": [{"type": "Ubuntu", "score": "medium"}]});
        assert_eq!(
            rating(json),
            (Severity::Medium, RatingSource::UbuntuPriority)
        );
        let json = serde_json::json!({"id": "UBUNTU-CVE-2023-2", "affected": [{
            "package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "glibc"},
            "ecosystem_specific": {"ubuntu_priority": "negligible"}}]});
        assert_eq!(
            rating(json),
            (Severity::Informational, RatingSource::UbuntuPriority)
        );
        let json = serde_json::json!({"id": "UBUNTU-CVE-2023-3", "severity": [{"type": "Ubuntu", "score": "untriaged"}]});
        assert_eq!(rating(json), (Severity::Undefined, RatingSource::None));
    }

    #[test]
    fn erratum_summaries_and_cvss_v2() {
        let json = serde_json::json!({"id": "ALSA-2024:2447", "summary": "Low: openssl and openssl-fips-provider security update"});
        assert_eq!(rating(json), (Severity::Low, RatingSource::Summary));
        let json = serde_json::json!({"id": "X-1", "summary": "Note: not a severity"});
        assert_eq!(rating(json), (Severity::Undefined, RatingSource::None));
        let json = serde_json::json!({"id": "CVE-2014-0160", "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:N/A:N"}]});
        assert_eq!(rating(json), (Severity::Medium, RatingSource::CvssV2));
    }

    #[test]
    fn an_entry_overrides_its_record() {
        let json = serde_json::json!({
            "id": "X-2",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
            "affected": [{"package": {"ecosystem": "npm", "name": "a"},
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}]}]
        });
        assert_eq!(rating(json), (Severity::Critical, RatingSource::CvssV3));
    }
}
