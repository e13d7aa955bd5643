//! The RPM header: how the rpmdb stores one installed package, as the "header blob"
//! without the magic and reserved bytes a header has inside a package file.
//!
//! # Layout (numbers big-endian)
//!
//! | bytes | field |
//! |---|---|
//! | 4 | `il`: the number of index entries |
//! | 4 | `dl`: the length of the data store |
//! | 16 × `il` | index entries: tag, type, offset into the data store, count (4 bytes each) |
//! | `dl` | the data store |
//!
//! An entry's value starts at its offset in the data store. The types read here are
//! `INT32` (4: `count` big-endian u32 values) and `STRING` (6) or `I18NSTRING` (9: the
//! first of `count` translations is the untranslated one), each a NUL-terminated string.
//! The first entry is usually a region tag (62 or 63) whose value describes the header's
//! own signature; it is not needed to read the tags below.
//!
//! | tag | name | type | needed |
//! |---|---|---|---|
//! | 1000 | `NAME` | string | yes; `gpg-pubkey` marks an imported signing key, not a package |
//! | 1001 | `VERSION` | string | yes |
//! | 1002 | `RELEASE` | string | yes |
//! | 1003 | `EPOCH` | INT32 | no: absent unless the spec sets `Epoch:` |
//! | 1014 | `LICENSE` | string | no |
//! | 1022 | `ARCH` | string | no (keys have none) |
//! | 1044 | `SOURCERPM` | string | no (keys have none) |
//!
//! # Hostile headers
//!
//! `il` is capped at [`MAX_INDEX_ENTRIES`] (rpm's own limit) and the entries and data
//! store must fit in the blob; every value read must start inside the data store and
//! end (at its NUL, or after 4 bytes) before the data store does. Strings must be UTF-8
//! except `LICENSE`, whose stray bytes become U+FFFD (old packages wrote Latin-1 there).

use std::fmt;

/// The most index entries a header may have (as rpm itself allows).
pub const MAX_INDEX_ENTRIES: usize = 0xffff;

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const LICENSE: u32 = 1014;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// The name that marks an imported signing key in the rpmdb.
pub const GPG_PUBKEY: &str = "gpg-pubkey";

/// What the rpmdb records about one installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmHeader {
    /// `NAME`.
    pub name: String,
    /// `EPOCH`, when the header has one (it may be 0).
    pub epoch: Option<u32>,
    /// `VERSION`.
    pub version: String,
    /// `RELEASE`.
    pub release: String,
    /// `ARCH` (`x86_64`, `noarch`, …).
    pub arch: Option<String>,
    /// `LICENSE`, as the spec file wrote it.
    pub license: Option<String>,
    /// `SOURCERPM`: the file name of the source package it was built from
    /// (`openssl-3.0.7-24.el9.src.rpm`).
    pub source_rpm: Option<String>,
}

/// Why a header blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The blob is shorter than its two 4-byte counts.
    TooShort {
        /// The blob's length.
        len: usize,
    },
    /// `il` is over [`MAX_INDEX_ENTRIES`].
    TooManyEntries {
        /// The index count found.
        count: u32,
    },
    /// The index and data store the counts describe do not fit in the blob.
    Size {
        /// `8 + 16 × il + dl`.
        declared: u64,
        /// The blob's length.
        actual: usize,
    },
    /// A needed tag is missing or its value is malformed.
    Tag {
        /// The tag number.
        tag: u32,
        /// What is wrong.
        problem: &'static str,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { len } => {
                write!(f, "header blob of {len} bytes is shorter than its counts")
            }
            HeaderError::TooManyEntries { count } => write!(
                f,
                "header has {count} index entries, over the limit of {MAX_INDEX_ENTRIES}"
            ),
            HeaderError::Size { declared, actual } => write!(
                f,
                "header counts describe {declared} bytes but the blob holds {actual}"
            ),
            HeaderError::Tag { tag, problem } => {
                write!(f, "header tag {tag} ({}): {problem}", tag_name(*tag))
            }
        }
    }
}

impl std::error::Error for HeaderError {}

fn tag_name(tag: u32) -> &'static str {
    match tag {
        NAME => "NAME",
        VERSION => "VERSION",
        RELEASE => "RELEASE",
        EPOCH => "EPOCH",
        LICENSE => "LICENSE",
        ARCH => "ARCH",
        SOURCERPM => "SOURCERPM",
        _ => "unknown",
    }
}

/// Reads a header blob: the package it describes, or `None` for an imported signing key
/// (`gpg-pubkey`).
pub fn parse_header(blob: &[u8]) -> Result<Option<RpmHeader>, HeaderError> {
    let header = Index::parse(blob)?;
    let name = header.string(NAME)?.ok_or(missing(NAME))?;
    if name == GPG_PUBKEY {
        return Ok(None);
    }
    Ok(Some(RpmHeader {
        name,
        epoch: header.int32(EPOCH)?,
        version: header.string(VERSION)?.ok_or(missing(VERSION))?,
        release: header.string(RELEASE)?.ok_or(missing(RELEASE))?,
        arch: header.string(ARCH)?,
        license: header.lossy_string(LICENSE)?,
        source_rpm: header.string(SOURCERPM)?,
    }))
}

fn missing(tag: u32) -> HeaderError {
    HeaderError::Tag {
        tag,
        problem: "missing",
    }
}

/// A header's index entries over its data store.
struct Index<'blob> {
    entries: &'blob [u8],
    data: &'blob [u8],
}

/// One index entry: a value's type and where it starts in the data store.
#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: u32,
    offset: u32,
}

impl<'blob> Index<'blob> {
    fn parse(blob: &'blob [u8]) -> Result<Self, HeaderError> {
        let (Some(count), Some(data_len)) = (be32(blob, 0), be32(blob, 4)) else {
            return Err(HeaderError::TooShort { len: blob.len() });
        };
        if count as usize > MAX_INDEX_ENTRIES {
            return Err(HeaderError::TooManyEntries { count });
        }
        let entries_len = 16 * count as usize;
        let declared = 8 + entries_len as u64 + u64::from(data_len);
        let size_error = HeaderError::Size {
            declared,
            actual: blob.len(),
        };
        let entries = blob.get(8..8 + entries_len).ok_or(size_error.clone())?;
        let data_start = 8 + entries_len;
        let data = usize::try_from(data_len)
            .ok()
            .and_then(|len| blob.get(data_start..data_start.checked_add(len)?))
            .ok_or(size_error)?;
        Ok(Index { entries, data })
    }

    /// The first entry for `tag`.
    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.chunks_exact(16).find_map(|entry| {
            (be32(entry, 0)? == tag).then_some(Entry {
                kind: be32(entry, 4)?,
                offset: be32(entry, 8)?,
            })
        })
    }

    /// The bytes of a string tag's (first) value, without its NUL.
    fn string_bytes(&self, tag: u32) -> Result<Option<&'blob [u8]>, HeaderError> {
        let problem = |problem| HeaderError::Tag { tag, problem };
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        if entry.kind != TYPE_STRING && entry.kind != TYPE_I18NSTRING {
            return Err(problem("not a string"));
        }
        let value = self
            .data
            .get(entry.offset as usize..)
            .filter(|value| !value.is_empty())
            .ok_or(problem("starts past the data store"))?;
        let end = value
            .iter()
            .position(|&b| b == 0)
            .ok_or(problem("runs past the data store without a NUL"))?;
        let bytes = value.get(..end).unwrap_or_default();
        if bytes.is_empty() {
            return Err(problem("empty"));
        }
        Ok(Some(bytes))
    }

    fn string(&self, tag: u32) -> Result<Option<String>, HeaderError> {
        let Some(bytes) = self.string_bytes(tag)? else {
            return Ok(None);
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(text.to_owned())),
            Err(_) => Err(HeaderError::Tag {
                tag,
                problem: "not UTF-8",
            }),
        }
    }

    fn lossy_string(&self, tag: u32) -> Result<Option<String>, HeaderError> {
        Ok(self
            .string_bytes(tag)?
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned()))
    }

    fn int32(&self, tag: u32) -> Result<Option<u32>, HeaderError> {
        let problem = |problem| HeaderError::Tag { tag, problem };
        let Some(entry) = self.entry(tag) else {
            return Ok(None);
        };
        if entry.kind != TYPE_INT32 {
            return Err(problem("not an INT32"));
        }
        be32(self.data, entry.offset as usize)
            .map(Some)
            .ok_or(problem("runs past the data store"))
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob of `(tag, type, value bytes)` entries, values laid out in order.
    fn blob(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, value) in entries {
            for word in [*tag, *kind, data.len() as u32, 1] {
                index.extend_from_slice(&word.to_be_bytes());
            }
            data.extend_from_slice(value);
        }
        let mut blob = (entries.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        blob.extend(index);
        blob.extend(data);
        blob
    }

    const OPENSSL: &[(u32, u32, &[u8])] = &[
        (NAME, TYPE_STRING, b"openssl\0"),
        (VERSION, TYPE_STRING, b"3.0.7\0"),
        (RELEASE, TYPE_STRING, b"24.el9\0"),
        (EPOCH, TYPE_INT32, &[0, 0, 0, 1]),
        (LICENSE, TYPE_STRING, b"Apache-2.0\0"),
        (ARCH, TYPE_STRING, b"x86_64\0"),
        (SOURCERPM, TYPE_STRING, b"openssl-3.0.7-24.el9.src.rpm\0"),
    ];

    #[test]
    fn every_field_is_read() {
        assert_eq!(
            parse_header(&blob(OPENSSL)),
            Ok(Some(RpmHeader {
                name: "openssl".into(),
                epoch: Some(1),
                version: "3.0.7".into(),
                release: "24.el9".into(),
                arch: Some("x86_64".into()),
                license: Some("Apache-2.0".into()),
                source_rpm: Some("openssl-3.0.7-24.el9.src.rpm".into()),
            }))
        );
    }

    #[test]
    fn signing_keys_are_not_packages() {
        let key = blob(&[
            (NAME, TYPE_STRING, b"gpg-pubkey\0"),
            (VERSION, TYPE_STRING, b"fd431d51\0"),
            (RELEASE, TYPE_STRING, b"4ae0493b\0"),
        ]);
        assert_eq!(parse_header(&key), Ok(None));
    }

    #[test]
    fn an_i18n_string_reads_its_first_translation_and_latin1_licences_survive() {
        let header = blob(&[
            (NAME, TYPE_I18NSTRING, b"tool\0outil\0"),
            (VERSION, TYPE_STRING, b"1\0"),
            (RELEASE, TYPE_STRING, b"1\0"),
            (LICENSE, TYPE_STRING, b"Copyright \xa9 Someone\0"),
        ]);
        let header = parse_header(&header).ok().flatten();
        assert_eq!(header.as_ref().map(|h| h.name.as_str()), Some("tool"));
        assert_eq!(
            header.and_then(|h| h.license),
            Some("Copyright \u{fffd} Someone".into())
        );
    }

    #[test]
    fn malformed_headers_name_the_problem() {
        assert_eq!(
            parse_header(&[0, 0, 0]),
            Err(HeaderError::TooShort { len: 3 })
        );
        assert_eq!(
            parse_header(&[0, 1, 0, 0, 0, 0, 0, 0]),
            Err(HeaderError::TooManyEntries { count: 65536 })
        );
        let mut truncated = blob(OPENSSL);
        truncated.pop();
        assert_eq!(
            parse_header(&truncated),
            Err(HeaderError::Size {
                declared: truncated.len() as u64 + 1,
                actual: truncated.len()
            })
        );
        // The last string loses its NUL: the data store ends inside it.
        let mut unterminated = blob(OPENSSL);
        let last = unterminated.len() - 1;
        unterminated[last] = b'x';
        assert_eq!(
            parse_header(&unterminated),
            Err(HeaderError::Tag {
                tag: SOURCERPM,
                problem: "runs past the data store without a NUL"
            })
        );
        let no_version = blob(&[(NAME, TYPE_STRING, b"a\0"), (RELEASE, TYPE_STRING, b"1\0")]);
        assert_eq!(parse_header(&no_version), Err(missing(VERSION)));
        let int_name = blob(&[(NAME, TYPE_INT32, &[0, 0, 0, 1])]);
        assert_eq!(
            parse_header(&int_name),
            Err(HeaderError::Tag {
                tag: NAME,
                problem: "not a string"
            })
        );
    }

    #[test]
    fn offsets_past_the_data_store_are_refused() {
        let mut header = blob(&[
            (NAME, TYPE_STRING, b"a\0"),
            (VERSION, TYPE_STRING, b"1\0"),
            (RELEASE, TYPE_STRING, b"1\0"),
            (EPOCH, TYPE_INT32, &[0, 0, 0, 2]),
        ]);
        // Entry 3 (EPOCH): offset field at 8 + 3 × 16 + 8.
        // The data store is 10 bytes: a value at 7 would end at 11.
        header[8 + 3 * 16 + 8..8 + 3 * 16 + 12].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            parse_header(&header),
            Err(HeaderError::Tag {
                tag: EPOCH,
                problem: "runs past the data store"
            })
        );
        header[8 + 3 * 16 + 8..8 + 3 * 16 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&header).is_err());
    }
}
