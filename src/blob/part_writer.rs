//! One object written in parts, with a bounded number in flight.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::task::JoinSet;

use crate::error::{Error, ErrorKind, Result};

/// One object written in parts of `part_size`, with a bounded number in flight. An
/// object smaller than one part is written with a single put.
pub(super) struct PartWriter {
    store: Arc<dyn ObjectStore>,
    pub(super) path: Path,
    part_size: usize,
    parts_in_flight: usize,
    pub(super) len: u64,
    pending: VecDeque<Bytes>,
    pending_len: usize,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: JoinSet<object_store::Result<()>>,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl PartWriter {
    /// A writer of the object at `path`.
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        part_size: usize,
        parts_in_flight: usize,
    ) -> Self {
        Self {
            store,
            path,
            part_size,
            parts_in_flight,
            len: 0,
            pending: VecDeque::new(),
            pending_len: 0,
            upload: None,
            in_flight: JoinSet::new(),
        }
    }

    /// Whether every byte is still in memory (nothing sent to storage yet).
    pub(super) fn is_buffered(&self) -> bool {
        self.upload.is_none()
    }

    fn error(&self, e: object_store::Error) -> Error {
        Error::storage(format!("writing {}", self.path), e)
    }

    pub(super) async fn push(&mut self, data: Bytes) -> Result<()> {
        self.len += data.len() as u64;
        self.pending_len += data.len();
        self.pending.push_back(data);
        while self.pending_len >= self.part_size {
            let part = self.take(self.part_size);
            self.send(part).await?;
        }
        Ok(())
    }

    /// Takes exactly `n` pending bytes (zero-copy slices).
    fn take(&mut self, mut n: usize) -> PutPayload {
        let mut slices = Vec::new();
        while n > 0 {
            let front = self.pending.front_mut().expect("enough pending bytes");
            let slice = if front.len() <= n {
                self.pending.pop_front().expect("front exists")
            } else {
                front.split_to(n)
            };
            n -= slice.len();
            self.pending_len -= slice.len();
            slices.push(slice);
        }
        slices.into_iter().collect()
    }

    async fn send(&mut self, part: PutPayload) -> Result<()> {
        if self.upload.is_none() {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(|e| self.error(e))?;
            self.upload = Some(upload);
        }
        let upload = self.upload.as_mut().expect("just set");
        self.in_flight.spawn(upload.put_part(part));
        while self.in_flight.len() > self.parts_in_flight {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(self.error(e)),
            Some(Err(e)) => Err(Error::new(
                ErrorKind::Storage,
                format!("writing {}: part upload task failed: {e}", self.path),
            )),
        }
    }

    pub(super) async fn finish(mut self) -> Result<()> {
        let result = self.finish_inner().await;
        if result.is_err() {
            self.abort_inner().await;
        }
        result
    }

    async fn finish_inner(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let payload = self.take(self.pending_len);
            self.store
                .put(&self.path, payload)
                .await
                .map_err(|e| self.error(e))?;
            return Ok(());
        }
        if self.pending_len > 0 {
            let rest = self.take(self.pending_len);
            self.send(rest).await?;
        }
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let upload = self.upload.as_mut().expect("multipart started");
        upload
            .complete()
            .await
            .map_err(|e| Error::storage(format!("writing {}", self.path), e))?;
        Ok(())
    }

    pub(super) async fn abort(mut self) {
        self.abort_inner().await;
    }

    async fn abort_inner(&mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(mut upload) = self.upload.take() {
            // Best effort: an abandoned multipart upload is invisible and expires in the
            // backend; staging areas are swept by upload expiry.
            let _ = upload.abort().await;
        }
    }
}
