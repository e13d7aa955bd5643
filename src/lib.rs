#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

// Layers, top to bottom; a module uses only its own layer and those below it, with no
// cycle inside a layer (`tests/layering.rs` checks it):
//
//   registry (the facade: repositories, uploads, manifests, tags, lifecycle apply, GC),
//   testing (conformance suites)
//   upload, lifecycle (the pure planner), events, access (the pure policy evaluator),
//   scan (layer walking, package inventory, SBOMs, OSV matching),
//   transfer (OCI layouts and archives: formats, sources and sinks; reads tar with scan's reader),
//   remote (a client for other registries; feature `remote`)
//   blob, meta, keys, manifest
//   codec, reference, digest, sigv4
//   util, hex, clock, strict_json
//   error
//
// The public surface follows one rule. The crate root holds what an embedder of
// `Registry` names: the registry and its builder, errors, repository names, tags and
// digests, the plug-in traits (`BlobStore`, `MetaStore`, `KeyProvider`, `EventSink`,
// `MountPolicy`, `Clock`) with their shipped implementations, and the value types the
// registry's methods take and return. A subsystem with vocabulary of its own is a public
// module: `blob`, `meta`, `keys`, `codec` (the at-rest format, for tools and fuzzers),
// `lifecycle` (the policy language, RFC 3339 times and the pure planner, for offline
// tools), `access` (IAM policies and their evaluation, registry tokens), `scan` (the
// `Scanner` trait, the built-in scanner and its parts, for tools and fuzzers), `sigv4` (AWS
// request signatures, both ways) and `testing` (feature). Machinery stays crate-private: the metadata schema, the
// codec's sealing jobs, the key builders.
//
// Naming: a method that takes bytes in memory has the plain name (`push_blob`,
// `append_upload`, `finish_upload`); the form that takes a stream adds `_stream`.

pub mod access;
pub mod blob;
mod clock;
pub mod codec;
mod digest;
mod error;
pub mod events;
mod hex;
pub mod keys;
pub mod lifecycle;
mod manifest;
pub mod meta;
mod reference;
mod registry;
#[cfg(feature = "remote")]
pub mod remote;
pub mod scan;
pub mod sigv4;
mod strict_json;
pub mod transfer;
mod upload;
mod util;

#[cfg(feature = "testing")]
pub mod testing;

pub use crate::blob::{
    AtRest, BlobInfo, BlobRead, BlobStore, BlobStoreExt, BlobWriter, ByteStream, EncodingState,
    Footprint, ObjectBlobStore, RotationProgress, StagedPart, StagingInfo, WriterState,
};
pub use crate::clock::{Clock, SystemClock};
pub use crate::digest::{Algorithm, Digest, Digester, DigesterState};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::events::{DiscardEvents, Event, EventId, EventRecord, EventSink, MemoryEventSink};
pub use crate::lifecycle::{
    CountType, Decision, LifecycleImage, LifecycleInventory, LifecyclePolicy,
    MAX_PATTERN_WILDCARDS, MAX_RULES, MIN_ARCHIVE_DAYS, Outcome, Plan, Reason, Rule, RuleAction,
    StorageClass, TagStatus,
};
pub use crate::manifest::{
    DEFAULT_MAX_MANIFEST_SIZE, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, Descriptor, Manifest,
    ManifestContent, ManifestMediaType, OCI_EMPTY, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST, Platform,
};
pub use crate::meta::{
    Durability, Entry, Expect, MemoryMetaStore, MetaStore, ObjectMetaStore, RedbMetaStore, Version,
    Versioned, Write,
};
pub use crate::reference::{MAX_REPO_NAME_LEN, MAX_TAG_LEN, Reference, RepoName, Tag};
pub use crate::registry::{
    ANNOUNCE_DEADLINE, DeadLetter, DispatchOptions, DispatchReport, Dispatcher, Lease,
    ReplayReport, SinkSubscriber, Subscriber,
};
pub use crate::registry::{
    CallerRegistry, DEFAULT_ACCESS_CACHE_TTL, DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_MAX_OPEN_UPLOADS, DEFAULT_PULL_TIME_RESOLUTION, DEFAULT_SCAN_CONCURRENCY,
    DEFAULT_UPLOAD_EXPIRY, DenyMountByDigest, ImageInfo, ImageScan, LifecycleReport,
    MAX_MUTABILITY_EXCLUSIONS, ManifestInfo, MountPolicy, PushedManifest, Referrers, Registry,
    RegistryBuilder, RematchReport, Repository, RepositorySettings, ResourceAccount, SCAN_CLAIM,
    ScanFindings, StorageStats, StoredManifest, TAG_HISTORY_LEN, TagMove, TagMutability,
};
#[cfg(feature = "remote")]
pub use crate::registry::{
    CopyOptions, CopyReport, DEFAULT_TAG_TTL, PullThroughRule, PullThroughSettings,
    ReplicationRule, Replicator,
};
pub use crate::registry::{DEFAULT_GC_GRACE, GcCursor, GcOptions, GcReport};
pub use crate::registry::{ExportOptions, ExportReport, ImportOptions, ImportReport};
pub use crate::registry::{ReplicationState, ReplicationStatus};
pub use crate::registry::{SMALL_OBJECT_LIMIT, SmallObjects};
pub use crate::scan::{BuiltinScanner, ScanStatus, Scanner};
pub use crate::upload::{ExpiryReport, UploadId, UploadStatus};

/// Re-exported so embedders name the same `object_store` types wharf uses.
pub use object_store;
