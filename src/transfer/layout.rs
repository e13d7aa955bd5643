//! The OCI image layout, as the image-layout specification defines it:
//!
//! ```text
//! oci-layout        {"imageLayoutVersion": "1.0.0"}
//! index.json        an image index: the layout's entry points
//! blobs/<alg>/<hex> every blob and manifest, named by its digest
//! ```
//!
//! An entry of `index.json` may carry `org.opencontainers.image.ref.name`: tools write a
//! bare tag there (`skopeo copy … oci:dir:v1`, `umoci`), some a whole reference
//! (`registry.example/app:v1`). Either names the tag it is imported under; an entry
//! without one is imported by digest only.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use crate::digest::{Algorithm, Digest};
use crate::manifest::{Descriptor, Manifest, ManifestContent, ManifestMediaType, OCI_IMAGE_INDEX};
use crate::reference::Tag;

/// The file that marks a directory as a layout.
pub const LAYOUT_FILE: &str = "oci-layout";

/// The layout's index.
pub const INDEX_FILE: &str = "index.json";

/// The only layout version there is.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// The annotation that names an entry of `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest `index.json` read: 16 MiB, some 40,000 entries.
pub const MAX_INDEX_BYTES: usize = 16 << 20;

/// The largest `oci-layout` read.
pub const MAX_LAYOUT_FILE_BYTES: usize = 4096;

/// Why a layout cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// `oci-layout` is missing: not a layout.
    NotALayout,
    /// `oci-layout` is not `{"imageLayoutVersion": "1.0.0"}`.
    Version {
        /// What the file says, or why it could not be read.
        found: String,
    },
    /// `index.json` is missing.
    NoIndex,
    /// `index.json` is not an image index; the reason says why.
    BadIndex {
        /// What is wrong.
        reason: String,
    },
    /// A `ref.name` annotation names no tag.
    BadRefName {
        /// The annotation's value.
        name: String,
    },
    /// A file is larger than this module reads.
    TooLarge {
        /// The file.
        file: &'static str,
        /// Its size.
        size: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::NotALayout => write!(f, "no {LAYOUT_FILE} file: not an OCI image layout"),
            LayoutError::Version { found } => write!(
                f,
                "{LAYOUT_FILE} says {found}, not imageLayoutVersion {LAYOUT_VERSION}"
            ),
            LayoutError::NoIndex => write!(f, "the layout has no {INDEX_FILE}"),
            LayoutError::BadIndex { reason } => write!(f, "{INDEX_FILE}: {reason}"),
            LayoutError::BadRefName { name } => {
                write!(f, "{INDEX_FILE}: {REF_NAME} {name:?} names no tag")
            }
            LayoutError::TooLarge { file, size } => {
                write!(f, "{file} of {size} bytes is larger than wharf reads")
            }
        }
    }
}

impl std::error::Error for LayoutError {}

/// The path of a blob inside a layout: `blobs/<algorithm>/<hex>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// The digest a layout path names, if it is a blob's path.
pub fn digest_of_path(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    format!("{algorithm}:{hex}").parse().ok()
}

/// The contents of `oci-layout`.
pub fn layout_file() -> Vec<u8> {
    format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}").into_bytes()
}

/// Checks the contents of `oci-layout`.
pub fn check_layout_file(data: &[u8]) -> Result<(), LayoutError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LayoutFile {
        image_layout_version: String,
    }
    match serde_json::from_slice::<LayoutFile>(data) {
        Ok(file) if file.image_layout_version == LAYOUT_VERSION => Ok(()),
        Ok(file) => Err(LayoutError::Version {
            found: format!("{:?}", file.image_layout_version),
        }),
        Err(e) => Err(LayoutError::Version {
            found: format!("nothing readable ({e})"),
        }),
    }
}

/// An entry of `index.json`: a manifest, and the tag its `ref.name` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The manifest's descriptor, as `index.json` holds it.
    pub descriptor: Descriptor,
    /// The tag, when the entry has a `ref.name`.
    pub tag: Option<Tag>,
}

/// Reads `index.json`: its entries, in order.
pub fn read_index(data: &[u8]) -> Result<Vec<IndexEntry>, LayoutError> {
    if data.len() > MAX_INDEX_BYTES {
        return Err(LayoutError::TooLarge {
            file: INDEX_FILE,
            size: data.len() as u64,
        });
    }
    let index = Manifest::parse_with_limit(
        Bytes::copy_from_slice(data),
        Some(OCI_IMAGE_INDEX),
        MAX_INDEX_BYTES,
    )
    .map_err(|e| LayoutError::BadIndex {
        reason: e.to_string(),
    })?;
    let ManifestContent::Index { manifests } = index.content() else {
        return Err(LayoutError::BadIndex {
            reason: "not an image index".to_owned(),
        });
    };
    manifests
        .iter()
        .map(|descriptor| {
            let tag = match descriptor.annotations.get(REF_NAME) {
                Some(name) => Some(tag_of_ref_name(name)?),
                None => None,
            };
            Ok(IndexEntry {
                descriptor: descriptor.clone(),
                tag,
            })
        })
        .collect()
}

/// The tag a `ref.name` names: the name itself when it is a tag, else what follows the
/// last `:` after the last `/` of a whole reference (`registry.example:5000/app:v1`).
pub fn tag_of_ref_name(name: &str) -> Result<Tag, LayoutError> {
    let bad = || LayoutError::BadRefName {
        name: name.to_owned(),
    };
    if let Ok(tag) = name.parse::<Tag>() {
        return Ok(tag);
    }
    // A reference pinned by digest names no tag; neither does one without a `:` tag.
    let without_digest = name.split_once('@').map_or(name, |(before, _)| before);
    let last = without_digest.rsplit('/').next().ok_or_else(bad)?;
    let (_, tag) = last.rsplit_once(':').ok_or_else(bad)?;
    tag.parse::<Tag>().map_err(|_| bad())
}

/// Writes `index.json` for `entries`: each descriptor with its `ref.name` set to its tag
/// (or removed when it has none). Entries are written in the order given.
pub fn write_index(entries: &[IndexEntry]) -> Vec<u8> {
    let manifests: Vec<Descriptor> = entries
        .iter()
        .map(|entry| {
            let mut descriptor = entry.descriptor.clone();
            match &entry.tag {
                Some(tag) => {
                    descriptor
                        .annotations
                        .insert(REF_NAME.to_owned(), tag.to_string());
                }
                None => {
                    descriptor.annotations.remove(REF_NAME);
                }
            }
            descriptor
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_INDEX,
        "manifests": manifests,
    });
    // A JSON value always serializes.
    serde_json::to_vec(&index).unwrap_or_default()
}

/// Entries merged for export into a layout that already has an index: `added` replace
/// the existing entries with the same tag (and untagged entries of the same digest);
/// the others are kept, before the added ones.
pub fn merge_index(existing: Vec<IndexEntry>, added: &[IndexEntry]) -> Vec<IndexEntry> {
    let tags: BTreeMap<&Tag, ()> = added
        .iter()
        .filter_map(|e| e.tag.as_ref().map(|t| (t, ())))
        .collect();
    let mut merged: Vec<IndexEntry> = existing
        .into_iter()
        .filter(|entry| match &entry.tag {
            Some(tag) => !tags.contains_key(tag),
            None => !added
                .iter()
                .any(|a| a.tag.is_none() && a.descriptor.digest == entry.descriptor.digest),
        })
        .collect();
    merged.extend(added.iter().cloned());
    merged
}

/// Whether a descriptor is of a manifest (which the layout holds as a blob too, and
/// which import reads and follows).
pub fn is_manifest(descriptor: &Descriptor) -> bool {
    ManifestMediaType::from_media_type(&descriptor.media_type).is_some()
}

/// The algorithms a layout's blobs may be named by.
pub fn supported_algorithm(algorithm: &str) -> Option<Algorithm> {
    [Algorithm::Sha256, Algorithm::Sha512]
        .into_iter()
        .find(|a| a.as_str() == algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_map_to_tags() {
        for (name, tag) in [
            ("v1", "v1"),
            ("latest", "latest"),
            ("registry.example/app:v1", "v1"),
            ("registry.example:5000/team/app:1.2.3", "1.2.3"),
            ("app:edge@sha256:0123", "edge"),
        ] {
            assert_eq!(tag_of_ref_name(name).unwrap().as_str(), tag, "{name}");
        }
        for name in [
            "registry.example:5000/app",
            "a/b/c",
            "",
            "app@sha256:00",
            "bad tag",
        ] {
            assert!(
                matches!(tag_of_ref_name(name), Err(LayoutError::BadRefName { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn blob_paths_round_trip() {
        let digest = Digest::of(Algorithm::Sha512, b"x");
        let path = blob_path(&digest);
        assert!(path.starts_with("blobs/sha512/"));
        assert_eq!(digest_of_path(&path), Some(digest));
        assert_eq!(digest_of_path("blobs/sha256/xyz"), None);
        assert_eq!(digest_of_path("index.json"), None);
    }

    #[test]
    fn the_layout_file_is_checked() {
        assert_eq!(check_layout_file(&layout_file()), Ok(()));
        assert!(matches!(
            check_layout_file(br#"{"imageLayoutVersion":"2.0.0"}"#),
            Err(LayoutError::Version { .. })
        ));
        assert!(matches!(
            check_layout_file(b"garbage"),
            Err(LayoutError::Version { .. })
        ));
    }
}
