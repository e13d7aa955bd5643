//! Amazon Resource Names: `arn:<partition>:<service>:<region>:<account>:<resource>`.

use std::fmt;
use std::str::FromStr;

use super::wildcard;
use crate::error::{Error, ErrorKind, Result};

/// An ARN, such as a repository's `arn:aws:ecr:us-east-1:123456789012:repository/app`
/// or a user's `arn:aws:iam::123456789012:user/alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arn {
    text: String,
}

impl Arn {
    /// A repository's ARN.
    pub fn repository(region: &str, account: &str, name: &str) -> Self {
        Self {
            text: format!("arn:aws:ecr:{region}:{account}:repository/{name}"),
        }
    }

    /// An IAM user's ARN.
    pub fn user(account: &str, name: &str) -> Self {
        Self {
            text: format!("arn:aws:iam::{account}:user/{name}"),
        }
    }

    /// An IAM role's ARN.
    pub fn role(account: &str, name: &str) -> Self {
        Self {
            text: format!("arn:aws:iam::{account}:role/{name}"),
        }
    }

    /// The ARN as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The six parts: `arn`, partition, service, region, account, resource (which may
    /// hold further colons).
    fn parts(text: &str) -> Option<[&str; 6]> {
        let mut parts = text.splitn(6, ':');
        let all = [
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        ];
        Some(all)
    }

    /// The account id.
    pub fn account(&self) -> &str {
        Self::parts(&self.text).map_or("", |p| p[4])
    }

    /// The service (`ecr`, `iam`).
    pub fn service(&self) -> &str {
        Self::parts(&self.text).map_or("", |p| p[2])
    }

    /// The resource part (`repository/app`, `user/alice`).
    pub fn resource(&self) -> &str {
        Self::parts(&self.text).map_or("", |p| p[5])
    }

    /// Whether `pattern` (an ARN with `*` and `?` wildcards) matches this ARN, part by
    /// part as IAM's `ArnLike` does.
    pub(crate) fn like(&self, pattern: &str) -> bool {
        if pattern == "*" {
            return true;
        }
        match (Self::parts(pattern), Self::parts(&self.text)) {
            (Some(want), Some(have)) => want
                .iter()
                .zip(have)
                .all(|(w, h)| wildcard::matches(w, h, false)),
            _ => false,
        }
    }

    /// Checks an ARN pattern from a policy: `*`, or six parts starting with `arn`.
    pub(crate) fn check_pattern(pattern: &str) -> std::result::Result<(), String> {
        if pattern == "*" {
            return Ok(());
        }
        match Self::parts(pattern) {
            Some(["arn" | "arn*", ..]) => Ok(()),
            _ => Err(format!(
                "{pattern:?} is not an ARN (arn:partition:service:region:account:resource) or *"
            )),
        }
    }
}

impl FromStr for Arn {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match Self::parts(text) {
            Some(["arn", partition, service, _, _, resource])
                if !partition.is_empty()
                    && !service.is_empty()
                    && !resource.is_empty()
                    && !text.contains(['*', '?']) =>
            {
                Ok(Self {
                    text: text.to_owned(),
                })
            }
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{:?} is not an ARN (arn:partition:service:region:account:resource)",
                    crate::digest::truncate_for_message(text)
                ),
            )),
        }
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_patterns() {
        let repo = Arn::repository("us-east-1", "123456789012", "team/app");
        assert_eq!(repo.account(), "123456789012");
        assert_eq!(repo.service(), "ecr");
        assert_eq!(repo.resource(), "repository/team/app");
        assert!(repo.like("arn:aws:ecr:*:123456789012:repository/team/*"));
        assert!(repo.like("arn:aws:ecr:us-east-?:*:repository/*"));
        assert!(!repo.like("arn:aws:ecr:*:999999999999:repository/*"));
        assert!(!repo.like("arn:aws:ecr:*:123456789012:repository/other"));
        assert!(repo.like("*"));
        assert!(!repo.like("not an arn"));
        assert_eq!(
            "arn:aws:iam::123456789012:user/alice"
                .parse::<Arn>()
                .unwrap(),
            Arn::user("123456789012", "alice")
        );
        assert!("arn:aws:iam::1:user/*".parse::<Arn>().is_err());
        assert!("arn:aws".parse::<Arn>().is_err());
    }
}
