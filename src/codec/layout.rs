//! Reading the at-rest format: the frame index, which frames hold a logical range, and
//! opening them.

use std::ops::Range;

use bytes::Bytes;

use super::cipher::{DataKey, Sealer};
use super::encoder::{RAW, ZSTD};
use super::{
    FOOTER_FIXED_LEN, FOOTER_MAGIC, FRAME_PREFIX_LEN, HEADER_LEN, Header, NAME_LEN, corrupt,
};
use crate::error::Result;

/// A stored object's shape: its header, logical size and where each frame is. Built from
/// the header and the footer alone, so a range read fetches only the frames it needs.
#[derive(Debug, Clone)]
pub struct Layout {
    header: Header,
    logical_size: u64,
    /// Stored offset of each frame, then of the footer.
    offsets: Vec<u64>,
    sealer: Sealer,
    /// The blob a named object's footer names.
    name: Option<[u8; NAME_LEN]>,
}

impl Layout {
    /// The footer's length, from the last 8 (or more) bytes of the object.
    pub fn footer_len(tail: &[u8]) -> Result<usize> {
        let end = tail
            .len()
            .checked_sub(8)
            .ok_or_else(|| corrupt("the object is too short for a footer"))?;
        if &tail[end + 4..] != FOOTER_MAGIC {
            return Err(corrupt(
                "the object does not end with the frame index magic",
            ));
        }
        let len = u32::from_le_bytes(tail[end..end + 4].try_into().expect("four bytes")) as usize;
        if len < FOOTER_FIXED_LEN || !(len - FOOTER_FIXED_LEN).is_multiple_of(4) {
            return Err(corrupt(format!("the frame index claims {len} bytes")));
        }
        Ok(len)
    }

    /// Reads the layout from the object's `header` bytes and its last `footer` bytes
    /// (exactly [`Layout::footer_len`] of them), for an object of `stored_size` bytes.
    /// The footer is authenticated with `key` (encrypted objects) or checked.
    pub fn parse(
        header: &[u8],
        footer: &[u8],
        stored_size: u64,
        key: Option<&DataKey>,
    ) -> Result<Self> {
        let header = Header::decode(header)?;
        let sealer = Sealer::new(&header, key)?;
        let footer_len = Self::footer_len(footer)?;
        if footer.len() != footer_len {
            return Err(corrupt("the frame index is not where its length says"));
        }
        let count = (footer_len - FOOTER_FIXED_LEN) / 4;
        let body_len = count * 4 + 16;
        let (body, rest) = footer.split_at(body_len);
        let tag: [u8; 16] = rest[..16].try_into().expect("sixteen bytes");
        let name = sealer.check_footer(body, &tag, header.named())?;
        let logical_size =
            u64::from_le_bytes(body[count * 4..count * 4 + 8].try_into().expect("8"));
        let declared = u64::from_le_bytes(body[count * 4 + 8..].try_into().expect("8"));
        let frame_size = header.frame_size();
        let expected_count = logical_size.div_ceil(frame_size).max(1);
        if declared != count as u64 || expected_count != count as u64 {
            return Err(corrupt(format!(
                "the frame index lists {count} frames for {logical_size} bytes"
            )));
        }
        let mut offsets = Vec::with_capacity(count + 1);
        let mut at = HEADER_LEN as u64;
        let least = (FRAME_PREFIX_LEN + sealer.overhead()) as u64;
        for chunk in body[..count * 4].chunks_exact(4) {
            let len = u64::from(u32::from_le_bytes(chunk.try_into().expect("four bytes")));
            if len < least {
                return Err(corrupt(format!(
                    "a frame of {len} stored bytes is too short"
                )));
            }
            offsets.push(at);
            at += len;
        }
        offsets.push(at);
        if at + footer_len as u64 != stored_size {
            return Err(corrupt(format!(
                "frames and index add up to {} bytes, the object has {stored_size}",
                at + footer_len as u64
            )));
        }
        Ok(Self {
            header,
            logical_size,
            offsets,
            sealer,
            name,
        })
    }

    /// Whether the object is named for the blob whose digest's hash begins with
    /// `hash_prefix` (see the format's docs): only then does a full read of an
    /// unencrypted object need no hashing beyond its checksums.
    pub fn names(&self, hash_prefix: &[u8]) -> bool {
        self.name
            .is_some_and(|name| hash_prefix.len() >= NAME_LEN && name == hash_prefix[..NAME_LEN])
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The blob's logical size.
    pub fn logical_size(&self) -> u64 {
        self.logical_size
    }

    /// How many frames the object has.
    pub fn frame_count(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The object's stored size.
    pub fn stored_size(&self) -> u64 {
        let count = self.frame_count();
        self.offsets[count] + (count * 4 + FOOTER_FIXED_LEN) as u64
    }

    /// The frames that hold the logical bytes `range` (non-empty, within the blob), and
    /// the stored bytes that cover exactly those frames.
    pub fn locate(&self, range: Range<u64>) -> (Range<usize>, Range<u64>) {
        let frame_size = self.header.frame_size();
        let first = (range.start / frame_size) as usize;
        let last = ((range.end.max(range.start + 1) - 1) / frame_size) as usize;
        let last = last.min(self.frame_count() - 1);
        let first = first.min(last);
        (first..last + 1, self.offsets[first]..self.offsets[last + 1])
    }

    /// Whether frame `index` is the last, and how many logical bytes it holds.
    fn frame_extent(&self, index: usize) -> (bool, usize) {
        let count = self.frame_count();
        let last = index + 1 == count;
        let frame_size = self.header.frame_size();
        let expected = if last {
            self.logical_size - frame_size * (count as u64 - 1)
        } else {
            frame_size
        };
        (last, expected as usize)
    }

    /// The logical bytes of frame `index` from exactly its stored bytes, as a slice of
    /// them, when the frame is unencrypted and stored uncompressed: only its checksum is
    /// computed, nothing is copied. `None` when the frame must be opened with
    /// [`Layout::open`] (encrypted or compressed).
    pub fn open_in_place(&self, index: usize, stored: &Bytes) -> Result<Option<Bytes>> {
        let (last, expected) = self.frame_extent(index);
        let Some(content) = self
            .sealer
            .content_in_place(index as u64, last, RAW, stored)?
        else {
            return Ok(None);
        };
        if content.len() != expected {
            return Err(corrupt(format!(
                "frame {index} holds {} bytes, {expected} expected",
                content.len()
            )));
        }
        Ok(Some(stored.slice(content)))
    }

    /// The logical bytes of frame `index`, from exactly its stored bytes.
    pub fn open(&self, index: usize, stored: &[u8]) -> Result<Vec<u8>> {
        let (last, expected) = self.frame_extent(index);
        let (encoding, content) = self.sealer.open_frame(index as u64, last, stored)?;
        let logical = match encoding {
            RAW => content,
            ZSTD => zstd::bulk::decompress(&content, expected)
                .map_err(|e| corrupt(format!("frame {index} does not decompress: {e}")))?,
            other => {
                return Err(corrupt(format!(
                    "frame {index} has unknown encoding {other}"
                )));
            }
        };
        if logical.len() != expected {
            return Err(corrupt(format!(
                "frame {index} holds {} bytes, {expected} expected",
                logical.len()
            )));
        }
        Ok(logical)
    }

    /// Where frame `index` lies in the object.
    pub fn frame_range(&self, index: usize) -> Range<u64> {
        self.offsets[index]..self.offsets[index + 1]
    }
}

/// Opens frame `index` of an object laid out as `layout` from its stored bytes.
pub fn open_frame(layout: &Layout, index: usize, stored: &[u8]) -> Result<Vec<u8>> {
    layout.open(index, stored)
}

/// The logical bytes of a whole stored object.
pub fn decode(object: &[u8], key: Option<&DataKey>) -> Result<Vec<u8>> {
    let footer_len = Layout::footer_len(object)?;
    let footer_start = object
        .len()
        .checked_sub(footer_len)
        .filter(|&at| at >= HEADER_LEN)
        .ok_or_else(|| corrupt("the object is shorter than its header and index"))?;
    let layout = Layout::parse(object, &object[footer_start..], object.len() as u64, key)?;
    let mut out = Vec::with_capacity(layout.logical_size().min(1 << 30) as usize);
    for index in 0..layout.frame_count() {
        let range = layout.frame_range(index);
        out.extend(layout.open(index, &object[range.start as usize..range.end as usize])?);
    }
    Ok(out)
}
