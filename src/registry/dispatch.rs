//! [`Dispatcher`]: delivers the outbox to [`Subscriber`]s, each at its own cursor, in
//! commit order, at least once, retrying with backoff and setting aside what a
//! subscriber keeps refusing.
//!
//! Each subscriber has a cursor `event-cursor/<name>`: the next slot it gets, the
//! process delivering to it and until when (a lease), and the retry state of the event
//! it is stuck on. The process that holds a cursor's lease is the only one delivering to
//! that subscriber; every write of the cursor is a compare-and-swap on the version that
//! process last wrote, which fences it: a process that paused past its lease finds its
//! write refused and stops, so two processes deliver one event twice only across such a
//! takeover (or a process dying between a delivery and its cursor write).
//!
//! An event a subscriber refuses is retried after 1 s, doubling up to 5 minutes, each
//! wait drawn at random between half and all of it; the events behind it wait, so order
//! holds. Once the event is older than `max_age` it goes to the subscriber's dead
//! letters `dead-letter/<name>/<seq>` and delivery goes on; dead letters are listed and
//! replayed on request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Registry;
use super::outbox::SlotState;
use super::schema::{
    DEAD_LETTERS, DeadLetterKey, EVENT_CURSORS, EVENTS, Prefix, Seq, SubscriberName,
};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, EventRecord, EventSink};
use crate::meta::{Expect, Version};

/// Receives events from a [`Dispatcher`].
#[async_trait]
pub trait Subscriber: Send + Sync + fmt::Debug + 'static {
    /// The subscriber's stable name (1 to 64 of `a-z 0-9 . _ -`): its cursor and dead
    /// letters are stored under it, so a renamed subscriber starts over.
    fn name(&self) -> &str;

    /// Whether it wants `event` at all; events it does not want are passed over.
    fn wants(&self, event: &Event) -> bool {
        let _ = event;
        true
    }

    /// Delivers one event. An error means "not delivered": it is retried, with the
    /// events behind it waiting.
    async fn deliver(&self, event: &EventRecord) -> Result<()>;
}

/// A [`Subscriber`] that hands every event to an [`EventSink`]: an in-process receiver
/// that must not miss a change, even across a crash.
#[derive(Debug)]
pub struct SinkSubscriber {
    name: String,
    sink: Arc<dyn EventSink>,
}

impl SinkSubscriber {
    /// `sink` under the subscriber name `name`.
    pub fn new(name: impl Into<String>, sink: Arc<dyn EventSink>) -> Self {
        Self {
            name: name.into(),
            sink,
        }
    }
}

#[async_trait]
impl Subscriber for SinkSubscriber {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, event: &EventRecord) -> Result<()> {
        self.sink.emit(event.event.clone());
        Ok(())
    }
}

/// How a [`Dispatcher`] paces itself.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// Events read per subscriber and step.
    pub batch: usize,
    /// How long a process holds a subscriber before it must renew.
    pub lease: Duration,
    /// The first wait after a refused delivery; it doubles per attempt.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// An event refused until it is this old goes to the dead letters.
    pub max_age: Duration,
    /// How often [`Dispatcher::run`] looks for work it was not woken for (changes made
    /// by other processes).
    pub poll: Duration,
    /// Slots older than this are removed even if a subscriber has not reached them.
    pub retention: Duration,
    /// This process's name in leases; unique per process (random by default).
    pub holder: String,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(30),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 60 * 60),
            poll: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            holder: format!("dispatcher-{:016x}", getrandom::u64().unwrap_or_default()),
        }
    }
}

/// The record `event-cursor/<subscriber>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CursorRecord {
    next: u64,
    holder: String,
    lease_until_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<RetryState>,
}

/// The event a subscriber is stuck on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RetryState {
    seq: u64,
    attempts: u32,
    next_attempt_ms: u64,
    last_error: String,
}

/// An event a subscriber refused until it was too old (`dead-letter/<subscriber>/<seq>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event.
    pub record: EventRecord,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The last refusal.
    pub error: String,
    /// When it was set aside, in milliseconds since the Unix epoch.
    pub dead_at_ms: u64,
}

/// What one [`Dispatcher::step`] did, summed over subscribers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Events delivered.
    pub delivered: u64,
    /// Delivery attempts refused (to be retried).
    pub failed: u64,
    /// Events set aside as dead letters.
    pub dead_lettered: u64,
    /// Events passed over: void slots, and events a subscriber does not want.
    pub skipped: u64,
    /// Subscribers another process delivers to now.
    pub held_elsewhere: u64,
    /// Whether something holds delivery back: a change not settled yet, or a retry not
    /// due yet.
    pub waiting: bool,
}

impl DispatchReport {
    fn progressed(&self) -> bool {
        self.delivered + self.dead_lettered + self.skipped > 0
    }
}

/// What [`Dispatcher::replay_dead_letters`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters delivered and removed.
    pub delivered: u64,
    /// Dead letters refused again, kept.
    pub failed: u64,
}

/// Delivers the registry's outbox to subscribers. Made by [`Registry::dispatcher`]; run
/// it with [`Dispatcher::run`], or drive it with [`Dispatcher::step`].
#[derive(Debug)]
pub struct Dispatcher {
    registry: Registry,
    subscribers: Vec<(SubscriberName, Arc<dyn Subscriber>)>,
    options: DispatchOptions,
}

impl Registry {
    /// A dispatcher for `subscribers`. A subscriber seen for the first time starts at the
    /// end of the outbox (it gets changes from now on); one seen before continues where
    /// its cursor stands, also after a restart.
    pub async fn dispatcher(
        &self,
        subscribers: Vec<Arc<dyn Subscriber>>,
        options: DispatchOptions,
    ) -> Result<Dispatcher> {
        let mut named = Vec::with_capacity(subscribers.len());
        for subscriber in subscribers {
            let name = SubscriberName::new(subscriber.name())?;
            if named.iter().any(|(n, _)| n == &name) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("two subscribers are named {:?}", name.0),
                ));
            }
            if EVENT_CURSORS.get(self.meta(), &name).await?.is_none() {
                let cursor = CursorRecord {
                    next: self.log_end().await?,
                    holder: String::new(),
                    lease_until_ms: 0,
                    retry: None,
                };
                match EVENT_CURSORS.create(self.meta(), &name, &cursor).await {
                    Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                    _ => {}
                }
            }
            named.push((name, subscriber));
        }
        Ok(Dispatcher {
            registry: self.clone(),
            subscribers: named,
            options,
        })
    }
}

impl Dispatcher {
    /// Delivers what is due to every subscriber this process may deliver to: at most
    /// one batch each.
    pub async fn step(&self) -> Result<DispatchReport> {
        let mut report = DispatchReport::default();
        for (name, subscriber) in &self.subscribers {
            self.step_one(name, subscriber.as_ref(), &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Steps until `shutdown` completes: at once after a change in this process, every
    /// `poll` otherwise. Errors are logged and retried at the next poll. Removes slots
    /// every subscriber has passed, about once a minute.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_prune = std::time::Instant::now();
        loop {
            let progressed = match self.step().await {
                Ok(report) => report.progressed(),
                Err(e) => {
                    tracing::warn!(error = %e, "event delivery step failed");
                    false
                }
            };
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                if let Err(e) = self.prune().await {
                    tracing::warn!(error = %e, "pruning the outbox failed");
                }
            }
            if progressed {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => {
                    if let Err(e) = self.release().await {
                        tracing::warn!(error = %e, "could not give up the subscribers' leases");
                    }
                    return;
                }
                () = self.registry.inner.outbox_wake.notified() => {}
                () = tokio::time::sleep(self.options.poll) => {}
            }
        }
    }

    async fn step_one(
        &self,
        name: &SubscriberName,
        subscriber: &dyn Subscriber,
        report: &mut DispatchReport,
    ) -> Result<()> {
        let registry = &self.registry;
        let Some((mut cursor, version)) = EVENT_CURSORS.get(registry.meta(), name).await? else {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("the cursor of subscriber {:?} was removed", name.0),
            ));
        };
        let now = registry.now_millis();
        let me = &self.options.holder;
        if &cursor.holder != me && cursor.lease_until_ms > now {
            report.held_elsewhere += 1;
            return Ok(());
        }
        // The lease is written only to take it or before half of it is gone, and the
        // cursor only when it moved: an idle subscriber costs a read per step.
        let lease_ms = self.options.lease.as_millis() as u64;
        let renewal_due =
            |cursor: &CursorRecord| cursor.lease_until_ms < registry.now_millis() + lease_ms / 2;
        let mut version = version;
        if &cursor.holder != me || renewal_due(&cursor) {
            cursor.holder = me.clone();
            match self.write_cursor(name, &mut cursor, version).await? {
                Some(v) => version = v,
                None => {
                    report.held_elsewhere += 1;
                    return Ok(());
                }
            }
        }
        let mut written = (cursor.next, cursor.retry.clone());
        let after = cursor.next.checked_sub(1).map(Seq);
        let rows = EVENTS
            .list(
                registry.meta(),
                &Prefix::all(),
                after.as_ref(),
                self.options.batch,
            )
            .await?;
        for row in rows {
            let seq = row.key.0;
            // Slots below the cursor were removed by retention: the cursor follows.
            cursor.next = cursor.next.max(seq);
            match registry.settle_slot(seq, &row.value, row.version).await? {
                SlotState::Pending => {
                    report.waiting = true;
                    break;
                }
                SlotState::Void => {
                    report.skipped += 1;
                    cursor.next = seq + 1;
                    continue;
                }
                SlotState::Committed => {}
            }
            let record = row.value.record();
            if !subscriber.wants(&record.event) {
                report.skipped += 1;
                cursor.next = seq + 1;
                continue;
            }
            if !self
                .deliver_one(name, subscriber, &mut cursor, seq, &record, report)
                .await?
            {
                break;
            }
            // A long batch renews the lease before half of it is gone.
            if renewal_due(&cursor) {
                match self.write_cursor(name, &mut cursor, version).await? {
                    Some(v) => version = v,
                    None => return Ok(()),
                }
                written = (cursor.next, cursor.retry.clone());
            }
        }
        if (cursor.next, &cursor.retry) != (written.0, &written.1) {
            self.write_cursor(name, &mut cursor, version).await?;
        }
        Ok(())
    }

    /// Gives up this process's leases on its subscribers (a graceful stop), so another
    /// process, or this one restarted, delivers at once instead of after the lease.
    pub async fn release(&self) -> Result<()> {
        for (name, _) in &self.subscribers {
            let Some((mut cursor, version)) = EVENT_CURSORS.get(self.registry.meta(), name).await?
            else {
                continue;
            };
            if cursor.holder != self.options.holder {
                continue;
            }
            cursor.lease_until_ms = 0;
            match EVENT_CURSORS
                .put(
                    self.registry.meta(),
                    name,
                    &cursor,
                    Expect::Version(version),
                )
                .await
            {
                Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Delivers the event at the cursor; whether the cursor moved past it.
    async fn deliver_one(
        &self,
        name: &SubscriberName,
        subscriber: &dyn Subscriber,
        cursor: &mut CursorRecord,
        seq: u64,
        record: &EventRecord,
        report: &mut DispatchReport,
    ) -> Result<bool> {
        let now = self.registry.now_millis();
        let attempts = match &cursor.retry {
            Some(retry) if retry.seq == seq => {
                if retry.next_attempt_ms > now {
                    report.waiting = true;
                    return Ok(false);
                }
                retry.attempts
            }
            _ => 0,
        };
        let error = match subscriber.deliver(record).await {
            Ok(()) => {
                report.delivered += 1;
                cursor.next = seq + 1;
                cursor.retry = None;
                return Ok(true);
            }
            Err(e) => e,
        };
        let attempts = attempts + 1;
        tracing::info!(subscriber = %name.0, event = %record.id, attempts, error = %error, "event delivery refused");
        if now.saturating_sub(record.at_ms) > self.options.max_age.as_millis() as u64 {
            let letter = DeadLetter {
                record: record.clone(),
                attempts,
                error: error.message().to_owned(),
                dead_at_ms: now,
            };
            let key = DeadLetterKey {
                subscriber: name.clone(),
                seq: Seq(seq),
            };
            DEAD_LETTERS
                .put(self.registry.meta(), &key, &letter, Expect::Any)
                .await?;
            report.dead_lettered += 1;
            cursor.next = seq + 1;
            cursor.retry = None;
            return Ok(true);
        }
        report.failed += 1;
        cursor.retry = Some(RetryState {
            seq,
            attempts,
            next_attempt_ms: now + self.backoff(attempts).as_millis() as u64,
            last_error: error.message().to_owned(),
        });
        Ok(false)
    }

    /// The wait before attempt `attempts + 1`: doubling from `first_retry`, capped at
    /// `max_retry`, drawn between half and all of it.
    fn backoff(&self, attempts: u32) -> Duration {
        let ceiling = self
            .options
            .first_retry
            .saturating_mul(1 << (attempts - 1).min(20))
            .min(self.options.max_retry);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_millis() as u64;
        half + Duration::from_millis(getrandom::u64().unwrap_or(0) % (spread + 1))
    }

    /// Writes the cursor with a fresh lease; `None` if another process took it over.
    async fn write_cursor(
        &self,
        name: &SubscriberName,
        cursor: &mut CursorRecord,
        version: Version,
    ) -> Result<Option<Version>> {
        cursor.lease_until_ms = self.registry.now_millis() + self.options.lease.as_millis() as u64;
        match EVENT_CURSORS
            .put(self.registry.meta(), name, cursor, Expect::Version(version))
            .await
        {
            Ok(version) => Ok(Some(version)),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn named(&self, subscriber: &str) -> Result<&(SubscriberName, Arc<dyn Subscriber>)> {
        self.subscribers
            .iter()
            .find(|(name, _)| name.0 == subscriber)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("no subscriber is named {subscriber:?}"),
                )
            })
    }

    /// A subscriber's dead letters, oldest first.
    pub async fn dead_letters(&self, subscriber: &str) -> Result<Vec<DeadLetter>> {
        let (name, _) = self.named(subscriber)?;
        let rows = DEAD_LETTERS
            .list_all(self.registry.meta(), &Prefix::dead_letters_of(name))
            .await?;
        Ok(rows.into_iter().map(|row| row.value).collect())
    }

    /// Delivers a subscriber's dead letters again, oldest first; each one delivered is
    /// removed, each one refused stays.
    pub async fn replay_dead_letters(&self, subscriber: &str) -> Result<ReplayReport> {
        let (name, target) = self.named(subscriber)?;
        let mut report = ReplayReport::default();
        let rows = DEAD_LETTERS
            .list_all(self.registry.meta(), &Prefix::dead_letters_of(name))
            .await?;
        for row in rows {
            match target.deliver(&row.value.record).await {
                Ok(()) => {
                    DEAD_LETTERS
                        .delete(self.registry.meta(), &row.key, Expect::Version(row.version))
                        .await?;
                    report.delivered += 1;
                }
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Slots each subscriber has still to pass (announced, not yet delivered or skipped).
    pub async fn backlog(&self) -> Result<Vec<(String, u64)>> {
        let end = self.registry.log_end().await?;
        let mut backlog = Vec::with_capacity(self.subscribers.len());
        for (name, _) in &self.subscribers {
            let next = EVENT_CURSORS
                .get(self.registry.meta(), name)
                .await?
                .map_or(end, |(cursor, _)| cursor.next);
            backlog.push((name.0.clone(), end.saturating_sub(next)));
        }
        Ok(backlog)
    }

    /// Removes slots that every stored cursor has passed, and slots older than
    /// `retention` whatever the cursors say; the newest slot always stays (the next one
    /// is numbered after it). Returns how many went.
    pub async fn prune(&self) -> Result<u64> {
        let registry = &self.registry;
        let cursors = EVENT_CURSORS
            .list_all(registry.meta(), &Prefix::all())
            .await?;
        let passed = cursors.iter().map(|row| row.value.next).min().unwrap_or(0);
        let end = registry.log_end().await?;
        let limit = passed.min(end.saturating_sub(1));
        let expired_before = registry
            .now_millis()
            .saturating_sub(self.options.retention.as_millis() as u64);
        let mut removed = 0;
        let mut after: Option<Seq> = None;
        loop {
            let page = EVENTS
                .list(registry.meta(), &Prefix::all(), after.as_ref(), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(Seq(last.key.0));
            for row in &page {
                let settled = row.value.state != SlotState::Pending;
                let passed = row.key.0 < limit;
                let expired = row.value.at_ms < expired_before && row.key.0 + 1 < end;
                if !(settled && passed || expired) {
                    return Ok(removed);
                }
                EVENTS
                    .delete(registry.meta(), &row.key, Expect::Version(row.version))
                    .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
