//! Where an imported layout's files come from: a directory, or an `oci-archive` (a tar
//! of the layout) on disk. The archive's headers are listed once, seeking past the
//! bodies; each file is then read at its offset, so a blob is read once, only if the
//! import needs it, and memory does not depend on the archive's size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::scan::tar::{EntryKind, TarReader};

/// A readable file of a layout: its bytes and its size.
pub type SourceFile = (Box<dyn Read + Send>, u64);

/// The files of a layout, by their path inside it (`index.json`, `blobs/sha256/…`).
pub trait LayoutSource: Send + Sync {
    /// The file at `path`, or `None` when the layout has none.
    fn open(&self, path: &str) -> io::Result<Option<SourceFile>>;

    /// What the source is, for messages: a path.
    fn describe(&self) -> String;
}

/// Reads all of a small file, refusing one larger than `cap` bytes.
pub fn read_small(
    source: &dyn LayoutSource,
    path: &str,
    cap: usize,
) -> io::Result<Option<Vec<u8>>> {
    let Some((reader, size)) = source.open(path)? else {
        return Ok(None);
    };
    if size > cap as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is {size} bytes, more than the {cap} read"),
        ));
    }
    let mut data = Vec::with_capacity(size as usize);
    reader.take(cap as u64 + 1).read_to_end(&mut data)?;
    Ok(Some(data))
}

/// A layout in a directory.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    root: PathBuf,
}

impl DirectorySource {
    /// The layout in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectorySource { root: root.into() }
    }
}

impl LayoutSource for DirectorySource {
    fn open(&self, path: &str) -> io::Result<Option<SourceFile>> {
        // Layout paths are fixed names and digests: nothing that climbs out of the root.
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            return Ok(None);
        }
        match File::open(self.root.join(path)) {
            Ok(file) => {
                let metadata = file.metadata()?;
                if !metadata.is_file() {
                    return Ok(None);
                }
                Ok(Some((Box::new(file), metadata.len())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// A layout in a tar file (`oci-archive`), listed when opened.
#[derive(Debug)]
pub struct ArchiveSource {
    path: PathBuf,
    /// Each regular file's body: its offset in the archive and its size.
    files: HashMap<String, (u64, u64)>,
}

impl ArchiveSource {
    /// Lists the archive at `path`. A malformed or truncated archive is
    /// [`io::ErrorKind::InvalidData`] naming the offset.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)?;
        let length = file.metadata()?.len();
        let mut reader = TarReader::new(BufReader::with_capacity(64 * 1024, file));
        let mut files = HashMap::new();
        let invalid = |e: crate::scan::tar::TarError| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        };
        loop {
            reader.seek_past_body().map_err(invalid)?;
            let Some(entry) = reader.next_entry().map_err(invalid)? else {
                break;
            };
            let offset = reader.offset();
            if offset + entry.size > length {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: {} ends at byte {} of {length}: the archive is truncated",
                        path.display(),
                        entry.path,
                        offset + entry.size
                    ),
                ));
            }
            if entry.kind == EntryKind::File {
                // A later entry of the same name replaces an earlier one, as on extraction.
                files.insert(entry.path, (offset, entry.size));
            }
        }
        Ok(ArchiveSource { path, files })
    }

    /// The paths of the archive's regular files, in no order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

impl LayoutSource for ArchiveSource {
    fn open(&self, path: &str) -> io::Result<Option<SourceFile>> {
        let Some(&(offset, size)) = self.files.get(path) else {
            return Ok(None);
        };
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Some((Box::new(file.take(size)), size)))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
