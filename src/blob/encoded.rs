//! Reading objects in the at-rest format ([`crate::codec`]): the layout from the header
//! and the footer, then the frames a read needs, opened in parallel and in order.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};

use super::ByteStream;
use super::wraps::Wraps;
use crate::codec::{FOOTER_FIXED_LEN, HEADER_LEN, Header, Layout};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

/// Bytes fetched from the end of an object to find its frame index: covers the index
/// of a 16 GiB blob in 1 MiB frames, and all of a small object in one request.
const TAIL_FETCH: u64 = 64 << 10;
/// Frames opened at once by one read.
const FRAMES_IN_FLIGHT: usize = 2;

/// An encoded object ready to read.
pub(crate) struct Opened {
    pub(crate) layout: Arc<Layout>,
    /// The whole object, when the fetch of its tail covered it.
    pub(crate) whole: Option<Bytes>,
}

fn get_error(digest: &Digest, e: object_store::Error) -> Error {
    Error::storage(format!("reading blob {digest}"), e)
}

/// Reads the header and the frame index of the object at `path`, unwrapping its data key
/// through the first of `keks` that has a wrap. `None` when there is no such object.
pub(crate) async fn open<'a>(
    store: &Arc<dyn ObjectStore>,
    wraps: &Wraps,
    path: &Path,
    digest: &Digest,
    keks: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Opened>> {
    let tail_options = GetOptions::new().with_range(Some(GetRange::Suffix(TAIL_FETCH)));
    let (tail, head) = futures::join!(
        async {
            let got = store.get_opts(path, tail_options).await?;
            let (range, size) = (got.range.clone(), got.meta.size);
            Ok::<_, object_store::Error>((range, size, got.bytes().await?))
        },
        store.get_range(path, 0..HEADER_LEN as u64),
    );
    let (range, size, tail) = match tail {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(get_error(digest, e)),
    };
    let header = match head {
        Ok(head) => head,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        // Shorter than a header: the footer check below names the damage.
        Err(_) if size < HEADER_LEN as u64 => tail.clone(),
        Err(e) => return Err(get_error(digest, e)),
    };
    let footer_len = Layout::footer_len(&tail).map_err(|e| name_blob(e, digest))?;
    let footer = if footer_len <= tail.len() {
        tail.slice(tail.len() - footer_len..)
    } else {
        let start = size
            .checked_sub(footer_len as u64)
            .ok_or_else(|| corrupt(digest, "the frame index is longer than the object".into()))?;
        store
            .get_range(path, start..size)
            .await
            .map_err(|e| get_error(digest, e))?
    };
    let parsed = Header::decode(&header).map_err(|e| name_blob(e, digest))?;
    let key = if parsed.encrypted() {
        let key = wraps.open(digest, &parsed.salt, keks).await;
        // A key that does not unwrap for this digest is this blob's corruption: say
        // which blob. Other refusals (an unknown KEK, a provider down) pass as they are.
        Some(key.map_err(|e| match e.kind() {
            ErrorKind::CorruptData => name_blob(e, digest),
            _ => e,
        })?)
    } else {
        None
    };
    let layout =
        Layout::parse(&header, &footer, size, key.as_ref()).map_err(|e| name_blob(e, digest))?;
    Ok(Some(Opened {
        layout: Arc::new(layout),
        whole: (range.start == 0).then_some(tail),
    }))
}

/// The logical size and stored size of the object at `path`, read from its last bytes
/// alone (not authenticated: a read checks everything). `None` when there is no object.
pub(crate) async fn sizes(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    digest: &Digest,
) -> Result<Option<(u64, u64)>> {
    let options = GetOptions::new().with_range(Some(GetRange::Suffix(FOOTER_FIXED_LEN as u64)));
    let got = match store.get_opts(path, options).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(get_error(digest, e)),
    };
    let stored = got.meta.size;
    let tail = got.bytes().await.map_err(|e| get_error(digest, e))?;
    Layout::footer_len(&tail).map_err(|e| name_blob(e, digest))?;
    if tail.len() < FOOTER_FIXED_LEN {
        return Err(corrupt(
            digest,
            "the object is too short for a frame index".into(),
        ));
    }
    let logical = u64::from_le_bytes(tail[..8].try_into().expect("eight bytes"));
    Ok(Some((logical, stored)))
}

/// The logical bytes `want` (within the blob) from a stream of the object's stored bytes
/// starting at offset `base`, which must cover the frames holding `want`.
pub(crate) fn logical_stream(
    stored: ByteStream,
    base: u64,
    layout: Arc<Layout>,
    want: Range<u64>,
    digest: Digest,
) -> ByteStream {
    if want.is_empty() {
        return stream::empty().boxed();
    }
    let (frames, covered) = layout.locate(want.clone());
    let skip = covered.start - base;
    let frame_size = layout.header().frame_size();
    let split = FrameSplitter {
        input: stored,
        chunks: VecDeque::new(),
        buffered: 0,
        skip,
        layout: layout.clone(),
        frames: frames.clone(),
        digest: digest.clone(),
    };
    stream::unfold(split, FrameSplitter::next_frame)
        .map(move |item| {
            let layout = layout.clone();
            let digest = digest.clone();
            async move {
                let (index, stored) = item?;
                // A raw frame under a checksum is a slice of what was read, checked on
                // this thread (a CRC-32 of at most a frame: microseconds, less than a
                // hand-off to the blocking pool and back); others are opened there.
                if let Some(logical) = layout
                    .open_in_place(index, &stored)
                    .map_err(|e| name_blob(e, &digest))?
                {
                    return Ok((index, logical));
                }
                tokio::task::spawn_blocking(move || {
                    layout
                        .open(index, &stored)
                        .map(|logical| (index, Bytes::from(logical)))
                        .map_err(|e| name_blob(e, &digest))
                })
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Storage,
                        format!("opening a frame: task failed: {e}"),
                    )
                })?
            }
        })
        .buffered(FRAMES_IN_FLIGHT)
        .map(move |opened| {
            let (index, logical) = opened?;
            let start = index as u64 * frame_size;
            let from = want.start.saturating_sub(start) as usize;
            let to = (want.end - start).min(logical.len() as u64) as usize;
            Ok(logical.slice(from..to))
        })
        .boxed()
}

/// Cuts a stream of stored bytes into the frames it holds: slices of the chunks when a
/// frame lies within one (no copy), joined only when a frame spans chunks.
struct FrameSplitter {
    input: ByteStream,
    /// Received bytes not yet handed out, in order.
    chunks: VecDeque<Bytes>,
    buffered: usize,
    skip: u64,
    layout: Arc<Layout>,
    frames: Range<usize>,
    digest: Digest,
}

impl FrameSplitter {
    async fn next_frame(mut self) -> Option<(Result<(usize, Bytes)>, Self)> {
        let index = self.frames.next()?;
        let len = {
            let range = self.layout.frame_range(index);
            (range.end - range.start) as usize
        };
        while self.skip > 0 || self.buffered < len {
            match self.input.next().await {
                Some(Ok(mut chunk)) => {
                    let dropped = self.skip.min(chunk.len() as u64);
                    self.skip -= dropped;
                    let _ = chunk.split_to(dropped as usize);
                    if !chunk.is_empty() {
                        self.buffered += chunk.len();
                        self.chunks.push_back(chunk);
                    }
                }
                Some(Err(e)) => {
                    self.frames = 0..0;
                    return Some((Err(e), self));
                }
                None => {
                    self.frames = 0..0;
                    let err = corrupt(
                        &self.digest,
                        format!("the object ends inside frame {index}"),
                    );
                    return Some((Err(err), self));
                }
            }
        }
        self.buffered -= len;
        let front = self
            .chunks
            .front_mut()
            .expect("buffered bytes are in chunks");
        let frame = if front.len() >= len {
            let frame = front.split_to(len);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            frame
        } else {
            let mut joined = BytesMut::with_capacity(len);
            while joined.len() < len {
                let front = self
                    .chunks
                    .front_mut()
                    .expect("buffered bytes are in chunks");
                let take = (len - joined.len()).min(front.len());
                joined.extend_from_slice(&front.split_to(take));
                if front.is_empty() {
                    self.chunks.pop_front();
                }
            }
            joined.freeze()
        };
        Some((Ok((index, frame)), self))
    }
}

fn corrupt(digest: &Digest, what: String) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!("stored blob {digest} is corrupt: {what}"),
    )
}

/// Names the blob in a codec error.
fn name_blob(e: Error, digest: &Digest) -> Error {
    Error::new(e.kind(), format!("blob {digest}: {}", e.message()))
}
