//! The outbox: every change's [`Event`] in the metadata store, in one sequence, so a
//! dispatcher can deliver it at least once after the change committed, and never when it
//! did not.
//!
//! # How a change and its event stay together without transactions
//!
//! A change commits at one compare-and-swap on one key (a tag, a manifest record, a
//! link, a repository record). Just before that write the writer *announces* its event:
//! it creates the next slot `event/<seq>` (pending) naming the key that will prove the
//! change (the witness). The committing value carries the event's id (in its `events`
//! list, or in a tag move), so the change and the proof that it happened are one write.
//! A slot is then settled, by whoever reads it first:
//!
//! - **Committed**: the witness key holds a value that names the id, or a later slot
//!   records that its change removed a value naming it (a delete read it there). A
//!   delete's own commit is marked by its writer right after the delete; if the writer
//!   died in between, the key's absence after the deadline proves it.
//! - **Void**: the writer lost its compare-and-swap and said so, or the deadline passed
//!   (plus a margin) with no proof. A writer never commits after its slot's deadline
//!   ([`ANNOUNCE_DEADLINE`]), so a voided slot cannot come true later.
//!
//! # One batch where the store has them
//!
//! On a store whose batches are all or nothing (redb, memory), the slot is written
//! already `Committed` in the same batch as the change: the batch is the commit point,
//! so the slot and its change are seen together or not at all, and a push pays one
//! durable commit instead of three (announce, change, mark). A lost race leaves no slot,
//! so the log stays gapless. Object stores keep the announce-change-mark sequence above.
//!
//! # Order
//!
//! Slots are numbered without gaps: slot `n` is created only once `n - 1` exists, so a
//! reader that has passed `n` never sees a slot appear behind it. A writer announces
//! after it has read the value it replaces, so of two changes to one key the one that
//! committed second holds the later slot: delivery in slot order is commit order, for
//! every key and so for every repository. A pending slot holds back those after it until
//! it settles (a live writer settles it in milliseconds; a dead one at its deadline).

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Registry;
use super::blob_records::HoldDeadline;
use super::schema::{EVENT_HEAD, EVENTS, Key, Prefix, Retry, Seq, Singleton, Table, Value};
use crate::error::{ErrorKind, Result};
use crate::events::{Event, EventId, EventRecord};
use crate::meta::{Durability, Expect, Version, Write};

/// A writer that announced an event must reach its commit point within this time, or
/// give up: a slot older than this (plus a settling margin) with no proof is void.
pub const ANNOUNCE_DEADLINE: Duration = Duration::from_secs(30);

/// Time past a slot's deadline before it is settled as void without proof: covers a
/// write still in flight when its writer checked the deadline, and clock skew between
/// processes.
pub(crate) const SETTLE_MARGIN: Duration = Duration::from_secs(30);

/// Event ids a record keeps, newest last: enough for its changes to be settled before
/// they scroll out.
const CARRIED: usize = 8;

/// Slots written between updates of the `event-head` hint.
const HEAD_HINT_EVERY: u64 = 256;

/// Where a slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SlotState {
    /// Announced; its change may or may not have committed yet.
    Pending,
    /// Its change committed: deliver it.
    Committed,
    /// Its change did not happen: skip it.
    Void,
}

/// What proves that a slot's change committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Witness {
    /// The change wrote a value naming the event at one of these metadata keys (a tag's
    /// live record, or its history record once deleted).
    Carried { keys: Vec<String> },
    /// The change removed this key; its writer marks the slot committed after it.
    Removed { key: String },
}

/// One slot of the outbox (`event/<seq>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Slot {
    pub(crate) id: EventId,
    pub(crate) at_ms: u64,
    pub(crate) deadline_ms: u64,
    pub(crate) state: SlotState,
    pub(crate) witness: Witness,
    /// For a removal: the event ids the removed value carried, which this slot proves
    /// committed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) replaced: Vec<EventId>,
    pub(crate) event: Event,
}

impl Slot {
    /// A new slot `seq` for `event`, written at `at_ms` in `state`, with a fresh id and
    /// the deadline [`ANNOUNCE_DEADLINE`] after.
    fn new(
        seq: u64,
        at_ms: u64,
        state: SlotState,
        witness: &Witness,
        replaced: &[EventId],
        event: &Event,
    ) -> Self {
        Self {
            id: EventId::new(seq, getrandom::u64().unwrap_or_default()),
            at_ms,
            deadline_ms: at_ms + ANNOUNCE_DEADLINE.as_millis() as u64,
            state,
            witness: witness.clone(),
            replaced: replaced.to_vec(),
            event: event.clone(),
        }
    }

    pub(crate) fn record(&self) -> EventRecord {
        EventRecord {
            id: self.id.clone(),
            at_ms: self.at_ms,
            event: self.event.clone(),
        }
    }
}

/// An event announced by this writer.
#[derive(Debug, Clone)]
pub(crate) struct Announced {
    pub(crate) seq: u64,
    pub(crate) id: EventId,
    deadline_ms: u64,
    /// The slot as written, and its version: the writer's mark needs no read.
    slot: Box<Slot>,
    version: Version,
}

/// A record that carries the ids of the events that wrote it.
pub(crate) trait CarriesEvents {
    fn carried(&mut self) -> &mut Vec<EventId>;

    /// Adds `id`, dropping the oldest beyond [`CARRIED`].
    fn carry(&mut self, id: &EventId) {
        let ids = self.carried();
        ids.push(id.clone());
        let overflow = ids.len().saturating_sub(CARRIED);
        ids.drain(..overflow);
    }
}

/// What a change does to its key.
#[derive(Debug)]
pub(crate) enum Outcome<V> {
    Put(V),
    Delete,
}

/// What [`Registry::commit_with_event`] did.
#[derive(Debug)]
pub(crate) enum Applied<V> {
    /// Nothing to change: no event.
    Unchanged,
    /// Wrote this value, now at this version.
    Put(V, Version),
    /// Removed the key.
    Deleted,
}

impl Registry {
    /// Announces `event` in the next slot of the outbox, pending, before its change's
    /// commit point.
    pub(crate) async fn announce(
        &self,
        event: &Event,
        witness: Witness,
        replaced: Vec<EventId>,
    ) -> Result<Announced> {
        let at_ms = self.now_millis();
        let head = EVENTS.prefix();
        let mut retry = Retry::new(head);
        let mut seq = self.next_slot().await?;
        loop {
            let slot = Slot::new(seq, at_ms, SlotState::Pending, &witness, &replaced, event);
            match EVENTS.create(self.meta(), &Seq(seq), &slot).await {
                Ok(version) => {
                    self.slot_taken(seq).await?;
                    return Ok(Announced {
                        seq,
                        id: slot.id.clone(),
                        deadline_ms: slot.deadline_ms,
                        slot: Box::new(slot),
                        version,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    // Another writer took it: continue after the last slot there is.
                    seq = self.log_end_after(seq).await?;
                    retry.again(e).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Commits `event` and its change in one atomic batch (only where
    /// [`crate::MetaStore::atomic_batches`]): the next slot, written `Committed`, then
    /// the writes `change` makes for the event's id. A slot taken meanwhile moves on to
    /// the next; a failed expectation of the change is the caller's retryable
    /// `Conflict`, with nothing written. Returns the change's versions.
    pub(crate) async fn commit_in_batch(
        &self,
        event: &Event,
        witness: Witness,
        replaced: Vec<EventId>,
        deadline: Option<&HoldDeadline>,
        mut change: impl FnMut(&EventId) -> Result<Vec<Write>>,
    ) -> Result<Vec<Option<Version>>> {
        let at_ms = self.now_millis();
        let mut retry = Retry::new(EVENTS.prefix());
        let mut seq = self.next_slot().await?;
        loop {
            let slot = Slot::new(seq, at_ms, SlotState::Committed, &witness, &replaced, event);
            let mut writes = vec![Write::Put {
                key: EVENTS.key(&Seq(seq)),
                value: slot.encode()?,
                expect: Expect::Absent,
            }];
            writes.extend(change(&slot.id)?);
            self.check_hold_deadline(deadline)?;
            match self.meta().batch(writes, Durability::Durable).await {
                Ok(mut versions) => {
                    self.slot_taken(seq).await?;
                    versions.remove(0);
                    return Ok(versions);
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    if EVENTS.get(self.meta(), &Seq(seq)).await?.is_none() {
                        // The slot was free: the change's own expectation failed.
                        return Err(e);
                    }
                    // Another change took the slot, in a batch that committed: the log
                    // moved on, so the next free slot is tried at once (at first).
                    // Waiting every time made concurrent pushes in one process take
                    // turns.
                    seq = self.log_end_after(seq).await?;
                    retry.again_soon(e).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The next free slot as this process knows it.
    async fn next_slot(&self) -> Result<u64> {
        // `outbox_next` is one past the next free slot this process knows of (0: none
        // known yet), so the slot before it exists and the log stays gapless.
        match self.inner.outbox_next.load(Ordering::Acquire) {
            0 => self.log_end().await,
            known => Ok(known - 1),
        }
    }

    /// After this writer created slot `seq`: later ones start after it, and every
    /// [`HEAD_HINT_EVERY`] slots the head hint moves.
    async fn slot_taken(&self, seq: u64) -> Result<()> {
        self.inner.outbox_next.fetch_max(seq + 2, Ordering::AcqRel);
        if seq.is_multiple_of(HEAD_HINT_EVERY) {
            EVENT_HEAD
                .put(self.meta(), &Singleton, &seq, Expect::Any)
                .await?;
        }
        Ok(())
    }

    /// The first free slot: the last one found after the head hint, plus one.
    pub(crate) async fn log_end(&self) -> Result<u64> {
        let hint = EVENT_HEAD.get(self.meta(), &Singleton).await?;
        match hint {
            Some((hint, _)) => self.log_end_after(hint).await,
            None => self.log_end_from(None).await,
        }
    }

    /// The first free slot, knowing slot `taken` exists (or existed).
    async fn log_end_after(&self, taken: u64) -> Result<u64> {
        let end = self.log_end_from(Some(taken)).await?;
        Ok(end.max(taken + 1))
    }

    async fn log_end_from(&self, after: Option<u64>) -> Result<u64> {
        let all = Prefix::all();
        let mut after = after.map(Seq);
        let mut end = after.as_ref().map_or(0, |s| s.0 + 1);
        loop {
            let page = EVENTS
                .list_keys(self.meta(), &all, after.as_ref(), 1000)
                .await?;
            let Some(last) = page.last() else {
                return Ok(end);
            };
            end = last.0 + 1;
            after = Some(Seq(last.0));
        }
    }

    /// Refuses to commit once the slot's deadline has passed: a dispatcher may have
    /// settled it as void.
    pub(crate) fn within_deadline(&self, announced: &Announced) -> Result<()> {
        if self.now_millis() > announced.deadline_ms {
            return Err(crate::error::Error::new(
                ErrorKind::Storage,
                format!(
                    "the change took more than {ANNOUNCE_DEADLINE:?} between announcing event {} and committing; try again",
                    announced.id
                ),
            )
            .retryable());
        }
        Ok(())
    }

    /// Records the writer's own knowledge of its slot: `Void` after a lost race,
    /// `Committed` after its commit point. Best effort: a failure (or a crash before it)
    /// leaves the slot to be settled from its witness. Marking every commit, not only
    /// removals, keeps an event deliverable when its key changes many times or goes away
    /// before a dispatcher reads the slot.
    pub(crate) async fn mark(&self, announced: &Announced, state: SlotState) {
        let marked = Slot {
            state,
            ..(*announced.slot).clone()
        };
        let key = Seq(announced.seq);
        match EVENTS
            .put(
                self.meta(),
                &key,
                &marked,
                Expect::Version(announced.version),
            )
            .await
        {
            // Settled by a reader meanwhile (from the same witness): that stands.
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => {
                tracing::warn!(event = %announced.id, error = %e, "could not mark an outbox slot; it will be settled from its witness");
            }
        }
    }

    /// Changes one record as the commit point of an event: reads it, lets `decide` say
    /// what to do and which event that is, announces the event, and writes by
    /// compare-and-swap with the event's id carried in the value. A lost race marks the
    /// slot void and starts over (at most [`Retry`]'s bound); any other failure leaves it
    /// to be settled from the record.
    pub(crate) async fn commit_with_event<K, V>(
        &self,
        table: &Table<K, V>,
        key: &K,
        decide: impl FnMut(Option<(&V, Version)>) -> Result<Option<(Outcome<V>, Event)>>,
    ) -> Result<Applied<V>>
    where
        K: Key,
        V: Value + CarriesEvents + Clone,
    {
        self.commit_with_event_by(table, key, None, decide).await
    }

    /// [`Registry::commit_with_event`] for a push that must commit by `deadline`: it is
    /// checked right before each attempt's write.
    pub(crate) async fn commit_with_event_by<K, V>(
        &self,
        table: &Table<K, V>,
        key: &K,
        deadline: Option<&HoldDeadline>,
        mut decide: impl FnMut(Option<(&V, Version)>) -> Result<Option<(Outcome<V>, Event)>>,
    ) -> Result<Applied<V>>
    where
        K: Key,
        V: Value + CarriesEvents + Clone,
    {
        let store_key = table.key(key);
        let mut retry = Retry::new(&store_key);
        loop {
            let mut current = table.get(self.meta(), key).await?;
            let Some((outcome, event)) =
                decide(current.as_ref().map(|(v, version)| (v, *version)))?
            else {
                return Ok(Applied::Unchanged);
            };
            let expect = current
                .as_ref()
                .map_or(Expect::Absent, |(_, version)| Expect::Version(*version));
            let (witness, replaced) = match &outcome {
                Outcome::Put(_) => (
                    Witness::Carried {
                        keys: vec![store_key.clone()],
                    },
                    Vec::new(),
                ),
                Outcome::Delete => (
                    Witness::Removed {
                        key: store_key.clone(),
                    },
                    current
                        .as_mut()
                        .map(|(v, _)| v.carried().clone())
                        .unwrap_or_default(),
                ),
            };
            if self.meta().atomic_batches() {
                match self
                    .commit_outcome_in_batch(
                        &event, witness, replaced, deadline, &store_key, outcome, expect,
                    )
                    .await
                {
                    Ok(applied) => {
                        self.after_commit(event);
                        return Ok(applied);
                    }
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        retry.again(e).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let announced = self.announce(&event, witness, replaced).await?;
            self.within_deadline(&announced)?;
            self.check_hold_deadline(deadline)?;
            let written = match outcome {
                Outcome::Put(mut value) => {
                    value.carry(&announced.id);
                    table
                        .put(self.meta(), key, &value, expect)
                        .await
                        .map(|version| Applied::Put(value, version))
                }
                Outcome::Delete => table
                    .delete(self.meta(), key, expect)
                    .await
                    .map(|()| Applied::Deleted),
            };
            match written {
                Ok(applied) => {
                    self.mark(&announced, SlotState::Committed).await;
                    self.after_commit(event);
                    return Ok(applied);
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    self.mark(&announced, SlotState::Void).await;
                    retry.again(e).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Registry::commit_in_batch`] of one record's change: the value carries the event.
    #[allow(clippy::too_many_arguments)]
    async fn commit_outcome_in_batch<V: Value + CarriesEvents + Clone>(
        &self,
        event: &Event,
        witness: Witness,
        replaced: Vec<EventId>,
        deadline: Option<&HoldDeadline>,
        store_key: &str,
        outcome: Outcome<V>,
        expect: Expect,
    ) -> Result<Applied<V>> {
        let mut written = None;
        let versions = self
            .commit_in_batch(event, witness, replaced, deadline, |id| {
                let write = match &outcome {
                    Outcome::Put(value) => {
                        let mut value = value.clone();
                        value.carry(id);
                        let encoded = value.encode()?;
                        written = Some(value);
                        Write::Put {
                            key: store_key.to_owned(),
                            value: encoded,
                            expect,
                        }
                    }
                    Outcome::Delete => Write::Delete {
                        key: store_key.to_owned(),
                        expect,
                    },
                };
                Ok(vec![write])
            })
            .await?;
        Ok(match (written, versions.first().copied().flatten()) {
            (Some(value), Some(version)) => Applied::Put(value, version),
            _ => Applied::Deleted,
        })
    }

    /// After a change committed: the in-process sink hears of it, and a dispatcher in
    /// this process wakes.
    pub(crate) fn after_commit(&self, event: Event) {
        self.inner.outbox_wake.notify_one();
        self.emit(event);
    }

    /// Settles a pending slot if its witness (or its deadline) decides it, recording the
    /// decision; returns where it stands.
    pub(crate) async fn settle_slot(
        &self,
        seq: u64,
        slot: &Slot,
        version: Version,
    ) -> Result<SlotState> {
        if slot.state != SlotState::Pending {
            return Ok(slot.state);
        }
        let overdue = self.now_millis() > slot.deadline_ms + SETTLE_MARGIN.as_millis() as u64;
        let decided = match &slot.witness {
            Witness::Carried { keys } => {
                if self.any_names(keys, &slot.id).await?
                    || self.replaced_later(seq, &slot.id).await?
                {
                    SlotState::Committed
                } else if overdue {
                    SlotState::Void
                } else {
                    return Ok(SlotState::Pending);
                }
            }
            Witness::Removed { key } if overdue => match self.meta().get(key).await? {
                None => SlotState::Committed,
                Some(_) => SlotState::Void,
            },
            Witness::Removed { .. } => return Ok(SlotState::Pending),
        };
        let settled = Slot {
            state: decided,
            ..slot.clone()
        };
        match EVENTS
            .put(self.meta(), &Seq(seq), &settled, Expect::Version(version))
            .await
        {
            Ok(_) => Ok(decided),
            // Settled (or marked by its writer) meanwhile: that decision stands.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(EVENTS
                .get(self.meta(), &Seq(seq))
                .await?
                .map_or(SlotState::Void, |(s, _)| s.state)),
            Err(e) => Err(e),
        }
    }

    /// Whether a value at one of `keys` names `id` (as a JSON string: ids are 32 hex
    /// digits, so the quoted form occurs nowhere else by chance).
    async fn any_names(&self, keys: &[String], id: &EventId) -> Result<bool> {
        let quoted = format!("\"{id}\"");
        for key in keys {
            if let Some(stored) = self.meta().get(key).await?
                && contains(&stored.value, quoted.as_bytes())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a slot after `seq` removed a value that named `id`.
    async fn replaced_later(&self, seq: u64, id: &EventId) -> Result<bool> {
        let all = Prefix::all();
        let mut after = Some(Seq(seq));
        loop {
            let page = EVENTS.list(self.meta(), &all, after.as_ref(), 1000).await?;
            let Some(last) = page.last() else {
                return Ok(false);
            };
            if page.iter().any(|row| row.value.replaced.contains(id)) {
                return Ok(true);
            }
            after = Some(Seq(last.key.0));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
