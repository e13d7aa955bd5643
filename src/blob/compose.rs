//! Publishing a staged write without moving its bytes through this process.
//!
//! A write checkpointed into several parts is published as one object. Without help
//! from the backend that means reading every part back and writing it again: the
//! whole blob crosses the process twice. A [`Composer`] asks the backend to do the join
//! itself:
//!
//! - [`LocalComposer`] (local filesystem): the parts are copied into one new file by
//!   the kernel (`copy_file_range`: extents are shared on filesystems with reflinks,
//!   copied in the page cache elsewhere), synced, and renamed into place;
//! - `S3Composer` (feature `s3`): a multipart upload whose parts are server-side
//!   copies of the staged objects (`UploadPartCopy`). Only staged objects smaller than
//!   S3's minimum part (with the head of the next object, to fill a part) are fetched
//!   and sent again, in parts under twice the minimum, a few at a time.
//!
//! A composer also publishes a single staged object larger than a rename can move: S3
//! renames by `CopyObject`, which refuses sources over 5 GiB.
//!
//! Either way the published object appears whole or not at all, and the staged parts
//! stay where they are (the writer discards the staging area once the blob is
//! published, and upload expiry sweeps what a crash leaves; on S3 an interrupted
//! multipart upload is left to the bucket's lifecycle rule).

mod local;
#[cfg(feature = "s3")]
mod plan;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
mod s3_xml;

pub use self::local::LocalComposer;
#[cfg(feature = "s3")]
pub use self::s3::{
    S3_MAX_COPY_PART, S3_MAX_PARTS, S3_MIN_PART, S3Composer, S3ComposerConfig, S3Credentials,
};

use std::fmt;

use async_trait::async_trait;
use object_store::path::Path;

use crate::error::Result;

/// One staged object to compose: its path in the blob store's object store, and the
/// bytes of it that belong to the write (a longer object is read only to `len`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// Where the object is, relative to the blob store's object store.
    pub path: Path,
    /// The bytes of it that belong to the write.
    pub len: u64,
}

/// Joins staged objects into a published one inside the backend.
#[async_trait]
pub trait Composer: Send + Sync + fmt::Debug {
    /// The largest single staged object a rename can publish here; a larger one is
    /// composed instead. `u64::MAX` where renames have no limit.
    fn rename_limit(&self) -> u64;

    /// Writes `target` as `parts` end to end. The target appears whole or not at all,
    /// and replaces an object already there (content addressing makes it identical).
    /// The parts are left in place.
    async fn compose(&self, parts: &[StagedObject], target: &Path) -> Result<()>;
}
