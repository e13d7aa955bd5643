//! Access control on [`Registry`]: repository policies kept in metadata, and
//! [`CallerRegistry`], the registry seen by one caller, whose every method authorizes
//! before it acts, so a frontend cannot forget a check.
//!
//! A request is decided by the registry's [`Authorizer`] (by default IAM's rules,
//! [`crate::access::evaluate`]) against the caller's identity policies and the
//! repository's policy; a repository whose settings say `public` also allows anyone
//! the pull actions ([`Action::PULL`]). Every refusal, and every allowed change, is an
//! [`Event::Access`] for the audit log.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::Registry;
use super::access_cache::RepoAccess;
use super::outbox::{Applied, CarriesEvents, Outcome};
use super::schema::REPOSITORY_POLICIES;
use crate::access::{
    Action, Arn, Basis, Context, Decision, Policy, PolicySource, Principal, Request, within_session,
};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, EventId};
use crate::meta::{Expect, Version};
use crate::reference::RepoName;

/// A repository policy as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PolicyRecord {
    text: String,
    set_at_ms: u64,
    /// The events that wrote this record, newest last (see `outbox.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<EventId>,
}

impl CarriesEvents for PolicyRecord {
    fn carried(&mut self) -> &mut Vec<EventId> {
        &mut self.events
    }
}

/// Checks the version a policy change expects (`None`: any; `Some(None)`: no policy)
/// against the one stored.
fn policy_expected(
    repo: &RepoName,
    expected: Option<Option<Version>>,
    current: Option<Version>,
) -> Result<()> {
    match expected {
        Some(want) if want != current => Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "the policy of {repo} changed: expected {}, found {}",
                want.map_or("no policy".to_owned(), |v| v.to_string()),
                current.map_or("no policy".to_owned(), |v| v.to_string())
            ),
        )),
        _ => Ok(()),
    }
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

/// What the decisions on one repository depend on.
struct Target {
    resource: Arn,
    exists: bool,
    access: Arc<RepoAccess>,
}

/// What a repository that does not exist has: no policy, no tags, not public.
static NO_REPOSITORY: LazyLock<Arc<RepoAccess>> = LazyLock::new(|| {
    Arc::new(RepoAccess {
        public: false,
        policy: None,
        tags: BTreeMap::new(),
    })
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
    /// The region and account of this registry's repository ARNs.
    pub fn resource_account(&self) -> &ResourceAccount {
        &self.inner.resource_account
    }

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
            events: Vec::new(),
        };
        let event = Event::RepositoryPolicyChanged {
            repo: repo.clone(),
            set: true,
        };
        let set = self
            .commit_with_event(&REPOSITORY_POLICIES, repo, |current| {
                policy_expected(repo, expected, current.map(|(_, v)| v))?;
                Ok(Some((Outcome::Put(record.clone()), event.clone())))
            })
            .await;
        self.inner.access_cache.forget(repo);
        match set? {
            Applied::Put(_, version) => Ok(version),
            _ => unreachable!("a policy write always puts"),
        }
    }

    /// `repo`'s policy with its version, if it has one.
    pub async fn repository_policy(&self, repo: &RepoName) -> Result<Option<(Policy, Version)>> {
        self.repository(repo).await?;
        self.stored_repository_policy(repo).await
    }

    /// The policy record of `repo`, parsed, without checking that the repository exists.
    async fn stored_repository_policy(&self, repo: &RepoName) -> Result<Option<(Policy, Version)>> {
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
        let event = Event::RepositoryPolicyChanged {
            repo: repo.clone(),
            set: false,
        };
        let deleted = self
            .commit_with_event(&REPOSITORY_POLICIES, repo, |current| {
                policy_expected(repo, expected.map(Some), current.map(|(_, v)| v))?;
                Ok(current.map(|_| (Outcome::Delete, event.clone())))
            })
            .await;
        self.inner.access_cache.forget(repo);
        deleted.map(drop)
    }

    /// Removes the policy of a repository being deleted.
    pub(super) async fn forget_repository_policy(&self, repo: &RepoName) -> Result<()> {
        let deleted = REPOSITORY_POLICIES
            .delete(self.meta(), repo, Expect::Any)
            .await;
        self.inner.access_cache.forget(repo);
        deleted
    }

    /// Forgets what authorization keeps of `repo`: its settings changed.
    pub(super) fn forget_repository_access(&self, repo: &RepoName) {
        self.inner.access_cache.forget(repo);
    }

    /// This registry as `principal` sees it: every method authorizes first.
    pub fn as_caller(&self, principal: Principal, context: Context) -> CallerRegistry {
        self.caller_view(principal, context, None)
    }

    /// This registry as `principal` sees it through a session narrowed by `session`
    /// (for example a token granting pull on one repository): every request must be
    /// allowed by the caller's policies and by `session` ([`within_session`]).
    pub fn as_session(
        &self,
        principal: Principal,
        context: Context,
        session: Arc<Policy>,
    ) -> CallerRegistry {
        self.caller_view(principal, context, Some(session))
    }

    fn caller_view(
        &self,
        principal: Principal,
        context: Context,
        session: Option<Arc<Policy>>,
    ) -> CallerRegistry {
        CallerRegistry {
            registry: self.clone(),
            caller: Some(Arc::new(Caller {
                // The principal's condition keys once, not at every decision.
                context: context.with_principal(&principal),
                principal,
                session,
            })),
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
    caller: Option<Arc<Caller>>,
}

/// Who asks, in what context, narrowed by which session policy.
#[derive(Debug)]
struct Caller {
    principal: Principal,
    context: Context,
    session: Option<Arc<Policy>>,
}

impl CallerRegistry {
    /// The registry behind the view, for what needs no authorization (an embedder's own
    /// maintenance).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The caller; `None` for a trusted view.
    pub fn principal(&self) -> Option<&Principal> {
        self.caller.as_deref().map(|caller| &caller.principal)
    }

    /// Whether the caller may do `action` on `repo`, without acting or recording
    /// anything (a trusted view may do everything).
    pub async fn may(&self, action: Action, repo: &RepoName) -> Result<bool> {
        let Some(caller) = &self.caller else {
            return Ok(true);
        };
        let target = self.target(repo).await?;
        Ok(self.judge(caller, &target, action).allowed())
    }

    /// What decisions on `repo` depend on, read once for all the actions of a request
    /// (and kept a moment for the next requests: [`super::access_cache`]).
    async fn target(&self, repo: &RepoName) -> Result<Target> {
        let registry = &self.registry;
        let resource = registry.repository_arn(repo);
        let cache = &registry.inner.access_cache;
        if let Some(access) = cache.get(repo) {
            return Ok(Target {
                resource,
                exists: true,
                access,
            });
        }
        let start = cache.start();
        let settings = match registry.repository(repo).await {
            Ok(repository) => repository.settings,
            Err(e) if e.kind() == ErrorKind::NameUnknown => {
                return Ok(Target {
                    resource,
                    exists: false,
                    access: NO_REPOSITORY.clone(),
                });
            }
            Err(e) => return Err(e),
        };
        let policy = registry
            .stored_repository_policy(repo)
            .await?
            .map(|(p, _)| p);
        let access = Arc::new(RepoAccess {
            public: settings.public,
            policy,
            tags: settings.labels,
        });
        cache.put(repo, start, access.clone());
        Ok(Target {
            resource,
            exists: true,
            access,
        })
    }

    /// The authorizer's decision on `action` for `target`; a public repository also
    /// allows the pull actions when nothing else decided.
    fn judge(&self, caller: &Caller, target: &Target, action: Action) -> Decision {
        // Tags are the resource's: only a tagged repository pays for a copy.
        let tagged;
        let context = if target.access.tags.is_empty() {
            &caller.context
        } else {
            let mut context = caller.context.clone();
            for (key, value) in &target.access.tags {
                context.set(&format!("ecr:ResourceTag/{key}"), value.clone());
                context.set(&format!("aws:ResourceTag/{key}"), value.clone());
            }
            tagged = context;
            &tagged
        };
        let request = Request {
            principal: &caller.principal,
            action,
            resource: &target.resource,
            context,
        };
        let decision = self.judge_policies(&request, target);
        match &caller.session {
            Some(session) => within_session(decision, &request, session),
            None => decision,
        }
    }

    /// The authorizer's decision before any session narrows it.
    fn judge_policies(&self, request: &Request<'_>, target: &Target) -> Decision {
        let authorizer = &self.registry.inner.authorizer;
        let decision = authorizer.authorize(request, target.access.policy.as_ref());
        if target.access.public && decision.basis == Basis::NoAllow {
            let public = authorizer.authorize(request, Some(&PUBLIC_PULL));
            if public.allowed() {
                return public;
            }
        }
        decision
    }

    /// Authorizes `action` on `repo` and records it for audit: an error naming the
    /// action when refused.
    pub(super) async fn authorize(&self, action: Action, repo: &RepoName) -> Result<()> {
        self.authorize_all(&[action], repo, false).await
    }

    /// Authorizes each of `actions` on `repo` in order, reading the repository once,
    /// and records each for audit; the first refusal is the error. With `push`, a
    /// repository that does not exist yet also needs `ecr:CreateRepository`, first (a
    /// push creates it).
    async fn authorize_all(&self, actions: &[Action], repo: &RepoName, push: bool) -> Result<()> {
        let Some(caller) = &self.caller else {
            return Ok(());
        };
        let target = self.target(repo).await?;
        let create = (push && !target.exists).then_some(Action::CreateRepository);
        for &action in create.iter().chain(actions) {
            let decision = self.judge(caller, &target, action);
            self.audit(&caller.principal, action, &target.resource, &decision);
            if !decision.allowed() {
                let kind = match caller.principal {
                    Principal::Anonymous => ErrorKind::Unauthorized,
                    Principal::Identity(_) => ErrorKind::Denied,
                };
                let who = match &caller.principal {
                    Principal::Anonymous => "an anonymous caller".to_owned(),
                    Principal::Identity(identity) => identity.arn.to_string(),
                };
                return Err(Error::new(
                    kind,
                    format!("{who} may not {} on repository {repo}", action.name()),
                ));
            }
        }
        Ok(())
    }

    /// Authorizes an action on the registry rather than one repository (such as
    /// `ecr:GetAuthorizationToken`, whose resource is `*`), and records it for audit. It
    /// is decided against the ARN `arn:aws:ecr:<region>:<account>:repository/*`, so
    /// statements whose `Resource` is `*` or covers every repository apply, and those
    /// naming some repositories do not.
    pub async fn authorize_registry(&self, action: Action) -> Result<()> {
        let Some(caller) = &self.caller else {
            return Ok(());
        };
        let account = &self.registry.inner.resource_account;
        let target = Target {
            resource: Arn::repository(&account.region, &account.account, "*"),
            exists: true,
            access: NO_REPOSITORY.clone(),
        };
        let decision = self.judge(caller, &target, action);
        self.audit(&caller.principal, action, &target.resource, &decision);
        if decision.allowed() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Denied,
            format!("the caller may not {} on this registry", action.name()),
        ))
    }

    /// Authorizes a push into `repo`: `actions`, and `ecr:CreateRepository` first when
    /// the repository does not exist yet.
    pub(super) async fn authorize_push(&self, actions: &[Action], repo: &RepoName) -> Result<()> {
        self.authorize_all(actions, repo, true).await
    }

    /// Authorizes several `actions` on `repo`, in order, reading the repository once.
    pub(super) async fn authorize_each(&self, actions: &[Action], repo: &RepoName) -> Result<()> {
        self.authorize_all(actions, repo, false).await
    }

    fn audit(&self, principal: &Principal, action: Action, resource: &Arn, decision: &Decision) {
        if decision.allowed() && !action.is_change() {
            return;
        }
        let statement = match &decision.basis {
            Basis::Allowed(found) | Basis::ExplicitDeny(found) => {
                let source = match found.source {
                    PolicySource::Repository => "repository policy".to_owned(),
                    PolicySource::Identity(i) => format!("identity policy {i}"),
                    PolicySource::Session => "session policy".to_owned(),
                };
                Some(match &found.sid {
                    Some(sid) => format!("{source} statement {} (Sid {sid:?})", found.index),
                    None => format!("{source} statement {}", found.index),
                })
            }
            Basis::NoAllow => None,
            Basis::OutsideSession => Some("outside the session policy".to_owned()),
        };
        self.registry.emit(Event::Access {
            principal: match principal {
                Principal::Anonymous => "anonymous".to_owned(),
                Principal::Identity(identity) => identity.arn.to_string(),
            },
            action: action.name().to_owned(),
            resource: resource.to_string(),
            allowed: decision.allowed(),
            statement,
        });
    }
}
