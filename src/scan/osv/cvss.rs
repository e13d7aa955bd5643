//! CVSS base scores computed from vector strings: the severity of an advisory that
//! states only a vector.
//!
//! A vector is `/`-separated `metric:value` parts: for v3.0 and v3.1 after a
//! `CVSS:3.0`/`CVSS:3.1` prefix (module `v3`), for v2 bare or in parentheses (module `v2`). Each
//! base metric must appear once, in any order; temporal and environmental metrics may
//! follow and are checked, but do not change the base score. An unknown metric or
//! value, a repeated or a missing base metric is a [`CvssError`] naming it.
//!
//! v4.0 vectors are not scored: their formula needs large lookup tables. Advisories
//! that state only a v4 vector take their severity from their other sources.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::scan::finding::Severity;

mod v2;
mod v3;

/// The longest vector read, in bytes (a v3.1 vector with every environmental metric is
/// about 150).
pub const MAX_VECTOR_LEN: usize = 256;

/// A base score from 0.0 to 10.0 in steps of 0.1, held as tenths so that it compares
/// and prints exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaseScore(u8);

impl BaseScore {
    /// The score of `tenths` tenths, if it is at most 100 (10.0).
    pub fn from_tenths(tenths: u8) -> Option<BaseScore> {
        (tenths <= 100).then_some(BaseScore(tenths))
    }

    /// The score in tenths (78 for 7.8).
    pub fn tenths(self) -> u8 {
        self.0
    }

    /// The score as a number (7.8).
    pub fn value(self) -> f64 {
        f64::from(self.0) / 10.0
    }
}

impl fmt::Display for BaseScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

/// Written as a JSON number (`7.8`), as ECR and NVD write scores.
impl Serialize for BaseScore {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.value())
    }
}

impl<'de> Deserialize<'de> for BaseScore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !(0.0..=10.0).contains(&value) {
            return Err(serde::de::Error::custom(format!(
                "CVSS score {value} is not between 0 and 10"
            )));
        }
        // In range, so the cast cannot truncate.
        Ok(BaseScore((value * 10.0).round() as u8))
    }
}

/// The CVSS version of a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CvssVersion {
    /// CVSS v2.
    #[serde(rename = "2.0")]
    V2,
    /// CVSS v3.0.
    #[serde(rename = "3.0")]
    V3_0,
    /// CVSS v3.1.
    #[serde(rename = "3.1")]
    V3_1,
}

impl CvssVersion {
    /// `2.0`, `3.0` or `3.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            CvssVersion::V2 => "2.0",
            CvssVersion::V3_0 => "3.0",
            CvssVersion::V3_1 => "3.1",
        }
    }

    /// Whether this is a v3 version.
    pub fn is_v3(self) -> bool {
        matches!(self, CvssVersion::V3_0 | CvssVersion::V3_1)
    }
}

/// A scored vector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cvss {
    /// The CVSS version.
    pub version: CvssVersion,
    /// The base score.
    pub score: BaseScore,
    /// The vector, as the advisory wrote it.
    pub vector: String,
}

impl Cvss {
    /// Scores a v3.0 or v3.1 vector.
    pub fn v3(vector: &str) -> Result<Cvss, CvssError> {
        let (version, score) = v3::base_score(vector)?;
        Ok(Cvss {
            version,
            score,
            vector: vector.to_owned(),
        })
    }

    /// Scores a v2 vector.
    pub fn v2(vector: &str) -> Result<Cvss, CvssError> {
        Ok(Cvss {
            version: CvssVersion::V2,
            score: v2::base_score(vector)?,
            vector: vector.to_owned(),
        })
    }

    /// The qualitative rating of the score. v3: 0 none (informational), 0.1–3.9 low,
    /// 4.0–6.9 medium, 7.0–8.9 high, 9.0–10.0 critical, as ECR maps them. v2 (NVD's
    /// scale, which has no critical): 0–3.9 low, 4.0–6.9 medium, 7.0–10.0 high.
    pub fn severity(&self) -> Severity {
        let tenths = self.score.tenths();
        match (self.version.is_v3(), tenths) {
            (_, 0) => Severity::Informational,
            (_, 1..=39) => Severity::Low,
            (_, 40..=69) => Severity::Medium,
            (false, _) | (true, 70..=89) => Severity::High,
            (true, _) => Severity::Critical,
        }
    }
}

/// Why a vector could not be scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CvssError {
    /// The vector is longer than [`MAX_VECTOR_LEN`].
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The vector does not start with a version this module scores (`CVSS:4.0/…`).
    UnsupportedVersion {
        /// The first part of the vector.
        prefix: String,
    },
    /// A part is not `metric:value`.
    Malformed {
        /// The part.
        part: String,
    },
    /// A metric this CVSS version does not define.
    UnknownMetric {
        /// The metric's name.
        metric: String,
    },
    /// A metric with a value it does not define.
    BadValue {
        /// The metric's name.
        metric: String,
        /// The value.
        value: String,
    },
    /// A metric given twice.
    Repeated {
        /// The metric's name.
        metric: String,
    },
    /// A base metric that is missing.
    Missing {
        /// The metric's name.
        metric: &'static str,
    },
}

impl fmt::Display for CvssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CvssError::TooLong { len } => write!(
                f,
                "CVSS vector of {len} bytes, over the {MAX_VECTOR_LEN}-byte cap"
            ),
            CvssError::UnsupportedVersion { prefix } => {
                write!(f, "CVSS vector version {prefix:?} is not scored")
            }
            CvssError::Malformed { part } => {
                write!(f, "CVSS vector part {part:?} is not metric:value")
            }
            CvssError::UnknownMetric { metric } => write!(f, "unknown CVSS metric {metric:?}"),
            CvssError::BadValue { metric, value } => {
                write!(f, "CVSS metric {metric} has no value {value:?}")
            }
            CvssError::Repeated { metric } => write!(f, "CVSS metric {metric} is given twice"),
            CvssError::Missing { metric } => write!(f, "CVSS base metric {metric} is missing"),
        }
    }
}

impl std::error::Error for CvssError {}

/// A base metric: its name and its values with their weights.
type Metric = (&'static str, &'static [(&'static str, f64)]);

/// A temporal or environmental metric: its name and its values.
type Valid = (&'static str, &'static [&'static str]);

/// Reads `metric:value` parts against `base` and `other`: the chosen value of each
/// base metric as `(value, weight)`, in `base`'s order.
fn read_metrics<'v, const N: usize>(
    parts: impl Iterator<Item = &'v str>,
    base: &[Metric; N],
    other: &[Valid],
) -> Result<[(&'static str, f64); N], CvssError> {
    let mut chosen: [Option<(&'static str, f64)>; N] = [None; N];
    let mut seen_other: Vec<&str> = Vec::new();
    for part in parts {
        let (name, value) = part.split_once(':').ok_or_else(|| CvssError::Malformed {
            part: part.to_owned(),
        })?;
        let bad_value = || CvssError::BadValue {
            metric: name.to_owned(),
            value: value.to_owned(),
        };
        let repeated = || CvssError::Repeated {
            metric: name.to_owned(),
        };
        let in_base = base
            .iter()
            .zip(chosen.iter_mut())
            .find(|((n, _), _)| *n == name);
        if let Some(((_, values), slot)) = in_base {
            if slot.is_some() {
                return Err(repeated());
            }
            let weighted = values
                .iter()
                .find(|(v, _)| *v == value)
                .ok_or_else(bad_value)?;
            *slot = Some(*weighted);
        } else if let Some((_, values)) = other.iter().find(|(n, _)| *n == name) {
            if seen_other.contains(&name) {
                return Err(repeated());
            }
            seen_other.push(name);
            if !values.contains(&value) {
                return Err(bad_value());
            }
        } else {
            return Err(CvssError::UnknownMetric {
                metric: name.to_owned(),
            });
        }
    }
    let mut out = [("", 0.0); N];
    for ((slot, value), (name, _)) in out.iter_mut().zip(chosen).zip(base) {
        *slot = value.ok_or(CvssError::Missing { metric: name })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_follow_the_scales() {
        let rate = |vector: &str| Cvss::v3(vector).map(|c| c.severity()).ok();
        assert_eq!(
            rate("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"),
            Some(Severity::Critical)
        );
        assert_eq!(
            rate("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"),
            Some(Severity::High)
        );
        assert_eq!(
            rate("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"),
            Some(Severity::Medium)
        );
        assert_eq!(
            rate("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:L/I:N/A:N"),
            Some(Severity::Low)
        );
        assert_eq!(
            rate("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"),
            Some(Severity::Informational)
        );
        // v2 tops out at high.
        assert_eq!(
            Cvss::v2("AV:N/AC:L/Au:N/C:C/I:C/A:C").map(|c| c.severity()),
            Ok(Severity::High)
        );
    }

    #[test]
    fn scores_serialize_as_numbers() {
        let cvss = Cvss::v3("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H").ok();
        let json = serde_json::to_string(&cvss).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"version":"3.1","score":7.8,"vector":"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}"#
        );
        assert_eq!(serde_json::from_str::<Option<Cvss>>(&json).ok(), Some(cvss));
        assert!(serde_json::from_str::<BaseScore>("10.5").is_err());
    }
}
