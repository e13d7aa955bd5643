//! IAM's evaluation for one account: an explicit `Deny` in any applicable statement
//! wins; otherwise an `Allow` in an identity policy or the repository policy allows;
//! otherwise the request is denied. The outcome does not depend on the order of
//! policies or statements; the decision names the first statement that decided.

use super::policy::{Effect, Patterns, Policy, PolicyKind, PrincipalPattern, Statement};
use super::request::{Context, Principal, Request};
use super::variables::substitute;
use super::wildcard;

/// Which policy a deciding statement is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The caller's identity policy at this position in [`Identity::policies`](super::Identity::policies).
    Identity(usize),
    /// The repository's policy.
    Repository,
    /// The session policy that narrows the caller's access ([`within_session`]).
    Session,
}

/// The statement that decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// The policy it is in.
    pub source: PolicySource,
    /// Its position in the policy's `Statement` list.
    pub index: usize,
    /// Its `Sid`, if it has one.
    pub sid: Option<String>,
}

/// What decided a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// A `Deny` statement applied.
    ExplicitDeny(StatementRef),
    /// An `Allow` statement applied and no `Deny` did.
    Allowed(StatementRef),
    /// No statement allowed it.
    NoAllow,
    /// Allowed by the caller's policies, but not by the session policy that narrows them.
    OutsideSession,
}

/// The answer to a request, with what decided it (for logs and audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What decided.
    pub basis: Basis,
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn allowed(&self) -> bool {
        matches!(self.basis, Basis::Allowed(_))
    }
}

/// Decides `request` against the caller's identity policies and the repository's
/// policy, as IAM does for principals and resources of one account. Anonymous callers
/// have no identity policies: only a repository statement whose principal is `*` can
/// allow them.
pub fn evaluate(request: &Request<'_>, repository: Option<&Policy>) -> Decision {
    let identity_policies = request
        .principal
        .identity()
        .map(|identity| identity.policies.as_slice())
        .unwrap_or_default();
    let applicable = identity_policies
        .iter()
        .enumerate()
        .map(|(i, policy)| (PolicySource::Identity(i), policy.as_ref()))
        .chain(repository.map(|policy| (PolicySource::Repository, policy)));
    decide(request, applicable)
}

/// Narrows `decision` (on `request`) to what the `session` policy allows, as IAM narrows
/// a session by its session policy: an allowed request stays allowed only when the
/// session policy allows it too; a `Deny` in it refuses. A refusal stays a refusal: a
/// session policy never grants.
pub fn within_session(decision: Decision, request: &Request<'_>, session: &Policy) -> Decision {
    if !decision.allowed() {
        return decision;
    }
    let limit = decide(request, std::iter::once((PolicySource::Session, session)));
    match limit.basis {
        Basis::Allowed(_) => decision,
        Basis::ExplicitDeny(_) => limit,
        Basis::NoAllow | Basis::OutsideSession => Decision {
            basis: Basis::OutsideSession,
        },
    }
}

/// The rules above over `applicable` policies: any applicable `Deny` decides, else the
/// first applicable `Allow`, else nothing allowed.
fn decide<'p>(
    request: &Request<'_>,
    applicable: impl Iterator<Item = (PolicySource, &'p Policy)>,
) -> Decision {
    let context = request.context.for_principal(request.principal);
    let mut allowed = None;
    for (source, policy) in applicable {
        for (index, statement) in policy.statements.iter().enumerate() {
            if !applies(statement, policy, request, &context) {
                continue;
            }
            let found = StatementRef {
                source,
                index,
                sid: statement.sid.clone(),
            };
            match statement.effect {
                Effect::Deny => {
                    return Decision {
                        basis: Basis::ExplicitDeny(found),
                    };
                }
                Effect::Allow => {
                    allowed.get_or_insert(found);
                }
            }
        }
    }
    Decision {
        basis: allowed.map_or(Basis::NoAllow, Basis::Allowed),
    }
}

/// Whether `statement` of `policy` speaks about `request`.
fn applies(
    statement: &Statement,
    policy: &Policy,
    request: &Request<'_>,
    context: &Context,
) -> bool {
    let principal_ok = match (&statement.principals, policy.kind()) {
        (Some(principals), _) => any_or_none(principals, |pattern| {
            principal_matches(pattern, request.principal)
        }),
        // An identity policy speaks for whoever it is attached to.
        (None, PolicyKind::Identity) => request.principal.identity().is_some(),
        (None, PolicyKind::Repository) => false,
        // A session policy narrows whoever holds the session, anonymous callers too.
        (None, PolicyKind::Session) => true,
    };
    principal_ok
        && any_or_none(&statement.actions, |pattern| {
            wildcard::matches(pattern, request.action.name(), true)
        })
        && statement.resources.as_ref().is_none_or(|resources| {
            any_or_none(resources, |pattern| {
                substitute(pattern, context, policy.variables())
                    .is_some_and(|pattern| request.resource.like(&pattern))
            })
        })
        && statement
            .conditions
            .iter()
            .all(|condition| condition.holds(context, policy.variables()))
}

/// For `Action`, `Resource`, `Principal`: some pattern matches; for their `Not` forms:
/// none does.
fn any_or_none<T>(patterns: &Patterns<T>, matches: impl Fn(&T) -> bool) -> bool {
    patterns.items.iter().any(matches) != patterns.negated
}

fn principal_matches(pattern: &PrincipalPattern, principal: &Principal) -> bool {
    match (pattern, principal.identity()) {
        (PrincipalPattern::Everyone, _) => true,
        (PrincipalPattern::Account(account), Some(identity)) => identity.arn.account() == account,
        (PrincipalPattern::Arn(arn), Some(identity)) => identity.arn.as_str() == arn,
        _ => false,
    }
}
