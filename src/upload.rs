//! What callers see of upload sessions: their ids, where they stand, and what expiry
//! removed. The sessions themselves (records, open writers, checkpoints) live in
//! `registry/uploads.rs`.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::reference::RepoName;

/// The opaque id of an upload session.
///
/// ```
/// use wharf::UploadId;
/// assert!("../../etc".parse::<UploadId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

impl UploadId {
    pub(crate) fn generate() -> Self {
        Self(crate::util::random_id())
    }

    /// The id as text, for a `Location` URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UploadId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::new(
                ErrorKind::BlobUploadUnknown,
                format!(
                    "upload {:?} is not a valid upload id",
                    crate::digest::truncate_for_message(s)
                ),
            ))
        }
    }
}

impl TryFrom<String> for UploadId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> Self {
        id.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

/// Where an upload session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session.
    pub id: UploadId,
    /// The repository it uploads into.
    pub repo: RepoName,
    /// Bytes received and durable: the next chunk starts here.
    pub offset: u64,
    /// When the session started.
    pub started_at: SystemTime,
    /// When the session last received bytes.
    pub updated_at: SystemTime,
}

/// What [`Registry::expire_uploads`](crate::Registry::expire_uploads) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Sessions whose record and staged parts were removed.
    pub sessions: usize,
    /// Staging areas without a session (left by a crash) that were removed.
    pub orphaned_staging: usize,
}
