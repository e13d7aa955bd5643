//! Repositories, links, mounts and upload sessions through the `Registry` facade.

use crate::common;

use common::{repo, sha256};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use wharf::{Algorithm, Digest, ErrorKind, MountPolicy, Registry, RepoName};

async fn assert_upload_gone(registry: &Registry, r: &RepoName, id: &wharf::UploadId) {
    let err = registry.upload_status(r, id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUploadUnknown, "{err}");
}

async fn assert_no_staging(registry: &Registry) {
    let staging: Vec<_> = registry.blob_store().list_staging().collect().await;
    assert!(staging.is_empty(), "staged parts left: {staging:?}");
}

/// A registry on `dir` (local blobs, redb metadata) with the given checkpoint interval.
fn local_registry(dir: &std::path::Path, checkpoint_interval: Option<u64>) -> Registry {
    let blobs = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    let meta = wharf::RedbMetaStore::open(dir.join("m.redb")).unwrap();
    let builder = Registry::builder()
        .object_store(Arc::new(blobs))
        .meta_store(Arc::new(meta));
    match checkpoint_interval {
        Some(bytes) => builder.checkpoint_interval(bytes),
        None => builder,
    }
    .build()
    .unwrap()
}

#[tokio::test]
async fn blobs_are_visible_only_where_linked() {
    let registry = Registry::in_memory();
    let (a, b) = (repo("team/a"), repo("team/b"));
    let data = Bytes::from_static(b"config");
    let digest = sha256(&data);
    registry.push_blob(&a, &digest, data.clone()).await.unwrap();

    assert_eq!(
        registry
            .read_blob(&a, &digest, None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    let err = registry.read_blob(&b, &digest, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUnknown);
    assert!(
        err.message().contains("team/b") && err.message().contains(digest.as_str()),
        "{err}"
    );
    assert_eq!(
        registry.stat_blob(&b, &digest).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown
    );
    // A repository whose name extends another's sees nothing of it.
    let err = registry
        .stat_blob(&repo("team/a/sub"), &digest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUnknown);

    registry.unlink_blob(&a, &digest).await.unwrap();
    assert_eq!(
        registry.stat_blob(&a, &digest).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown
    );
    // The bytes stay for garbage collection.
    assert!(registry.blob_store().stat(&digest).await.unwrap().is_some());
}

#[tokio::test]
async fn pushes_with_a_wrong_digest_leave_nothing() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let claimed = sha256(b"what the client claimed");
    let err = registry
        .push_blob(&r, &claimed, Bytes::from_static(b"what it sent"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestInvalid);
    assert!(err.message().contains(claimed.as_str()), "{err}");
    assert_eq!(
        registry.stat_blob(&r, &claimed).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown
    );
    assert!(registry.list_blobs(&r, None, 10).await.unwrap().is_empty());
}

#[derive(Debug)]
struct AllowAll;
impl MountPolicy for AllowAll {
    fn allow_mount_by_digest(&self, _: &RepoName, _: &Digest) -> bool {
        true
    }
}

#[tokio::test]
async fn mounts_need_a_readable_source_or_a_policy() {
    let registry = Registry::in_memory();
    let (src, dst, elsewhere) = (repo("src"), repo("dst"), repo("elsewhere"));
    let data = Bytes::from_static(b"shared layer");
    let digest = sha256(&data);
    registry
        .push_blob(&src, &digest, data.clone())
        .await
        .unwrap();

    let err = registry
        .mount_blob(&dst, &digest, Some(&elsewhere))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::BlobUnknown,
        "source without the blob"
    );
    let err = registry.mount_blob(&dst, &digest, None).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "digest alone is refused by default"
    );
    assert_eq!(
        registry.stat_blob(&dst, &digest).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown
    );

    let info = registry
        .mount_blob(&dst, &digest, Some(&src))
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(
        registry
            .read_blob(&dst, &digest, None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    let stored: Vec<_> = registry.blob_store().list().collect().await;
    assert_eq!(stored.len(), 1, "mounting does not copy");

    let open = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
        .mount_policy(Arc::new(AllowAll))
        .build()
        .unwrap();
    open.push_blob(&src, &digest, data).await.unwrap();
    open.mount_blob(&dst, &digest, None)
        .await
        .expect("policy allows mounting by digest");
    let missing = sha256(b"never pushed");
    assert_eq!(
        open.mount_blob(&dst, &missing, None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::BlobUnknown
    );
}

#[tokio::test]
async fn chunked_uploads_check_offsets_and_stay_usable() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let data = Bytes::from(vec![42u8; 10_000]);
    let digest = sha256(&data);
    let upload = registry.start_upload(&r).await.unwrap();
    assert_eq!(upload.offset, 0);

    let status = registry
        .append_upload(&r, &upload.id, 0, data.slice(..4000))
        .await
        .unwrap();
    assert_eq!(status.offset, 4000);
    for wrong in [0, 3999, 4001, 9000] {
        let err = registry
            .append_upload(&r, &upload.id, wrong, data.slice(4000..))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RangeInvalid, "offset {wrong}");
        assert_eq!(err.current_offset(), Some(4000));
    }
    assert_eq!(
        registry.upload_status(&r, &upload.id).await.unwrap().offset,
        4000
    );
    // Another repository cannot see or touch the session.
    let err = registry
        .upload_status(&repo("other"), &upload.id)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUploadUnknown);

    registry
        .append_upload(&r, &upload.id, 4000, data.slice(4000..7000))
        .await
        .unwrap();
    let info = registry
        .finish_upload(&r, &upload.id, &digest, Some(data.slice(7000..)))
        .await
        .unwrap();
    assert_eq!(info.size, 10_000);
    assert_eq!(
        registry
            .read_blob(&r, &digest, None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    assert_upload_gone(&registry, &r, &upload.id).await;
    assert_no_staging(&registry).await;
}

#[tokio::test]
async fn zero_length_blobs_upload() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let empty = sha256(b"");
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .finish_upload(&r, &upload.id, &empty, None)
        .await
        .unwrap();
    assert_eq!(registry.stat_blob(&r, &empty).await.unwrap().size, 0);
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, Bytes::new())
        .await
        .unwrap();
    registry
        .finish_upload(&r, &upload.id, &empty, Some(Bytes::new()))
        .await
        .unwrap();
    registry.push_blob(&r, &empty, Bytes::new()).await.unwrap();
}

#[tokio::test]
async fn a_wrong_digest_at_finish_ends_the_session_and_leaves_nothing() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    let wrong = sha256(b"abd");
    let err = registry
        .finish_upload(&r, &upload.id, &wrong, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestInvalid);
    assert_upload_gone(&registry, &r, &upload.id).await;
    assert_no_staging(&registry).await;
    assert!(
        registry
            .blob_store()
            .list()
            .collect::<Vec<_>>()
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn cancel_removes_the_session_and_its_parts() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    registry.cancel_upload(&r, &upload.id).await.unwrap();
    assert_upload_gone(&registry, &r, &upload.id).await;
    assert_no_staging(&registry).await;
    let err = registry
        .append_upload(&r, &upload.id, 3, Bytes::from_static(b"d"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUploadUnknown);
}

/// The client's view after a restart: resume from what the registry reports.
async fn resume_and_finish(registry: &Registry, r: &RepoName, id: &wharf::UploadId, data: &Bytes) {
    let at = registry.upload_status(r, id).await.unwrap().offset as usize;
    let err = registry
        .append_upload(r, id, at as u64 + 1, data.slice(at + 1..))
        .await
        .unwrap_err();
    assert_eq!(
        err.current_offset(),
        Some(at as u64),
        "a wrong offset is told where to resume"
    );
    registry
        .finish_upload(r, id, &sha256(data), Some(data.slice(at..)))
        .await
        .unwrap();
    let got = registry.read_blob(r, &sha256(data), None).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), *data);
}

fn pattern(len: u32) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
}

#[tokio::test]
async fn flushed_sessions_resume_in_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("app");
    let data = pattern(300_000);
    let id = {
        let first = Registry::open_local(dir.path()).unwrap();
        let upload = first.start_upload(&r).await.unwrap();
        first
            .append_upload(&r, &upload.id, 0, data.slice(..100_000))
            .await
            .unwrap();
        first
            .append_upload(&r, &upload.id, 100_000, data.slice(100_000..150_000))
            .await
            .unwrap();
        // A graceful shutdown makes what arrived durable.
        first.flush_uploads().await.unwrap();
        upload.id
    };
    let second = Registry::open_local(dir.path()).unwrap();
    assert_eq!(second.upload_status(&r, &id).await.unwrap().offset, 150_000);
    resume_and_finish(&second, &r, &id, &data).await;
}

#[tokio::test]
async fn a_crash_loses_only_bytes_after_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("app");
    let data = pattern(300_000);
    let id = {
        let first = local_registry(dir.path(), Some(64 * 1024));
        let upload = first.start_upload(&r).await.unwrap();
        first
            .append_upload(&r, &upload.id, 0, data.slice(..100_000))
            .await
            .unwrap();
        first
            .append_upload(&r, &upload.id, 100_000, data.slice(100_000..130_000))
            .await
            .unwrap();
        assert_eq!(
            first.upload_status(&r, &upload.id).await.unwrap().offset,
            130_000
        );
        upload.id
        // Dropped without flushing: the crash.
    };
    let second = local_registry(dir.path(), None);
    // The first append crossed the 64 KiB checkpoint interval; the second did not.
    assert_eq!(second.upload_status(&r, &id).await.unwrap().offset, 100_000);
    resume_and_finish(&second, &r, &id, &data).await;
}

#[tokio::test]
async fn per_chunk_durability_when_the_interval_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("app");
    let data = pattern(300_000);
    let build = || local_registry(dir.path(), Some(0));
    let id = {
        let first = build();
        let upload = first.start_upload(&r).await.unwrap();
        first
            .append_upload(&r, &upload.id, 0, data.slice(..1000))
            .await
            .unwrap();
        first
            .append_upload(&r, &upload.id, 1000, data.slice(1000..2000))
            .await
            .unwrap();
        upload.id
    };
    let second = build();
    assert_eq!(second.upload_status(&r, &id).await.unwrap().offset, 2000);
    resume_and_finish(&second, &r, &id, &data).await;
}

#[tokio::test]
async fn replicas_hand_a_session_over_through_checkpoints() {
    // Two registries over the same stores, as two replicas behind a load balancer.
    let blobs: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let meta: Arc<dyn wharf::MetaStore> = Arc::new(wharf::MemoryMetaStore::new());
    let replica = || {
        Registry::builder()
            .object_store(blobs.clone())
            .meta_store(meta.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    let r = repo("app");
    let data = pattern(50_000);
    let upload = a.start_upload(&r).await.unwrap();
    a.append_upload(&r, &upload.id, 0, data.slice(..10_000))
        .await
        .unwrap();
    // B has not seen A's bytes: it reports the last checkpoint and refuses offset 10 000.
    assert_eq!(b.upload_status(&r, &upload.id).await.unwrap().offset, 0);
    let err = b
        .append_upload(&r, &upload.id, 10_000, data.slice(10_000..))
        .await
        .unwrap_err();
    assert_eq!(err.current_offset(), Some(0));
    // After A flushes, B continues where A was.
    a.flush_uploads().await.unwrap();
    assert_eq!(
        b.upload_status(&r, &upload.id).await.unwrap().offset,
        10_000
    );
    b.append_upload(&r, &upload.id, 10_000, data.slice(10_000..20_000))
        .await
        .unwrap();
    b.flush_uploads().await.unwrap();
    // A's view is stale now; it re-reads the checkpoint and finishes correctly.
    a.finish_upload(&r, &upload.id, &sha256(&data), Some(data.slice(20_000..)))
        .await
        .unwrap();
    assert_eq!(
        a.read_blob(&r, &sha256(&data), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
}

#[tokio::test]
async fn open_writers_beyond_the_bound_are_checkpointed() {
    let blobs: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let meta: Arc<dyn wharf::MetaStore> = Arc::new(wharf::MemoryMetaStore::new());
    let registry = Registry::builder()
        .object_store(blobs.clone())
        .meta_store(meta.clone())
        .max_open_uploads(2)
        .build()
        .unwrap();
    let r = repo("app");
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let upload = registry.start_upload(&r).await.unwrap();
        registry
            .append_upload(&r, &upload.id, 0, Bytes::from(vec![i; 100]))
            .await
            .unwrap();
        ids.push(upload.id);
    }
    // Another process sees the evicted (oldest) sessions at their full length.
    let other = Registry::builder()
        .object_store(blobs)
        .meta_store(meta)
        .build()
        .unwrap();
    let durable = futures::future::join_all(ids.iter().map(|id| other.upload_status(&r, id))).await;
    let offsets: Vec<u64> = durable.into_iter().map(|s| s.unwrap().offset).collect();
    assert_eq!(
        offsets.iter().filter(|&&o| o == 100).count(),
        3,
        "{offsets:?}"
    );
    for (i, id) in ids.iter().enumerate() {
        registry
            .finish_upload(&r, id, &sha256(&[i as u8; 100]), None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn racing_appends_at_one_offset_have_one_winner() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let upload = registry.start_upload(&r).await.unwrap();
    let chunks: Vec<Bytes> = (0..8u8).map(|i| Bytes::from(vec![i; 1000])).collect();
    let racing = chunks
        .iter()
        .map(|c| registry.append_upload(&r, &upload.id, 0, c.clone()));
    let results = futures::future::join_all(racing).await;
    let winners: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(e) = result {
            assert_eq!(e.kind(), ErrorKind::RangeInvalid);
            assert_eq!(e.current_offset(), Some(1000));
        }
    }
    let digest = sha256(&chunks[winners[0]]);
    registry
        .finish_upload(&r, &upload.id, &digest, None)
        .await
        .expect("the winner's bytes are the blob");
}

#[tokio::test]
async fn a_failing_body_keeps_what_arrived() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let upload = registry.start_upload(&r).await.unwrap();
    let body = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"hello ")),
        Err(wharf::Error::new(ErrorKind::Storage, "client went away")),
    ])
    .boxed();
    let err = registry
        .append_upload_stream(&r, &upload.id, 0, body)
        .await
        .unwrap_err();
    assert!(err.message().contains("client went away"));
    assert_eq!(
        registry.upload_status(&r, &upload.id).await.unwrap().offset,
        6
    );
    registry
        .append_upload(&r, &upload.id, 6, Bytes::from_static(b"world"))
        .await
        .unwrap();
    registry
        .finish_upload(&r, &upload.id, &sha256(b"hello world"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn idle_sessions_and_orphaned_staging_expire() {
    let clock = Arc::new(wharf::testing::ManualClock::starting_now());
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
        .clock(clock.clone())
        .build()
        .unwrap();
    let r = repo("app");
    let idle = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &idle.id, 0, Bytes::from_static(b"abc"))
        .await
        .unwrap();
    // A staging area no session owns, as a crash between staging and recording leaves.
    let mut orphan = registry
        .blob_store()
        .writer(Algorithm::Sha256)
        .await
        .unwrap();
    orphan.write(Bytes::from_static(b"orphan")).await.unwrap();
    orphan.checkpoint().await.unwrap();

    let report = registry
        .expire_uploads_older_than(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        (report.sessions, report.orphaned_staging),
        (0, 0),
        "fresh state is kept"
    );

    // Staging areas are judged by their storage time, sessions by the registry's clock.
    tokio::time::sleep(Duration::from_millis(400)).await;
    clock.advance(Duration::from_millis(400));
    let active = registry.start_upload(&r).await.unwrap();
    let report = registry
        .expire_uploads_older_than(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        (report.sessions, report.orphaned_staging),
        (1, 1),
        "{report:?}"
    );
    assert_upload_gone(&registry, &r, &idle.id).await;
    assert_no_staging(&registry).await;
    assert_eq!(
        registry.upload_status(&r, &active.id).await.unwrap().offset,
        0,
        "active session kept"
    );
}
