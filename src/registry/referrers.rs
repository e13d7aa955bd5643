//! Referrers on [`Registry`]: the manifests whose `subject` is a given digest, as the
//! distribution spec's referrers API lists them.
//!
//! Each referrer is the entry `referrer/<repo>@<subject>/<digest>` holding its descriptor,
//! written before the referrer's manifest record; an entry whose manifest is not visible
//! (a push that has not committed, or never will) is not listed.

use bytes::Bytes;
use serde::Serialize;

use super::Registry;
use super::schema::{Prefix, REFERRERS};
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
        let within = Prefix::of_subject(repo, subject);
        let mut descriptors = Vec::new();
        for entry in REFERRERS.list_all(self.meta(), &within).await? {
            let descriptor = entry.value;
            if artifact_type.is_some_and(|t| descriptor.artifact_type.as_deref() != Some(t)) {
                continue;
            }
            // An entry written by a push that had not finished is not a referrer yet.
            if self
                .manifest_record(repo, &descriptor.digest)
                .await?
                .is_some()
            {
                descriptors.push(descriptor);
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
