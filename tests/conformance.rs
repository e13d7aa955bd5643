//! Every implementation runs its trait's conformance suite: metadata stores in memory, in
//! redb and over object stores; blob stores plain, compressed, and compressed and
//! encrypted (with the at-rest points), in memory, on a local directory and on S3.

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

/// A store that compresses and encrypts by default, under a provider with two KEKs.
fn encoding_store(store: Arc<dyn object_store::ObjectStore>) -> ObjectBlobStore {
    let keys = wharf::keys::MemoryKeyProvider::default();
    keys.generate("kek-a").unwrap();
    keys.generate("kek-b").unwrap();
    ObjectBlobStore::new(store)
        .with_part_size(64 << 10)
        .with_key_provider(Arc::new(keys))
        .with_at_rest(wharf::AtRest::encrypted("kek-a"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_compressed_and_encrypted_in_memory() {
    let store = encoding_store(Arc::new(InMemory::new()));
    blob_store::all(&store).await;
    blob_store::at_rest(&store, "kek-a", "kek-b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_compressed_and_encrypted_on_local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    let store = encoding_store(Arc::new(local));
    blob_store::all(&store).await;
    blob_store::at_rest(&store, "kek-a", "kek-b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_compressed_in_memory() {
    let store = ObjectBlobStore::new(Arc::new(InMemory::new()))
        .with_part_size(64 << 10)
        .with_at_rest(wharf::AtRest::default());
    blob_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    // S3 needs parts of at least 5 MiB.
    blob_store::all(&ObjectBlobStore::new(s3).with_part_size(5 << 20)).await;
}

/// The whole registry over S3: blobs in the bucket and metadata in the bucket through
/// conditional writes, as a multi-replica deployment runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    let meta = ObjectMetaStore::connect(s3.clone(), "meta").await.unwrap();
    let registry = wharf::Registry::builder()
        .blob_store(Arc::new(ObjectBlobStore::new(s3).with_part_size(5 << 20)))
        .meta_store(Arc::new(meta))
        .checkpoint_interval(0)
        .build()
        .unwrap();
    let r = common::repo("s3/app");
    let layer: bytes::Bytes = (0..(6u32 << 20))
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, layer.slice(..(5 << 20) + 1))
        .await
        .unwrap();
    registry
        .finish_upload(
            &r,
            &upload.id,
            &common::sha256(&layer),
            Some(layer.slice((5 << 20) + 1..)),
        )
        .await
        .unwrap();
    let config = bytes::Bytes::from_static(b"{}");
    registry
        .push_blob_bytes(&r, &common::sha256(&config), config.clone())
        .await
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::sha256(&config).to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": common::sha256(&layer).to_string(), "size": layer.len()}],
    }))
    .unwrap();
    registry
        .push_manifest(&r, &common::tag("latest"), manifest.clone().into(), None)
        .await
        .unwrap();
    let pulled = registry
        .get_manifest(&r, &common::tag("latest"))
        .await
        .unwrap();
    assert_eq!(pulled.raw, manifest);
    let read = registry
        .read_blob(&r, &common::sha256(&layer), None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(read == layer, "the layer reads back from S3");
    let tail = registry
        .read_blob(&r, &common::sha256(&layer), Some(100..200))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(tail, layer.slice(100..200));
    assert_eq!(registry.list_tags(&r, 10, None).await.unwrap().len(), 1);
    assert_eq!(
        registry.list_repositories(100, None).await.unwrap(),
        vec![r.clone()]
    );
    registry.delete_manifest(&r, &pulled.digest).await.unwrap();
    assert!(registry.list_tags(&r, 10, None).await.unwrap().is_empty());
}
