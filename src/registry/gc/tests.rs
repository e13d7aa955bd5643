//! Unit tests of the collector: what a pass reclaims and what it must leave.

use bytes::Bytes;

use super::*;
use crate::digest::Algorithm;
use crate::reference::Reference;

fn sha256(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

/// A registry holding one config blob, and the manifest that would reference it.
async fn setup() -> (Registry, RepoName, Digest, Bytes) {
    let registry = Registry::builder()
        .object_store(std::sync::Arc::new(object_store::memory::InMemory::new()))
        .meta_store(std::sync::Arc::new(crate::MemoryMetaStore::new()))
        .gc_grace(Duration::ZERO)
        .build()
        .unwrap();
    let repo: RepoName = "app".parse().unwrap();
    let config = Bytes::from_static(b"{}");
    let digest = sha256(&config);
    registry
        .push_blob(&repo, &digest, config.clone())
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest.to_string(), "size": config.len()},
        "layers": []
    });
    (
        registry,
        repo,
        digest,
        Bytes::from(serde_json::to_vec(&manifest).unwrap()),
    )
}

async fn set_state(registry: &Registry, digest: &Digest, state: BlobState, touched: u64) {
    let (record, version) = registry.blob_record(digest).await.unwrap().unwrap();
    let next = BlobRecord {
        state,
        touched_at_ms: touched,
        ..record
    };
    BLOBS
        .put(registry.meta(), digest, &next, Expect::Version(version))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_push_rescues_a_condemned_blob_and_the_collector_backs_off() {
    let (registry, repo, config, manifest) = setup().await;
    // A collector condemned it and is about to look for references again.
    set_state(
        &registry,
        &config,
        BlobState::Condemned,
        registry.now_millis(),
    )
    .await;
    let (_, condemned) = registry.blob_record(&config).await.unwrap().unwrap();
    let tag = Reference::Tag("v1".parse().unwrap());
    registry
        .push_manifest(&repo, &tag, manifest, None)
        .await
        .unwrap();
    let (record, version) = registry.blob_record(&config).await.unwrap().unwrap();
    assert_eq!(record.state, BlobState::Live);
    // The collector's commit to the removal now fails.
    assert!(
        registry
            .swap_state(&config, &record, condemned, BlobState::Deleting)
            .await
            .unwrap()
            .is_none()
    );
    assert_ne!(version, condemned);
    let options = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    let report = registry.collect_garbage(&options).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 0, "{report:?}");
    registry.read_blob(&repo, &config, None).await.unwrap();
}

#[tokio::test]
async fn a_push_over_a_blob_being_removed_is_refused_and_stays_invisible() {
    let (registry, repo, config, manifest) = setup().await;
    set_state(
        &registry,
        &config,
        BlobState::Deleting,
        registry.now_millis(),
    )
    .await;
    let tag = Reference::Tag("v1".parse().unwrap());
    let err = registry
        .push_manifest(&repo, &tag, manifest, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestBlobUnknown);
    assert!(err.message().contains("garbage-collected"), "{err}");
    assert_eq!(
        registry
            .stat_manifest(&repo, &tag)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ManifestUnknown
    );
}

#[tokio::test]
async fn a_removal_left_by_a_stopped_collector_is_finished_by_the_next_upload() {
    let (registry, repo, config, _) = setup().await;
    set_state(&registry, &config, BlobState::Deleting, 0).await;
    // Uploading the same bytes again finishes the removal, then stores them anew.
    registry
        .push_blob(&repo, &config, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let (record, _) = registry.blob_record(&config).await.unwrap().unwrap();
    assert_eq!(record.state, BlobState::Live);
    registry.read_blob(&repo, &config, None).await.unwrap();
}
