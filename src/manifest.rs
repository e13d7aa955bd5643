//! Manifests and indexes: parsed once, validated, never re-serialized.
//!
//! A [`Manifest`] keeps the bytes the client pushed; its digest is over those bytes and
//! they are served back unchanged, unknown fields and all. Parsing is pure and I/O-free.
//!
//! The parsed view is wharf's own rather than `oci-spec`'s: the rules here need what those
//! types do not give — refusing duplicate keys, naming the failing field's path, a digest
//! limited to sha256/sha512 in canonical form, negative sizes told apart from
//! overflowing ones, and Docker schema 2 beside OCI in one model.

mod descriptor;
mod media_type;
mod platform_match;

pub use self::descriptor::{Descriptor, Platform};
pub use self::media_type::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, ManifestMediaType, OCI_EMPTY, OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
};

use std::collections::BTreeMap;

use bytes::Bytes;

use self::descriptor::{Fields, invalid};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};

/// Default largest manifest body accepted: 4 MiB, as Distribution and most clients use.
pub const DEFAULT_MAX_MANIFEST_SIZE: usize = 4 << 20;

/// What a manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestContent {
    /// An image (or artifact) manifest: a config and layers.
    Image {
        /// The config blob.
        config: Box<Descriptor>,
        /// The layer blobs, base first.
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list: child manifests.
    Index {
        /// The child manifests.
        manifests: Vec<Descriptor>,
    },
}

/// A validated manifest with its exact bytes.
///
/// ```
/// use wharf::{Manifest, ManifestMediaType};
/// let body = br#"{
///   "schemaVersion": 2,
///   "mediaType": "application/vnd.oci.image.manifest.v1+json",
///   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
///              "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
///              "size": 2},
///   "layers": [],
///   "x-unknown": "kept"
/// }"#;
/// let manifest = Manifest::parse(bytes::Bytes::from_static(body), None)?;
/// assert_eq!(manifest.media_type(), ManifestMediaType::OciManifest);
/// assert_eq!(&manifest.raw()[..], &body[..]);
/// assert!("sha256:".len() + 64 == manifest.digest().as_str().len());
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    raw: Bytes,
    digest: Digest,
    media_type: ManifestMediaType,
    content: ManifestContent,
    subject: Option<Descriptor>,
    artifact_type: Option<String>,
    annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses and validates `raw`, pushed with `content_type` (the request's
    /// `Content-Type`, if any), with the default size limit.
    pub fn parse(raw: Bytes, content_type: Option<&str>) -> Result<Self> {
        Self::parse_with_limit(raw, content_type, DEFAULT_MAX_MANIFEST_SIZE)
    }

    /// [`Manifest::parse`] with a size limit of `max_size` bytes.
    pub fn parse_with_limit(
        raw: Bytes,
        content_type: Option<&str>,
        max_size: usize,
    ) -> Result<Self> {
        Self::parse_checked(raw, content_type, max_size, true)
    }

    /// Reads a manifest already stored under `media_type`: the structure is checked as
    /// on a push, the descriptor format checks added since are not, so a manifest
    /// accepted before them stays readable (by the collector, by platform resolution).
    pub(crate) fn parse_stored(raw: Bytes, media_type: &str) -> Result<Self> {
        Self::parse_checked(raw, Some(media_type), usize::MAX, false)
    }

    fn parse_checked(
        raw: Bytes,
        content_type: Option<&str>,
        max_size: usize,
        strict: bool,
    ) -> Result<Self> {
        if raw.len() > max_size {
            return Err(Error::new(
                ErrorKind::ManifestInvalid,
                format!(
                    "manifest of {} bytes is over the limit of {max_size} bytes",
                    raw.len()
                ),
            ));
        }
        let declared = declared_media_type(content_type)?;
        let json = crate::strict_json::parse(&raw).map_err(|e| {
            Error::new(
                ErrorKind::ManifestInvalid,
                format!("manifest is not valid JSON: {e}"),
            )
        })?;
        let mut fields = Fields::of("", &json).map_err(|_| {
            Error::new(ErrorKind::ManifestInvalid, "manifest must be a JSON object")
        })?;
        fields.strict = strict;
        check_schema_version(&fields)?;
        let media_type = media_type_of(&fields, declared)?;
        let content = content_of(&fields, media_type)?;
        let artifact_type = artifact_type_of(&fields, &content, media_type)?;
        let subject = fields.descriptor("subject")?;
        let annotations = fields.annotations()?;
        Ok(Self {
            digest: Digest::of(Algorithm::Sha256, &raw),
            raw,
            media_type,
            content,
            subject,
            artifact_type,
            annotations,
        })
    }

    /// The exact bytes pushed.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The sha256 digest of the bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The digest of the bytes under `algorithm` (for pushes by a sha512 reference).
    pub fn digest_with(&self, algorithm: Algorithm) -> Digest {
        match algorithm {
            Algorithm::Sha256 => self.digest.clone(),
            _ => Digest::of(algorithm, &self.raw),
        }
    }

    /// The manifest's media type.
    pub fn media_type(&self) -> ManifestMediaType {
        self.media_type
    }

    /// What it lists.
    pub fn content(&self) -> &ManifestContent {
        &self.content
    }

    /// The manifest this one refers to (signatures, SBOMs, attestations).
    pub fn subject(&self) -> Option<&Descriptor> {
        self.subject.as_ref()
    }

    /// The declared `artifactType`.
    pub fn artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref()
    }

    /// The artifact type a referrers listing shows: `artifactType`, else the config's
    /// media type (image manifests only).
    pub fn referrer_artifact_type(&self) -> Option<&str> {
        match (&self.artifact_type, &self.content) {
            (Some(t), _) => Some(t),
            (None, ManifestContent::Image { config, .. }) => Some(&config.media_type),
            (None, ManifestContent::Index { .. }) => None,
        }
    }

    /// The manifest's annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// Blobs the manifest needs in its repository: config and layers (none for an index).
    /// Layers with `urls` (Docker foreign layers) are included: wharf does not fetch them.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        let (config, layers): (Option<&Descriptor>, &[Descriptor]) = match &self.content {
            ManifestContent::Image { config, layers } => (Some(&**config), layers),
            ManifestContent::Index { .. } => (None, &[]),
        };
        config.into_iter().chain(layers)
    }

    /// The child of an index that best fits `platform` (see the module
    /// `platform_match` for the rules); `None` for image manifests and when none fits.
    pub fn select_platform(&self, platform: &Platform) -> Option<&Descriptor> {
        platform_match::select(self.children(), platform)
    }

    /// Child manifests the index needs in its repository (none for an image manifest).
    pub fn children(&self) -> &[Descriptor] {
        match &self.content {
            ManifestContent::Index { manifests } => manifests,
            ManifestContent::Image { .. } => &[],
        }
    }
}

fn schema1() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "Docker schema 1 manifests are not supported: push schema 2 or OCI (docker and \
         skopeo convert on push)",
    )
}

/// The manifest kind a request's content type declares, if it declares one.
fn declared_media_type(content_type: Option<&str>) -> Result<Option<ManifestMediaType>> {
    match content_type {
        None => Ok(None),
        Some(t) if ManifestMediaType::is_schema1(t) => Err(schema1()),
        Some(t) => ManifestMediaType::from_media_type(t)
            .map(Some)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ManifestInvalid,
                    format!("content type {t:?} is not a manifest media type wharf stores"),
                )
            }),
    }
}

fn check_schema_version(fields: &Fields<'_>) -> Result<()> {
    match fields.get("schemaVersion") {
        Some(v) if v.as_u64() == Some(2) => Ok(()),
        Some(v) if v.as_u64() == Some(1) => Err(schema1()),
        Some(v) => Err(invalid("schemaVersion", format!("must be 2, found {v}"))),
        None => Err(invalid("schemaVersion", "is required")),
    }
}

/// The manifest's kind: its `mediaType` (which must agree with the declared one), else
/// the declared one, else told from its shape (OCI makes `mediaType` optional).
fn media_type_of(
    fields: &Fields<'_>,
    declared: Option<ManifestMediaType>,
) -> Result<ManifestMediaType> {
    let in_body =
        match fields.string("mediaType")? {
            None => None,
            Some(t) if ManifestMediaType::is_schema1(&t) => return Err(schema1()),
            Some(t) => Some(ManifestMediaType::from_media_type(&t).ok_or_else(|| {
                invalid("mediaType", format!("{t:?} is not a manifest media type"))
            })?),
        };
    let media_type = match (declared, in_body) {
        (Some(d), Some(b)) if d != b => {
            return Err(invalid(
                "mediaType",
                format!("{b} contradicts the content type {d}"),
            ));
        }
        (_, Some(t)) | (Some(t), None) => t,
        (None, None) => match (fields.get("manifests"), fields.get("config")) {
            (Some(_), None) => ManifestMediaType::OciIndex,
            (None, Some(_)) => ManifestMediaType::OciManifest,
            _ => {
                return Err(invalid(
                    "mediaType",
                    "is required when the kind cannot be told from the fields",
                ));
            }
        },
    };
    let docker = matches!(
        media_type,
        ManifestMediaType::DockerManifest | ManifestMediaType::DockerManifestList
    );
    if docker && in_body.is_none() {
        return Err(invalid("mediaType", "is required in Docker manifests"));
    }
    Ok(media_type)
}

/// What an index lists, or an image's config and layers.
fn content_of(fields: &Fields<'_>, media_type: ManifestMediaType) -> Result<ManifestContent> {
    if media_type.is_index() {
        let manifests = fields
            .descriptors("manifests")?
            .ok_or_else(|| invalid("manifests", "is required"))?;
        return Ok(ManifestContent::Index { manifests });
    }
    let config = fields
        .descriptor("config")?
        .ok_or_else(|| invalid("config", "is required"))?;
    let layers = fields
        .descriptors("layers")?
        .ok_or_else(|| invalid("layers", "is required"))?;
    Ok(ManifestContent::Image {
        config: Box::new(config),
        layers,
    })
}

/// `artifactType`: well-formed when pushed, and required on an OCI image whose config
/// is the empty descriptor.
fn artifact_type_of(
    fields: &Fields<'_>,
    content: &ManifestContent,
    media_type: ManifestMediaType,
) -> Result<Option<String>> {
    let artifact_type = fields.string("artifactType")?;
    if let Some(artifact_type) = artifact_type.as_deref().filter(|_| fields.strict) {
        descriptor::check_media_type("artifactType", artifact_type)?;
    }
    if let ManifestContent::Image { config, .. } = content
        && media_type == ManifestMediaType::OciManifest
        && config.media_type == OCI_EMPTY
        && artifact_type.is_none()
    {
        return Err(invalid(
            "artifactType",
            format!("is required when config.mediaType is {OCI_EMPTY}"),
        ));
    }
    Ok(artifact_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_manifests_are_read_without_the_push_format_checks() {
        let layer = Digest::of(Algorithm::Sha256, b"layer");
        let config = Digest::of(Algorithm::Sha256, b"{}");
        // Accepted before the RFC 6838 and RFC 3986 checks: a parameter, a space.
        let raw = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},
            "layers":[{{"mediaType":"application/x-tar; v=1","digest":"{layer}","size":5,"urls":["http://a b"]}}]}}"#
        ));
        let err = Manifest::parse(raw.clone(), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ManifestInvalid);
        let stored = Manifest::parse_stored(raw, OCI_IMAGE_MANIFEST).unwrap();
        assert_eq!(stored.blobs().count(), 2);
    }
}
