//! A manifest's record (`manifest/<repo>@<digest>`) through a push: staged by a push by
//! tag until its tag moves, committed after it (or at once, by digest), and when it
//! counts as visible (see `docs/storage-layout.md`).

use serde::{Deserialize, Serialize};

use super::Registry;
use super::blob_records::HoldDeadline;
use super::outbox::{CarriesEvents, Outcome};
use super::schema::{Change, InRepo, MANIFESTS};
use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::events::{Event, EventId};
use crate::meta::{Expect, Write};
use crate::reference::RepoName;

/// What wharf keeps about a manifest in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestRecord {
    pub(super) media_type: String,
    pub(super) size: u64,
    pub(super) pushed_at_ms: u64,
    /// Bytes of the config and layers the manifest lists.
    #[serde(default)]
    pub(super) blob_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) subject: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) children: Vec<Digest>,
    /// The config and layers it lists that the registry stores (not foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) blobs: Vec<Digest>,
    /// Set while the image is in the archive storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) archived_at_ms: Option<u64>,
    /// When it was last brought back from the archive storage class (by a restore or a
    /// push of the same manifest); lifecycle rules age it from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restored_at_ms: Option<u64>,
    /// Its holds on `blobs` are recorded (`ref/` entries). False only for records written
    /// before garbage collection existed, until the collector's first pass records them.
    #[serde(default)]
    pub(crate) held: bool,
    /// Staged by a push by tag whose tag move (its commit point) may not have happened:
    /// visible only while a tag points at it, until the push clears the flag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) pending: bool,
    /// The events that wrote this record, newest last (see `outbox.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) events: Vec<EventId>,
}

impl CarriesEvents for ManifestRecord {
    fn carried(&mut self) -> &mut Vec<EventId> {
        &mut self.events
    }
}

impl Registry {
    /// A manifest's record, visible or not, with its version.
    pub(crate) async fn raw_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<(ManifestRecord, crate::meta::Version)>> {
        MANIFESTS.get(self.meta(), &InRepo::new(repo, digest)).await
    }

    /// A manifest's record if the manifest is visible in `repo`.
    pub(super) async fn manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        match self.raw_manifest_record(repo, digest).await? {
            Some((record, _)) if self.is_visible(repo, digest, &record).await? => Ok(Some(record)),
            _ => Ok(None),
        }
    }

    /// Whether a record is visible: committed, or staged by a push whose tag now points
    /// at it (the tag move was the push's commit point).
    pub(crate) async fn is_visible(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<bool> {
        Ok(!record.pending || !self.tags_pointing_at(repo, digest).await?.is_empty())
    }

    /// Stages the record of a push by tag: invisible until the tag moves to it. An
    /// existing record stays as it is.
    pub(super) async fn stage_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<()> {
        let staged = ManifestRecord {
            pending: true,
            ..record.clone()
        };
        match MANIFESTS
            .create(self.meta(), &InRepo::new(repo, digest), &staged)
            .await
        {
            Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
            _ => Ok(()),
        }
    }

    /// Makes a manifest's record committed: clears `pending`, or writes `record` if there
    /// is none (a concurrent delete removed it: the push wins). A committed record is
    /// written again unchanged, so a delete that read it before this push fails its
    /// compare-and-swap instead of removing what the push just tagged. The first push
    /// time stands.
    pub(super) async fn commit_manifest_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<()> {
        MANIFESTS
            .update(self.meta(), &InRepo::new(repo, digest), |existing| {
                Ok(Change::Put(ManifestRecord {
                    pending: false,
                    ..existing.unwrap_or_else(|| record.clone())
                }))
            })
            .await
            .map(|_| ())
    }

    /// [`Registry::commit_manifest_record`] as a batch write, for a batch that commits
    /// it together with its tag move: by compare-and-swap on the record as it is now.
    pub(super) async fn committed_record_write(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<Write> {
        let key = InRepo::new(repo, digest);
        let (record, expect) = match MANIFESTS.get(self.meta(), &key).await? {
            Some((existing, version)) => (existing, Expect::Version(version)),
            None => (record.clone(), Expect::Absent),
        };
        let committed = ManifestRecord {
            pending: false,
            ..record
        };
        MANIFESTS.put_write(&key, &committed, expect)
    }

    /// [`Registry::commit_manifest_record`] as the commit point of a push by digest,
    /// announcing `event`: the record is written even when it was committed already, so
    /// every push has its event. Not after `deadline` (see [`HoldDeadline`]).
    pub(super) async fn commit_pushed_record(
        &self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
        event: Event,
        deadline: Option<&HoldDeadline>,
    ) -> Result<()> {
        let key = InRepo::new(repo, digest);
        self.commit_with_event_by(&MANIFESTS, &key, deadline, |existing| {
            let next = ManifestRecord {
                pending: false,
                ..existing.map_or_else(|| record.clone(), |(r, _)| r.clone())
            };
            Ok(Some((Outcome::Put(next), event.clone())))
        })
        .await
        .map(drop)
    }

    /// Commits a staged record that a tag about to move away makes visible, so the
    /// manifest stays visible after the move. Does nothing for absent or committed records.
    pub(super) async fn settle_pending(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        match self.raw_manifest_record(repo, digest).await? {
            Some((record, _)) if record.pending => {
                self.commit_manifest_record(repo, digest, &record).await
            }
            _ => Ok(()),
        }
    }
}
