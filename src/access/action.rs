//! The actions a registry authorizes, by their ECR names.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

macro_rules! actions {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// An ECR action (`ecr:BatchGetImage`, …): what a request asks to do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $(#[doc = $doc] $variant,)*
        }

        impl Action {
            /// Every action, in the order declared.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The action's name as policies write it, `ecr:<Name>`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => concat!("ecr:", $name),)*
                }
            }
        }
    };
}

actions! {
    BatchCheckLayerAvailability => "BatchCheckLayerAvailability": "Whether layers are stored (blob `HEAD`).",
    BatchDeleteImage => "BatchDeleteImage": "Delete images or tags (manifest `DELETE`).",
    BatchGetImage => "BatchGetImage": "Read manifests (manifest `GET`/`HEAD`).",
    BatchImportUpstreamImage => "BatchImportUpstreamImage": "Bring an image or layer in from a pull-through cache's upstream (a pull that misses).",
    CompleteLayerUpload => "CompleteLayerUpload": "Finish a layer upload.",
    CreateRepository => "CreateRepository": "Create a repository (also by a first push).",
    DeleteLifecyclePolicy => "DeleteLifecyclePolicy": "Remove a repository's lifecycle policy.",
    DeleteRepository => "DeleteRepository": "Delete a repository.",
    DeleteRepositoryPolicy => "DeleteRepositoryPolicy": "Remove a repository's policy.",
    DescribeImageScanFindings => "DescribeImageScanFindings": "Read an image's scan findings.",
    DescribeImages => "DescribeImages": "Describe a repository's images.",
    DescribeRepositories => "DescribeRepositories": "Describe repositories (the catalog).",
    GetAuthorizationToken => "GetAuthorizationToken": "Obtain a registry login token.",
    GetDownloadUrlForLayer => "GetDownloadUrlForLayer": "Read layers (blob `GET`).",
    GetLifecyclePolicy => "GetLifecyclePolicy": "Read a repository's lifecycle policy.",
    GetLifecyclePolicyPreview => "GetLifecyclePolicyPreview": "Read a lifecycle policy preview.",
    GetRepositoryPolicy => "GetRepositoryPolicy": "Read a repository's policy.",
    InitiateLayerUpload => "InitiateLayerUpload": "Start a layer upload (or mount a layer).",
    ListImages => "ListImages": "List a repository's images, tags and referrers.",
    ListTagsForResource => "ListTagsForResource": "List a repository's resource tags.",
    PutImage => "PutImage": "Push a manifest or move a tag.",
    PutImageScanningConfiguration => "PutImageScanningConfiguration": "Set scan on push.",
    PutImageTagMutability => "PutImageTagMutability": "Set tag mutability.",
    PutLifecyclePolicy => "PutLifecyclePolicy": "Set a repository's lifecycle policy.",
    SetRepositoryPolicy => "SetRepositoryPolicy": "Set a repository's policy.",
    StartImageScan => "StartImageScan": "Scan an image.",
    StartLifecyclePolicyPreview => "StartLifecyclePolicyPreview": "Preview a lifecycle policy.",
    TagResource => "TagResource": "Tag a repository.",
    UntagResource => "UntagResource": "Untag a repository.",
    UploadLayerPart => "UploadLayerPart": "Send part of a layer upload.",
}

impl Action {
    /// Whether the action changes something (an audit record is kept of every allowed
    /// one); reads (`Get*`, `List*`, `Describe*`, `Batch{Check,Get}*`) do not.
    pub fn is_change(self) -> bool {
        let name = &self.name()["ecr:".len()..];
        !["Get", "List", "Describe", "BatchCheck", "BatchGet"]
            .iter()
            .any(|read| name.starts_with(read))
    }

    /// The actions a public repository allows anyone: pulling images and layers and
    /// listing tags.
    pub const PULL: &'static [Action] = &[
        Action::BatchCheckLayerAvailability,
        Action::BatchGetImage,
        Action::GetDownloadUrlForLayer,
        Action::ListImages,
    ];
}

impl FromStr for Action {
    type Err = Error;

    /// Parses `ecr:<Name>`, ignoring case as IAM does.
    fn from_str(text: &str) -> Result<Self> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{:?} is not an ECR action wharf knows",
                        crate::digest::truncate_for_message(text)
                    ),
                )
            })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_ignoring_case() {
        for &action in Action::ALL {
            assert!(action.name().starts_with("ecr:"));
            assert_eq!(action.name().parse::<Action>().unwrap(), action);
            assert_eq!(
                action.name().to_uppercase().parse::<Action>().unwrap(),
                action
            );
        }
        assert!("ecr:Nope".parse::<Action>().is_err());
    }
}
