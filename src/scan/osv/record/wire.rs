//! The JSON shape of an OSV record, as serde reads it: only the fields matching uses,
//! every list allowed to be `null`, every other field ignored.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Event;

/// A record as the JSON has it (only the fields read).
#[derive(Debug, Deserialize)]
pub(crate) struct WireRecord {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) modified: Option<String>,
    #[serde(default)]
    pub(crate) withdrawn: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) aliases: Vec<String>,
    #[serde(default)]
    pub(crate) summary: Option<String>,
    #[serde(default)]
    pub(crate) details: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) severity: Vec<WireScore>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) affected: Vec<WireAffected>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) references: Vec<WireReference>,
    #[serde(default)]
    pub(crate) database_specific: Option<Value>,
}

/// `severity[]`: a scoring system and its score.
#[derive(Debug, Deserialize)]
pub(crate) struct WireScore {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) score: String,
}

/// `affected[]`: a package and its affected versions.
#[derive(Debug, Deserialize)]
pub(crate) struct WireAffected {
    #[serde(default)]
    pub(crate) package: Option<WirePackage>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) ranges: Vec<WireRange>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) versions: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) severity: Vec<WireScore>,
    #[serde(default)]
    pub(crate) ecosystem_specific: Option<Value>,
    #[serde(default)]
    pub(crate) database_specific: Option<Value>,
}

/// `affected[].package`.
#[derive(Debug, Deserialize)]
pub(crate) struct WirePackage {
    pub(crate) ecosystem: String,
    pub(crate) name: String,
}

/// `affected[].ranges[]`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireRange {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(crate) events: Vec<WireEvent>,
}

/// `affected[].ranges[].events[]`: one of four fields, when valid.
#[derive(Debug, Deserialize)]
pub(crate) struct WireEvent {
    #[serde(default)]
    pub(crate) introduced: Option<String>,
    #[serde(default)]
    pub(crate) fixed: Option<String>,
    #[serde(default)]
    pub(crate) last_affected: Option<String>,
    #[serde(default)]
    pub(crate) limit: Option<String>,
}

impl WireEvent {
    pub(crate) fn field_count(&self) -> usize {
        [
            &self.introduced,
            &self.fixed,
            &self.last_affected,
            &self.limit,
        ]
        .into_iter()
        .filter(|field| field.is_some())
        .count()
    }

    /// The event, when exactly one field is set.
    pub(crate) fn read(&self) -> Option<Event> {
        if self.field_count() != 1 {
            return None;
        }
        if let Some(v) = &self.introduced {
            Some(Event::Introduced((v != "0").then(|| v.clone())))
        } else if let Some(v) = &self.fixed {
            Some(Event::Fixed(v.clone()))
        } else if let Some(v) = &self.last_affected {
            Some(Event::LastAffected(v.clone()))
        } else {
            // The schema reads any limit containing `*` as infinity.
            let limit = self.limit.as_ref()?;
            Some(Event::Limit((!limit.contains('*')).then(|| limit.clone())))
        }
    }
}

/// `references[]`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireReference {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) url: String,
}

/// A list that may be written as `null`.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
