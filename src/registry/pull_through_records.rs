//! What a pull-through cache (`pull_through.rs`, feature `remote`) remembers of its
//! upstream's tags, readable without the feature.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// `upstream-tag/<repo>@<tag>`: the digest upstream last named for a tag, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UpstreamTagRecord {
    pub(crate) digest: Digest,
    pub(crate) checked_at_ms: u64,
}
