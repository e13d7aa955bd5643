//! Blob put, get and chunked upload against same-run baselines (plain sha256, plain
//! `object_store` put and get), so each figure reads as a ratio.
//!
//! `cargo bench --bench blob` runs 1 MiB and 64 MiB; `WHARF_BENCH_1GIB=1` adds 1 GiB.
//! `publish_parts` times the publish of a checkpointed write, with and without a
//! composer, against a plain file copy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use wharf::blob::LocalComposer;
use wharf::{
    Algorithm, AtRest, BlobStore, BlobStoreExt, Digest, MemoryMetaStore, ObjectBlobStore,
    RedbMetaStore, Registry, RepoName,
};

const MIB: usize = 1 << 20;
/// Size of the pieces a network body arrives in.
const BODY_CHUNK: usize = MIB;

fn sizes() -> Vec<usize> {
    let mut sizes = vec![MIB, 64 * MIB];
    if std::env::var_os("WHARF_BENCH_1GIB").is_some() {
        sizes.push(1024 * MIB);
    }
    sizes
}

fn random_bytes(len: usize) -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn local_fs(dir: &std::path::Path) -> Arc<LocalFileSystem> {
    // The same configuration `Registry::open_local` uses.
    Arc::new(
        LocalFileSystem::new_with_prefix(dir)
            .unwrap()
            .with_automatic_cleanup(true)
            .with_fsync(true),
    )
}

async fn wharf_put(store: &ObjectBlobStore, digest: &Digest, data: &Bytes) {
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    for start in (0..data.len()).step_by(BODY_CHUNK) {
        writer
            .write(data.slice(start..(start + BODY_CHUNK).min(data.len())))
            .await
            .unwrap();
    }
    writer
        .commit(digest, Some(data.len() as u64))
        .await
        .unwrap();
}

/// Times `work` on what `setup` (untimed) builds in a fresh temporary directory.
fn iter_in_fresh_dir<S, F, Fut>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    setup: impl Fn(&std::path::Path) -> S,
    work: F,
) -> Duration
where
    F: Fn(S) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().unwrap();
        let prepared = setup(dir.path());
        let start = Instant::now();
        rt.block_on(work(prepared));
        total += start.elapsed();
    }
    total
}

fn put(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("put");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for size in sizes() {
        let data = random_bytes(size);
        let digest = Digest::of(Algorithm::Sha256, &data);
        group.throughput(Throughput::Bytes(size as u64));
        group.measurement_time(Duration::from_secs(if size > 64 * MIB { 30 } else { 5 }));

        group.bench_function(BenchmarkId::new("baseline_sha256", size), |b| {
            b.iter(|| Digest::of(Algorithm::Sha256, &data))
        });
        // What a store that keeps streamed chunks contiguous must pay at least once.
        group.bench_function(
            BenchmarkId::new("baseline_copy_into_fresh_buffer", size),
            |b| b.iter(|| Bytes::copy_from_slice(&data)),
        );
        group.bench_function(BenchmarkId::new("baseline_memory_plain_put", size), |b| {
            b.iter_batched(
                InMemory::new,
                |mem| {
                    rt.block_on(mem.put(&Path::from("x"), data.clone().into()))
                        .unwrap()
                },
                criterion::BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("memory_wharf_put", size), |b| {
            b.iter_batched(
                || ObjectBlobStore::new(Arc::new(InMemory::new())),
                |store| rt.block_on(wharf_put(&store, &digest, &data)),
                criterion::BatchSize::PerIteration,
            )
        });
        group.bench_function(
            BenchmarkId::new("baseline_fs_sha256_then_plain_put", size),
            |b| {
                b.iter_custom(|iters| {
                    iter_in_fresh_dir(&rt, iters, local_fs, |fs| {
                        let data = data.clone();
                        async move {
                            let digest = Digest::of(Algorithm::Sha256, &data);
                            fs.put(&Path::from(digest.hex()), data.into())
                                .await
                                .unwrap();
                        }
                    })
                })
            },
        );
        group.bench_function(BenchmarkId::new("fs_wharf_put", size), |b| {
            b.iter_custom(|iters| {
                iter_in_fresh_dir(
                    &rt,
                    iters,
                    |dir| ObjectBlobStore::new(local_fs(dir)),
                    |store| {
                        let (data, digest) = (data.clone(), digest.clone());
                        async move { wharf_put(&store, &digest, &data).await }
                    },
                )
            })
        });
    }
    group.finish();
}

fn get(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("get");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for size in sizes() {
        let data = random_bytes(size);
        let digest = Digest::of(Algorithm::Sha256, &data);
        group.throughput(Throughput::Bytes(size as u64));
        group.measurement_time(Duration::from_secs(if size > 64 * MIB { 30 } else { 5 }));
        let dir = tempfile::tempdir().unwrap();
        let fs = local_fs(dir.path());
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for (name, store) in [("memory", mem), ("fs", fs as Arc<dyn ObjectStore>)] {
            let blobs = ObjectBlobStore::new(store.clone());
            rt.block_on(blobs.put_bytes(&digest, data.clone())).unwrap();
            let plain = Path::from("plain");
            rt.block_on(store.put(&plain, data.clone().into())).unwrap();
            group.bench_function(
                BenchmarkId::new(format!("baseline_{name}_plain_get"), size),
                |b| {
                    b.iter(|| {
                        rt.block_on(async {
                            store.get(&plain).await.unwrap().bytes().await.unwrap()
                        })
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("baseline_{name}_plain_get_then_sha256"), size),
                |b| {
                    b.iter(|| {
                        let got = rt.block_on(async {
                            store.get(&plain).await.unwrap().bytes().await.unwrap()
                        });
                        Digest::of(Algorithm::Sha256, &got)
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("{name}_wharf_verified_get"), size),
                |b| b.iter(|| rt.block_on(blobs.get_bytes(&digest)).unwrap()),
            );
        }
    }
    group.finish();
}

fn chunked_upload(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("chunked_upload");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    let size = 64 * MIB;
    let chunk = 5 * MIB;
    let data = random_bytes(size);
    let digest = Digest::of(Algorithm::Sha256, &data);
    let repo: RepoName = "bench/app".parse().unwrap();
    group.throughput(Throughput::Bytes(size as u64));
    group.measurement_time(Duration::from_secs(8));

    let chunked = |registry: Registry| {
        let (data, digest, repo) = (data.clone(), digest.clone(), repo.clone());
        async move {
            let upload = registry.start_upload(&repo).await.unwrap();
            let mut offset = 0;
            while offset < data.len() {
                let end = (offset + chunk).min(data.len());
                registry
                    .append_upload(&repo, &upload.id, offset as u64, data.slice(offset..end))
                    .await
                    .unwrap();
                offset = end;
            }
            registry
                .finish_upload(&repo, &upload.id, &digest, None)
                .await
                .unwrap();
        }
    };
    let one_shot = |registry: Registry| {
        let (data, digest, repo) = (data.clone(), digest.clone(), repo.clone());
        async move {
            registry.push_blob(&repo, &digest, data).await.unwrap();
        }
    };
    let memory_registry = || {
        Registry::builder()
            .object_store(Arc::new(InMemory::new()))
            .meta_store(Arc::new(MemoryMetaStore::new()))
            .build()
            .unwrap()
    };
    group.bench_function("memory_one_shot_put", |b| {
        b.iter_batched(
            memory_registry,
            |r| rt.block_on(one_shot(r)),
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("memory_chunked_5MiB", |b| {
        b.iter_batched(
            memory_registry,
            |r| rt.block_on(chunked(r)),
            criterion::BatchSize::PerIteration,
        )
    });
    let fs_registry = |dir: &std::path::Path| {
        Registry::builder()
            .blob_store(Arc::new(ObjectBlobStore::new(local_fs(dir))))
            .meta_store(Arc::new(
                RedbMetaStore::open(dir.join("meta.redb")).unwrap(),
            ))
            .build()
            .unwrap()
    };
    group.bench_function("fs_one_shot_put", |b| {
        b.iter_custom(|iters| iter_in_fresh_dir(&rt, iters, fs_registry, one_shot))
    });
    group.bench_function("fs_chunked_5MiB", |b| {
        b.iter_custom(|iters| iter_in_fresh_dir(&rt, iters, fs_registry, chunked))
    });
    group.finish();
}

/// Publishing a write checkpointed into eight parts on local disk (fsync on): streamed
/// through the process (no composer) against joined by the kernel (`LocalComposer`),
/// with a plain file copy and sync of the same bytes as the baseline. Only the commit is
/// timed.
fn publish_parts(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("publish_parts");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8));
    let size = 64 * MIB;
    let data = random_bytes(size);
    let digest = Digest::of(Algorithm::Sha256, &data);
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("baseline_file_copy_and_sync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let (source, copy) = (dir.path().join("source"), dir.path().join("copy"));
                std::fs::write(&source, &data).unwrap();
                let start = Instant::now();
                std::fs::copy(&source, &copy).unwrap();
                std::fs::File::open(&copy).unwrap().sync_all().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    for (name, composed) in [("fs_streamed_join", false), ("fs_local_composer", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let mut store =
                        ObjectBlobStore::new(local_fs(dir.path())).with_at_rest(AtRest::plain());
                    if composed {
                        store = store.with_composer(Arc::new(LocalComposer::new(dir.path())));
                    }
                    let writer = rt.block_on(async {
                        let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
                        for part in data.chunks(size / 8) {
                            writer.write(data.slice_ref(part)).await.unwrap();
                            writer.checkpoint().await.unwrap();
                        }
                        writer
                    });
                    let start = Instant::now();
                    rt.block_on(writer.commit(&digest, Some(size as u64)))
                        .unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, put, get, chunked_upload, publish_parts);
criterion_main!(benches);
