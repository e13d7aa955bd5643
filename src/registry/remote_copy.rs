//! Copying images between a repository and a remote registry (feature `remote`), in the
//! same order as a client's push: blobs (those already at the destination skipped, so an
//! interrupted copy resumes where it stopped), then manifests children first, then the
//! tag.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use super::Registry;
use super::layout_export::{ExportOptions, Graph};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest, ManifestContent, Platform};
use crate::reference::{Reference, RepoName};
use crate::remote::{RemoteManifest, RemoteRegistry};
use crate::transfer::{NoProgress, Progress};

/// Blobs copied at once.
const PARALLEL_BLOBS: usize = 2;

/// How deep indexes may nest in a copied image.
const MAX_DEPTH: usize = 8;

/// What to copy.
#[derive(Clone)]
pub struct CopyOptions {
    /// For an index, only the manifest for this platform (copied and tagged on its own,
    /// as `docker pull --platform` does); `None`: every platform and the index.
    pub platform: Option<Platform>,
    /// Also the referrers (signatures, SBOMs) of every manifest copied.
    pub referrers: bool,
    /// Told the bytes to move and as they move.
    pub progress: Arc<dyn Progress>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platform: None,
            referrers: false,
            progress: Arc::new(NoProgress),
        }
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("platform", &self.platform)
            .field("referrers", &self.referrers)
            .finish_non_exhaustive()
    }
}

/// The graph of a pull: manifests children first, and the blobs they list, each once.
#[derive(Default)]
pub(super) struct RemoteGraph {
    pub(super) manifests: Vec<RemoteManifest>,
    pub(super) blobs: Vec<Descriptor>,
    seen: std::collections::HashSet<Digest>,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The digest of the manifest copied (the platform's, when one was picked).
    pub digest: Digest,
    /// Manifests copied.
    pub manifests: usize,
    /// Blobs copied.
    pub blobs: usize,
    /// Blobs the destination already held.
    pub blobs_present: usize,
    /// Bytes of the blobs copied.
    pub bytes: u64,
}

impl Registry {
    /// Copies `reference` of `remote_repo` on `remote` into `repo`, under the same tag
    /// when `reference` is one. Every blob is verified against its digest as it is
    /// stored, every manifest against the digest it was fetched by.
    pub async fn pull_remote(
        &self,
        remote: &RemoteRegistry,
        remote_repo: &str,
        reference: &Reference,
        repo: &RepoName,
        options: &CopyOptions,
    ) -> Result<CopyReport> {
        let top = remote
            .required_manifest(remote_repo, &reference.to_string())
            .await?;
        let top = match &options.platform {
            Some(platform) => {
                self.pick_platform(remote, remote_repo, top, platform)
                    .await?
            }
            None => top,
        };
        let mut graph = RemoteGraph::default();
        self.remote_graph(remote, remote_repo, top.clone(), options, &mut graph, 0)
            .await?;
        let RemoteGraph {
            manifests, blobs, ..
        } = graph;
        options
            .progress
            .planned(blobs.len(), blobs.iter().map(|b| b.size).sum());
        let copied: Vec<Option<u64>> = futures::stream::iter(&blobs)
            .map(|blob| self.pull_remote_blob(remote, remote_repo, repo, blob, options))
            .buffered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        let mut report = CopyReport {
            digest: top.digest.clone(),
            manifests: 0,
            blobs: 0,
            blobs_present: 0,
            bytes: 0,
        };
        for outcome in copied {
            match outcome {
                Some(bytes) => {
                    report.blobs += 1;
                    report.bytes += bytes;
                }
                None => report.blobs_present += 1,
            }
        }
        for manifest in manifests {
            self.store_remote_manifest(repo, manifest).await?;
            report.manifests += 1;
        }
        if let Reference::Tag(tag) = reference {
            self.tag_manifest(repo, tag, &top.digest).await?;
        }
        Ok(report)
    }

    /// Pushes a manifest fetched from a remote into `repo`, by its digest.
    pub(super) async fn store_remote_manifest(
        &self,
        repo: &RepoName,
        manifest: RemoteManifest,
    ) -> Result<()> {
        self.push_manifest(
            repo,
            &Reference::Digest(manifest.digest),
            manifest.raw,
            Some(&manifest.media_type),
        )
        .await
        .map(drop)
    }

    /// The platform's manifest, when `top` is an index; `top` itself otherwise.
    async fn pick_platform(
        &self,
        remote: &RemoteRegistry,
        remote_repo: &str,
        top: RemoteManifest,
        platform: &Platform,
    ) -> Result<RemoteManifest> {
        let parsed = Manifest::parse(top.raw.clone(), Some(&top.media_type))?;
        if !matches!(parsed.content(), ManifestContent::Index { .. }) {
            return Ok(top);
        }
        let child = parsed.select_platform(platform).ok_or_else(|| {
            Error::new(
                ErrorKind::ManifestUnknown,
                format!(
                    "{remote_repo}@{} has no manifest for {platform:?}",
                    top.digest
                ),
            )
        })?;
        remote
            .required_manifest(remote_repo, child.digest.as_str())
            .await
    }

    /// Adds `manifest`, the manifests it lists (fetched) and their blobs, children first.
    pub(super) async fn remote_graph(
        &self,
        remote: &RemoteRegistry,
        remote_repo: &str,
        manifest: RemoteManifest,
        options: &CopyOptions,
        graph: &mut RemoteGraph,
        depth: usize,
    ) -> Result<()> {
        if !graph.seen.insert(manifest.digest.clone()) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::ManifestInvalid,
                format!("{remote_repo}: indexes nest deeper than {MAX_DEPTH}"),
            ));
        }
        let parsed = Manifest::parse_with_limit(
            manifest.raw.clone(),
            Some(&manifest.media_type),
            self.inner.max_manifest_size,
        )?;
        match parsed.content() {
            ManifestContent::Index {
                manifests: children,
            } => {
                for child in children {
                    let fetched = remote
                        .required_manifest(remote_repo, child.digest.as_str())
                        .await?;
                    Box::pin(self.remote_graph(
                        remote,
                        remote_repo,
                        fetched,
                        options,
                        graph,
                        depth + 1,
                    ))
                    .await?;
                }
            }
            ManifestContent::Image { .. } => {
                for blob in parsed.blobs() {
                    if graph.seen.insert(blob.digest.clone()) {
                        graph.blobs.push(blob.clone());
                    }
                }
            }
        }
        let digest = manifest.digest.clone();
        graph.manifests.push(manifest);
        if options.referrers {
            for referrer in remote.referrers(remote_repo, &digest).await? {
                if graph.seen.contains(&referrer.digest) {
                    continue;
                }
                if let Some(fetched) = remote
                    .manifest(remote_repo, referrer.digest.as_str())
                    .await?
                {
                    Box::pin(self.remote_graph(
                        remote,
                        remote_repo,
                        fetched,
                        options,
                        graph,
                        depth + 1,
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Copies one blob from the remote; `None` when `repo` already holds it.
    async fn pull_remote_blob(
        &self,
        remote: &RemoteRegistry,
        remote_repo: &str,
        repo: &RepoName,
        blob: &Descriptor,
        options: &CopyOptions,
    ) -> Result<Option<u64>> {
        match self.stat_blob(repo, &blob.digest).await {
            Ok(_) => {
                options.progress.advanced(blob.size);
                return Ok(None);
            }
            Err(e) if e.kind() == ErrorKind::BlobUnknown => {}
            Err(e) => return Err(e),
        }
        let counter = options.progress.clone();
        let body = remote
            .blob(remote_repo, &blob.digest)
            .await?
            .body
            .inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counter.advanced(chunk.len() as u64);
                }
            })
            .boxed();
        let info = self
            .push_blob_stream(repo, &blob.digest, body)
            .await
            .map_err(|e| {
                e.context(format!(
                    "{}{remote_repo} blob {}",
                    remote.url(),
                    blob.digest
                ))
            })?;
        Ok(Some(info.size))
    }

    /// Copies `reference` of `repo` to `remote_repo` on `remote`, under the same tag when
    /// `reference` is one (with `options.referrers`, the referrers too).
    pub async fn push_remote(
        &self,
        repo: &RepoName,
        reference: &Reference,
        remote: &RemoteRegistry,
        remote_repo: &str,
        options: &CopyOptions,
    ) -> Result<CopyReport> {
        let top = self.descriptor_of(repo, reference).await?;
        let digest = top.digest.clone();
        let mut graph = Graph::default();
        let walk = ExportOptions {
            referrers: options.referrers,
            ..ExportOptions::default()
        };
        self.export_graph(repo, &top, &mut graph, &walk).await?;
        let progress = &options.progress;
        progress.planned(graph.blobs.len(), graph.blobs.iter().map(|b| b.size).sum());
        let mut report = CopyReport {
            digest: digest.clone(),
            manifests: 0,
            blobs: 0,
            blobs_present: 0,
            bytes: 0,
        };
        for blob in &graph.blobs {
            if remote.has_blob(remote_repo, &blob.digest).await? {
                progress.advanced(blob.size);
                report.blobs_present += 1;
                continue;
            }
            let read = self.read_blob(repo, &blob.digest, None).await?;
            let counter = progress.clone();
            let body = read
                .stream
                .inspect(move |chunk| {
                    if let Ok(chunk) = chunk {
                        counter.advanced(chunk.len() as u64);
                    }
                })
                .boxed();
            remote
                .push_blob(remote_repo, &blob.digest, read.info.size, body)
                .await?;
            report.blobs += 1;
            report.bytes += read.info.size;
        }
        for (descriptor, raw) in &graph.manifests {
            let target = match reference {
                Reference::Tag(tag) if descriptor.digest == digest => tag.to_string(),
                _ => descriptor.digest.to_string(),
            };
            remote
                .push_manifest(remote_repo, &target, raw.clone(), &descriptor.media_type)
                .await?;
            report.manifests += 1;
        }
        Ok(report)
    }
}
