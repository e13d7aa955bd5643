//! `LocalObjects`: lookups and small reads answered on the caller's thread give what
//! `object_store`'s `LocalFileSystem` gives for the same directory, errors included.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use wharf::blob::{INLINE_READ_LIMIT, LocalObjects};

/// The two stores over one directory holding `blobs/ab/abcd` (10 bytes), a larger
/// object `blobs/big` and the directory `blobs/ab`.
async fn both() -> (tempfile::TempDir, LocalObjects, LocalFileSystem) {
    let dir = tempfile::tempdir().unwrap();
    let ours = LocalObjects::new(dir.path()).unwrap();
    let theirs = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    ours.put(&Path::from("blobs/ab/abcd"), b"0123456789".to_vec().into())
        .await
        .unwrap();
    let big: Vec<u8> = (0..3 * INLINE_READ_LIMIT).map(|i| i as u8).collect();
    ours.put(&Path::from("blobs/big"), big.into())
        .await
        .unwrap();
    (dir, ours, theirs)
}

/// What a get answers, in a form both stores' answers can be compared in: metadata,
/// range and bytes, or the error's kind.
async fn answer(store: &dyn ObjectStore, path: &str, options: GetOptions) -> String {
    let head = options.head;
    match store.get_opts(&Path::from(path), options).await {
        Ok(got) => {
            let meta = got.meta.clone();
            let range = got.range.clone();
            let bytes = if head {
                Vec::new()
            } else {
                got.bytes().await.unwrap().to_vec()
            };
            format!(
                "ok {} {} {:?} {:?} {range:?} {bytes:?}",
                meta.location, meta.size, meta.e_tag, meta.last_modified
            )
        }
        Err(object_store::Error::NotFound { .. }) => "not found".into(),
        Err(object_store::Error::NotModified { .. }) => "not modified".into(),
        Err(object_store::Error::Precondition { .. }) => "precondition".into(),
        Err(_) => "error".into(),
    }
}

fn range(range: GetRange) -> GetOptions {
    GetOptions::new().with_range(Some(range))
}

#[tokio::test]
async fn answers_match_the_local_file_system() {
    let (_dir, ours, theirs) = both().await;
    let etag = theirs
        .head(&Path::from("blobs/ab/abcd"))
        .await
        .unwrap()
        .e_tag
        .unwrap();
    let cases: Vec<(&str, GetOptions)> = vec![
        ("blobs/ab/abcd", GetOptions::new().with_head(true)),
        ("blobs/ab/missing", GetOptions::new().with_head(true)),
        ("blobs/nowhere/abcd", GetOptions::new().with_head(true)),
        // A directory is not an object.
        ("blobs/ab", GetOptions::new().with_head(true)),
        ("blobs/ab/abcd", range(GetRange::Bounded(2..6))),
        // A range past the end is cut at the end; one that starts there is an error.
        ("blobs/ab/abcd", range(GetRange::Bounded(4..100))),
        ("blobs/ab/abcd", range(GetRange::Bounded(10..12))),
        ("blobs/ab/abcd", range(GetRange::Suffix(3))),
        ("blobs/ab/missing", range(GetRange::Bounded(0..4))),
        ("blobs/ab", range(GetRange::Bounded(0..4))),
        // Larger ranges go to the blocking pool, like whole reads.
        (
            "blobs/big",
            range(GetRange::Bounded(1..2 * INLINE_READ_LIMIT)),
        ),
        (
            "blobs/big",
            range(GetRange::Bounded(7..7 + INLINE_READ_LIMIT)),
        ),
        ("blobs/ab/abcd", GetOptions::new()),
        (
            "blobs/ab/abcd",
            GetOptions {
                if_none_match: Some(etag.clone()),
                head: true,
                ..Default::default()
            },
        ),
        (
            "blobs/ab/abcd",
            GetOptions {
                if_match: Some("\"another\"".into()),
                range: Some(GetRange::Bounded(0..4)),
                ..Default::default()
            },
        ),
        (
            "blobs/ab/abcd",
            GetOptions {
                if_match: Some(etag),
                range: Some(GetRange::Bounded(0..4)),
                ..Default::default()
            },
        ),
    ];
    for (path, options) in cases {
        let what = format!(
            "{path} {:?} {:?} head {}",
            options.range, options.if_match, options.head
        );
        let ours = answer(&ours, path, options.clone()).await;
        let theirs = answer(&theirs, path, options).await;
        assert_eq!(ours, theirs, "{what}");
    }
}

/// Paths whose parts are not file names as they are (escaped by `LocalFileSystem`)
/// are answered by it, so they name the same files as every other call on them.
#[tokio::test]
async fn paths_that_need_escaping_go_to_the_local_file_system() {
    let (_dir, ours, theirs) = both().await;
    let odd = Path::from_iter(["blobs", "with space", "x%y"]);
    theirs.put(&odd, b"odd".to_vec().into()).await.unwrap();
    assert_eq!(ours.head(&odd).await.unwrap().size, 3);
    assert_eq!(&ours.get_range(&odd, 0..2).await.unwrap()[..], b"od");
}

/// A listing of a directory that does not exist is empty, as `LocalFileSystem` has it;
/// one that exists lists the same objects.
#[tokio::test]
async fn listings_match_the_local_file_system() {
    use futures::TryStreamExt;
    let (_dir, ours, theirs) = both().await;
    for prefix in ["blobs/none", "none/deeper", "blobs/ab", "blobs"] {
        let prefix = Path::from(prefix);
        let mut listed = Vec::new();
        for store in [&ours as &dyn ObjectStore, &theirs] {
            let mut paths: Vec<String> = store
                .list(Some(&prefix))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap();
            paths.sort();
            listed.push(paths);
        }
        assert_eq!(listed[0], listed[1], "{prefix}");
    }
}

/// The store as a blob store's backend: the suite every backend runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_local_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (objects, composer) = wharf::blob::local_objects(dir.path()).unwrap();
    let store = wharf::ObjectBlobStore::new(Arc::clone(&objects))
        .with_part_size(64 << 10)
        .with_composer(composer);
    wharf::testing::blob_store::all(&store).await;
}
