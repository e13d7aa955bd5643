//! Writing tar archives that every reader takes: POSIX ustar headers, and a PAX extended
//! header (`x`) before an entry whose name does not fit the header's 100 bytes or whose
//! size does not fit its eleven octal digits (8 GiB). Times are zero, owners root, so
//! the same files give the same bytes.
//!
//! The format is described where it is read, in [`crate::scan::tar`].

use std::io::{self, Write};

const BLOCK: usize = 512;

/// The largest size the header's octal field holds: eleven digits.
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarKind {
    /// A regular file.
    File,
    /// A directory (its name ends with `/`).
    Directory,
}

/// Writes a tar stream: entries one after another, each body streamed.
#[derive(Debug)]
pub struct TarWriter<W> {
    out: W,
    /// Bytes of the current entry's body still to come.
    remaining: u64,
    /// Padding owed after the current body.
    padding: usize,
}

impl<W: Write> TarWriter<W> {
    /// A writer onto `out`.
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            remaining: 0,
            padding: 0,
        }
    }

    /// Starts an entry of `size` bytes at `path` (relative, `/`-separated). Its body
    /// follows through [`write_body`](Self::write_body); a directory has none.
    pub fn begin(&mut self, path: &str, kind: TarKind, size: u64) -> io::Result<()> {
        if self.remaining > 0 {
            return Err(io::Error::other(format!(
                "tar entry {path} begun with {} bytes of the last one unwritten",
                self.remaining
            )));
        }
        self.pad()?;
        let name = match kind {
            TarKind::Directory if !path.ends_with('/') => format!("{path}/"),
            _ => path.to_owned(),
        };
        let size = if kind == TarKind::Directory { 0 } else { size };
        let mut records = String::new();
        if name.len() > 100 {
            records.push_str(&pax_record("path", &name));
        }
        if size > MAX_OCTAL_SIZE {
            records.push_str(&pax_record("size", &size.to_string()));
        }
        if !records.is_empty() {
            let pax_name = format!("PaxHeaders/{}", short_name(&name));
            self.out
                .write_all(&header(&pax_name, b'x', records.len() as u64, 0o644))?;
            self.out.write_all(records.as_bytes())?;
            self.out
                .write_all(&[0; BLOCK][..padding(records.len() as u64)])?;
        }
        let (flag, mode) = match kind {
            TarKind::File => (b'0', 0o644),
            TarKind::Directory => (b'5', 0o755),
        };
        self.out
            .write_all(&header(&short_name(&name), flag, size, mode))?;
        self.remaining = size;
        self.padding = padding(size);
        Ok(())
    }

    /// Writes part of the current entry's body; more than it declared is an error.
    pub fn write_body(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 > self.remaining {
            return Err(io::Error::other(format!(
                "{} bytes written to a tar entry with {} left",
                data.len(),
                self.remaining
            )));
        }
        self.out.write_all(data)?;
        self.remaining -= data.len() as u64;
        Ok(())
    }

    /// Ends the current entry; a body shorter than declared is an error.
    pub fn end(&mut self) -> io::Result<()> {
        if self.remaining > 0 {
            return Err(io::Error::other(format!(
                "a tar entry ended {} bytes short",
                self.remaining
            )));
        }
        self.pad()
    }

    /// Writes a whole file.
    pub fn file(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.begin(path, TarKind::File, data.len() as u64)?;
        self.write_body(data)?;
        self.end()
    }

    /// Ends the archive (two zero blocks) and returns the stream, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.end()?;
        self.out.write_all(&[0; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = std::mem::take(&mut self.padding);
        self.out.write_all(&[0; BLOCK][..padding])
    }
}

/// A name that fits the header: the name itself, or its last 100 bytes' worth of whole
/// characters when a PAX record carries it in full.
fn short_name(name: &str) -> String {
    if name.len() <= 100 {
        return name.to_owned();
    }
    let mut start = name.len() - 100;
    while !name.is_char_boundary(start) {
        start += 1;
    }
    name[start..].to_owned()
}

/// A PAX record: `"<length> <key>=<value>\n"`, where the length counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut length = body + 1;
    while length.to_string().len() + body != length {
        length = length.to_string().len() + body;
    }
    format!("{length} {key}={value}\n")
}

fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// A ustar header. Sizes above the octal field's reach are written as zero: the PAX
/// record before the header carries them.
fn header(name: &str, flag: u8, size: u64, mode: u32) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let name = name.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(
        &mut h[124..136],
        if size > MAX_OCTAL_SIZE { 0 } else { size },
    );
    octal(&mut h[136..148], 0); // mtime
    h[156] = flag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

/// `value` in octal, zero-padded to fill `field` but its last byte, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tar::{EntryKind, TarReader};

    fn read_back(archive: &[u8]) -> Vec<(String, EntryKind, Vec<u8>)> {
        let mut reader = TarReader::new(archive);
        let mut entries = Vec::new();
        while let Some(entry) = reader.next_entry().unwrap() {
            let mut body = Vec::new();
            reader.read_body(&mut body, 1 << 20).unwrap();
            entries.push((entry.path, entry.kind, body));
        }
        entries
    }

    #[test]
    fn entries_read_back_with_long_names() {
        let long = format!("blobs/sha512/{}", "ab".repeat(64));
        let mut writer = TarWriter::new(Vec::new());
        writer.begin("blobs", TarKind::Directory, 0).unwrap();
        writer.file("oci-layout", b"{}").unwrap();
        writer.file(&long, &[7u8; 1000]).unwrap();
        writer.file("empty", b"").unwrap();
        let archive = writer.finish().unwrap();
        assert_eq!(archive.len() % BLOCK, 0);
        let entries = read_back(&archive);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["blobs", "oci-layout", long.as_str(), "empty"]);
        assert_eq!(entries[0].1, EntryKind::Directory);
        assert_eq!(entries[2].2, vec![7u8; 1000]);
        assert!(entries[3].2.is_empty());
    }

    #[test]
    fn a_body_of_the_wrong_length_is_refused() {
        let mut writer = TarWriter::new(Vec::new());
        writer.begin("a", TarKind::File, 4).unwrap();
        assert!(writer.write_body(b"12345").is_err());
        writer.write_body(b"12").unwrap();
        assert!(writer.end().is_err());
        assert!(writer.begin("b", TarKind::File, 1).is_err());
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for value in ["x", &"y".repeat(93), &"z".repeat(994)] {
            let record = pax_record("path", value);
            let (length, _) = record.split_once(' ').unwrap();
            assert_eq!(length.parse::<usize>().unwrap(), record.len());
        }
    }
}
