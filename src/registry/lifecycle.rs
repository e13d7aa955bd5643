//! Lifecycle policies on [`Registry`]: attach one to a repository, preview it, apply it.
//!
//! Preview and apply run the same pure planner ([`crate::plan`]) over the same
//! inventory, so for one state and one `now` they decide the same. Apply carries the
//! plan out with guarded operations: an image is expired only while exactly the tags it
//! was judged on point at it; if they changed, the repository is planned again from its
//! new state rather than acted on by a stale decision.

use std::time::SystemTime;

use super::Registry;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::lifecycle::{
    LifecycleImage, LifecycleInventory, LifecyclePolicy, Outcome, Plan, StorageClass, plan,
};
use crate::reference::{RepoName, Tag};

/// How many times apply plans again after finding its plan overtaken by concurrent
/// changes, before it reports the rest as skipped.
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
            LifecyclePolicy::parse(text)?;
        }
        let mut settings = self.repository(repo).await?.settings;
        settings.lifecycle_policy = policy.map(str::to_owned);
        self.update_repository(repo, settings).await.map(|_| ())
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
                    pushed_at: image.pushed_at,
                    last_pulled_at: image.last_pulled_at,
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
    /// [`Event`]; the report lists them.
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
        let tags_of = |id: &str| -> Vec<Tag> {
            let image = inventory.images.iter().find(|i| i.id == id);
            let mut tags: Vec<Tag> = image
                .into_iter()
                .flat_map(|i| i.tags.iter().filter_map(|t| t.parse().ok()))
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
                    .delete_manifest_guarded(repo, &digest, Some(&tags_of(&decision.id)))
                    .await
                {
                    Ok(true) => {
                        progress = true;
                        let rule = decision
                            .rule
                            .filter(|_| decision.outcome == Outcome::Expire);
                        match rule {
                            Some(rule) => report.expired.push((digest.clone(), rule)),
                            None => report.cascade_expired.push(digest.clone()),
                        }
                        self.emit(Event::ImageExpired {
                            repo: repo.clone(),
                            digest,
                            rule,
                        });
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
