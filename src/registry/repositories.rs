//! Repositories on [`Registry`]: creation, settings, the catalog, deletion, and ECR tag
//! mutability.
//!
//! A repository is the record `repo/<name>`. Pushes create it on first use unless the
//! registry is built with `create_repositories_on_push(false)`, as ECR behaves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Registry;
use super::outbox::{Applied, CarriesEvents, Outcome};
use super::schema::{
    LINKS, MANIFESTS, PARENTS, PULLS, Prefix, REFERRER_LISTS, REFERRERS, REPOSITORIES, TAG_HISTORY,
    TAGGED, TAGS,
};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, EventId};
use crate::lifecycle::wildcard_match;
use crate::meta::{Expect, Version};
use crate::reference::{RepoName, Tag};
use crate::util::from_millis;

/// Most tag-mutability exclusion filters a repository may have (ECR's limit).
pub const MAX_MUTABILITY_EXCLUSIONS: usize = 5;

/// Whether a repository's tags may move to another manifest once set (ECR
/// `imageTagMutability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    /// Tags move freely.
    #[default]
    Mutable,
    /// No tag moves once set.
    Immutable,
    /// Tags are immutable except those matching an exclusion filter.
    ImmutableWithExclusion,
    /// Tags move freely except those matching an exclusion filter, which are immutable.
    MutableWithExclusion,
}

/// A repository's settings, stored as metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RepositorySettings {
    /// Tag mutability.
    pub tag_mutability: TagMutability,
    /// Wildcard filters (`*` matches any run of characters) for the `*_WITH_EXCLUSION`
    /// modes; at most [`MAX_MUTABILITY_EXCLUSIONS`].
    pub mutability_exclusions: Vec<String>,
    /// The key-encryption key the repository's blobs are wrapped with (`None`: the
    /// registry's default). Blobs it shares with other repositories stay one copy, their
    /// data keys wrapped once more under this KEK.
    pub encryption_key: Option<String>,
    /// Whether new blobs are encrypted (`None`: as the registry's default). Blobs
    /// written under another setting stay readable.
    pub encrypted: Option<bool>,
    /// Whether new blobs are compressed where that helps (`None`: as the registry's
    /// default). Blobs written under another setting stay readable.
    pub compressed: Option<bool>,
    /// Whether pushed manifests are handed to the scanner.
    pub scan_on_push: bool,
    /// The lifecycle policy, as the ECR JSON text it was given in.
    pub lifecycle_policy: Option<String>,
    /// The repository's tags (ECR's resource tags, not image tags): free-form, and
    /// the values of `ecr:ResourceTag/<key>` and `aws:ResourceTag/<key>` in policy
    /// conditions.
    pub labels: BTreeMap<String, String>,
    /// Anyone may pull, anonymous callers too: the same as a repository policy
    /// statement allowing `*` the pull actions (see [`crate::access`]).
    pub public: bool,
}

impl RepositorySettings {
    /// Checks the settings, naming the field at fault.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: String| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("repository settings: {why}"),
            )
        };
        let with_exclusions = matches!(
            self.tag_mutability,
            TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion
        );
        if with_exclusions && self.mutability_exclusions.is_empty() {
            return Err(invalid(format!(
                "mutability_exclusions must name at least one filter with {:?}",
                self.tag_mutability
            )));
        }
        if !with_exclusions && !self.mutability_exclusions.is_empty() {
            return Err(invalid(format!(
                "mutability_exclusions apply only to the *_WITH_EXCLUSION modes, not {:?}",
                self.tag_mutability
            )));
        }
        if self.mutability_exclusions.len() > MAX_MUTABILITY_EXCLUSIONS {
            return Err(invalid(format!(
                "mutability_exclusions has {} filters, at most {MAX_MUTABILITY_EXCLUSIONS} are allowed",
                self.mutability_exclusions.len()
            )));
        }
        if let Some(kek) = &self.encryption_key {
            crate::blob::check_kek_name(kek)?;
            if self.encrypted == Some(false) {
                return Err(invalid(format!(
                    "encryption_key {kek:?} is set while encrypted is false"
                )));
            }
        }
        if let Some(policy) = &self.lifecycle_policy {
            crate::lifecycle::LifecyclePolicy::parse(policy)?;
        }
        for filter in &self.mutability_exclusions {
            let ok = !filter.is_empty()
                && filter.len() <= 128
                && filter
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-*".contains(&c));
            if !ok {
                return Err(invalid(format!(
                    "mutability exclusion filter {filter:?} must be 1 to 128 characters of [a-zA-Z0-9._-*]"
                )));
            }
        }
        Ok(())
    }

    /// Whether `tag` may move to another manifest once set.
    pub fn tag_is_mutable(&self, tag: &Tag) -> bool {
        let excluded = self
            .mutability_exclusions
            .iter()
            .any(|f| wildcard_match(f, tag.as_str()));
        match self.tag_mutability {
            TagMutability::Mutable => true,
            TagMutability::Immutable => false,
            TagMutability::ImmutableWithExclusion => excluded,
            TagMutability::MutableWithExclusion => !excluded,
        }
    }
}

/// A repository and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The name.
    pub name: RepoName,
    /// The settings.
    pub settings: RepositorySettings,
    /// When it was created.
    pub created_at: std::time::SystemTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RepositoryRecord {
    created_at_ms: u64,
    settings: RepositorySettings,
    /// The events that wrote this record, newest last (see `outbox.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<EventId>,
}

impl CarriesEvents for RepositoryRecord {
    fn carried(&mut self) -> &mut Vec<EventId> {
        &mut self.events
    }
}

impl RepositoryRecord {
    pub(super) fn into_repository(self, name: &RepoName) -> Repository {
        Repository {
            name: name.clone(),
            settings: self.settings,
            created_at: from_millis(self.created_at_ms),
        }
    }
}

/// Keys of everything a repository owns in the metadata store start with one of these.
fn owned_prefixes(name: &RepoName) -> [String; 9] {
    [
        LINKS.prefix(),
        MANIFESTS.prefix(),
        TAGS.prefix(),
        TAG_HISTORY.prefix(),
        TAGGED.prefix(),
        PARENTS.prefix(),
        REFERRERS.prefix(),
        REFERRER_LISTS.prefix(),
        PULLS.prefix(),
    ]
    .map(|table| format!("{table}{}", Prefix::in_repo(name).text))
}

impl Registry {
    /// Creates a repository; [`ErrorKind::Conflict`] if it exists.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %name), err(level = "debug", Display))]
    pub async fn create_repository(
        &self,
        name: &RepoName,
        settings: RepositorySettings,
    ) -> Result<Repository> {
        settings.validate()?;
        let record = RepositoryRecord {
            created_at_ms: self.now_millis(),
            settings,
            events: Vec::new(),
        };
        let event = Event::RepositoryCreated { repo: name.clone() };
        self.commit_with_event(&REPOSITORIES, name, |existing| match existing {
            Some(_) => Err(Error::new(
                ErrorKind::Conflict,
                format!("repository {name} already exists"),
            )),
            None => Ok(Some((Outcome::Put(record.clone()), event.clone()))),
        })
        .await?;
        Ok(record.into_repository(name))
    }

    fn name_unknown(name: &RepoName) -> Error {
        Error::new(
            ErrorKind::NameUnknown,
            format!("repository {name} does not exist"),
        )
    }

    /// A repository's record with its version; [`ErrorKind::NameUnknown`] if there is none.
    async fn repository_record(&self, name: &RepoName) -> Result<(RepositoryRecord, Version)> {
        REPOSITORIES
            .get(self.meta(), name)
            .await?
            .ok_or_else(|| Self::name_unknown(name))
    }

    /// A repository; [`ErrorKind::NameUnknown`] if there is none.
    pub async fn repository(&self, name: &RepoName) -> Result<Repository> {
        let (record, _) = self.repository_record(name).await?;
        Ok(record.into_repository(name))
    }

    /// The repository a push goes to, created on first push if the registry allows it.
    pub(super) async fn repository_for_push(&self, name: &RepoName) -> Result<Repository> {
        match self.repository(name).await {
            Err(e) if e.kind() == ErrorKind::NameUnknown && self.inner.create_on_push => {
                let settings = RepositorySettings {
                    scan_on_push: self.scan_on_push_by_default(),
                    ..RepositorySettings::default()
                };
                match self.create_repository(name, settings).await {
                    // Created concurrently by another push: use that one. A conflict
                    // that created nothing (writers racing for the outbox) is the
                    // error to report, not a missing repository.
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        match self.repository(name).await {
                            Err(missing) if missing.kind() == ErrorKind::NameUnknown => Err(e),
                            found => found,
                        }
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Replaces a repository's settings.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %name), err(level = "debug", Display))]
    pub async fn update_repository(
        &self,
        name: &RepoName,
        settings: RepositorySettings,
    ) -> Result<Repository> {
        settings.validate()?;
        let event = Event::RepositorySettingsChanged { repo: name.clone() };
        let updated = self
            .commit_with_event(&REPOSITORIES, name, |record| match record {
                Some((record, _)) if record.settings == settings => Ok(None),
                Some((record, _)) => {
                    let next = RepositoryRecord {
                        settings: settings.clone(),
                        ..record.clone()
                    };
                    Ok(Some((Outcome::Put(next), event.clone())))
                }
                None => Err(Self::name_unknown(name)),
            })
            .await?;
        self.forget_repository_access(name);
        match updated {
            Applied::Put(record, _) => Ok(record.into_repository(name)),
            _ => self.repository(name).await,
        }
    }

    /// Repository names in lexical order, after `last`, at most `n` (the `_catalog` API).
    pub async fn list_repositories(
        &self,
        n: usize,
        last: Option<&RepoName>,
    ) -> Result<Vec<RepoName>> {
        REPOSITORIES
            .list_keys(self.meta(), &Prefix::all(), last, n)
            .await
    }

    /// Deletes a repository with its tags, manifests, links and referrers. Without
    /// `force`, a repository that still holds manifests is refused, as ECR does. Blob
    /// bytes stay for garbage collection.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %name, force), err(level = "debug", Display))]
    pub async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<()> {
        self.repository(name).await?;
        let images = Prefix::in_repo(name);
        if !force
            && !MANIFESTS
                .list_keys(self.meta(), &images, None, 1)
                .await?
                .is_empty()
        {
            return Err(Error::new(
                ErrorKind::RepositoryNotEmpty,
                format!(
                    "repository {name} still holds images: delete them first, or delete with force"
                ),
            ));
        }
        // Everything its manifests held may become garbage: candidates first, so a crash
        // after the commit point leaks nothing.
        for entry in MANIFESTS.list_all(self.meta(), &images).await? {
            let mut held = entry.value.blobs;
            held.push(entry.key.item);
            self.release_blobs(&held).await?;
        }
        // The commit point: from here the repository does not exist.
        let event = Event::RepositoryDeleted { repo: name.clone() };
        self.commit_with_event(&REPOSITORIES, name, |record| match record {
            Some(_) => Ok(Some((Outcome::Delete, event.clone()))),
            None => Err(Self::name_unknown(name)),
        })
        .await?;
        self.forget_repository_access(name);
        for prefix in owned_prefixes(name) {
            loop {
                let page = self.inner.meta.list_keys(&prefix, None, 1000).await?;
                if page.is_empty() {
                    break;
                }
                for key in page {
                    self.inner.meta.delete(&key, Expect::Any).await?;
                }
            }
        }
        self.forget_repository_policy(name).await?;
        self.cancel_uploads_into(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_anchored() {
        for (pattern, text, want) in [
            ("latest", "latest", true),
            ("latest", "latest2", false),
            ("prod*", "prod", true),
            ("prod*", "production", true),
            ("prod*", "preprod", false),
            ("*-rc", "1.0-rc", true),
            ("*-rc", "1.0-rc1", false),
            ("v*.*", "v1.2", true),
            ("v*.*", "v12", false),
            ("*", "", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*x*", "abc", false),
        ] {
            assert_eq!(wildcard_match(pattern, text), want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn mutability_modes() {
        let tag = |t: &str| t.parse::<Tag>().unwrap();
        let settings = |mode, filters: &[&str]| RepositorySettings {
            tag_mutability: mode,
            mutability_exclusions: filters.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(settings(TagMutability::Mutable, &[]).tag_is_mutable(&tag("v1")));
        assert!(!settings(TagMutability::Immutable, &[]).tag_is_mutable(&tag("v1")));
        let s = settings(TagMutability::ImmutableWithExclusion, &["latest", "dev-*"]);
        assert!(s.tag_is_mutable(&tag("latest")) && s.tag_is_mutable(&tag("dev-42")));
        assert!(!s.tag_is_mutable(&tag("v1")));
        let s = settings(TagMutability::MutableWithExclusion, &["release-*"]);
        assert!(!s.tag_is_mutable(&tag("release-1")) && s.tag_is_mutable(&tag("latest")));
    }

    #[test]
    fn settings_are_validated() {
        let mut s = RepositorySettings {
            tag_mutability: TagMutability::ImmutableWithExclusion,
            ..Default::default()
        };
        assert!(
            s.validate()
                .unwrap_err()
                .message()
                .contains("mutability_exclusions")
        );
        s.mutability_exclusions = (0..6).map(|i| format!("f{i}")).collect();
        assert!(s.validate().unwrap_err().message().contains("at most 5"));
        s.mutability_exclusions = vec!["bad/filter".into()];
        assert!(s.validate().is_err());
        s.mutability_exclusions = vec!["ok-*".into()];
        s.validate().unwrap();
        s.tag_mutability = TagMutability::Mutable;
        assert!(s.validate().is_err(), "filters without an exclusion mode");
    }
}
