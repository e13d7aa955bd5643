//! Writing the at-rest format: logical bytes in, stored bytes out, a frame at a time.

use super::cipher::{DataKey, Sealer};
use super::{
    FOOTER_FIXED_LEN, FOOTER_MAGIC, FRAME_PREFIX_LEN, FRAME_SIZE_RANGE, Header, NAME_LEN, Sealing,
};
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
    /// Full frames known not to be the last, waiting to be sealed together.
    batch: Vec<Vec<u8>>,
    /// Frames handed to sealing jobs so far (accepted or not).
    issued: u64,
    compressors: Compressors,
    /// Threads that seal a batch at once (frames are independent).
    workers: usize,
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
                ErrorKind::InvalidArgument,
                format!("frame size {frame_size} is not a power of two from 64 KiB to 64 MiB"),
            ));
        }
        let header = Header {
            sealing: if key.is_some() {
                Sealing::Encrypted
            } else {
                Sealing::Checksums
            },
            frame_size_log2: log2 as u8,
            salt,
        };
        Ok(Self {
            sealer: Sealer::new(&header, key)?,
            header,
            compression,
            precompressed: None,
            pending: vec![0; FRAME_PREFIX_LEN],
            batch: Vec::new(),
            issued: 0,
            compressors: Compressors::default(),
            workers: default_workers(),
            frame_lens: Vec::new(),
            logical: 0,
        })
    }

    /// An unencrypted encoder whose object will name its blob (see the format's docs):
    /// finish it with [`FrameEncoder::finish_named`].
    pub fn new_named(frame_size: usize, compression: Compression, salt: [u8; 16]) -> Result<Self> {
        let mut encoder = Self::new(frame_size, compression, None, salt)?;
        encoder.header.sealing = Sealing::NamedChecksums;
        encoder.sealer = Sealer::new(&encoder.header, None)?;
        Ok(encoder)
    }

    /// Seals frames on at most `workers` threads at once (default: the machine's cores,
    /// at most 8). The output does not depend on it.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The object's first bytes.
    pub fn header(&self) -> [u8; super::HEADER_LEN] {
        self.header.encode()
    }

    /// Logical bytes per frame.
    pub fn frame_size(&self) -> usize {
        self.header.frame_size() as usize
    }

    /// Takes more logical bytes; returns the stored bytes of the frames they completed.
    /// A full frame is held until more bytes come, since only then is it known not to be
    /// the last; full frames are sealed in batches of two per worker, so at most that
    /// many frames of logical bytes are held.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.push_frames(data).concat()
    }

    /// [`FrameEncoder::push`], each sealed frame its own buffer (no copy joins them).
    pub fn push_frames(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.fill(data);
        let mut out = Vec::new();
        while let Some(job) = self.take_job(false) {
            out.extend(self.accept(job.run()));
        }
        out
    }

    /// Takes more logical bytes without sealing anything: full frames wait for the
    /// crate's sealing jobs (`take_job`), for callers that seal on other threads while
    /// they go on filling.
    pub fn fill(&mut self, mut data: &[u8]) {
        if self.precompressed.is_none() && !data.is_empty() {
            self.precompressed = Some(
                COMPRESSED_MAGICS
                    .iter()
                    .any(|magic| data.starts_with(magic)),
            );
        }
        self.logical += data.len() as u64;
        while !data.is_empty() {
            if self.pending_len() == self.frame_size() {
                let fresh = self.fresh_frame();
                let frame = std::mem::replace(&mut self.pending, fresh);
                self.batch.push(frame);
            }
            let room = self.frame_size() - self.pending_len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.pending.extend_from_slice(now);
            data = rest;
        }
    }

    /// The waiting full frames, to seal on any thread ([`SealJob::run`]) and hand back
    /// to [`FrameEncoder::accept`] in the order taken: once two per worker wait, or, with
    /// `all`, whatever waits.
    pub(crate) fn take_job(&mut self, all: bool) -> Option<SealJob> {
        let ready = if all {
            !self.batch.is_empty()
        } else {
            self.batch.len() >= 2 * self.workers
        };
        if !ready {
            return None;
        }
        let frames = std::mem::take(&mut self.batch);
        let first = self.issued;
        self.issued += frames.len() as u64;
        Some(SealJob {
            sealer: self.sealer.clone(),
            level: self.frame_compression(),
            first,
            frames,
            workers: self.workers,
            compressors: self.compressors.clone(),
        })
    }

    /// Records frames sealed by a job and returns their stored bytes.
    ///
    /// # Panics
    ///
    /// If jobs come back out of the order they were taken in.
    pub(crate) fn accept(&mut self, sealed: SealedFrames) -> Vec<Vec<u8>> {
        assert_eq!(
            sealed.first,
            self.frame_lens.len() as u64,
            "sealed frames are accepted in the order their jobs were taken"
        );
        for frame in &sealed.frames {
            self.frame_lens.push(frame.len() as u32);
        }
        sealed.frames
    }

    /// Logical bytes in the frame being filled.
    fn pending_len(&self) -> usize {
        self.pending.len() - FRAME_PREFIX_LEN
    }

    /// An empty frame buffer: room for the prefix, a frame of content and the tag, so
    /// sealing happens in place.
    fn fresh_frame(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(FRAME_PREFIX_LEN + self.frame_size() + 16);
        frame.resize(FRAME_PREFIX_LEN, 0);
        frame
    }

    fn frame_compression(&self) -> Option<i32> {
        match self.compression {
            Compression::Zstd { level } if self.precompressed != Some(true) => Some(level),
            _ => None,
        }
    }

    /// Seals whatever waits, here, and appends it to `out`.
    fn seal_batch(&mut self, out: &mut Vec<Vec<u8>>) {
        if let Some(job) = self.take_job(true) {
            out.extend(self.accept(job.run()));
        }
    }

    /// Seals the last frame and appends the footer; returns their stored bytes. A named
    /// object finished this way names no blob.
    pub fn finish(self) -> Vec<u8> {
        self.finish_named([0; NAME_LEN])
    }

    /// [`FrameEncoder::finish`] for an object that names its blob: `name` is the first
    /// [`NAME_LEN`] bytes of the hash in its digest. Ignored unless the encoder was made
    /// with [`FrameEncoder::new_named`].
    pub fn finish_named(mut self, name: [u8; NAME_LEN]) -> Vec<u8> {
        let name = if self.header.named() {
            name
        } else {
            [0; NAME_LEN]
        };
        let mut out = Vec::new();
        self.seal_batch(&mut out);
        assert_eq!(
            self.issued,
            self.frame_lens.len() as u64,
            "every sealing job is accepted before the encoding finishes"
        );
        let last = std::mem::take(&mut self.pending);
        let index = self.frame_lens.len() as u64;
        let level = self.frame_compression();
        let mut own = self.compressors.take(level);
        let sealed = seal_frame(&self.sealer, own.as_mut(), index, true, last);
        self.frame_lens.push(sealed.len() as u32);
        out.push(sealed);
        let mut body = Vec::with_capacity(self.frame_lens.len() * 4 + 16);
        for len in &self.frame_lens {
            body.extend_from_slice(&len.to_le_bytes());
        }
        body.extend_from_slice(&self.logical.to_le_bytes());
        body.extend_from_slice(&(self.frame_lens.len() as u64).to_le_bytes());
        let tag = self.sealer.footer_tag(&body, name);
        let footer_len = (body.len() - 16 + FOOTER_FIXED_LEN) as u32;
        let mut footer = body;
        footer.extend_from_slice(&tag);
        footer.extend_from_slice(&footer_len.to_le_bytes());
        footer.extend_from_slice(FOOTER_MAGIC);
        out.push(footer);
        out.concat()
    }

    /// Logical bytes taken so far.
    pub fn logical_len(&self) -> u64 {
        self.logical
    }

    /// Seals every held frame known not to be the last and returns their stored bytes.
    /// Afterwards at most one frame of logical bytes is held ([`FrameEncoder::held`]):
    /// what a checkpoint must keep besides the stored bytes.
    pub fn flush(&mut self) -> Vec<u8> {
        self.flush_frames().concat()
    }

    /// [`FrameEncoder::flush`], each sealed frame its own buffer.
    pub fn flush_frames(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.pending_len() == 0
            && let Some(last) = self.batch.pop()
        {
            self.pending = last;
        }
        self.seal_batch(&mut out);
        out
    }

    /// The logical bytes not yet sealed (all of them right after [`FrameEncoder::flush`]).
    pub fn held(&self) -> &[u8] {
        &self.pending[FRAME_PREFIX_LEN..]
    }

    /// Stored lengths of the frames sealed so far.
    pub fn frame_lens(&self) -> &[u32] {
        &self.frame_lens
    }

    /// The snapshot [`FrameEncoder::resume`] continues from, taken right after
    /// [`FrameEncoder::flush`].
    pub fn snapshot(&self) -> EncoderSnapshot {
        EncoderSnapshot {
            header: self.header,
            compression: self.compression,
            precompressed: self.precompressed,
            frame_lens: self.frame_lens.clone(),
        }
    }

    /// Continues an encoding from `snapshot`, with the `held` logical bytes that were not
    /// sealed yet, under the same `key`.
    pub fn resume(snapshot: EncoderSnapshot, key: Option<&DataKey>, held: Vec<u8>) -> Result<Self> {
        let header = snapshot.header;
        if held.len() as u64 > header.frame_size() {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "an unfinished encoding holds {} bytes, more than a frame of {}",
                    held.len(),
                    header.frame_size()
                ),
            ));
        }
        let logical = snapshot.frame_lens.len() as u64 * header.frame_size() + held.len() as u64;
        let mut pending = Vec::with_capacity(FRAME_PREFIX_LEN + header.frame_size() as usize + 16);
        pending.resize(FRAME_PREFIX_LEN, 0);
        pending.extend_from_slice(&held);
        Ok(Self {
            sealer: Sealer::new(&header, key)?,
            header,
            compression: snapshot.compression,
            precompressed: snapshot.precompressed,
            pending,
            batch: Vec::new(),
            issued: snapshot.frame_lens.len() as u64,
            compressors: Compressors::default(),
            workers: default_workers(),
            frame_lens: snapshot.frame_lens,
            logical,
        })
    }
}

/// Where an encoding stands after [`FrameEncoder::flush`]: enough, with the held bytes
/// and the data key, to continue it in another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSnapshot {
    /// The object's header.
    pub header: Header,
    /// How frames are compressed.
    pub compression: Compression,
    /// Whether the content was found to be compressed already (`None`: no bytes yet).
    pub precompressed: Option<bool>,
    /// Stored lengths of the frames sealed so far.
    pub frame_lens: Vec<u32>,
}

/// Full frames detached from a [`FrameEncoder`] to be sealed on any thread.
#[derive(Debug)]
pub(crate) struct SealJob {
    sealer: Sealer,
    level: Option<i32>,
    first: u64,
    frames: Vec<Vec<u8>>,
    workers: usize,
    compressors: Compressors,
}

/// What a [`SealJob`] produced, for [`FrameEncoder::accept`].
#[derive(Debug)]
pub(crate) struct SealedFrames {
    first: u64,
    frames: Vec<Vec<u8>>,
}

impl SealJob {
    /// Compresses where it helps and seals every frame, on up to the encoder's worker
    /// count of threads.
    pub(crate) fn run(self) -> SealedFrames {
        let Self {
            sealer,
            level,
            first,
            frames,
            workers,
            compressors,
        } = self;
        let compressors = &compressors;
        let sealer = &sealer;
        let sealed: Vec<Vec<u8>> = if workers <= 1 || frames.len() <= 1 {
            let mut own = compressors.take(level);
            let sealed = frames
                .into_iter()
                .enumerate()
                .map(|(i, f)| seal_frame(sealer, own.as_mut(), first + i as u64, false, f))
                .collect();
            compressors.give(own);
            sealed
        } else {
            let per_worker = frames.len().div_ceil(workers);
            let mut frames = frames.into_iter();
            let chunks: Vec<Vec<Vec<u8>>> = (0..workers)
                .map(|_| frames.by_ref().take(per_worker).collect::<Vec<_>>())
                .filter(|chunk| !chunk.is_empty())
                .collect();
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunks
                    .into_iter()
                    .enumerate()
                    .map(|(c, chunk)| {
                        scope.spawn(move || {
                            let mut compressor = compressors.take(level);
                            let sealed = chunk
                                .into_iter()
                                .enumerate()
                                .map(|(i, f)| {
                                    let index = first + (c * per_worker + i) as u64;
                                    seal_frame(sealer, compressor.as_mut(), index, false, f)
                                })
                                .collect::<Vec<_>>();
                            compressors.give(compressor);
                            sealed
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("sealing a frame does not panic"))
                    .collect()
            })
        };
        SealedFrames {
            first,
            frames: sealed,
        }
    }
}

/// Sealing threads by default: the machine's cores, at most 8. Asked once: the answer
/// reads cgroup files on Linux, which cost a small write more than its sealing does.
fn default_workers() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(8)))
}

/// Frame `index`, whose content follows [`FRAME_PREFIX_LEN`] spare bytes in `frame`,
/// compressed at `level` where that helps, sealed (in place when stored raw).
fn seal_frame(
    sealer: &Sealer,
    compressor: Option<&mut zstd::bulk::Compressor<'static>>,
    index: u64,
    last: bool,
    mut frame: Vec<u8>,
) -> Vec<u8> {
    match compressor.and_then(|c| compress(c, &frame[FRAME_PREFIX_LEN..])) {
        Some(smaller) => {
            let mut out = Vec::with_capacity(FRAME_PREFIX_LEN + smaller.len() + 16);
            out.resize(FRAME_PREFIX_LEN, 0);
            out.extend_from_slice(&smaller);
            sealer.seal_in_place(index, last, ZSTD, &mut out);
            out
        }
        None => {
            sealer.seal_in_place(index, last, RAW, &mut frame);
            frame
        }
    }
}

/// `content` compressed, if that saves at least 1/32 of it.
fn compress(compressor: &mut zstd::bulk::Compressor<'static>, content: &[u8]) -> Option<Vec<u8>> {
    if content.len() < 64 {
        return None;
    }
    let budget = content.len() - content.len() / 32;
    let mut out = Vec::with_capacity(budget);
    match compressor.compress_to_buffer(content, &mut out) {
        Ok(n) if n < budget => Some(out),
        // Too big for the budget, or any failure: store it raw.
        _ => None,
    }
}

/// zstd contexts kept across batches of one encoding: creating one costs more than
/// compressing a frame of incompressible bytes.
#[derive(Clone, Default)]
struct Compressors(std::sync::Arc<std::sync::Mutex<Vec<zstd::bulk::Compressor<'static>>>>);

impl std::fmt::Debug for Compressors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressors")
    }
}

impl Compressors {
    /// A context for `level` (`None`: no compression). One encoding uses one level.
    fn take(&self, level: Option<i32>) -> Option<zstd::bulk::Compressor<'static>> {
        let level = level?;
        let pooled = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.or_else(|| zstd::bulk::Compressor::new(level).ok())
    }

    fn give(&self, compressor: Option<zstd::bulk::Compressor<'static>>) {
        if let Some(compressor) = compressor {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(compressor);
        }
    }
}
