//! `SmallObjects`: small published blobs kept in the metadata store answer as the
//! object store they wrap would, cost no file and no sync of their own, and go when
//! garbage collection takes their blob.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use wharf::{
    GcOptions, MemoryMetaStore, MetaStore, RedbMetaStore, Registry, SMALL_OBJECT_LIMIT,
    SmallObjects,
};

use crate::common::images::Image;
use crate::common::{repo, sha256, tag};

/// Paths under `blobs/` (small, then one too large for the table), a wrap's under
/// `keys/`, and one outside both.
const SMALL: &str = "blobs/sha256/ab/abcd";
const LARGE: &str = "blobs/sha256/cd/cdef";
const WRAP: &str = "keys/sha256/ab/abcd/00ff/default";
const ELSEWHERE: &str = "uploads/x/000000-a";

/// What a get answers, comparable across stores: size, range and bytes, or the error's
/// kind (e-tags and times differ by store).
async fn answer(store: &dyn ObjectStore, path: &str, options: GetOptions) -> String {
    let head = options.head;
    match store.get_opts(&Path::from(path), options).await {
        Ok(got) => {
            let (size, range) = (got.meta.size, got.range.clone());
            let bytes = match head {
                true => Vec::new(),
                false => got.bytes().await.unwrap().to_vec(),
            };
            format!("ok {size} {range:?} {bytes:?}")
        }
        Err(object_store::Error::NotFound { .. }) => "not found".into(),
        Err(object_store::Error::AlreadyExists { .. }) => "already exists".into(),
        Err(object_store::Error::NotModified { .. }) => "not modified".into(),
        Err(object_store::Error::Precondition { .. }) => "precondition".into(),
        Err(_) => "error".into(),
    }
}

/// Every path a listing of `prefix` names, sorted.
async fn listed(store: &dyn ObjectStore, prefix: Option<&str>) -> Vec<String> {
    let prefix = prefix.map(Path::from);
    let mut paths: Vec<String> = store
        .list(prefix.as_ref())
        .map_ok(|meta| format!("{} {}", meta.location, meta.size))
        .try_collect()
        .await
        .unwrap();
    paths.sort();
    paths
}

/// The same writes to both stores.
async fn put_both(stores: [&dyn ObjectStore; 2], path: &str, data: &[u8]) {
    for store in stores {
        store
            .put(&Path::from(path), PutPayload::from(data.to_vec()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn answers_match_the_wrapped_store() {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
    let wrapped = Arc::new(InMemory::new());
    let ours = SmallObjects::new(wrapped.clone(), meta.clone());
    let theirs = InMemory::new();
    let stores: [&dyn ObjectStore; 2] = [&ours, &theirs];
    put_both(stores, SMALL, b"0123456789").await;
    put_both(stores, LARGE, &vec![5u8; SMALL_OBJECT_LIMIT + 1]).await;
    put_both(stores, ELSEWHERE, b"staged").await;
    put_both(stores, WRAP, b"wrapped key").await;

    // Only the small published blob and the wrap went to the table.
    let in_table = meta.list_keys("object/", None, 10).await.unwrap();
    assert_eq!(
        in_table,
        [format!("object/{SMALL}"), format!("object/{WRAP}")]
    );
    assert!(wrapped.head(&Path::from(SMALL)).await.is_err());
    assert!(wrapped.head(&Path::from(LARGE)).await.is_ok());

    let cases = [
        ("whole", SMALL, GetOptions::new()),
        ("head", SMALL, GetOptions::new().with_head(true)),
        ("bounded", SMALL, range(GetRange::Bounded(2..5))),
        ("suffix", SMALL, range(GetRange::Suffix(3))),
        ("offset", SMALL, range(GetRange::Offset(7))),
        ("cut bound", SMALL, range(GetRange::Bounded(8..50))),
        ("out of range", SMALL, range(GetRange::Bounded(20..30))),
        ("missing", "blobs/sha256/00/0000", GetOptions::new()),
        ("large", LARGE, range(GetRange::Bounded(0..4))),
        ("elsewhere", ELSEWHERE, GetOptions::new()),
        ("wrap", WRAP, GetOptions::new()),
    ];
    for (what, path, options) in cases {
        let ours = answer(&ours, path, options.clone()).await;
        let theirs = answer(&theirs, path, options).await;
        assert_eq!(ours, theirs, "{what}");
    }
    let ranges = [0..3, 5..10];
    assert_eq!(
        ours.get_ranges(&Path::from(SMALL), &ranges).await.unwrap(),
        theirs
            .get_ranges(&Path::from(SMALL), &ranges)
            .await
            .unwrap()
    );
    let prefixes = [
        None,
        Some(""),
        Some("blobs"),
        Some("blobs/sha256/ab"),
        Some("keys/sha256/ab/abcd"),
        Some("uploads"),
    ];
    for prefix in prefixes {
        assert_eq!(
            listed(&ours, prefix).await,
            listed(&theirs, prefix).await,
            "{prefix:?}"
        );
    }
    let ours_delimited = ours
        .list_with_delimiter(Some(&Path::from("blobs/sha256")))
        .await
        .unwrap();
    let theirs_delimited = theirs
        .list_with_delimiter(Some(&Path::from("blobs/sha256")))
        .await
        .unwrap();
    assert_eq!(
        ours_delimited.common_prefixes,
        theirs_delimited.common_prefixes
    );

    // A create over an object is refused by both; copies, renames and deletes agree.
    let create = PutOptions::from(PutMode::Create);
    for store in stores {
        let refused = store
            .put_opts(
                &Path::from(SMALL),
                PutPayload::from_static(b"x"),
                create.clone(),
            )
            .await;
        assert!(matches!(
            refused,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        // A create too large for the table, a copy and a rename that must not
        // overwrite: each refused over an object the table holds, which stays.
        let large = PutPayload::from(vec![7u8; SMALL_OBJECT_LIMIT + 1]);
        let refusals = [
            store
                .put_opts(&Path::from(SMALL), large, create.clone())
                .await
                .map(drop),
            store
                .copy_if_not_exists(&Path::from(LARGE), &Path::from(SMALL))
                .await,
            store
                .rename_if_not_exists(&Path::from(LARGE), &Path::from(WRAP))
                .await,
        ];
        for (n, refused) in refusals.into_iter().enumerate() {
            assert!(
                matches!(refused, Err(object_store::Error::AlreadyExists { .. })),
                "refusal {n}: {refused:?}"
            );
        }
        store
            .copy(&Path::from(SMALL), &Path::from("blobs/sha256/ef/copy"))
            .await
            .unwrap();
        store
            .rename(&Path::from(SMALL), &Path::from("blobs/sha256/ef/moved"))
            .await
            .unwrap();
        store.delete(&Path::from(LARGE)).await.unwrap();
    }
    for path in [
        SMALL,
        LARGE,
        "blobs/sha256/ef/copy",
        "blobs/sha256/ef/moved",
    ] {
        assert_eq!(
            answer(&ours, path, GetOptions::new()).await,
            answer(&theirs, path, GetOptions::new()).await,
            "{path} after copy, rename and delete"
        );
    }
    assert_eq!(listed(&ours, None).await, listed(&theirs, None).await);
    assert_eq!(
        ours.delete(&Path::from(SMALL)).await.is_ok(),
        theirs.delete(&Path::from(SMALL)).await.is_ok(),
        "a delete of what is gone"
    );
}

fn range(range: GetRange) -> GetOptions {
    GetOptions::new().with_range(Some(range))
}

/// A store over an in-memory one, and its metadata store.
fn over_memory() -> (SmallObjects, Arc<dyn MetaStore>) {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
    (
        SmallObjects::new(Arc::new(InMemory::new()), meta.clone()),
        meta,
    )
}

/// An object written to the wrapped store over one kept in the table replaces it, as a
/// write over a file would.
#[tokio::test]
async fn a_larger_write_replaces_a_small_object() {
    let (ours, meta) = over_memory();
    let path = Path::from(SMALL);
    ours.put(&path, PutPayload::from_static(b"small"))
        .await
        .unwrap();
    let large = vec![1u8; SMALL_OBJECT_LIMIT + 10];
    ours.put(&path, PutPayload::from(large.clone()))
        .await
        .unwrap();
    assert_eq!(ours.get(&path).await.unwrap().bytes().await.unwrap(), large);
    assert_eq!(small_objects(&*meta).await, 0);
}

/// With a limit of 0 the table keeps nothing, not even an empty object.
#[tokio::test]
async fn a_limit_of_zero_keeps_nothing_in_the_table() {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
    let wrapped = Arc::new(InMemory::new());
    let ours = SmallObjects::new(wrapped.clone(), meta.clone()).with_limit(0);
    for (path, bytes) in [(SMALL, &b""[..]), (WRAP, &b"wrapped key"[..])] {
        ours.put(&Path::from(path), PutPayload::from(bytes.to_vec()))
            .await
            .unwrap();
        assert!(wrapped.head(&Path::from(path)).await.is_ok(), "{path}");
    }
    assert_eq!(small_objects(&*meta).await, 0);
}

/// A small write over an object the wrapped store holds goes there too: no place is in
/// both, so a listing names it once.
#[tokio::test]
async fn a_small_write_over_a_larger_object_stays_one_object() {
    let (ours, _) = over_memory();
    let path = Path::from(SMALL);
    ours.put(&path, PutPayload::from(vec![1u8; SMALL_OBJECT_LIMIT + 10]))
        .await
        .unwrap();
    ours.put(&path, PutPayload::from_static(b"small"))
        .await
        .unwrap();
    assert_eq!(
        ours.get(&path).await.unwrap().bytes().await.unwrap(),
        "small"
    );
    assert_eq!(listed(&ours, Some("blobs")).await, [format!("{SMALL} 5")]);
    let delimited = ours
        .list_with_delimiter(Some(&Path::from("blobs/sha256/ab")))
        .await
        .unwrap();
    assert_eq!(delimited.objects.len(), 1);
}

/// A multipart write over an object kept in the table replaces it once complete; an
/// aborted one leaves it.
#[tokio::test]
async fn a_multipart_write_replaces_a_small_object() {
    let (ours, meta) = over_memory();
    let path = Path::from(SMALL);
    ours.put(&path, PutPayload::from_static(b"small"))
        .await
        .unwrap();

    let mut aborted = ours.put_multipart(&path).await.unwrap();
    aborted
        .put_part(PutPayload::from_static(b"never"))
        .await
        .unwrap();
    aborted.abort().await.unwrap();
    assert_eq!(
        ours.get(&path).await.unwrap().bytes().await.unwrap(),
        "small"
    );

    let mut upload = ours.put_multipart(&path).await.unwrap();
    upload
        .put_part(PutPayload::from_static(b"first "))
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from_static(b"second"))
        .await
        .unwrap();
    upload.complete().await.unwrap();
    let got = ours.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, "first second");
    assert_eq!(listed(&ours, Some("blobs")).await, [format!("{SMALL} 12")]);
    assert_eq!(small_objects(&*meta).await, 0);
}

/// The store as a blob store's backend: the suite every backend runs, small blobs and
/// large, encoded and raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_small_objects() {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
    let objects = SmallObjects::new(Arc::new(InMemory::new()), meta);
    let store = wharf::ObjectBlobStore::new(Arc::new(objects)).with_part_size(64 << 10);
    wharf::testing::blob_store::all(&store).await;
}

/// Files under the blob store's directory.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A registry like `Registry::open_local`'s in `dir`, with no grace period, and its
/// database (whose commits are counted).
fn local_registry(dir: &std::path::Path) -> (Registry, Arc<RedbMetaStore>) {
    let meta = Arc::new(RedbMetaStore::open(dir.join("meta.redb")).unwrap());
    let (blobs, composer) = wharf::blob::local_objects(&dir.join("blobs")).unwrap();
    let registry = Registry::builder()
        .object_store(Arc::new(SmallObjects::new(blobs, meta.clone())))
        .composer(composer)
        .meta_store(meta.clone())
        .gc_grace(Duration::ZERO)
        .build()
        .unwrap();
    (registry, meta)
}

/// On local disk a small blob is a row of the metadata database: no file, and its
/// upload still costs the link's one synced commit. A large one is a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_blob_is_kept_without_a_file_or_a_sync_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, meta) = local_registry(dir.path());
    let r = repo("small/app");
    let first = Bytes::from_static(b"creates the repository");
    registry
        .push_blob(&r, &sha256(&first), first)
        .await
        .unwrap();

    let small = Bytes::from(vec![7u8; 4096]);
    let synced = meta.synced_commits();
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .finish_upload(&r, &upload.id, &sha256(&small), Some(small.clone()))
        .await
        .unwrap();
    assert_eq!(
        meta.synced_commits() - synced,
        1,
        "the link's commit, no other"
    );
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    let read = registry.read_blob(&r, &sha256(&small), None).await.unwrap();
    assert_eq!(read.bytes().await.unwrap(), small);

    // Incompressible, so its object is as large as it is.
    let large = Bytes::from(crate::common::noise(4 * SMALL_OBJECT_LIMIT, 2));
    registry
        .push_blob(&r, &sha256(&large), large.clone())
        .await
        .unwrap();
    assert_eq!(files_under(&dir.path().join("blobs")).len(), 1);
    let read = registry.read_blob(&r, &sha256(&large), None).await.unwrap();
    assert_eq!(read.bytes().await.unwrap(), large);
}

/// The table's objects.
async fn small_objects(meta: &dyn MetaStore) -> usize {
    meta.list_keys("object/", None, 100).await.unwrap().len()
}

/// `Registry::open_local` keeps small blobs and their wraps in its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_local_keeps_small_blobs_in_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_local(dir.path()).unwrap();
    let r = repo("small/local");
    let image = Image::seeded("local");
    image.push(&registry, &r, &tag("v1")).await.unwrap();
    assert_eq!(
        small_objects(&**registry.meta_store()).await,
        6,
        "config, layer, manifest, and the wrap of each (open_local encrypts)"
    );
    assert!(files_under(&dir.path().join("blobs")).is_empty());
    assert!(registry.get_manifest(&r, &tag("v1")).await.is_ok());
    for blob in image.layers.iter().chain([&image.config]) {
        let read = registry
            .read_blob(&r, &image.digest(blob), None)
            .await
            .unwrap();
        assert_eq!(&read.bytes().await.unwrap(), blob);
    }
}

/// Garbage collection removes a small blob from the database with the blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_takes_small_blobs_out_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, meta) = local_registry(dir.path());
    let r = repo("small/gc");
    let digest = Image::seeded("collected")
        .push(&registry, &r, &tag("v1"))
        .await
        .unwrap();
    assert_eq!(small_objects(&*meta).await, 3);
    registry.delete_manifest(&r, &digest).await.unwrap();
    let now = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    let report = registry.collect_garbage(&now).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 3, "{report:?}");
    assert_eq!(small_objects(&*meta).await, 0);
}
