//! Moving images in and out of a registry: the formats, without the registry.
//!
//! - [`layout`]: the OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`)
//!   and how its `org.opencontainers.image.ref.name` annotations map to tags.
//! - [`source`]: where a layout's files are read from: a directory, or a tar file
//!   (`oci-archive`) indexed once and then read at its entries' offsets.
//! - [`sink`]: where an exported layout's files go: a directory (each file written
//!   aside and renamed into place, `index.json` last) or a tar stream.
//! - [`tar_writer`]: writing tar archives (ustar headers, PAX records for long names and
//!   large sizes).
//!
//! The registry drives these (`Registry::import_layout`, `Registry::export_layout`);
//! everything here is synchronous I/O, which the registry runs on blocking threads.

pub mod docker_archive;
pub mod layout;
pub mod sink;
pub mod source;
pub mod tar_writer;

/// Told how a long transfer advances, to draw a progress bar or log.
pub trait Progress: Send + Sync {
    /// The work ahead, once known: blobs to move and their bytes (those already at the
    /// destination not counted).
    fn planned(&self, blobs: usize, bytes: u64);

    /// `bytes` more moved.
    fn advanced(&self, bytes: u64);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn planned(&self, _blobs: usize, _bytes: u64) {}

    fn advanced(&self, _bytes: u64) {}
}
