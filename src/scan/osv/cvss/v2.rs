//! CVSS v2 base scores (first.org/cvss/v2/guide, section 3.2.1).
//!
//! `AV:N/AC:L/Au:N/C:P/I:P/A:P`, optionally in parentheses or after `CVSS:2.0/`: access
//! vector `AV` (`L` 0.395, `A` 0.646, `N` 1.0), access complexity `AC` (`H` 0.35, `M`
//! 0.61, `L` 0.71), authentication `Au` (`M` 0.45, `S` 0.56, `N` 0.704) and the impacts
//! (`N` 0, `P` 0.275, `C` 0.660). Impact `10.41 × (1 - (1-C)(1-I)(1-A))`, exploitability
//! `20 × AV × AC × Au`, score `((0.6 × impact) + (0.4 × exploitability) - 1.5) × f`
//! where `f` is 0 for a zero impact and 1.176 otherwise, rounded to one decimal.

use super::{BaseScore, CvssError, MAX_VECTOR_LEN, Metric, Valid, read_metrics};

/// The v2 base metrics.
const V2_BASE: [Metric; 6] = [
    ("AV", &[("L", 0.395), ("A", 0.646), ("N", 1.0)]),
    ("AC", &[("H", 0.35), ("M", 0.61), ("L", 0.71)]),
    ("Au", &[("M", 0.45), ("S", 0.56), ("N", 0.704)]),
    ("C", &[("N", 0.0), ("P", 0.275), ("C", 0.660)]),
    ("I", &[("N", 0.0), ("P", 0.275), ("C", 0.660)]),
    ("A", &[("N", 0.0), ("P", 0.275), ("C", 0.660)]),
];

/// The v2 temporal and environmental metrics: accepted, not scored.
const V2_OTHER: [Valid; 8] = [
    ("E", &["U", "POC", "F", "H", "ND"]),
    ("RL", &["OF", "TF", "W", "U", "ND"]),
    ("RC", &["UC", "UR", "C", "ND"]),
    ("CDP", &["N", "L", "LM", "MH", "H", "ND"]),
    ("TD", &["N", "L", "M", "H", "ND"]),
    ("CR", &["L", "M", "H", "ND"]),
    ("IR", &["L", "M", "H", "ND"]),
    ("AR", &["L", "M", "H", "ND"]),
];

/// The base score of a v2 vector.
pub(super) fn base_score(vector: &str) -> Result<BaseScore, CvssError> {
    if vector.len() > MAX_VECTOR_LEN {
        return Err(CvssError::TooLong { len: vector.len() });
    }
    let bare = vector
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or(vector);
    let bare = bare.strip_prefix("CVSS:2.0/").unwrap_or(bare);
    if bare.starts_with("CVSS:") {
        return Err(CvssError::UnsupportedVersion {
            prefix: bare
                .split('/')
                .next()
                .unwrap_or_default()
                .chars()
                .take(16)
                .collect(),
        });
    }
    let [av, ac, au, c, i, a] = read_metrics(bare.split('/'), &V2_BASE, &V2_OTHER)?;
    let impact = 10.41 * (1.0 - (1.0 - c.1) * (1.0 - i.1) * (1.0 - a.1));
    let exploitability = 20.0 * av.1 * ac.1 * au.1;
    let f = if impact == 0.0 { 0.0 } else { 1.176 };
    let score = ((0.6 * impact) + (0.4 * exploitability) - 1.5) * f;
    // Round half up to one decimal; the nudge keeps a true .x5 that floating point
    // holds as .x4999… from rounding down. Scores lie between 0 and 10.
    let tenths = (score * 10.0 + 1e-9).round().clamp(0.0, 100.0) as u8;
    Ok(BaseScore(tenths))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(vector: &str) -> String {
        base_score(vector).map_or_else(|e| e.to_string(), |score| score.to_string())
    }

    /// v2 vectors and scores as NVD publishes them.
    #[test]
    fn v2_scores_match_nvd() {
        // CVE-2014-0160 (Heartbleed).
        assert_eq!(v2("AV:N/AC:L/Au:N/C:P/I:N/A:N"), "5.0");
        assert_eq!(v2("AV:N/AC:L/Au:N/C:P/I:P/A:P"), "7.5");
        assert_eq!(v2("AV:N/AC:L/Au:N/C:C/I:C/A:C"), "10.0");
        assert_eq!(v2("AV:N/AC:M/Au:N/C:N/I:P/A:N"), "4.3");
        assert_eq!(v2("AV:L/AC:L/Au:N/C:C/I:C/A:C"), "7.2");
        assert_eq!(v2("AV:L/AC:L/Au:N/C:P/I:N/A:N"), "2.1");
        assert_eq!(v2("(AV:N/AC:L/Au:N/C:P/I:N/A:N)"), "5.0");
        assert_eq!(v2("AV:N/AC:L/Au:N/C:P/I:N/A:N/E:F/RL:OF/RC:C"), "5.0");
        assert_eq!(v2("AV:N/AC:L/Au:N/C:N/I:N/A:N"), "0.0");
        assert!(base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").is_err());
    }
}
