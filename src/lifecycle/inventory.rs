//! What the planner knows about a repository's images, and its JSON form.

use std::collections::HashSet;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::policy::StorageClass;
use super::rfc3339;
use crate::error::{Error, ErrorKind, Result};

/// One image as lifecycle rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleImage {
    /// Its identity: the manifest digest, for a registry's inventory.
    pub id: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it was pushed.
    #[serde(with = "time")]
    pub pushed_at: SystemTime,
    /// When it was last pulled, if ever.
    #[serde(
        default,
        with = "optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_pulled_at: Option<SystemTime>,
    /// Its storage class.
    #[serde(default)]
    pub storage_class: StorageClass,
    /// When it moved to the archive storage class.
    #[serde(
        default,
        with = "optional_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub archived_at: Option<SystemTime>,
    /// For an index: the images it lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// For a referrer (signature, SBOM): the image it refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl LifecycleImage {
    /// An image with only an id, tags and a push time.
    pub fn new(id: impl Into<String>, tags: &[&str], pushed_at: SystemTime) -> Self {
        Self {
            id: id.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at,
            last_pulled_at: None,
            storage_class: StorageClass::Standard,
            archived_at: None,
            children: Vec::new(),
            subject: None,
        }
    }
}

/// The images of one repository, as the planner takes them:
/// `{"images": [{"id", "tags", "pushed_at", "last_pulled_at"?, "storage_class"?,
/// "archived_at"?, "children"?, "subject"?}]}` with RFC 3339 times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleInventory {
    /// The images.
    pub images: Vec<LifecycleImage>,
}

impl LifecycleInventory {
    /// Reads the JSON form; ids must be unique. Errors are
    /// [`ErrorKind::PolicyInvalid`]: the inventory is the other input of a preview.
    pub fn from_json(text: &str) -> Result<Self> {
        let inventory: Self = serde_json::from_str(text).map_err(|e| {
            Error::new(
                ErrorKind::PolicyInvalid,
                format!("inventory is not valid: {e}"),
            )
        })?;
        let mut seen = HashSet::new();
        for image in &inventory.images {
            if !seen.insert(image.id.as_str()) {
                return Err(Error::new(
                    ErrorKind::PolicyInvalid,
                    format!("inventory lists image {:?} twice", image.id),
                ));
            }
        }
        Ok(inventory)
    }

    /// The JSON form, pretty-printed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an inventory always serializes")
    }
}

impl Serialize for StorageClass {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StorageClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "standard" => Ok(Self::Standard),
            "archive" => Ok(Self::Archive),
            other => Err(serde::de::Error::custom(format!(
                "storage class {other:?} is not \"standard\" or \"archive\""
            ))),
        }
    }
}

mod time {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        t: &SystemTime,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339::format(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<SystemTime, D::Error> {
        rfc3339::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod optional_time {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339::format(*t)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| rfc3339::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
