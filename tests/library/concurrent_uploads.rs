//! Chunked uploads, four times as many at once as the runtime has blocking threads, all
//! finish with their digest, with the at-rest codec on and off. An open upload once
//! parked a blocking thread while it waited for its next chunk: as many open uploads as
//! the pool had threads, and no chunk could be written again.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use wharf::{Algorithm, AtRest, Digest, RedbMetaStore, Registry};

use common::noise;

/// The runtime's blocking threads: far fewer than tokio's default, as in a lean server.
const BLOCKING_THREADS: usize = 2;
const UPLOADS: usize = 4 * BLOCKING_THREADS;
const CHUNK: usize = 256 << 10;
const CHUNKS: usize = 16;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the uploads interleaved, chunk by chunk, and checks every blob reads back.
async fn upload_all(registry: Registry) {
    let mut tasks = Vec::new();
    for i in 0..UPLOADS {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            let repo = format!("pool/app{i}").parse().unwrap();
            let data = Bytes::from(noise(CHUNK * CHUNKS, i as u64 + 1));
            let digest = Digest::of(Algorithm::Sha256, &data);
            let upload = registry.start_upload(&repo).await.unwrap();
            for c in 0..CHUNKS {
                let offset = (c * CHUNK) as u64;
                registry
                    .append_upload(
                        &repo,
                        &upload.id,
                        offset,
                        data.slice(c * CHUNK..(c + 1) * CHUNK),
                    )
                    .await
                    .unwrap();
                // Let the others take their turn, so every upload is open at once.
                tokio::task::yield_now().await;
            }
            registry
                .finish_upload(&repo, &upload.id, &digest, None)
                .await
                .unwrap();
            let back = registry
                .read_blob(&repo, &digest, None)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(back == data, "upload {i} read back differently");
        }));
    }
    let all = futures::future::try_join_all(tasks);
    tokio::time::timeout(Duration::from_secs(600), all)
        .await
        .expect("every upload finishes: none waits forever for a blocking thread")
        .unwrap();
}

#[test]
fn with_the_codec_on() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(upload_all(Registry::open_local(dir.path()).unwrap()));
}

#[test]
fn with_the_codec_off() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let registry = Registry::builder()
        .object_store(Arc::new(LocalFileSystem::new_with_prefix(&blobs).unwrap()))
        .meta_store(Arc::new(
            RedbMetaStore::open(dir.path().join("meta.redb")).unwrap(),
        ))
        .at_rest(AtRest::plain())
        .build()
        .unwrap();
    runtime().block_on(upload_all(registry));
}
