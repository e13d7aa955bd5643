//! Repository names, tags and references, validated against the distribution-spec grammars.
//!
//! Every value of these types is safe to embed in a storage key: the grammars admit no
//! `..`, no leading `/`, no empty path segment and no byte outside `[a-zA-Z0-9._/-]`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, truncate_for_message};
use crate::error::{Error, ErrorKind, Result};

/// Longest repository name accepted, in bytes (the limit ECR and common clients apply).
pub const MAX_REPO_NAME_LEN: usize = 255;

/// Longest tag accepted, in bytes.
pub const MAX_TAG_LEN: usize = 128;

/// A repository name such as `library/ubuntu`.
///
/// Path components match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` and are joined by `/`; the
/// whole name is at most [`MAX_REPO_NAME_LEN`] bytes. Anything else is
/// [`ErrorKind::NameInvalid`].
///
/// ```
/// use wharf::RepoName;
/// let name: RepoName = "team/app__v2/web-ui".parse()?;
/// assert_eq!(name.as_str(), "team/app__v2/web-ui");
/// for bad in ["", "Upper", "a//b", "/a", "a/", "a/../b", "a___b", "a.-b"] {
///     assert!(bad.parse::<RepoName>().is_err(), "{bad}");
/// }
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(Box<str>);

impl RepoName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn component_is_valid(component: &str) -> bool {
    // Alternating runs: alphanumeric, separator, alphanumeric, … starting and ending with
    // an alphanumeric run. A separator run is ".", "_", "__" or one or more "-".
    let bytes = component.as_bytes();
    let is_alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && is_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep = bytes[i];
        let sep_start = i;
        while i < bytes.len() && bytes[i] == sep {
            i += 1;
        }
        let run = i - sep_start;
        let ok = match sep {
            b'.' => run == 1,
            b'_' => run <= 2,
            b'-' => true,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
}

impl FromStr for RepoName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > MAX_REPO_NAME_LEN {
            return Err(Error::new(
                ErrorKind::NameInvalid,
                format!(
                    "invalid repository name {:?}: length must be 1 to {MAX_REPO_NAME_LEN}, found {}",
                    truncate_for_message(s),
                    s.len()
                ),
            ));
        }
        if let Some(bad) = s.split('/').find(|c| !component_is_valid(c)) {
            return Err(Error::new(
                ErrorKind::NameInvalid,
                format!(
                    "invalid repository name {:?}: path component {:?} must match \
                     [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
                    truncate_for_message(s),
                    truncate_for_message(bad)
                ),
            ));
        }
        Ok(Self(s.into()))
    }
}

/// A tag such as `v1.2.3` or `latest`: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
///
/// ```
/// use wharf::Tag;
/// assert!("v1.0_rc-2".parse::<Tag>().is_ok());
/// assert!(".hidden".parse::<Tag>().is_err());
/// assert!("a:b".parse::<Tag>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Box<str>);

impl Tag {
    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let first_ok = s
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || s.len() > MAX_TAG_LEN {
            return Err(Error::new(
                ErrorKind::TagInvalid,
                format!(
                    "invalid tag {:?}: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}",
                    truncate_for_message(s)
                ),
            ));
        }
        Ok(Self(s.into()))
    }
}

/// What a manifest is addressed by: a tag or a digest.
///
/// ```
/// use wharf::Reference;
/// assert!(matches!("latest".parse::<Reference>()?, Reference::Tag(_)));
/// let by_digest: Reference =
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// assert!(matches!(by_digest, Reference::Digest(_)));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// By tag.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        // Tags cannot contain ':', digests always do.
        if s.contains(':') {
            s.parse().map(Self::Digest)
        } else {
            s.parse().map(Self::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

macro_rules! text_type_impls {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), &*self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

text_type_impls!(RepoName);
text_type_impls!(Tag);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repo_names_follow_the_grammar() {
        for good in [
            "a",
            "library/ubuntu",
            "a.b/c_d/e__f/g-h/i---j",
            "0/1/2",
            "x".repeat(MAX_REPO_NAME_LEN).as_str(),
        ] {
            assert!(good.parse::<RepoName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            ".",
            "..",
            "a/../b",
            "a/./b",
            "a..b",
            "a___b",
            "a_-b",
            "-a",
            "a-",
            "a b",
            "a:b",
            "a\\b",
            "a\0b",
            "é",
            "x".repeat(MAX_REPO_NAME_LEN + 1).as_str(),
        ] {
            let err = bad.parse::<RepoName>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NameInvalid, "{bad:?}");
        }
    }

    #[test]
    fn tags_follow_the_grammar() {
        assert!("_".parse::<Tag>().is_ok());
        assert!("A".repeat(MAX_TAG_LEN).parse::<Tag>().is_ok());
        for bad in ["", "-a", ".a", "a/b", "a:b", "a b", "..", &"a".repeat(129)] {
            assert_eq!(
                bad.parse::<Tag>().unwrap_err().kind(),
                ErrorKind::TagInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn references_dispatch_on_colon() {
        assert_eq!(
            "sha256:zz".parse::<Reference>().unwrap_err().kind(),
            ErrorKind::DigestInvalid
        );
        assert_eq!(
            "a/b".parse::<Reference>().unwrap_err().kind(),
            ErrorKind::TagInvalid
        );
    }

    proptest! {
        #[test]
        fn accepted_names_are_storage_safe(s in "[a-z0-9._/-]{1,40}") {
            if let Ok(name) = s.parse::<RepoName>() {
                prop_assert!(!name.as_str().starts_with('/'));
                prop_assert!(name.as_str().split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
                prop_assert!(!name.as_str().contains(".."));
            }
        }
    }
}
