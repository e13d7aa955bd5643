//! A repository's inventory: per image, what lifecycle policies and operators decide on.

use std::collections::HashMap;
use std::time::SystemTime;

use super::Registry;
use super::schema::{MANIFESTS, PULLS, Prefix, TAGS};
use crate::digest::Digest;
use crate::error::Result;
use crate::reference::{RepoName, Tag};
use crate::util::from_millis;

/// One image (manifest) of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// Tags pointing at it, in lexical order.
    pub tags: Vec<Tag>,
    /// When it was first pushed.
    pub pushed_at: SystemTime,
    /// When it was last pulled, to the registry's pull-time resolution.
    pub last_pulled_at: Option<SystemTime>,
    /// The manifest's size plus the sizes of the blobs it lists.
    pub size: u64,
    /// For an index: its child manifests.
    pub children: Vec<Digest>,
    /// For a referrer (signature, SBOM): the manifest it refers to.
    pub subject: Option<Digest>,
    /// The declared artifact type.
    pub artifact_type: Option<String>,
    /// When it moved to the archive storage class; `None` while it is standard.
    pub archived_at: Option<SystemTime>,
    /// When it was last brought back from the archive storage class, if ever.
    pub restored_at: Option<SystemTime>,
}

impl Registry {
    /// Every image of `repo`, by digest: tags, push and pull times, sizes, index children
    /// and subjects.
    pub async fn inventory(&self, repo: &RepoName) -> Result<Vec<ImageInfo>> {
        self.repository(repo).await?;
        let mut tags: HashMap<Digest, Vec<Tag>> = HashMap::new();
        let in_repo = Prefix::in_repo(repo);
        for entry in TAGS.list_all(self.meta(), &in_repo).await? {
            if let Some(digest) = entry.value.digest {
                tags.entry(digest).or_default().push(entry.key.item);
            }
        }
        let mut pulls: HashMap<Digest, u64> = HashMap::new();
        for entry in PULLS.list_all(self.meta(), &in_repo).await? {
            pulls.insert(entry.key.item, entry.value);
        }
        let mut images = Vec::new();
        for entry in MANIFESTS.list_all(self.meta(), &in_repo).await? {
            let (digest, record) = (entry.key.item, entry.value);
            if !self.is_visible(repo, &digest, &record).await? {
                continue;
            }
            images.push(ImageInfo {
                tags: tags.remove(&digest).unwrap_or_default(),
                last_pulled_at: pulls.get(&digest).copied().map(from_millis),
                media_type: record.media_type,
                pushed_at: from_millis(record.pushed_at_ms),
                size: record.size + record.blob_bytes,
                children: record.children,
                subject: record.subject,
                artifact_type: record.artifact_type,
                archived_at: record.archived_at_ms.map(from_millis),
                restored_at: record.restored_at_ms.map(from_millis),
                digest,
            });
        }
        Ok(images)
    }
}
