//! Tags on [`Registry`]: resolve, list in pages, move only by compare-and-swap, keep a
//! bounded history of every move, delete.
//!
//! A tag is the record `tag/<repo>@<tag>`: its target and its last moves, changed together
//! by one compare-and-swap, so concurrent pushes to one tag apply one after another and
//! the history is a consistent chain. A deleted tag's history moves to
//! `tag-history/<repo>@<tag>` (written first, then the tag is removed by compare-and-swap),
//! so `tag/` holds only live tags and a page of the listing costs its size, whatever was
//! deleted; a tag set again takes that history back. The reverse index
//! `tagged/<repo>@<digest>/<tag>` is written before a tag moves to a digest and removed
//! after it moves away; readers check its entries against the tags themselves.

use serde::{Deserialize, Serialize};

use super::Registry;
use super::blob_records::HoldDeadline;
use super::manifests::ManifestRecord;
use super::outbox::{SlotState, Witness};
use super::schema::{InRepo, Marker, Nested, Prefix, Retry, TAG_HISTORY, TAGGED, TAGS};
use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::events::{Event, EventId};
use crate::meta::{Expect, Version, Write};
use crate::reference::{RepoName, Tag};
use crate::util::from_millis;

/// Moves kept in a tag's history; older ones are dropped.
pub const TAG_HISTORY_LEN: usize = 50;

/// A tag's target and history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct TagRecord {
    pub(super) digest: Option<Digest>,
    pub(super) history: Vec<TagMove>,
}

impl TagRecord {
    /// This record after a move from `from` to `to` by the event `id`: the move appended
    /// to the history (the oldest dropped beyond [`TAG_HISTORY_LEN`]).
    fn moved(&self, from: Option<Digest>, to: Option<&Digest>, at_ms: u64, id: &EventId) -> Self {
        let mut record = self.clone();
        record.history.push(TagMove {
            from,
            to: to.cloned(),
            at_ms,
            event: Some(id.clone()),
        });
        let overflow = record.history.len().saturating_sub(TAG_HISTORY_LEN);
        record.history.drain(..overflow);
        record.digest = to.cloned();
        record
    }
}

/// One move of a tag as the writes of an atomic batch: the tag, its history record and
/// the reverse index change together.
struct TagChange<'a> {
    repo: &'a RepoName,
    tag: &'a Tag,
    from: Option<&'a Digest>,
    to: Option<&'a Digest>,
    /// What the live tag must be.
    expect: Expect,
    /// The version of the deleted tag's history record it takes its history from.
    deleted: Option<Version>,
    /// A push's manifest record, committed with the move.
    record: Option<Write>,
}

/// What a push by tag commits with its tag move.
pub(super) struct PushCommit<'a> {
    /// The push's deadline (see [`HoldDeadline`]).
    pub(super) deadline: Option<&'a HoldDeadline>,
    /// The manifest's record: written committed in the move's batch where batches are
    /// atomic; elsewhere the push stages it before the move and commits it after.
    pub(super) record: &'a ManifestRecord,
}

impl TagChange<'_> {
    fn writes(&self, record: &TagRecord) -> Result<Vec<Write>> {
        let key = InRepo::new(self.repo, self.tag);
        let mut writes = Vec::with_capacity(5);
        writes.extend(self.record.clone());
        match self.to {
            Some(to) => {
                writes.push(TAGS.put_write(&key, record, self.expect)?);
                if let Some(version) = self.deleted {
                    writes.push(TAG_HISTORY.delete_write(&key, Expect::Version(version)));
                }
                let reverse = Nested::new(self.repo, to, self.tag);
                writes.push(TAGGED.put_write(&reverse, &Marker, Expect::Any)?);
            }
            None => {
                writes.push(TAG_HISTORY.put_write(&key, record, Expect::Any)?);
                writes.push(TAGS.delete_write(&key, self.expect));
            }
        }
        if let Some(from) = self.from {
            writes.push(TAGGED.delete_write(&Nested::new(self.repo, from, self.tag), Expect::Any));
        }
        Ok(writes)
    }
}

/// One move of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMove {
    /// Where the tag pointed before (`None`: it was created).
    pub from: Option<Digest>,
    /// Where it points after (`None`: it was deleted).
    pub to: Option<Digest>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The event that announced the move (moves recorded before the outbox have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventId>,
}

impl TagMove {
    /// When the move happened.
    pub fn at(&self) -> std::time::SystemTime {
        from_millis(self.at_ms)
    }
}

impl Registry {
    /// The tags that point at `digest` now: reverse-index entries checked against the tags.
    pub(super) async fn tags_pointing_at(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<Tag>> {
        let within = Prefix::of_subject(repo, digest);
        let mut tags = Vec::new();
        for entry in TAGGED.list_all(self.meta(), &within).await? {
            let tag = entry.key.item;
            if self.tag_target(repo, &tag).await?.as_ref() == Some(digest) {
                tags.push(tag);
            }
        }
        Ok(tags)
    }

    /// A live tag's record with its version.
    async fn tag_record(&self, repo: &RepoName, tag: &Tag) -> Result<Option<(TagRecord, Version)>> {
        TAGS.get(self.meta(), &InRepo::new(repo, tag)).await
    }

    /// A deleted tag's history with its version.
    async fn deleted_tag_record(
        &self,
        repo: &RepoName,
        tag: &Tag,
    ) -> Result<Option<(TagRecord, Version)>> {
        TAG_HISTORY.get(self.meta(), &InRepo::new(repo, tag)).await
    }

    /// Where a tag points, if anywhere.
    pub(super) async fn tag_target(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        Ok(self
            .tag_record(repo, tag)
            .await?
            .and_then(|(r, _)| r.digest))
    }

    /// Points `tag` at `to` (`None` removes it) if `when` holds for where it points now,
    /// by compare-and-swap, recording the move and keeping the reverse index ahead of it.
    /// The move is the commit point of the event `event` makes of where the tag pointed,
    /// and of `push` if it is one. Returns whether the tag moved.
    pub(super) async fn move_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        to: Option<&Digest>,
        when: impl Fn(Option<&Digest>) -> Result<bool>,
        event: impl Fn(Option<&Digest>) -> Event,
        push: Option<PushCommit<'_>>,
    ) -> Result<bool> {
        let deadline = push.as_ref().and_then(|p| p.deadline);
        let atomic = self.meta().atomic_batches();
        if let (Some(to), false) = (to, atomic) {
            let reverse = Nested::new(repo, to, tag);
            TAGGED
                .put(self.meta(), &reverse, &Marker, Expect::Any)
                .await?;
        }
        let key = TAGS.key(&InRepo::new(repo, tag));
        let mut retry = Retry::new(&key);
        loop {
            let live = self.tag_record(repo, tag).await?;
            // A tag set again continues the history it had when it was deleted.
            let deleted = match live {
                Some(_) => None,
                None => self.deleted_tag_record(repo, tag).await?,
            };
            let (record, expect) = match (&live, &deleted) {
                (Some((record, version)), _) => (record.clone(), Expect::Version(*version)),
                (None, Some((history, _))) => (history.clone(), Expect::Absent),
                (None, None) => (TagRecord::default(), Expect::Absent),
            };
            // A history record left with a target (an old store) does not count as one.
            let from = live.as_ref().and(record.digest.clone());
            if from.as_ref() == to || !when(from.as_ref())? {
                return Ok(false);
            }
            if let Some(old) = &from {
                // The old target may be visible only through this tag.
                self.settle_pending(repo, old).await?;
            }
            let event = event(from.as_ref());
            let (witness, replaced) = match to {
                Some(_) => {
                    let keys = vec![key.clone(), TAG_HISTORY.key(&InRepo::new(repo, tag))];
                    (Witness::Carried { keys }, Vec::new())
                }
                None => {
                    let replaced = record.history.iter().filter_map(|m| m.event.clone());
                    (Witness::Removed { key: key.clone() }, replaced.collect())
                }
            };
            let moved = |id: &EventId| record.moved(from.clone(), to, self.now_millis(), id);
            let record_write = match (&push, to, atomic) {
                (Some(push), Some(to), true) => {
                    Some(self.committed_record_write(repo, to, push.record).await?)
                }
                _ => None,
            };
            let change = TagChange {
                repo,
                tag,
                from: from.as_ref(),
                to,
                expect,
                deleted: deleted.as_ref().map(|(_, version)| *version),
                record: record_write,
            };
            let committed = if atomic {
                self.commit_in_batch(&event, witness, replaced, deadline, |id| {
                    change.writes(&moved(id))
                })
                .await
                .map(drop)
            } else {
                let announced = self.announce(&event, witness, replaced).await?;
                self.within_deadline(&announced)?;
                self.check_hold_deadline(deadline)?;
                let record = moved(&announced.id);
                let written = match to {
                    Some(_) => self.set_tag(repo, tag, &record, expect, deleted).await,
                    None => self.remove_tag(repo, tag, &record, expect).await,
                };
                let state = match written {
                    Ok(()) => SlotState::Committed,
                    Err(ref e) if e.kind() == ErrorKind::Conflict => SlotState::Void,
                    Err(e) => return Err(e),
                };
                self.mark(&announced, state).await;
                if let (Ok(()), Some(from)) = (&written, &from) {
                    let reverse = Nested::new(repo, from, tag);
                    TAGGED.delete(self.meta(), &reverse, Expect::Any).await?;
                }
                written
            };
            match committed {
                Ok(()) => {
                    self.after_commit(event);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Conflict => retry.again(e).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes `tag` if it still points at `digest` (`rule`: the lifecycle rule that
    /// expired the image).
    pub(super) async fn untag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        rule: Option<u32>,
    ) -> Result<()> {
        let deleted = |_: Option<&Digest>| Event::TagDeleted {
            repo: repo.clone(),
            tag: tag.clone(),
            digest: digest.clone(),
            rule,
        };
        self.move_tag(
            repo,
            tag,
            None,
            |now| Ok(now == Some(digest)),
            deleted,
            None,
        )
        .await
        .map(drop)
    }

    /// Writes a live tag (the commit point); a deleted tag's history record it took its
    /// history from goes after it (by version: a delete that wrote it anew keeps it).
    async fn set_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        record: &TagRecord,
        expect: Expect,
        deleted: Option<(TagRecord, Version)>,
    ) -> Result<()> {
        let key = InRepo::new(repo, tag);
        TAGS.put(self.meta(), &key, record, expect).await?;
        if let Some((_, version)) = deleted {
            match TAG_HISTORY
                .delete(self.meta(), &key, Expect::Version(version))
                .await
            {
                Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes a live tag: its history first (a crash between leaves the tag live and a
    /// stale history record that the next delete rewrites), then the tag by
    /// compare-and-swap (the commit point).
    async fn remove_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        record: &TagRecord,
        expect: Expect,
    ) -> Result<()> {
        let key = InRepo::new(repo, tag);
        TAG_HISTORY
            .put(self.meta(), &key, record, Expect::Any)
            .await?;
        TAGS.delete(self.meta(), &key, expect).await
    }

    /// The digest `tag` points at; [`ErrorKind::ManifestUnknown`] if there is none.
    pub async fn resolve_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Digest> {
        self.tag_target(repo, tag)
            .await?
            .ok_or_else(|| Self::manifest_unknown(repo, tag))
    }

    /// Tags of `repo` in lexical order, after `last`: `n` of them, or fewer only when the
    /// listing ends (the `tags/list` API).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: usize,
        last: Option<&Tag>,
    ) -> Result<Vec<Tag>> {
        self.repository(repo).await?;
        self.ensure_live_tags_only().await?;
        let after = last.map(|t| InRepo::new(repo, t));
        let keys = TAGS
            .list_keys(self.meta(), &Prefix::in_repo(repo), after.as_ref(), n)
            .await?;
        Ok(keys.into_iter().map(|key| key.item).collect())
    }

    /// Where `tag` pointed over time, oldest first (at most [`TAG_HISTORY_LEN`] moves),
    /// also after it was deleted.
    pub async fn tag_history(&self, repo: &RepoName, tag: &Tag) -> Result<Vec<TagMove>> {
        let record = match self.tag_record(repo, tag).await? {
            Some(live) => Some(live),
            None => self.deleted_tag_record(repo, tag).await?,
        };
        Ok(record.map(|(r, _)| r.history).unwrap_or_default())
    }

    /// Removes a tag; the manifest stays.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, tag = %tag), err(level = "debug", Display))]
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        let digest = self.resolve_tag(repo, tag).await?;
        self.untag(repo, tag, &digest, None).await
    }
}
