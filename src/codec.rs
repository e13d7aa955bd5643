//! The at-rest format: a blob's logical bytes cut into fixed-size frames, each
//! zstd-compressed where that makes it smaller and sealed with AES-256-GCM, followed by a
//! frame index. Pure and I/O-free: [`FrameEncoder`] turns logical bytes into the stored
//! object piece by piece, [`decode`] and [`Layout`] + [`open_frame`] read it back, whole
//! or by logical byte range.
//!
//! # Format, version 1
//!
//! ```text
//! header   "WHRF" | version (1) | flags (bit 0: encrypted, bit 1: named)
//!          | log2(frame size) | 0 | salt (16 random bytes)              = 24 bytes
//! frames   per frame: encoding (0 raw, 1 zstd) | payload length (u32 LE) | payload
//!          payload = ciphertext and 16-byte tag (encrypted), or bytes and CRC-32
//! footer   stored frame lengths (u32 LE each) | logical size (u64 LE)
//!          | frame count (u64 LE) | tag (16 bytes: GCM tag, or CRC-32 and name)
//!          | footer length (u32 LE) | "WHRI"
//! ```
//!
//! Every frame but the last holds exactly `frame size` logical bytes; an empty blob has
//! one empty frame. An encrypted frame's nonce is its index and a last-frame flag; its
//! associated data is the header (so the salt, unique per object), the index, the flag
//! and the encoding. So truncation (the last frame has the flag), reordering and swapping
//! frames within or between objects, and any bit flip fail authentication and read as
//! [`ErrorKind::CorruptData`], never as content. The footer is authenticated the same
//! way under its own nonce. Unencrypted objects carry CRC-32 (IEEE) checksums instead:
//! they catch accidents, not attackers.
//!
//! An unencrypted object may be *named* (flag bit 1; never set with bit 0): the 12
//! bytes after its footer's CRC-32 are the first 12 bytes of its blob's digest (the
//! hash itself, not its hex), where an unnamed object has zeros. The name is what lets
//! a full read trust the checksums instead of hashing the blob again: they catch bit
//! flips, truncation and frames from another object (the salt is in every checksum),
//! and the name catches a whole object under another blob's name. An encrypted object
//! needs no name: its data key's wrap is bound to the digest.
//!
//! The digest of a blob is always that of its logical bytes: clients, deduplication and
//! mounts never see this format.

use std::ops::Range;

use crate::error::{Error, ErrorKind, Result};

mod cipher;
mod encoder;
mod layout;

pub use self::cipher::DataKey;
pub(crate) use self::cipher::{open_with_random_nonce, seal_with_random_nonce};
pub(crate) use self::encoder::SealedFrames;
pub use self::encoder::{Compression, EncoderSnapshot, FrameEncoder};
pub use self::layout::{Layout, decode, open_frame};

/// Magic bytes at the start of every stored object.
pub const MAGIC: &[u8; 4] = b"WHRF";
/// Magic bytes at the very end of every stored object.
pub const FOOTER_MAGIC: &[u8; 4] = b"WHRI";
/// The format version this code writes.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 24;
/// The default logical bytes per frame (256 KiB): a 1 KiB range read opens one frame
/// in well under a millisecond, and whole reads and writes run as fast as with larger
/// frames (`benches/at_rest.rs`).
pub const DEFAULT_FRAME_SIZE: usize = 1 << 18;
/// Smallest and largest frame sizes allowed (64 KiB to 64 MiB), powers of two.
pub const FRAME_SIZE_RANGE: Range<u32> = 16..27;

const FLAG_ENCRYPTED: u8 = 1;
const FLAG_NAMED: u8 = 2;
/// Bytes of a blob's digest a named object's footer holds.
pub const NAME_LEN: usize = 12;
/// Per-frame overhead before the payload: encoding and payload length.
pub(crate) const FRAME_PREFIX_LEN: usize = 5;
/// Bytes of the footer after the frame lengths.
pub(crate) const FOOTER_FIXED_LEN: usize = 8 + 8 + 16 + 4 + 4;

/// How an object's frames and index are sealed (the header's flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// CRC-32 checksums; the index names no blob (no flag: objects written before names).
    Checksums,
    /// CRC-32 checksums, and the index names the blob (flag bit 1).
    NamedChecksums,
    /// AES-256-GCM under the blob's data key (flag bit 0).
    Encrypted,
}

/// A stored object's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How frames and index are sealed.
    pub sealing: Sealing,
    /// log2 of the logical bytes per frame.
    pub frame_size_log2: u8,
    /// Random per object: binds frames to it.
    pub salt: [u8; 16],
}

impl Header {
    /// Whether frames are sealed with AES-256-GCM.
    pub fn encrypted(&self) -> bool {
        self.sealing == Sealing::Encrypted
    }

    /// Whether the index names the blob.
    pub fn named(&self) -> bool {
        self.sealing == Sealing::NamedChecksums
    }

    /// Logical bytes per frame.
    pub fn frame_size(&self) -> u64 {
        1 << self.frame_size_log2
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4] = FORMAT_VERSION;
        out[5] = match self.sealing {
            Sealing::Checksums => 0,
            Sealing::NamedChecksums => FLAG_NAMED,
            Sealing::Encrypted => FLAG_ENCRYPTED,
        };
        out[6] = self.frame_size_log2;
        out[8..24].copy_from_slice(&self.salt);
        out
    }

    /// Reads a header; [`ErrorKind::CorruptData`] names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bytes = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("the object is shorter than its header"))?;
        if &bytes[..4] != MAGIC {
            return Err(corrupt(
                "the object does not start with the wharf magic bytes",
            ));
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "stored object has format version {}, this build reads version {FORMAT_VERSION}",
                    bytes[4]
                ),
            ));
        }
        let sealing = match bytes[5] {
            0 => Sealing::Checksums,
            FLAG_NAMED => Sealing::NamedChecksums,
            FLAG_ENCRYPTED => Sealing::Encrypted,
            both if both == FLAG_ENCRYPTED | FLAG_NAMED => {
                return Err(corrupt("the header says both encrypted and named"));
            }
            _ => return Err(corrupt("the header has unknown flags set")),
        };
        if bytes[7] != 0 {
            return Err(corrupt("the header has unknown flags set"));
        }
        if !FRAME_SIZE_RANGE.contains(&u32::from(bytes[6])) {
            return Err(corrupt(format!(
                "the header gives a frame size of 2^{}, outside 2^{}..2^{}",
                bytes[6], FRAME_SIZE_RANGE.start, FRAME_SIZE_RANGE.end
            )));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[8..24]);
        Ok(Self {
            sealing,
            frame_size_log2: bytes[6],
            salt,
        })
    }
}

pub(crate) fn corrupt(message: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!("stored object: {}", message.into()),
    )
}
