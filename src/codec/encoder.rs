//! Writing the at-rest format: logical bytes in, stored bytes out, a frame at a time.

use super::cipher::{DataKey, Sealer};
use super::{FOOTER_FIXED_LEN, FOOTER_MAGIC, FRAME_SIZE_RANGE, Header};
use crate::error::{Error, ErrorKind, Result};

/// Frame encodings.
pub(crate) const RAW: u8 = 0;
pub(crate) const ZSTD: u8 = 1;

/// Whether frames are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Frames are stored as they are.
    Off,
    /// Each frame is zstd-compressed at `level` when that saves at least 1/32 of it;
    /// content that starts as an already-compressed stream (gzip, zstd, xz, bzip2) is
    /// not tried at all.
    Zstd {
        /// The zstd level (1 is fastest).
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Self::Zstd { level: 1 }
    }
}

/// Magic numbers of compressed streams, which a second compression does not shrink.
const COMPRESSED_MAGICS: &[&[u8]] = &[
    &[0x1f, 0x8b],                         // gzip
    &[0x28, 0xb5, 0x2f, 0xfd],             // zstd
    &[0xfd, b'7', b'z', b'X', b'Z', 0x00], // xz
    b"BZh",                                // bzip2
];

/// Turns a blob's logical bytes into its stored object.
///
/// Call [`FrameEncoder::header`] first, then [`FrameEncoder::push`] with the logical
/// bytes in order, writing out whatever each returns, then [`FrameEncoder::finish`].
/// At most one frame of logical bytes is held.
///
/// ```
/// use wharf::codec::{Compression, DataKey, FrameEncoder, decode};
///
/// let key = DataKey::from_bytes([7; 32]);
/// let mut encoder = FrameEncoder::new(1 << 16, Compression::default(), Some(&key), [1; 16])?;
/// let mut stored = encoder.header().to_vec();
/// stored.extend(encoder.push(&vec![b'a'; 200_000]));
/// stored.extend(encoder.finish());
/// assert!(stored.len() < 2_000, "compressed: {}", stored.len());
/// assert_eq!(decode(&stored, Some(&key))?, vec![b'a'; 200_000]);
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Debug)]
pub struct FrameEncoder {
    header: Header,
    sealer: Sealer,
    compression: Compression,
    /// Decided on the first bytes: the content is compressed already.
    precompressed: Option<bool>,
    pending: Vec<u8>,
    frame_lens: Vec<u32>,
    logical: u64,
}

impl FrameEncoder {
    /// An encoder writing frames of `frame_size` logical bytes (a power of two from
    /// 64 KiB to 64 MiB), sealed with `key` if given, for an object with random `salt`.
    pub fn new(
        frame_size: usize,
        compression: Compression,
        key: Option<&DataKey>,
        salt: [u8; 16],
    ) -> Result<Self> {
        let log2 = frame_size.trailing_zeros();
        if !frame_size.is_power_of_two() || !FRAME_SIZE_RANGE.contains(&log2) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("frame size {frame_size} is not a power of two from 64 KiB to 64 MiB"),
            ));
        }
        let header = Header {
            encrypted: key.is_some(),
            frame_size_log2: log2 as u8,
            salt,
        };
        Ok(Self {
            sealer: Sealer::new(&header, key)?,
            header,
            compression,
            precompressed: None,
            pending: Vec::new(),
            frame_lens: Vec::new(),
            logical: 0,
        })
    }

    /// The object's first bytes.
    pub fn header(&self) -> [u8; super::HEADER_LEN] {
        self.header.encode()
    }

    fn frame_size(&self) -> usize {
        self.header.frame_size() as usize
    }

    /// Takes more logical bytes; returns the stored bytes of the frames they completed.
    /// A full frame is held until more bytes come, since only then is it known not to be
    /// the last.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.precompressed.is_none() && !data.is_empty() {
            self.precompressed = Some(
                COMPRESSED_MAGICS
                    .iter()
                    .any(|magic| data.starts_with(magic)),
            );
        }
        self.logical += data.len() as u64;
        while !data.is_empty() {
            if self.pending.len() == self.frame_size() {
                let frame = std::mem::take(&mut self.pending);
                self.seal(&frame, false, &mut out);
                self.pending = frame;
                self.pending.clear();
            }
            let room = self.frame_size() - self.pending.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = rest;
        }
        out
    }

    fn seal(&mut self, content: &[u8], last: bool, out: &mut Vec<u8>) {
        let start = out.len();
        let index = self.frame_lens.len() as u64;
        let compressed = match self.compression {
            Compression::Zstd { level } if self.precompressed != Some(true) => {
                compress(content, level)
            }
            _ => None,
        };
        match &compressed {
            Some(smaller) => self.sealer.seal_frame(index, last, ZSTD, smaller, out),
            None => self.sealer.seal_frame(index, last, RAW, content, out),
        }
        self.frame_lens.push((out.len() - start) as u32);
    }

    /// Seals the last frame and appends the footer; returns their stored bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = std::mem::take(&mut self.pending);
        self.seal(&last, true, &mut out);
        let mut body = Vec::with_capacity(self.frame_lens.len() * 4 + 16);
        for len in &self.frame_lens {
            body.extend_from_slice(&len.to_le_bytes());
        }
        body.extend_from_slice(&self.logical.to_le_bytes());
        body.extend_from_slice(&(self.frame_lens.len() as u64).to_le_bytes());
        let tag = self.sealer.footer_tag(&body);
        let footer_len = (body.len() - 16 + FOOTER_FIXED_LEN) as u32;
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&footer_len.to_le_bytes());
        out.extend_from_slice(FOOTER_MAGIC);
        out
    }

    /// Logical bytes taken so far.
    pub fn logical_len(&self) -> u64 {
        self.logical
    }
}

/// `content` compressed, if that saves at least 1/32 of it.
fn compress(content: &[u8], level: i32) -> Option<Vec<u8>> {
    if content.len() < 64 {
        return None;
    }
    let budget = content.len() - content.len() / 32;
    let mut out = vec![0u8; budget];
    match zstd::bulk::compress_to_buffer(content, &mut out, level) {
        Ok(n) if n < budget => {
            out.truncate(n);
            Some(out)
        }
        // Too big for the budget, or any failure: store it raw.
        _ => None,
    }
}
