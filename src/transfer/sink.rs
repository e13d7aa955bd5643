//! Where an exported layout's files go.
//!
//! - [`DirectorySink`]: a directory. `oci-layout` first; each blob written under a
//!   temporary name, synced and renamed into place, so a blob file that exists is
//!   whole (an interrupted export resumes, skipping them); `index.json` last, the same
//!   way, merged with the index already there. Until it is renamed, readers of the
//!   directory see the layout as it was.
//! - [`TarSink`]: a tar stream: an `oci-archive` (`oci-layout`, the blobs, `index.json`)
//!   or a `docker save` archive (the blobs, `manifest.json`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::layout::{self, INDEX_FILE, LAYOUT_FILE};
use super::tar_writer::{TarKind, TarWriter};
use crate::digest::Digest;

/// The receiving end of an export, driven from one blocking thread.
pub trait LayoutSink: Send {
    /// Whether the layout already holds the blob whole (an export being resumed).
    fn has_blob(&mut self, digest: &Digest, size: u64) -> io::Result<bool>;

    /// Starts the blob `digest` of `size` bytes; its bytes follow through [`write`](Self::write).
    fn begin_blob(&mut self, digest: &Digest, size: u64) -> io::Result<()>;

    /// Writes bytes of the current blob.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;

    /// Ends the current blob.
    fn end_blob(&mut self) -> io::Result<()>;

    /// The `index.json` already there, if any, to merge the exported entries into.
    fn existing_index(&mut self) -> io::Result<Option<Vec<u8>>>;

    /// Writes `index.json` and ends the layout.
    fn finish(&mut self, index: &[u8]) -> io::Result<()>;
}

/// A layout in a directory, created if missing.
#[derive(Debug)]
pub struct DirectorySink {
    root: PathBuf,
    current: Option<(File, PathBuf, PathBuf)>,
}

impl DirectorySink {
    /// A sink into `root`: creates it and its `oci-layout` if missing; refuses a
    /// directory that holds files but no `oci-layout` (not a layout: nothing is written
    /// into it).
    pub fn create(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root)?;
        let marker = root.join(LAYOUT_FILE);
        if marker.exists() {
            let found = fs::read(&marker)?;
            layout::check_layout_file(&found)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        } else {
            if fs::read_dir(&root)?.next().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is neither empty nor an OCI image layout",
                        root.display()
                    ),
                ));
            }
            write_atomically(&root, LAYOUT_FILE, &layout::layout_file())?;
        }
        Ok(DirectorySink {
            root,
            current: None,
        })
    }
}

impl LayoutSink for DirectorySink {
    fn has_blob(&mut self, digest: &Digest, size: u64) -> io::Result<bool> {
        match fs::metadata(self.root.join(layout::blob_path(digest))) {
            Ok(metadata) => Ok(metadata.is_file() && metadata.len() == size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn begin_blob(&mut self, digest: &Digest, _size: u64) -> io::Result<()> {
        let target = self.root.join(layout::blob_path(digest));
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        let staged = dir.join(format!(".{}.{}.partial", digest.hex(), std::process::id()));
        let file = File::create(&staged)?;
        self.current = Some((file, staged, target));
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.current {
            Some((file, _, _)) => file.write_all(data),
            None => Err(io::Error::other("a blob written before it was begun")),
        }
    }

    fn end_blob(&mut self) -> io::Result<()> {
        let Some((file, staged, target)) = self.current.take() else {
            return Err(io::Error::other("a blob ended before it was begun"));
        };
        file.sync_all()?;
        drop(file);
        fs::rename(&staged, &target)
    }

    fn existing_index(&mut self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.root.join(INDEX_FILE)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn finish(&mut self, index: &[u8]) -> io::Result<()> {
        // The blobs' directories first, so that the index never names a blob a power
        // loss could take back.
        for entry in fs::read_dir(self.root.join("blobs"))? {
            sync_dir(&entry?.path())?;
        }
        write_atomically(&self.root, INDEX_FILE, index)
    }
}

impl Drop for DirectorySink {
    fn drop(&mut self) {
        // A blob begun and never ended leaves no partial file behind.
        if let Some((_, staged, _)) = self.current.take() {
            let _ = fs::remove_file(staged);
        }
    }
}

/// Writes `name` in `dir` under a temporary name, syncs it, renames it into place and
/// syncs the directory.
fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let staged = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let mut file = File::create(&staged)?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&staged, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A layout written as a tar stream: an `oci-archive`, or the blobs and `manifest.json`
/// of a `docker save` archive.
#[derive(Debug)]
pub struct TarSink<W: Write> {
    tar: Option<TarWriter<W>>,
    /// The stream, once the archive is finished.
    finished: Option<W>,
    /// The blob directories written so far (`blobs/sha256/`, …).
    directories: Vec<String>,
    /// The file [`LayoutSink::finish`] writes: `index.json` or `manifest.json`.
    index_file: &'static str,
}

impl<W: Write + Send> TarSink<W> {
    /// An `oci-archive` onto `out`; `oci-layout` is written at once.
    pub fn new(out: W) -> io::Result<Self> {
        let mut tar = TarWriter::new(out);
        tar.file(LAYOUT_FILE, &layout::layout_file())?;
        Self::with_blobs(tar, INDEX_FILE)
    }

    /// A `docker save` archive onto `out`: blobs under `blobs/<alg>/<hex>` (as Docker 25
    /// and later name them), and `manifest.json` from [`LayoutSink::finish`].
    pub fn docker(out: W) -> io::Result<Self> {
        Self::with_blobs(TarWriter::new(out), super::docker_archive::MANIFEST_FILE)
    }

    fn with_blobs(mut tar: TarWriter<W>, index_file: &'static str) -> io::Result<Self> {
        tar.begin("blobs", TarKind::Directory, 0)?;
        Ok(TarSink {
            tar: Some(tar),
            finished: None,
            directories: Vec::new(),
            index_file,
        })
    }

    /// The stream, once [`LayoutSink::finish`] has ended the archive.
    pub fn into_inner(self) -> Option<W> {
        self.finished
    }

    fn tar(&mut self) -> io::Result<&mut TarWriter<W>> {
        self.tar
            .as_mut()
            .ok_or_else(|| io::Error::other("the archive is already finished"))
    }
}

impl<W: Write + Send> LayoutSink for TarSink<W> {
    fn has_blob(&mut self, _digest: &Digest, _size: u64) -> io::Result<bool> {
        Ok(false)
    }

    fn begin_blob(&mut self, digest: &Digest, size: u64) -> io::Result<()> {
        let directory = format!("blobs/{}", digest.algorithm().as_str());
        if !self.directories.contains(&directory) {
            self.tar()?.begin(&directory, TarKind::Directory, 0)?;
            self.directories.push(directory);
        }
        self.tar()?
            .begin(&layout::blob_path(digest), TarKind::File, size)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.tar()?.write_body(data)
    }

    fn end_blob(&mut self) -> io::Result<()> {
        self.tar()?.end()
    }

    fn existing_index(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
    }

    fn finish(&mut self, index: &[u8]) -> io::Result<()> {
        let mut tar = self
            .tar
            .take()
            .ok_or_else(|| io::Error::other("the archive is already finished"))?;
        tar.file(self.index_file, index)?;
        self.finished = Some(tar.finish()?);
        Ok(())
    }
}
