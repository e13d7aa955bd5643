//! [`Event`] and [`EventSink`]: what the registry tells an embedder it did on its own
//! initiative (lifecycle actions, garbage collection) and what it decided about callers
//! (access), for audit logs and metrics.

use std::fmt;
use std::sync::Mutex;

use crate::digest::Digest;
use crate::reference::RepoName;

/// Something the registry did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A lifecycle rule expired an image.
    ImageExpired {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
        /// The priority of the rule that decided; `None` when the image went with its
        /// expired subject (a signature, an SBOM).
        rule: Option<u32>,
    },
    /// A lifecycle rule moved an image to the archive storage class.
    ImageArchived {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
        /// The priority of the rule that decided, `None` for an explicit call.
        rule: Option<u32>,
    },
    /// An archived image was brought back to the standard storage class.
    ImageRestored {
        /// Its repository.
        repo: RepoName,
        /// The image's manifest digest.
        digest: Digest,
    },
    /// Garbage collection removed a blob no manifest referenced.
    BlobReclaimed {
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// An authorization decision worth an audit line: every refusal, and every allowed
    /// change (a push, a delete, a policy set).
    Access {
        /// The caller's ARN, or `anonymous`.
        principal: String,
        /// The ECR action, such as `ecr:PutImage`.
        action: &'static str,
        /// The repository's ARN.
        resource: String,
        /// Whether it was allowed.
        allowed: bool,
        /// The deciding statement (`repository policy statement 2 (Sid "Pull")`), if
        /// one decided.
        statement: Option<String>,
    },
}

/// Receives [`Event`]s. Called inline: an implementation should hand the event off
/// (a channel, a log line) rather than block.
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
