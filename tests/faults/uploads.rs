//! Fault injection: a push interrupted at every storage operation, by a transient error
//! or by a crash, never leaves a partial blob readable, and a restarted registry either
//! resumes the upload or expires it cleanly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::memory::InMemory;
use wharf::testing::{FaultMode, FaultyStore};
use wharf::{
    Algorithm, Digest, ErrorKind, ObjectBlobStore, ObjectMetaStore, Registry, RepoName, UploadId,
};

const PART: usize = 64 << 10;

fn data() -> Bytes {
    (0..(5 * PART + 1234) as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect::<Vec<_>>()
        .into()
}

async fn registry_over(
    store: Arc<dyn object_store::ObjectStore>,
    checkpoint_interval: u64,
) -> Registry {
    let meta = ObjectMetaStore::connect(store.clone(), "meta")
        .await
        .unwrap();
    Registry::builder()
        .blob_store(Arc::new(ObjectBlobStore::new(store).with_part_size(PART)))
        .meta_store(Arc::new(meta))
        .checkpoint_interval(checkpoint_interval)
        .build()
        .unwrap()
}

/// The client's push: start, two chunks (one spanning several parts), finish with the rest.
async fn push(
    registry: &Registry,
    repo: &RepoName,
    data: &Bytes,
    digest: &Digest,
    id: &mut Option<UploadId>,
) -> wharf::Result<()> {
    let upload = registry.start_upload(repo).await?;
    *id = Some(upload.id.clone());
    registry
        .append_upload(repo, &upload.id, 0, data.slice(..1000))
        .await?;
    registry
        .append_upload(repo, &upload.id, 1000, data.slice(1000..3 * PART + 7))
        .await?;
    registry
        .finish_upload(repo, &upload.id, digest, Some(data.slice(3 * PART + 7..)))
        .await?;
    Ok(())
}

async fn interrupted_at_every_operation(mode: FaultMode, checkpoint_interval: u64) {
    let data = data();
    let digest = Digest::of(Algorithm::Sha256, &data);
    let repo: RepoName = "crash/test".parse().unwrap();
    for n in 0.. {
        let faulty = FaultyStore::new(Arc::new(InMemory::new()));
        let registry = registry_over(Arc::new(faulty.clone()), checkpoint_interval).await;
        faulty.arm(n, mode);
        let mut id = None;
        let outcome = push(&registry, &repo, &data, &digest, &mut id).await;
        let fired = faulty.fired();
        faulty.disarm();
        if !fired {
            outcome.expect("an undisturbed push succeeds");
            assert!(n > 10, "the push ran through only {n} operations");
            eprintln!(
                "{mode:?}, checkpoints every {checkpoint_interval} bytes: push interrupted at each of its {n} storage operations"
            );
            return;
        }

        // The restarted process.
        let restarted = registry_over(Arc::new(faulty.clone()), checkpoint_interval).await;
        match restarted.blob_store().read(&digest, None).await {
            Ok(read) => assert_eq!(
                read.bytes().await.unwrap(),
                data,
                "op {n}: visible blob is whole"
            ),
            Err(e) => assert_eq!(e.kind(), ErrorKind::BlobUnknown, "op {n}: {e}"),
        }
        if outcome.is_ok() {
            let got = restarted.read_blob(&repo, &digest, None).await.unwrap();
            assert_eq!(
                got.bytes().await.unwrap(),
                data,
                "op {n}: acknowledged push is readable"
            );
            continue;
        }
        let resumable = match &id {
            Some(id) => restarted.upload_status(&repo, id).await.ok(),
            None => None,
        };
        match resumable {
            Some(status) => {
                // The client resumes from where the registry says it is.
                let at = status.offset as usize;
                let id = id.unwrap();
                restarted
                    .finish_upload(&repo, &id, &digest, Some(data.slice(at..)))
                    .await
                    .unwrap_or_else(|e| panic!("op {n}: resume from {at} failed: {e}"));
                let got = restarted.read_blob(&repo, &digest, None).await.unwrap();
                assert_eq!(
                    got.bytes().await.unwrap(),
                    data,
                    "op {n}: resumed push reads back"
                );
            }
            None => {
                let report = restarted
                    .expire_uploads_older_than(Duration::ZERO)
                    .await
                    .unwrap();
                let staging: Vec<_> = restarted.blob_store().list_staging().collect().await;
                assert!(
                    staging.is_empty(),
                    "op {n}: staging left after expiry: {staging:?} ({report:?})"
                );
            }
        }
        // Whatever happened, expiry leaves no staged bytes and no sessions behind.
        restarted
            .expire_uploads_older_than(Duration::ZERO)
            .await
            .unwrap();
        assert!(
            restarted
                .blob_store()
                .list_staging()
                .collect::<Vec<_>>()
                .await
                .is_empty(),
            "op {n}"
        );
        assert!(
            restarted
                .meta_store()
                .list_keys("upload/", None, 10)
                .await
                .unwrap()
                .is_empty(),
            "op {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_push() {
    interrupted_at_every_operation(FaultMode::Crash, wharf::DEFAULT_CHECKPOINT_INTERVAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_push() {
    interrupted_at_every_operation(FaultMode::FailOnce, wharf::DEFAULT_CHECKPOINT_INTERVAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_push_checkpointing_each_chunk() {
    interrupted_at_every_operation(FaultMode::Crash, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_push_checkpointing_each_chunk() {
    interrupted_at_every_operation(FaultMode::FailOnce, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_storage_failures_say_they_are_retryable() {
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    let registry = registry_over(Arc::new(faulty.clone()), 0).await;
    let repo: RepoName = "retry/me".parse().unwrap();
    let data = Bytes::from_static(b"some bytes");
    let digest = Digest::of(Algorithm::Sha256, &data);
    registry
        .push_blob(&repo, &digest, data.clone())
        .await
        .unwrap();
    faulty.arm(0, FaultMode::FailOnce);
    let err = registry.read_blob(&repo, &digest, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    assert!(err.is_retryable(), "{err}");
    let again = registry.read_blob(&repo, &digest, None).await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), data, "the retry succeeds");
}
