//! RFC 3339 timestamps, as lifecycle inventories and previews carry them (parsed and
//! formatted by `chrono`).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses `2024-05-01T12:00:00Z`, with optional fractional seconds and a `Z` or
/// `±HH:MM` offset. Times before 1970 are refused: nothing in a registry is that old.
///
/// ```
/// use wharf::lifecycle::{format_rfc3339, parse_rfc3339};
///
/// let t = parse_rfc3339("2024-03-01T01:00:00+01:00").unwrap();
/// assert_eq!(format_rfc3339(t), "2024-03-01T00:00:00Z");
/// assert!(parse_rfc3339("2024-02-30T00:00:00Z").is_err());
/// ```
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    if parsed.timestamp() < 0 {
        return Err(format!("{text:?} is not an RFC 3339 time: before 1970"));
    }
    Ok(SystemTime::from(parsed))
}

/// Formats as `2024-05-01T12:00:00Z` (UTC), with milliseconds when there are any.
pub fn format(time: SystemTime) -> String {
    let time = time.max(UNIX_EPOCH);
    let utc = DateTime::<Utc>::from(time);
    let precision = match utc.timestamp_subsec_millis() {
        0 => SecondsFormat::Secs,
        _ => SecondsFormat::Millis,
    };
    utc.to_rfc3339_opts(precision, true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn known_instants() {
        let t = |s| parse(s).unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(t("1970-01-01T00:00:00Z").as_secs(), 0);
        assert_eq!(t("2000-03-01T00:00:00Z").as_secs(), 951_868_800);
        assert_eq!(t("2024-02-29T23:59:59Z").as_secs(), 1_709_251_199);
        assert_eq!(t("2024-03-01T01:00:00+01:00").as_secs(), 1_709_251_200);
        assert_eq!(t("2024-02-29T19:00:00-05:00").as_secs(), 1_709_251_200);
        assert_eq!(t("2024-01-01T00:00:00.25Z").as_millis(), 1_704_067_200_250);
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+1:00",
            "2024-01-01T00:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2024-01-01T00:00:00Zjunk",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn format_and_parse_round_trip() {
        for ms in [0u64, 1, 999, 86_399_999, 951_868_800_000, 4_102_444_800_123] {
            let time = UNIX_EPOCH + Duration::from_millis(ms);
            let text = format(time);
            assert_eq!(parse(&text).unwrap(), time, "{text}");
        }
        assert_eq!(
            format(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
    }
}
