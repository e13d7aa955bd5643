//! The manifest media types wharf stores, and the ones it refuses.

use std::fmt;

/// OCI image manifest.
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The OCI empty descriptor's media type (`{}`), the config of artifacts that have none.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker schema 1, refused.
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The kind of manifest a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestMediaType {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
}

impl ManifestMediaType {
    /// The media type string, as served in `Content-Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OciManifest => OCI_IMAGE_MANIFEST,
            Self::OciIndex => OCI_IMAGE_INDEX,
            Self::DockerManifest => DOCKER_MANIFEST_V2,
            Self::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether manifests of this type list other manifests (an index or a list).
    pub fn is_index(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerManifestList)
    }

    /// The type for a media type string, `None` for anything else.
    pub fn from_media_type(s: &str) -> Option<Self> {
        // Parameters such as `; charset=utf-8` do not change the type.
        let essence = s.split(';').next().unwrap_or_default().trim();
        [
            Self::OciManifest,
            Self::OciIndex,
            Self::DockerManifest,
            Self::DockerManifestList,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(essence))
    }

    pub(crate) fn is_schema1(s: &str) -> bool {
        let essence = s.split(';').next().unwrap_or_default().trim();
        DOCKER_SCHEMA1
            .iter()
            .any(|t| t.eq_ignore_ascii_case(essence))
    }
}

impl fmt::Display for ManifestMediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
