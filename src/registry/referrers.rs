//! Referrers on [`Registry`]: the manifests whose `subject` is a given digest, as the
//! distribution spec's referrers API lists them.
//!
//! A subject's referrers are one record, `referrer-list/<repo>@<subject>`
//! (`referrer_lists.rs`): a listing reads it, and looks at the manifest record only of
//! entries not yet confirmed (pushes in flight, or left by a push or delete that stopped).

use bytes::Bytes;
use serde::Serialize;

use super::Registry;
use super::referrer_lists::{ListedState, Tidy};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, OCI_IMAGE_INDEX};
use crate::reference::RepoName;

/// The referrers of a subject, as the distribution spec's referrers API returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// An OCI image index listing the referrers' descriptors.
    pub index: Bytes,
    /// Whether an `artifactType` filter was applied (`OCI-Filters-Applied: artifactType`).
    pub filtered: bool,
}

impl Registry {
    /// The referrers of `subject` in `repo`, as an OCI image index, optionally only those
    /// of `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        let (list, version) = self.referrer_list(repo, subject).await?;
        let grace_ms = self.inner.gc_grace.as_millis() as u64;
        let now = self.now_millis();
        let mut descriptors = Vec::new();
        let mut decisions = Vec::new();
        for entry in list.entries() {
            let descriptor = &entry.descriptor;
            let digest = &descriptor.digest;
            let visible = match entry.state {
                ListedState::Confirmed => true,
                ListedState::Pending | ListedState::Deleting => {
                    let record = self.raw_manifest_record(repo, digest).await?;
                    match record {
                        Some((record, _)) => {
                            // Seen committed after the list was read: confirm it.
                            if entry.state == ListedState::Pending && !record.pending {
                                decisions.push(Tidy::Confirm(digest.clone()));
                            }
                            self.is_visible(repo, digest, &record).await?
                        }
                        None => {
                            let left = entry.state == ListedState::Deleting
                                || (grace_ms > 0 && entry.older_than(grace_ms, now));
                            if left {
                                decisions.push(Tidy::Remove(digest.clone()));
                            }
                            false
                        }
                    }
                }
            };
            let wanted =
                artifact_type.is_none_or(|t| descriptor.artifact_type.as_deref() == Some(t));
            if visible && wanted {
                descriptors.push(descriptor.clone());
            }
        }
        if let Some(version) = version.filter(|_| !decisions.is_empty()) {
            // One try: a list that changed meanwhile is looked at again next time.
            match self
                .tidy_referrers(repo, subject, list, version, decisions)
                .await
            {
                Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                _ => {}
            }
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Index<'a> {
            schema_version: u32,
            media_type: &'a str,
            manifests: Vec<Descriptor>,
        }
        let index = serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: OCI_IMAGE_INDEX,
            manifests: descriptors,
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("encoding referrers of {subject}: {e}"),
            )
        })?;
        Ok(Referrers {
            index: index.into(),
            filtered: artifact_type.is_some(),
        })
    }
}
