//! `os-release(5)`: which distribution and release an image is built on, from
//! `etc/os-release` or `usr/lib/os-release`.
//!
//! The file is a list of shell variable assignments, `KEY=value`, one per line. Empty
//! lines and lines starting with `#` are ignored. A value is written one of three ways,
//! never as a concatenation of them:
//!
//! - bare: `ID=debian`, where a backslash takes the next character literally (and
//!   spaces, which the format forbids here, are kept as they are);
//! - in double quotes: `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"`, where a backslash
//!   before `"`, `\`, `$` or `` ` `` escapes it and any other backslash is kept;
//! - in single quotes: `ID='rocky'`, taken literally.
//!
//! As when the file is sourced by a shell, the last assignment of a key wins. Five keys
//! are read: `ID` (required: the format's default, `linux`, would match no advisories),
//! `VERSION_ID`, `VERSION_CODENAME`, `ID_LIKE` (space-separated) and `PRETTY_NAME`. An
//! empty optional value counts as absent.
//!
//! The values read must be UTF-8, properly quoted and, unquoted, at most
//! [`MAX_VALUE_LEN`] bytes; other keys' values are not decoded. A line that is not an
//! assignment, or more than [`MAX_ASSIGNMENTS`] assignments, make the file unreadable.
//! Errors name the line.

use crate::scan::package::{InventoryError, OsRelease};

/// The most assignments a file may have; the real files have about a dozen.
pub const MAX_ASSIGNMENTS: usize = 1024;

/// The longest value, in bytes once unquoted, of a key that is read.
pub const MAX_VALUE_LEN: usize = 1024;

const FORMAT: &str = "os-release";

/// The keys read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    VersionId,
    VersionCodename,
    IdLike,
    PrettyName,
}

impl Key {
    fn named(name: &[u8]) -> Option<Key> {
        match name {
            b"ID" => Some(Key::Id),
            b"VERSION_ID" => Some(Key::VersionId),
            b"VERSION_CODENAME" => Some(Key::VersionCodename),
            b"ID_LIKE" => Some(Key::IdLike),
            b"PRETTY_NAME" => Some(Key::PrettyName),
            _ => None,
        }
    }
}

/// Parses an os-release file.
pub fn parse(data: &[u8]) -> Result<OsRelease, InventoryError> {
    let error = |reason: String| InventoryError::new(FORMAT, reason);
    let mut os = OsRelease::default();
    let mut assignments = 0;
    for (index, raw) in data.split(|&byte| byte == b'\n').enumerate() {
        let number = index + 1;
        let line = raw.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let Some(equals) = line.iter().position(|&b| b == b'=') else {
            return Err(error(format!("line {number}: not a KEY=value assignment")));
        };
        assignments += 1;
        if assignments > MAX_ASSIGNMENTS {
            return Err(error(format!(
                "line {number}: more than {MAX_ASSIGNMENTS} assignments"
            )));
        }
        let (name, raw_value) = line.split_at(equals);
        let Some(key) = Key::named(name.trim_ascii()) else {
            continue;
        };
        let raw_value = raw_value.get(1..).unwrap_or_default().trim_ascii();
        let written = std::str::from_utf8(raw_value)
            .map_err(|_| error(format!("line {number}: the value is not UTF-8")))?;
        let value = unquote(written)
            .map_err(|reason| error(format!("line {number}: the value {reason}")))?;
        if value.len() > MAX_VALUE_LEN {
            return Err(error(format!(
                "line {number}: the value is longer than {MAX_VALUE_LEN} bytes"
            )));
        }
        let optional = (!value.is_empty()).then(|| value.clone());
        match key {
            Key::Id => os.id = value,
            Key::VersionId => os.version_id = optional,
            Key::VersionCodename => os.version_codename = optional,
            Key::IdLike => os.id_like = value.split_whitespace().map(str::to_owned).collect(),
            Key::PrettyName => os.pretty_name = optional,
        }
    }
    if os.id.is_empty() {
        return Err(error("no ID".to_owned()));
    }
    Ok(os)
}

/// The value a bare, double-quoted or single-quoted `written` value stands for.
fn unquote(written: &str) -> Result<String, &'static str> {
    let Some(quote) = written.chars().next().filter(|c| matches!(c, '"' | '\'')) else {
        return unescape_bare(written);
    };
    let inner = written
        .get(1..)
        .and_then(|rest| rest.strip_suffix(quote))
        .ok_or("has an opening quote but does not end with its closing one")?;
    if quote == '\'' {
        if inner.contains('\'') {
            return Err("has a quote inside single quotes");
        }
        return Ok(inner.to_owned());
    }
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Err("has an unescaped `\"` inside double quotes"),
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\' | '$' | '`')) => value.push(escaped),
                Some(other) => value.extend(['\\', other]),
                None => return Err("ends with a backslash that escapes the closing quote"),
            },
            c => value.push(c),
        }
    }
    Ok(value)
}

/// A bare value: a backslash escapes the next character; a quote must be escaped.
/// Whitespace, which a shell would not take, is kept: sloppy files have it, and what
/// is read is still clear.
fn unescape_bare(written: &str) -> Result<String, &'static str> {
    let mut value = String::with_capacity(written.len());
    let mut chars = written.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next().ok_or("ends with a lone backslash")?),
            '"' | '\'' => return Err("has a quote inside a bare value"),
            c => value.push(c),
        }
    }
    Ok(value)
}
