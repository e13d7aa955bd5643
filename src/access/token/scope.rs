//! Scopes as the Docker token specification writes them,
//! `<type>[(<class>)]:<name>:<action>[,<action>...]` (`repository:team/app:pull,push`,
//! `registry:catalog:*`), and the ECR actions each grant stands for.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::access::Action;
use crate::error::{Error, ErrorKind, Result};
use crate::reference::RepoName;

/// An action a scope can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeAction {
    /// Read: blobs, manifests, tags, referrers.
    Pull,
    /// Write: uploads and manifests (and creating the repository).
    Push,
    /// Delete manifests and tags.
    Delete,
    /// Everything; on `registry:catalog`, listing repositories.
    #[serde(rename = "*")]
    All,
}

/// Reads, and what a read that misses in a pull-through cache does: bring the image in.
const PULL: &[Action] = &[
    Action::BatchCheckLayerAvailability,
    Action::BatchGetImage,
    Action::GetDownloadUrlForLayer,
    Action::ListImages,
    Action::BatchImportUpstreamImage,
];

/// Blob and manifest writes, and the create a push into a new repository needs.
const PUSH: &[Action] = &[
    Action::BatchCheckLayerAvailability,
    Action::InitiateLayerUpload,
    Action::UploadLayerPart,
    Action::CompleteLayerUpload,
    Action::PutImage,
    Action::CreateRepository,
];

const DELETE: &[Action] = &[Action::BatchDeleteImage];

const ALL: &[Action] = &[
    Action::BatchCheckLayerAvailability,
    Action::BatchGetImage,
    Action::BatchImportUpstreamImage,
    Action::GetDownloadUrlForLayer,
    Action::ListImages,
    Action::InitiateLayerUpload,
    Action::UploadLayerPart,
    Action::CompleteLayerUpload,
    Action::PutImage,
    Action::CreateRepository,
    Action::BatchDeleteImage,
];

impl ScopeAction {
    /// The ECR actions this grant stands for on a repository.
    pub fn actions(self) -> &'static [Action] {
        match self {
            ScopeAction::Pull => PULL,
            ScopeAction::Push => PUSH,
            ScopeAction::Delete => DELETE,
            ScopeAction::All => ALL,
        }
    }

    /// The action a scope names, if it is one of the four.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pull" => Some(ScopeAction::Pull),
            "push" => Some(ScopeAction::Push),
            "delete" => Some(ScopeAction::Delete),
            "*" => Some(ScopeAction::All),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ScopeAction::Pull => "pull",
            ScopeAction::Push => "push",
            ScopeAction::Delete => "delete",
            ScopeAction::All => "*",
        }
    }
}

/// Access to one resource: asked for in a scope, granted in a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A repository name, or `catalog`.
    pub name: String,
    /// What is asked or granted.
    pub actions: Vec<ScopeAction>,
}

impl Access {
    /// Parses one scope. A `repository` scope must name a valid repository; actions
    /// other than `pull`, `push`, `delete` and `*` are dropped (nothing grants them);
    /// resource types other than `repository` and `registry` are refused.
    pub fn parse(scope: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("scope {scope:?}: {why} (expected type:name:actions)"),
            )
        };
        let (kind, rest) = scope.split_once(':').ok_or_else(|| invalid("no type"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| invalid("no actions"))?;
        // A resource class (`repository(plugin)`) narrows nothing here.
        let kind = kind.split_once('(').map_or(kind, |(kind, _)| kind);
        match kind {
            "repository" => {
                name.parse::<RepoName>()
                    .map_err(|e| invalid(&e.to_string()))?;
            }
            "registry" => {}
            _ => return Err(invalid("unknown resource type")),
        }
        let mut actions: Vec<ScopeAction> =
            actions.split(',').filter_map(ScopeAction::parse).collect();
        actions.sort();
        actions.dedup();
        Ok(Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }

    /// Parses a `scope` parameter: one or more scopes separated by spaces.
    pub fn parse_all(scopes: &str) -> Result<Vec<Self>> {
        scopes.split_whitespace().map(Self::parse).collect()
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
        write!(f, "{}:{}:{}", self.kind, self.name, actions.join(","))
    }
}
