//! Sealing and opening frames and footers: AES-256-GCM under a per-blob data key, or
//! CRC-32 checksums when the object is not encrypted.

use std::fmt;
use std::ops::Range;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use zeroize::Zeroizing;

use super::{FRAME_PREFIX_LEN, HEADER_LEN, Header, NAME_LEN, corrupt};
use crate::error::{Error, ErrorKind, Result};

/// A blob's 256-bit data key. Zeroed when dropped; never shown by `Debug`.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("no randomness for a data key: {e}"),
            )
        })?;
        Ok(Self(key))
    }

    /// A key from its bytes (unwrapped by a key provider, or fixed in a test).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes, for a key provider to wrap.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(redacted)")
    }
}

/// What a nonce and the associated data say about the sealed piece.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Piece {
    Frame = 0,
    LastFrame = 1,
    Footer = 2,
}

/// Seals and opens the pieces of one object.
#[derive(Clone)]
pub(crate) struct Sealer {
    cipher: Option<Aes256Gcm>,
    header: [u8; HEADER_LEN],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}

const TAG_LEN: usize = 16;
const CRC_LEN: usize = 4;

/// The CRC-32 that seals an unencrypted frame: over its additional data, then its
/// content.
fn checksum(aad: &[u8], content: &[u8]) -> [u8; CRC_LEN] {
    let mut crc = crc32fast::Hasher::new();
    crc.update(aad);
    crc.update(content);
    crc.finalize().to_le_bytes()
}

impl Sealer {
    /// A sealer for objects with `header`; a key is needed exactly when it says encrypted.
    pub(crate) fn new(header: &Header, key: Option<&DataKey>) -> Result<Self> {
        let cipher = match (header.encrypted(), key) {
            (true, Some(key)) => Some(Aes256Gcm::new(key.expose().into())),
            (false, _) => None,
            (true, None) => {
                return Err(Error::new(
                    ErrorKind::Denied,
                    "the object is encrypted and no data key was given",
                ));
            }
        };
        Ok(Self {
            cipher,
            header: header.encode(),
        })
    }

    /// Bytes a sealed payload adds to its content.
    pub(crate) fn overhead(&self) -> usize {
        if self.cipher.is_some() {
            TAG_LEN
        } else {
            CRC_LEN
        }
    }

    fn nonce(index: u64, piece: Piece) -> Nonce<Aes256Gcm> {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&index.to_le_bytes());
        nonce[8] = piece as u8;
        nonce.into()
    }

    fn aad(&self, index: u64, piece: Piece, encoding: u8) -> [u8; HEADER_LEN + 10] {
        let mut aad = [0u8; HEADER_LEN + 10];
        aad[..HEADER_LEN].copy_from_slice(&self.header);
        aad[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&index.to_le_bytes());
        aad[HEADER_LEN + 8] = piece as u8;
        aad[HEADER_LEN + 9] = encoding;
        aad
    }

    /// Seals frame `index` (`last` or not) in place: `frame` holds [`FRAME_PREFIX_LEN`]
    /// spare bytes, then its content in `encoding`; the prefix is filled in, the content
    /// sealed and the tag or checksum appended.
    pub(crate) fn seal_in_place(&self, index: u64, last: bool, encoding: u8, frame: &mut Vec<u8>) {
        let piece = if last { Piece::LastFrame } else { Piece::Frame };
        let payload_len = frame.len() - FRAME_PREFIX_LEN + self.overhead();
        frame[0] = encoding;
        frame[1..FRAME_PREFIX_LEN].copy_from_slice(&(payload_len as u32).to_le_bytes());
        self.seal(index, piece, encoding, frame, FRAME_PREFIX_LEN);
    }

    /// Seals `out[start..]` in place and appends the tag or checksum.
    fn seal(&self, index: u64, piece: Piece, encoding: u8, out: &mut Vec<u8>, start: usize) {
        let aad = self.aad(index, piece, encoding);
        match &self.cipher {
            Some(cipher) => {
                let tag = cipher
                    .encrypt_inout_detached(
                        &Self::nonce(index, piece),
                        &aad,
                        (&mut out[start..]).into(),
                    )
                    .expect("AES-GCM seals any frame under 64 GiB");
                out.extend_from_slice(&tag);
            }
            None => {
                let check = checksum(&aad, &out[start..]);
                out.extend_from_slice(&check);
            }
        }
    }

    /// A stored frame's encoding and payload (its content, then its tag or checksum),
    /// after checking its prefix.
    fn frame_parts<'a>(&self, index: u64, stored: &'a [u8]) -> Result<(u8, &'a [u8])> {
        let (&encoding, rest) = stored
            .split_first()
            .ok_or_else(|| corrupt(format!("frame {index} is empty")))?;
        let (len, payload) = rest
            .split_at_checked(4)
            .ok_or_else(|| corrupt(format!("frame {index} is cut short")))?;
        let len = u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
        if payload.len() != len || len < self.overhead() {
            return Err(corrupt(format!(
                "frame {index} has {} payload bytes where its prefix says {len}",
                payload.len()
            )));
        }
        Ok((encoding, payload))
    }

    /// Opens frame `index` from its stored bytes (prefix included): its encoding and
    /// content, or `CorruptData`.
    pub(crate) fn open_frame(
        &self,
        index: u64,
        last: bool,
        stored: &[u8],
    ) -> Result<(u8, Vec<u8>)> {
        let piece = if last { Piece::LastFrame } else { Piece::Frame };
        let (encoding, payload) = self.frame_parts(index, stored)?;
        let mut content = payload.to_vec();
        self.open(index, piece, encoding, &mut content)
            .map_err(|()| corrupt(format!("frame {index} failed authentication")))?;
        Ok((encoding, content))
    }

    /// Where frame `index` keeps its content within `stored`, once its checksum holds:
    /// for an unencrypted frame in `encoding`, whose content is stored as it is and needs
    /// no copy. `None` for an encrypted frame or one in another encoding (open those with
    /// [`Sealer::open_frame`]); `CorruptData` if the checksum does not hold.
    pub(crate) fn content_in_place(
        &self,
        index: u64,
        last: bool,
        encoding: u8,
        stored: &[u8],
    ) -> Result<Option<Range<usize>>> {
        if self.cipher.is_some() {
            return Ok(None);
        }
        let (stored_encoding, payload) = self.frame_parts(index, stored)?;
        if stored_encoding != encoding {
            return Ok(None);
        }
        let piece = if last { Piece::LastFrame } else { Piece::Frame };
        let (content, check) = payload.split_at(payload.len() - CRC_LEN);
        if checksum(&self.aad(index, piece, encoding), content) != check {
            return Err(corrupt(format!("frame {index} failed authentication")));
        }
        Ok(Some(FRAME_PREFIX_LEN..FRAME_PREFIX_LEN + content.len()))
    }

    /// Checks and strips the tag or checksum at the end of `sealed`, decrypting in place.
    fn open(&self, index: u64, piece: Piece, encoding: u8, sealed: &mut Vec<u8>) -> Result<(), ()> {
        let aad = self.aad(index, piece, encoding);
        let split = sealed.len().checked_sub(self.overhead()).ok_or(())?;
        let check = sealed.split_off(split);
        match &self.cipher {
            Some(cipher) => {
                let tag = Tag::<Aes256Gcm>::try_from(check.as_slice()).map_err(|_| ())?;
                cipher
                    .decrypt_inout_detached(
                        &Self::nonce(index, piece),
                        &aad,
                        sealed.as_mut_slice().into(),
                        &tag,
                    )
                    .map_err(|_| ())
            }
            None => {
                if checksum(&aad, sealed) == check.as_slice() {
                    Ok(())
                } else {
                    Err(())
                }
            }
        }
    }

    /// The tag that authenticates a footer's `body`; an unencrypted one carries `name`
    /// after its checksum (zeros for an unnamed object).
    pub(crate) fn footer_tag(&self, body: &[u8], name: [u8; NAME_LEN]) -> [u8; 16] {
        let mut sealed = Vec::with_capacity(16);
        let aad = [self.header.as_slice(), body].concat();
        let mut tag = [0u8; 16];
        match &self.cipher {
            Some(cipher) => {
                let t = cipher
                    .encrypt_inout_detached(
                        &Self::nonce(u64::MAX, Piece::Footer),
                        &aad,
                        sealed.as_mut_slice().into(),
                    )
                    .expect("sealing an empty plaintext");
                tag.copy_from_slice(&t);
            }
            None => {
                let crc = crc32fast::hash(&aad);
                tag[..4].copy_from_slice(&crc.to_le_bytes());
                tag[4..].copy_from_slice(&name);
            }
        }
        tag
    }
}

impl Sealer {
    /// Checks the tag of a footer's `body`; returns the name it carries (`None` for an
    /// encrypted object or an unnamed one). The name is not in the checksum: a damaged
    /// one names no blob, and a read that does not find its digest named hashes.
    pub(crate) fn check_footer(
        &self,
        body: &[u8],
        tag: &[u8; 16],
        named: bool,
    ) -> Result<Option<[u8; NAME_LEN]>> {
        let aad = [self.header.as_slice(), body].concat();
        let (ok, name) = match &self.cipher {
            Some(cipher) => (
                cipher
                    .decrypt_inout_detached(
                        &Self::nonce(u64::MAX, Piece::Footer),
                        &aad,
                        (&mut [][..]).into(),
                        &Tag::<Aes256Gcm>::from(*tag),
                    )
                    .is_ok(),
                None,
            ),
            None => {
                let name: [u8; NAME_LEN] = tag[4..].try_into().expect("twelve bytes");
                let crc_ok = crc32fast::hash(&aad).to_le_bytes() == tag[..4];
                (
                    crc_ok && (named || name == [0; NAME_LEN]),
                    named.then_some(name),
                )
            }
        };
        if ok {
            Ok(name)
        } else {
            Err(corrupt("the frame index failed authentication"))
        }
    }
}

/// Seals `plain` under `key` with a random nonce: nonce, ciphertext and tag. For bytes
/// kept beside a blob's frames (an unfinished write's held bytes), never in a frame's
/// nonce space.
pub(crate) fn seal_with_random_nonce(key: &DataKey, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| {
        Error::new(
            ErrorKind::Storage,
            format!("no randomness for a nonce: {e}"),
        )
    })?;
    let mut out = Vec::with_capacity(12 + plain.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = Aes256Gcm::new(key.expose().into())
        .encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(nonce),
            aad,
            (&mut out[12..]).into(),
        )
        .expect("AES-GCM seals any buffer under 64 GiB");
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens what [`seal_with_random_nonce`] sealed; `CorruptData` if it does not open.
pub(crate) fn open_with_random_nonce(key: &DataKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    let damaged = || corrupt("sealed held bytes do not open");
    if sealed.len() < 12 + TAG_LEN {
        return Err(damaged());
    }
    let (nonce, rest) = sealed.split_at(12);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = body.to_vec();
    Aes256Gcm::new(key.expose().into())
        .decrypt_inout_detached(
            &Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| damaged())?,
            aad,
            plain.as_mut_slice().into(),
            &Tag::<Aes256Gcm>::try_from(tag).map_err(|_| damaged())?,
        )
        .map_err(|_| damaged())?;
    Ok(plain)
}
