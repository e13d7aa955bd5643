//! [`LocalObjects`]: blobs in a local directory, as an object store.
//!
//! It is `object_store`'s `LocalFileSystem`, which hands every call to tokio's blocking
//! pool, with two kinds of call answered on the caller's thread instead: the lookup of
//! an object's metadata (a `stat`), the read of a small range (at most
//! [`INLINE_READ_LIMIT`] bytes, such as an encoded blob's header) and the listing of a
//! directory that does not exist. Each takes a few microseconds from the page cache,
//! less than the hand-off to another thread and back costs (two context switches, and a
//! wake-up of the runtime), and they are on the hot path of every blob HEAD, GET and
//! publish. Anything that can wait on the device for
//! long (writes, syncs, renames, deletes, listings, large reads) stays on the blocking
//! pool.
//!
//! The price: a lookup or small read that misses the page cache waits for the device on
//! the caller's thread (one read of a directory or inode block, or of up to 64 KiB),
//! which on a single-threaded runtime holds up every other request meanwhile. A
//! registry's hot metadata and blob headers are small and stay cached; a store on slow
//! disks with a cold cache is where this shows.
//!
//! Only paths whose every part maps to a file name as it is ([`plain_file`]) are
//! answered inline; the few others go to `LocalFileSystem` like every other call.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use super::compose::{Composer, LocalComposer};
use crate::error::{Error, ErrorKind, Result};

/// The largest range read on the caller's thread; larger ones go to the blocking pool.
pub const INLINE_READ_LIMIT: u64 = 64 * 1024;

/// Blobs kept in the directory `root` (created if need be): a local object store that
/// syncs what it writes (a published blob must survive power loss, not only a crash)
/// and removes directories a delete left empty, with the composer that publishes its
/// staged parts in place.
pub fn local_objects(root: &FsPath) -> Result<(Arc<dyn ObjectStore>, Arc<dyn Composer>)> {
    Ok((
        Arc::new(LocalObjects::new(root)?),
        Arc::new(LocalComposer::new(root)),
    ))
}

/// A local directory as an object store (see the module's docs).
#[derive(Debug)]
pub struct LocalObjects {
    root: PathBuf,
    files: LocalFileSystem,
}

impl std::fmt::Display for LocalObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalObjects({})", self.root.display())
    }
}

impl LocalObjects {
    /// The store kept in `root` (created if need be), syncing what it writes and
    /// removing directories a delete left empty.
    pub fn new(root: &FsPath) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("creating {}: {e}", root.display()),
            )
            .with_source(e)
        })?;
        let files = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| Error::storage(format!("opening {}", root.display()), e))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self {
            root: root.to_owned(),
            files,
        })
    }

    /// The answer to `options` at `location` if it can be given on this thread.
    fn get_inline(
        &self,
        location: &Path,
        options: &GetOptions,
    ) -> Option<object_store::Result<GetResult>> {
        if options.version.is_some() {
            return None;
        }
        let small_range = options.range.as_ref().is_some_and(|range| match range {
            object_store::GetRange::Bounded(r) => {
                r.end.saturating_sub(r.start) <= INLINE_READ_LIMIT
            }
            object_store::GetRange::Suffix(n) => *n <= INLINE_READ_LIMIT,
            object_store::GetRange::Offset(_) => false,
        });
        if !options.head && !small_range {
            return None;
        }
        let file = plain_file(&self.root, location)?;
        Some(read_inline(&file, location, options))
    }
}

/// The file of the object at `path` under `root`, if every part of the path is a file
/// name as it is: ASCII letters, digits, `-`, `_` and `.`, not leading with a dot (which
/// `LocalFileSystem` would escape or refuse). Blob store paths are made of hex digests,
/// ids and fixed names.
pub(super) fn plain_file(root: &FsPath, path: &Path) -> Option<PathBuf> {
    let mut file = root.to_owned();
    for part in path.parts() {
        let part = part.as_ref();
        let plain = !part.starts_with('.')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plain {
            return None;
        }
        file.push(part);
    }
    Some(file)
}

/// What `LocalFileSystem` answers for `options` (a metadata lookup or a small range),
/// read on this thread: the same metadata, errors and preconditions.
fn read_inline(
    file: &FsPath,
    location: &Path,
    options: &GetOptions,
) -> object_store::Result<GetResult> {
    let opened = File::open(file).map_err(|e| open_error(e, location))?;
    let metadata = opened.metadata().map_err(|e| open_error(e, location))?;
    if metadata.is_dir() {
        return Err(open_error(
            io::Error::new(io::ErrorKind::NotFound, "is a directory"),
            location,
        ));
    }
    let meta = object_meta(&metadata, location);
    options.check_preconditions(&meta)?;
    let range = match &options.range {
        Some(range) => range
            .as_range(meta.size)
            .map_err(|e| generic(location, format!("range: {e}")))?,
        None => 0..meta.size,
    };
    let bytes = if options.head {
        Bytes::new()
    } else {
        read_range(&opened, location, range.clone())?
    };
    Ok(GetResult {
        payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
        meta,
        range,
        attributes: Attributes::default(),
        extensions: Default::default(),
    })
}

fn read_range(
    file: &File,
    location: &Path,
    range: std::ops::Range<u64>,
) -> object_store::Result<Bytes> {
    let mut buf = vec![0; (range.end - range.start) as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], range.start + filled as u64) {
            // The file is shorter than its metadata said a moment ago.
            Ok(0) => {
                return Err(generic(
                    location,
                    format!(
                        "read {filled} of the {} bytes asked at {}: the file ended",
                        buf.len(),
                        range.start
                    ),
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(generic(location, format!("reading: {e}"))),
        }
    }
    Ok(buf.into())
}

/// `LocalFileSystem`'s metadata for a file, e-tag included.
fn object_meta(metadata: &Metadata, location: &Path) -> ObjectMeta {
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let micros = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location: location.clone(),
        last_modified: modified.into(),
        size: metadata.len(),
        e_tag: Some(format!(
            "\"{:x}-{micros:x}-{:x}\"",
            metadata.ino(),
            metadata.len()
        )),
        version: None,
    }
}

fn open_error(source: io::Error, location: &Path) -> object_store::Error {
    match source.kind() {
        io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(source),
        },
        _ => generic(location, format!("opening: {source}")),
    }
}

fn generic(location: &Path, message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalObjects",
        source: format!("{location}: {message}").into(),
    }
}

#[async_trait]
impl ObjectStore for LocalObjects {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.files.put_opts(location, payload, options).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.files.put_multipart_opts(location, options).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        match self.get_inline(location, &options) {
            Some(answer) => answer,
            None => self.files.get_opts(location, options).await,
        }
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.files.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.files.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // A directory that is not there lists nothing: said on this thread after a
        // lookup (every new encrypted blob's wraps are listed before any exist).
        let missing = prefix
            .and_then(|p| plain_file(&self.root, p))
            .is_some_and(|dir| {
                matches!(std::fs::symlink_metadata(dir), Err(e) if e.kind() == io::ErrorKind::NotFound)
            });
        if missing {
            return futures::stream::empty().boxed();
        }
        self.files.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.files.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.files.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.files.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.files.rename_opts(from, to, options).await
    }
}
