//! Lifecycle policies on [`Registry`]: attach one to a repository, preview it, apply it.
//!
//! Preview and apply run the same pure planner ([`crate::lifecycle::plan`]) over the same
//! inventory, so for one state and one `now` they decide the same. Apply carries the
//! plan out with guarded operations: an image is expired only while exactly the tags it
//! was judged on point at it; if they changed, the repository is planned again from its
//! new state rather than acted on by a stale decision.

use std::collections::HashMap;
use std::time::SystemTime;

use super::Registry;
use super::manifest_deletes::DeleteCause;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::{
    LifecycleImage, LifecycleInventory, LifecyclePolicy, Outcome, Plan, StorageClass, plan,
};
use crate::reference::{RepoName, Tag};

/// How many plans apply makes when concurrent changes keep overtaking them; what the
/// last one could not do is left for the next apply (the report's `replanned` lists
/// the images involved).
const MAX_REPLANS: usize = 5;

/// What [`Registry::apply_lifecycle`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    /// Images a rule expired, with the rule's priority.
    pub expired: Vec<(Digest, u32)>,
    /// Referrers expired with their subject.
    pub cascade_expired: Vec<Digest>,
    /// Images moved to the archive storage class, with the rule's priority.
    pub transitioned: Vec<(Digest, u32)>,
    /// Images whose tags changed between planning and acting: planned again.
    pub replanned: Vec<Digest>,
    /// How many plans were made (1 when nothing changed underneath).
    pub plans: usize,
}

impl Registry {
    /// Attaches `policy` (ECR lifecycle JSON) to `repo`, or detaches it with `None`;
    /// [`ErrorKind::PolicyInvalid`] names the rule and field of an invalid one.
    pub async fn set_lifecycle_policy(&self, repo: &RepoName, policy: Option<&str>) -> Result<()> {
        if let Some(text) = policy {
            self.check_archive_for(&LifecyclePolicy::parse(text)?)?;
        }
        let mut settings = self.repository(repo).await?.settings;
        settings.lifecycle_policy = policy.map(str::to_owned);
        self.update_repository(repo, settings).await.map(|_| ())
    }

    /// Refuses a policy with transitions on a registry without an archive store, before
    /// anything is done rather than half-way through an apply.
    fn check_archive_for(&self, policy: &LifecyclePolicy) -> Result<()> {
        let transitions = policy
            .rules()
            .iter()
            .find(|r| matches!(r.action, crate::lifecycle::RuleAction::Transition(_)));
        match transitions {
            Some(rule) if self.inner.archive.is_none() => Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "rule with rulePriority {} transitions images to archive, but this registry has no archive store: set one with RegistryBuilder::archive_store",
                    rule.priority
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The policy attached to `repo`, if any.
    pub async fn lifecycle_policy(&self, repo: &RepoName) -> Result<Option<LifecyclePolicy>> {
        let repository = self.repository(repo).await?;
        repository
            .settings
            .lifecycle_policy
            .as_deref()
            .map(LifecyclePolicy::parse)
            .transpose()
    }

    /// `repo`'s images as the planner sees them (ids are manifest digests), in the JSON
    /// form the `lifecycle` example reads.
    pub async fn lifecycle_inventory(&self, repo: &RepoName) -> Result<LifecycleInventory> {
        let images = self.inventory(repo).await?;
        Ok(LifecycleInventory {
            images: images
                .into_iter()
                .map(|image| LifecycleImage {
                    id: image.digest.to_string(),
                    tags: image.tags.iter().map(|t| t.as_str().to_owned()).collect(),
                    // A restored image ages from its restore, as in ECR.
                    pushed_at: image
                        .restored_at
                        .map_or(image.pushed_at, |r| r.max(image.pushed_at)),
                    // A pull from before a restore does not count after it.
                    last_pulled_at: image
                        .last_pulled_at
                        .filter(|pulled| image.restored_at.is_none_or(|r| *pulled > r)),
                    storage_class: if image.archived_at.is_some() {
                        StorageClass::Archive
                    } else {
                        StorageClass::Standard
                    },
                    archived_at: image.archived_at,
                    children: image.children.iter().map(ToString::to_string).collect(),
                    subject: image.subject.as_ref().map(ToString::to_string),
                })
                .collect(),
        })
    }

    async fn attached_policy(&self, repo: &RepoName) -> Result<LifecyclePolicy> {
        self.lifecycle_policy(repo).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::PolicyInvalid,
                format!("repository {repo} has no lifecycle policy"),
            )
        })
    }

    /// What `repo`'s attached policy would do at `now`, changing nothing.
    pub async fn preview_lifecycle(&self, repo: &RepoName, now: SystemTime) -> Result<Plan> {
        let policy = self.attached_policy(repo).await?;
        self.preview_lifecycle_with(repo, &policy, now).await
    }

    /// What `policy` would do to `repo` at `now` (ECR's "preview" of a policy not yet
    /// attached), changing nothing.
    pub async fn preview_lifecycle_with(
        &self,
        repo: &RepoName,
        policy: &LifecyclePolicy,
        now: SystemTime,
    ) -> Result<Plan> {
        Ok(plan(policy, &self.lifecycle_inventory(repo).await?, now))
    }

    /// Applies `repo`'s attached policy as of `now`. Each removal and transition emits an
    /// [`Event`](crate::events::Event); the report lists them.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo), err(level = "debug", Display))]
    pub async fn apply_lifecycle(
        &self,
        repo: &RepoName,
        now: SystemTime,
    ) -> Result<LifecycleReport> {
        let policy = self.attached_policy(repo).await?;
        self.apply_lifecycle_with(repo, &policy, now).await
    }

    /// Applies `policy` to `repo` as of `now`; see [`Registry::apply_lifecycle`].
    pub async fn apply_lifecycle_with(
        &self,
        repo: &RepoName,
        policy: &LifecyclePolicy,
        now: SystemTime,
    ) -> Result<LifecycleReport> {
        self.check_archive_for(policy)?;
        let mut report = LifecycleReport::default();
        for _ in 0..MAX_REPLANS {
            let inventory = self.lifecycle_inventory(repo).await?;
            let plan = plan(policy, &inventory, now);
            report.plans += 1;
            if !self.carry_out(repo, &inventory, &plan, &mut report).await? {
                return Ok(report);
            }
        }
        Ok(report)
    }

    /// Carries out one plan; `true` if some decision was overtaken and a new plan is due.
    async fn carry_out(
        &self,
        repo: &RepoName,
        inventory: &LifecycleInventory,
        plan: &Plan,
        report: &mut LifecycleReport,
    ) -> Result<bool> {
        let judged_on: HashMap<&str, &[String]> = inventory
            .images
            .iter()
            .map(|i| (i.id.as_str(), i.tags.as_slice()))
            .collect();
        let tags_of = |id: &str| -> Vec<Tag> {
            let mut tags: Vec<Tag> = judged_on
                .get(id)
                .into_iter()
                .flat_map(|tags| tags.iter().filter_map(|t| t.parse().ok()))
                .collect();
            tags.sort();
            tags
        };
        let mut overtaken = false;
        // Removals. An index goes before the children it lists: what an index still
        // listed is retried after a pass that removed something; with no progress, an
        // index that stays (pushed since) lists it, and a new plan sees that.
        let mut pending: Vec<_> = plan
            .decisions
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Expire | Outcome::CascadeExpire))
            .collect();
        loop {
            let mut listed_by_index = Vec::new();
            let mut progress = false;
            for decision in pending {
                let digest: Digest = decision.id.parse()?;
                match self
                    .delete_manifest_guarded(
                        repo,
                        &digest,
                        Some(&tags_of(&decision.id)),
                        DeleteCause::Expired(
                            decision
                                .rule
                                .filter(|_| decision.outcome == Outcome::Expire),
                        ),
                    )
                    .await
                {
                    Ok(true) => {
                        progress = true;
                        let rule = decision
                            .rule
                            .filter(|_| decision.outcome == Outcome::Expire);
                        match rule {
                            Some(rule) => report.expired.push((digest, rule)),
                            None => report.cascade_expired.push(digest),
                        }
                    }
                    Ok(false) => {
                        report.replanned.push(digest);
                        overtaken = true;
                    }
                    // Deleted by someone else since: nothing left to do.
                    Err(e) if e.kind() == ErrorKind::ManifestUnknown => {}
                    Err(e) if e.kind() == ErrorKind::ManifestReferenced => {
                        listed_by_index.push(decision)
                    }
                    Err(e) => return Err(e),
                }
            }
            if listed_by_index.is_empty() {
                break;
            }
            if !progress {
                overtaken = true;
                break;
            }
            pending = listed_by_index;
        }
        for decision in &plan.decisions {
            let Outcome::Transition(StorageClass::Archive) = decision.outcome else {
                continue;
            };
            let digest: Digest = decision.id.parse()?;
            match self
                .archive_image_guarded(repo, &digest, Some(&tags_of(&decision.id)), decision.rule)
                .await
            {
                Ok(true) => report
                    .transitioned
                    .push((digest, decision.rule.unwrap_or_default())),
                Ok(false) => {
                    report.replanned.push(digest);
                    overtaken = true;
                }
                Err(e) if e.kind() == ErrorKind::ManifestUnknown => {}
                Err(e) => return Err(e),
            }
        }
        Ok(overtaken)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::digest::Algorithm;
    use crate::reference::Reference;

    /// A plan made before a tag moved must not be carried out on the new state: the guard
    /// in the delete refuses, and the image is planned again.
    #[tokio::test]
    async fn a_stale_decision_is_refused_by_the_guard() {
        let registry = Registry::in_memory();
        let repo: RepoName = "app".parse().unwrap();
        let config = Bytes::from_static(b"{}");
        let config_digest = Digest::of(Algorithm::Sha256, &config);
        registry
            .push_blob(&repo, &config_digest, config.clone())
            .await
            .unwrap();
        let manifest = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": crate::OCI_IMAGE_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest.to_string(), "size": 2},
                "layers": []}))
            .unwrap(),
        );
        let digest = Digest::of(Algorithm::Sha256, &manifest);
        registry
            .push_manifest(
                &repo,
                &Reference::Digest(digest.clone()),
                manifest.clone(),
                None,
            )
            .await
            .unwrap();
        let policy = LifecyclePolicy::parse(
            r#"{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged",
                "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1},
                "action": {"type": "expire"}}]}"#,
        )
        .unwrap();
        let now = SystemTime::now() + Duration::from_secs(2 * 86_400);
        let inventory = registry.lifecycle_inventory(&repo).await.unwrap();
        let stale = plan(&policy, &inventory, now);
        assert_eq!(stale.expired(), [digest.to_string()]);

        // Tagged after planning, before acting.
        registry
            .push_manifest(
                &repo,
                &Reference::Tag("keep".parse().unwrap()),
                manifest,
                None,
            )
            .await
            .unwrap();
        let mut report = LifecycleReport::default();
        let overtaken = registry
            .carry_out(&repo, &inventory, &stale, &mut report)
            .await
            .unwrap();
        assert!(overtaken);
        assert_eq!(report.replanned, vec![digest.clone()]);
        assert!(report.expired.is_empty());
        registry
            .get_manifest(&repo, &Reference::Tag("keep".parse().unwrap()))
            .await
            .unwrap();
    }
}
