//! Importing an OCI image layout (a directory or an `oci-archive`) into a repository.
//!
//! Three phases, so that a bad layout leaves nothing visible:
//! 1. The graph: `oci-layout` and `index.json` checked, every manifest reachable from
//!    the selected entries read, checked against its digest and parsed, and every blob
//!    they name pushed (verified against its digest on the way in; one already in the
//!    repository is skipped). A missing or corrupt blob stops the import here, naming it,
//!    before any manifest exists.
//! 2. The manifests, pushed by digest, children before the indexes that list them.
//! 3. The tags: each entry's `ref.name` moves its tag, as a push by tag does.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::Registry;
use super::layout_io::{blocking, file_stream, open_source};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest, ManifestContent};
use crate::reference::{Reference, RepoName, Tag};
use crate::transfer::layout::{self, INDEX_FILE, LAYOUT_FILE, LayoutError};
use crate::transfer::source::{LayoutSource, SourceFile, read_small};
use crate::transfer::{NoProgress, Progress};

/// How deep indexes may nest in an imported layout.
const MAX_DEPTH: usize = 8;

/// Blobs pushed at once during an import.
const PARALLEL_BLOBS: usize = 2;

/// What to import from a layout.
#[derive(Clone)]
pub struct ImportOptions {
    /// Only the entries with these tags; empty: every entry of `index.json`.
    pub tags: Vec<Tag>,
    /// Told the bytes to push and as they are pushed.
    pub progress: Arc<dyn Progress>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            tags: Vec::new(),
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// The entries imported: their digest and tag, in `index.json`'s order.
    pub images: Vec<(Digest, Option<Tag>)>,
    /// Manifests pushed (indexes, images, artifacts).
    pub manifests: usize,
    /// Blobs pushed.
    pub blobs: usize,
    /// Blobs the repository already held.
    pub blobs_present: usize,
    /// Bytes of the blobs pushed.
    pub bytes: u64,
}

/// The graph of an import: manifests in push order and the blobs they name.
#[derive(Default)]
struct Graph {
    manifests: Vec<(Digest, Bytes, String)>,
    blobs: Vec<Descriptor>,
    seen: HashSet<Digest>,
}

impl Registry {
    /// Imports the layout in `source` into `repo` (see the module docs for the order of
    /// work). A layout without `oci-layout` or with an unreadable `index.json` is
    /// [`ErrorKind::ArchiveInvalid`]; a blob it lacks, [`ErrorKind::BlobUnknown`]; a blob
    /// or manifest that does not match its digest, [`ErrorKind::DigestInvalid`].
    pub async fn import_layout(
        &self,
        repo: &RepoName,
        source: Arc<dyn LayoutSource>,
        options: &ImportOptions,
    ) -> Result<ImportReport> {
        let entries = read_entries(&source).await?;
        let selected: Vec<_> = entries
            .into_iter()
            .filter(|e| {
                options.tags.is_empty() || e.tag.as_ref().is_some_and(|t| options.tags.contains(t))
            })
            .collect();
        if let Some(missing) = options
            .tags
            .iter()
            .find(|t| !selected.iter().any(|e| e.tag.as_ref() == Some(*t)))
        {
            return Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!("{} has no entry tagged {missing}", source.describe()),
            ));
        }
        let mut graph = Graph::default();
        for entry in &selected {
            self.read_graph(&source, &entry.descriptor, &mut graph, 0)
                .await?;
        }
        // Every blob is there at its size before anything is written, so that a layout
        // that lacks one changes nothing (a corrupt one is found as it is pushed).
        for blob in &graph.blobs {
            check_blob(&source, blob).await?;
        }
        let total = graph.blobs.iter().map(|b| b.size).sum();
        options.progress.planned(graph.blobs.len(), total);
        let mut report = self
            .import_blobs(repo, &source, &graph.blobs, &options.progress)
            .await?;
        for (digest, raw, media_type) in graph.manifests {
            self.push_manifest(repo, &Reference::Digest(digest), raw, Some(&media_type))
                .await?;
            report.manifests += 1;
        }
        for entry in selected {
            if let Some(tag) = &entry.tag {
                self.tag_manifest(repo, tag, &entry.descriptor.digest)
                    .await?;
            }
            report.images.push((entry.descriptor.digest, entry.tag));
        }
        Ok(report)
    }

    /// Reads the manifest `descriptor` names and everything under it into `graph`.
    async fn read_graph(
        &self,
        source: &Arc<dyn LayoutSource>,
        descriptor: &Descriptor,
        graph: &mut Graph,
        depth: usize,
    ) -> Result<()> {
        if !graph.seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::ManifestInvalid,
                format!(
                    "{}: indexes nest deeper than {MAX_DEPTH}",
                    source.describe()
                ),
            ));
        }
        let raw = self.read_manifest(source, descriptor).await?;
        let manifest = Manifest::parse_with_limit(
            raw.clone(),
            Some(&descriptor.media_type),
            self.inner.max_manifest_size,
        )
        .map_err(|e| {
            e.context(format!(
                "{} manifest {}",
                source.describe(),
                descriptor.digest
            ))
        })?;
        match manifest.content() {
            ManifestContent::Index { manifests } => {
                for child in manifests {
                    Box::pin(self.read_graph(source, child, graph, depth + 1)).await?;
                }
            }
            ManifestContent::Image { .. } => {
                for blob in manifest.blobs() {
                    if graph.seen.insert(blob.digest.clone()) {
                        graph.blobs.push(blob.clone());
                    }
                }
            }
        }
        let media_type = manifest.media_type().as_str().to_owned();
        graph
            .manifests
            .push((descriptor.digest.clone(), raw, media_type));
        Ok(())
    }

    /// A manifest's bytes from the layout, checked against its descriptor.
    async fn read_manifest(
        &self,
        source: &Arc<dyn LayoutSource>,
        descriptor: &Descriptor,
    ) -> Result<Bytes> {
        let path = layout::blob_path(&descriptor.digest);
        let cap = self.inner.max_manifest_size;
        let (owned, what) = (source.clone(), format!("{} {path}", source.describe()));
        let read = blocking(what, move || read_small(owned.as_ref(), &path, cap)).await?;
        let Some(raw) = read else {
            return Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!("{} lacks manifest {}", source.describe(), descriptor.digest),
            ));
        };
        let actual = Digest::of(descriptor.digest.algorithm(), &raw);
        if actual != descriptor.digest || raw.len() as u64 != descriptor.size {
            return Err(Error::new(
                ErrorKind::DigestInvalid,
                format!(
                    "{}: manifest {} ({} bytes) holds {} bytes with digest {actual}",
                    source.describe(),
                    descriptor.digest,
                    descriptor.size,
                    raw.len()
                ),
            ));
        }
        Ok(Bytes::from(raw))
    }

    /// Pushes the blobs of an import that the repository does not hold yet.
    async fn import_blobs(
        &self,
        repo: &RepoName,
        source: &Arc<dyn LayoutSource>,
        blobs: &[Descriptor],
        progress: &Arc<dyn Progress>,
    ) -> Result<ImportReport> {
        let pushed: Vec<Option<u64>> = futures::stream::iter(blobs)
            .map(|blob| self.import_blob(repo, source, blob, progress))
            .buffered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        let mut report = ImportReport::default();
        for outcome in pushed {
            match outcome {
                Some(bytes) => {
                    report.blobs += 1;
                    report.bytes += bytes;
                }
                None => report.blobs_present += 1,
            }
        }
        Ok(report)
    }

    /// Pushes one blob; `None` when the repository already holds it.
    async fn import_blob(
        &self,
        repo: &RepoName,
        source: &Arc<dyn LayoutSource>,
        blob: &Descriptor,
        progress: &Arc<dyn Progress>,
    ) -> Result<Option<u64>> {
        match self.stat_blob(repo, &blob.digest).await {
            Ok(info) if info.size == blob.size => {
                progress.advanced(blob.size);
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::BlobUnknown => {}
            Err(e) => return Err(e),
        }
        let what = format!("{} {}", source.describe(), layout::blob_path(&blob.digest));
        let file = check_blob(source, blob).await?;
        let counter = progress.clone();
        let body = file_stream(file, what.clone()).inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counter.advanced(chunk.len() as u64);
            }
        });
        let info = self
            .push_blob_stream(repo, &blob.digest, body.boxed())
            .await
            .map_err(|e| e.context(what))?;
        Ok(Some(info.size))
    }
}

/// The file of `blob` in the layout, which must be there at the size its descriptor
/// states: [`ErrorKind::BlobUnknown`] or [`ErrorKind::SizeInvalid`] otherwise.
async fn check_blob(source: &Arc<dyn LayoutSource>, blob: &Descriptor) -> Result<SourceFile> {
    let path = layout::blob_path(&blob.digest);
    let Some(file) = open_source(source, &path).await? else {
        return Err(Error::new(
            ErrorKind::BlobUnknown,
            format!("{} lacks blob {}", source.describe(), blob.digest),
        ));
    };
    if file.1 != blob.size {
        return Err(Error::new(
            ErrorKind::SizeInvalid,
            format!(
                "{} {path} is {} bytes; its descriptor says {}",
                source.describe(),
                file.1,
                blob.size
            ),
        ));
    }
    Ok(file)
}

/// `oci-layout` checked and `index.json` read.
async fn read_entries(source: &Arc<dyn LayoutSource>) -> Result<Vec<layout::IndexEntry>> {
    let owned = source.clone();
    let what = source.describe();
    let (marker, index) = blocking(what.clone(), move || {
        let marker = read_small(owned.as_ref(), LAYOUT_FILE, layout::MAX_LAYOUT_FILE_BYTES)?;
        let index = read_small(owned.as_ref(), INDEX_FILE, layout::MAX_INDEX_BYTES)?;
        Ok((marker, index))
    })
    .await?;
    let invalid = |e: LayoutError| Error::new(ErrorKind::ArchiveInvalid, format!("{what}: {e}"));
    let marker = marker.ok_or_else(|| invalid(LayoutError::NotALayout))?;
    layout::check_layout_file(&marker).map_err(invalid)?;
    let index = index.ok_or_else(|| invalid(LayoutError::NoIndex))?;
    layout::read_index(&index).map_err(invalid)
}
