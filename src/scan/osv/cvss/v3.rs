//! CVSS v3.0 and v3.1 base scores (first.org/cvss/v3.1/specification-document,
//! section 7).
//!
//! A vector is `CVSS:3.1/` (or `CVSS:3.0/`) then `/`-separated `metric:value` pairs.
//! The eight base metrics must each appear once, in any order: attack vector `AV`
//! (`N` 0.85, `A` 0.62, `L` 0.55, `P` 0.2), attack complexity `AC` (`L` 0.77, `H` 0.44),
//! privileges required `PR` (`N` 0.85, `L` 0.62 or 0.68 when the scope changes, `H` 0.27
//! or 0.5 when it changes), user interaction `UI` (`N` 0.85, `R` 0.62), scope `S`
//! (`U`nchanged, `C`hanged), and the impacts `C`, `I`, `A` (`H` 0.56, `L` 0.22, `N` 0).
//! Temporal and environmental metrics may follow; they are checked and do not change
//! the base score.
//!
//! With `ISS = 1 - (1-C)(1-I)(1-A)`, the impact is `6.42 × ISS` for an unchanged scope
//! and `7.52 × (ISS - 0.029) - 3.25 × (ISS - 0.02)^15` for a changed one; the
//! exploitability is `8.22 × AV × AC × PR × UI`. An impact at or below zero scores 0;
//! otherwise the score is `Roundup(min(impact + exploitability, 10))`, with the sum
//! multiplied by 1.08 first when the scope changes. Roundup is v3.1's: the smallest
//! one-decimal number at or above its input, computed on integers (input × 100 000) so
//! that floating-point noise cannot push 4.0 up to 4.1. v3.0 vectors use the same
//! Roundup: the two versions' formulas differ only in that noise.

use super::{BaseScore, CvssError, CvssVersion, MAX_VECTOR_LEN, Metric, Valid, read_metrics};

/// The v3 base metrics. `PR`'s weights are those for an unchanged scope; `S` is
/// weighted 1 for changed.
const V3_BASE: [Metric; 8] = [
    ("AV", &[("N", 0.85), ("A", 0.62), ("L", 0.55), ("P", 0.2)]),
    ("AC", &[("L", 0.77), ("H", 0.44)]),
    ("PR", &[("N", 0.85), ("L", 0.62), ("H", 0.27)]),
    ("UI", &[("N", 0.85), ("R", 0.62)]),
    ("S", &[("U", 0.0), ("C", 1.0)]),
    ("C", &[("H", 0.56), ("L", 0.22), ("N", 0.0)]),
    ("I", &[("H", 0.56), ("L", 0.22), ("N", 0.0)]),
    ("A", &[("H", 0.56), ("L", 0.22), ("N", 0.0)]),
];

/// The v3 temporal and environmental metrics: accepted, not scored.
const V3_OTHER: [Valid; 14] = [
    ("E", &["X", "U", "P", "F", "H"]),
    ("RL", &["X", "O", "T", "W", "U"]),
    ("RC", &["X", "U", "R", "C"]),
    ("CR", &["X", "L", "M", "H"]),
    ("IR", &["X", "L", "M", "H"]),
    ("AR", &["X", "L", "M", "H"]),
    ("MAV", &["X", "N", "A", "L", "P"]),
    ("MAC", &["X", "L", "H"]),
    ("MPR", &["X", "N", "L", "H"]),
    ("MUI", &["X", "N", "R"]),
    ("MS", &["X", "U", "C"]),
    ("MC", &["X", "N", "L", "H"]),
    ("MI", &["X", "N", "L", "H"]),
    ("MA", &["X", "N", "L", "H"]),
];

/// The version and base score of a v3.0 or v3.1 vector.
pub(super) fn base_score(vector: &str) -> Result<(CvssVersion, BaseScore), CvssError> {
    if vector.len() > MAX_VECTOR_LEN {
        return Err(CvssError::TooLong { len: vector.len() });
    }
    let mut parts = vector.split('/');
    let prefix = parts.next().unwrap_or_default();
    let version = match prefix {
        "CVSS:3.0" => CvssVersion::V3_0,
        "CVSS:3.1" => CvssVersion::V3_1,
        _ => {
            return Err(CvssError::UnsupportedVersion {
                prefix: prefix.chars().take(16).collect(),
            });
        }
    };
    let [av, ac, pr, ui, scope, c, i, a] = read_metrics(parts, &V3_BASE, &V3_OTHER)?;
    let changed = scope.0 == "C";
    let privileges = match (pr.0, changed) {
        ("L", true) => 0.68,
        ("H", true) => 0.5,
        (_, _) => pr.1,
    };
    let iss = 1.0 - (1.0 - c.1) * (1.0 - i.1) * (1.0 - a.1);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av.1 * ac.1 * privileges * ui.1;
    let score = if impact <= 0.0 {
        BaseScore(0)
    } else if changed {
        roundup((1.08 * (impact + exploitability)).min(10.0))
    } else {
        roundup((impact + exploitability).min(10.0))
    };
    Ok((version, score))
}

/// CVSS v3.1's Roundup, in tenths: the input is scaled to an integer of
/// hundred-thousandths first, so that `4.000000000000001` stays 4.0.
fn roundup(x: f64) -> BaseScore {
    // The inputs are between 0 and 10, so the casts cannot saturate.
    let scaled = (x * 100_000.0).round() as i64;
    let tenths = if scaled % 10_000 == 0 {
        scaled / 10_000
    } else {
        scaled / 10_000 + 1
    };
    BaseScore(tenths.clamp(0, 100) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3(vector: &str) -> String {
        base_score(vector).map_or_else(|e| e.to_string(), |(_, score)| score.to_string())
    }

    /// Vectors and base scores as NVD publishes them.
    #[test]
    fn v3_scores_match_nvd() {
        // CVE-2021-44228 (Log4Shell): scope changed, the maximum.
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"), "10.0");
        // CVE-2023-4911 (Looney Tunables) and CVE-2021-3156 (Baron Samedit).
        assert_eq!(v3("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"), "7.8");
        // CVE-2014-6271 (Shellshock), as a v3.0 vector.
        assert_eq!(v3("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), "9.8");
        // CVE-2023-44487 (HTTP/2 rapid reset).
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"), "7.5");
        // CVE-2023-0286 (OpenSSL X.400 type confusion).
        assert_eq!(v3("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H"), "7.4");
        // CVE-2021-23337 (lodash template): high privileges.
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"), "7.2");
        // CVE-2023-32681 (requests Proxy-Authorization leak): scope changed, medium.
        assert_eq!(v3("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"), "6.1");
        // CVE-2019-5736 (runc): local, scope changed.
        assert_eq!(v3("CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:C/C:H/I:H/A:H"), "8.6");
        // CVE-2023-5678 (OpenSSL DH key checks): low availability impact only.
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"), "5.3");
        // Scope changed with low privileges (stored XSS) and with high privileges.
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N"), "5.4");
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H"), "9.1");
        // A low score and a zero-impact vector.
        assert_eq!(v3("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:L/I:N/A:N"), "2.5");
        assert_eq!(v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N"), "0.0");
    }

    #[test]
    fn v3_accepts_any_order_and_temporal_metrics() {
        assert_eq!(v3("CVSS:3.1/S:U/AV:L/AC:L/PR:L/UI:N/A:H/I:H/C:H"), "7.8");
        assert_eq!(
            v3("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/MAV:N"),
            "7.8"
        );
    }

    #[test]
    fn v3_rejects_what_it_cannot_score() {
        let error = |vector: &str| base_score(vector).err();
        assert_eq!(
            error("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
            Some(CvssError::UnsupportedVersion {
                prefix: "CVSS:4.0".into()
            })
        );
        assert_eq!(
            error("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Some(CvssError::BadValue {
                metric: "AV".into(),
                value: "X".into()
            })
        );
        assert_eq!(
            error("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"),
            Some(CvssError::Missing { metric: "A" })
        );
        assert_eq!(
            error("CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            Some(CvssError::Repeated {
                metric: "AV".into()
            })
        );
        assert_eq!(
            error("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/Au:N"),
            Some(CvssError::UnknownMetric {
                metric: "Au".into()
            })
        );
        assert_eq!(
            error("CVSS:3.1/AVN"),
            Some(CvssError::Malformed { part: "AVN".into() })
        );
        assert_eq!(
            error(&"x".repeat(300)),
            Some(CvssError::TooLong { len: 300 })
        );
    }

    #[test]
    fn roundup_ignores_floating_point_noise() {
        assert_eq!(roundup(4.000_000_000_000_001), BaseScore(40));
        assert_eq!(roundup(4.02), BaseScore(41));
        assert_eq!(roundup(4.0), BaseScore(40));
        assert_eq!(roundup(9.99), BaseScore(100));
    }
}
