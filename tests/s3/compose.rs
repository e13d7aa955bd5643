//! `S3Composer` against the S3 server: staged parts joined by server-side copies, small
//! ones gathered, and single parts larger than a rename can move.
//!
//! Which path published an object shows in its ETag: a multipart upload's ETag ends in
//! `-<parts>`, and a copy (`CopyObject`, the store's rename) keeps its source's. The
//! staged objects here are multipart uploads of 5 MiB parts, so a rename would keep
//! their part count and a compose shows its own.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use wharf::blob::{S3Composer, S3ComposerConfig};
use wharf::testing::blob_store;
use wharf::{Algorithm, BlobStore, BlobStoreExt, Digest, ObjectBlobStore};

use crate::common;

const MIB: usize = 1 << 20;

/// A composer for `bucket` with S3's minimum part and copied parts of at most
/// `max_copy_part` bytes.
fn composer(bucket: &common::S3Bucket, max_copy_part: u64) -> S3Composer {
    let mut config = S3ComposerConfig::from_builder(&bucket.builder, &bucket.prefix).unwrap();
    config.max_copy_part = max_copy_part;
    S3Composer::new(config, bucket.s3.credentials().clone()).unwrap()
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// The ETag's part count of the published raw blob `digest`.
async fn published_parts(bucket: &common::S3Bucket, digest: &Digest) -> Option<usize> {
    let hex = digest.hex();
    let path = Path::from_iter(["blobs", "sha256", &hex[..2], hex]);
    let meta = bucket.store.head(&path).await.unwrap();
    let etag = meta.e_tag.unwrap();
    etag.trim_matches('"').rsplit_once('-')?.1.parse().ok()
}

/// The blob store contract holds with the composer publishing: every checkpointed write
/// of the suite is made of parts under S3's minimum, so each is gathered and sent
/// (stored as received: an encoded write this small keeps its bytes out of the parts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_s3_with_composer() {
    let Some(bucket) = common::s3_bucket() else {
        return;
    };
    let composer = composer(&bucket, wharf::blob::compose::S3_MAX_COPY_PART);
    let store = ObjectBlobStore::new(bucket.store.clone())
        .with_part_size(5 * MIB)
        .with_at_rest(wharf::AtRest::plain())
        .with_composer(Arc::new(composer));
    blob_store::all(&store).await;
}

/// Two small checkpoints then a large one: the small parts and the large one's head are
/// gathered into one 5 MiB part, and the rest is copied in even ranges of at most
/// 12 MiB. One part staged larger than 12 MiB is composed, not renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_composer_gathers_small_parts_and_copies_ranges() {
    let Some(bucket) = common::s3_bucket() else {
        return;
    };
    let store = ObjectBlobStore::new(bucket.store.clone())
        .with_part_size(5 * MIB)
        .with_at_rest(wharf::AtRest::plain())
        .with_composer(Arc::new(composer(&bucket, 12 * MIB as u64)));

    let data = pattern(32 * MIB, 1);
    let digest = Digest::of(Algorithm::Sha256, &data);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(data.slice(..MIB)).await.unwrap();
    let state = writer.checkpoint().await.unwrap();
    let mut writer = store.resume_writer(&state).await.unwrap();
    writer.write(data.slice(MIB..2 * MIB)).await.unwrap();
    writer.checkpoint().await.unwrap();
    writer.write(data.slice(2 * MIB..)).await.unwrap();
    writer
        .commit(&digest, Some(data.len() as u64))
        .await
        .unwrap();
    assert_eq!(store.get_bytes(&digest).await.unwrap(), data);
    // 1 + 1 + 3 MiB sent, then 27 MiB copied as three ranges of 9 MiB.
    assert_eq!(published_parts(&bucket, &digest).await, Some(4));

    let single = pattern(30 * MIB, 2);
    let digest = Digest::of(Algorithm::Sha256, &single);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    for chunk in single.chunks(4 * MIB) {
        writer.write(single.slice_ref(chunk)).await.unwrap();
    }
    writer.commit(&digest, None).await.unwrap();
    assert_eq!(store.get_bytes(&digest).await.unwrap(), single);
    // Staged as six 5 MiB parts; published as three copied ranges of 10 MiB.
    assert_eq!(published_parts(&bucket, &digest).await, Some(3));
    let staging: Vec<_> = store.list_staging().try_collect().await.unwrap();
    assert!(
        staging.is_empty(),
        "the staging areas are gone: {staging:?}"
    );
}

/// A copy source that is not there fails the compose with S3's answer (404; S3 names it
/// `NoSuchKey`, the test server sends no body), and nothing is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_composer_reports_a_missing_part_and_publishes_nothing() {
    let Some(bucket) = common::s3_bucket() else {
        return;
    };
    use wharf::blob::{Composer, StagedObject};
    let composer = composer(&bucket, 12 * MIB as u64);
    let present = Path::from("uploads/present/000000-a");
    bucket
        .store
        .put(&present, pattern(6 * MIB, 3).into())
        .await
        .unwrap();
    let target = Path::from("blobs/composed");
    let err = composer
        .compose(
            &[
                StagedObject {
                    path: present,
                    len: 6 * MIB as u64,
                },
                StagedObject {
                    path: Path::from("uploads/present/000001-missing"),
                    len: 6 * MIB as u64,
                },
            ],
            &target,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), wharf::ErrorKind::Storage);
    assert!(err.to_string().contains("404"), "{err}");
    assert!(matches!(
        bucket.store.head(&target).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

/// Blob bytes are data even when they read as an S3 error document: a gathered part
/// that starts with `<Error>` is fetched and sent like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_composer_takes_blob_bytes_that_look_like_an_error_as_bytes() {
    let Some(bucket) = common::s3_bucket() else {
        return;
    };
    use wharf::blob::{Composer, StagedObject};
    let composer = composer(&bucket, 12 * MIB as u64);
    let head = Bytes::from_static(b"<Error><Code>SlowDown</Code><Message>no</Message></Error>");
    let rest = pattern(6 * MIB, 5);
    let (first, second) = (
        Path::from("uploads/xml/000000-a"),
        Path::from("uploads/xml/000001-b"),
    );
    bucket.store.put(&first, head.clone().into()).await.unwrap();
    bucket
        .store
        .put(&second, rest.clone().into())
        .await
        .unwrap();
    let target = Path::from("blobs/xml-composed");
    let staged = |path: &Path, len: usize| StagedObject {
        path: path.clone(),
        len: len as u64,
    };
    composer
        .compose(
            &[staged(&first, head.len()), staged(&second, rest.len())],
            &target,
        )
        .await
        .unwrap();
    let joined = bucket
        .store
        .get(&target)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(joined.len(), head.len() + rest.len());
    assert_eq!(joined.slice(..head.len()), head);
    assert!(joined.slice(head.len()..) == rest);
}

/// A blob over 5 GiB, S3's limit for one `CopyObject`, publishes as a multipart upload
/// of two copied ranges. Slow (6 GiB through the S3 server): run by
/// `scripts/large-blob-test`, not by `scripts/test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "6 GiB through the S3 server: scripts/large-blob-test runs it"]
async fn six_gib_blob_publishes_on_s3_without_copy_object() {
    let Some(bucket) = common::s3_bucket() else {
        return;
    };
    let composer = composer(&bucket, wharf::blob::compose::S3_MAX_COPY_PART);
    let store = ObjectBlobStore::new(bucket.store.clone())
        .with_at_rest(wharf::AtRest::plain())
        .with_composer(Arc::new(composer));
    let size = 6u64 << 30;
    let chunk = pattern(8 * MIB, 4);
    let mut hasher = wharf::Digester::new(Algorithm::Sha256);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    for _ in 0..size / chunk.len() as u64 {
        hasher.update(&chunk);
        writer.write(chunk.clone()).await.unwrap();
    }
    let digest = hasher.finish();
    writer.commit(&digest, Some(size)).await.unwrap();
    assert_eq!(
        store.stat(&digest).await.unwrap().map(|i| i.size),
        Some(size)
    );
    assert_eq!(published_parts(&bucket, &digest).await, Some(2));
    let tail = store
        .read(&digest, Some(size - 100..size))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(tail, chunk.slice(chunk.len() - 100..));
    store.delete(&digest).await.unwrap();
}

/// Credentials that hold back the `hold_at`-th request (from 1) until never, telling the
/// test when it got there.
#[derive(Debug)]
struct HeldCredentials {
    inner: wharf::blob::compose::S3Credentials,
    calls: std::sync::atomic::AtomicUsize,
    hold_at: usize,
    reached: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for HeldCredentials {
    type Credential = object_store::aws::AwsCredential;
    async fn get_credential(&self) -> object_store::Result<Arc<Self::Credential>> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.hold_at {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        self.inner.get_credential().await
    }
}

/// A compose dropped half way (its request cancelled) aborts the upload it started, so
/// S3 keeps no parts of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compose_dropped_half_way_aborts_its_upload() {
    let Some(bucket) = common::s3_bucket() else {
        return;
    };
    use wharf::blob::{Composer, StagedObject};
    let mut parts = Vec::new();
    for (i, seed) in [(0, 7), (1, 8)] {
        let path = Path::from(format!("uploads/dropped/00000{i}-part"));
        bucket
            .store
            .put(&path, pattern(6 * MIB, seed).into())
            .await
            .unwrap();
        parts.push(StagedObject {
            path,
            len: 6 * MIB as u64,
        });
    }
    let held = Arc::new(HeldCredentials {
        inner: bucket.s3.credentials().clone(),
        calls: Default::default(),
        // The start, then the first part copy: held there.
        hold_at: 2,
        reached: Default::default(),
    });
    let config = S3ComposerConfig::from_builder(&bucket.builder, &bucket.prefix).unwrap();
    let composer = S3Composer::new(config, held.clone()).unwrap();
    let target = Path::from("blobs/dropped");
    let composing = {
        let (composer, parts, target) = (composer.clone(), parts.clone(), target.clone());
        tokio::spawn(async move { composer.compose(&parts, &target).await })
    };
    held.reached.notified().await;
    assert_eq!(
        composer.incomplete_uploads(&target).await.unwrap().len(),
        1,
        "the compose started its upload"
    );
    composing.abort();
    assert!(composing.await.unwrap_err().is_cancelled());
    // The abort is sent from a task of its own: wait for it, within reason.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = composer.incomplete_uploads(&target).await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "uploads left behind: {left:?}");
    assert!(matches!(
        bucket.store.head(&target).await,
        Err(object_store::Error::NotFound { .. })
    ));
}
