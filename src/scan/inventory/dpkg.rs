//! The dpkg database of Debian and Ubuntu: `var/lib/dpkg/status`, or, in distroless
//! images, one file per package under `var/lib/dpkg/status.d/`.
//!
//! The format is a sequence of stanzas separated by empty lines. Each stanza is a run of
//! `Field: value` lines; field names are case-insensitive, and a line that starts with a
//! space or tab continues the value of the field above it (the long `Description` and the
//! `Conffiles` list do). Five fields matter here, each on a single line:
//!
//! - `Package`: the binary package's name.
//! - `Status`: three words, *want*, *error flag* and *state*, such as
//!   `install ok installed` or `hold ok installed`. The package's files are on disk only
//!   when the state is `installed`; `config-files`, `half-installed`, `unpacked`,
//!   `not-installed` and the rest are skipped. A `status.d/` file often has no `Status`
//!   at all; there it means installed. In the main status file a stanza without one is
//!   not a package.
//! - `Version`: `[epoch:]upstream[-revision]`, kept as written.
//! - `Architecture`: `amd64`, `arm64`, `all`, …. A package installed for two
//!   architectures (multi-arch `libc6:amd64` and `libc6:i386`) has a stanza for each, and
//!   each is its own [`Package`] with the plain name.
//! - `Source`: the source package, `name` or `name (version)` when its version differs
//!   from the binary's; absent when the source package has the binary's name. Licences
//!   are not in the database (they live in `usr/share/doc/*/copyright`), so
//!   [`Package::license`] stays `None`.
//!
//! Only the lines of these fields are decoded, and they must be UTF-8; a `Maintainer` or
//! `Description` in Latin-1, as some old third-party packages have, does not cost the
//! whole database. A line of one of these fields that is not UTF-8, that repeats in its
//! stanza, that continues onto the next line, or whose value is empty or longer than
//! [`MAX_VALUE_LEN`] makes the file unreadable, as it would for dpkg itself: the error
//! names the line. So does a file of more than [`MAX_PACKAGES`] installed packages.

use crate::scan::package::{InventoryError, Package, PackageKind, SourcePackage};

/// The dpkg status file.
pub const STATUS: &str = "var/lib/dpkg/status";

/// The distroless directory of per-package status files (a file per package, named after
/// it; its `<name>.md5sums` neighbours are not status files).
pub const STATUS_D: &str = "var/lib/dpkg/status.d/";

/// The most installed packages one file may list; more makes it unreadable. Debian's
/// whole archive has about 70 000 binary packages per architecture.
pub const MAX_PACKAGES: usize = 200_000;

/// The longest value, in bytes, of a field that is read.
pub const MAX_VALUE_LEN: usize = 1024;

const FORMAT: &str = "dpkg status";

/// The fields read; the others are skipped without being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Package,
    Status,
    Version,
    Architecture,
    Source,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Package,
        Field::Status,
        Field::Version,
        Field::Architecture,
        Field::Source,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Package => "Package",
            Field::Status => "Status",
            Field::Version => "Version",
            Field::Architecture => "Architecture",
            Field::Source => "Source",
        }
    }

    /// The field a line's name (the bytes before its colon) is, if one that is read.
    fn named(name: &[u8]) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| field.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A value read, with its 1-based line number for errors.
#[derive(Debug, Clone, Copy)]
struct Value<'a> {
    text: &'a str,
    line: usize,
}

/// The fields of the stanza being read.
#[derive(Debug, Default)]
struct Stanza<'a> {
    /// The stanza's first line, once it has one.
    first_line: Option<usize>,
    package: Option<Value<'a>>,
    status: Option<Value<'a>>,
    version: Option<Value<'a>>,
    architecture: Option<Value<'a>>,
    source: Option<Value<'a>>,
    /// The field the last field line belonged to, if one that is read: the field a
    /// continuation line would extend. `None` inside skipped fields.
    open: Option<Field>,
}

impl<'a> Stanza<'a> {
    fn slot(&mut self, field: Field) -> &mut Option<Value<'a>> {
        match field {
            Field::Package => &mut self.package,
            Field::Status => &mut self.status,
            Field::Version => &mut self.version,
            Field::Architecture => &mut self.architecture,
            Field::Source => &mut self.source,
        }
    }
}

/// Parses a status file, or a `status.d/` file, found at `path`: its installed packages in
/// file order.
pub fn parse_status(data: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    let error = |reason: String| InventoryError::new(FORMAT, format!("{path}: {reason}"));
    let missing_status_means_installed = path.starts_with(STATUS_D);
    let mut packages = Vec::new();
    let mut stanza = Stanza::default();
    // An empty line after the last ends the last stanza even without a final newline.
    let lines = data.split(|&byte| byte == b'\n').chain([&b""[..]]);
    for (index, raw) in lines.enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !line.is_empty() {
            read_line(&mut stanza, line, number).map_err(&error)?;
            continue;
        }
        let finished = std::mem::take(&mut stanza);
        let Some(package) =
            finish(finished, path, missing_status_means_installed).map_err(&error)?
        else {
            continue;
        };
        if packages.len() == MAX_PACKAGES {
            return Err(error(format!(
                "more than {MAX_PACKAGES} installed packages (the last ends at line {number})"
            )));
        }
        packages.push(package);
    }
    Ok(packages)
}

/// Adds one non-empty line (line `number`) to `stanza`.
fn read_line<'a>(stanza: &mut Stanza<'a>, line: &'a [u8], number: usize) -> Result<(), String> {
    if line.starts_with(b" ") || line.starts_with(b"\t") {
        let blank = line.iter().all(|b| matches!(b, b' ' | b'\t'));
        return match stanza.open {
            Some(field) if !blank => Err(format!(
                "line {number}: {} continues onto a second line",
                field.name()
            )),
            _ => Ok(()),
        };
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(format!("line {number}: no ':' after a field name"));
    };
    let (name, rest) = line.split_at(colon);
    stanza.first_line.get_or_insert(number);
    stanza.open = Field::named(name);
    let Some(field) = stanza.open else {
        return Ok(());
    };
    let value = rest.get(1..).unwrap_or_default();
    let text = std::str::from_utf8(value)
        .map_err(|_| format!("line {number}: {} is not UTF-8", field.name()))?
        .trim();
    if text.is_empty() {
        return Err(format!("line {number}: {} is empty", field.name()));
    }
    if text.len() > MAX_VALUE_LEN {
        return Err(format!(
            "line {number}: {} is longer than {MAX_VALUE_LEN} bytes",
            field.name()
        ));
    }
    let slot = stanza.slot(field);
    if let Some(first) = slot {
        return Err(format!(
            "line {number}: a second {} in the stanza (the first is on line {})",
            field.name(),
            first.line
        ));
    }
    *slot = Some(Value { text, line: number });
    Ok(())
}

/// The package a finished stanza describes, if it is installed.
fn finish(
    stanza: Stanza<'_>,
    path: &str,
    missing_status_means_installed: bool,
) -> Result<Option<Package>, String> {
    let Some(first_line) = stanza.first_line else {
        return Ok(None);
    };
    let Some(name) = stanza.package else {
        return Err(format!("the stanza at line {first_line} has no Package"));
    };
    let installed = match stanza.status {
        Some(status) => is_installed(status)?,
        None => missing_status_means_installed,
    };
    if !installed {
        return Ok(None);
    }
    let Some(version) = stanza.version else {
        return Err(format!(
            "line {}: package {} is installed but has no Version",
            name.line, name.text
        ));
    };
    let arch = stanza.architecture;
    for value in [Some(name), Some(version), arch].into_iter().flatten() {
        one_word(value)?;
    }
    let source = stanza
        .source
        .map(|source| parse_source(source, version.text))
        .transpose()?;
    Ok(Some(Package {
        kind: PackageKind::Dpkg,
        name: name.text.to_owned(),
        version: version.text.to_owned(),
        source,
        arch: arch.map(|arch| arch.text.to_owned()),
        license: None,
        path: path.to_owned(),
    }))
}

/// Whether a `Status` value's state, its third word, is `installed`.
fn is_installed(status: Value<'_>) -> Result<bool, String> {
    let words: Vec<&str> = status.text.split_whitespace().take(4).collect();
    match words[..] {
        [_want, _flag, state] => Ok(state == "installed"),
        _ => Err(format!(
            "line {}: Status {:?} is not three words",
            status.line, status.text
        )),
    }
}

/// Rejects a name, version or architecture with whitespace inside it.
fn one_word(value: Value<'_>) -> Result<(), String> {
    if value.text.contains(char::is_whitespace) {
        return Err(format!(
            "line {}: {:?} is not one word",
            value.line, value.text
        ));
    }
    Ok(())
}

/// Reads `name` or `name (version)`. A version equal to the binary package's is dropped:
/// [`SourcePackage::version`] is `None` for "the binary's version".
fn parse_source(source: Value<'_>, binary_version: &str) -> Result<SourcePackage, String> {
    let malformed = || {
        format!(
            "line {}: Source {:?} is not `name` or `name (version)`",
            source.line, source.text
        )
    };
    let (name, version) = match source.text.split_once('(') {
        None => (source.text, None),
        Some((name, rest)) => {
            let version = rest.strip_suffix(')').ok_or_else(malformed)?.trim();
            (name.trim(), Some(version))
        }
    };
    let is_word = |text: &str| !text.is_empty() && !text.contains(char::is_whitespace);
    if !is_word(name) || version.is_some_and(|version| !is_word(version)) {
        return Err(malformed());
    }
    Ok(SourcePackage {
        name: name.to_owned(),
        version: version
            .filter(|&version| version != binary_version)
            .map(str::to_owned),
    })
}
