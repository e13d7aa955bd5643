//! [`Registry`]: the facade an embedder drives, one method per registry operation.
//!
//! It ties the blob store (bytes) to the metadata store (what each repository may see):
//! a blob is readable in a repository only through a link `link/<repo>@<digest>`, so
//! one stored copy serves every repository that pushed or mounted it.

use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use serde::{Deserialize, Serialize};

use crate::blob::{
    BlobInfo, BlobRead, BlobStore, BlobWriter, ByteStream, ObjectBlobStore, WriterState,
};
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Expect, MemoryMetaStore, MetaStore, RedbMetaStore};
use crate::reference::RepoName;
use crate::upload::{ExpiryReport, SessionRecord, UploadId, UploadStatus, now_millis, to_millis};

/// Default age after which an upload session with no activity is expired.
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Decides whether a blob may be mounted into a repository by digest alone, without the
/// caller naming a source repository it can read.
///
/// Mounting by digest alone lets anyone who knows a digest obtain the blob, so the
/// default ([`DenyMountByDigest`]) refuses; a single-tenant registry may allow it.
pub trait MountPolicy: Send + Sync + fmt::Debug + 'static {
    /// Whether `digest` may be linked into `target` without a source repository.
    fn allow_mount_by_digest(&self, target: &RepoName, digest: &Digest) -> bool;
}

/// The default [`MountPolicy`]: mounting needs a source repository.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyMountByDigest;

impl MountPolicy for DenyMountByDigest {
    fn allow_mount_by_digest(&self, _: &RepoName, _: &Digest) -> bool {
        false
    }
}

/// The link record of a blob in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LinkRecord {
    size: u64,
    linked_at_ms: u64,
}

fn link_key(repo: &RepoName, digest: &Digest) -> String {
    // '@' cannot occur in a repository name, so one repository's prefix never matches
    // another's ("a@" vs "a/b@").
    format!("link/{repo}@{digest}")
}

fn link_prefix(repo: &RepoName) -> String {
    format!("link/{repo}@")
}

fn upload_key(id: &UploadId) -> String {
    format!("upload/{id}")
}

const UPLOAD_PREFIX: &str = "upload/";

/// An OCI registry's storage: repositories of linked blobs over one content-addressed
/// store, and resumable uploads.
///
/// Cheap to clone; clones share everything.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wharf::{Algorithm, Digest, Registry};
///
/// let registry = Registry::in_memory();
/// let repo = "team/app".parse()?;
/// let layer = bytes::Bytes::from_static(b"layer");
/// let digest = Digest::of(Algorithm::Sha256, &layer);
///
/// // Chunked upload, as a client sends it.
/// let upload = registry.start_upload(&repo).await?;
/// registry.append_upload(&repo, &upload.id, 0, layer.slice(..3)).await?;
/// registry.finish_upload(&repo, &upload.id, &digest, Some(layer.slice(3..))).await?;
///
/// assert_eq!(registry.read_blob(&repo, &digest, None).await?.bytes().await?, layer);
/// // Another repository sees it only once mounted.
/// let other = "team/other".parse()?;
/// assert!(registry.stat_blob(&other, &digest).await.is_err());
/// registry.mount_blob(&other, &digest, Some(&repo)).await?;
/// assert_eq!(registry.stat_blob(&other, &digest).await?.size, 5);
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    mount_policy: Arc<dyn MountPolicy>,
    upload_expiry: Duration,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("blobs", &self.inner.blobs)
            .field("meta", &self.inner.meta)
            .field("upload_expiry", &self.inner.upload_expiry)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Registry`] from its parts.
#[derive(Default)]
pub struct RegistryBuilder {
    blobs: Option<Arc<dyn BlobStore>>,
    meta: Option<Arc<dyn MetaStore>>,
    mount_policy: Option<Arc<dyn MountPolicy>>,
    upload_expiry: Option<Duration>,
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder").finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    /// Keeps blobs in `store` through an [`ObjectBlobStore`].
    pub fn object_store(self, store: Arc<dyn ObjectStore>) -> Self {
        self.blob_store(Arc::new(ObjectBlobStore::new(store)))
    }

    /// Keeps blobs in `blobs`.
    pub fn blob_store(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Keeps metadata in `meta`.
    pub fn meta_store(mut self, meta: Arc<dyn MetaStore>) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Sets the [`MountPolicy`] for mounts without a source repository.
    pub fn mount_policy(mut self, policy: Arc<dyn MountPolicy>) -> Self {
        self.mount_policy = Some(policy);
        self
    }

    /// Sets the age of inactivity after which [`Registry::expire_uploads`] removes a
    /// session (default [`DEFAULT_UPLOAD_EXPIRY`]).
    pub fn upload_expiry(mut self, age: Duration) -> Self {
        self.upload_expiry = Some(age);
        self
    }

    /// Builds the registry; both stores must be set.
    pub fn build(self) -> Result<Registry> {
        let missing = |what: &str| {
            Error::new(
                ErrorKind::Unsupported,
                format!("registry needs a {what}: set it on the builder"),
            )
        };
        Ok(Registry {
            inner: Arc::new(Inner {
                blobs: self.blobs.ok_or_else(|| missing("blob store"))?,
                meta: self.meta.ok_or_else(|| missing("metadata store"))?,
                mount_policy: self
                    .mount_policy
                    .unwrap_or_else(|| Arc::new(DenyMountByDigest)),
                upload_expiry: self.upload_expiry.unwrap_or(DEFAULT_UPLOAD_EXPIRY),
            }),
        })
    }
}

impl Registry {
    /// A builder.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// A registry entirely in memory: for tests and throwaway use.
    pub fn in_memory() -> Self {
        Self::builder()
            .object_store(Arc::new(InMemory::new()))
            .meta_store(Arc::new(MemoryMetaStore::new()))
            .build()
            .expect("both stores are set")
    }

    /// The embedded default: blobs in `dir/blobs` on the local filesystem, metadata in
    /// the redb database `dir/meta.redb`. Creates `dir` if needed.
    pub fn open_local(dir: impl AsRef<FsPath>) -> Result<Self> {
        let dir = dir.as_ref();
        let blob_dir = dir.join("blobs");
        std::fs::create_dir_all(&blob_dir).map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("creating {}: {e}", blob_dir.display()),
            )
            .with_source(e)
        })?;
        let fs = LocalFileSystem::new_with_prefix(&blob_dir)
            .map_err(|e| Error::storage(format!("opening {}", blob_dir.display()), e))?
            .with_automatic_cleanup(true)
            // A published blob must survive power loss, not only a process crash.
            .with_fsync(true);
        Self::builder()
            .object_store(Arc::new(fs))
            .meta_store(Arc::new(RedbMetaStore::open(dir.join("meta.redb"))?))
            .build()
    }

    /// The blob store.
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    /// The metadata store.
    pub fn meta_store(&self) -> &Arc<dyn MetaStore> {
        &self.inner.meta
    }

    // ---- blobs in repositories ----

    async fn link(&self, repo: &RepoName, info: &BlobInfo) -> Result<()> {
        let record = LinkRecord {
            size: info.size,
            linked_at_ms: now_millis(),
        };
        let key = link_key(repo, &info.digest);
        match self
            .inner
            .meta
            .put(&key, encode(&record)?, Expect::Absent)
            .await
        {
            // Already linked: the link is the same fact.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn linked(&self, repo: &RepoName, digest: &Digest) -> Result<Option<LinkRecord>> {
        match self.inner.meta.get(&link_key(repo, digest)).await? {
            Some(v) => decode(&v.value, &link_key(repo, digest)).map(Some),
            None => Ok(None),
        }
    }

    fn blob_unknown(repo: &RepoName, digest: &Digest) -> Error {
        Error::new(
            ErrorKind::BlobUnknown,
            format!("blob {digest} is not in repository {repo}"),
        )
    }

    /// Size of a blob linked in `repo`; [`ErrorKind::BlobUnknown`] if it is not linked there.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobInfo> {
        if self.linked(repo, digest).await?.is_none() {
            return Err(Self::blob_unknown(repo, digest));
        }
        self.inner
            .blobs
            .stat(digest)
            .await?
            .ok_or_else(|| Self::blob_unknown(repo, digest))
    }

    /// Reads a blob linked in `repo`, whole or a byte range.
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead> {
        if self.linked(repo, digest).await?.is_none() {
            return Err(Self::blob_unknown(repo, digest));
        }
        self.inner.blobs.read(digest, range).await.map_err(|e| {
            if e.kind() == ErrorKind::BlobUnknown {
                Self::blob_unknown(repo, digest)
            } else {
                e
            }
        })
    }

    /// Pushes a whole blob in one call (a monolithic upload), verified against `digest`.
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        mut body: ByteStream,
    ) -> Result<BlobInfo> {
        let mut writer = self.inner.blobs.writer(digest.algorithm()).await?;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => writer.write(chunk).await?,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        let info = writer.commit(digest, None).await?;
        self.link(repo, &info).await?;
        Ok(info)
    }

    /// [`Registry::push_blob`] for bytes in memory.
    pub async fn push_blob_bytes(
        &self,
        repo: &RepoName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<BlobInfo> {
        self.push_blob(
            repo,
            digest,
            futures::stream::once(async { Ok(data) }).boxed(),
        )
        .await
    }

    /// Links a stored blob into `target` without copying.
    ///
    /// With `from`, the blob must be linked in that repository (the caller vouches that
    /// the client may read `from`); otherwise [`ErrorKind::BlobUnknown`], and a frontend
    /// falls back to an upload. Without `from`, the registry's [`MountPolicy`] decides;
    /// refusal is [`ErrorKind::Denied`].
    pub async fn mount_blob(
        &self,
        target: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<BlobInfo> {
        match from {
            Some(source) => {
                if self.linked(source, digest).await?.is_none() {
                    return Err(Self::blob_unknown(source, digest));
                }
            }
            None => {
                if !self
                    .inner
                    .mount_policy
                    .allow_mount_by_digest(target, digest)
                {
                    return Err(Error::new(
                        ErrorKind::Denied,
                        format!("mounting {digest} into {target} needs a source repository"),
                    ));
                }
            }
        }
        let info = self.inner.blobs.stat(digest).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::BlobUnknown,
                format!("blob {digest} is not stored"),
            )
        })?;
        self.link(target, &info).await?;
        Ok(info)
    }

    /// Removes a blob's link from `repo`. The bytes stay for garbage collection.
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let key = link_key(repo, digest);
        if self.inner.meta.get(&key).await?.is_none() {
            return Err(Self::blob_unknown(repo, digest));
        }
        self.inner.meta.delete(&key, Expect::Any).await
    }

    /// Digests linked in `repo`, ascending, after `start_after`, at most `limit`.
    pub async fn list_blobs(
        &self,
        repo: &RepoName,
        start_after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>> {
        let prefix = link_prefix(repo);
        let after = start_after.map(|d| link_key(repo, d));
        let keys = self
            .inner
            .meta
            .list_keys(&prefix, after.as_deref(), limit)
            .await?;
        keys.iter().map(|k| k[prefix.len()..].parse()).collect()
    }

    // ---- upload sessions ----

    /// Starts an upload session into `repo`.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadStatus> {
        let id = UploadId::generate();
        // The session's staging area is named by its id; nothing is staged until the
        // first append.
        let writer_state = WriterState::new(id.as_str(), Algorithm::Sha256);
        let now = now_millis();
        let record = SessionRecord {
            repo: repo.clone(),
            started_at_ms: now,
            updated_at_ms: now,
            writer: writer_state,
        };
        self.inner
            .meta
            .put(&upload_key(&id), encode(&record)?, Expect::Absent)
            .await?;
        Ok(record.status(&id))
    }

    async fn session(
        &self,
        repo: &RepoName,
        id: &UploadId,
    ) -> Result<(SessionRecord, crate::meta::Version)> {
        let unknown = || {
            Error::new(
                ErrorKind::BlobUploadUnknown,
                format!("upload {id} is not open in repository {repo}"),
            )
        };
        let stored = self
            .inner
            .meta
            .get(&upload_key(id))
            .await?
            .ok_or_else(unknown)?;
        let record: SessionRecord = decode(&stored.value, &upload_key(id))?;
        if &record.repo != repo {
            return Err(unknown());
        }
        Ok((record, stored.version))
    }

    /// Where an upload session stands.
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadStatus> {
        Ok(self.session(repo, id).await?.0.status(id))
    }

    /// Appends a chunk that starts at `offset`, streamed from `body`.
    ///
    /// A chunk at any offset but the current one is [`ErrorKind::RangeInvalid`] carrying
    /// the current offset; the session stays usable. If `body` fails midway, the bytes
    /// received before the failure are kept, so the client can resume after them.
    pub async fn append_upload_stream(
        &self,
        repo: &RepoName,
        id: &UploadId,
        offset: u64,
        mut body: ByteStream,
    ) -> Result<UploadStatus> {
        let (record, version) = self.session(repo, id).await?;
        let current = record.writer.len();
        if offset != current {
            return Err(Error::range_invalid(
                format!("upload {id} in {repo} is at offset {current}, chunk starts at {offset}"),
                current,
            ));
        }
        let mut writer = self.inner.blobs.resume_writer(&record.writer).await?;
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    // On failure the unfinished part is abandoned; the session still holds
                    // its last checkpoint and the staging area is swept with it.
                    writer.write(chunk).await?;
                }
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        let state = writer.checkpoint().await?;
        let updated = SessionRecord {
            updated_at_ms: now_millis(),
            writer: state,
            ..record
        };
        match self
            .inner
            .meta
            .put(&upload_key(id), encode(&updated)?, Expect::Version(version))
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict => {
                // Another append or a finish got there first; our part stays unreferenced
                // in the staging area and goes with it.
                let now = self.session(repo, id).await?.0.writer.len();
                return Err(Error::range_invalid(
                    format!("upload {id} in {repo} moved on concurrently; it is at offset {now}"),
                    now,
                ));
            }
            Err(e) => return Err(e),
        }
        match body_error {
            Some(e) => Err(e),
            None => Ok(updated.status(id)),
        }
    }

    /// [`Registry::append_upload_stream`] for a chunk in memory.
    pub async fn append_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        offset: u64,
        chunk: Bytes,
    ) -> Result<UploadStatus> {
        self.append_upload_stream(
            repo,
            id,
            offset,
            futures::stream::once(async { Ok(chunk) }).boxed(),
        )
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
        let last = last_chunk.map(|c| futures::stream::once(async { Ok(c) }).boxed());
        self.finish_upload_stream(repo, id, digest, last).await
    }

    /// [`Registry::finish_upload`] with the last chunk streamed.
    pub async fn finish_upload_stream(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<ByteStream>,
    ) -> Result<BlobInfo> {
        let (record, _) = self.session(repo, id).await?;
        let mut writer = self.inner.blobs.resume_writer(&record.writer).await?;
        if let Some(mut body) = last_chunk {
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => writer.write(chunk).await?,
                    Err(e) => {
                        // Keep what arrived, as an append would; the session stays open.
                        drop(self.persist_partial(repo, id, writer).await);
                        return Err(e);
                    }
                }
            }
        }
        let committed = writer.commit(digest, None).await;
        if let Ok(info) = &committed {
            self.link(repo, info).await?;
        }
        // The session is over whether the digest matched or not.
        self.inner.meta.delete(&upload_key(id), Expect::Any).await?;
        committed
    }

    async fn persist_partial(
        &self,
        repo: &RepoName,
        id: &UploadId,
        mut writer: Box<dyn BlobWriter>,
    ) -> Result<()> {
        let (record, version) = self.session(repo, id).await?;
        let state = writer.checkpoint().await?;
        let updated = SessionRecord {
            updated_at_ms: now_millis(),
            writer: state,
            ..record
        };
        self.inner
            .meta
            .put(&upload_key(id), encode(&updated)?, Expect::Version(version))
            .await
            .map(drop)
    }

    /// Cancels an upload session and removes what it staged.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        let (_, version) = self.session(repo, id).await?;
        self.inner
            .meta
            .delete(&upload_key(id), Expect::Version(version))
            .await?;
        self.inner.blobs.discard_staging(id.as_str()).await
    }

    /// Removes upload sessions idle for longer than the configured expiry, and staging
    /// areas that no session owns (left by crashes) that are as old. Safe to run while
    /// uploads go on: a session is removed only by compare-and-swap against the state
    /// that was judged idle.
    pub async fn expire_uploads(&self) -> Result<ExpiryReport> {
        self.expire_uploads_older_than(self.inner.upload_expiry)
            .await
    }

    /// [`Registry::expire_uploads`] with an explicit age.
    pub async fn expire_uploads_older_than(&self, age: Duration) -> Result<ExpiryReport> {
        let cutoff = to_millis(
            SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let mut report = ExpiryReport::default();
        let mut after: Option<String> = None;
        let mut live = std::collections::HashSet::new();
        loop {
            let page = self
                .inner
                .meta
                .list(UPLOAD_PREFIX, after.as_deref(), 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for entry in page {
                let id = &entry.key[UPLOAD_PREFIX.len()..];
                // A damaged record cannot be resumed: it counts as idle.
                let idle = decode::<SessionRecord>(&entry.value, &entry.key)
                    .map_or(true, |r| r.updated_at_ms <= cutoff);
                if !idle {
                    live.insert(id.to_owned());
                    continue;
                }
                match self
                    .inner
                    .meta
                    .delete(&entry.key, Expect::Version(entry.version))
                    .await
                {
                    Ok(()) => {
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
        }
        let areas: Vec<_> = self.inner.blobs.list_staging().try_collect().await?;
        for area in areas {
            if live.contains(&area.staging_id) || to_millis(area.last_modified) > cutoff {
                continue;
            }
            // Re-check: a session may have started since the listing above.
            if let Ok(id) = area.staging_id.parse::<UploadId>()
                && self.inner.meta.get(&upload_key(&id)).await?.is_some()
            {
                continue;
            }
            self.inner.blobs.discard_staging(&area.staging_id).await?;
            report.orphaned_staging += 1;
        }
        Ok(report)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::new(ErrorKind::Storage, format!("encoding metadata: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(raw: &[u8], key: &str) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| {
        Error::new(
            ErrorKind::CorruptData,
            format!("metadata record {key:?} is unreadable: {e}"),
        )
    })
}
