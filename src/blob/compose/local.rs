//! [`LocalComposer`]: staged parts joined by the kernel on a local filesystem.
//!
//! The parts are copied into one new file in the staging area with `std::io::copy`,
//! which uses `copy_file_range` on Linux: extents are shared on filesystems with
//! reflinks (XFS, btrfs) and copied in the page cache elsewhere, without passing through
//! this process (where the kernel cannot, std falls back to reading and writing). The
//! file is synced, renamed over the target, and the directories from the target's up
//! to the store's root are synced, as a published blob must survive power loss.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path as FsPath, PathBuf};

use async_trait::async_trait;
use object_store::path::Path;

use super::{Composer, StagedObject};
use crate::blob::local_objects::plain_file;
use crate::error::{Error, ErrorKind, Result};

/// Joins staged parts of an `ObjectBlobStore` kept in a local directory (an
/// `object_store::local::LocalFileSystem` rooted at `root`).
#[derive(Debug, Clone)]
pub struct LocalComposer {
    root: PathBuf,
}

impl LocalComposer {
    /// A composer for the object store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The file of the object at `path`. Anything that would need escaping on disk is
    /// refused rather than guessed at.
    fn file(&self, path: &Path) -> Result<PathBuf> {
        plain_file(&self.root, path).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("object path {path} has a part the local composer does not map"),
            )
        })
    }
}

#[async_trait]
impl Composer for LocalComposer {
    fn rename_limit(&self) -> u64 {
        u64::MAX
    }

    async fn compose(&self, parts: &[StagedObject], target: &Path) -> Result<()> {
        let sources = parts
            .iter()
            .map(|part| Ok((self.file(&part.path)?, part.len)))
            .collect::<Result<Vec<_>>>()?;
        let Some((first, _)) = sources.first() else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("composing {target}: no staged parts"),
            ));
        };
        let target_file = self.file(target)?;
        // Beside the first part: inside the staging area, which the writer discards
        // after publishing and upload expiry sweeps after a crash.
        let temp = first.with_file_name(format!(".compose-{}", crate::util::random_id()));
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || join_files(&sources, &temp, &target_file, &root))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Storage,
                    format!("composing {target}: the join task failed: {e}"),
                )
            })?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Storage,
                    format!("composing {target} from {} staged parts: {e}", parts.len()),
                )
                .with_source(e)
            })
    }
}

/// Tries of creating the target's directories and renaming into them.
const RENAME_ATTEMPTS: u32 = 3;

/// Writes `sources` (file, bytes of it) into `temp`, then renames it to `target`
/// durably. `temp` is removed on failure.
fn join_files(
    sources: &[(PathBuf, u64)],
    temp: &FsPath,
    target: &FsPath,
    root: &FsPath,
) -> io::Result<()> {
    let result = write_joined(sources, temp).and_then(|()| publish(temp, target, root));
    if result.is_err() {
        let _ = fs::remove_file(temp);
    }
    result
}

fn write_joined(sources: &[(PathBuf, u64)], temp: &FsPath) -> io::Result<()> {
    let mut out = File::create_new(temp)?;
    for (source, len) in sources {
        let copied = io::copy(&mut File::open(source)?.take(*len), &mut out)?;
        if copied != *len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "staged part {} holds {copied} of its {len} bytes",
                    source.display()
                ),
            ));
        }
    }
    out.sync_all()
}

/// Renames `temp` to `target` durably: creates the target's directories, renames, then
/// syncs the target's directory and each one above it up to `root`. Any of them may be
/// new, made here or by a concurrent publish that has not synced it yet.
fn publish(temp: &FsPath, target: &FsPath, root: &FsPath) -> io::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no directory", target.display())))?;
    let mut attempt = 1;
    loop {
        fs::create_dir_all(dir)?;
        match fs::rename(temp, target) {
            Ok(()) => break,
            // A store with automatic cleanup removes directories a delete left empty,
            // and may take this one between its creation and the rename.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < RENAME_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
    let mut at = Some(dir);
    while let Some(dir) = at {
        File::open(dir)?.sync_all()?;
        at = dir
            .parent()
            .filter(|_| dir != root && dir.starts_with(root));
    }
    Ok(())
}
