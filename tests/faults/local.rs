//! The local layout crashed at every storage operation: small blobs and every data-key
//! wrap kept in the metadata store as relaxed writes (`SmallObjects`), larger encrypted
//! blobs as objects of their own. At the crash the metadata store loses every relaxed
//! write no durable one came after, as redb's overlay does. After a restart, every
//! acknowledged push reads back whole, nothing visible is damaged, and the push sent
//! again goes through.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use wharf::blob::Composer;
use wharf::keys::MemoryKeyProvider;
use wharf::testing::{FaultMode, FaultyMeta, FaultyStore};
use wharf::{
    AtRest, DEFAULT_CHECKPOINT_INTERVAL, MemoryMetaStore, ObjectBlobStore, Reference, Registry,
    SmallObjects,
};

/// Bytes per staged part, and the chunked upload's size and where its chunks end: more
/// than an at-rest frame (256 KiB), so a checkpoint stages parts, which publishing joins.
const PART: usize = 64 << 10;
const SENT: usize = 700_000;
const CUT: [usize; 2] = [200_000, 450_000];

use crate::common::images::Image;
use crate::common::{noise, repo, sha256, tag};

/// The stores a local registry is built over, faulty: blobs in memory, or on disk with
/// the kernel joining a checkpointed write's parts (as `open_local` publishes them).
struct Stores {
    store: FaultyStore,
    meta: FaultyMeta,
    composer: Option<Arc<dyn Composer>>,
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    fn in_memory() -> Self {
        Self::over(Arc::new(InMemory::new()), None, None)
    }

    fn on_disk() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (objects, composer) = wharf::blob::local_objects(dir.path()).unwrap();
        Self::over(objects, Some(composer), Some(dir))
    }

    fn over(
        objects: Arc<dyn ObjectStore>,
        composer: Option<Arc<dyn Composer>>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let store = FaultyStore::new(objects);
        let meta = FaultyMeta::sharing(Arc::new(MemoryMetaStore::new()), &store);
        Self {
            store,
            meta,
            composer,
            _dir: dir,
        }
    }

    /// A registry as `Registry::open_local` builds one, but with parts of [`PART`]
    /// bytes, checkpointing uploads every `checkpoint` bytes.
    fn registry(&self, keys: &Arc<MemoryKeyProvider>, checkpoint: u64) -> Registry {
        let meta = Arc::new(self.meta.clone());
        let objects = SmallObjects::new(Arc::new(self.store.clone()), meta.clone());
        let mut blobs = ObjectBlobStore::new(Arc::new(objects.clone()))
            .with_at_rest(AtRest::encrypted("default"))
            .with_key_provider(keys.clone())
            .with_part_size(PART);
        if let Some(composer) = &self.composer {
            blobs = blobs.with_composer(objects.composer(composer.clone()));
        }
        Registry::builder()
            .blob_store(Arc::new(blobs))
            .meta_store(meta)
            .key_provider(keys.clone())
            .checkpoint_interval(checkpoint)
            .build()
            .unwrap()
    }
}

/// A key provider holding a fresh KEK of each name.
fn keys(names: &[&str]) -> Arc<MemoryKeyProvider> {
    let keys = MemoryKeyProvider::default();
    for name in names {
        keys.generate(name).unwrap();
    }
    Arc::new(keys)
}

/// A config and a small layer (kept in the table) and a layer of random bytes too large
/// for it (an object of its own), all encrypted.
fn image() -> Image {
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let small = Bytes::from(noise(1500, 1));
    let large = Bytes::from(noise(40_000, 2));
    Image::of(&config, &[&small, &large])
}

/// Reads every blob of `image` and its manifest back by the tag.
async fn reads_back(registry: &Registry, image: &Image, at: &Reference) -> wharf::Result<()> {
    let r = repo("local/app");
    let manifest = registry.get_manifest(&r, at).await?;
    assert_eq!(manifest.raw, image.manifest(), "the manifest is whole");
    for blob in image.layers.iter().chain([&image.config]) {
        let read = registry.read_blob(&r, &image.digest(blob), None).await?;
        assert_eq!(&read.bytes().await?, blob, "a blob is whole");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_crashed_at_every_operation_keeps_what_it_acknowledged() {
    let keys = keys(&["default"]);
    let image = image();
    let (r, at) = (repo("local/app"), tag("v1"));
    for n in 0.. {
        let stores = Stores::in_memory();
        let Stores { store, meta, .. } = &stores;
        let crashed = stores.registry(&keys, DEFAULT_CHECKPOINT_INTERVAL);
        store.arm(n, FaultMode::Crash);
        let outcome = image.push(&crashed, &r, &at).await;
        if !store.fired() {
            outcome.expect("an undisturbed push succeeds");
            assert!(n > 20, "the push ran through only {n} operations");
            eprintln!("local layout: a push crashed at each of its {n} storage operations");
            return;
        }
        drop(crashed);
        meta.restart_after_crash().await.unwrap();
        let restarted = stores.registry(&keys, DEFAULT_CHECKPOINT_INTERVAL);
        if outcome.is_ok() {
            reads_back(&restarted, &image, &at)
                .await
                .unwrap_or_else(|e| panic!("op {n}: an acknowledged push reads back: {e}"));
            continue;
        }
        image
            .push(&restarted, &r, &at)
            .await
            .unwrap_or_else(|e| panic!("op {n}: the push sent again failed: {e}"));
        reads_back(&restarted, &image, &at)
            .await
            .unwrap_or_else(|e| panic!("op {n}: the push sent again reads back: {e}"));
    }
}

/// A rotation crashed at every operation, over wraps an older build kept as files: each
/// new wrap goes to the table, relaxed, and the old file is deleted after it. After a
/// restart every blob reads, and the rotation run again finishes without the old KEK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_crashed_at_every_operation_loses_no_wrap() {
    let blobs = [Bytes::from(noise(1000, 3)), Bytes::from(noise(40_000, 4))];
    let r = repo("local/app");
    for n in 0.. {
        let keys = keys(&["default", "next"]);
        let stores = Stores::in_memory();
        let Stores { store, meta, .. } = &stores;
        let older = Registry::builder()
            .object_store(Arc::new(store.clone()))
            .meta_store(Arc::new(meta.clone()))
            .key_provider(keys.clone())
            .build()
            .unwrap();
        for blob in &blobs {
            older
                .push_blob(&r, &sha256(blob), blob.clone())
                .await
                .unwrap();
        }
        drop(older);

        let rotating = stores.registry(&keys, DEFAULT_CHECKPOINT_INTERVAL);
        store.arm(n, FaultMode::Crash);
        let outcome = rotating.rotate_kek("default", "next").await;
        if !store.fired() {
            assert_eq!(outcome.unwrap().rewrapped, 2);
            assert!(n > 5, "the rotation ran through only {n} operations");
            eprintln!("local layout: a rotation crashed at each of its {n} storage operations");
            return;
        }
        drop(rotating);
        meta.restart_after_crash().await.unwrap();
        let restarted = stores.registry(&keys, DEFAULT_CHECKPOINT_INTERVAL);
        let reads = |when: &'static str| {
            let restarted = &restarted;
            let r = &r;
            let blobs = &blobs;
            async move {
                for blob in blobs {
                    let read = restarted.read_blob(r, &sha256(blob), None).await;
                    let read = read.unwrap_or_else(|e| panic!("op {n}, {when}: {e}"));
                    assert_eq!(&read.bytes().await.unwrap(), blob, "op {n}, {when}");
                }
            }
        };
        reads("after the crash").await;
        restarted.rotate_kek("default", "next").await.unwrap();
        keys.remove("default");
        reads("after the rotation ran again").await;
    }
}

/// An encrypted upload in chunks (its session records relaxed) crashed at every
/// operation: after a restart the client resumes where the registry says it is, or
/// starts again if the session is gone; the blob reads back whole, and expiry leaves
/// nothing staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_crashed_at_every_operation_resumes_or_starts_again() {
    chunked_upload_crashed_at_every_operation(Stores::in_memory, DEFAULT_CHECKPOINT_INTERVAL).await;
}

/// The same on disk, each chunk checkpointed: the parts are joined by the kernel,
/// outside the object store, once the wraps are durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_on_disk_crashed_at_every_operation_resumes_or_starts_again() {
    chunked_upload_crashed_at_every_operation(Stores::on_disk, 0).await;
}

async fn chunked_upload_crashed_at_every_operation(stores: fn() -> Stores, checkpoint: u64) {
    let data = Bytes::from(noise(SENT, 5));
    let digest = sha256(&data);
    let r = repo("local/app");
    let keys = keys(&["default"]);
    for n in 0.. {
        let stores = stores();
        let Stores { store, meta, .. } = &stores;
        let crashed = stores.registry(&keys, checkpoint);
        store.arm(n, FaultMode::Crash);
        let mut id = None;
        let outcome = async {
            let upload = crashed.start_upload(&r).await?;
            id = Some(upload.id.clone());
            let (first, second) = (data.slice(..CUT[0]), data.slice(CUT[0]..CUT[1]));
            crashed.append_upload(&r, &upload.id, 0, first).await?;
            crashed
                .append_upload(&r, &upload.id, CUT[0] as u64, second)
                .await?;
            let rest = Some(data.slice(CUT[1]..));
            crashed.finish_upload(&r, &upload.id, &digest, rest).await
        }
        .await;
        if !store.fired() {
            outcome.unwrap();
            assert!(n > 10, "the upload ran through only {n} operations");
            eprintln!("local layout: an upload crashed at each of its {n} storage operations");
            return;
        }
        drop(crashed);
        meta.restart_after_crash().await.unwrap();
        let restarted = stores.registry(&keys, checkpoint);
        if outcome.is_err() {
            let status = match &id {
                Some(id) => restarted.upload_status(&r, id).await.ok().map(|s| (id, s)),
                None => None,
            };
            let sent_again = match status {
                Some((id, status)) => {
                    let rest = Some(data.slice(status.offset as usize..));
                    restarted
                        .finish_upload(&r, id, &digest, rest)
                        .await
                        .map(drop)
                }
                None => restarted
                    .push_blob(&r, &digest, data.clone())
                    .await
                    .map(drop),
            };
            sent_again.unwrap_or_else(|e| panic!("op {n}: the upload sent again failed: {e}"));
        }
        let read = restarted.read_blob(&r, &digest, None).await;
        let read = read.unwrap_or_else(|e| panic!("op {n}: the blob reads: {e}"));
        assert_eq!(read.bytes().await.unwrap(), data, "op {n}");
        restarted
            .expire_uploads_older_than(Duration::ZERO)
            .await
            .unwrap();
        let staged: Vec<_> = restarted.blob_store().list_staging().collect().await;
        assert!(staged.is_empty(), "op {n}: staged after expiry: {staged:?}");
    }
}
