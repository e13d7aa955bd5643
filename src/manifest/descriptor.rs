//! Descriptors and platforms, validated out of a manifest's JSON with the path of every
//! field named in errors (`layers[2].digest`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// The artifact type, for descriptors of artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// URLs the content may also be fetched from (Docker foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The platform of an index's child manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform an image runs on, as an index states it for each child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, …).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, …).
    pub os: String,
    /// Operating system version (Windows builds).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// CPU features (reserved by the spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// The error for a field that breaks the spec.
pub(crate) fn invalid(path: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::ManifestInvalid,
        format!("manifest field {path}: {why}"),
    )
}

/// Reads JSON objects field by field, naming each field's full path in errors.
pub(crate) struct Fields<'a> {
    pub(crate) path: String,
    pub(crate) map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(path: &str, value: &'a Value) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self {
                path: path.to_owned(),
                map,
            }),
            _ => Err(invalid(path, "must be an object")),
        }
    }

    pub(crate) fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&self.child(name), "must be a string")),
        }
    }

    pub(crate) fn required_string(&self, name: &str) -> Result<String> {
        self.string(name)?
            .ok_or_else(|| invalid(&self.child(name), "is required"))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.map.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(invalid(
                        &format!("{}[{i}]", self.child(name)),
                        "must be a string",
                    )),
                })
                .collect(),
            Some(_) => Err(invalid(&self.child(name), "must be an array of strings")),
        }
    }

    pub(crate) fn annotations(&self) -> Result<BTreeMap<String, String>> {
        match self.map.get("annotations") {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(invalid(
                        &format!("{}[{k:?}]", self.child("annotations")),
                        "must be a string",
                    )),
                })
                .collect(),
            Some(_) => Err(invalid(
                &self.child("annotations"),
                "must be an object of strings",
            )),
        }
    }

    pub(crate) fn descriptor(&self, name: &str) -> Result<Option<Descriptor>> {
        self.map
            .get(name)
            .map(|v| descriptor(&self.child(name), v))
            .transpose()
    }

    pub(crate) fn descriptors(&self, name: &str) -> Result<Option<Vec<Descriptor>>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| descriptor(&format!("{}[{i}]", self.child(name)), v))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(invalid(
                &self.child(name),
                "must be an array of descriptors",
            )),
        }
    }
}

/// Validates one descriptor.
pub(crate) fn descriptor(path: &str, value: &Value) -> Result<Descriptor> {
    let fields = Fields::of(path, value)?;
    let media_type = fields.required_string("mediaType")?;
    let digest_text = fields.required_string("digest")?;
    let digest = digest_text
        .parse::<Digest>()
        .map_err(|e| invalid(&fields.child("digest"), e.message()))?;
    let size = match fields.get("size") {
        None => return Err(invalid(&fields.child("size"), "is required")),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(size), _) if size <= i64::MAX as u64 => size,
            (_, Some(negative)) if negative < 0 => {
                return Err(invalid(
                    &fields.child("size"),
                    format!("must not be negative, found {negative}"),
                ));
            }
            _ => {
                return Err(invalid(
                    &fields.child("size"),
                    format!("must be an integer of at most 2^63-1, found {n}"),
                ));
            }
        },
        Some(_) => return Err(invalid(&fields.child("size"), "must be a number")),
    };
    let platform = match fields.get("platform") {
        None => None,
        Some(v) => Some(platform(&fields.child("platform"), v)?),
    };
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type: fields.string("artifactType")?,
        annotations: fields.annotations()?,
        urls: fields.strings("urls")?,
        platform,
    })
}

fn platform(path: &str, value: &Value) -> Result<Platform> {
    let fields = Fields::of(path, value)?;
    Ok(Platform {
        architecture: fields.required_string("architecture")?,
        os: fields.required_string("os")?,
        os_version: fields.string("os.version")?,
        os_features: fields.strings("os.features")?,
        variant: fields.string("variant")?,
        features: fields.strings("features")?,
    })
}
