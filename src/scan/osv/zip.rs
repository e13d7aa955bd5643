//! The entries of a zip archive, as OSV's per-ecosystem `all.zip` exports are: one
//! JSON file per record.
//!
//! # Layout read (APPNOTE.TXT, all integers little-endian)
//!
//! The archive ends with the *end of central directory* record (22 bytes, then a
//! comment of up to 65 535 bytes): signature `50 4b 05 06`, this disk's number (u16 at
//! +4), the disk where the directory starts (u16 at +6), the entries on this disk (u16
//! at +8) and in all (u16 at +10), the directory's size (u32 at +12) and offset (u32 at
//! +16), and the comment's length (u16 at +20). It is found by searching backwards from
//! the end.
//!
//! The *central directory* holds one 46-byte header per entry, each followed by its
//! name, extra field and comment: signature `50 4b 01 02`, flags (u16 at +8; bit 0 is
//! encryption), compression method (u16 at +10), CRC-32 (u32 at +16), compressed and
//! uncompressed sizes (u32 at +20 and +24), the name, extra and comment lengths (u16
//! at +28, +30, +32), and the offset of the entry's local header (u32 at +42).
//!
//! Each entry's data follows its *local header* (30 bytes: signature `50 4b 03 04`,
//! name and extra lengths at +26 and +28, then the name and extra field). Its sizes
//! and CRC are taken from the central directory, which is authoritative (a local header
//! may defer them to a data descriptor after the data).
//!
//! Only stored (method 0) and deflated (method 8) entries are read. Zip64 archives
//! (whose end record is preceded by a zip64 locator, `50 4b 06 07`, or has a field
//! saturated at `ffff`/`ffffffff`), archives spanning several disks, and encrypted
//! entries are refused. Sizes are capped and each entry's CRC-32 is checked.
//!
//! The archive is read through [`Read`] + [`Seek`], so only the central directory and
//! one entry are held in memory at a time.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

/// The largest entry read, compressed or not, in bytes.
pub const MAX_ENTRY_BYTES: u64 = 4 << 20;

/// The largest central directory read, in bytes.
pub const MAX_DIRECTORY_BYTES: u64 = 64 << 20;

/// The most bytes all of an archive's entries may expand to, by their declared sizes.
pub const MAX_EXPANDED_BYTES: u64 = 8 << 30;

const END_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const DIRECTORY_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const END_LEN: u64 = 22;
const DIRECTORY_HEADER_LEN: usize = 46;
const LOCAL_HEADER_LEN: usize = 30;
const MAX_COMMENT_LEN: u64 = 65_535;

/// Why an archive, or one of its entries, could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipError {
    /// Reading failed.
    Io(String),
    /// No end of central directory record: not a zip archive.
    NotZip,
    /// The archive is zip64.
    Zip64,
    /// The archive spans several disks.
    MultiDisk,
    /// The central directory lies outside the archive or is larger than
    /// [`MAX_DIRECTORY_BYTES`].
    BadDirectory {
        /// Its offset.
        offset: u64,
        /// Its size.
        size: u64,
    },
    /// A central directory header is cut short or has a wrong signature.
    BadDirectoryEntry {
        /// The index of the entry.
        index: usize,
        /// Its offset within the central directory.
        offset: usize,
    },
    /// The entries' declared sizes add up to more than [`MAX_EXPANDED_BYTES`].
    TooLargeInAll {
        /// Their sum.
        bytes: u64,
    },
    /// An entry is larger than [`MAX_ENTRY_BYTES`].
    TooLarge {
        /// The entry.
        name: String,
        /// Its larger size.
        bytes: u64,
    },
    /// An entry is encrypted.
    Encrypted {
        /// The entry.
        name: String,
    },
    /// An entry is compressed with a method other than stored or deflate.
    UnsupportedMethod {
        /// The entry.
        name: String,
        /// The method.
        method: u16,
    },
    /// An entry's local header is missing or cut short.
    BadLocalHeader {
        /// The entry.
        name: String,
        /// Where the directory says it is.
        offset: u64,
    },
    /// An entry's data ends before the archive does.
    Truncated {
        /// The entry.
        name: String,
    },
    /// An entry's deflate stream is corrupt.
    Inflate {
        /// The entry.
        name: String,
        /// The decoder's error.
        reason: String,
    },
    /// An entry expands to a size other than the directory's.
    SizeMismatch {
        /// The entry.
        name: String,
        /// The directory's size.
        expected: u64,
        /// The size read (at most one byte past `expected`).
        actual: u64,
    },
    /// An entry's CRC-32 differs from the directory's.
    CrcMismatch {
        /// The entry.
        name: String,
        /// The directory's CRC-32.
        expected: u32,
        /// The data's.
        actual: u32,
    },
}

impl fmt::Display for ZipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZipError::Io(reason) => write!(f, "reading the zip archive: {reason}"),
            ZipError::NotZip => {
                f.write_str("no end of central directory record: not a zip archive")
            }
            ZipError::Zip64 => {
                f.write_str("zip64 archives are not supported: unpack it into a directory")
            }
            ZipError::MultiDisk => {
                f.write_str("zip archives spanning several disks are not supported")
            }
            ZipError::BadDirectory { offset, size } => write!(
                f,
                "central directory of {size} bytes at offset {offset} lies outside the archive or over the \
                 {MAX_DIRECTORY_BYTES}-byte cap"
            ),
            ZipError::BadDirectoryEntry { index, offset } => write!(
                f,
                "central directory entry {index} at directory offset {offset} is cut short or has a wrong signature"
            ),
            ZipError::TooLargeInAll { bytes } => {
                write!(
                    f,
                    "entries expand to {bytes} bytes in all, over the {MAX_EXPANDED_BYTES}-byte cap"
                )
            }
            ZipError::TooLarge { name, bytes } => {
                write!(
                    f,
                    "{name}: {bytes} bytes, over the {MAX_ENTRY_BYTES}-byte cap"
                )
            }
            ZipError::Encrypted { name } => {
                write!(f, "{name}: encrypted entries are not supported")
            }
            ZipError::UnsupportedMethod { name, method } => {
                write!(
                    f,
                    "{name}: compression method {method} is not supported (only 0, stored, and 8, deflate)"
                )
            }
            ZipError::BadLocalHeader { name, offset } => {
                write!(f, "{name}: no local header at offset {offset}")
            }
            ZipError::Truncated { name } => write!(f, "{name}: data ends before the archive does"),
            ZipError::Inflate { name, reason } => {
                write!(f, "{name}: corrupt deflate data: {reason}")
            }
            ZipError::SizeMismatch {
                name,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{name}: expands to {actual} bytes, the directory says {expected}"
                )
            }
            ZipError::CrcMismatch {
                name,
                expected,
                actual,
            } => write!(
                f,
                "{name}: CRC-32 {actual:08x} does not match the directory's {expected:08x}"
            ),
        }
    }
}

impl std::error::Error for ZipError {}

impl From<io::Error> for ZipError {
    fn from(error: io::Error) -> Self {
        ZipError::Io(error.to_string())
    }
}

/// One entry, as the central directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Its name (a path inside the archive; bytes that are not UTF-8 are replaced).
    pub name: String,
    /// Its general-purpose flags.
    pub flags: u16,
    /// Its compression method.
    pub method: u16,
    /// The CRC-32 of its uncompressed data.
    pub crc32: u32,
    /// Its compressed size.
    pub compressed_size: u64,
    /// Its uncompressed size.
    pub size: u64,
    /// The offset of its local header.
    pub local_header_offset: u64,
}

impl ZipEntry {
    /// Whether the entry is a directory (its name ends with `/`).
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }
}

/// An open zip archive.
#[derive(Debug)]
pub struct ZipArchive<R> {
    reader: R,
    entries: Vec<ZipEntry>,
}

impl<R: Read + Seek> ZipArchive<R> {
    /// Reads the archive's central directory.
    pub fn open(mut reader: R) -> Result<Self, ZipError> {
        let len = reader.seek(SeekFrom::End(0))?;
        let tail_len = len.min(END_LEN + MAX_COMMENT_LEN);
        let tail_start = len - tail_len;
        let tail = read_at(&mut reader, tail_start, tail_len)?;
        let end_at = find_end(&tail).ok_or(ZipError::NotZip)?;
        let end = tail.get(end_at..).ok_or(ZipError::NotZip)?;
        if end_at >= 20 && u32_at(&tail, end_at - 20) == Some(ZIP64_LOCATOR_SIGNATURE) {
            return Err(ZipError::Zip64);
        }
        let field16 = |at: usize| u16_at(end, at).ok_or(ZipError::NotZip);
        let field32 = |at: usize| u32_at(end, at).ok_or(ZipError::NotZip);
        let (disk, directory_disk) = (field16(4)?, field16(6)?);
        let (on_disk, count) = (field16(8)?, field16(10)?);
        let (size, offset) = (field32(12)?, field32(16)?);
        if count == u16::MAX || size == u32::MAX || offset == u32::MAX {
            return Err(ZipError::Zip64);
        }
        if disk != 0 || directory_disk != 0 || on_disk != count {
            return Err(ZipError::MultiDisk);
        }
        let (offset, size) = (u64::from(offset), u64::from(size));
        let end_offset = tail_start + end_at as u64;
        if size > MAX_DIRECTORY_BYTES || offset.saturating_add(size) > end_offset {
            return Err(ZipError::BadDirectory { offset, size });
        }
        let directory = read_at(&mut reader, offset, size)?;
        let entries = read_directory(&directory, usize::from(count))?;
        let expanded = entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.size));
        if expanded > MAX_EXPANDED_BYTES {
            return Err(ZipError::TooLargeInAll { bytes: expanded });
        }
        Ok(ZipArchive { reader, entries })
    }

    /// The entries, in the central directory's order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The uncompressed bytes of entry `index`, their size and CRC-32 checked (an
    /// `index` past the end is a [`ZipError::BadDirectoryEntry`]).
    pub fn read(&mut self, index: usize) -> Result<Vec<u8>, ZipError> {
        let Some(entry) = self.entries.get(index).cloned() else {
            return Err(ZipError::BadDirectoryEntry { index, offset: 0 });
        };
        let name = || entry.name.clone();
        if entry.flags & 1 != 0 {
            return Err(ZipError::Encrypted { name: name() });
        }
        let largest = entry.size.max(entry.compressed_size);
        if largest > MAX_ENTRY_BYTES {
            return Err(ZipError::TooLarge {
                name: name(),
                bytes: largest,
            });
        }
        if entry.method != 0 && entry.method != 8 {
            return Err(ZipError::UnsupportedMethod {
                name: name(),
                method: entry.method,
            });
        }
        let bad_local = || ZipError::BadLocalHeader {
            name: name(),
            offset: entry.local_header_offset,
        };
        let header = read_at(
            &mut self.reader,
            entry.local_header_offset,
            LOCAL_HEADER_LEN as u64,
        )
        .map_err(|_| bad_local())?;
        if header.len() < LOCAL_HEADER_LEN || u32_at(&header, 0) != Some(LOCAL_SIGNATURE) {
            return Err(bad_local());
        }
        let name_len = u16_at(&header, 26).ok_or_else(bad_local)?;
        let extra_len = u16_at(&header, 28).ok_or_else(bad_local)?;
        let data_at = entry.local_header_offset
            + (LOCAL_HEADER_LEN + usize::from(name_len) + usize::from(extra_len)) as u64;
        let raw = read_at(&mut self.reader, data_at, entry.compressed_size)?;
        if (raw.len() as u64) < entry.compressed_size {
            return Err(ZipError::Truncated { name: name() });
        }
        let data = if entry.method == 0 {
            raw
        } else {
            inflate(&raw, entry.size).map_err(|e| ZipError::Inflate {
                name: name(),
                reason: e.to_string(),
            })?
        };
        if data.len() as u64 != entry.size {
            return Err(ZipError::SizeMismatch {
                name: name(),
                expected: entry.size,
                actual: data.len() as u64,
            });
        }
        let crc = crc32fast::hash(&data);
        if crc != entry.crc32 {
            return Err(ZipError::CrcMismatch {
                name: name(),
                expected: entry.crc32,
                actual: crc,
            });
        }
        Ok(data)
    }
}

/// Inflates raw deflate data, reading at most one byte past `size` so a bomb stops
/// there.
fn inflate(raw: &[u8], size: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    flate2::read::DeflateDecoder::new(raw)
        .take(size + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Up to `len` bytes at `offset` (fewer at the end of the input).
fn read_at<R: Read + Seek>(reader: &mut R, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    reader.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::with_capacity(usize::try_from(len.min(MAX_DIRECTORY_BYTES)).unwrap_or(0));
    (&mut *reader).take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// The offset in `tail` of the last end of central directory record whose comment
/// fits before the end.
fn find_end(tail: &[u8]) -> Option<usize> {
    let last_start = tail.len().checked_sub(END_LEN as usize)?;
    (0..=last_start).rev().find(|&at| {
        u32_at(tail, at) == Some(END_SIGNATURE)
            && u16_at(tail, at + 20)
                .is_some_and(|comment| at + END_LEN as usize + usize::from(comment) <= tail.len())
    })
}

/// The `count` headers of a central directory.
fn read_directory(directory: &[u8], count: usize) -> Result<Vec<ZipEntry>, ZipError> {
    let mut entries = Vec::with_capacity(count.min(directory.len() / DIRECTORY_HEADER_LEN));
    let mut at = 0;
    for index in 0..count {
        let bad = ZipError::BadDirectoryEntry { index, offset: at };
        let header = directory
            .get(at..at + DIRECTORY_HEADER_LEN)
            .ok_or_else(|| bad.clone())?;
        if u32_at(header, 0) != Some(DIRECTORY_SIGNATURE) {
            return Err(bad);
        }
        let field16 = |offset: usize| u16_at(header, offset).ok_or_else(|| bad.clone());
        let field32 = |offset: usize| u32_at(header, offset).ok_or_else(|| bad.clone());
        let name_len = usize::from(field16(28)?);
        let variable_len = name_len + usize::from(field16(30)?) + usize::from(field16(32)?);
        let name_at = at + DIRECTORY_HEADER_LEN;
        let name = directory
            .get(name_at..name_at + name_len)
            .ok_or_else(|| bad.clone())?;
        let (compressed_size, size, local) = (field32(20)?, field32(24)?, field32(42)?);
        if compressed_size == u32::MAX || size == u32::MAX || local == u32::MAX {
            return Err(ZipError::Zip64);
        }
        entries.push(ZipEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            flags: field16(8)?,
            method: field16(10)?,
            crc32: field32(16)?,
            compressed_size: u64::from(compressed_size),
            size: u64::from(size),
            local_header_offset: u64::from(local),
        });
        at = name_at + variable_len;
    }
    Ok(entries)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let field = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(field.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}
