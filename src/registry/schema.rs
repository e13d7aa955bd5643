//! The metadata layout: every table the registry keeps in its [`MetaStore`], named in
//! one place.
//!
//! A table is a key prefix, a key type that writes and parses the rest of the key, and a
//! value type with its encoding; [`Table`] gives each one typed `get`, `put`, `create`,
//! `update`, `delete` and paged `list`. Nothing else in the crate builds a metadata key.
//! `docs/storage-layout.md` describes every table below in its metadata section, and a
//! test checks that the two name the same tables.
//!
//! # Keys
//!
//! Key parts are written as their text: a repository name, `@`, then a digest or tag, so
//! one repository's prefix `<repo>@` never matches another's (`@` cannot occur in a
//! name: `a@` is not a prefix of `a/b@…`). A table listed per subject (referrers, reverse
//! tag and index entries) nests a second level: `<repo>@<subject>/<item>`.
//!
//! Every key fits [`MAX_KEY_LEN`] at the longest valid repository name with sha512
//! digests ([`Table::max_key_len`], checked for every table when the crate compiles). A nested key
//! whose repository name and subject digest together exceed [`NESTED_SCOPE_BUDGET`]
//! writes the subject as `~<sha256 hex of the digest text>` instead: the choice depends
//! on the repository and subject alone, so one subject's entries always share a prefix,
//! and the item stays whole, so listings still parse it. Entries written before that
//! rule (a store whose keys happened to fit) are still listed ([`Prefix::legacy`]).
//!
//! # Concurrent writers
//!
//! Every write is a compare-and-swap. [`Table::update`] re-reads and retries a lost race
//! a bounded number of times with jittered backoff, then gives up with a retryable
//! [`ErrorKind::Conflict`]; loops that do more between the read and the write use
//! [`Retry`] for the same bound.

mod table;

pub(crate) use self::table::{Change, Prefix, Retry, Row, ScannedRow, Table};

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Descriptor;
use crate::meta::MAX_KEY_LEN;
use crate::reference::{MAX_REPO_NAME_LEN, MAX_TAG_LEN, RepoName, Tag};
use crate::upload::UploadId;

use super::LinkRecord;
use super::access::PolicyRecord;
use super::at_rest::RedirectRecord;
use super::blob_records::{BlobRecord, CandidateRecord, LayoutRecord, RefRecord};
use super::dispatch::{CursorRecord, DeadLetter};
use super::key_identity::KekRecord;
use super::leases::LeaseRecord;
use super::manifests::ManifestRecord;
use super::outbox::Slot;
use super::pull_through_records::UpstreamTagRecord;
use super::referrer_lists::{ReferrerLayoutRecord, ReferrerList};
use super::replication_records::ReplicationRecord;
use super::repositories::RepositoryRecord;
use super::scans::ScanRecord;
use super::small_objects::{ObjectPath, SmallObject};
use super::tag_layout::TagLayoutRecord;
use super::tags::TagRecord;
use super::uploads::SessionRecord;

/// `repo/<repo>`: the repository exists, with its settings.
pub(crate) const REPOSITORIES: Table<RepoName, RepositoryRecord> = Table::new("repo/");
/// `repo-policy/<repo>`: the repository's IAM policy.
pub(crate) const REPOSITORY_POLICIES: Table<RepoName, PolicyRecord> = Table::new("repo-policy/");
/// `link/<repo>@<digest>`: the blob is readable in the repository.
pub(crate) const LINKS: Table<InRepo<Digest>, LinkRecord> = Table::new("link/");
/// `manifest/<repo>@<digest>`: the manifest is in the repository.
pub(crate) const MANIFESTS: Table<InRepo<Digest>, ManifestRecord> = Table::new("manifest/");
/// `tag/<repo>@<tag>`: a live tag, its target and its recent moves.
pub(crate) const TAGS: Table<InRepo<Tag>, TagRecord> = Table::new("tag/");
/// `tag-history/<repo>@<tag>`: a deleted tag's moves.
pub(crate) const TAG_HISTORY: Table<InRepo<Tag>, TagRecord> = Table::new("tag-history/");
/// `tag-layout`: `tag/` holds live tags only (stores from before `tag-history/` are moved once).
pub(crate) const TAG_LAYOUT: Table<Singleton, TagLayoutRecord> = Table::new("tag-layout");
/// `tagged/<repo>@<digest>/<tag>`: reverse index, the tags that may point at a digest.
pub(crate) const TAGGED: Table<Nested<Tag>, Marker> = Table::new("tagged/");
/// `parent/<repo>@<child>/<index>`: reverse index, the indexes that list a manifest.
pub(crate) const PARENTS: Table<Nested<Digest>, Marker> = Table::new("parent/");
/// `referrer/<repo>@<subject>/<digest>`: a referrer's descriptor, as stores from before
/// `referrer-list/` kept them (moved into the lists once, see `referrer-layout`).
pub(crate) const REFERRERS: Table<Nested<Digest>, Descriptor> = Table::new("referrer/");
/// `referrer-list/<repo>@<subject>`: the subject's referrers, each with what is known of
/// its manifest.
pub(crate) const REFERRER_LISTS: Table<InRepo<Digest>, ReferrerList> = Table::new("referrer-list/");
/// `referrer-layout`: every referrer is in `referrer-list/`.
pub(crate) const REFERRER_LAYOUT: Table<Singleton, ReferrerLayoutRecord> =
    Table::new("referrer-layout");
/// `pulled/<repo>@<digest>`: the last pull time, in milliseconds.
pub(crate) const PULLS: Table<InRepo<Digest>, u64> = Table::new("pulled/");
/// `upload/<id>`: an open upload session.
pub(crate) const UPLOADS: Table<UploadId, SessionRecord> = Table::new("upload/");
/// `kek/<name>`: the fingerprint of the key first used under a KEK name.
pub(crate) const KEKS: Table<KekName, KekRecord> = Table::new("kek/");
/// `kek-redirect/<name>`: a KEK rotated to another.
pub(crate) const KEK_REDIRECTS: Table<KekName, RedirectRecord> = Table::new("kek-redirect/");
/// `blob/<digest>`: a stored blob and where it stands with garbage collection.
pub(crate) const BLOBS: Table<Digest, BlobRecord> = Table::new("blob/");
/// `ref/<blob>/<holder>`: a manifest's hold on a blob.
pub(crate) const REFS: Table<RefKey, RefRecord> = Table::new("ref/");
/// `gc/candidate/<digest>`: a blob that may have become garbage.
pub(crate) const GC_CANDIDATES: Table<Digest, CandidateRecord> = Table::new("gc/candidate/");
/// `gc/layout`: every link and manifest of the store has its garbage-collection records.
pub(crate) const GC_LAYOUT: Table<Singleton, LayoutRecord> = Table::new("gc/layout");

/// `event/<seq>`: the outbox, one slot per announced change (20 decimal digits).
pub(crate) const EVENTS: Table<Seq, Slot> = Table::new("event/");
/// `event-head`: a slot that exists or existed, where a search for the end may start.
pub(crate) const EVENT_HEAD: Table<Singleton, u64> = Table::new("event-head");
/// `event-cursor/<subscriber>`: the next slot a subscriber gets, and who delivers to it.
pub(crate) const EVENT_CURSORS: Table<SubscriberName, CursorRecord> = Table::new("event-cursor/");
/// `dead-letter/<subscriber>/<seq>`: an event a subscriber kept refusing until it was too old.
pub(crate) const DEAD_LETTERS: Table<DeadLetterKey, DeadLetter> = Table::new("dead-letter/");
/// `lease/<job>`: which process runs a background job, until when.
pub(crate) const LEASES: Table<SubscriberName, LeaseRecord> = Table::new("lease/");

/// `scan/<repo>@<digest>`: where an image manifest's scan stands, and its results.
pub(crate) const SCANS: Table<InRepo<Digest>, ScanRecord> = Table::new("scan/");

/// `replication/<repo>@<digest>`: how an image stands with each replication destination.
pub(crate) const REPLICATIONS: Table<InRepo<Digest>, ReplicationRecord> =
    Table::new("replication/");

/// `upstream-tag/<repo>@<tag>`: what a pull-through cache last learnt of a tag upstream.
pub(crate) const UPSTREAM_TAGS: Table<InRepo<Tag>, UpstreamTagRecord> = Table::new("upstream-tag/");

/// `object/<path>`: a small published blob's object or a data-key wrap, kept here
/// instead of in the blob store's own object store (see `SmallObjects`).
pub(crate) const SMALL_OBJECTS: Table<ObjectPath, SmallObject> = Table::new("object/");

/// Every table's prefix with its longest key: the one list the layout checks read.
pub(crate) const TABLES: [(&str, usize); 29] = [
    REPOSITORIES.describe(),
    REPOSITORY_POLICIES.describe(),
    LINKS.describe(),
    MANIFESTS.describe(),
    TAGS.describe(),
    TAG_HISTORY.describe(),
    TAG_LAYOUT.describe(),
    TAGGED.describe(),
    PARENTS.describe(),
    REFERRERS.describe(),
    REFERRER_LISTS.describe(),
    REFERRER_LAYOUT.describe(),
    PULLS.describe(),
    UPLOADS.describe(),
    KEKS.describe(),
    KEK_REDIRECTS.describe(),
    BLOBS.describe(),
    REFS.describe(),
    GC_CANDIDATES.describe(),
    GC_LAYOUT.describe(),
    EVENTS.describe(),
    EVENT_HEAD.describe(),
    EVENT_CURSORS.describe(),
    DEAD_LETTERS.describe(),
    LEASES.describe(),
    SCANS.describe(),
    REPLICATIONS.describe(),
    UPSTREAM_TAGS.describe(),
    SMALL_OBJECTS.describe(),
];

// Every key fits the store's limit at the longest names and digests (contract point 7 of
// `MetaStore`): checked when the crate compiles.
const _: () = {
    let mut i = 0;
    while i < TABLES.len() {
        assert!(TABLES[i].1 <= MAX_KEY_LEN);
        i += 1;
    }
};

/// The longest digest text: `sha512:` and 128 hex digits.
const MAX_DIGEST_LEN: usize = 7 + 128;

/// The rest of a key after its table's prefix.
pub(crate) trait Key: Sized {
    /// Longest text [`Key::write`] produces, in bytes.
    const MAX_LEN: usize;
    /// Appends the key's text.
    fn write(&self, out: &mut String);
    /// Reads a key back from its text; a malformed key is [`ErrorKind::CorruptData`].
    fn parse(text: &str) -> Result<Self>;
}

fn unreadable_key(text: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!(
            "metadata key part {:?} is not {what}",
            crate::digest::truncate_for_message(text)
        ),
    )
}

/// Parses a key part with its own parser, reporting a failure as a corrupt key.
fn part<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse().map_err(|_| unreadable_key(text, what))
}

impl Key for RepoName {
    const MAX_LEN: usize = MAX_REPO_NAME_LEN;
    fn write(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
    fn parse(text: &str) -> Result<Self> {
        part(text, "a repository name")
    }
}

impl Key for Digest {
    const MAX_LEN: usize = MAX_DIGEST_LEN;
    fn write(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
    fn parse(text: &str) -> Result<Self> {
        part(text, "a digest")
    }
}

impl Key for Tag {
    const MAX_LEN: usize = MAX_TAG_LEN;
    fn write(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
    fn parse(text: &str) -> Result<Self> {
        part(text, "a tag")
    }
}

impl Key for UploadId {
    const MAX_LEN: usize = 32;
    fn write(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
    fn parse(text: &str) -> Result<Self> {
        part(text, "an upload id")
    }
}

/// A KEK's name (checked by [`check_kek_name`](crate::blob::check_kek_name) before it
/// reaches a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KekName(pub(crate) String);

impl Key for KekName {
    const MAX_LEN: usize = 128;
    fn write(&self, out: &mut String) {
        out.push_str(&self.0);
    }
    fn parse(text: &str) -> Result<Self> {
        crate::blob::check_kek_name(text).map_err(|_| unreadable_key(text, "a KEK name"))?;
        Ok(Self(text.to_owned()))
    }
}

/// The key of a table with one entry: the prefix alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Singleton;

impl Key for Singleton {
    const MAX_LEN: usize = 0;
    fn write(&self, _: &mut String) {}
    fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            Ok(Self)
        } else {
            Err(unreadable_key(text, "empty"))
        }
    }
}

/// A slot of the outbox: its number, written as 20 decimal digits so keys sort as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Seq(pub(crate) u64);

impl Key for Seq {
    const MAX_LEN: usize = 20;
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{:020}", self.0);
    }
    fn parse(text: &str) -> Result<Self> {
        if text.len() != 20 {
            return Err(unreadable_key(text, "a 20-digit slot number"));
        }
        part(text, "a slot number").map(Self)
    }
}

/// The name of a subscriber or a background job: 1 to 64 of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SubscriberName(pub(crate) String);

impl SubscriberName {
    pub(crate) fn new(name: &str) -> Result<Self> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "name {:?} must be 1 to 64 of a-z, 0-9, '.', '_' and '-'",
                    crate::digest::truncate_for_message(name)
                ),
            ))
        }
    }
}

impl Key for SubscriberName {
    const MAX_LEN: usize = 64;
    fn write(&self, out: &mut String) {
        out.push_str(&self.0);
    }
    fn parse(text: &str) -> Result<Self> {
        Self::new(text).map_err(|_| unreadable_key(text, "a subscriber name"))
    }
}

/// `<subscriber>/<seq>`: a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetterKey {
    pub(crate) subscriber: SubscriberName,
    pub(crate) seq: Seq,
}

impl Key for DeadLetterKey {
    const MAX_LEN: usize = SubscriberName::MAX_LEN + 1 + Seq::MAX_LEN;
    fn write(&self, out: &mut String) {
        self.subscriber.write(out);
        out.push('/');
        self.seq.write(out);
    }
    fn parse(text: &str) -> Result<Self> {
        let (subscriber, seq) = text
            .split_once('/')
            .ok_or_else(|| unreadable_key(text, "<subscriber>/<seq>"))?;
        Ok(Self {
            subscriber: SubscriberName::parse(subscriber)?,
            seq: Seq::parse(seq)?,
        })
    }
}

impl Prefix {
    /// Every dead letter of one subscriber.
    pub(crate) fn dead_letters_of(subscriber: &SubscriberName) -> Self {
        Self::new(format!("{}/", subscriber.0))
    }
}

/// `<repo>@<item>`: something in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InRepo<T> {
    pub(crate) repo: RepoName,
    pub(crate) item: T,
}

impl<T: Clone> InRepo<T> {
    pub(crate) fn new(repo: &RepoName, item: &T) -> Self {
        Self {
            repo: repo.clone(),
            item: item.clone(),
        }
    }
}

impl Prefix {
    /// Everything of an [`InRepo`] table in `repo`.
    pub(crate) fn in_repo(repo: &RepoName) -> Self {
        Self::new(format!("{repo}@"))
    }

    /// Every entry of a [`Nested`] table under `subject` in `repo`.
    pub(crate) fn of_subject(repo: &RepoName, subject: &Digest) -> Self {
        let written = subject_text(repo, subject);
        let mut prefix = Self::new(format!("{repo}@{written}/"));
        if written != subject.as_str() {
            prefix.legacy = Some(format!("{repo}@{subject}/"));
        }
        prefix
    }

    /// Every hold on `blob` ([`REFS`]).
    pub(crate) fn holds_on(blob: &Digest) -> Self {
        Self::new(format!("{blob}/"))
    }
}

impl<T: Key> Key for InRepo<T> {
    const MAX_LEN: usize = MAX_REPO_NAME_LEN + 1 + T::MAX_LEN;
    fn write(&self, out: &mut String) {
        self.repo.write(out);
        out.push('@');
        self.item.write(out);
    }
    fn parse(text: &str) -> Result<Self> {
        let (repo, item) = text
            .split_once('@')
            .ok_or_else(|| unreadable_key(text, "<repo>@<item>"))?;
        Ok(Self {
            repo: <RepoName as Key>::parse(repo)?,
            item: T::parse(item)?,
        })
    }
}

/// Longest `<repo>@<subject>` a nested key writes as is; above it the subject is hashed.
/// Leaves room for the longest table prefix of a nested table (`referrer/`), a `/` and
/// the longest item (a sha512 digest) within [`MAX_KEY_LEN`].
pub(crate) const NESTED_SCOPE_BUDGET: usize = MAX_KEY_LEN - "referrer/".len() - 1 - MAX_DIGEST_LEN;

/// The longest `<repo>@<subject>` a nested key writes: within the budget as is, or the
/// longest name with a hashed subject (`~` and 64 hex digits).
const MAX_SCOPE_LEN: usize = if NESTED_SCOPE_BUDGET > MAX_REPO_NAME_LEN + 1 + 65 {
    NESTED_SCOPE_BUDGET
} else {
    MAX_REPO_NAME_LEN + 1 + 65
};

/// `<repo>@<subject>/<item>`: something listed per subject in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nested<T> {
    pub(crate) repo: RepoName,
    /// The subject as written in the key: its digest, or `~<sha256 hex>` of it.
    subject: String,
    pub(crate) item: T,
}

impl<T: Clone> Nested<T> {
    pub(crate) fn new(repo: &RepoName, subject: &Digest, item: &T) -> Self {
        Self {
            repo: repo.clone(),
            subject: subject_text(repo, subject),
            item: item.clone(),
        }
    }

    /// The subject, unless the key writes it hashed.
    pub(crate) fn subject_digest(&self) -> Option<Digest> {
        self.subject.parse().ok()
    }
}

/// How a nested key writes `subject` (see the module docs).
fn subject_text(repo: &RepoName, subject: &Digest) -> String {
    if repo.as_str().len() + 1 + subject.as_str().len() <= NESTED_SCOPE_BUDGET {
        subject.to_string()
    } else {
        let hashed = Digest::of(Algorithm::Sha256, subject.as_str().as_bytes());
        format!("~{}", hashed.hex())
    }
}

impl<T: Key> Key for Nested<T> {
    const MAX_LEN: usize = MAX_SCOPE_LEN + 1 + T::MAX_LEN;
    fn write(&self, out: &mut String) {
        self.repo.write(out);
        out.push('@');
        out.push_str(&self.subject);
        out.push('/');
        self.item.write(out);
    }
    fn parse(text: &str) -> Result<Self> {
        let bad = || unreadable_key(text, "<repo>@<subject>/<item>");
        let (repo, rest) = text.split_once('@').ok_or_else(bad)?;
        let (subject, item) = rest.split_once('/').ok_or_else(bad)?;
        Ok(Self {
            repo: <RepoName as Key>::parse(repo)?,
            subject: subject.to_owned(),
            item: T::parse(item)?,
        })
    }
}

/// `<blob>/<holder>`: a manifest's hold on a blob. The holder is the sha256 of
/// `<repo>@<manifest>`, so the key stays short whatever the names; the record says
/// which manifest it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefKey {
    pub(crate) blob: Digest,
    holder: String,
}

impl RefKey {
    pub(crate) fn new(blob: &Digest, repo: &RepoName, manifest: &Digest) -> Self {
        let holder = Digest::of(Algorithm::Sha256, format!("{repo}@{manifest}").as_bytes());
        Self {
            blob: blob.clone(),
            holder: holder.hex().to_owned(),
        }
    }
}

impl Key for RefKey {
    const MAX_LEN: usize = MAX_DIGEST_LEN + 1 + 64;
    fn write(&self, out: &mut String) {
        self.blob.write(out);
        out.push('/');
        out.push_str(&self.holder);
    }
    fn parse(text: &str) -> Result<Self> {
        let (blob, holder) = text
            .split_once('/')
            .ok_or_else(|| unreadable_key(text, "<blob>/<holder>"))?;
        Ok(Self {
            blob: <Digest as Key>::parse(blob)?,
            holder: holder.to_owned(),
        })
    }
}

/// How a table's values are stored.
pub(crate) trait Value: Sized {
    fn encode(&self) -> Result<bytes::Bytes>;
    /// Reads a value stored under `key`; unreadable is [`ErrorKind::CorruptData`].
    fn decode(raw: &[u8], key: &str) -> Result<Self>;
}

/// Values stored as JSON.
pub(crate) trait Json: serde::Serialize + serde::de::DeserializeOwned {}

impl<T: Json> Value for T {
    fn encode(&self) -> Result<bytes::Bytes> {
        serde_json::to_vec(self)
            .map(bytes::Bytes::from)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("encoding metadata: {e}")))
    }
    fn decode(raw: &[u8], key: &str) -> Result<Self> {
        serde_json::from_slice(raw).map_err(|e| {
            Error::new(
                ErrorKind::CorruptData,
                format!("metadata record {key:?} is unreadable: {e}"),
            )
        })
    }
}

impl Json for RepositoryRecord {}
impl Json for ScanRecord {}
impl Json for ReplicationRecord {}
impl Json for UpstreamTagRecord {}
impl Json for PolicyRecord {}
impl Json for LinkRecord {}
impl Json for ManifestRecord {}
impl Json for TagRecord {}
impl Json for TagLayoutRecord {}
impl Json for ReferrerList {}
impl Json for ReferrerLayoutRecord {}
impl Json for Descriptor {}
impl Json for u64 {}
impl Json for SessionRecord {}
impl Json for KekRecord {}
impl Json for RedirectRecord {}
impl Json for BlobRecord {}
impl Json for RefRecord {}
impl Json for CandidateRecord {}
impl Json for LayoutRecord {}
impl Json for Slot {}
impl Json for CursorRecord {}
impl Json for DeadLetter {}
impl Json for LeaseRecord {}

/// The value of an index entry whose key says everything: empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker;

impl Value for Marker {
    fn encode(&self) -> Result<bytes::Bytes> {
        Ok(bytes::Bytes::new())
    }
    fn decode(_: &[u8], _: &str) -> Result<Self> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests;
