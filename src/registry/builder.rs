//! [`RegistryBuilder`]: a [`Registry`] assembled from its parts, with defaults for what
//! is left unset and a clear error for a combination that cannot work.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

use super::ResourceAccount;
use super::open_writers::OpenWriters;
use super::{
    DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_MAX_OPEN_UPLOADS, DEFAULT_PULL_TIME_RESOLUTION,
    DEFAULT_UPLOAD_EXPIRY, DenyMountByDigest, Inner, MountPolicy, Registry, at_rest, gc,
    key_identity, pulls,
};
use crate::access::{Authorizer, IamAuthorizer};
use crate::blob::{AtRest, BlobStore, Composer, ObjectBlobStore};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{DiscardEvents, EventSink};
use crate::keys::{DEFAULT_KEK, KeyProvider};
use crate::meta::MetaStore;
use crate::scan::{SbomFormat, Scanner};

/// Builds a [`Registry`] from its parts.
#[derive(Default)]
pub struct RegistryBuilder {
    blobs: Option<Arc<dyn BlobStore>>,
    object_store: Option<Arc<dyn ObjectStore>>,
    composer: Option<Arc<dyn Composer>>,
    archive_object_store: Option<Arc<dyn ObjectStore>>,
    key_provider: Option<Arc<dyn KeyProvider>>,
    at_rest: Option<AtRest>,
    meta: Option<Arc<dyn MetaStore>>,
    mount_policy: Option<Arc<dyn MountPolicy>>,
    upload_expiry: Option<Duration>,
    checkpoint_interval: Option<u64>,
    max_open_uploads: Option<usize>,
    create_on_push: Option<bool>,
    pull_time_resolution: Option<Duration>,
    max_manifest_size: Option<usize>,
    events: Option<Arc<dyn EventSink>>,
    gc_grace: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    access_cache_ttl: Option<Duration>,
    resource_account: Option<ResourceAccount>,
    scanner: Option<Arc<dyn Scanner>>,
    scan_concurrency: Option<usize>,
    sbom_format: Option<SbomFormat>,
    scan_on_push_by_default: bool,
}

impl fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder").finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    /// Keeps blobs in `store` through an [`ObjectBlobStore`], with the builder's
    /// [`key_provider`](Self::key_provider) and [`at_rest`](Self::at_rest) default.
    pub fn object_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.object_store = Some(store);
        self.blobs = None;
        self
    }

    /// Publishes blobs staged in several parts in the [`object_store`](Self::object_store)
    /// with `composer` (see [`ObjectBlobStore::with_composer`]). A store given whole
    /// with [`blob_store`](Self::blob_store) keeps its own.
    pub fn composer(mut self, composer: Arc<dyn Composer>) -> Self {
        self.composer = Some(composer);
        self
    }

    /// Keeps blobs in `blobs`, configured as it is (its own key provider, if any).
    pub fn blob_store(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self.object_store = None;
        self
    }

    /// Wraps and unwraps blobs' data keys with `provider`. With a provider, new blobs
    /// are encrypted by default under its KEK [`DEFAULT_KEK`].
    pub fn key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// Sets how new blobs are stored unless a repository's settings say otherwise
    /// (default: compressed where it helps, and encrypted under [`DEFAULT_KEK`] when
    /// there is a [`key_provider`](Self::key_provider)).
    pub fn at_rest(mut self, at_rest: AtRest) -> Self {
        self.at_rest = Some(at_rest);
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

    /// Sets how many bytes an upload receives between checkpoints (default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`]). Bytes since the last checkpoint live in the
    /// process that received them until it checkpoints or [`Registry::flush_uploads`];
    /// `0` makes every chunk durable before it is acknowledged, at the cost of one staged
    /// part per chunk and a join of the parts when the upload finishes.
    pub fn checkpoint_interval(mut self, bytes: u64) -> Self {
        self.checkpoint_interval = Some(bytes);
        self
    }

    /// Sets how many upload writers stay open in this process between chunks (default
    /// [`DEFAULT_MAX_OPEN_UPLOADS`]); beyond it the least recently used are checkpointed
    /// and closed. Each open writer may hold up to one part of buffered bytes.
    pub fn max_open_uploads(mut self, count: usize) -> Self {
        self.max_open_uploads = Some(count);
        self
    }

    /// Whether a push to a repository that does not exist creates it (default `true`);
    /// `false` requires [`Registry::create_repository`] first, as ECR does.
    pub fn create_repositories_on_push(mut self, create: bool) -> Self {
        self.create_on_push = Some(create);
        self
    }

    /// Sets how finely pull times are recorded (default
    /// [`DEFAULT_PULL_TIME_RESOLUTION`]): each manifest's pull time is written at most once
    /// per this window.
    pub fn pull_time_resolution(mut self, window: Duration) -> Self {
        self.pull_time_resolution = Some(window);
        self
    }

    /// Sets the largest manifest body accepted (default
    /// [`DEFAULT_MAX_MANIFEST_SIZE`](crate::DEFAULT_MAX_MANIFEST_SIZE), 4 MiB).
    pub fn max_manifest_size(mut self, bytes: usize) -> Self {
        self.max_manifest_size = Some(bytes);
        self
    }

    /// Sends lifecycle and garbage-collection [`Event`](crate::Event)s to `sink`
    /// (default: dropped).
    pub fn event_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = Some(sink);
        self
    }

    /// Keeps the blobs of images in the archive storage class in `store` (through an
    /// [`ObjectBlobStore`]): a colder, cheaper store than the main one. Without it,
    /// transitions to archive are refused.
    pub fn archive_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.archive_object_store = Some(store);
        self
    }

    /// Sets the garbage-collection grace period (default
    /// [`DEFAULT_GC_GRACE`](crate::DEFAULT_GC_GRACE), an hour): no collection removes a
    /// blob uploaded, or last held, more recently, and a manifest push that takes longer
    /// than half of it between recording its blobs and its commit point fails (retryably)
    /// instead of committing over blobs a collection may have judged. Every process on
    /// the same stores must use the same value. Zero turns the protection of in-flight
    /// pushes off: only for stores where nothing is pushed while a collection runs.
    pub fn gc_grace(mut self, grace: Duration) -> Self {
        self.gc_grace = Some(grace);
        self
    }

    /// Reads the time of day from `clock` (default: [`SystemClock`]): every push, pull,
    /// link and tag-move time, upload expiry, garbage-collection grace and archive time.
    /// Tests move a [`ManualClock`](crate::testing::ManualClock) instead of sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// How long what authorization reads of a repository (settings, policy) is kept
    /// (default [`DEFAULT_ACCESS_CACHE_TTL`](super::DEFAULT_ACCESS_CACHE_TTL); zero keeps nothing). Changes made through
    /// this registry apply at once; changes by another process sharing the store apply
    /// within this time.
    pub fn access_cache_ttl(mut self, ttl: Duration) -> Self {
        self.access_cache_ttl = Some(ttl);
        self
    }

    /// Decides requests made through [`Registry::as_caller`] with `authorizer` (default:
    /// [`IamAuthorizer`], IAM's rules).
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// The region and account in the registry's repository ARNs (default `us-east-1`,
    /// `000000000000`), which policies name.
    pub fn resource_account(mut self, account: ResourceAccount) -> Self {
        self.resource_account = Some(account);
        self
    }

    /// Scans images with `scanner`: after a push to a repository with `scan_on_push`,
    /// and on demand ([`Registry::scan_image`], [`Registry::start_scan`]). Without one,
    /// scans are refused as unsupported.
    pub fn scanner(mut self, scanner: Arc<dyn Scanner>) -> Self {
        self.scanner = Some(scanner);
        self
    }

    /// How many scans run at once in this process (default
    /// [`DEFAULT_SCAN_CONCURRENCY`](super::DEFAULT_SCAN_CONCURRENCY)); more wait.
    pub fn scan_concurrency(mut self, scans: usize) -> Self {
        self.scan_concurrency = Some(scans);
        self
    }

    /// Whether repositories created without settings (by a first push, or by a frontend
    /// that asks [`Registry::scan_on_push_by_default`]) scan on push. Default `false`, as
    /// in ECR.
    pub fn scan_on_push_by_default(mut self, on: bool) -> Self {
        self.scan_on_push_by_default = on;
        self
    }

    /// The format of the SBOMs scans store (default CycloneDX).
    pub fn sbom_format(mut self, format: SbomFormat) -> Self {
        self.sbom_format = Some(format);
        self
    }

    /// Builds the registry; both stores must be set.
    pub fn build(self) -> Result<Registry> {
        let missing = |what: &str| {
            Error::new(
                ErrorKind::Configuration,
                format!("registry needs a {what}: set it on the builder"),
            )
        };
        let at_rest = self.at_rest.unwrap_or_else(|| match self.key_provider {
            Some(_) => AtRest::encrypted(DEFAULT_KEK),
            None => AtRest::default(),
        });
        let over = |store: Arc<dyn ObjectStore>, composer: Option<Arc<dyn Composer>>| {
            let mut blobs = ObjectBlobStore::new(store).with_at_rest(at_rest.clone());
            if let Some(provider) = &self.key_provider {
                blobs = blobs.with_key_provider(provider.clone());
            }
            if let Some(composer) = composer {
                blobs = blobs.with_composer(composer);
            }
            Arc::new(blobs) as Arc<dyn BlobStore>
        };
        if at_rest.encryption.is_some() && self.key_provider.is_none() && self.blobs.is_none() {
            return Err(Error::new(
                ErrorKind::Configuration,
                "registry encrypts blobs by its at-rest setting but has no key provider: set one on the builder",
            ));
        }
        let blobs = match (self.blobs, self.object_store) {
            (Some(blobs), _) => blobs,
            (None, Some(store)) => over(store, self.composer.clone()),
            (None, None) => return Err(missing("blob store")),
        };
        let archive = self.archive_object_store.map(|store| over(store, None));
        Ok(Registry {
            inner: Arc::new(Inner {
                blobs,
                meta: self.meta.ok_or_else(|| missing("metadata store"))?,
                mount_policy: self
                    .mount_policy
                    .unwrap_or_else(|| Arc::new(DenyMountByDigest)),
                upload_expiry: self.upload_expiry.unwrap_or(DEFAULT_UPLOAD_EXPIRY),
                checkpoint_interval: self
                    .checkpoint_interval
                    .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL),
                max_open_uploads: self.max_open_uploads.unwrap_or(DEFAULT_MAX_OPEN_UPLOADS),
                open_writers: OpenWriters::default(),
                create_on_push: self.create_on_push.unwrap_or(true),
                pull_time_resolution: self
                    .pull_time_resolution
                    .unwrap_or(DEFAULT_PULL_TIME_RESOLUTION),
                pulls: pulls::PullRecorder::default(),
                max_manifest_size: self
                    .max_manifest_size
                    .unwrap_or(crate::manifest::DEFAULT_MAX_MANIFEST_SIZE),
                events: self.events.unwrap_or_else(|| Arc::new(DiscardEvents)),
                outbox_next: std::sync::atomic::AtomicU64::new(0),
                live_tags_only: std::sync::atomic::AtomicBool::new(false),
                referrer_lists_only: std::sync::atomic::AtomicBool::new(false),
                manifests: super::manifest_cache::ManifestCache::new(
                    super::manifest_cache::DEFAULT_MANIFEST_CACHE_BYTES,
                ),
                outbox_wake: tokio::sync::Notify::new(),
                #[cfg(feature = "remote")]
                pull_through: Default::default(),
                scans: super::scans::ScanRunner::new(
                    self.scanner,
                    self.scan_concurrency
                        .unwrap_or(super::DEFAULT_SCAN_CONCURRENCY),
                    self.sbom_format.unwrap_or_default(),
                    self.scan_on_push_by_default,
                ),
                archive,
                gc_grace: self.gc_grace.unwrap_or(gc::DEFAULT_GC_GRACE),
                at_rest,
                kek_redirects: at_rest::KekRedirects::default(),
                keys: self.key_provider,
                checked_keks: key_identity::CheckedKeks::default(),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                authorizer: self.authorizer.unwrap_or_else(|| Arc::new(IamAuthorizer)),
                access_cache: super::access_cache::AccessCache::new(
                    self.access_cache_ttl
                        .unwrap_or(super::DEFAULT_ACCESS_CACHE_TTL),
                ),
                resource_account: self.resource_account.unwrap_or_default(),
            }),
        })
    }
}
