//! `referrer-list/<repo>@<subject>`: a subject's referrers in one record, so the
//! referrers API reads one value whatever their number (one `GET` on an object store).
//!
//! A push adds its referrer to the list before it commits the manifest record, and a
//! delete takes it out after it removed the record, so the list holds every visible
//! referrer and perhaps some that are not visible. Each entry says what is known of its
//! manifest:
//!
//! - `pending`: added by a push (or moved in from the older layout). The manifest may
//!   not be visible yet, or ever; a listing looks at its record.
//! - `confirmed`: the committed record was seen. Listed without a look.
//! - `deleting`: a delete is under way. Listed only while the record is visible.
//!
//! # Why a confirmed entry's manifest is visible
//!
//! Only a `pending` entry is confirmed, by compare-and-swap against the list as it was
//! read *before* the committed record was seen. A delete reads the record's version,
//! then marks the entry `deleting`, then removes the record by compare-and-swap on that
//! version. So a record seen after the list was read is removed only after a later mark,
//! which the confirmation's compare-and-swap loses to, or which overwrites it. A push
//! during a delete sets its entry `pending` again; every commit of a record writes it
//! anew, so either the delete's compare-and-swap fails or the push's commit comes after
//! it and brings the record back.
//!
//! # Why a visible manifest is listed
//!
//! A push adds its entry before its commit point, but a delete that overlaps it may mark
//! that entry `deleting` (or find it `confirmed` and mark it) and remove it after its own
//! commit point, which can come before the push's commit brings the record back. So after
//! its commit point a push looks again: an entry that is missing or `deleting` while the
//! record is committed is set `pending` again. A delete removes only an entry still
//! marked, so whichever of the two writes the list last, the entry stays.
//!
//! # Leftovers
//!
//! A `pending` entry whose record is still missing after the collection grace period
//! was left by a push that failed or crashed: a push commits within half of it or not at
//! all ([`HoldDeadline`](super::blob_records::HoldDeadline)). A `deleting` entry without
//! its record was left by a delete that stopped after its commit point. A listing removes
//! both, by compare-and-swap, so a push that adds the entry again meanwhile keeps it.
//!
//! Stores written before this record kept one `referrer/<repo>@<subject>/<digest>` entry
//! per referrer. The first listing in such a store moves them into the lists as
//! `pending` and marks the store (`referrer-layout`); every later listing, in any
//! process, trusts the mark (one read per process).

use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::{Change, InRepo, Prefix, REFERRER_LAYOUT, REFERRER_LISTS, REFERRERS, Retry};
use crate::digest::Digest;
use crate::error::{ErrorKind, Result};
use crate::manifest::Descriptor;
use crate::meta::{Durability, Expect, Version};
use crate::reference::RepoName;

/// A subject's referrers, ordered by digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReferrerList {
    entries: Vec<ListedReferrer>,
}

/// One referrer in its subject's list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ListedReferrer {
    pub(crate) descriptor: Descriptor,
    pub(crate) state: ListedState,
    /// When a push (or a move from the older layout) last set it `pending`.
    at_ms: u64,
}

/// What is known of a listed referrer's manifest (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ListedState {
    Pending,
    Confirmed,
    Deleting,
}

/// The mark saying every referrer is in a `referrer-list/` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReferrerLayoutRecord {
    lists_only: bool,
}

/// What a listing decided about an entry after looking at its record.
pub(crate) enum Tidy {
    /// Seen committed: mark it `confirmed`.
    Confirm(Digest),
    /// A leftover: remove it.
    Remove(Digest),
}

impl ReferrerList {
    fn position(&self, digest: &Digest) -> std::result::Result<usize, usize> {
        self.entries
            .binary_search_by(|e| e.descriptor.digest.cmp(digest))
    }

    /// The entries, ordered by digest.
    pub(crate) fn entries(&self) -> &[ListedReferrer] {
        &self.entries
    }
}

impl ListedReferrer {
    /// Whether it was set `pending` at least `grace_ms` before `now_ms`.
    pub(crate) fn older_than(&self, grace_ms: u64, now_ms: u64) -> bool {
        self.at_ms.saturating_add(grace_ms) <= now_ms
    }
}

impl Registry {
    /// The list of `subject`'s referrers in `repo` with its version (empty if none).
    pub(crate) async fn referrer_list(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<(ReferrerList, Option<Version>)> {
        self.ensure_referrer_lists().await?;
        Ok(
            match REFERRER_LISTS
                .get(self.meta(), &InRepo::new(repo, subject))
                .await?
            {
                Some((list, version)) => (list, Some(version)),
                None => (ReferrerList::default(), None),
            },
        )
    }

    /// Adds a referrer to its subject's list as `pending` before its record is committed
    /// (a `confirmed` entry stays: its record exists, and the push writes it again).
    pub(crate) async fn list_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        descriptor: &Descriptor,
    ) -> Result<()> {
        // Relaxed: the push's durable commit point, after its holds, carries it.
        self.add_listed(repo, subject, descriptor, Durability::Relaxed, |state| {
            state != ListedState::Confirmed
        })
        .await
    }

    /// Adds `descriptor` as `pending`: where there is none, or over an entry whose state
    /// `replace` accepts.
    async fn add_listed(
        &self,
        repo: &RepoName,
        subject: &Digest,
        descriptor: &Descriptor,
        durability: Durability,
        replace: impl Fn(ListedState) -> bool,
    ) -> Result<()> {
        let now = self.now_millis();
        let key = InRepo::new(repo, subject);
        REFERRER_LISTS
            .update_with(self.meta(), &key, durability, |list| {
                let mut list = list.unwrap_or_default();
                let fresh = ListedReferrer {
                    descriptor: descriptor.clone(),
                    state: ListedState::Pending,
                    at_ms: now,
                };
                match list.position(&descriptor.digest) {
                    Ok(i) if !replace(list.entries[i].state) => return Ok(Change::Keep),
                    Ok(i) => list.entries[i] = fresh,
                    Err(i) => list.entries.insert(i, fresh),
                }
                Ok(Change::Put(list))
            })
            .await
            .map(drop)
    }

    /// After a push's commit point: makes sure the list holds its referrer, and confirms
    /// it. A `pending` entry is confirmed: read the list, then the record, then
    /// compare-and-swap. A missing or `deleting` entry is set `pending` again while the
    /// record is committed: a delete that overlapped the push may have marked or removed
    /// the entry before the push's commit brought the record back, and the delete's
    /// removal after its commit point takes only an entry still marked. Gives up quietly
    /// after a bounded number of lost races (other referrers of the subject being
    /// pushed): a listing confirms a `pending` entry then.
    pub(crate) async fn confirm_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        descriptor: &Descriptor,
    ) -> Result<()> {
        let digest = &descriptor.digest;
        let key = REFERRER_LISTS.key(&InRepo::new(repo, subject));
        let mut retry = Retry::new(&key);
        loop {
            let (list, version) = self.referrer_list(repo, subject).await?;
            let state = list.position(digest).ok().map(|i| list.entries[i].state);
            if state == Some(ListedState::Confirmed) || !self.is_committed(repo, digest).await? {
                // Listed for good, or deleted since (by a delete that unlists it).
                return Ok(());
            }
            let attempt = match (state, version) {
                (Some(ListedState::Pending), Some(version)) => {
                    let confirm = vec![Tidy::Confirm(digest.clone())];
                    self.tidy_referrers(repo, subject, list, version, confirm)
                        .await
                }
                _ => {
                    self.add_listed(repo, subject, descriptor, Durability::Relaxed, |state| {
                        state == ListedState::Deleting
                    })
                    .await
                }
            };
            match attempt {
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    if retry.again(e).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
                // Set `pending` again: confirmed on the next turn.
                Ok(()) if state != Some(ListedState::Pending) => {}
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Whether the manifest's record is committed (not staged by a push by tag).
    pub(crate) async fn is_committed(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        Ok(self
            .raw_manifest_record(repo, digest)
            .await?
            .is_some_and(|(record, _)| !record.pending))
    }

    /// Applies a listing's decisions to the list as it was read at `version`, by one
    /// compare-and-swap; [`ErrorKind::Conflict`] if the list changed meanwhile.
    pub(crate) async fn tidy_referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        mut list: ReferrerList,
        version: Version,
        decisions: Vec<Tidy>,
    ) -> Result<()> {
        for decision in decisions {
            match decision {
                Tidy::Confirm(digest) => {
                    if let Ok(i) = list.position(&digest) {
                        list.entries[i].state = ListedState::Confirmed;
                    }
                }
                Tidy::Remove(digest) => {
                    if let Ok(i) = list.position(&digest) {
                        list.entries.remove(i);
                    }
                }
            }
        }
        let key = InRepo::new(repo, subject);
        let expect = Expect::Version(version);
        let write = if list.entries.is_empty() {
            REFERRER_LISTS.delete_write(&key, expect)
        } else {
            REFERRER_LISTS.put_write(&key, &list, expect)?
        };
        // Relaxed: a confirmation or a removal lost at a crash is decided again.
        self.meta()
            .batch(vec![write], Durability::Relaxed)
            .await
            .map(drop)
    }

    /// Marks a referrer `deleting`, before its record is removed.
    pub(crate) async fn mark_referrer_deleting(
        &self,
        repo: &RepoName,
        subject: &Digest,
        digest: &Digest,
    ) -> Result<()> {
        self.change_listed(repo, subject, digest, |entry| {
            (entry.state != ListedState::Deleting).then_some(ListedState::Deleting)
        })
        .await
    }

    /// After a delete that did not happen (the manifest was pushed again): its entry is
    /// `pending` again, so a listing may confirm it.
    pub(crate) async fn unmark_referrer_deleting(
        &self,
        repo: &RepoName,
        subject: &Digest,
        digest: &Digest,
    ) -> Result<()> {
        self.change_listed(repo, subject, digest, |entry| {
            (entry.state == ListedState::Deleting).then_some(ListedState::Pending)
        })
        .await
    }

    /// After its record is removed: takes the referrer out of the list, unless a push
    /// set it `pending` again meanwhile.
    pub(crate) async fn unlist_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        digest: &Digest,
    ) -> Result<()> {
        let key = InRepo::new(repo, subject);
        // Relaxed: an entry whose record is gone is removed by the next listing anyway.
        REFERRER_LISTS
            .update_with(self.meta(), &key, Durability::Relaxed, |list| {
                let Some(mut list) = list else {
                    return Ok(Change::Keep);
                };
                match list.position(digest) {
                    Ok(i) if list.entries[i].state == ListedState::Deleting => {
                        list.entries.remove(i);
                        // An empty list goes, in the same compare-and-swap, so a push
                        // that added to it meanwhile keeps it.
                        Ok(if list.entries.is_empty() {
                            Change::Delete
                        } else {
                            Change::Put(list)
                        })
                    }
                    _ => Ok(Change::Keep),
                }
            })
            .await
            .map(drop)
    }

    /// Sets the state of a listed referrer to what `next` says, if anything.
    async fn change_listed(
        &self,
        repo: &RepoName,
        subject: &Digest,
        digest: &Digest,
        next: impl Fn(&ListedReferrer) -> Option<ListedState>,
    ) -> Result<()> {
        let now = self.now_millis();
        let key = InRepo::new(repo, subject);
        // Relaxed: a mark is followed by the delete's durable commit point; an unmark
        // lost at a crash leaves an entry listed by a look at its record.
        REFERRER_LISTS
            .update_with(self.meta(), &key, Durability::Relaxed, |list| {
                let Some(mut list) = list else {
                    return Ok(Change::Keep);
                };
                let Ok(i) = list.position(digest) else {
                    return Ok(Change::Keep);
                };
                let Some(state) = next(&list.entries[i]) else {
                    return Ok(Change::Keep);
                };
                let entry = &mut list.entries[i];
                entry.state = state;
                if state == ListedState::Pending {
                    entry.at_ms = now;
                }
                Ok(Change::Put(list))
            })
            .await
            .map(drop)
    }

    /// Makes sure every referrer is in a `referrer-list/` record: one read the first time
    /// in a process, and in a store from before those records, one walk of the older
    /// per-referrer entries, ever.
    async fn ensure_referrer_lists(&self) -> Result<()> {
        self.ensure_layout(
            &self.inner.referrer_lists_only,
            &REFERRER_LAYOUT,
            ReferrerLayoutRecord { lists_only: true },
            |layout| layout.lists_only,
            self.move_referrer_entries_in(),
        )
        .await
    }

    /// Moves every older per-referrer entry into its subject's list as `pending` (the
    /// listing looks at its record), then removes it.
    async fn move_referrer_entries_in(&self) -> Result<()> {
        let mut after = None;
        while let Some(page) = REFERRERS
            .next_page(self.meta(), &Prefix::all(), &mut after)
            .await?
        {
            for row in page {
                // The subject as the key names it, or (hashed there) as the record does.
                let subject = match row.key.subject_digest() {
                    Some(subject) => Some(subject),
                    None => self
                        .raw_manifest_record(&row.key.repo, &row.key.item)
                        .await?
                        .and_then(|(record, _)| record.subject),
                };
                // Never over an entry already there: a `deleting` one must stay so, as
                // no push comes with this move to fail the delete's compare-and-swap.
                if let Some(subject) = subject {
                    self.add_listed(
                        &row.key.repo,
                        &subject,
                        &row.value,
                        Durability::Durable,
                        |_| false,
                    )
                    .await?;
                }
                match REFERRERS
                    .delete(self.meta(), &row.key, Expect::Version(row.version))
                    .await
                {
                    Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
