//! Alpine's database of installed packages, `lib/apk/db/installed`.
//!
//! The file is a sequence of stanzas, one per package, separated by empty lines. Every
//! line of a stanza is one letter, a colon and a value (there are no continuation
//! lines); values are read without surrounding whitespace. Five letters matter here:
//!
//! - `P`: the package name (`musl`, `libcrypto3`).
//! - `V`: the version, `upstream-rN` with `N` the Alpine package release
//!   (`1.2.4_git20230717-r4`).
//! - `A`: the architecture (`x86_64`, `aarch64`, `noarch`).
//! - `L`: the licence, an SPDX-like expression (`MPL-2.0 AND MIT`).
//! - `o`: the origin, the aport (source package) the package was built from
//!   (`libcrypto3` and `libssl3` come from `openssl`): Alpine's security database files
//!   advisories against origins. A subpackage always has its origin's version, so
//!   [`SourcePackage::version`] is `None`.
//!
//! The other letters are skipped unread: `C` the checksum of the package's control data,
//! `S` and `I` the package and installed sizes, `T` description, `U` URL, `m`
//! maintainer, `t` build time, `c` aports commit, `D`, `p`, `r`, `i` and `k`
//! dependencies, provides, replaces, install-if and provider priority, and the file
//! list: each `F` names a directory (with `M` its owner and mode), the `R` lines after it
//! the files in that directory (each with an optional `a` owner and mode and a `Z`
//! checksum).
//!
//! Only the lines of the five letters are decoded. One of them that is not UTF-8,
//! repeats in its stanza, or is longer than [`MAX_VALUE_LEN`]; a line not of the
//! `letter:value` form; a stanza without `P` or `V`; or more than [`MAX_PACKAGES`]
//! stanzas make the file unreadable, with the line named.

use crate::scan::package::{InventoryError, Package, PackageKind, SourcePackage};

/// The apk database.
pub const INSTALLED: &str = "lib/apk/db/installed";

/// The most packages one database may list; more makes it unreadable. Alpine's `main`
/// and `community` repositories hold about 30 000 packages per architecture.
pub const MAX_PACKAGES: usize = 200_000;

/// The longest value, in bytes, of a line that is read.
pub const MAX_VALUE_LEN: usize = 1024;

const FORMAT: &str = "apk installed";

/// The letters read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Letter {
    Name,
    Version,
    Arch,
    License,
    Origin,
}

impl Letter {
    fn from_byte(byte: u8) -> Option<Letter> {
        match byte {
            b'P' => Some(Letter::Name),
            b'V' => Some(Letter::Version),
            b'A' => Some(Letter::Arch),
            b'L' => Some(Letter::License),
            b'o' => Some(Letter::Origin),
            _ => None,
        }
    }

    fn as_char(self) -> char {
        match self {
            Letter::Name => 'P',
            Letter::Version => 'V',
            Letter::Arch => 'A',
            Letter::License => 'L',
            Letter::Origin => 'o',
        }
    }
}

/// A value read, with its 1-based line number for errors.
#[derive(Debug, Clone, Copy)]
struct Value<'a> {
    text: &'a str,
    line: usize,
}

/// The lines of the stanza being read.
#[derive(Debug, Default)]
struct Stanza<'a> {
    /// The stanza's first line, once it has one.
    first_line: Option<usize>,
    name: Option<Value<'a>>,
    version: Option<Value<'a>>,
    arch: Option<Value<'a>>,
    license: Option<Value<'a>>,
    origin: Option<Value<'a>>,
}

impl<'a> Stanza<'a> {
    fn slot(&mut self, letter: Letter) -> &mut Option<Value<'a>> {
        match letter {
            Letter::Name => &mut self.name,
            Letter::Version => &mut self.version,
            Letter::Arch => &mut self.arch,
            Letter::License => &mut self.license,
            Letter::Origin => &mut self.origin,
        }
    }
}

/// Parses the database found at `path`: its packages in file order.
pub fn parse_installed(data: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    let error = |reason: String| InventoryError::new(FORMAT, format!("{path}: {reason}"));
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
        let Some(package) = finish(std::mem::take(&mut stanza), path).map_err(&error)? else {
            continue;
        };
        if packages.len() == MAX_PACKAGES {
            return Err(error(format!(
                "more than {MAX_PACKAGES} packages (the last ends at line {number})"
            )));
        }
        packages.push(package);
    }
    Ok(packages)
}

/// Adds one non-empty line (line `number`) to `stanza`.
fn read_line<'a>(stanza: &mut Stanza<'a>, line: &'a [u8], number: usize) -> Result<(), String> {
    let [letter, b':', value @ ..] = line else {
        return Err(format!("line {number}: not of the form `letter:value`"));
    };
    stanza.first_line.get_or_insert(number);
    let Some(letter) = Letter::from_byte(*letter) else {
        return Ok(());
    };
    let name = letter.as_char();
    let text = std::str::from_utf8(value.trim_ascii())
        .map_err(|_| format!("line {number}: the {name}: value is not UTF-8"))?;
    if text.len() > MAX_VALUE_LEN {
        return Err(format!(
            "line {number}: the {name}: value is longer than {MAX_VALUE_LEN} bytes"
        ));
    }
    let slot = stanza.slot(letter);
    if let Some(first) = slot {
        return Err(format!(
            "line {number}: a second {name}: line in the stanza (the first is line {})",
            first.line
        ));
    }
    *slot = Some(Value { text, line: number });
    Ok(())
}

/// The package a finished stanza describes; `None` for no stanza (runs of empty lines).
fn finish(stanza: Stanza<'_>, path: &str) -> Result<Option<Package>, String> {
    let Some(first_line) = stanza.first_line else {
        return Ok(None);
    };
    let name = required_word(stanza.name, Letter::Name, first_line)?;
    let version = required_word(stanza.version, Letter::Version, first_line)?;
    // An empty `A:`, `L:` or `o:` says nothing: it is taken as absent.
    let optional = |value: Option<Value<'_>>| {
        value
            .map(|value| value.text)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    Ok(Some(Package {
        kind: PackageKind::Apk,
        name: name.to_owned(),
        version: version.to_owned(),
        source: optional(stanza.origin).map(|name| SourcePackage {
            name,
            version: None,
        }),
        arch: optional(stanza.arch),
        license: optional(stanza.license),
        path: path.to_owned(),
    }))
}

/// The text of a name or version, which must be there and be one word.
fn required_word<'a>(
    value: Option<Value<'a>>,
    letter: Letter,
    first_line: usize,
) -> Result<&'a str, String> {
    let letter = letter.as_char();
    let value =
        value.ok_or_else(|| format!("the stanza at line {first_line} has no {letter}: line"))?;
    if value.text.is_empty() || value.text.contains(char::is_whitespace) {
        return Err(format!(
            "line {}: {letter}:{:?} is not one word",
            value.line, value.text
        ));
    }
    Ok(value.text)
}
