//! Garbage collection and lifecycle apply interrupted at every storage operation (a crash,
//! or a transient failure): afterwards every image still listed pulls in full, running
//! again finishes the job, and nothing is left behind.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{sha256, tag};
use futures::TryStreamExt;
use object_store::memory::InMemory;
use serde_json::json;
use wharf::testing::{FaultMode, FaultyStore};
use wharf::{Digest, GcOptions, Manifest, Reference, Registry, RepoName};

async fn registry_over(store: Arc<dyn object_store::ObjectStore>) -> Registry {
    common::builder_over(store)
        .await
        .gc_grace(Duration::ZERO)
        .build()
        .unwrap()
}

/// Deterministic (one candidate at a time) and without a grace period; a blob left
/// mid-removal is taken over at once.
fn options() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        concurrency: 1,
        take_over_after: Duration::ZERO,
        ..GcOptions::default()
    }
}

async fn push(registry: &Registry, r: &RepoName, name: &str, layers: &[&[u8]]) -> Digest {
    let config = Bytes::from(format!("{{\"name\":\"{name}\"}}"));
    let mut descriptors = Vec::new();
    for layer in layers {
        let layer = Bytes::copy_from_slice(layer);
        registry
            .push_blob(r, &sha256(&layer), layer.clone())
            .await
            .unwrap();
        descriptors.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(&layer).to_string(), "size": layer.len()}),
        );
    }
    registry
        .push_blob(r, &sha256(&config), config.clone())
        .await
        .unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config).to_string(), "size": config.len()},
        "layers": descriptors});
    registry
        .push_manifest(
            r,
            &tag(name),
            Bytes::from(serde_json::to_vec(&manifest).unwrap()),
            None,
        )
        .await
        .unwrap()
        .digest
}

/// Every listed image pulls in full; returns the blobs they need (manifests included).
async fn pull_all(registry: &Registry, r: &RepoName, n: usize) -> Vec<Digest> {
    let mut needed = Vec::new();
    for image in registry.inventory(r).await.unwrap() {
        let stored = registry
            .get_manifest(r, &Reference::Digest(image.digest.clone()))
            .await
            .unwrap_or_else(|e| panic!("op {n}: {} unreadable: {e}", image.digest));
        needed.push(image.digest.clone());
        let manifest = Manifest::parse(stored.raw, Some(&stored.media_type)).unwrap();
        for blob in manifest.blobs() {
            let bytes = registry
                .read_blob(r, &blob.digest, None)
                .await
                .unwrap_or_else(|e| panic!("op {n}: {} needs {}: {e}", image.digest, blob.digest))
                .bytes()
                .await
                .unwrap();
            assert_eq!(sha256(&bytes), blob.digest, "op {n}");
            needed.push(blob.digest.clone());
        }
    }
    for t in registry.list_tags(r, 100, None).await.unwrap() {
        registry
            .get_manifest(r, &Reference::Tag(t.clone()))
            .await
            .unwrap_or_else(|e| panic!("op {n}: tag {t} dangles: {e}"));
    }
    needed.sort();
    needed.dedup();
    needed
}

async fn stored(registry: &Registry) -> Vec<Digest> {
    let mut all: Vec<Digest> = registry
        .blob_store()
        .list()
        .map_ok(|i| i.digest)
        .try_collect()
        .await
        .unwrap();
    all.sort();
    all
}

/// Interrupts `action` at each of its storage operations in turn; after each, a
/// restarted registry must be consistent, and `action` run again must leave exactly the
/// blobs the surviving images need.
async fn interrupted_at_every_operation<F, Fut>(what: &str, mode: FaultMode, action: F)
where
    F: Fn(Registry) -> Fut,
    Fut: std::future::Future<Output = wharf::Result<()>>,
{
    let r: RepoName = "crash/gc".parse().unwrap();
    for n in 0.. {
        let faulty = FaultyStore::new(Arc::new(InMemory::new()));
        let registry = registry_over(Arc::new(faulty.clone())).await;
        // Two images sharing a layer, one of them deleted; an orphaned upload.
        let gone = push(&registry, &r, "old", &[b"shared layer", b"old layer"]).await;
        push(&registry, &r, "new", &[b"shared layer", b"new layer"]).await;
        registry.delete_manifest(&r, &gone).await.unwrap();
        let orphan = Bytes::from_static(b"never referenced");
        registry
            .push_blob(&r, &sha256(&orphan), orphan)
            .await
            .unwrap();

        faulty.arm(n, mode);
        let outcome = action(registry.clone()).await;
        let fired = faulty.fired();
        faulty.disarm();
        if !fired {
            outcome.unwrap_or_else(|e| panic!("{what}: undisturbed run failed: {e}"));
            assert!(n > 10, "{what} ran through only {n} operations");
            eprintln!("{what} ({mode:?}): interrupted at each of its {n} storage operations");
            return;
        }
        let restarted = registry_over(Arc::new(faulty.clone())).await;
        pull_all(&restarted, &r, n).await;
        action(restarted.clone())
            .await
            .unwrap_or_else(|e| panic!("op {n}: {what} after restart: {e}"));
        let needed = pull_all(&restarted, &r, n).await;
        // A last collection (the action may have been an apply) leaves no garbage.
        restarted.collect_garbage(&options()).await.unwrap();
        assert_eq!(
            stored(&restarted).await,
            needed,
            "op {n}: garbage left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_collection() {
    interrupted_at_every_operation("a collection", FaultMode::Crash, |registry| async move {
        registry.collect_garbage(&options()).await.map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_collection() {
    interrupted_at_every_operation("a collection", FaultMode::FailOnce, |registry| async move {
        registry.collect_garbage(&options()).await.map(|_| ())
    })
    .await;
}

const EXPIRE_OLD: &str = r#"{"rules": [{"rulePriority": 1,
    "selection": {"tagStatus": "tagged", "tagPatternList": ["ne*"], "countType": "sinceImagePushed",
                  "countUnit": "days", "countNumber": 1},
    "action": {"type": "expire"}}]}"#;

async fn apply(registry: Registry) -> wharf::Result<()> {
    let r: RepoName = "crash/gc".parse().unwrap();
    let policy = wharf::LifecyclePolicy::parse(EXPIRE_OLD).unwrap();
    registry
        .apply_lifecycle_with(
            &r,
            &policy,
            SystemTime::now() + Duration::from_secs(3 * 86_400),
        )
        .await?;
    registry.collect_garbage(&options()).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_lifecycle_apply() {
    interrupted_at_every_operation("a lifecycle apply", FaultMode::Crash, apply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_lifecycle_apply() {
    interrupted_at_every_operation("a lifecycle apply", FaultMode::FailOnce, apply).await;
}
