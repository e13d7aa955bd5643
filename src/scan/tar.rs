//! A streaming reader of tar archives, as image layers write them: one pass, bounded
//! memory, and a typed error for every way a hostile layer can be malformed.
//!
//! # Format
//!
//! An archive is a sequence of 512-byte blocks. Each entry is a header block followed by
//! its body, padded with zeros to a whole block; two zero blocks (or the end of the
//! stream at a header boundary) end the archive. The header fields used here:
//!
//! | offset | length | field |
//! |---|---|---|
//! | 0 | 100 | name (NUL-terminated unless full) |
//! | 100 | 8 | mode, octal |
//! | 124 | 12 | size, octal, or base-256 when the first byte has its high bit set |
//! | 148 | 8 | checksum: the sum of the header's bytes, counting this field as spaces |
//! | 156 | 1 | type: `0`/NUL file, `1` hard link, `2` symlink, `5` directory, `7` file, others |
//! | 157 | 100 | link target |
//! | 257 | 6 | magic: `ustar\0` (POSIX) or `ustar ` (GNU) |
//! | 345 | 155 | POSIX only: a prefix joined to the name with `/` |
//!
//! Names longer than the fields come in an extra entry before the one they describe:
//! GNU `L` (name) and `K` (link target) bodies, or a POSIX `x` extended header of records
//! `"<len> <key>=<value>\n"` (keys `path`, `linkpath`, `size` are honoured; `g` global
//! headers are read past). Both are capped ([`MAX_NAME`], [`MAX_PAX`]).
//!
//! Names are normalised (`./` and repeated `/` dropped, `..` resolved); a name that climbs
//! out of the root is refused, since no honest layer has one.

use std::fmt;
use std::io::Read;

const BLOCK: usize = 512;

/// The longest entry name or link target accepted (Linux's `PATH_MAX`).
pub const MAX_NAME: usize = 4096;

/// The largest POSIX extended header accepted.
pub const MAX_PAX: u64 = 1 << 20;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (types `0`, NUL and `7`).
    File,
    /// A directory.
    Directory,
    /// A symbolic link; [`Entry::link`] holds the target as written.
    Symlink,
    /// A hard link to an earlier entry of the same layer; [`Entry::link`] holds its name.
    Hardlink,
    /// Devices, FIFOs, sparse files and anything else: the body is skipped.
    Other,
}

/// One entry's header, as the archive describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The normalised path, relative to the root, without a leading `/` (empty for the
    /// root itself).
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// The body's size in bytes.
    pub size: u64,
    /// The permission bits.
    pub mode: u32,
    /// The link target of a symlink (as written) or hard link (normalised).
    pub link: Option<String>,
}

/// Why an archive could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TarError {
    /// The stream ended inside a header or body.
    Truncated {
        /// Bytes of the archive read when it ended.
        offset: u64,
    },
    /// A header's checksum does not match its bytes: not a tar, or corrupt.
    Checksum {
        /// Where the header starts.
        offset: u64,
    },
    /// A numeric field is not a number.
    Field {
        /// Where the header starts.
        offset: u64,
        /// Which field.
        field: &'static str,
    },
    /// A name, link target or extended header is longer than its cap.
    TooLong {
        /// Where the header starts.
        offset: u64,
        /// What was too long.
        what: &'static str,
    },
    /// A name climbs out of the root with `..`.
    Escapes {
        /// The name as written.
        name: String,
    },
    /// Reading the underlying stream failed (a decompressor's error, a storage error).
    Read(String),
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarError::Truncated { offset } => write!(f, "tar stream ends early at byte {offset}"),
            TarError::Checksum { offset } => {
                write!(f, "tar header at byte {offset} has a bad checksum")
            }
            TarError::Field { offset, field } => {
                write!(f, "tar header at byte {offset}: {field} is not a number")
            }
            TarError::TooLong { offset, what } => {
                write!(f, "tar header at byte {offset}: {what} is too long")
            }
            TarError::Escapes { name } => {
                write!(f, "tar entry {name:?} climbs out of the image root")
            }
            TarError::Read(reason) => write!(f, "reading the layer: {reason}"),
        }
    }
}

impl std::error::Error for TarError {}

/// Where the reader is: the one state a streaming tar reader has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// At a header block.
    Header,
    /// Inside an entry's body: bytes left, then padding up to the block.
    Body { remaining: u64, padding: u64 },
    /// Past the end-of-archive marker or the stream's end.
    End,
}

/// Names carried by extension entries for the entry that follows them.
#[derive(Debug, Default)]
struct Pending {
    name: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

/// Reads entries one after another; bodies not read are skipped.
pub struct TarReader<R> {
    inner: R,
    position: Position,
    offset: u64,
    scratch: Box<[u8; 64 * 1024]>,
}

impl<R> fmt::Debug for TarReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarReader")
            .field("position", &self.position)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl<R: Read> TarReader<R> {
    /// A reader over an uncompressed tar stream.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            position: Position::Header,
            offset: 0,
            scratch: Box::new([0; 64 * 1024]),
        }
    }

    /// The underlying reader, positioned after what was read.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes of the archive consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next entry, or `None` at the end of the archive. The body of the previous
    /// entry, or what is left of it, is skipped first.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        let mut pending = Pending::default();
        loop {
            self.skip_body()?;
            if self.position == Position::End {
                return Ok(None);
            }
            let start = self.offset;
            let mut header = [0u8; BLOCK];
            if !self.read_block(&mut header)? {
                self.position = Position::End;
                return Ok(None);
            }
            if header.iter().all(|&b| b == 0) {
                // One zero block ends the archive; the second is not required.
                self.position = Position::End;
                return Ok(None);
            }
            verify_checksum(&header, start)?;
            let size = match pending.size.take() {
                Some(size) => size,
                None => number(&header[124..136]).ok_or(TarError::Field {
                    offset: start,
                    field: "size",
                })?,
            };
            self.position = Position::Body {
                remaining: size,
                padding: padding(size),
            };
            match header[156] {
                b'L' => pending.name = Some(self.read_text(size, start, "long name")?),
                b'K' => pending.link = Some(self.read_text(size, start, "long link")?),
                b'x' => self.read_pax(size, start, &mut pending)?,
                b'g' => {} // Global defaults: nothing here uses them.
                flag => return self.entry(&header, flag, size, pending).map(Some),
            }
        }
    }

    /// Appends up to `cap` bytes of what is left of the current entry's body to `out`.
    /// Returns whether all of it fit.
    pub fn read_body(&mut self, out: &mut Vec<u8>, cap: usize) -> Result<bool, TarError> {
        let Position::Body { remaining, .. } = self.position else {
            return Ok(true);
        };
        let wanted = remaining.min(cap as u64);
        let fits = wanted == remaining;
        // `wanted` is at most `cap`, a usize.
        out.reserve(usize::try_from(wanted).unwrap_or(cap));
        let mut left = wanted;
        while left > 0 {
            let take = usize::try_from(left.min(self.scratch.len() as u64)).unwrap_or(0);
            let got = self.read_some(take)?;
            out.extend_from_slice(&self.scratch[..got]);
            left -= got as u64;
        }
        self.consumed(wanted);
        Ok(fits)
    }

    /// Reads up to `buf.len()` bytes of the current body; 0 at its end.
    pub fn read_body_chunk(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let Position::Body { remaining, .. } = self.position else {
            return Ok(0);
        };
        let take = usize::try_from(remaining.min(buf.len() as u64)).unwrap_or(0);
        if take == 0 {
            return Ok(0);
        }
        let got = self.inner_read(&mut buf[..take])?;
        if got == 0 {
            return Err(TarError::Truncated {
                offset: self.offset,
            });
        }
        self.offset += got as u64;
        self.consumed(got as u64);
        Ok(got)
    }

    fn entry(
        &mut self,
        header: &[u8; BLOCK],
        flag: u8,
        size: u64,
        pending: Pending,
    ) -> Result<Entry, TarError> {
        let raw_name = match pending.name {
            Some(name) => name,
            None => header_name(header),
        };
        let path = normalise(&raw_name)?;
        let mode = number(&header[100..108]).unwrap_or(0) as u32;
        let link = pending
            .link
            .unwrap_or_else(|| field_text(&header[157..257]));
        let kind = match flag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'5' => EntryKind::Directory,
            _ => EntryKind::Other,
        };
        let link = match kind {
            EntryKind::Symlink => Some(link),
            EntryKind::Hardlink => Some(normalise(&link)?),
            _ => None,
        };
        if matches!(flag, b'1'..=b'6') {
            // Links, devices, directories and FIFOs are headers only, whatever the size
            // field says (as the Go archive reader that writes most layers treats them).
            self.position = Position::Body {
                remaining: 0,
                padding: 0,
            };
        }
        Ok(Entry {
            path,
            kind,
            size,
            mode,
            link,
        })
    }

    fn read_text(&mut self, size: u64, start: u64, what: &'static str) -> Result<String, TarError> {
        if size > MAX_NAME as u64 + 1 {
            return Err(TarError::TooLong {
                offset: start,
                what,
            });
        }
        let mut body = Vec::new();
        self.read_body(&mut body, MAX_NAME + 1)?;
        let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
        Ok(String::from_utf8_lossy(&body[..end]).into_owned())
    }

    fn read_pax(&mut self, size: u64, start: u64, pending: &mut Pending) -> Result<(), TarError> {
        if size > MAX_PAX {
            return Err(TarError::TooLong {
                offset: start,
                what: "extended header",
            });
        }
        let mut body = Vec::new();
        self.read_body(&mut body, MAX_PAX as usize)?;
        for (key, value) in pax_records(&body) {
            match key {
                b"path" => pending.name = Some(capped_text(value, start, "path")?),
                b"linkpath" => pending.link = Some(capped_text(value, start, "linkpath")?),
                b"size" => {
                    let text = std::str::from_utf8(value).ok();
                    pending.size =
                        Some(text.and_then(|t| t.parse().ok()).ok_or(TarError::Field {
                            offset: start,
                            field: "extended size",
                        })?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn skip_body(&mut self) -> Result<(), TarError> {
        if let Position::Body { remaining, padding } = self.position {
            let mut left = remaining + padding;
            while left > 0 {
                let take = usize::try_from(left.min(self.scratch.len() as u64)).unwrap_or(0);
                let got = self.read_some(take)?;
                left -= got as u64;
            }
            self.position = Position::Header;
        }
        Ok(())
    }

    /// Marks `n` body bytes read; at the body's end only the padding is left.
    fn consumed(&mut self, n: u64) {
        if let Position::Body { remaining, padding } = self.position {
            self.position = Position::Body {
                remaining: remaining - n.min(remaining),
                padding,
            };
        }
    }

    /// Reads a whole block, or returns false at a clean end of stream.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let mut filled = 0;
        while filled < BLOCK {
            let got = self.inner_read(&mut block[filled..])?;
            if got == 0 {
                if filled == 0 {
                    return Ok(false);
                }
                return Err(TarError::Truncated {
                    offset: self.offset + filled as u64,
                });
            }
            filled += got;
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// Reads between 1 and `take` bytes into the scratch buffer.
    fn read_some(&mut self, take: usize) -> Result<usize, TarError> {
        let got = match self.inner.read(&mut self.scratch[..take]) {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return self.read_some(take),
            Err(e) => return Err(TarError::Read(e.to_string())),
        };
        if got == 0 {
            return Err(TarError::Truncated {
                offset: self.offset,
            });
        }
        self.offset += got as u64;
        Ok(got)
    }

    fn inner_read(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        loop {
            match self.inner.read(buf) {
                Ok(got) => return Ok(got),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TarError::Read(e.to_string())),
            }
        }
    }
}

impl<R: Read + std::io::Seek> TarReader<R> {
    /// Skips what is left of the current entry's body by seeking instead of reading, so
    /// that listing a large archive on disk reads its headers only. Seeking past the end
    /// of the stream is not noticed here: the next header read finds the end.
    pub fn seek_past_body(&mut self) -> Result<(), TarError> {
        if let Position::Body { remaining, padding } = self.position {
            let skip = remaining + padding;
            let delta = i64::try_from(skip).map_err(|_| TarError::Truncated {
                offset: self.offset,
            })?;
            self.inner
                .seek(std::io::SeekFrom::Current(delta))
                .map_err(|e| TarError::Read(e.to_string()))?;
            self.offset += skip;
            self.position = Position::Header;
        }
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn verify_checksum(header: &[u8; BLOCK], offset: u64) -> Result<(), TarError> {
    let stored = number(&header[148..156]).ok_or(TarError::Checksum { offset })?;
    let unsigned: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    // Some old writers summed signed bytes.
    let signed: i64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(TarError::Checksum { offset })
    }
}

/// An octal field (NUL- or space-terminated, leading spaces allowed) or a base-256 one.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // Base-256: big-endian, the first byte's high bit is the marker. Negative values
        // (the second-highest bit set too) are not sizes.
        if field[0] & 0x40 != 0 {
            return None;
        }
        let mut value: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let text = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != 0 && b != b' ');
    // An empty field reads as zero (some writers leave mode or mtime blank).
    let mut value: u64 = 0;
    for &b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The name, with the POSIX prefix when the header is POSIX ustar.
fn header_name(header: &[u8; BLOCK]) -> String {
    let name = field_text(&header[0..100]);
    if &header[257..263] == b"ustar\0" {
        let prefix = field_text(&header[345..500]);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

fn capped_text(value: &[u8], offset: u64, what: &'static str) -> Result<String, TarError> {
    if value.len() > MAX_NAME {
        return Err(TarError::TooLong { offset, what });
    }
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// The `key=value` records of an extended header; malformed records end the list.
fn pax_records(mut body: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut records = Vec::new();
    while !body.is_empty() {
        let Some(space) = body.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&body[..space])
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > body.len() {
            break;
        }
        let record = &body[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            records.push((&record[..eq], &record[eq + 1..]));
        }
        body = &body[len..];
    }
    records
}

/// Normalises a path: drops `/`, `./` and empty segments, resolves `..`; refuses a path
/// that climbs out of the root.
pub fn normalise(name: &str) -> Result<String, TarError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(TarError::Escapes {
                        name: name.chars().take(256).collect(),
                    });
                }
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests;
