//! Installed Python distributions, from their core-metadata files.
//!
//! Where the file is:
//!
//! - `…/<name>-<version>.dist-info/METADATA`, written by pip and every wheel installer;
//! - `…/<name>.egg-info/PKG-INFO`, written by setuptools (`setup.py install`, editable
//!   installs, and Debian's `python3-*` packages);
//! - `…/<name>.egg/EGG-INFO/PKG-INFO`, inside an unpacked egg;
//! - `…/<name>-<version>.egg-info` as a plain file, which distutils wrote (Python 2
//!   still ships `wsgiref.egg-info`).
//!
//! What is in it: a block of email-style headers, `Key: value` with case-insensitive
//! keys, where a line starting with a space or tab continues the header above; then an
//! empty line and the body, which is the long description and is not read. As in
//! Python's own email parser, a line that is neither a header nor a continuation also
//! ends the headers. Read:
//!
//! - `Name`, the project name as its author spelled it (`PyYAML`, `typing_extensions`),
//!   and `Version`: the first of each, both required;
//! - the licence: `License-Expression` (an SPDX expression, metadata 2.4) when there
//!   is one, else `License`, a free-text field that many projects fill with the whole
//!   licence text over continuation lines. Only a single-line `License` of at most
//!   [`MAX_VALUE_LEN`] bytes, other than setuptools' placeholder `UNKNOWN`, is taken; a
//!   licence that is not UTF-8 is left out too, since it is informational.
//!
//! A `Name` or `Version` that is missing, empty, not UTF-8 or longer than
//! [`MAX_VALUE_LEN`] makes the file unreadable, with the line named.

use crate::scan::package::{InventoryError, Package, PackageKind};

/// The longest `Name`, `Version` or licence value read, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;

const FORMAT: &str = "python metadata";

/// Whether `path` is a distribution's metadata file, by the layouts above.
pub fn is_metadata_path(path: &str) -> bool {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    let has_stem = |name: &str, suffix: &str| name.len() > suffix.len() && name.ends_with(suffix);
    match file {
        "METADATA" => has_stem(parent, ".dist-info"),
        "PKG-INFO" if parent == "EGG-INFO" => {
            let egg = dir.rsplit('/').nth(1).unwrap_or_default();
            has_stem(egg, ".egg")
        }
        "PKG-INFO" => has_stem(parent, ".egg-info"),
        file => has_stem(file, ".egg-info"),
    }
}

/// The headers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Name,
    Version,
    License,
    LicenseExpression,
}

impl Header {
    fn named(key: &[u8]) -> Option<Header> {
        [
            (Header::Name, "Name"),
            (Header::Version, "Version"),
            (Header::License, "License"),
            (Header::LicenseExpression, "License-Expression"),
        ]
        .into_iter()
        .find(|(_, name)| name.as_bytes().eq_ignore_ascii_case(key))
        .map(|(header, _)| header)
    }
}

/// A header's value with its 1-based line, and whether a continuation line followed.
#[derive(Debug, Clone, Copy)]
struct Value<'a> {
    bytes: &'a [u8],
    line: usize,
    continued: bool,
}

/// The first of each header read.
#[derive(Debug, Default)]
struct Headers<'a> {
    name: Option<Value<'a>>,
    version: Option<Value<'a>>,
    license: Option<Value<'a>>,
    license_expression: Option<Value<'a>>,
}

impl<'a> Headers<'a> {
    fn slot(&mut self, header: Header) -> &mut Option<Value<'a>> {
        match header {
            Header::Name => &mut self.name,
            Header::Version => &mut self.version,
            Header::License => &mut self.license,
            Header::LicenseExpression => &mut self.license_expression,
        }
    }

    /// Reads the header block of `data`.
    fn read(data: &'a [u8]) -> Headers<'a> {
        let mut headers = Headers::default();
        // The header a continuation line extends, if one that is read.
        let mut open: Option<Header> = None;
        for (index, raw) in data.split(|&byte| byte == b'\n').enumerate() {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                let has_text = line.iter().any(|b| !matches!(b, b' ' | b'\t'));
                if let Some(value) = open.and_then(|header| headers.slot(header).as_mut()) {
                    value.continued |= has_text;
                }
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                // The empty line before the body, or a line no header can be.
                break;
            };
            let (key, rest) = line.split_at(colon);
            open = Header::named(key);
            let Some(header) = open else {
                continue;
            };
            let slot = headers.slot(header);
            if slot.is_some() {
                // Only the first counts; a later one must not extend it either.
                open = None;
                continue;
            }
            *slot = Some(Value {
                bytes: rest.get(1..).unwrap_or_default().trim_ascii(),
                line: index + 1,
                continued: false,
            });
        }
        headers
    }
}

/// Parses a metadata file found at `path`; `None` when `path` is not where metadata
/// lives (see [`is_metadata_path`]).
pub fn parse_metadata(data: &[u8], path: &str) -> Result<Option<Package>, InventoryError> {
    if !is_metadata_path(path) {
        return Ok(None);
    }
    let error = |reason: String| InventoryError::new(FORMAT, format!("{path}: {reason}"));
    let headers = Headers::read(data);
    let name = required(headers.name, "Name").map_err(error)?;
    let version = required(headers.version, "Version").map_err(error)?;
    let license = licence(headers.license_expression).or_else(|| {
        licence(headers.license).filter(|license| !license.eq_ignore_ascii_case("UNKNOWN"))
    });
    Ok(Some(Package {
        kind: PackageKind::Python,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
        arch: None,
        license: license.map(str::to_owned),
        path: path.to_owned(),
    }))
}

/// The text of the `Name` or `Version` header.
fn required<'a>(value: Option<Value<'a>>, header: &str) -> Result<&'a str, String> {
    let value = value.ok_or_else(|| format!("no {header} header"))?;
    let line = value.line;
    let text = std::str::from_utf8(value.bytes)
        .map_err(|_| format!("line {line}: {header} is not UTF-8"))?;
    if text.is_empty() {
        return Err(format!("line {line}: {header} is empty"));
    }
    if value.continued {
        return Err(format!(
            "line {line}: {header} continues onto a second line"
        ));
    }
    if text.len() > MAX_VALUE_LEN {
        return Err(format!(
            "line {line}: {header} is longer than {MAX_VALUE_LEN} bytes"
        ));
    }
    Ok(text)
}

/// A licence header's text, if it is short, on one line and UTF-8.
fn licence(value: Option<Value<'_>>) -> Option<&str> {
    let value = value.filter(|value| !value.continued && value.bytes.len() <= MAX_VALUE_LEN)?;
    std::str::from_utf8(value.bytes)
        .ok()
        .filter(|text| !text.is_empty())
}
