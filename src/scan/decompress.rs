//! A layer's bytes as a tar stream: the decompressor its media type names, behind limits
//! that stop a decompression bomb.
//!
//! Layers are gzip (OCI `tar+gzip`, Docker `rootfs.diff.tar.gzip`), zstd (`tar+zstd`) or
//! plain tar. Any other media type is not a filesystem layer (an artifact's blob, a Wasm
//! module): the image is reported unsupported, not failed. Both compressors allow several
//! concatenated frames (pigz, parallel zstd), and both are read to the end.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

impl LayerCompression {
    /// The compression a layer media type names, or `None` when the media type is not a
    /// filesystem layer.
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(LayerCompression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(LayerCompression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(LayerCompression::Zstd),
            _ => None,
        }
    }
}

/// Bounds on what one layer may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpansionLimits {
    /// The most bytes a layer may decompress to.
    pub max_bytes: u64,
    /// The most a layer may expand relative to its compressed bytes read so far, checked
    /// once it has produced more than [`ExpansionLimits::ratio_floor`] bytes.
    pub max_ratio: u64,
    /// Output below which the ratio is not checked (small, very compressible layers are
    /// honest: a layer of empty files expands a thousandfold).
    pub ratio_floor: u64,
}

impl Default for ExpansionLimits {
    fn default() -> Self {
        ExpansionLimits {
            max_bytes: 64 << 30,
            max_ratio: 1024,
            ratio_floor: 256 << 20,
        }
    }
}

/// Counts the compressed bytes a decompressor pulls.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.inner.read(buf)?;
        self.count.fetch_add(got as u64, Ordering::Relaxed);
        Ok(got)
    }
}

/// The decompressed stream, stopped with an error when it breaks an [`ExpansionLimits`].
pub struct Expanded {
    decoder: Box<dyn Read + Send>,
    compressed: Arc<AtomicU64>,
    produced: u64,
    limits: ExpansionLimits,
}

impl std::fmt::Debug for Expanded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expanded")
            .field("produced", &self.produced)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Expanded {
    /// Decompresses `compressed` as `compression` says, within `limits`.
    pub fn new(
        compressed: Box<dyn Read + Send>,
        compression: LayerCompression,
        limits: ExpansionLimits,
    ) -> io::Result<Self> {
        let count = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: compressed,
            count: count.clone(),
        };
        let decoder: Box<dyn Read + Send> = match compression {
            LayerCompression::None => Box::new(counted),
            LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                io::BufReader::with_capacity(64 * 1024, counted),
            )),
            LayerCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(counted)?),
        };
        Ok(Expanded {
            decoder,
            compressed: count,
            produced: 0,
            limits,
        })
    }

    /// Decompressed bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Compressed bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }
}

impl Read for Expanded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.decoder.read(buf)?;
        self.produced += got as u64;
        let limits = self.limits;
        if self.produced > limits.max_bytes {
            return Err(io::Error::other(format!(
                "decompression bomb: the layer expands past {} bytes",
                limits.max_bytes
            )));
        }
        let consumed = self.consumed().max(1);
        if self.produced > limits.ratio_floor && self.produced / consumed > limits.max_ratio {
            return Err(io::Error::other(format!(
                "decompression bomb: {} bytes from {consumed} compressed, more than {}:1",
                self.produced, limits.max_ratio
            )));
        }
        Ok(got)
    }
}
