//! [`LocalComposer`]: staged parts joined by the kernel on a local filesystem.
//!
//! The parts are copied into one new file in the staging area with `copy_file_range`
//! (through `std::io::copy`), which shares extents on filesystems with reflinks (XFS,
//! btrfs) and copies in the page cache elsewhere: no byte passes through this process.
//! The file is synced, renamed over the target, and the target's directory is synced,
//! as a published blob must survive power loss.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path as FsPath, PathBuf};

use async_trait::async_trait;
use object_store::path::Path;

use super::{Composer, StagedObject};
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

    /// The file of the object at `path`. Blob store paths are made of hex digests, ids
    /// and fixed names; anything that would need escaping on disk is refused rather
    /// than guessed at.
    fn file(&self, path: &Path) -> Result<PathBuf> {
        let mut file = self.root.clone();
        for part in path.parts() {
            let part = part.as_ref();
            let plain = !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plain {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("object path {path} has a part the local composer does not map"),
                ));
            }
            file.push(part);
        }
        Ok(file)
    }
}

#[async_trait]
impl Composer for LocalComposer {
    fn rename_limit(&self) -> u64 {
        u64::MAX
    }

    async fn compose(&self, parts: &[StagedObject], target: &Path) -> Result<()> {
        let Some(first) = parts.first() else {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("composing {target}: no staged parts"),
            ));
        };
        let sources = parts
            .iter()
            .map(|part| Ok((self.file(&part.path)?, part.len)))
            .collect::<Result<Vec<_>>>()?;
        let target_file = self.file(target)?;
        // Beside the first part: inside the staging area, which the writer discards
        // after publishing and upload expiry sweeps after a crash.
        let temp = self
            .file(&first.path)?
            .with_file_name(format!(".compose-{}", crate::util::random_id()));
        tokio::task::spawn_blocking(move || join_files(&sources, &temp, &target_file))
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

/// Writes `sources` (file, bytes of it) into `temp`, then renames it to `target`
/// durably. `temp` is removed on failure.
fn join_files(sources: &[(PathBuf, u64)], temp: &FsPath, target: &FsPath) -> io::Result<()> {
    let result = write_joined(sources, temp).and_then(|()| publish(temp, target));
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

/// Renames `temp` to `target`, creating and syncing the directories on the way.
fn publish(temp: &FsPath, target: &FsPath) -> io::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no directory", target.display())))?;
    create_dirs_durably(dir)?;
    fs::rename(temp, target)?;
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing ancestors, syncing the parent of each one created so
/// the new entries survive power loss.
fn create_dirs_durably(dir: &FsPath) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent", dir.display())))?;
    create_dirs_durably(parent)?;
    match fs::create_dir(dir) {
        // Made by another publish meanwhile, which may not have synced it yet.
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    File::open(parent)?.sync_all()
}
