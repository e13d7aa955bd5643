//! Every implementation runs its trait's conformance suite.

mod common;

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use wharf::testing::{blob_store, meta_store};
use wharf::{MemoryMetaStore, ObjectBlobStore, ObjectMetaStore, RedbMetaStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_meta_store() {
    meta_store::all(&MemoryMetaStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_meta_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbMetaStore::open(dir.path().join("meta.redb")).unwrap();
    meta_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_meta_store_in_memory() {
    let store = ObjectMetaStore::connect(Arc::new(InMemory::new()), "meta")
        .await
        .unwrap();
    meta_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_meta_store_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    let store = ObjectMetaStore::connect(s3, "meta").await.unwrap();
    meta_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_meta_store_refuses_local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let err = ObjectMetaStore::connect(local, "meta").await.unwrap_err();
    assert_eq!(err.kind(), wharf::ErrorKind::Unsupported);
    assert!(err.message().contains("RedbMetaStore"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_in_memory() {
    // Small parts so multipart paths run on small blobs too.
    let store = ObjectBlobStore::new(Arc::new(InMemory::new())).with_part_size(64 << 10);
    blob_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    let store = ObjectBlobStore::new(Arc::new(local)).with_part_size(64 << 10);
    blob_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    // S3 needs parts of at least 5 MiB.
    blob_store::all(&ObjectBlobStore::new(s3).with_part_size(5 << 20)).await;
}
