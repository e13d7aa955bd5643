//! [`Event`]s: what changed in the registry, for pipelines (webhooks, EventBridge-style
//! consumers) and for audit; [`EventRecord`], an event as the outbox delivers it; and
//! [`EventSink`], the in-process receiver.
//!
//! Every committed change has one event, written to the registry's durable outbox before
//! its commit point and delivered at least once after it (see
//! [`Registry::dispatcher`](crate::Registry::dispatcher)). Access decisions
//! ([`Event::Access`]) change nothing: they only reach the in-process sink.
//!
//! [`format`](mod@format) renders events as ECR's EventBridge events, CloudEvents 1.0 and
//! Distribution's notification envelope; [`webhook`] signs and checks webhook bodies.

pub mod format;
pub mod webhook;

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, ErrorKind};
use crate::reference::{RepoName, Tag};

/// Something the registry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A blob became readable in a repository: an upload finished, or a mount linked it.
    BlobPushed {
        /// The repository.
        repo: RepoName,
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// The repository it was mounted from, for a mount.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mounted_from: Option<RepoName>,
    },
    /// A manifest was pushed: by digest, or by tag (the tag moved to it).
    ManifestPushed {
        /// The repository.
        repo: RepoName,
        /// The manifest's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// Its size in bytes.
        size: u64,
        /// The tag it was pushed by.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<Tag>,
        /// Where that tag pointed before (`None`: the tag was created).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<Digest>,
    },
    /// A tag was set on a manifest already in the repository, or moved to it.
    TagMoved {
        /// The repository.
        repo: RepoName,
        /// The tag.
        tag: Tag,
        /// Where it pointed before (`None`: it was created).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Digest>,
        /// Where it points now.
        to: Digest,
    },
    /// A tag was removed; the manifest it pointed at may stay.
    TagDeleted {
        /// The repository.
        repo: RepoName,
        /// The tag.
        tag: Tag,
        /// Where it pointed.
        digest: Digest,
        /// The lifecycle rule that expired the image, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<u32>,
    },
    /// A manifest was deleted from a repository.
    ManifestDeleted {
        /// The repository.
        repo: RepoName,
        /// The manifest's digest.
        digest: Digest,
    },
    /// A lifecycle rule expired an image (its record is gone, as for a delete).
    ImageExpired {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
        /// The priority of the rule that decided; `None` when the image went with its
        /// expired subject (a signature, an SBOM).
        rule: Option<u32>,
    },
    /// An image moved to the archive storage class.
    ImageArchived {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
        /// The priority of the lifecycle rule that decided, `None` for an explicit call.
        rule: Option<u32>,
    },
    /// An archived image was brought back to the standard storage class.
    ImageRestored {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
    },
    /// A scan of an image manifest ended (ECR's "ECR Image Scan").
    ImageScanned {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
        /// How the scan ended: `COMPLETE`, `FAILED` or `UNSUPPORTED_IMAGE`.
        status: String,
        /// Findings per severity (`CRITICAL`, `HIGH`, …), for a complete scan.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        counts: std::collections::BTreeMap<String, u64>,
        /// The tags on the image when the scan ended.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<Tag>,
    },
    /// A repository was created (explicitly or by a first push).
    RepositoryCreated {
        /// The repository.
        repo: RepoName,
    },
    /// A repository's settings (mutability, encryption, scanning, lifecycle policy,
    /// labels) were replaced.
    RepositorySettingsChanged {
        /// The repository.
        repo: RepoName,
    },
    /// A repository's IAM policy was set or removed.
    RepositoryPolicyChanged {
        /// The repository.
        repo: RepoName,
        /// Whether a policy is set now.
        set: bool,
    },
    /// A repository was deleted with everything in it.
    RepositoryDeleted {
        /// The repository.
        repo: RepoName,
    },
    /// Garbage collection removed a blob no manifest referenced.
    BlobReclaimed {
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// An authorization decision worth an audit line: every refusal, and every allowed
    /// change (a push, a delete, a policy set). Never in the outbox: it changes nothing.
    #[serde(skip)]
    Access {
        /// The caller's ARN, or `anonymous`.
        principal: String,
        /// The ECR action, such as `ecr:PutImage`.
        action: String,
        /// The repository's ARN.
        resource: String,
        /// Whether it was allowed.
        allowed: bool,
        /// The deciding statement (`repository policy statement 2 (Sid "Pull")`), if
        /// one decided.
        statement: Option<String>,
    },
}

impl Event {
    /// The event's type as stored and filtered on: `manifest_pushed`, `tag_deleted`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BlobPushed { .. } => "blob_pushed",
            Self::ManifestPushed { .. } => "manifest_pushed",
            Self::TagMoved { .. } => "tag_moved",
            Self::TagDeleted { .. } => "tag_deleted",
            Self::ManifestDeleted { .. } => "manifest_deleted",
            Self::ImageExpired { .. } => "image_expired",
            Self::ImageArchived { .. } => "image_archived",
            Self::ImageRestored { .. } => "image_restored",
            Self::ImageScanned { .. } => "image_scanned",
            Self::RepositoryCreated { .. } => "repository_created",
            Self::RepositorySettingsChanged { .. } => "repository_settings_changed",
            Self::RepositoryPolicyChanged { .. } => "repository_policy_changed",
            Self::RepositoryDeleted { .. } => "repository_deleted",
            Self::BlobReclaimed { .. } => "blob_reclaimed",
            Self::Access { .. } => "access",
        }
    }

    /// Every type [`Event::kind`] names that the outbox carries.
    pub const KINDS: [&'static str; 14] = [
        "blob_pushed",
        "manifest_pushed",
        "tag_moved",
        "tag_deleted",
        "manifest_deleted",
        "image_expired",
        "image_archived",
        "image_restored",
        "image_scanned",
        "repository_created",
        "repository_settings_changed",
        "repository_policy_changed",
        "repository_deleted",
        "blob_reclaimed",
    ];

    /// The repository the event is about (`None` for a reclaimed blob, which belongs to
    /// the whole store).
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Self::BlobPushed { repo, .. }
            | Self::ManifestPushed { repo, .. }
            | Self::TagMoved { repo, .. }
            | Self::TagDeleted { repo, .. }
            | Self::ManifestDeleted { repo, .. }
            | Self::ImageExpired { repo, .. }
            | Self::ImageArchived { repo, .. }
            | Self::ImageRestored { repo, .. }
            | Self::ImageScanned { repo, .. }
            | Self::RepositoryCreated { repo }
            | Self::RepositorySettingsChanged { repo }
            | Self::RepositoryPolicyChanged { repo, .. }
            | Self::RepositoryDeleted { repo } => Some(repo),
            Self::BlobReclaimed { .. } | Self::Access { .. } => None,
        }
    }

    /// The tag the event is about, if one.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Self::ManifestPushed { tag, .. } => tag.as_ref(),
            Self::TagMoved { tag, .. } | Self::TagDeleted { tag, .. } => Some(tag),
            _ => None,
        }
    }

    /// The digest the event is about, if one: the manifest, the blob, or where a tag
    /// points (pointed, for a delete).
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::BlobPushed { digest, .. }
            | Self::ManifestPushed { digest, .. }
            | Self::TagDeleted { digest, .. }
            | Self::ManifestDeleted { digest, .. }
            | Self::ImageExpired { digest, .. }
            | Self::ImageArchived { digest, .. }
            | Self::ImageRestored { digest, .. }
            | Self::ImageScanned { digest, .. }
            | Self::BlobReclaimed { digest, .. } => Some(digest),
            Self::TagMoved { to, .. } => Some(to),
            _ => None,
        }
    }
}

/// An event's identity: unique in its registry, the same on every delivery, so a
/// receiver drops duplicates by it. 32 lowercase hex digits: the event's place in the
/// outbox (16), then 64 random bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// The id of the event in outbox place `seq`, with random bits `nonce`.
    pub(crate) fn new(seq: u64, nonce: u64) -> Self {
        Self(format!("{seq:016x}{nonce:016x}"))
    }

    /// The event's place in the outbox: events of one repository are delivered in this
    /// order, which is their commit order.
    pub fn seq(&self) -> u64 {
        u64::from_str_radix(&self.0[..16], 16).expect("checked when made")
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EventId {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        if text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text))
        } else {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "event id {:?} is not 32 lowercase hex digits",
                    crate::digest::truncate_for_message(&text)
                ),
            ))
        }
    }
}

impl std::str::FromStr for EventId {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::try_from(text.to_owned())
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

/// An event as the outbox delivers it: its id, when its change committed (by the
/// clock of the process that made it), and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The stable id.
    pub id: EventId,
    /// When the change was made, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What changed.
    pub event: Event,
}

impl EventRecord {
    /// When the change was made.
    pub fn at(&self) -> std::time::SystemTime {
        crate::util::from_millis(self.at_ms)
    }
}

/// Receives [`Event`]s in the process that made them, right after each change is
/// durable. Called inline: an implementation should hand the event off (a channel, a
/// log line) rather than block. It sees a change once, when it happens; a crash can
/// lose what it has not handled, so pipelines that must not miss a change read the
/// outbox through a [`Dispatcher`](crate::Dispatcher) instead.
///
/// ```
/// use std::sync::Arc;
/// use wharf::{MemoryEventSink, Registry};
///
/// let events = Arc::new(MemoryEventSink::default());
/// let registry = Registry::builder()
///     .object_store(Arc::new(wharf::object_store::memory::InMemory::new()))
///     .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
///     .event_sink(events.clone())
///     .build()?;
/// assert!(events.take().is_empty());
/// # Ok::<(), wharf::Error>(())
/// ```
pub trait EventSink: Send + Sync + fmt::Debug + 'static {
    /// Called once per event, after the change it reports is durable.
    fn emit(&self, event: Event);
}

/// The default sink: drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardEvents;

impl EventSink for DiscardEvents {
    fn emit(&self, _: Event) {}
}

/// A sink that keeps events in memory until [`MemoryEventSink::take`]: for tests and
/// small tools.
#[derive(Debug, Default)]
pub struct MemoryEventSink {
    events: Mutex<Vec<Event>>,
}

impl MemoryEventSink {
    /// The events so far, oldest first; the sink starts over empty.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventSink for MemoryEventSink {
    fn emit(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}
