//! How each image stands with each replication destination: the record the replicator
//! (`replication.rs`, feature `remote`) keeps, readable without the feature.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::{InRepo, REPLICATIONS};
use crate::digest::Digest;
use crate::error::Result;
use crate::reference::RepoName;

/// How an image stands with one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicationStatus {
    /// The last copy succeeded.
    Complete,
    /// The last attempt failed; the dispatcher tries again.
    Failed,
}

/// An image's replication to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationState {
    /// How it stands.
    pub status: ReplicationStatus,
    /// Attempts since the last success (0 once complete).
    pub failed_attempts: u32,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it last changed, in milliseconds since the epoch.
    pub updated_at_ms: u64,
}

/// `replication/<repo>@<digest>`: an image's state per destination.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReplicationRecord {
    pub(crate) destinations: BTreeMap<String, ReplicationState>,
}

impl Registry {
    /// How the image `digest` of `repo` stands with each destination it was sent to.
    pub async fn replication_status(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<BTreeMap<String, ReplicationState>> {
        Ok(REPLICATIONS
            .get(self.meta(), &InRepo::new(repo, digest))
            .await?
            .map(|(record, _)| record.destinations)
            .unwrap_or_default())
    }
}
