//! Access control on [`Registry`]: repository policies kept in metadata, and
//! [`CallerRegistry`], the registry seen by one caller, whose every method authorizes
//! before it acts, so a frontend cannot forget a check.
//!
//! A request is decided by the registry's [`Authorizer`] (by default IAM's rules,
//! [`crate::access::evaluate`]) against the caller's identity policies and the
//! repository's policy; a repository whose settings say `public` also allows anyone
//! the pull actions ([`Action::PULL`]). Every refusal, and every allowed change, is an
//! [`Event::Access`] for the audit log.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::REPOSITORY_POLICIES;
use crate::access::{
    Action, Arn, Basis, Context, Decision, Policy, PolicySource, Principal, Request,
};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::meta::{Expect, Version};
use crate::reference::RepoName;

/// A repository policy as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    text: String,
    set_at_ms: u64,
}

/// The statement a `public` repository stands for.
static PUBLIC_PULL: LazyLock<Policy> = LazyLock::new(|| {
    let actions: Vec<String> = Action::PULL
        .iter()
        .map(|a| format!("{:?}", a.name()))
        .collect();
    Policy::repository(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Sid": "PublicRepository", "Effect": "Allow", "Principal": "*", "Action": [{}]}}]}}"#,
        actions.join(", ")
    ))
    .expect("the public statement is valid")
});

/// Where the registry's resources live, for their ARNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAccount {
    /// The region in repository ARNs.
    pub region: String,
    /// The 12-digit account id in repository ARNs.
    pub account: String,
}

impl Default for ResourceAccount {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "000000000000".into(),
        }
    }
}

impl Registry {
    /// The ARN of `repo` in this registry.
    pub fn repository_arn(&self, repo: &RepoName) -> Arn {
        let account = &self.inner.resource_account;
        Arn::repository(&account.region, &account.account, repo.as_str())
    }

    /// Sets `repo`'s policy after validating it; with `expected`, only if the stored
    /// policy is still at that version (`None` inside: only if there is none), else
    /// [`ErrorKind::Conflict`]. Returns the new version.
    pub async fn set_repository_policy(
        &self,
        repo: &RepoName,
        text: &str,
        expected: Option<Option<Version>>,
    ) -> Result<Version> {
        self.repository(repo).await?;
        Policy::repository(text)?;
        let record = PolicyRecord {
            text: text.to_owned(),
            set_at_ms: self.now_millis(),
        };
        let expect = match expected {
            None => Expect::Any,
            Some(None) => Expect::Absent,
            Some(Some(version)) => Expect::Version(version),
        };
        REPOSITORY_POLICIES
            .put(self.meta(), repo, &record, expect)
            .await
    }

    /// `repo`'s policy with its version, if it has one.
    pub async fn repository_policy(&self, repo: &RepoName) -> Result<Option<(Policy, Version)>> {
        self.repository(repo).await?;
        match REPOSITORY_POLICIES.get(self.meta(), repo).await? {
            // Validated when set; one that no longer parses is reported, not ignored.
            Some((record, version)) => Ok(Some((Policy::repository(&record.text)?, version))),
            None => Ok(None),
        }
    }

    /// Removes `repo`'s policy (only at `expected`, when given).
    pub async fn delete_repository_policy(
        &self,
        repo: &RepoName,
        expected: Option<Version>,
    ) -> Result<()> {
        self.repository(repo).await?;
        let expect = expected.map_or(Expect::Any, Expect::Version);
        REPOSITORY_POLICIES.delete(self.meta(), repo, expect).await
    }

    /// Removes the policy of a repository being deleted.
    pub(super) async fn forget_repository_policy(&self, repo: &RepoName) -> Result<()> {
        REPOSITORY_POLICIES
            .delete(self.meta(), repo, Expect::Any)
            .await
    }

    /// This registry as `principal` sees it: every method authorizes first.
    pub fn as_caller(&self, principal: Principal, context: Context) -> CallerRegistry {
        CallerRegistry {
            registry: self.clone(),
            caller: Some(Arc::new((principal, context))),
        }
    }

    /// The same view with no checks, for a frontend that serves a single trusted user
    /// (the example server without `--auth`): every method acts as the registry's
    /// method of the same name, and nothing is audited. Say so where it is used.
    pub fn as_trusted(&self) -> CallerRegistry {
        CallerRegistry {
            registry: self.clone(),
            caller: None,
        }
    }
}

/// The registry seen by one caller (see [`Registry::as_caller`]). Refusals are
/// [`ErrorKind::Denied`], or [`ErrorKind::Unauthorized`] for an anonymous caller (whom
/// credentials might help).
#[derive(Debug, Clone)]
pub struct CallerRegistry {
    pub(super) registry: Registry,
    /// Who asks and with what context; `None` for [`Registry::as_trusted`].
    caller: Option<Arc<(Principal, Context)>>,
}

impl CallerRegistry {
    /// The registry behind the view, for what needs no authorization (an embedder's own
    /// maintenance).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The caller; `None` for a trusted view.
    pub fn principal(&self) -> Option<&Principal> {
        self.caller.as_deref().map(|(principal, _)| principal)
    }

    /// Decides `action` on `repo`, without acting or recording anything; `None` for a
    /// trusted view, which decides nothing.
    async fn decide_checked(&self, action: Action, repo: &RepoName) -> Result<Option<Decision>> {
        match &self.caller {
            Some(caller) => self
                .decide_for(&caller.0, &caller.1, action, repo)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    /// Whether the caller may do `action` on `repo`, without acting or recording
    /// anything (a trusted view may do everything).
    pub async fn may(&self, action: Action, repo: &RepoName) -> Result<bool> {
        Ok(self
            .decide_checked(action, repo)
            .await?
            .is_none_or(|decision| decision.allowed()))
    }

    async fn decide_for(
        &self,
        principal: &Principal,
        context: &Context,
        action: Action,
        repo: &RepoName,
    ) -> Result<Decision> {
        let registry = &self.registry;
        let resource = registry.repository_arn(repo);
        let (policy, public) = match registry.repository(repo).await {
            Ok(repository) => (
                registry.repository_policy(repo).await?.map(|(p, _)| p),
                repository.settings.public,
            ),
            Err(e) if e.kind() == ErrorKind::NameUnknown => (None, false),
            Err(e) => return Err(e),
        };
        let request = Request {
            principal,
            action,
            resource: &resource,
            context,
        };
        let authorizer = &registry.inner.authorizer;
        let decision = authorizer.authorize(&request, policy.as_ref());
        if public && decision.basis == Basis::NoAllow {
            let public = authorizer.authorize(&request, Some(&PUBLIC_PULL));
            if public.allowed() {
                return Ok(public);
            }
        }
        Ok(decision)
    }

    /// Authorizes `action` on `repo` and records it for audit: an error naming the
    /// action when refused.
    pub(super) async fn authorize(&self, action: Action, repo: &RepoName) -> Result<()> {
        let Some(caller) = &self.caller else {
            return Ok(());
        };
        let principal = &caller.0;
        let decision = self.decide_for(principal, &caller.1, action, repo).await?;
        self.audit(principal, action, repo, &decision);
        if decision.allowed() {
            return Ok(());
        }
        let kind = match principal {
            Principal::Anonymous => ErrorKind::Unauthorized,
            Principal::Identity(_) => ErrorKind::Denied,
        };
        let who = match principal {
            Principal::Anonymous => "an anonymous caller".to_owned(),
            Principal::Identity(identity) => identity.arn.to_string(),
        };
        Err(Error::new(
            kind,
            format!("{who} may not {} on repository {repo}", action.name()),
        ))
    }

    fn audit(&self, principal: &Principal, action: Action, repo: &RepoName, decision: &Decision) {
        if decision.allowed() && !action.is_change() {
            return;
        }
        let statement = match &decision.basis {
            Basis::Allowed(found) | Basis::ExplicitDeny(found) => {
                let source = match found.source {
                    PolicySource::Repository => "repository policy".to_owned(),
                    PolicySource::Identity(i) => format!("identity policy {i}"),
                };
                Some(match &found.sid {
                    Some(sid) => format!("{source} statement {} (Sid {sid:?})", found.index),
                    None => format!("{source} statement {}", found.index),
                })
            }
            Basis::NoAllow => None,
        };
        self.registry.emit(Event::Access {
            principal: match principal {
                Principal::Anonymous => "anonymous".to_owned(),
                Principal::Identity(identity) => identity.arn.to_string(),
            },
            action: action.name(),
            resource: self.registry.repository_arn(repo).to_string(),
            allowed: decision.allowed(),
            statement,
        });
    }

    /// Authorizes a push into `repo`: `action`, and `ecr:CreateRepository` first when the
    /// repository does not exist yet (a push creates it).
    pub(super) async fn authorize_push(&self, action: Action, repo: &RepoName) -> Result<()> {
        match self.registry.repository(repo).await {
            Err(e) if e.kind() == ErrorKind::NameUnknown => {
                self.authorize(Action::CreateRepository, repo).await?;
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.authorize(action, repo).await
    }
}
