//! Go build information: which toolchain and which module versions a Go binary was built
//! from, as `go version -m` prints them.
//!
//! # Where it is
//!
//! The Go linker writes a blob into the section `.go.buildinfo` (16-byte aligned). A
//! binary without section headers is searched for the blob's magic at every 16-byte
//! aligned file offset instead; a binary with section headers but no such section is not
//! a Go binary (or predates Go 1.13) and yields nothing.
//!
//! # The blob (Go 1.18 and later)
//!
//! | bytes | content |
//! |---|---|
//! | 0..14 | the magic `\xff Go buildinf:` |
//! | 14 | the target's pointer size (4 or 8) |
//! | 15 | flags: bit 1 ("inline strings") is set from Go 1.18 on; bit 0 gives the byte order of the older layout |
//! | 16..32 | padding |
//! | 32.. | the Go version, then the module information: each a length (an unsigned LEB128 varint, as Go's `binary.Uvarint` reads it) followed by that many bytes |
//!
//! The version is the toolchain's release (`go1.22.3`, optionally followed by a space and
//! experiments such as `X:boringcrypto`; `devel …` for an unreleased toolchain). The
//! module information is empty for a binary built outside module mode; otherwise it is
//! framed by two fixed 16-byte sentinels, the text before the closing one ending in a
//! newline. The text's line format is described in [`modinfo`].
//!
//! Before Go 1.18 the blob held two pointers to string headers in the data segment
//! instead of inline strings. Following them needs the program headers' address map;
//! such binaries are reported as unsupported ([`BuildInfoError::PointerLayout`]).
//!
//! # Packages
//!
//! A binary yields: the toolchain as the module `stdlib` (the name OSV's Go ecosystem
//! files toolchain advisories under) with its version in the Go vulnerability
//! database's form (`go1.22.3` → `v1.22.3`, `go1.21` → `v1.21.0`, `go1.21rc2` →
//! `v1.21.0-rc.2`); the main module unless its version is `(devel)`; and every
//! dependency, as the module that was actually compiled in (see [`Module::built_from`]).
//! All carry the `GOARCH` build setting as their architecture when it is recorded.
//!
//! # Limits
//!
//! The version may be at most [`MAX_VERSION_BYTES`], the module information at most
//! [`MAX_MODINFO_BYTES`]; at most [`MAX_MODULES`] dependencies and [`MAX_SETTINGS`] build
//! settings are read, and at most [`MAX_CANDIDATES`] magic matches are tried in a binary
//! without section headers. Anything past a limit is an error, not a truncation.

use std::fmt;

use super::elf::{self, ElfError};
use crate::scan::package::{InventoryError, Package, PackageKind};

pub mod modinfo;

pub use self::modinfo::{BuildInfo, BuildSetting, Module};

/// The section the Go linker writes the build information into.
pub const SECTION: &str = ".go.buildinfo";

/// The first bytes of the build information blob.
pub const MAGIC: &[u8; 14] = b"\xff Go buildinf:";

/// The most bytes of the Go version string.
pub const MAX_VERSION_BYTES: usize = 4 * 1024;

/// The most bytes of the module information (the largest real binaries have a few
/// hundred kilobytes).
pub const MAX_MODINFO_BYTES: usize = 4 * 1024 * 1024;

/// The most dependencies read from one binary.
pub const MAX_MODULES: usize = 10_000;

/// The most build settings read from one binary.
pub const MAX_SETTINGS: usize = 1_024;

/// The most magic matches tried in a binary without section headers: a Go program that
/// reads build info itself carries the magic as a constant too.
pub const MAX_CANDIDATES: usize = 8;

/// The blob's alignment, in memory and therefore in the file.
const ALIGNMENT: usize = 16;
const HEADER_BYTES: usize = 32;
const POINTER_SIZE_AT: usize = 14;
const FLAGS_AT: usize = 15;
const FLAG_INLINE_STRINGS: u8 = 0b10;

/// The sentinels around the module information (from the Go toolchain's `modload`).
const MODINFO_START: [u8; 16] = [
    0x30, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6, 0x18, 0xe6,
];
const MODINFO_END: [u8; 16] = [
    0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72, 0x00, 0x82, 0x42, 0x10, 0x41, 0x16, 0xd8, 0xf2,
];

/// Why a binary's Go build information could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildInfoError {
    /// The ELF structure around it is damaged.
    Elf(ElfError),
    /// The `.go.buildinfo` section does not contain the magic.
    NoMagic,
    /// The blob is shorter than its 32-byte header.
    TruncatedHeader {
        /// The bytes there are.
        available: usize,
    },
    /// The binary was built by Go before 1.18 (pointer-based layout): not supported.
    PointerLayout {
        /// The pointer size the header gives.
        pointer_size: u8,
    },
    /// A length's varint runs past the end of the blob.
    VarintPastEnd {
        /// The string whose length it is.
        field: &'static str,
        /// Its offset in the blob.
        offset: usize,
    },
    /// A length's varint does not fit in 64 bits.
    VarintOverflow {
        /// The string whose length it is.
        field: &'static str,
        /// Its offset in the blob.
        offset: usize,
    },
    /// A string's bytes run past the end of the blob.
    StringPastEnd {
        /// The string.
        field: &'static str,
        /// The offset of its length in the blob.
        offset: usize,
        /// The length it gives.
        length: u64,
    },
    /// A string is longer than its cap.
    StringTooLong {
        /// The string.
        field: &'static str,
        /// The length it gives.
        length: u64,
        /// The cap.
        max: usize,
    },
    /// A string is not UTF-8.
    NotUtf8 {
        /// The string.
        field: &'static str,
        /// The offset of the first bad byte within it.
        offset: usize,
    },
    /// The module information is not framed by its sentinels.
    Unframed,
    /// A line of the module information is malformed.
    Line {
        /// The line's number, from 1.
        number: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More than [`MAX_MODULES`] dependencies.
    TooManyModules,
    /// More than [`MAX_SETTINGS`] build settings.
    TooManySettings,
}

impl BuildInfoError {
    /// Whether the binary is a Go binary in a layout this reader does not support (as
    /// opposed to a damaged one).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, BuildInfoError::PointerLayout { .. })
    }
}

impl fmt::Display for BuildInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildInfoError::Elf(error) => write!(f, "{error}"),
            BuildInfoError::NoMagic => {
                write!(f, "section {SECTION} does not hold the build info magic")
            }
            BuildInfoError::TruncatedHeader { available } => write!(
                f,
                "the build info header needs {HEADER_BYTES} bytes, {available} are left"
            ),
            BuildInfoError::PointerLayout { pointer_size } => write!(
                f,
                "unsupported: built by Go before 1.18 (build info of {pointer_size}-byte \
                 pointers, not inline strings)"
            ),
            BuildInfoError::VarintPastEnd { field, offset } => write!(
                f,
                "the length of the {field} (at byte {offset}) runs past the end of the build info"
            ),
            BuildInfoError::VarintOverflow { field, offset } => write!(
                f,
                "the length of the {field} (at byte {offset}) does not fit in 64 bits"
            ),
            BuildInfoError::StringPastEnd {
                field,
                offset,
                length,
            } => write!(
                f,
                "the {field} (length {length} at byte {offset}) runs past the end of the build info"
            ),
            BuildInfoError::StringTooLong { field, length, max } => write!(
                f,
                "the {field} is {length} bytes long, more than the {max} read"
            ),
            BuildInfoError::NotUtf8 { field, offset } => {
                write!(f, "the {field} is not UTF-8 (byte {offset})")
            }
            BuildInfoError::Unframed => write!(
                f,
                "the module information is not framed by the toolchain's sentinels"
            ),
            BuildInfoError::Line { number, reason } => {
                write!(f, "module information line {number}: {reason}")
            }
            BuildInfoError::TooManyModules => {
                write!(f, "more than {MAX_MODULES} dependencies")
            }
            BuildInfoError::TooManySettings => {
                write!(f, "more than {MAX_SETTINGS} build settings")
            }
        }
    }
}

impl std::error::Error for BuildInfoError {}

impl From<ElfError> for BuildInfoError {
    fn from(error: ElfError) -> Self {
        BuildInfoError::Elf(error)
    }
}

impl From<BuildInfoError> for InventoryError {
    fn from(error: BuildInfoError) -> Self {
        InventoryError::new("go buildinfo", error.to_string())
    }
}

/// The Go modules compiled into `binary` (an ELF file), as packages found at `path`:
/// none for a binary not built by Go.
pub fn parse(binary: &[u8], path: &str) -> Result<Vec<Package>, InventoryError> {
    Ok(read_build_info(binary)?
        .map(|info| info.packages(path))
        .unwrap_or_default())
}

/// The build information of `binary` (an ELF file), or `None` when it is not a Go
/// binary (no `.go.buildinfo` section, or, without section headers, no magic).
pub fn read_build_info(binary: &[u8]) -> Result<Option<BuildInfo>, BuildInfoError> {
    let sections = elf::sections(binary)?;
    if sections.is_empty() {
        return scan_for_blob(binary);
    }
    let Some(section) = sections.iter().find(|section| section.name == SECTION) else {
        return Ok(None);
    };
    let bytes = section.bytes(binary)?;
    let blob = aligned_magic(bytes).next().ok_or(BuildInfoError::NoMagic)?;
    decode(blob).map(Some)
}

/// Reads a build information blob: `blob` starts with the magic and runs at least to
/// the end of the module information.
pub fn decode(blob: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    if !blob.starts_with(MAGIC) {
        return Err(BuildInfoError::NoMagic);
    }
    let header = blob
        .get(..HEADER_BYTES)
        .ok_or(BuildInfoError::TruncatedHeader {
            available: blob.len(),
        })?;
    let pointer_size = header.get(POINTER_SIZE_AT).copied().unwrap_or(0);
    let flags = header.get(FLAGS_AT).copied().unwrap_or(0);
    if flags & FLAG_INLINE_STRINGS == 0 {
        return Err(BuildInfoError::PointerLayout { pointer_size });
    }
    let mut cursor = Cursor {
        blob,
        at: HEADER_BYTES,
    };
    let version = utf8(
        "Go version",
        cursor.string("Go version", MAX_VERSION_BYTES)?,
    )?;
    let framed = cursor.string("module information", MAX_MODINFO_BYTES)?;
    let text = utf8("module information", unframe(framed)?)?;
    modinfo::parse(text, version.to_owned())
}

/// The build information of a binary without section headers: the first magic match
/// (of the first [`MAX_CANDIDATES`]) that decodes; if none does, the first one's error.
fn scan_for_blob(binary: &[u8]) -> Result<Option<BuildInfo>, BuildInfoError> {
    let mut first_error = None;
    for candidate in aligned_magic(binary).take(MAX_CANDIDATES) {
        match decode(candidate) {
            Ok(info) => return Ok(Some(info)),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// Every tail of `bytes` that starts with the magic at a 16-byte aligned offset.
fn aligned_magic(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    (0..bytes.len())
        .step_by(ALIGNMENT)
        .filter_map(|at| bytes.get(at..))
        .filter(|tail| tail.starts_with(MAGIC))
}

/// The module information without its sentinels; empty stays empty (a binary built
/// outside module mode).
fn unframe(framed: &[u8]) -> Result<&[u8], BuildInfoError> {
    if framed.is_empty() {
        return Ok(framed);
    }
    framed
        .strip_prefix(MODINFO_START.as_slice())
        .and_then(|rest| rest.strip_suffix(MODINFO_END.as_slice()))
        .filter(|text| text.ends_with(b"\n"))
        .ok_or(BuildInfoError::Unframed)
}

fn utf8<'a>(field: &'static str, bytes: &'a [u8]) -> Result<&'a str, BuildInfoError> {
    std::str::from_utf8(bytes).map_err(|error| BuildInfoError::NotUtf8 {
        field,
        offset: error.valid_up_to(),
    })
}

/// Reads the varint-prefixed strings after the header.
struct Cursor<'a> {
    blob: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// An unsigned LEB128 varint: 7 bits per byte, least significant first, the high
    /// bit set on every byte but the last; at most 10 bytes for 64 bits.
    fn varint(&mut self, field: &'static str) -> Result<u64, BuildInfoError> {
        let offset = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .blob
                .get(self.at)
                .ok_or(BuildInfoError::VarintPastEnd { field, offset })?;
            self.at += 1;
            // The tenth byte holds bit 63 only.
            if shift == 63 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BuildInfoError::VarintOverflow { field, offset })
    }

    fn string(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], BuildInfoError> {
        let offset = self.at;
        let length = self.varint(field)?;
        let bytes = usize::try_from(length)
            .ok()
            .filter(|&length| length <= max)
            .ok_or(BuildInfoError::StringTooLong { field, length, max })?;
        let string = self
            .at
            .checked_add(bytes)
            .and_then(|end| self.blob.get(self.at..end))
            .ok_or(BuildInfoError::StringPastEnd {
                field,
                offset,
                length,
            })?;
        self.at += bytes;
        Ok(string)
    }
}

impl BuildInfo {
    /// The packages this build information names, found at `path` (see the module
    /// documentation for which).
    pub fn packages(&self, path: &str) -> Vec<Package> {
        let arch = self.setting("GOARCH").map(str::to_owned);
        let package = |name: &str, version: &str| Package {
            kind: PackageKind::Go,
            name: name.to_owned(),
            version: version.to_owned(),
            source: None,
            arch: arch.clone(),
            license: None,
            path: path.to_owned(),
        };
        let toolchain = stdlib_version(&self.go_version).map(|version| package("stdlib", &version));
        let main = self
            .main_module
            .as_ref()
            .map(Module::built_from)
            .filter(|module| module.version != modinfo::DEVEL && !module.version.is_empty())
            .map(|module| package(&module.path, &module.version));
        let dependencies = self
            .dependencies
            .iter()
            .map(Module::built_from)
            .map(|module| package(&module.path, &module.version));
        toolchain
            .into_iter()
            .chain(main)
            .chain(dependencies)
            .collect()
    }
}

/// The toolchain's version as the Go vulnerability database writes `stdlib` versions:
/// `go1.22.3` → `v1.22.3`, `go1.21` → `v1.21.0`, `go1.21rc2` → `v1.21.0-rc.2`,
/// `go1.19beta1` → `v1.19.0-beta.1`. Anything after the release (` X:boringcrypto`, a
/// vendor's `-suffix`) is ignored. `None` for a version of another form (a `devel`
/// toolchain), which therefore yields no `stdlib` package.
pub fn stdlib_version(go_version: &str) -> Option<String> {
    let release = go_version
        .split([' ', '-', '+'])
        .next()
        .and_then(|word| word.strip_prefix("go"))?;
    let numbers_end = release
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(release.len());
    let (numbers, prerelease) = release.split_at_checked(numbers_end)?;
    let numbers: Vec<&str> = numbers.split('.').collect();
    let is_number = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if numbers.len() > 3 || !numbers.iter().all(is_number) {
        return None;
    }
    let number = |index: usize| numbers.get(index).copied().unwrap_or("0");
    let prerelease = match prerelease {
        "" => String::new(),
        tag => {
            let kind_end = tag.find(|c: char| c.is_ascii_digit())?;
            let (kind, count) = tag.split_at_checked(kind_end)?;
            if !matches!(kind, "rc" | "beta") || !is_number(&count) {
                return None;
            }
            format!("-{kind}.{count}")
        }
    };
    Some(format!(
        "v{}.{}.{}{prerelease}",
        number(0),
        number(1),
        number(2)
    ))
}
