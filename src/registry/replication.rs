//! Replication as ECR configures it (feature `remote`): a rule names a destination
//! registry and the repositories it takes (by prefix); every push under a filter is
//! copied there after its commit, from the outbox, so none is lost to a crash; a copy
//! that fails is retried (the dispatcher's backoff) until it succeeds, and each image
//! records how it stands with each destination. Deletes are copied only when the rule
//! says so.
//!
//! A [`Replicator`] is a [`Subscriber`]: give it to [`Registry::dispatcher`] with the
//! others. Its name, `replicate.<destination>`, keeps its place in the outbox across
//! restarts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Registry;
use super::dispatch::Subscriber;
use super::remote_copy::CopyOptions;
use super::replication_records::{ReplicationState, ReplicationStatus};
use super::schema::{Change, InRepo, REPLICATIONS};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, EventRecord};
use crate::reference::{Reference, RepoName, Tag};
use crate::remote::RemoteRegistry;
use async_trait::async_trait;

/// Where and what to replicate.
#[derive(Debug, Clone)]
pub struct ReplicationRule {
    /// The destination's name (1 to 54 of `a-z 0-9 . _ -`): in statuses and in the
    /// subscriber's name.
    pub destination: String,
    /// The destination registry; repositories keep their names there.
    pub remote: Arc<RemoteRegistry>,
    /// Repositories whose names start with one of these; empty: every repository.
    pub repository_prefixes: Vec<String>,
    /// Also delete at the destination what is deleted (or expired) here.
    pub replicate_deletes: bool,
}

impl ReplicationRule {
    fn covers(&self, repo: &RepoName) -> bool {
        self.repository_prefixes.is_empty()
            || self
                .repository_prefixes
                .iter()
                .any(|p| repo.as_str().starts_with(p.as_str()))
    }
}

/// Copies what a [`ReplicationRule`] covers; see the module docs.
#[derive(Debug)]
pub struct Replicator {
    registry: Registry,
    rule: ReplicationRule,
    name: String,
}

impl Registry {
    /// The subscriber that carries out `rule`.
    pub fn replicator(&self, rule: ReplicationRule) -> Result<Arc<Replicator>> {
        let valid = !rule.destination.is_empty()
            && rule.destination.len() <= 54
            && rule
                .destination
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "replication destination {:?}: 1 to 54 of a-z 0-9 . _ -",
                    rule.destination
                ),
            ));
        }
        Ok(Arc::new(Replicator {
            registry: self.clone(),
            name: format!("replicate.{}", rule.destination),
            rule,
        }))
    }
}

impl Replicator {
    /// Copies the image `digest` of `repo` (and moves `tag` to it) at the destination.
    async fn copy(&self, repo: &RepoName, digest: &Digest, tag: Option<&Tag>) -> Result<()> {
        let remote = self.rule.remote.as_ref();
        let pushed = self
            .registry
            .push_remote(
                repo,
                &Reference::Digest(digest.clone()),
                remote,
                repo.as_str(),
                &CopyOptions::default(),
            )
            .await;
        match pushed {
            Ok(_) => {}
            // Gone here since: nothing left to copy.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ManifestUnknown | ErrorKind::ImageArchived
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        if let Some(tag) = tag {
            let stored = self
                .registry
                .stat_manifest(repo, &Reference::Digest(digest.clone()))
                .await?;
            let raw = self.registry.get_bytes_in(repo, digest).await?;
            remote
                .push_manifest(repo.as_str(), tag.as_str(), raw, stored.media_type.as_str())
                .await?;
        }
        Ok(())
    }

    /// Records how the attempt for `digest` ended (best effort: the outcome is what
    /// the dispatcher acts on).
    async fn record(&self, repo: &RepoName, digest: &Digest, outcome: &Result<()>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        let destination = self.rule.destination.clone();
        let _ = REPLICATIONS
            .update(
                self.registry.meta(),
                &InRepo::new(repo, digest),
                |current| {
                    let mut record: super::replication_records::ReplicationRecord =
                        current.unwrap_or_default();
                    let failed = record
                        .destinations
                        .get(&destination)
                        .map_or(0, |s| s.failed_attempts);
                    let state = match outcome {
                        Ok(()) => ReplicationState {
                            status: ReplicationStatus::Complete,
                            failed_attempts: 0,
                            last_error: None,
                            updated_at_ms: now,
                        },
                        Err(e) => ReplicationState {
                            status: ReplicationStatus::Failed,
                            failed_attempts: failed + 1,
                            last_error: Some(e.to_string()),
                            updated_at_ms: now,
                        },
                    };
                    record.destinations.insert(destination.clone(), state);
                    Ok(Change::Put(record))
                },
            )
            .await;
    }
}

#[async_trait]
impl Subscriber for Replicator {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event: &Event) -> bool {
        let repo = match event {
            Event::ManifestPushed { repo, .. } | Event::TagMoved { repo, .. } => repo,
            Event::ManifestDeleted { repo, .. } | Event::ImageExpired { repo, .. }
                if self.rule.replicate_deletes =>
            {
                repo
            }
            _ => return false,
        };
        self.rule.covers(repo)
    }

    async fn deliver(&self, record: &EventRecord) -> Result<()> {
        match &record.event {
            Event::ManifestPushed {
                repo, digest, tag, ..
            } => {
                let outcome = self.copy(repo, digest, tag.as_ref()).await;
                self.record(repo, digest, &outcome).await;
                outcome
            }
            Event::TagMoved { repo, tag, to, .. } => {
                let outcome = self.copy(repo, to, Some(tag)).await;
                self.record(repo, to, &outcome).await;
                outcome
            }
            Event::ManifestDeleted { repo, digest } | Event::ImageExpired { repo, digest, .. } => {
                self.rule
                    .remote
                    .delete_manifest(repo.as_str(), digest)
                    .await
            }
            _ => Ok(()),
        }
    }
}
