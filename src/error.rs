//! The one error type of wharf, with a kind that mirrors the OCI distribution-spec codes.

use std::fmt;

/// Boxed source error carried by [`Error`].
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as a matchable value.
///
/// The first group mirrors the error codes of the OCI distribution spec
/// ([`ErrorKind::code`] gives the wire string); the rest are conditions a storage
/// library meets that the spec has no code for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `BLOB_UNKNOWN`: the blob is not stored, or not linked in the repository asked.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: the upload cannot be continued as asked.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: no such upload session (never started, finished, cancelled or expired).
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: a digest is malformed, or content does not match its digest.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest references blobs that are not in the repository.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: a manifest failed validation.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: no such manifest in the repository.
    ManifestUnknown,
    /// A manifest cannot be deleted while an index in its repository lists it. No spec
    /// code covers this; frontends answer 409 Conflict.
    ManifestReferenced,
    /// An immutable tag cannot move to another manifest (ECR tag immutability).
    TagImmutable,
    /// A repository that still holds images cannot be deleted without `force` (ECR's
    /// `RepositoryNotEmptyException`). Frontends answer 409.
    RepositoryNotEmpty,
    /// A policy (lifecycle, repository or identity) is malformed or breaks one of ECR's
    /// or IAM's rules; the message names the rule or statement and the field.
    PolicyInvalid,
    /// The image was transitioned to the archive storage class: it is listed but cannot
    /// be pulled until it is restored.
    ImageArchived,
    /// `NAME_INVALID`: a repository name breaks the distribution-spec grammar.
    NameInvalid,
    /// `NAME_UNKNOWN`: no such repository.
    NameUnknown,
    /// `SIZE_INVALID`: content length does not match the size expected.
    SizeInvalid,
    /// `TAG_INVALID`: a tag breaks the grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    TagInvalid,
    /// `UNAUTHORIZED`: the caller is not authenticated.
    Unauthorized,
    /// `DENIED`: the caller may not do this.
    Denied,
    /// `UNSUPPORTED`: a capability this registry, build or store does not have (Docker
    /// schema 1, a format version from a newer build, a store without conditional
    /// writes, an archive store that was never configured).
    Unsupported,
    /// An argument breaks its rules: repository settings, a platform, a KEK name, a key
    /// too long. The message names the argument. Frontends answer 400.
    InvalidArgument,
    /// The registry is set up wrongly: a builder without a store, an unreadable key file,
    /// a key provider that holds another key under a name the store knows. Fix the setup;
    /// retrying does not help. Frontends answer 500.
    Configuration,
    /// `TOOMANYREQUESTS`: a rate limit was hit.
    TooManyRequests,
    /// `PAGINATION_NUMBER_INVALID`: a listing's page size (`n`) is not a count.
    PaginationInvalid,
    /// A chunk arrived at the wrong offset; [`Error::current_offset`] says where the upload is.
    /// HTTP frontends answer 416 with the current range.
    RangeInvalid,
    /// A compare-and-swap lost: the stored value changed since it was read.
    Conflict,
    /// The image has not been scanned (ECR's `ScanNotFoundException`). Frontends answer
    /// 404.
    ScanNotFound,
    /// An image layout or archive being imported is malformed: no `oci-layout`, an
    /// unreadable `index.json` or `manifest.json`, a truncated tar. The message names the
    /// file. (Blobs it lacks are [`BlobUnknown`](Self::BlobUnknown); blobs that do not
    /// match their names, [`DigestInvalid`](Self::DigestInvalid).)
    ArchiveInvalid,
    /// The embedded metadata database is open in another process (it allows one); the
    /// message names the file and, where it can, the process.
    DatabaseInUse,
    /// Data at rest is truncated, tampered with or unreadable.
    CorruptData,
    /// The storage backend failed; [`Error::is_retryable`] says whether trying again may help.
    Storage,
}

impl ErrorKind {
    /// The distribution-spec error code for this kind (`BLOB_UNKNOWN`, …).
    ///
    /// Kinds without a spec code map to the closest one a client understands.
    pub fn code(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid | Self::RangeInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::ManifestReferenced => "MANIFEST_REFERENCED",
            Self::TagImmutable => "TAG_IMMUTABLE",
            Self::RepositoryNotEmpty => "REPOSITORY_NOT_EMPTY",
            Self::PolicyInvalid => "POLICY_INVALID",
            Self::ImageArchived => "IMAGE_ARCHIVED",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::TagInvalid => "TAG_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Configuration => "CONFIGURATION",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::PaginationInvalid => "PAGINATION_NUMBER_INVALID",
            Self::Conflict => "CONFLICT",
            Self::ScanNotFound => "SCAN_NOT_FOUND",
            Self::ArchiveInvalid => "ARCHIVE_INVALID",
            Self::DatabaseInUse => "DATABASE_IN_USE",
            Self::CorruptData => "CORRUPT_DATA",
            Self::Storage => "STORAGE_ERROR",
        }
    }

    /// The HTTP status a distribution-spec frontend answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown
            | Self::ScanNotFound => 404,
            Self::RangeInvalid => 416,
            Self::Unauthorized => 401,
            Self::Denied => 403,
            Self::Unsupported => 405,
            Self::TooManyRequests => 429,
            Self::Conflict
            | Self::ManifestReferenced
            | Self::TagImmutable
            | Self::RepositoryNotEmpty
            | Self::ImageArchived => 409,
            Self::CorruptData | Self::Storage | Self::Configuration | Self::DatabaseInUse => 500,
            Self::BlobUploadInvalid
            | Self::DigestInvalid
            | Self::ManifestBlobUnknown
            | Self::ManifestInvalid
            | Self::NameInvalid
            | Self::PolicyInvalid
            | Self::PaginationInvalid
            | Self::InvalidArgument
            | Self::ArchiveInvalid
            | Self::SizeInvalid
            | Self::TagInvalid => 400,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error from wharf: a [`ErrorKind`], a message naming what was involved
/// (repository, digest, key), and optionally the underlying cause.
///
/// ```
/// use wharf::{Digest, ErrorKind};
/// let err = "sha256:ABC".parse::<Digest>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::DigestInvalid);
/// assert!(err.to_string().contains("sha256:ABC"));
/// ```
#[derive(thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    retryable: bool,
    current_offset: Option<u64>,
    #[source]
    source: Option<Source>,
}

/// Result alias used throughout wharf.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable: false,
            current_offset: None,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with where the error happened (`<context>: <message>`),
    /// keeping the kind.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Marks the error as transient: the same call may succeed later.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// A chunk-at-the-wrong-offset error that carries where the upload stands.
    pub fn range_invalid(message: impl Into<String>, current_offset: u64) -> Self {
        let mut err = Self::new(ErrorKind::RangeInvalid, message);
        err.current_offset = Some(current_offset);
        err
    }

    /// Records where an upload stands after this failure: a chunk that broke off, stalled
    /// or overran its declared range keeps the bytes received, and the client resumes
    /// from `offset`.
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.current_offset = Some(offset);
        self
    }

    /// The kind, for matching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying may succeed: transient storage failures, and compare-and-swap
    /// races lost (re-read, then retry).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// For [`ErrorKind::RangeInvalid`], and for a failed chunk that kept some bytes
    /// ([`Error::with_offset`]): the number of bytes the upload has received.
    pub fn current_offset(&self) -> Option<u64> {
        self.current_offset
    }

    /// Wraps an `object_store` failure, naming what was being done.
    pub(crate) fn storage(context: impl fmt::Display, err: object_store::Error) -> Self {
        let retryable = matches!(err, object_store::Error::Generic { .. });
        let kind = match err {
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => ErrorKind::Unsupported,
            _ => ErrorKind::Storage,
        };
        let mut out = Self::new(kind, format!("{context}: {err}")).with_source(err);
        out.retryable = retryable;
        out
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(offset) = self.current_offset {
            d.field("current_offset", &offset);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_follow_the_spec() {
        assert_eq!(ErrorKind::BlobUnknown.code(), "BLOB_UNKNOWN");
        assert_eq!(ErrorKind::BlobUnknown.http_status(), 404);
        assert_eq!(ErrorKind::RangeInvalid.http_status(), 416);
        assert_eq!(ErrorKind::Denied.http_status(), 403);
        assert_eq!(ErrorKind::NameInvalid.code(), "NAME_INVALID");
        // Three kinds that once were one: a bad argument, a bad setup, a missing capability.
        assert_eq!(ErrorKind::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorKind::Configuration.http_status(), 500);
        assert_eq!(ErrorKind::Unsupported.http_status(), 405);
        assert_eq!(
            ErrorKind::PaginationInvalid.code(),
            "PAGINATION_NUMBER_INVALID"
        );
    }

    #[test]
    fn range_errors_carry_the_offset() {
        let err = Error::range_invalid("upload u1 is at 10", 10);
        assert_eq!(err.current_offset(), Some(10));
        assert_eq!(err.to_string(), "BLOB_UPLOAD_INVALID: upload u1 is at 10");
    }
}
