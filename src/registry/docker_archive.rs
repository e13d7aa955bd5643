//! `docker save` archives in and out of a repository, in the same phases as OCI layouts
//! (`layout_import.rs`): every file checked to be there, then every blob pushed, then
//! the manifests (Docker schema 2, made here), then the tags.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use super::Registry;
use super::layout_export::{ExportOptions, ExportReport};
use super::layout_import::{ImportOptions, ImportReport};
use super::layout_io::{SinkThread, blocking, file_stream, open_source};
use crate::blob::BlobInfo;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{DOCKER_MANIFEST_V2, Descriptor, Manifest, ManifestContent};
use crate::reference::{Reference, RepoName, Tag};
use crate::transfer::docker_archive::{
    self, ArchiveImage, DOCKER_CONFIG, DOCKER_LAYER_TAR, MANIFEST_FILE, MAX_JSON_BYTES,
};
use crate::transfer::layout::{self, LayoutError};
use crate::transfer::sink::LayoutSink;
use crate::transfer::source::{LayoutSource, read_small};

/// A layer as pushed: its descriptor in the manifests that list it.
#[derive(Clone)]
struct PushedLayer {
    digest: Digest,
    size: u64,
    media_type: &'static str,
}

impl Registry {
    /// Imports the images of the `docker save` archive in `source` into `repo` as Docker
    /// schema 2 images, tagged by their `RepoTags` (the part after the last `:`;
    /// `options.tags` picks some). A malformed archive is [`ErrorKind::ArchiveInvalid`];
    /// an uncompressed layer whose digest is not its config's diff id,
    /// [`ErrorKind::DigestInvalid`].
    pub async fn import_docker_archive(
        &self,
        repo: &RepoName,
        source: Arc<dyn LayoutSource>,
        options: &ImportOptions,
    ) -> Result<ImportReport> {
        let what = source.describe();
        let invalid =
            |e: LayoutError| Error::new(ErrorKind::ArchiveInvalid, format!("{what}: {e}"));
        let owned = source.clone();
        let manifest = blocking(what.clone(), move || {
            read_small(owned.as_ref(), MANIFEST_FILE, MAX_JSON_BYTES)
        })
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::ArchiveInvalid,
                format!("{what} has no {MANIFEST_FILE}: not a docker save archive"),
            )
        })?;
        let mut images = Vec::new();
        for image in docker_archive::read_manifest(&manifest).map_err(invalid)? {
            let tags = image.tags().map_err(invalid)?;
            let wanted: Vec<Tag> = if options.tags.is_empty() {
                tags
            } else {
                tags.into_iter()
                    .filter(|t| options.tags.contains(t))
                    .collect()
            };
            if options.tags.is_empty() || !wanted.is_empty() {
                images.push((image, wanted));
            }
        }
        if let Some(missing) = options
            .tags
            .iter()
            .find(|t| !images.iter().any(|(_, tags)| tags.contains(t)))
        {
            return Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!("{what} has no image tagged {missing}"),
            ));
        }
        // Every file is there before anything is written.
        let mut total = 0;
        let mut files = 0;
        for (image, _) in &images {
            for path in std::iter::once(&image.config).chain(&image.layers) {
                let Some((_, size)) = open_source(&source, path).await? else {
                    return Err(Error::new(
                        ErrorKind::ArchiveInvalid,
                        format!("{what} lacks {path}, which {MANIFEST_FILE} names"),
                    ));
                };
                total += size;
                files += 1;
            }
        }
        options.progress.planned(files, total);

        let mut report = ImportReport::default();
        let mut layers: HashMap<String, PushedLayer> = HashMap::new();
        let mut manifests = Vec::new();
        for (image, tags) in images {
            let manifest = self
                .import_archive_image(repo, &source, &image, &mut layers, options, &mut report)
                .await?;
            manifests.push((manifest, tags));
        }
        for (raw, tags) in manifests {
            let digest = Digest::of(Algorithm::Sha256, &raw);
            self.push_manifest(
                repo,
                &Reference::Digest(digest.clone()),
                raw,
                Some(DOCKER_MANIFEST_V2),
            )
            .await?;
            report.manifests += 1;
            if tags.is_empty() {
                report.images.push((digest.clone(), None));
            }
            for tag in tags {
                self.tag_manifest(repo, &tag, &digest).await?;
                report.images.push((digest.clone(), Some(tag)));
            }
        }
        Ok(report)
    }

    /// Pushes one image's config and layers; returns its manifest, not yet pushed.
    async fn import_archive_image(
        &self,
        repo: &RepoName,
        source: &Arc<dyn LayoutSource>,
        image: &ArchiveImage,
        layers: &mut HashMap<String, PushedLayer>,
        options: &ImportOptions,
        report: &mut ImportReport,
    ) -> Result<Bytes> {
        let what = source.describe();
        let owned = source.clone();
        let path = image.config.clone();
        let config = blocking(format!("{what} {path}"), move || {
            read_small(owned.as_ref(), &path, MAX_JSON_BYTES)
        })
        .await?
        .unwrap_or_default();
        let diff_ids = docker_archive::diff_ids(&config).map_err(|e| {
            Error::new(
                ErrorKind::ArchiveInvalid,
                format!("{what} {}: {e}", image.config),
            )
        })?;
        if diff_ids.len() != image.layers.len() {
            return Err(Error::new(
                ErrorKind::ArchiveInvalid,
                format!(
                    "{what}: config {} has {} diff ids for {} layers",
                    image.config,
                    diff_ids.len(),
                    image.layers.len()
                ),
            ));
        }
        let config_digest = Digest::of(Algorithm::Sha256, &config);
        let config_size = config.len() as u64;
        self.push_blob(repo, &config_digest, Bytes::from(config))
            .await?;
        options.progress.advanced(config_size);
        let mut descriptors = Vec::new();
        for (path, diff_id) in image.layers.iter().zip(&diff_ids) {
            let layer = match layers.get(path) {
                Some(layer) => layer.clone(),
                None => {
                    let layer = self
                        .import_archive_layer(repo, source, path, options)
                        .await?;
                    report.blobs += 1;
                    report.bytes += layer.size;
                    layers.insert(path.clone(), layer.clone());
                    layer
                }
            };
            if layer.media_type == DOCKER_LAYER_TAR && layer.digest.as_str() != diff_id {
                return Err(Error::new(
                    ErrorKind::DigestInvalid,
                    format!(
                        "{what}: layer {path} has digest {}, but its config says {diff_id}",
                        layer.digest
                    ),
                ));
            }
            descriptors.push(json!({
                "mediaType": layer.media_type, "size": layer.size, "digest": layer.digest.as_str(),
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_V2,
            "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest.as_str()},
            "layers": descriptors,
        });
        Ok(Bytes::from(manifest.to_string()))
    }

    /// Pushes one layer, named by its path's digest when it has one (`blobs/sha256/…`),
    /// else by the digest of its bytes.
    async fn import_archive_layer(
        &self,
        repo: &RepoName,
        source: &Arc<dyn LayoutSource>,
        path: &str,
        options: &ImportOptions,
    ) -> Result<PushedLayer> {
        let what = format!("{} {path}", source.describe());
        let Some(file) = open_source(source, path).await? else {
            return Err(Error::new(
                ErrorKind::ArchiveInvalid,
                format!("{what} is gone"),
            ));
        };
        let mut body = file_stream(file, what.clone());
        // The first chunk tells the compression; it goes back in front of the rest.
        let first = match body.next().await {
            Some(chunk) => chunk?,
            None => Bytes::new(),
        };
        let media_type = docker_archive::layer_media_type(&first);
        let counter = options.progress.clone();
        let body = futures::stream::once(std::future::ready(Ok(first)))
            .chain(body)
            .inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counter.advanced(chunk.len() as u64);
                }
            })
            .boxed();
        let info: BlobInfo = match layout::digest_of_path(path) {
            Some(digest) => self.push_blob_stream(repo, &digest, body).await,
            None => self.push_unnamed_blob(repo, body).await,
        }
        .map_err(|e| e.context(&what))?;
        Ok(PushedLayer {
            digest: info.digest,
            size: info.size,
            media_type,
        })
    }

    /// Exports `references` (tags or digests of image manifests, Docker or OCI) of `repo`
    /// into `sink` as a `docker save` archive ([`TarSink::docker`](crate::transfer::sink::TarSink::docker)).
    /// An index is [`ErrorKind::Unsupported`]: the format holds one platform per image,
    /// so export a platform's manifest by its digest.
    pub async fn export_docker_archive(
        &self,
        repo: &RepoName,
        references: &[Reference],
        sink: Box<dyn LayoutSink>,
        options: &ExportOptions,
    ) -> Result<ExportReport> {
        let mut entries = Vec::new();
        let mut blobs: Vec<Descriptor> = Vec::new();
        for reference in references {
            let (digest, _) = self.resolve(repo, reference).await?;
            let raw = self.get_bytes_in(repo, &digest).await?;
            let manifest = Manifest::parse(raw, None)?;
            let ManifestContent::Image { config, layers } = manifest.content() else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "{repo}:{reference} is an index; a docker archive holds one platform: export a platform's manifest by digest"
                    ),
                ));
            };
            let path = |d: &Descriptor| layout::blob_path(&d.digest);
            let repo_tags = match reference {
                Reference::Tag(tag) => vec![format!("{repo}:{tag}")],
                Reference::Digest(_) => Vec::new(),
            };
            entries.push(ArchiveImage {
                config: path(config),
                repo_tags,
                layers: layers.iter().map(path).collect(),
            });
            for blob in std::iter::once(config.as_ref()).chain(layers) {
                if !blobs.iter().any(|b| b.digest == blob.digest) {
                    blobs.push(blob.clone());
                }
            }
        }
        let progress = options.progress.clone();
        progress.planned(blobs.len(), blobs.iter().map(|b| b.size).sum());
        let mut report = ExportReport {
            entries: entries.len(),
            manifests: entries.len(),
            ..ExportReport::default()
        };
        let mut thread = SinkThread::start(sink, format!("exporting {repo}"));
        for blob in &blobs {
            let read = self.read_blob(repo, &blob.digest, None).await?;
            let counter = progress.clone();
            let body = read.stream.inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counter.advanced(chunk.len() as u64);
                }
            });
            thread
                .write_blob(&blob.digest, read.info.size, body.boxed())
                .await?;
            report.blobs += 1;
            report.bytes += read.info.size;
        }
        let manifest = serde_json::to_vec(&entries).map_err(|e| {
            Error::new(ErrorKind::Storage, format!("encoding {MANIFEST_FILE}: {e}"))
        })?;
        thread.finish(manifest).await?;
        Ok(report)
    }
}
