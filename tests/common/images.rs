//! Images for tests: an OCI image manifest over a config and layers, pushed the way a
//! client pushes it (missing blobs first, then the manifest).

use bytes::Bytes;
use serde_json::json;
use wharf::{Algorithm, Digest, Reference, Registry, RepoName};

/// An image: its config, its layers, the digest algorithm of its descriptors, and
/// optionally the manifest it refers to.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) config: Bytes,
    pub(crate) layers: Vec<Bytes>,
    pub(crate) algorithm: Algorithm,
    subject: Option<(Digest, usize)>,
    artifact_type: Option<String>,
    layer_media_type: String,
}

impl Image {
    /// An image with this config and these layers, sha256 throughout.
    pub(crate) fn of(config: &Bytes, layers: &[&Bytes]) -> Self {
        Self {
            config: config.clone(),
            layers: layers.iter().map(|&l| l.clone()).collect(),
            algorithm: Algorithm::Sha256,
            subject: None,
            artifact_type: None,
            layer_media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
        }
    }

    /// A small image of its own: a config and one layer derived from `seed`.
    pub(crate) fn seeded(seed: &str) -> Self {
        Self::of(
            &Bytes::from(format!("{{\"seed\":{seed:?}}}")),
            &[&Bytes::from(format!("layer of {seed}"))],
        )
    }

    /// The same image with descriptors (and so blobs) under `algorithm`.
    pub(crate) fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The same image with its layers described as `media_type` (gzip, zstd, …).
    pub(crate) fn with_layer_media_type(mut self, media_type: &str) -> Self {
        self.layer_media_type = media_type.to_owned();
        self
    }

    /// The same image as a referrer of the manifest `subject` of `size` bytes.
    pub(crate) fn referring_to(mut self, subject: &Digest, size: usize, artifact: &str) -> Self {
        self.subject = Some((subject.clone(), size));
        self.artifact_type = Some(artifact.to_owned());
        self
    }

    /// The digest of `data` under the image's algorithm.
    pub(crate) fn digest(&self, data: &[u8]) -> Digest {
        Digest::of(self.algorithm, data)
    }

    /// The manifest's bytes.
    pub(crate) fn manifest(&self) -> Bytes {
        let descriptor = |media: &str, b: &Bytes| json!({"mediaType": media, "digest": self.digest(b).to_string(), "size": b.len()});
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &self.config),
            "layers": self
                .layers
                .iter()
                .map(|l| descriptor(&self.layer_media_type, l))
                .collect::<Vec<_>>(),
        });
        if let Some((subject, size)) = &self.subject {
            manifest["subject"] = json!({
                "mediaType": wharf::OCI_IMAGE_MANIFEST,
                "digest": subject.to_string(),
                "size": size,
            });
        }
        if let Some(artifact) = &self.artifact_type {
            manifest["artifactType"] = json!(artifact);
        }
        Bytes::from(serde_json::to_vec(&manifest).unwrap())
    }

    /// Uploads the blobs `repo` does not have yet (as clients do after a HEAD), then
    /// pushes the manifest under `reference`; returns the manifest's digest.
    pub(crate) async fn push(
        &self,
        registry: &Registry,
        repo: &RepoName,
        reference: &Reference,
    ) -> wharf::Result<Digest> {
        for blob in self.layers.iter().chain([&self.config]) {
            let digest = self.digest(blob);
            if registry.stat_blob(repo, &digest).await.is_err() {
                registry.push_blob(repo, &digest, blob.clone()).await?;
            }
        }
        let pushed = registry
            .push_manifest(repo, reference, self.manifest(), None)
            .await?;
        Ok(pushed.digest)
    }
}

/// An OCI image index listing `children` (digest and size of each image manifest).
pub(crate) fn index(children: &[(Digest, usize)]) -> Bytes {
    let manifests: Vec<_> = children
        .iter()
        .map(|(digest, size)| {
            json!({"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": digest.to_string(), "size": size})
        })
        .collect();
    Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": wharf::OCI_IMAGE_INDEX,
            "manifests": manifests,
        }))
        .unwrap(),
    )
}
