//! Who asks ([`Principal`]), for what ([`Request`]), and what is known about the request
//! ([`Context`]: the values of condition keys).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::action::Action;
use super::arn::Arn;
use super::policy::Policy;

/// Whether a principal is a user or a role (`aws:PrincipalType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user (`arn:aws:iam::<account>:user/<name>`).
    User,
    /// An IAM role (`arn:aws:iam::<account>:role/<name>`).
    Role,
}

/// An authenticated caller: a user or role of an account, with its groups, tags and the
/// identity policies attached to it (its own and its groups').
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller's ARN.
    pub arn: Arn,
    /// User or role.
    pub kind: PrincipalKind,
    /// The caller's name (`aws:username` for users).
    pub name: String,
    /// Groups the caller belongs to.
    pub groups: Vec<String>,
    /// Principal tags (`aws:PrincipalTag/<key>`).
    pub tags: BTreeMap<String, String>,
    /// Identity policies that apply to the caller.
    pub policies: Vec<Arc<Policy>>,
}

impl Identity {
    /// A user of `account` named `name`, with no groups, tags or policies yet.
    pub fn user(account: &str, name: &str) -> Self {
        Self {
            arn: Arn::user(account, name),
            kind: PrincipalKind::User,
            name: name.to_owned(),
            groups: Vec::new(),
            tags: BTreeMap::new(),
            policies: Vec::new(),
        }
    }

    /// A role of `account` named `name`.
    pub fn role(account: &str, name: &str) -> Self {
        Self {
            arn: Arn::role(account, name),
            kind: PrincipalKind::Role,
            ..Self::user(account, name)
        }
    }

    /// The same identity with `policy` attached.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policies.push(Arc::new(policy));
        self
    }

    /// The same identity with the tag `key` = `value`.
    pub fn with_tag(mut self, key: &str, value: &str) -> Self {
        self.tags.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credentials: allowed only by a repository policy whose principal is `*`.
    Anonymous,
    /// An authenticated user or role.
    Identity(Identity),
}

impl Principal {
    /// The identity, unless anonymous.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Principal::Anonymous => None,
            Principal::Identity(identity) => Some(identity),
        }
    }
}

/// The values of condition keys a request carries, by key (compared ignoring case, as
/// IAM does). A key may hold several values (multivalued keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    values: BTreeMap<String, Vec<String>>,
    /// The ARN (empty: anonymous) of the principal whose keys were added by
    /// [`Context::with_principal`], so evaluating many requests of one caller adds them
    /// once.
    describes: Option<String>,
}

impl Context {
    /// A context holding only the time: `aws:CurrentTime` and `aws:EpochTime`.
    pub fn at(now: SystemTime) -> Self {
        let mut context = Self::default();
        context.set("aws:CurrentTime", crate::lifecycle::format_rfc3339(now));
        let epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        context.set("aws:EpochTime", epoch.to_string());
        context
    }

    /// Sets `key` to one value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    /// Sets `key` to several values.
    pub fn set_all(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.values.insert(key.to_ascii_lowercase(), values);
        self
    }

    /// Sets `aws:SourceIp`.
    pub fn source_ip(&mut self, ip: IpAddr) -> &mut Self {
        self.set("aws:SourceIp", ip.to_string())
    }

    /// Sets `aws:SecureTransport`.
    pub fn secure_transport(&mut self, secure: bool) -> &mut Self {
        self.set("aws:SecureTransport", secure.to_string())
    }

    /// The values of `key`, if the request has it.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        let found = if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.values.get(&key.to_ascii_lowercase())
        } else {
            self.values.get(key)
        };
        found.map(Vec::as_slice)
    }

    /// This context with the keys that describe `principal` added: `aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:username` (users),
    /// `aws:PrincipalTag/<key>`.
    pub(crate) fn with_principal(&self, principal: &Principal) -> Self {
        let mut context = self.clone();
        context.describes = Some(principal_key(principal).to_owned());
        if let Some(identity) = principal.identity() {
            context.set("aws:PrincipalArn", identity.arn.as_str());
            context.set("aws:PrincipalAccount", identity.arn.account());
            let kind = match identity.kind {
                PrincipalKind::User => "User",
                PrincipalKind::Role => "AssumedRole",
            };
            context.set("aws:PrincipalType", kind);
            if identity.kind == PrincipalKind::User {
                context.set("aws:username", identity.name.clone());
            }
            for (key, value) in &identity.tags {
                context.set(&format!("aws:PrincipalTag/{key}"), value.clone());
            }
        } else {
            context.set("aws:PrincipalType", "Anonymous");
        }
        context
    }
}

/// What [`Context::describes`] holds for `principal`.
fn principal_key(principal: &Principal) -> &str {
    principal
        .identity()
        .map_or("", |identity| identity.arn.as_str())
}

impl Context {
    /// This context with `principal`'s keys, borrowed when it already has them.
    pub(crate) fn for_principal(&self, principal: &Principal) -> std::borrow::Cow<'_, Self> {
        if self.describes.as_deref() == Some(principal_key(principal)) {
            std::borrow::Cow::Borrowed(self)
        } else {
            std::borrow::Cow::Owned(self.with_principal(principal))
        }
    }
}

/// One request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// What for.
    pub action: Action,
    /// On what: a repository's ARN.
    pub resource: &'a Arn,
    /// The condition keys' values (time, source address, transport, …).
    pub context: &'a Context,
}
