//! Upload sessions on [`Registry`]: start, append, status, finish, cancel, flush, expire.
//!
//! Durability is at checkpoints. An append streams into the session's writer, which
//! stays open in this process (`OpenWriters`, in `open_writers.rs`) so the next
//! chunk continues the same staged part; every `checkpoint_interval` bytes the writer is
//! checkpointed and the session record moves forward by compare-and-swap. A process
//! that did not receive the newest bytes (another replica, or this one after a crash)
//! sees the session at its last checkpoint and answers a chunk at any other offset with
//! `RangeInvalid` carrying that offset, from which the client resumes: nothing
//! unverified becomes visible, because the blob is published only after its digest
//! matches. `checkpoint_interval(0)` makes every chunk durable before it is
//! acknowledged, for deployments whose replicas do not keep a session's requests together.
//!
//! A session's creation and its end are relaxed writes ([`Durability::Relaxed`]): a
//! crash may take back a session that received nothing durable yet (its client starts
//! again) or bring back one that had finished (it has nothing left to finish, and expiry
//! removes it); every checkpoint is durable.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use serde::{Deserialize, Serialize};

use super::Registry;
use super::open_writers::{OpenWriter, Slot};
use super::schema::UPLOADS;
use crate::blob::{BlobInfo, ByteStream, WriterState};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Durability, Expect, Version};
use crate::reference::RepoName;
use crate::upload::{ExpiryReport, UploadId, UploadStatus};
use crate::util::{from_millis, to_millis};

/// How long a call waits for a session busy with another call (a chunk still arriving)
/// before answering that it is busy.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// How often an open session's record is rewritten (its `updated_at`) even without a
/// checkpoint, so expiry never takes a session that is receiving bytes.
const TOUCH_INTERVAL_MS: u64 = 60_000;

/// The persisted session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SessionRecord {
    pub(super) repo: RepoName,
    pub(super) started_at_ms: u64,
    pub(super) updated_at_ms: u64,
    pub(super) writer: WriterState,
}

impl SessionRecord {
    pub(super) fn status(&self, id: &UploadId) -> UploadStatus {
        UploadStatus {
            id: id.clone(),
            repo: self.repo.clone(),
            offset: self.writer.len(),
            started_at: from_millis(self.started_at_ms),
            updated_at: from_millis(self.updated_at_ms),
        }
    }
}

fn one_chunk(chunk: Bytes) -> ByteStream {
    futures::stream::once(async { Ok(chunk) }).boxed()
}

impl Registry {
    /// Starts an upload session into `repo`.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo), err(level = "debug", Display))]
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadStatus> {
        self.repository_for_push(repo).await?;
        let id = UploadId::generate();
        let at_rest = self.at_rest_for(repo).await?;
        // The staging area is named by the session id; nothing is staged yet.
        let writer = self
            .inner
            .blobs
            .start_state(id.as_str(), Algorithm::Sha256, &at_rest)
            .await?;
        let now = self.now_millis();
        let record = SessionRecord {
            repo: repo.clone(),
            started_at_ms: now,
            updated_at_ms: now,
            writer,
        };
        // Relaxed: a session lost at a crash only makes its client start again.
        let create = UPLOADS.put_write(&id, &record, Expect::Absent)?;
        self.meta().batch(vec![create], Durability::Relaxed).await?;
        Ok(record.status(&id))
    }

    async fn session(&self, repo: &RepoName, id: &UploadId) -> Result<(SessionRecord, Version)> {
        let unknown = || {
            Error::new(
                ErrorKind::BlobUploadUnknown,
                format!("upload {id} is not open in repository {repo}"),
            )
        };
        let (record, version) = UPLOADS.get(self.meta(), id).await?.ok_or_else(unknown)?;
        if &record.repo != repo {
            return Err(unknown());
        }
        Ok((record, version))
    }

    /// Reads the session under its slot's lock; forgets the slot if the session is gone.
    async fn locked_session(
        &self,
        repo: &RepoName,
        id: &UploadId,
        slot: &mut Slot,
    ) -> Result<(SessionRecord, Version)> {
        let found = self.session(repo, id).await;
        // Unknown because it ended (not because another repository asked): forget it here.
        if found
            .as_ref()
            .is_err_and(|e| e.kind() == ErrorKind::BlobUploadUnknown)
            && self.meta().get(&UPLOADS.key(id)).await?.is_none()
        {
            slot.open = None;
            self.inner.open_writers.remove(id);
        }
        found
    }

    /// The writer continuing `record`: the one open in this process if it is current,
    /// else one resumed from the record's checkpoint.
    async fn open_writer(
        &self,
        slot: &mut Slot,
        record: &SessionRecord,
        version: Version,
    ) -> Result<OpenWriter> {
        match slot.open.take() {
            Some(open) if open.version == version => Ok(open),
            _ => Ok(OpenWriter {
                writer: self.inner.blobs.resume_writer(&record.writer).await?,
                version,
                durable: record.writer.len(),
            }),
        }
    }

    /// Where an upload session stands: the bytes this process has received, or the last
    /// checkpoint if the newest bytes went elsewhere.
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadStatus> {
        let mut slot = self.inner.open_writers.lock_within(id, BUSY_WAIT).await?;
        let (record, version) = self.locked_session(repo, id, &mut slot).await?;
        let mut status = record.status(id);
        if let Some(open) = slot.open.as_ref().filter(|o| o.version == version) {
            status.offset = open.writer.len();
        }
        Ok(status)
    }

    /// Appends a chunk that starts at `offset`, streamed from `body`.
    ///
    /// A chunk at any offset but the current one is [`ErrorKind::RangeInvalid`] carrying
    /// the current offset; the session stays usable. If `body` fails midway, the bytes
    /// received before the failure are kept durably, so the client can resume after them.
    pub async fn append_upload_stream(
        &self,
        repo: &RepoName,
        id: &UploadId,
        offset: u64,
        mut body: ByteStream,
    ) -> Result<UploadStatus> {
        let mut slot = self.inner.open_writers.lock_within(id, BUSY_WAIT).await?;
        let (record, version) = self.locked_session(repo, id, &mut slot).await?;
        let mut open = self.open_writer(&mut slot, &record, version).await?;
        let current = open.writer.len();
        if offset != current {
            slot.open = Some(open);
            return Err(Error::range_invalid(
                format!("upload {id} in {repo} is at offset {current}, chunk starts at {offset}"),
                current,
            ));
        }
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                // A failed write drops the writer; the session keeps its last checkpoint.
                Ok(chunk) => open.writer.write(chunk).await?,
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        let force_checkpoint = body_error.is_some();
        let status = self
            .settle(repo, id, record, open, &mut slot, force_checkpoint)
            .await?;
        drop(slot);
        self.evict_idle_writers(id).await;
        match body_error {
            Some(e) => Err(e.with_offset(status.offset)),
            None => Ok(status),
        }
    }

    /// After bytes were written: checkpoint and record them if due, keep the writer open.
    async fn settle(
        &self,
        repo: &RepoName,
        id: &UploadId,
        record: SessionRecord,
        mut open: OpenWriter,
        slot: &mut Slot,
        force_checkpoint: bool,
    ) -> Result<UploadStatus> {
        let mut status = record.status(id);
        let checkpoint =
            force_checkpoint || open.writer.len() - open.durable >= self.inner.checkpoint_interval;
        let touch = self.now_millis().saturating_sub(record.updated_at_ms) >= TOUCH_INTERVAL_MS;
        if checkpoint || touch {
            let writer = if checkpoint {
                open.writer.checkpoint().await?
            } else {
                record.writer.clone()
            };
            let durable = writer.len();
            match self.advance_record(id, record, writer, open.version).await {
                Ok((version, updated_at_ms)) => {
                    open.version = version;
                    open.durable = durable;
                    status.updated_at = from_millis(updated_at_ms);
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    // The session moved on elsewhere (another replica, a finish, a cancel):
                    // this writer is stale, and its part goes with the staging area.
                    let now = self.session(repo, id).await?.0.writer.len();
                    return Err(Error::range_invalid(
                        format!(
                            "upload {id} in {repo} moved on concurrently; it is at offset {now}"
                        ),
                        now,
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        status.offset = open.writer.len();
        slot.open = Some(open);
        Ok(status)
    }

    /// [`Registry::append_upload_stream`] for a chunk in memory.
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo, upload = %id), err(level = "debug", Display))]
    pub async fn append_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        offset: u64,
        chunk: Bytes,
    ) -> Result<UploadStatus> {
        self.append_upload_stream(repo, id, offset, one_chunk(chunk))
            .await
    }

    /// Finishes an upload: appends `last_chunk` if given, verifies the whole blob against
    /// `digest`, publishes it and links it into `repo`. The session ends either way: a
    /// mismatch removes the staged bytes and is [`ErrorKind::DigestInvalid`].
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<Bytes>,
    ) -> Result<BlobInfo> {
        self.finish_upload_stream(repo, id, digest, last_chunk.map(one_chunk))
            .await
    }

    /// [`Registry::finish_upload`] with the last chunk streamed.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, upload = %id, digest = %digest), err(level = "debug", Display))]
    pub async fn finish_upload_stream(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<ByteStream>,
    ) -> Result<BlobInfo> {
        self.finish_upload_stream_at(repo, id, digest, None, last_chunk)
            .await
    }

    /// [`Registry::finish_upload_stream`] with a last chunk declared to start at
    /// `offset`: at any other offset it is [`ErrorKind::RangeInvalid`] carrying the
    /// current one, and the session stays open.
    pub async fn finish_upload_stream_at(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> Result<BlobInfo> {
        let mut slot = self.inner.open_writers.lock_within(id, BUSY_WAIT).await?;
        let (record, version) = self.locked_session(repo, id, &mut slot).await?;
        let mut open = self.open_writer(&mut slot, &record, version).await?;
        let current = open.writer.len();
        if let Some(offset) = offset.filter(|&o| o != current) {
            slot.open = Some(open);
            return Err(Error::range_invalid(
                format!(
                    "upload {id} in {repo} is at offset {current}, last chunk starts at {offset}"
                ),
                current,
            ));
        }
        if let Some(mut body) = last_chunk {
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => open.writer.write(chunk).await?,
                    Err(e) => {
                        // Keep what arrived, as an append would; the session stays open.
                        let status = self.settle(repo, id, record, open, &mut slot, true).await?;
                        return Err(e.with_offset(status.offset));
                    }
                }
            }
        }
        // The session ends with the claim, in its batch: it is over whether the digest
        // matches or not, and its staging area goes with the writer's commit. Relaxed
        // (where the claim is): one that comes back after a crash has nothing left to
        // finish, and expiry removes it.
        let end = UPLOADS.delete_write(id, Expect::Any);
        self.claim_blob_with(digest, Some(repo), &[end]).await?;
        self.inner.open_writers.remove(id);
        let committed = open.writer.commit(digest, None).await;
        if let Ok(info) = &committed {
            self.link(repo, info, Some(None)).await?;
        }
        committed
    }

    /// Cancels an upload session and removes what it staged.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        let mut slot = self.inner.open_writers.lock_within(id, BUSY_WAIT).await?;
        let (_, version) = self.locked_session(repo, id, &mut slot).await?;
        UPLOADS
            .delete(self.meta(), id, Expect::Version(version))
            .await?;
        if let Some(open) = slot.open.take() {
            open.writer.abort().await?;
        }
        self.inner.open_writers.remove(id);
        self.inner.blobs.discard_staging(id.as_str()).await
    }

    /// Cancels every upload session into `repo` (the repository is being deleted).
    pub(super) async fn cancel_uploads_into(&self, repo: &RepoName) -> Result<()> {
        for entry in UPLOADS.scan_all(self.meta()).await? {
            let Ok(id) = entry.key else {
                continue;
            };
            let ours = entry.value.is_ok_and(|record| &record.repo == repo);
            if !ours {
                continue;
            }
            // A session busy with a chunk moves on under us: try again, then leave it to
            // expiry (the repository is already gone; its delete must not fail for it).
            for attempt in 1.. {
                match self.cancel_upload(repo, &id).await {
                    Err(e) if e.kind() == ErrorKind::Conflict && attempt < 5 => continue,
                    // Finished or cancelled meanwhile, or still busy.
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::BlobUploadUnknown | ErrorKind::Conflict
                        ) =>
                    {
                        break;
                    }
                    other => {
                        other?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Upload writers this process holds open between chunks (at most
    /// [`RegistryBuilder::max_open_uploads`](crate::RegistryBuilder::max_open_uploads)).
    pub fn open_uploads(&self) -> usize {
        self.inner.open_writers.len()
    }

    /// Makes every byte received by this process's open uploads durable and records it,
    /// so another process can resume them: call before a graceful shutdown.
    pub async fn flush_uploads(&self) -> Result<()> {
        for id in self.inner.open_writers.by_age() {
            let mut slot = self.inner.open_writers.lock(&id).await;
            self.flush_slot(&id, &mut slot).await?;
        }
        Ok(())
    }

    /// Checkpoints and records one open writer, then closes it.
    async fn flush_slot(&self, id: &UploadId, slot: &mut Slot) -> Result<()> {
        self.inner.open_writers.remove(id);
        let Some(mut open) = slot.open.take() else {
            return Ok(());
        };
        if open.writer.len() == open.durable {
            return Ok(());
        }
        let Some((record, version)) = UPLOADS.get(self.meta(), id).await? else {
            return Ok(());
        };
        if version != open.version {
            return Ok(());
        }
        let writer = open.writer.checkpoint().await?;
        match self.advance_record(id, record, writer, open.version).await {
            Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
            // A conflict means the session moved on elsewhere: nothing of ours to keep.
            _ => Ok(()),
        }
    }

    /// Moves the session record from `version` to `writer`, stamped now; returns the new
    /// version and stamp. A record that moved on meanwhile is `Conflict`.
    async fn advance_record(
        &self,
        id: &UploadId,
        record: SessionRecord,
        writer: WriterState,
        version: Version,
    ) -> Result<(Version, u64)> {
        let updated = SessionRecord {
            updated_at_ms: self.now_millis(),
            writer,
            ..record
        };
        let new_version = UPLOADS
            .put(self.meta(), id, &updated, Expect::Version(version))
            .await?;
        Ok((new_version, updated.updated_at_ms))
    }

    /// Keeps the number of writers open in this process within bounds by flushing the
    /// least recently used idle ones.
    async fn evict_idle_writers(&self, current: &UploadId) {
        let excess = self
            .inner
            .open_writers
            .len()
            .saturating_sub(self.inner.max_open_uploads);
        let mut evicted = 0;
        for id in self.inner.open_writers.by_age() {
            if evicted >= excess {
                break;
            }
            if &id == current {
                continue;
            }
            if let Some(mut slot) = self.inner.open_writers.try_lock(&id) {
                // Best effort: a failure leaves the session at its last checkpoint.
                let _ = self.flush_slot(&id, &mut slot).await;
                evicted += 1;
            }
        }
    }

    /// Removes upload sessions idle for longer than the configured expiry, and staging
    /// areas that no session owns (left by crashes) that are as old. Safe to run while
    /// uploads go on: a session is removed only by compare-and-swap against the state
    /// that was judged idle.
    #[tracing::instrument(level = "info", skip_all, err(level = "debug", Display))]
    pub async fn expire_uploads(&self) -> Result<ExpiryReport> {
        self.expire_uploads_older_than(self.inner.upload_expiry)
            .await
    }

    /// [`Registry::expire_uploads`] with an explicit age.
    pub async fn expire_uploads_older_than(&self, age: Duration) -> Result<ExpiryReport> {
        let cutoff = to_millis(
            self.now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let mut report = ExpiryReport::default();
        let mut live = std::collections::HashSet::new();
        for entry in UPLOADS.scan_all(self.meta()).await? {
            let id = &entry.store_key[UPLOADS.prefix().len()..];
            // A damaged record cannot be resumed: it counts as idle.
            let idle = entry
                .value
                .as_ref()
                .map_or(true, |r| r.updated_at_ms <= cutoff);
            if !idle {
                live.insert(id.to_owned());
                continue;
            }
            match UPLOADS.delete_scanned(self.meta(), &entry).await {
                Ok(()) => {
                    if let Ok(upload) = &entry.key {
                        let mut slot = self.inner.open_writers.lock(upload).await;
                        slot.open = None;
                        self.inner.open_writers.remove(upload);
                    }
                    self.inner.blobs.discard_staging(id).await?;
                    report.sessions += 1;
                }
                // It moved on since we looked: not idle.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    live.insert(id.to_owned());
                }
                Err(e) => return Err(e),
            }
        }
        let areas: Vec<_> = self.inner.blobs.list_staging().try_collect().await?;
        for area in areas {
            if live.contains(&area.staging_id) || to_millis(area.last_modified) > cutoff {
                continue;
            }
            // Re-check: a session may have started since the listing above.
            if let Ok(id) = area.staging_id.parse::<UploadId>()
                && UPLOADS.get(self.meta(), &id).await?.is_some()
            {
                continue;
            }
            self.inner.blobs.discard_staging(&area.staging_id).await?;
            report.orphaned_staging += 1;
        }
        Ok(report)
    }
}
