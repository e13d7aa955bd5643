//! [`AtRest`]: how a write is kept at rest, and which keys a read may use.

use crate::codec::Compression;

/// How new blobs are stored, and which key-encryption keys (KEKs) reads may unwrap data
/// keys through. A registry derives one per repository from its settings.
///
/// Blobs keep whatever form they were written in: changing these settings affects new
/// writes only, and reads accept every form.
///
/// ```
/// use wharf::{AtRest, codec::Compression};
///
/// let tenant = AtRest::encrypted("tenant-a");
/// assert_eq!(tenant.compression, Compression::Zstd { level: 1 });
/// assert_eq!(tenant.read_keks().collect::<Vec<_>>(), ["tenant-a"]);
/// assert!(AtRest::plain().is_plain());
/// assert!(!AtRest::uncompressed().is_plain());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRest {
    /// Frame compression for new writes.
    pub compression: Compression,
    /// The KEK new writes' data keys are wrapped under; `None` writes unencrypted.
    pub encryption: Option<String>,
    /// Further KEKs reads may unwrap through, after `encryption`'s: the old key of a
    /// rotation in progress.
    pub also_read_with: Vec<String>,
    /// Whether new writes that are neither compressed nor encrypted are still kept in
    /// frames, with checksums and the blob's name (the default): a full read then checks
    /// CRC-32s instead of hashing the blob again. `false` keeps them exactly as received,
    /// hashed on every full read. Compressed or encrypted writes are always framed.
    pub framed: bool,
}

impl Default for AtRest {
    /// Compressed where it helps, not encrypted.
    fn default() -> Self {
        Self {
            compression: Compression::default(),
            encryption: None,
            also_read_with: Vec::new(),
            framed: true,
        }
    }
}

impl AtRest {
    /// Stored as received: no framing, compression or encryption.
    pub fn plain() -> Self {
        Self {
            compression: Compression::Off,
            framed: false,
            ..Self::default()
        }
    }

    /// Neither compressed nor encrypted, in checksummed frames that name the blob.
    pub fn uncompressed() -> Self {
        Self {
            compression: Compression::Off,
            ..Self::default()
        }
    }

    /// Compressed where it helps and encrypted under `kek`.
    pub fn encrypted(kek: impl Into<String>) -> Self {
        Self {
            encryption: Some(kek.into()),
            ..Self::default()
        }
    }

    /// Whether new writes are stored exactly as received.
    pub fn is_plain(&self) -> bool {
        self.compression == Compression::Off && self.encryption.is_none() && !self.framed
    }

    /// The KEKs a read tries, in order.
    pub fn read_keks(&self) -> impl Iterator<Item = &str> {
        self.encryption
            .iter()
            .chain(&self.also_read_with)
            .map(String::as_str)
    }
}
