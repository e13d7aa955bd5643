//! Image layers for the scanning tests: tars written entry by entry (including the
//! malformed ones real tools refuse to write), tars of a directory made by GNU tar, and
//! gzip.

use std::io::Write;
use std::path::Path;

/// A tar archive written one entry at a time, in POSIX ustar form.
#[derive(Debug, Default)]
pub(crate) struct TarBuilder {
    out: Vec<u8>,
}

impl TarBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A header block for `name` (at most 100 bytes) with `kind`, `size`, `link`.
    pub(crate) fn header(name: &str, kind: u8, size: u64, mode: u32, link: &str) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"14000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        Self::seal(&mut h);
        h
    }

    /// Writes the checksum of a header whose other fields are set.
    pub(crate) fn seal(h: &mut [u8; 512]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }

    /// Appends raw bytes (a hand-made header, a truncated body).
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    fn body(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// A regular file; names over 100 bytes go in a PAX `path` record first.
    pub(crate) fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        let short = if name.len() > 100 {
            let record = format!("path={name}\n");
            // The length prefix counts its own digits.
            let mut len = record.len() + 2;
            while format!("{len} {record}").len() != len {
                len += 1;
            }
            let pax = format!("{len} {record}");
            let header = Self::header("PaxHeader", b'x', pax.len() as u64, 0o644, "");
            self.raw(&header);
            self.body(pax.as_bytes());
            "long-name-placeholder"
        } else {
            name
        };
        let header = Self::header(short, b'0', data.len() as u64, mode, "");
        self.raw(&header);
        self.body(data);
        self
    }

    pub(crate) fn dir(&mut self, name: &str) -> &mut Self {
        let header = Self::header(name, b'5', 0, 0o755, "");
        self.raw(&header)
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let header = Self::header(name, b'2', 0, 0o777, target);
        self.raw(&header)
    }

    pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let header = Self::header(name, b'1', 0, 0o644, target);
        self.raw(&header)
    }

    /// The archive with its end marker.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }

    /// The archive as written so far, without an end marker.
    pub(crate) fn unfinished(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// gzip of `data`.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// An uncompressed tar of `paths` (relative to `root`) made by GNU tar, symlinks kept.
pub(crate) fn gnu_tar(root: &Path, paths: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--format=gnu", "-cf", "-"])
        .args(paths)
        .output()
        .expect("GNU tar runs");
    assert!(
        output.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
