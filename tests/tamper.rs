//! Data changed at rest behind wharf's back is reported as corrupt, never served as content.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use wharf::{Algorithm, BlobStore, BlobStoreExt, Digest, ErrorKind, ObjectBlobStore};

fn blob_path(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from(format!("blobs/sha256/{}/{hex}", &hex[..2]))
}

async fn assert_corrupt(blobs: &ObjectBlobStore, digest: &Digest, what: &str) {
    let mut stream = blobs.read(digest, None).await.unwrap().stream;
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    let err = last.expect("the stream yields something").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{what}: {err}");
    assert!(err.message().contains(digest.as_str()), "{what}: {err}");
}

async fn tamper_cases(store: Arc<dyn ObjectStore>) {
    let blobs = ObjectBlobStore::new(store.clone());
    let data: Bytes = (0..3_000_000u32)
        .map(|i| (i % 241) as u8)
        .collect::<Vec<_>>()
        .into();
    let digest = Digest::of(Algorithm::Sha256, &data);
    blobs.put_bytes(&digest, data.clone()).await.unwrap();
    assert_eq!(blobs.get_bytes(&digest).await.unwrap(), data);

    let mut flipped = data.to_vec();
    flipped[1_500_000] ^= 1;
    store
        .put(&blob_path(&digest), flipped.into())
        .await
        .unwrap();
    assert_corrupt(&blobs, &digest, "one bit flipped").await;

    store
        .put(&blob_path(&digest), data.slice(..2_999_000).into())
        .await
        .unwrap();
    assert_corrupt(&blobs, &digest, "truncated").await;

    let mut longer = data.to_vec();
    longer.extend_from_slice(b"appended");
    store.put(&blob_path(&digest), longer.into()).await.unwrap();
    assert_corrupt(&blobs, &digest, "extended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blobs_in_memory_are_corrupt() {
    tamper_cases(Arc::new(object_store::memory::InMemory::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blobs_on_disk_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    tamper_cases(Arc::new(local)).await;
}
