//! Data changed at rest behind wharf's back is reported as corrupt, never served as content.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use wharf::keys::MemoryKeyProvider;
use wharf::{Algorithm, AtRest, BlobStore, BlobStoreExt, Digest, ErrorKind, ObjectBlobStore};

fn blob_path(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from(format!("blobs/sha256/{}/{hex}", &hex[..2]))
}

fn encoded_path(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from(format!("blobs/sha256/{}/{hex}.whrf", &hex[..2]))
}

/// The read fails as corrupt, naming the blob: when it opens, or before its stream ends.
async fn assert_corrupt(
    blobs: &ObjectBlobStore,
    digest: &Digest,
    range: Option<std::ops::Range<u64>>,
    what: &str,
) {
    let err = match blobs.read(digest, range).await {
        Err(err) => err,
        Ok(read) => {
            let mut stream = read.stream;
            let mut last = None;
            while let Some(item) = stream.next().await {
                last = Some(item);
                if last.as_ref().is_some_and(Result::is_err) {
                    break;
                }
            }
            last.expect("the stream yields something").unwrap_err()
        }
    };
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{what}: {err}");
    assert!(err.message().contains(digest.as_str()), "{what}: {err}");
}

async fn tamper_cases(store: Arc<dyn ObjectStore>) {
    let blobs = ObjectBlobStore::new(store.clone()).with_at_rest(AtRest::plain());
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
    assert_corrupt(&blobs, &digest, None, "one bit flipped").await;

    store
        .put(&blob_path(&digest), data.slice(..2_999_000).into())
        .await
        .unwrap();
    assert_corrupt(&blobs, &digest, None, "truncated").await;

    let mut longer = data.to_vec();
    longer.extend_from_slice(b"appended");
    store.put(&blob_path(&digest), longer.into()).await.unwrap();
    assert_corrupt(&blobs, &digest, None, "extended").await;
}

/// Encoded blobs: every change to the stored object is caught, whole or by range.
async fn encoded_tamper_cases(store: Arc<dyn ObjectStore>, at_rest: AtRest) {
    let keys = MemoryKeyProvider::default();
    keys.generate("main").unwrap();
    let blobs = ObjectBlobStore::new(store.clone())
        .with_key_provider(Arc::new(keys))
        .with_frame_size(1 << 16)
        .with_at_rest(at_rest);
    let data: Bytes = (0..300_000u32)
        .map(|i| (i % 241) as u8)
        .collect::<Vec<_>>()
        .into();
    let digest = Digest::of(Algorithm::Sha256, &data);
    blobs.put_bytes(&digest, data.clone()).await.unwrap();
    let path = encoded_path(&digest);
    let stored = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(blobs.get_bytes(&digest).await.unwrap(), data);

    // (what, tampered object, whether it touches what every read needs: header or index)
    let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for (at, structural) in [
        (10, true),
        (stored.len() / 2, false),
        (stored.len() - 30, true),
    ] {
        let mut flipped = stored.to_vec();
        flipped[at] ^= 0x10;
        cases.push((format!("bit flipped at {at}"), flipped, structural));
    }
    cases.push((
        "truncated".into(),
        stored[..stored.len() - 100].to_vec(),
        true,
    ));
    cases.push((
        "footer cut off".into(),
        stored[..stored.len() / 2].to_vec(),
        true,
    ));
    let mut longer = stored.to_vec();
    longer.extend_from_slice(b"appended");
    cases.push(("extended".into(), longer, true));
    for (what, bytes, structural) in cases {
        store.put(&path, bytes.into()).await.unwrap();
        assert_corrupt(&blobs, &digest, None, &what).await;
        assert_corrupt(&blobs, &digest, Some(1..299_999), &what).await;
        if structural {
            assert_corrupt(&blobs, &digest, Some(150_000..150_100), &what).await;
        }
    }
    store.put(&path, stored.into()).await.unwrap();
    assert_eq!(blobs.get_bytes(&digest).await.unwrap(), data, "restored");
}

/// Two blobs of 70 000 bytes, x and y, with their digests, and x's encoded object as
/// it was stored before y's was copied over its name.
struct Swapped {
    x: Bytes,
    dx: Digest,
    y: Bytes,
    dy: Digest,
    x_object: Bytes,
}

/// Stores x and y through `blobs`, then copies y's encoded object over x's name.
async fn y_over_x(store: &Arc<dyn ObjectStore>, blobs: &ObjectBlobStore) -> Swapped {
    let (x, y) = (
        Bytes::from(vec![b'x'; 70_000]),
        Bytes::from(vec![b'y'; 70_000]),
    );
    let (dx, dy) = (
        Digest::of(Algorithm::Sha256, &x),
        Digest::of(Algorithm::Sha256, &y),
    );
    blobs.put_bytes(&dx, x.clone()).await.unwrap();
    blobs.put_bytes(&dy, y.clone()).await.unwrap();
    let read = |digest: &Digest| {
        let path = encoded_path(digest);
        async move { store.get(&path).await.unwrap().bytes().await.unwrap() }
    };
    let x_object = read(&dx).await;
    let y_object = read(&dy).await;
    store
        .put(&encoded_path(&dx), y_object.into())
        .await
        .unwrap();
    Swapped {
        x,
        dx,
        y,
        dy,
        x_object,
    }
}

/// A full read of an encrypted blob is not hashed again: its frames vouch for it. So
/// another blob's object copied over its name, with that object's wrapped key copied
/// beside it, must still be refused: the wrap is bound to the other digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_object_copied_over_another_blob_is_corrupt() {
    use futures::TryStreamExt;
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let keys = MemoryKeyProvider::default();
    keys.generate("main").unwrap();
    let blobs = ObjectBlobStore::new(store.clone())
        .with_key_provider(Arc::new(keys))
        .with_at_rest(AtRest::encrypted("main"));
    let Swapped { dx, y, dy, .. } = y_over_x(&store, &blobs).await;
    let (hx, hy) = (dx.hex(), dy.hex());
    let y_keys = Path::from(format!("keys/sha256/{}/{hy}", &hy[..2]));
    let wraps: Vec<_> = store.list(Some(&y_keys)).try_collect().await.unwrap();
    assert!(!wraps.is_empty());
    for wrap in wraps {
        let bytes = store.get(&wrap.location).await.unwrap().bytes().await;
        let moved = wrap
            .location
            .as_ref()
            .replace(&format!("{}/{hy}", &hy[..2]), &format!("{}/{hx}", &hx[..2]));
        store
            .put(&Path::from(moved), bytes.unwrap().into())
            .await
            .unwrap();
    }
    assert_corrupt(&blobs, &dx, None, "y's object and wrap under x's name").await;
    assert_eq!(
        blobs.get_bytes(&dy).await.unwrap(),
        y,
        "y itself still reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blobs_in_memory_are_corrupt() {
    tamper_cases(Arc::new(object_store::memory::InMemory::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_encoded_blobs_are_corrupt() {
    let store = || Arc::new(object_store::memory::InMemory::new());
    encoded_tamper_cases(store(), AtRest::encrypted("main")).await;
    encoded_tamper_cases(store(), AtRest::default()).await;
    encoded_tamper_cases(store(), AtRest::uncompressed()).await;
}

/// A full read of an unencrypted framed blob is not hashed again when the object names
/// it: its checksums vouch for its bytes, and its name for whose bytes they are. So
/// another blob's object copied over its name must be refused, and an object whose
/// name was damaged is hashed, so it still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unencrypted_object_under_another_blobs_name_is_corrupt() {
    for at_rest in [AtRest::uncompressed(), AtRest::default()] {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let blobs = ObjectBlobStore::new(store.clone())
            .with_frame_size(1 << 16)
            .with_at_rest(at_rest.clone());
        let Swapped {
            x,
            dx,
            y,
            dy,
            x_object,
        } = y_over_x(&store, &blobs).await;
        let what = format!("y's object under x's name ({at_rest:?})");
        assert_corrupt(&blobs, &dx, None, &what).await;
        assert_eq!(
            blobs.get_bytes(&dy).await.unwrap(),
            y,
            "y itself still reads"
        );

        // The name sits just before the footer's length and magic.
        let mut damaged = x_object.to_vec();
        let name_at = damaged.len() - 8 - 12;
        damaged[name_at] ^= 1;
        store.put(&encoded_path(&dx), damaged.into()).await.unwrap();
        assert_eq!(blobs.get_bytes(&dx).await.unwrap(), x, "a damaged name");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blobs_on_disk_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    tamper_cases(Arc::new(local)).await;
}

/// A stat of an encoded blob reads its size from the footer once and remembers it; it
/// still looks for the object every time, so bytes lost behind wharf's back stop being
/// reported (and a client uploads them again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stat_still_sees_an_encoded_object_go() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let blobs = ObjectBlobStore::new(store.clone()).with_at_rest(AtRest::default());
    let data = Bytes::from(vec![3u8; 50_000]);
    let digest = Digest::of(Algorithm::Sha256, &data);
    blobs.put_bytes(&digest, data.clone()).await.unwrap();
    for _ in 0..2 {
        let info = blobs.stat(&digest).await.unwrap().unwrap();
        assert_eq!(info.size, 50_000);
    }
    store.delete(&encoded_path(&digest)).await.unwrap();
    assert_eq!(blobs.stat(&digest).await.unwrap(), None);
    blobs.put_bytes(&digest, data).await.unwrap();
    assert_eq!(
        blobs.stat(&digest).await.unwrap().map(|i| i.size),
        Some(50_000)
    );
}
