//! [`Registry`]: the facade an embedder drives, one method per registry operation.
//!
//! It ties the blob store (bytes) to the metadata store (what each repository may see):
//! a blob is readable in a repository only through a link `link/<repo>@<digest>`, so
//! one stored copy serves every repository that pushed or mounted it.

use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::memory::InMemory;
use serde::{Deserialize, Serialize};

use self::open_writers::OpenWriters;
use self::schema::{InRepo, LINKS, Prefix};
use crate::blob::{AtRest, BlobInfo, BlobRead, BlobStore, ByteStream, local_objects};
use crate::clock::Clock;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::events::EventSink;
use crate::keys::{DEFAULT_KEK, KeyProvider, LocalKeyProvider, MemoryKeyProvider};
use crate::meta::{Expect, MemoryMetaStore, MetaStore, RedbMetaStore};
use crate::reference::RepoName;

mod access;
mod access_cache;
mod archive;
mod at_rest;
mod blob_records;
mod builder;
mod caller;
mod dispatch;
mod docker_archive;
mod gc;
mod inventory;
mod key_identity;
mod layout_export;
mod layout_import;
mod layout_io;
mod layout_marks;
mod leases;
mod lifecycle;
mod manifest_cache;
mod manifest_deletes;
mod manifest_records;
mod manifests;
mod open_writers;
mod outbox;
#[cfg(feature = "remote")]
mod pull_through;
#[cfg(feature = "remote")]
mod pull_through_fetch;
mod pull_through_records;
mod pulls;
mod referrer_lists;
mod referrers;
#[cfg(feature = "remote")]
mod remote_copy;
#[cfg(feature = "remote")]
mod replication;
mod replication_records;
mod repositories;
mod scan_rematch;
mod scan_results;
mod scans;
mod schema;
mod small_objects;
mod tag_layout;
mod tags;
mod uploads;
mod written_blobs;

pub use self::access::{CallerRegistry, ResourceAccount};
pub use self::at_rest::StorageStats;
pub use self::builder::RegistryBuilder;
pub use self::dispatch::{
    DeadLetter, DispatchOptions, DispatchReport, Dispatcher, ReplayReport, SinkSubscriber,
    Subscriber,
};
pub use self::gc::{DEFAULT_GC_GRACE, GcCursor, GcOptions, GcReport};
pub use self::inventory::ImageInfo;
pub use self::layout_export::{ExportOptions, ExportReport};
pub use self::layout_import::{ImportOptions, ImportReport};
pub use self::leases::Lease;
pub use self::lifecycle::LifecycleReport;
pub use self::manifests::{ManifestInfo, PushedManifest, StoredManifest};
pub use self::outbox::ANNOUNCE_DEADLINE;
#[cfg(feature = "remote")]
pub use self::pull_through::{DEFAULT_TAG_TTL, PullThroughRule, PullThroughSettings};
pub use self::pulls::DEFAULT_PULL_TIME_RESOLUTION;
pub use self::referrers::Referrers;
#[cfg(feature = "remote")]
pub use self::remote_copy::{CopyOptions, CopyReport};
#[cfg(feature = "remote")]
pub use self::replication::{ReplicationRule, Replicator};
pub use self::replication_records::{ReplicationState, ReplicationStatus};
pub use self::repositories::{
    MAX_MUTABILITY_EXCLUSIONS, Repository, RepositorySettings, TagMutability,
};
pub use self::scan_rematch::RematchReport;
pub use self::scans::{DEFAULT_SCAN_CONCURRENCY, ImageScan, SCAN_CLAIM, ScanFindings};
pub use self::small_objects::{SMALL_OBJECT_LIMIT, SmallObjects};
pub use self::tags::{TAG_HISTORY_LEN, TagMove};

/// Default age after which an upload session with no activity is expired.
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Default number of bytes an upload receives between checkpoints: uploads smaller than
/// this finish as a single staged part, published by a rename.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 256 << 20;

/// Default time authorization keeps what it read of a repository (see
/// [`RegistryBuilder::access_cache_ttl`]).
pub const DEFAULT_ACCESS_CACHE_TTL: Duration = Duration::from_secs(1);

/// Default number of upload writers kept open in one process between chunks.
pub const DEFAULT_MAX_OPEN_UPLOADS: usize = 16;

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
pub(crate) struct LinkRecord {
    size: u64,
    linked_at_ms: u64,
    /// The event that linked the blob (see `outbox.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<crate::events::EventId>,
}

impl outbox::CarriesEvents for LinkRecord {
    fn carried(&mut self) -> &mut Vec<crate::events::EventId> {
        &mut self.events
    }
}

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
    checkpoint_interval: u64,
    max_open_uploads: usize,
    open_writers: OpenWriters,
    create_on_push: bool,
    pull_time_resolution: Duration,
    pulls: pulls::PullRecorder,
    max_manifest_size: usize,
    events: Arc<dyn EventSink>,
    archive: Option<Arc<dyn BlobStore>>,
    gc_grace: Duration,
    at_rest: AtRest,
    kek_redirects: at_rest::KekRedirects,
    /// The provider whose KEK identities are checked against the store's.
    keys: Option<Arc<dyn KeyProvider>>,
    checked_keks: key_identity::CheckedKeks,
    clock: Arc<dyn Clock>,
    authorizer: Arc<dyn crate::access::Authorizer>,
    resource_account: ResourceAccount,
    access_cache: access_cache::AccessCache,
    /// One past the next free outbox slot this process knows of; 0 when none is known.
    outbox_next: std::sync::atomic::AtomicU64,
    /// Woken after every commit, so a dispatcher in this process delivers at once.
    outbox_wake: tokio::sync::Notify,
    /// Verified manifest bytes by digest.
    manifests: manifest_cache::ManifestCache,
    /// `tag/` is known to hold live tags only (`tag_layout.rs`).
    live_tags_only: std::sync::atomic::AtomicBool,
    /// Every referrer is known to be in a `referrer-list/` record (`referrer_lists.rs`).
    referrer_lists_only: std::sync::atomic::AtomicBool,
    /// The scanner and the scans running in this process.
    scans: scans::ScanRunner,
    /// Pull-through rules and the fetches running in this process.
    #[cfg(feature = "remote")]
    pull_through: pull_through::PullThroughState,
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

impl Registry {
    /// A builder.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// A registry entirely in memory: for tests and throwaway use.
    pub fn in_memory() -> Self {
        // Encrypted like a real deployment, under a KEK that lives as long as the data.
        let keys = MemoryKeyProvider::default();
        keys.generate(DEFAULT_KEK).expect("randomness for a key");
        Self::builder()
            .object_store(Arc::new(InMemory::new()))
            .key_provider(Arc::new(keys))
            .meta_store(Arc::new(MemoryMetaStore::new()))
            .build()
            .expect("both stores are set")
    }

    /// The embedded default: blobs in `dir/blobs` on the local filesystem (those of at
    /// most [`SMALL_OBJECT_LIMIT`] bytes, and data-key wraps, in the metadata store: see
    /// [`SmallObjects`]), metadata in the redb database `dir/meta.redb`, blobs encrypted
    /// under KEKs kept in the key file `dir/keys.json` (created owner-only with one
    /// fresh KEK on first use) and compressed where that helps. Creates `dir` if needed.
    pub fn open_local(dir: impl AsRef<FsPath>) -> Result<Self> {
        let dir = dir.as_ref();
        let (blobs, composer) = local_objects(&dir.join("blobs"))?;
        let keys = LocalKeyProvider::open(dir.join("keys.json"))?;
        let meta: Arc<dyn MetaStore> = Arc::new(RedbMetaStore::open(dir.join("meta.redb"))?);
        let objects = SmallObjects::new(blobs, meta.clone());
        Self::builder()
            .composer(objects.composer(composer))
            .object_store(Arc::new(objects))
            .key_provider(Arc::new(keys))
            .meta_store(meta)
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

    /// The time now by the registry's clock, in milliseconds since the Unix epoch.
    pub(crate) fn now_millis(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    /// The time now by the registry's clock.
    pub(crate) fn now(&self) -> std::time::SystemTime {
        self.inner.clock.now()
    }

    /// The metadata store, for the tables of [`schema`].
    pub(crate) fn meta(&self) -> &dyn MetaStore {
        &*self.inner.meta
    }

    pub(crate) fn inner_gc_grace(&self) -> Duration {
        self.inner.gc_grace
    }

    pub(crate) fn emit(&self, event: crate::events::Event) {
        self.inner.events.emit(event);
    }

    // ---- blobs in repositories ----

    /// Links a blob into `repo` (readable there from now on), announcing it as pushed
    /// (`mounted_from` for a mount) when `announce`; an existing link is the same fact and
    /// stays as it is.
    async fn link(
        &self,
        repo: &RepoName,
        info: &BlobInfo,
        announce: Option<Option<&RepoName>>,
    ) -> Result<()> {
        // Readable through the repository's KEK as it is now (a blob another tenant
        // stored, or a write that began before a rotation), before the link says so.
        let at_rest = self.at_rest_for(repo).await?;
        self.inner.blobs.grant(&info.digest, &at_rest).await?;
        let record = LinkRecord {
            size: info.size,
            linked_at_ms: self.now_millis(),
            events: Vec::new(),
        };
        let key = InRepo::new(repo, &info.digest);
        let Some(mounted_from) = announce else {
            return match LINKS.create(self.meta(), &key, &record).await {
                Err(e) if e.kind() != ErrorKind::Conflict => Err(e),
                _ => Ok(()),
            };
        };
        let event = crate::events::Event::BlobPushed {
            repo: repo.clone(),
            digest: info.digest.clone(),
            size: info.size,
            mounted_from: mounted_from.cloned(),
        };
        self.commit_with_event(&LINKS, &key, |existing| {
            Ok(match existing {
                Some(_) => None,
                None => Some((outbox::Outcome::Put(record.clone()), event.clone())),
            })
        })
        .await
        .map(drop)
    }

    async fn linked(&self, repo: &RepoName, digest: &Digest) -> Result<Option<LinkRecord>> {
        let link = LINKS.get(self.meta(), &InRepo::new(repo, digest)).await?;
        Ok(link.map(|(record, _)| record))
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
    #[tracing::instrument(level = "debug", skip_all, fields(repo = %repo, digest = %digest), err(level = "debug", Display))]
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead> {
        if self.linked(repo, digest).await?.is_none() {
            return Err(Self::blob_unknown(repo, digest));
        }
        let at_rest = self.at_rest_for(repo).await?;
        self.inner
            .blobs
            .read_with(digest, range, &at_rest)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::BlobUnknown {
                    Self::blob_unknown(repo, digest)
                } else {
                    e
                }
            })
    }

    /// Pushes a whole blob in one call (a monolithic upload) from a stream, verified
    /// against `digest`.
    #[tracing::instrument(level = "info", skip_all, fields(repo = %repo, digest = %digest), err(level = "debug", Display))]
    pub async fn push_blob_stream(
        &self,
        repo: &RepoName,
        digest: &Digest,
        mut body: ByteStream,
    ) -> Result<BlobInfo> {
        self.repository_for_push(repo).await?;
        let at_rest = self.at_rest_for(repo).await?;
        let mut writer = self
            .inner
            .blobs
            .writer_with(digest.algorithm(), &at_rest)
            .await?;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => writer.write(chunk).await?,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            }
        }
        self.claim_blob(digest, Some(repo)).await?;
        let info = writer.commit(digest, None).await?;
        self.link(repo, &info, Some(None)).await?;
        Ok(info)
    }

    /// Pushes a whole blob held in memory (a monolithic upload), verified against
    /// `digest`; [`Registry::push_blob_stream`] takes a stream.
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<BlobInfo> {
        self.push_blob_stream(
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
    #[tracing::instrument(level = "info", skip_all, fields(repo = %target, digest = %digest), err(level = "debug", Display))]
    pub async fn mount_blob(
        &self,
        target: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<BlobInfo> {
        self.repository_for_push(target).await?;
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
        // Claimed first: a collector then leaves the bytes alone for its grace period.
        self.claim_blob(digest, Some(target)).await?;
        let info = self.inner.blobs.stat(digest).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::BlobUnknown,
                format!("blob {digest} is not stored"),
            )
        })?;
        self.link(target, &info, Some(from)).await?;
        Ok(info)
    }

    /// Removes a blob's link from `repo`. The bytes stay for garbage collection.
    ///
    /// A blob that a manifest in `repo` still lists is refused
    /// ([`ErrorKind::Unsupported`], naming the manifest): unlinking it would leave that
    /// image unpullable. Delete the manifest first.
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let key = InRepo::new(repo, digest);
        let Some((_, version)) = LINKS.get(self.meta(), &key).await? else {
            return Err(Self::blob_unknown(repo, digest));
        };
        if let Some(manifest) = self.manifest_holding(repo, digest).await? {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "blob {digest} is part of manifest {manifest} in {repo}: delete the manifest first"
                ),
            ));
        }
        // Compare-and-swap: a push that linked it again meanwhile keeps its link.
        match LINKS
            .delete(self.meta(), &key, Expect::Version(version))
            .await
        {
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other,
        }
    }

    /// Digests linked in `repo`, ascending, after `start_after`, at most `limit`.
    pub async fn list_blobs(
        &self,
        repo: &RepoName,
        start_after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>> {
        let after = start_after.map(|d| InRepo::new(repo, d));
        let keys = LINKS
            .list_keys(self.meta(), &Prefix::in_repo(repo), after.as_ref(), limit)
            .await?;
        Ok(keys.into_iter().map(|k| k.item).collect())
    }
}
