//! One fetch of a blob from a pull-through cache's upstream, shared by every request that
//! misses the blob while the fetch runs.
//!
//! The bytes go two ways as they arrive: into the registry, as a monolithic upload
//! verified against the digest (published only if it matches), and into a spool file that
//! each waiting request reads at its own pace. So the upstream is read once however many
//! clients ask, a slow or stalled client holds back no one (not the store, not the other
//! clients), and memory stays a few chunks whatever the blob's size. The spool file is
//! unlinked as soon as it is made: only the open handle keeps it, so a crash leaves
//! nothing behind.
//!
//! A reader of the whole blob is handed its last byte only once the registry has verified
//! the digest: a response that ends normally carried the blob asked for, and a mismatch
//! ends every response with an error instead. (A range that stops before the last byte
//! ends when its bytes are there, as a range of a stored blob carries no digest check.)

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, stream};
use tokio::sync::{mpsc, watch};

use super::pull_through::{PullThroughRule, upstream_failure};
use super::{Registry, RepositorySettings};
use crate::blob::{BlobInfo, BlobRead, ByteStream};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::reference::RepoName;
use crate::remote::RemoteBlob;

/// The most a reader takes from the spool at once.
const READ_CHUNK: u64 = 256 * 1024;

/// Chunks from upstream written to the spool in one go, when they arrive together.
const WRITE_BATCH: usize = 64;

/// Chunks queued for the store while it writes.
const STORE_QUEUE: usize = 8;

/// Names spool files apart within this process.
static SPOOLS: AtomicU64 = AtomicU64::new(0);

/// Where a fetch stands.
#[derive(Debug, Clone)]
enum FetchState {
    /// Asking upstream; the size is not known yet.
    Connecting,
    /// Receiving: `received` of `size` bytes are in the spool.
    Receiving { size: u64, received: u64 },
    /// Every byte received, verified and stored.
    Stored(BlobInfo),
    /// It failed; readers end with this error.
    Failed {
        kind: ErrorKind,
        message: String,
        retryable: bool,
    },
}

impl FetchState {
    fn failed(error: &Error) -> Self {
        FetchState::Failed {
            kind: error.kind(),
            message: error.message().to_owned(),
            retryable: error.is_retryable(),
        }
    }
}

/// The error a failed fetch ends its readers with.
fn failure(kind: ErrorKind, message: &str, retryable: bool) -> Error {
    let error = Error::new(kind, message.to_owned());
    if retryable { error.retryable() } else { error }
}

/// Runs its closure when dropped: when the task holding it ends, panics or is cancelled
/// alike, so what a task registered is always taken back.
pub(super) struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl OnDrop {
    pub(super) fn new(run: Box<dyn FnOnce() + Send>) -> Self {
        OnDrop(Some(run))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run();
        }
    }
}

/// A fetch in flight: its spool and where it stands.
pub(super) struct BlobFetch {
    digest: Digest,
    spool: Arc<File>,
    state: watch::Receiver<FetchState>,
}

impl std::fmt::Debug for BlobFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobFetch")
            .field("digest", &self.digest)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl BlobFetch {
    /// Starts fetching `digest` into `repo`: `connect` asks upstream for the bytes, then
    /// they stream into the registry and a spool in `spool_dir`. `done` runs when the fetch
    /// has ended, however it ended (a panic and a runtime shutting down included).
    pub(super) fn start(
        registry: Registry,
        repo: RepoName,
        digest: Digest,
        spool_dir: &Path,
        connect: BoxFuture<'static, Result<RemoteBlob>>,
        done: Box<dyn FnOnce() + Send>,
    ) -> Result<Arc<Self>> {
        let spool = Arc::new(anonymous_file(spool_dir, &digest)?);
        let (tell, state) = watch::channel(FetchState::Connecting);
        let fetch = Arc::new(BlobFetch {
            digest: digest.clone(),
            spool: spool.clone(),
            state,
        });
        tokio::spawn(async move {
            let _done = OnDrop::new(done);
            let outcome = receive(&registry, &repo, &digest, spool, connect, &tell).await;
            let last = match &outcome {
                Ok(info) => FetchState::Stored(info.clone()),
                Err(e) => {
                    tracing::warn!(%repo, %digest, error = %e, "pull-through fetch failed");
                    FetchState::failed(e)
                }
            };
            tell.send_replace(last);
        });
        Ok(fetch)
    }

    /// The blob's size, once upstream has announced it.
    pub(super) async fn size(&self) -> Result<u64> {
        let mut state = self.state.clone();
        loop {
            match &*state.borrow_and_update() {
                FetchState::Connecting => {}
                FetchState::Receiving { size, .. } => return Ok(*size),
                FetchState::Stored(info) => return Ok(info.size),
                FetchState::Failed {
                    kind,
                    message,
                    retryable,
                } => return Err(failure(*kind, message, *retryable)),
            }
            if state.changed().await.is_err() {
                return Err(self.abandoned());
            }
        }
    }

    /// Waits until the blob is stored (its record), or the fetch failed.
    pub(super) async fn stored(&self) -> Result<BlobInfo> {
        let mut state = self.state.clone();
        loop {
            match &*state.borrow_and_update() {
                FetchState::Stored(info) => return Ok(info.clone()),
                FetchState::Failed {
                    kind,
                    message,
                    retryable,
                } => return Err(failure(*kind, message, *retryable)),
                FetchState::Connecting | FetchState::Receiving { .. } => {}
            }
            if state.changed().await.is_err() {
                return Err(self.abandoned());
            }
        }
    }

    /// A read of the blob, whole or `range` of it, following the fetch as it goes.
    pub(super) async fn read(self: &Arc<Self>, range: Option<Range<u64>>) -> Result<BlobRead> {
        let size = self.size().await?;
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(Error::new(
                ErrorKind::SizeInvalid,
                format!(
                    "range {range:?} is outside blob {} of {size} bytes",
                    self.digest
                ),
            ));
        }
        let tail = Tail {
            fetch: self.clone(),
            state: self.state.clone(),
            at: range.start,
            end: range.end,
        };
        let stream: ByteStream = stream::unfold(tail, Tail::next).boxed();
        Ok(BlobRead {
            info: BlobInfo {
                digest: self.digest.clone(),
                size,
            },
            range,
            stream,
        })
    }

    fn abandoned(&self) -> Error {
        Error::new(
            ErrorKind::Storage,
            format!("the fetch of {} from upstream stopped", self.digest),
        )
        .retryable()
    }
}

/// One reader's place in a fetch.
struct Tail {
    fetch: Arc<BlobFetch>,
    state: watch::Receiver<FetchState>,
    at: u64,
    end: u64,
}

impl Tail {
    /// The next bytes, when the spool has them; the fetch's error if it failed.
    async fn next(mut self) -> Option<(Result<Bytes>, Tail)> {
        if self.at >= self.end {
            return None;
        }
        loop {
            let state = self.state.borrow_and_update().clone();
            let readable = match state {
                FetchState::Connecting => 0,
                // The last byte waits for the digest to be verified.
                FetchState::Receiving { size, received } => received.min(size - 1),
                FetchState::Stored(info) => info.size,
                FetchState::Failed {
                    kind,
                    message,
                    retryable,
                } => {
                    let error = failure(kind, &message, retryable);
                    self.at = self.end;
                    return Some((Err(error), self));
                }
            }
            .min(self.end);
            if self.at < readable {
                let len = (readable - self.at).min(READ_CHUNK);
                let read = read_at(self.fetch.spool.clone(), self.at, len).await;
                self.at += len;
                if read.is_err() {
                    self.at = self.end;
                }
                return Some((read, self));
            }
            if self.state.changed().await.is_err() {
                let error = self.fetch.abandoned();
                self.at = self.end;
                return Some((Err(error), self));
            }
        }
    }
}

/// Connects, then streams upstream's bytes into the spool and the registry at once; the
/// blob as stored.
async fn receive(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    spool: Arc<File>,
    connect: BoxFuture<'static, Result<RemoteBlob>>,
    tell: &watch::Sender<FetchState>,
) -> Result<BlobInfo> {
    let RemoteBlob { size, body } = connect.await?;
    let size = size.ok_or_else(|| {
        Error::new(
            ErrorKind::Storage,
            format!("upstream sent {digest} without a Content-Length"),
        )
    })?;
    if size == 0 {
        // Nothing to spool: store the empty blob (verified) and be done.
        return registry
            .push_blob_stream(repo, digest, stream::empty().boxed())
            .await;
    }
    tell.send_replace(FetchState::Receiving { size, received: 0 });
    let (to_store, queued) = mpsc::channel::<Result<Bytes>>(STORE_QUEUE);
    let store_body = stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|chunk| (chunk, queued))
    })
    .boxed();
    let store = registry.push_blob_stream(repo, digest, store_body);
    let copy = copy_to_spool(body, size, spool, to_store, tell, digest);
    let (stored, copied) = tokio::join!(store, copy);
    copied?;
    stored
}

/// Writes `body` to the spool, telling readers as it goes, and hands each chunk to the
/// store. Ends the store's stream with an error if upstream fails or sends a byte more
/// or fewer than it announced.
async fn copy_to_spool(
    body: ByteStream,
    size: u64,
    spool: Arc<File>,
    to_store: mpsc::Sender<Result<Bytes>>,
    tell: &watch::Sender<FetchState>,
    digest: &Digest,
) -> Result<()> {
    let mut batches = body.ready_chunks(WRITE_BATCH);
    let mut received = 0u64;
    let outcome = async {
        while let Some(batch) = batches.next().await {
            let batch: Vec<Bytes> = batch.into_iter().collect::<Result<_>>()?;
            let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
            if received + len > size {
                return Err(Error::new(
                    ErrorKind::SizeInvalid,
                    format!("upstream sent more than the {size} bytes it announced for {digest}"),
                ));
            }
            write_at(spool.clone(), received, batch.clone()).await?;
            received += len;
            tell.send_replace(FetchState::Receiving { size, received });
            for chunk in batch {
                if to_store.send(Ok(chunk)).await.is_err() {
                    // The store gave up; its error is the one to report.
                    return Ok(());
                }
            }
        }
        if received < size {
            return Err(Error::new(
                ErrorKind::SizeInvalid,
                format!("upstream ended {digest} after {received} of {size} bytes"),
            ));
        }
        Ok(())
    }
    .await;
    if let Err(e) = &outcome {
        let _ = to_store.send(Err(Error::new(e.kind(), e.message()))).await;
    }
    outcome
}

/// A new file in `dir`, unlinked at once: it lives while it is open.
fn anonymous_file(dir: &Path, digest: &Digest) -> Result<File> {
    let name = format!(
        ".wharf-spool-{}-{}-{}",
        std::process::id(),
        SPOOLS.fetch_add(1, Ordering::Relaxed),
        &digest.hex()[..12]
    );
    let path = dir.join(name);
    let spool_error = |e: std::io::Error| {
        Error::new(
            ErrorKind::Storage,
            format!("pull-through spool {}: {e}", path.display()),
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(spool_error)?;
    std::fs::remove_file(&path).map_err(spool_error)?;
    Ok(file)
}

async fn write_at(spool: Arc<File>, offset: u64, batch: Vec<Bytes>) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let mut at = offset;
        for chunk in &batch {
            spool.write_all_at(chunk, at)?;
            at += chunk.len() as u64;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Storage, format!("spool writer: {e}")))?
    .map_err(|e| Error::new(ErrorKind::Storage, format!("writing the spool: {e}")))
}

async fn read_at(spool: Arc<File>, offset: u64, len: u64) -> Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0; len as usize];
        spool.read_exact_at(&mut buffer, offset)?;
        Ok::<_, std::io::Error>(Bytes::from(buffer))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Storage, format!("spool reader: {e}")))?
    .map_err(|e| Error::new(ErrorKind::Storage, format!("reading the spool: {e}")))
}

/// The registry's side of fetches: finding the one running, starting one.
impl Registry {
    pub(super) fn running_fetch(&self, repo: &RepoName, digest: &Digest) -> Option<Arc<BlobFetch>> {
        let fetches = self.inner.pull_through.fetches.lock().ok()?;
        fetches.get(&(repo.clone(), digest.clone())).cloned()
    }

    /// The fetch of `digest` into `repo`: the one running, or a new one.
    pub(super) fn blob_fetch(
        &self,
        rule: &PullThroughRule,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Arc<BlobFetch>> {
        let state = &self.inner.pull_through;
        let spool_dir = self
            .pull_through_settings()
            .map(|s| s.spool_dir.clone())
            .unwrap_or_else(std::env::temp_dir);
        let key = (repo.clone(), digest.clone());
        let mut fetches = state
            .fetches
            .lock()
            .map_err(|_| Error::new(ErrorKind::Storage, "pull-through fetches poisoned"))?;
        if let Some(fetch) = fetches.get(&key) {
            return Ok(fetch.clone());
        }
        let registry = self.clone();
        let upstream = rule.upstream.clone();
        let rule_owned = rule.clone();
        let upstream_name = rule.upstream_name(repo);
        let (repo_owned, digest_owned) = key.clone();
        // A fetch that ended just before this one started may have stored the blob:
        // then it is read from here, not asked of upstream again. The repository is made
        // only once upstream has the blob: a miss of a name upstream does not know
        // creates nothing here.
        let connect = async move {
            if let Ok(held) = registry.read_blob(&repo_owned, &digest_owned, None).await {
                return Ok(RemoteBlob {
                    size: Some(held.info.size),
                    body: held.stream,
                });
            }
            let blob = upstream
                .blob(&upstream_name, &digest_owned)
                .await
                .map_err(|e| upstream_failure(&rule_owned, &upstream_name, e))?;
            registry.ensure_cache_repository(&repo_owned).await?;
            Ok(blob)
        }
        .boxed();
        let forget = {
            let registry = self.clone();
            let key = key.clone();
            Box::new(move || {
                let state = &registry.inner.pull_through;
                if let Ok(mut fetches) = state.fetches.lock() {
                    fetches.remove(&key);
                }
                state.idle.notify_waiters();
            })
        };
        let fetch = BlobFetch::start(
            self.clone(),
            repo.clone(),
            digest.clone(),
            &spool_dir,
            connect,
            forget,
        )?;
        fetches.insert(key, fetch.clone());
        Ok(fetch)
    }

    /// Creates `repo` for the cache if it does not exist (the rule consents to it).
    pub(super) async fn ensure_cache_repository(&self, repo: &RepoName) -> Result<()> {
        match self.repository(repo).await {
            Err(e) if e.kind() == ErrorKind::NameUnknown => {
                let settings = RepositorySettings {
                    scan_on_push: self.scan_on_push_by_default(),
                    ..RepositorySettings::default()
                };
                match self.create_repository(repo, settings).await {
                    Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
                    _ => Ok(()),
                }
            }
            other => other.map(drop),
        }
    }
}
