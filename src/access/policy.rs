//! IAM policy documents: parsed strictly (duplicate keys refused, unknown fields
//! refused), validated as ECR validates repository policies and IAM identity policies,
//! with errors that name the statement (index and `Sid`), the field and the reason.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::arn::Arn;
use super::condition::{self, Condition};
use super::variables::{self, Variables};
use crate::error::{Error, ErrorKind, Result};

/// Longest repository policy ECR accepts, in characters.
pub const MAX_REPOSITORY_POLICY_LEN: usize = 10_240;

/// Longest identity policy accepted, in characters other than white space (IAM's limit
/// for a managed policy).
pub const MAX_IDENTITY_POLICY_LEN: usize = 6_144;

/// Longest session policy accepted, in characters (IAM's limit for an inline session
/// policy).
pub const MAX_SESSION_POLICY_LEN: usize = 2_048;

/// Where a policy is attached, which decides what its statements must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// On a repository: every statement names a `Principal` or `NotPrincipal`;
    /// `Resource` is optional (the repository itself).
    Repository,
    /// On a user, group or role: no principal (the caller is it); `Resource` required.
    Identity,
    /// On one session (a token): written as an identity policy, it only narrows what
    /// the caller's other policies allow, and applies to anonymous callers too.
    Session,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants, unless a `Deny` applies.
    Allow,
    /// Refuses, whatever allows.
    Deny,
}

/// Who a repository policy statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalPattern {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers too.
    Everyone,
    /// An account id or its root ARN: every user and role of the account.
    Account(String),
    /// A user or role ARN.
    Arn(String),
    /// A service or federated principal: valid, never a registry caller.
    Other,
}

/// A list of patterns that a statement matches (`Action`, `Resource`, `Principal`) or
/// must not match (`NotAction`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Patterns<T> {
    pub(crate) items: Vec<T>,
    pub(crate) negated: bool,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) principals: Option<Patterns<PrincipalPattern>>,
    pub(crate) actions: Patterns<String>,
    pub(crate) resources: Option<Patterns<String>>,
    pub(crate) conditions: Vec<Condition>,
}

/// A validated IAM policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    kind: PolicyKind,
    variables: Variables,
    pub(crate) statements: Vec<Statement>,
    text: String,
}

/// Where a validation error is.
struct At<'a> {
    index: usize,
    sid: Option<&'a str>,
}

impl At<'_> {
    fn error(&self, field: &str, why: impl std::fmt::Display) -> String {
        match self.sid {
            Some(sid) => format!("statement {} (Sid {sid:?}): {field}: {why}", self.index),
            None => format!("statement {}: {field}: {why}", self.index),
        }
    }
}

fn invalid(kind: PolicyKind, why: impl std::fmt::Display) -> Error {
    let what = match kind {
        PolicyKind::Repository => "repository policy",
        PolicyKind::Identity => "identity policy",
        PolicyKind::Session => "session policy",
    };
    Error::new(ErrorKind::PolicyInvalid, format!("{what}: {why}"))
}

impl Policy {
    /// Parses and validates a repository policy.
    pub fn repository(text: &str) -> Result<Self> {
        Self::parse(text, PolicyKind::Repository)
    }

    /// Parses and validates an identity policy.
    pub fn identity(text: &str) -> Result<Self> {
        Self::parse(text, PolicyKind::Identity)
    }

    /// Parses and validates a session policy (see [`crate::access::within_session`]).
    pub fn session(text: &str) -> Result<Self> {
        Self::parse(text, PolicyKind::Session)
    }

    /// Parses and validates a policy of `kind`; [`ErrorKind::PolicyInvalid`] naming
    /// the statement, the field and the reason.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self> {
        let size = match kind {
            PolicyKind::Repository => text.chars().count(),
            PolicyKind::Identity | PolicyKind::Session => {
                text.chars().filter(|c| !c.is_whitespace()).count()
            }
        };
        let limit = match kind {
            PolicyKind::Repository => MAX_REPOSITORY_POLICY_LEN,
            PolicyKind::Identity => MAX_IDENTITY_POLICY_LEN,
            PolicyKind::Session => MAX_SESSION_POLICY_LEN,
        };
        if size > limit {
            return Err(invalid(
                kind,
                format!("{size} characters, over the limit of {limit}"),
            ));
        }
        Self::parse_unbounded(text, kind)
    }

    /// [`Policy::parse`] without the length limit, for policies wharf writes itself.
    pub(crate) fn parse_unbounded(text: &str, kind: PolicyKind) -> Result<Self> {
        let document = crate::strict_json::parse(text.as_bytes())
            .map_err(|e| invalid(kind, format!("not valid JSON: {e}")))?;
        let document = document
            .as_object()
            .ok_or_else(|| invalid(kind, "must be a JSON object"))?;
        for field in document.keys() {
            if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
                return Err(invalid(kind, format!("unknown field {field:?}")));
            }
        }
        let variables = match document.get("Version") {
            None => Variables::Literal,
            Some(Value::String(v)) if v == "2012-10-17" => Variables::Substituted,
            Some(Value::String(v)) if v == "2008-10-17" => Variables::Literal,
            Some(other) => {
                return Err(invalid(
                    kind,
                    format!("Version: must be \"2012-10-17\" or \"2008-10-17\", found {other}"),
                ));
            }
        };
        if document.get("Id").is_some_and(|id| !id.is_string()) {
            return Err(invalid(kind, "Id: must be a string"));
        }
        let statements = match document.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(item @ Value::Object(_)) => vec![item],
            Some(_) => return Err(invalid(kind, "Statement: must be an object or a list")),
            None => return Err(invalid(kind, "Statement: is required")),
        };
        if statements.is_empty() {
            return Err(invalid(kind, "Statement: must hold at least one statement"));
        }
        let mut sids = HashSet::new();
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                let statement =
                    parse_statement(index, value, kind).map_err(|e| invalid(kind, e))?;
                if let Some(sid) = &statement.sid
                    && !sids.insert(sid.clone())
                {
                    return Err(invalid(
                        kind,
                        format!("statement {index}: Sid: {sid:?} is used by an earlier statement"),
                    ));
                }
                Ok(statement)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            kind,
            variables,
            statements,
            text: text.to_owned(),
        })
    }

    /// Where the policy is attached.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The document as it was given.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn variables(&self) -> Variables {
        self.variables
    }
}

fn parse_statement(
    index: usize,
    value: &Value,
    kind: PolicyKind,
) -> std::result::Result<Statement, String> {
    let fields = value
        .as_object()
        .ok_or_else(|| format!("statement {index}: must be an object"))?;
    let sid = match fields.get("Sid") {
        None => None,
        Some(Value::String(sid)) if sid.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Some(sid.clone())
        }
        Some(other) => {
            return Err(format!(
                "statement {index}: Sid: must be letters and digits, found {other}"
            ));
        }
    };
    let at = At {
        index,
        sid: sid.as_deref(),
    };
    for field in fields.keys() {
        if !matches!(
            field.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(at.error(field, "is not a statement field"));
        }
    }
    let effect = match fields.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => {
            return Err(at.error("Effect", format!("must be Allow or Deny, found {other:?}")));
        }
        None => return Err(at.error("Effect", "is required (Allow or Deny)")),
    };
    let principals = one_of(fields, "Principal", "NotPrincipal", &at)?
        .map(|(field, negated, value)| {
            parse_principals(value)
                .map(|items| Patterns { items, negated })
                .map_err(|why| at.error(field, why))
        })
        .transpose()?;
    match (kind, &principals) {
        (PolicyKind::Repository, None) => {
            return Err(at.error("Principal", "is required in a repository policy"));
        }
        (PolicyKind::Identity | PolicyKind::Session, Some(_)) => {
            return Err(at.error(
                "Principal",
                "is not allowed in an identity or session policy (it applies to whoever it is attached to)",
            ));
        }
        _ => {}
    }
    let (field, negated, value) = one_of(fields, "Action", "NotAction", &at)?
        .ok_or_else(|| at.error("Action", "is required (Action or NotAction)"))?;
    let actions = strings(value)
        .map_err(|why| at.error(field, why))?
        .into_iter()
        .map(|action| check_action(&action).map(|()| action))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|why| at.error(field, why))?;
    let actions = Patterns {
        items: actions,
        negated,
    };
    let resources = one_of(fields, "Resource", "NotResource", &at)?
        .map(|(field, negated, value)| {
            let items = strings(value).map_err(|why| at.error(field, why))?;
            for item in &items {
                Arn::check_pattern(item)
                    .and_then(|()| variables::check(item))
                    .map_err(|why| at.error(field, why))?;
            }
            Ok::<_, String>(Patterns { items, negated })
        })
        .transpose()?;
    if kind != PolicyKind::Repository && resources.is_none() {
        return Err(at.error(
            "Resource",
            "is required in an identity or session policy (Resource or NotResource)",
        ));
    }
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(block) => condition::parse_block(block).map_err(|why| at.error("Condition", why))?,
    };
    Ok(Statement {
        sid,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// The one of `field` and `not_field` a statement holds: its name, whether it is the
/// negated one, and its value; both is an error.
fn one_of<'v>(
    fields: &'v Map<String, Value>,
    field: &'static str,
    not_field: &'static str,
    at: &At<'_>,
) -> std::result::Result<Option<(&'static str, bool, &'v Value)>, String> {
    match (fields.get(field), fields.get(not_field)) {
        (Some(_), Some(_)) => Err(at.error(field, format!("and {not_field} cannot both be given"))),
        (Some(v), None) => Ok(Some((field, false, v))),
        (None, Some(v)) => Ok(Some((not_field, true, v))),
        (None, None) => Ok(None),
    }
}

/// A string or a non-empty list of strings.
fn strings(value: &Value) -> std::result::Result<Vec<String>, String> {
    let items = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("must be a string or a list of strings")?,
        _ => return Err("must be a string or a list of strings".into()),
    };
    if items.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(items)
}

/// `*`, or `service:pattern` with a service of lowercase letters, digits and `-`.
fn check_action(action: &str) -> std::result::Result<(), String> {
    if action == "*" {
        return Ok(());
    }
    match action.split_once(':') {
        Some((service, name))
            if !service.is_empty()
                && !name.is_empty()
                && service
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'*' || c == b'?') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{action:?} is not an action (service:Name, wildcards allowed, or *)"
        )),
    }
}

fn parse_principals(value: &Value) -> std::result::Result<Vec<PrincipalPattern>, String> {
    if value.as_str() == Some("*") {
        return Ok(vec![PrincipalPattern::Everyone]);
    }
    let map = value
        .as_object()
        .ok_or("must be \"*\" or an object such as {\"AWS\": [...]}")?;
    if map.is_empty() {
        return Err("names no principal".into());
    }
    let mut patterns = Vec::new();
    for (kind, ids) in map {
        let ids = strings(ids).map_err(|why| format!("{kind}: {why}"))?;
        match kind.as_str() {
            "AWS" => {
                for id in ids {
                    patterns.push(aws_principal(&id)?);
                }
            }
            "Service" | "Federated" | "CanonicalUser" => {
                patterns.extend(ids.iter().map(|_| PrincipalPattern::Other));
            }
            other => {
                return Err(format!(
                    "{other:?} is not a principal type (AWS, Service, Federated)"
                ));
            }
        }
    }
    Ok(patterns)
}

fn aws_principal(id: &str) -> std::result::Result<PrincipalPattern, String> {
    if id == "*" {
        return Ok(PrincipalPattern::Everyone);
    }
    if id.len() == 12 && id.bytes().all(|c| c.is_ascii_digit()) {
        return Ok(PrincipalPattern::Account(id.to_owned()));
    }
    let arn: Arn = id.parse().map_err(|_| {
        format!("AWS: {id:?} is not an account id, an account root ARN or a user or role ARN")
    })?;
    let account = arn.account();
    if arn.service() != "iam"
        || !(account.len() == 12 && account.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "AWS: {id:?} is not an IAM ARN of a 12-digit account"
        ));
    }
    match arn.resource() {
        "root" => Ok(PrincipalPattern::Account(account.to_owned())),
        r if r.starts_with("user/") || r.starts_with("role/") => {
            Ok(PrincipalPattern::Arn(arn.as_str().to_owned()))
        }
        _ => Err(format!("AWS: {id:?} is not an account root, user or role")),
    }
}
