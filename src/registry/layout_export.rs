//! Exporting images of a repository as an OCI image layout (a directory, resumable, or
//! an `oci-archive` stream).
//!
//! The graph of each reference (index, platform manifests, configs, layers; with
//! referrers, every artifact whose subject is in the graph, and theirs) is read first;
//! then each blob the layout lacks is streamed into it, manifests as they were pushed,
//! byte for byte; `index.json` comes last, so an export cut short leaves the layout's
//! index as it was.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::Registry;
use super::layout_io::SinkThread;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest, ManifestContent};
use crate::reference::{Reference, RepoName};
use crate::transfer::layout::{self, IndexEntry};
use crate::transfer::sink::LayoutSink;
use crate::transfer::{NoProgress, Progress};

/// What to export.
#[derive(Clone)]
pub struct ExportOptions {
    /// Also every referrer (signatures, SBOMs, scan results) of the exported manifests,
    /// listed in `index.json` without a tag.
    pub referrers: bool,
    /// Told the bytes to write and as they are written.
    pub progress: Arc<dyn Progress>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            referrers: false,
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("referrers", &self.referrers)
            .finish_non_exhaustive()
    }
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// The entries written to `index.json`.
    pub entries: usize,
    /// Manifests in the exported graph.
    pub manifests: usize,
    /// Blobs (manifests included) written.
    pub blobs: usize,
    /// Blobs the layout already held (an export resumed or repeated).
    pub blobs_present: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// The graph of an export: every blob (manifests as bytes, others as descriptors) once.
#[derive(Default)]
pub(super) struct Graph {
    /// Manifests, each after the manifests it lists and before its referrers.
    pub(super) manifests: Vec<(Descriptor, Bytes)>,
    pub(super) blobs: Vec<Descriptor>,
    seen: HashSet<Digest>,
    pub(super) referrers: Vec<Descriptor>,
}

impl Registry {
    /// Exports `references` of `repo` into `sink` (see the module docs). A tag reference
    /// becomes an entry with that tag as its `ref.name`; a digest, an untagged entry.
    pub async fn export_layout(
        &self,
        repo: &RepoName,
        references: &[Reference],
        sink: Box<dyn LayoutSink>,
        options: &ExportOptions,
    ) -> Result<ExportReport> {
        let mut graph = Graph::default();
        let mut entries = Vec::new();
        for reference in references {
            let descriptor = self.descriptor_of(repo, reference).await?;
            self.export_graph(repo, &descriptor, &mut graph, options)
                .await?;
            let tag = match reference {
                Reference::Tag(tag) => Some(tag.clone()),
                Reference::Digest(_) => None,
            };
            entries.push(IndexEntry { descriptor, tag });
        }
        entries.extend(graph.referrers.iter().map(|descriptor| IndexEntry {
            descriptor: descriptor.clone(),
            tag: None,
        }));

        let mut report = ExportReport {
            entries: entries.len(),
            manifests: graph.manifests.len(),
            ..ExportReport::default()
        };
        let progress = options.progress.as_ref();
        let total = graph.manifests.iter().map(|(d, _)| d.size).sum::<u64>()
            + graph.blobs.iter().map(|b| b.size).sum::<u64>();
        progress.planned(graph.manifests.len() + graph.blobs.len(), total);
        let mut thread = SinkThread::start(sink, format!("exporting {repo}"));
        for (descriptor, raw) in &graph.manifests {
            progress.advanced(descriptor.size);
            if thread.has_blob(&descriptor.digest, descriptor.size).await? {
                report.blobs_present += 1;
                continue;
            }
            let body = futures::stream::once(std::future::ready(Ok(raw.clone())));
            thread
                .write_blob(&descriptor.digest, descriptor.size, Box::pin(body))
                .await?;
            report.blobs += 1;
            report.bytes += descriptor.size;
        }
        for blob in &graph.blobs {
            if thread.has_blob(&blob.digest, blob.size).await? {
                progress.advanced(blob.size);
                report.blobs_present += 1;
                continue;
            }
            let read = self.read_blob(repo, &blob.digest, None).await?;
            if read.info.size != blob.size {
                return Err(Error::new(
                    ErrorKind::SizeInvalid,
                    format!(
                        "blob {} in {repo} is {} bytes; its descriptor says {}",
                        blob.digest, read.info.size, blob.size
                    ),
                ));
            }
            let counter = options.progress.clone();
            let body = read.stream.inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counter.advanced(chunk.len() as u64);
                }
            });
            thread
                .write_blob(&blob.digest, blob.size, body.boxed())
                .await?;
            report.blobs += 1;
            report.bytes += blob.size;
        }
        let existing = match thread.existing_index().await? {
            Some(data) => layout::read_index(&data).map_err(|e| {
                Error::new(
                    ErrorKind::ArchiveInvalid,
                    format!("the layout exported into: {e}"),
                )
            })?,
            None => Vec::new(),
        };
        let index = layout::write_index(&layout::merge_index(existing, &entries));
        thread.finish(index).await?;
        Ok(report)
    }

    /// The descriptor of the manifest `reference` names in `repo`.
    pub(super) async fn descriptor_of(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Descriptor> {
        let (digest, record) = self.resolve(repo, reference).await?;
        Ok(Descriptor {
            media_type: record.media_type,
            digest,
            size: record.size,
            artifact_type: None,
            annotations: Default::default(),
            urls: Vec::new(),
            platform: None,
        })
    }

    /// Adds the manifest `descriptor` names, what it lists and (with referrers) what
    /// refers to it, to `graph`.
    pub(super) async fn export_graph(
        &self,
        repo: &RepoName,
        descriptor: &Descriptor,
        graph: &mut Graph,
        options: &ExportOptions,
    ) -> Result<()> {
        if !graph.seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        let raw = self.get_bytes_in(repo, &descriptor.digest).await?;
        let manifest = Manifest::parse(raw.clone(), Some(&descriptor.media_type))?;
        match manifest.content() {
            ManifestContent::Index { manifests } => {
                for child in manifests {
                    Box::pin(self.export_graph(repo, child, graph, options)).await?;
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
        graph.manifests.push((descriptor.clone(), raw));
        if options.referrers {
            let found = self.referrers(repo, &descriptor.digest, None).await?;
            let index = Manifest::parse(found.index, None)?;
            for referrer in index.children() {
                if !graph.seen.contains(&referrer.digest) {
                    graph.referrers.push(referrer.clone());
                    Box::pin(self.export_graph(repo, referrer, graph, options)).await?;
                }
            }
        }
        Ok(())
    }
}
