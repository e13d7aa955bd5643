//! Group commit in the embedded metadata store: many writers at once share durable
//! commits. Each iteration makes `WRITERS` tasks put one key each at the same time, on
//! redb in a temporary directory (synced to disk); the same-run baseline is one redb
//! commit (a single put with no one else writing). Prints the commits per write. A
//! third case is an upload's writes on one task: three relaxed batches (held in memory
//! until the next commit), then the durable put that commits them.
//!
//! `cargo bench --bench group_commit`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wharf::{Durability, Expect, MetaStore, RedbMetaStore, Write};

/// Writers at once: about as many requests as a busy registry has in flight.
const WRITERS: u64 = 16;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbMetaStore::open(dir.path().join("meta.redb")).unwrap());
    let mut next = 0u64;
    let mut puts = move |store: Arc<RedbMetaStore>, writers: u64| {
        let first = next;
        next += writers;
        async move {
            let tasks: Vec<_> = (first..first + writers)
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        store
                            .put(&format!("k/{n}"), Bytes::from_static(b"{}"), Expect::Absent)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    };

    let before = store.commits();
    runtime.block_on(async {
        for _ in 0..50 {
            puts(store.clone(), WRITERS).await;
        }
    });
    let commits = store.commits() - before;
    eprintln!(
        "{} writes by {WRITERS} writers at once: {commits} commits ({:.2} per write)",
        50 * WRITERS,
        commits as f64 / (50 * WRITERS) as f64
    );

    let mut group = c.benchmark_group("group_commit");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function(format!("{WRITERS} writers at once, per write"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    puts(store.clone(), WRITERS).await;
                }
                start.elapsed() / WRITERS as u32
            })
        })
    });
    // An upload's writes: its session's start, its claim and its small object are
    // relaxed (held in memory), then its link commits them all.
    let mut n = 0u64;
    group.bench_function("three relaxed batches, then a durable put", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    for part in ["session", "claim", "object"] {
                        let write = Write::Put {
                            key: format!("relaxed/{part}/{n}"),
                            value: Bytes::from_static(b"{}"),
                            expect: Expect::Absent,
                        };
                        store.batch(vec![write], Durability::Relaxed).await.unwrap();
                    }
                    store
                        .put(
                            &format!("durable/{n}"),
                            Bytes::from_static(b"{}"),
                            Expect::Absent,
                        )
                        .await
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("baseline: one redb commit", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    puts(store.clone(), 1).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
