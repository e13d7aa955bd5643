//! Access control the way ECR decides it.
//!
//! A [`Request`] says who asks ([`Principal`]: anonymous, or an [`Identity`] with the
//! identity policies attached to it), for which [`Action`] (ECR's names, such as
//! `ecr:BatchGetImage`), on which repository ([`Arn`]), with what [`Context`] (the time,
//! the source address, the transport: the values of condition keys). A [`Policy`] is an
//! IAM policy document, validated as ECR accepts repository policies and IAM accepts
//! identity policies. [`evaluate`] decides as IAM does for one account:
//!
//! 1. an explicit `Deny` in any applicable statement wins;
//! 2. otherwise an `Allow` in an identity policy or in the repository's policy allows;
//! 3. otherwise the request is denied.
//!
//! Anonymous callers are allowed only by a repository policy statement whose principal
//! is `*` (a public repository). The [`Decision`] names the statement that decided.
//! [`Authorizer`] is the hook for another engine (OPA, Cedar, an embedder's own);
//! [`IamAuthorizer`] is the evaluator above.
//!
//! Everything here is pure: no I/O, no clock (the time comes in the context).
//!
//! ```
//! use std::time::SystemTime;
//! use wharf::access::{Action, Arn, Context, Identity, Policy, Principal, Request, evaluate};
//!
//! let repository = Policy::repository(r#"{"Version": "2012-10-17", "Statement": [
//!     {"Sid": "PublicPull", "Effect": "Allow", "Principal": "*",
//!      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}"#)?;
//! let resource = Arn::repository("us-east-1", "123456789012", "team/app");
//! let context = Context::at(SystemTime::now());
//! let ask = |principal, action| {
//!     evaluate(&Request { principal, action, resource: &resource, context: &context },
//!              Some(&repository))
//! };
//! assert!(ask(&Principal::Anonymous, Action::BatchGetImage).allowed());
//! assert!(!ask(&Principal::Anonymous, Action::PutImage).allowed());
//! let alice = Principal::Identity(Identity::user("123456789012", "alice").with_policy(
//!     Policy::identity(r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow",
//!         "Action": "ecr:*", "Resource": "arn:aws:ecr:*:123456789012:repository/team/*"}}"#)?,
//! ));
//! assert!(ask(&alice, Action::PutImage).allowed());
//! # Ok::<(), wharf::Error>(())
//! ```

mod action;
mod arn;
mod condition;
mod evaluate;
mod policy;
mod request;
pub mod token;
mod variables;
mod wildcard;

use std::fmt;

pub use self::action::Action;
pub use self::arn::Arn;
pub use self::evaluate::{Basis, Decision, PolicySource, StatementRef, evaluate, within_session};
pub use self::policy::{
    Effect, MAX_IDENTITY_POLICY_LEN, MAX_REPOSITORY_POLICY_LEN, MAX_SESSION_POLICY_LEN, Policy,
    PolicyKind,
};
pub use self::request::{Context, Identity, Principal, PrincipalKind, Request};

/// Decides requests: the hook for an authorization engine.
///
/// # Contract
///
/// 1. `authorize` is a pure function of its arguments: the same request and policy get
///    the same decision.
/// 2. A decision that allows names the statement (or rule) that allowed; a refusal
///    names the one that denied, or says nothing allowed.
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// Decides `request`, given the repository's policy if it has one.
    fn authorize(&self, request: &Request<'_>, repository_policy: Option<&Policy>) -> Decision;
}

/// The IAM evaluator ([`evaluate`]) as an [`Authorizer`]: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct IamAuthorizer;

impl Authorizer for IamAuthorizer {
    fn authorize(&self, request: &Request<'_>, repository_policy: Option<&Policy>) -> Decision {
        evaluate(request, repository_policy)
    }
}
