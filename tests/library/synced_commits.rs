//! What a write costs in metadata commits on redb, and how many of them are synced to
//! disk (an `fdatasync` each): counted, so a change that adds a sync shows here.

use std::sync::Arc;

use bytes::Bytes;
use wharf::{RedbMetaStore, Registry};

use crate::common::{repo, sha256};

/// A registry on local disk in `dir`, and its redb store (whose commits are counted).
fn registry(dir: &std::path::Path) -> (Registry, Arc<RedbMetaStore>) {
    let meta = Arc::new(RedbMetaStore::open(dir.join("meta.redb")).unwrap());
    let blobs = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    let registry = Registry::builder()
        .object_store(Arc::new(blobs))
        .meta_store(meta.clone())
        .build()
        .unwrap();
    (registry, meta)
}

/// (commits, synced commits) that `work` made.
async fn counted<F: std::future::Future<Output = ()>>(meta: &RedbMetaStore, work: F) -> (u64, u64) {
    let before = (meta.commits(), meta.synced_commits());
    work.await;
    (meta.commits() - before.0, meta.synced_commits() - before.1)
}

/// A new blob pushed whole: its claim is relaxed, held in memory until the link's
/// commit writes it: one commit, synced. Through an upload session: the session's start
/// and end are relaxed too, and held the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_blob_costs_one_synced_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, meta) = registry(dir.path());
    let r = repo("sync/app");
    let first = Bytes::from_static(b"creates the repository");
    registry
        .push_blob(&r, &sha256(&first), first)
        .await
        .unwrap();

    let blob = Bytes::from(vec![7u8; 4096]);
    let pushed = counted(&meta, async {
        registry
            .push_blob(&r, &sha256(&blob), blob.clone())
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        pushed,
        (1, 1),
        "push_blob: the link's commit, with the claim"
    );

    let blob = Bytes::from(vec![8u8; 4096]);
    let uploaded = counted(&meta, async {
        let upload = registry.start_upload(&r).await.unwrap();
        registry
            .finish_upload(&r, &upload.id, &sha256(&blob), Some(blob.clone()))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(uploaded, (1, 1), "one commit for a session upload");
    assert!(registry.read_blob(&r, &sha256(&blob), None).await.is_ok());

    // Pushed again: the link exists and writes nothing, so the claim of the existing
    // record (its fresh touch time, or a rescue from a collector) is synced itself.
    let again = counted(&meta, async {
        registry
            .push_blob(&r, &sha256(&blob), blob.clone())
            .await
            .unwrap();
    })
    .await;
    assert!(
        again.1 >= 1,
        "a claim of an existing record is synced: {again:?}"
    );
}

/// A manifest push's one sync is its commit point (the record, or the tag's move with
/// it): the claim of its bytes and the holds on its blobs before it are relaxed, carried
/// to disk by that commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_push_costs_one_synced_commit() {
    use crate::common::images::Image;
    let dir = tempfile::tempdir().unwrap();
    let (registry, meta) = registry(dir.path());
    let r = repo("sync/images");
    let by_tag = Image::seeded("by tag");
    let by_digest = Image::seeded("by digest");
    let by_digest_ref = wharf::Reference::Digest(sha256(&by_digest.manifest()));
    for (image, reference) in [
        (&by_tag, crate::common::tag("v1")),
        (&by_digest, by_digest_ref),
    ] {
        for blob in image.layers.iter().chain([&image.config]) {
            registry
                .push_blob(&r, &image.digest(blob), blob.clone())
                .await
                .unwrap();
        }
        let pushed = counted(&meta, async {
            registry
                .push_manifest(&r, &reference, image.manifest(), None)
                .await
                .unwrap();
        })
        .await;
        assert_eq!(pushed.1, 1, "{reference}: one sync ({pushed:?})");
        assert!(registry.get_manifest(&r, &reference).await.is_ok());
    }
}
