//! Every implementation runs its trait's conformance suite: metadata stores in memory, in
//! redb and over object stores; blob stores plain, compressed, and compressed and
//! encrypted (with the at-rest points), in memory and on a local directory
//! (on S3: `tests/s3.rs`).

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use wharf::testing::{blob_store, meta_store};
use wharf::{
    Durability, Expect, MemoryMetaStore, MetaStore, ObjectBlobStore, ObjectMetaStore,
    RedbMetaStore, Write,
};

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

/// Relaxed batches skip redb's sync, not its commit: the next durable commit carries them,
/// and they are in the file when it is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_relaxed_batches_are_carried_by_the_next_durable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let store = RedbMetaStore::open(&path).unwrap();
    let put = |key: &str| Write::Put {
        key: key.to_owned(),
        value: "v".into(),
        expect: Expect::Absent,
    };
    for key in ["upload/a", "upload/b"] {
        store
            .batch(vec![put(key)], Durability::Relaxed)
            .await
            .unwrap();
    }
    store
        .batch(vec![put("blob/c")], Durability::Durable)
        .await
        .unwrap();
    drop(store);
    let reopened = RedbMetaStore::open(&path).unwrap();
    for key in ["upload/a", "upload/b", "blob/c"] {
        assert!(reopened.get(key).await.unwrap().is_some(), "{key} kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_meta_store_in_memory() {
    let store = ObjectMetaStore::connect(Arc::new(InMemory::new()), "meta")
        .await
        .unwrap();
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

/// A `LocalComposer` that counts the joins it makes.
#[derive(Debug)]
struct CountedComposer {
    inner: wharf::blob::LocalComposer,
    joins: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl wharf::blob::Composer for CountedComposer {
    fn rename_limit(&self) -> u64 {
        self.inner.rename_limit()
    }
    async fn compose(
        &self,
        parts: &[wharf::blob::StagedObject],
        target: &object_store::path::Path,
    ) -> wharf::Result<()> {
        self.joins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.compose(parts, target).await
    }
}

/// Checkpointed writes are joined by the kernel instead of streamed through, in both
/// forms (and the composer is what joined them). Stored as received, and encoded in
/// the smallest frames: the suite's writes are small, and an encoded write keeps its
/// last unfinished frame out of the staged parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_local_filesystem_with_composer() {
    let counted = |dir: &std::path::Path| {
        Arc::new(CountedComposer {
            inner: wharf::blob::LocalComposer::new(dir),
            joins: Default::default(),
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    let composer = counted(dir.path());
    let store = ObjectBlobStore::new(Arc::new(local))
        .with_part_size(64 << 10)
        .with_at_rest(wharf::AtRest::plain())
        .with_composer(composer.clone());
    blob_store::all(&store).await;
    assert!(composer.joins.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let composer = counted(dir.path());
    let store = encoding_store(Arc::new(local))
        .with_frame_size(1 << 16)
        .with_composer(composer.clone());
    blob_store::all(&store).await;
    blob_store::at_rest(&store, "kek-a", "kek-b").await;
    assert!(composer.joins.load(std::sync::atomic::Ordering::Relaxed) > 0);
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
