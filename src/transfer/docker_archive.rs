//! `docker save` archives: a tar holding `manifest.json`, each image's config and its
//! layers as tars.
//!
//! ```json
//! [{"Config": "<hex>.json", "RepoTags": ["app:v1"], "Layers": ["<id>/layer.tar", …]}]
//! ```
//!
//! Docker before 25 names files by image and layer ids (`<hex>.json`, `<id>/layer.tar`);
//! Docker 25 and later by digest (`blobs/sha256/<hex>`), beside an OCI layout. Either
//! way `manifest.json` gives the paths, and those are all this module follows. Layers
//! are uncompressed tars as `docker save` writes them (the config's `rootfs.diff_ids`
//! are their digests), though readers accept compressed ones.
//!
//! wharf imports an archive as Docker schema 2 images: the config under
//! `application/vnd.docker.container.image.v1+json`, each layer as it is in the archive
//! (`…rootfs.diff.tar` when uncompressed, `…rootfs.diff.tar.gzip` when gzip); an
//! uncompressed layer must have the digest its config's `diff_ids` give it. It exports
//! blobs under the names Docker 25 uses (`blobs/sha256/<hex>`, layers as stored) and
//! `manifest.json`, which `docker load` (of any version: it follows the paths) and
//! `skopeo` read.

use serde::{Deserialize, Serialize};

use super::layout::{LayoutError, tag_of_ref_name};
use crate::reference::Tag;

/// The archive's index of images.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The legacy index of repositories and tags.
pub const REPOSITORIES_FILE: &str = "repositories";

/// The largest `manifest.json` or config read: 16 MiB.
pub const MAX_JSON_BYTES: usize = 16 << 20;

/// A Docker image config's media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// An uncompressed Docker layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A gzip Docker layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// One image of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveImage {
    /// The config's path in the archive.
    pub config: String,
    /// `name:tag` references, possibly none.
    #[serde(default, deserialize_with = "nullable_list")]
    pub repo_tags: Vec<String>,
    /// The layers' paths, base first.
    pub layers: Vec<String>,
}

fn nullable_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

impl ArchiveImage {
    /// The tags its `RepoTags` name (what follows the last `:`).
    pub fn tags(&self) -> Result<Vec<Tag>, LayoutError> {
        self.repo_tags.iter().map(|r| tag_of_ref_name(r)).collect()
    }
}

/// Reads `manifest.json`.
pub fn read_manifest(data: &[u8]) -> Result<Vec<ArchiveImage>, LayoutError> {
    if data.len() > MAX_JSON_BYTES {
        return Err(LayoutError::TooLarge {
            file: MANIFEST_FILE,
            size: data.len() as u64,
        });
    }
    serde_json::from_slice(data).map_err(|e| LayoutError::BadIndex {
        reason: format!("{MANIFEST_FILE}: {e}"),
    })
}

/// The `rootfs.diff_ids` of an image config, which must be an object with them.
pub fn diff_ids(config: &[u8]) -> Result<Vec<String>, LayoutError> {
    #[derive(Deserialize)]
    struct Config {
        rootfs: RootFs,
    }
    #[derive(Deserialize)]
    struct RootFs {
        diff_ids: Vec<String>,
    }
    serde_json::from_slice::<Config>(config)
        .map(|c| c.rootfs.diff_ids)
        .map_err(|e| LayoutError::BadIndex {
            reason: format!("image config: {e}"),
        })
}

/// The media type of a layer that starts with `head`: gzip by its magic, else a tar.
pub fn layer_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        DOCKER_LAYER_GZIP
    } else {
        DOCKER_LAYER_TAR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_of_both_generations_read() {
        let legacy = br#"[{"Config":"abc.json","RepoTags":["app:v1","registry.example/app:edge"],"Layers":["l1/layer.tar"]}]"#;
        let images = read_manifest(legacy).unwrap();
        assert_eq!(images[0].layers, ["l1/layer.tar"]);
        let tags: Vec<String> = images[0]
            .tags()
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(tags, ["v1", "edge"]);
        let untagged =
            br#"[{"Config":"blobs/sha256/ab","RepoTags":null,"Layers":[],"LayerSources":{}}]"#;
        assert!(read_manifest(untagged).unwrap()[0].repo_tags.is_empty());
        assert!(matches!(
            read_manifest(b"{}"),
            Err(LayoutError::BadIndex { .. })
        ));
    }

    #[test]
    fn diff_ids_come_from_the_config() {
        let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        assert_eq!(diff_ids(config).unwrap(), ["sha256:aa"]);
        assert!(diff_ids(b"{}").is_err());
        assert_eq!(layer_media_type(&[0x1f, 0x8b, 8]), DOCKER_LAYER_GZIP);
        assert_eq!(layer_media_type(b"etc/"), DOCKER_LAYER_TAR);
    }
}
