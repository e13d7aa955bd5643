//! What the outbox costs a push: a tiny image (a config and a layer uploaded whole, then
//! the manifest by tag) on the local filesystem with redb, every metadata operation
//! counted by table, and the time per push. Same-run baseline: one redb commit (a
//! metadata put), the unit the outbox adds to.
//!
//! Measured on 2 cores (2026-12-02): before the outbox 38 metadata operations (15 commits)
//! and 6.2 ms per push (28 baseline commits); with it 46 operations (21 commits: an
//! announce and a mark per event, three events) and 7.9-8.7 ms (31-36 baseline commits).
//! With atomic batches (2026-12-04): 42 operations, 17 writes in 7 commits (each event
//! in one batch with its change; holds, tag, reverse index and manifest record batched),
//! 7.5 ms against 10.6 ms in the same sitting before (22 baseline commits of 0.34 ms).
//! With relaxed claims of new blobs (2026-12-04, later): the same 17 writes in 7
//! commits, 4 of them synced; 3.56 ms against a 0.21 ms commit (17 baseline commits).
//!
//! With small blobs kept in the database and relaxed batches held in memory until the
//! next commit (2026-12-04, stop 31; the blobs go through `SmallObjects` since):
//! 54 operations, the same kinds of write (20, with the 3 objects) in 3 commits, all
//! synced (one per acknowledged request); 1.65 ms against a 0.20 ms commit (8 baseline
//! commits).
//!
//! To compare with an older registry, `git worktree add /tmp/before <commit>`, copy
//! this file and its `[[bench]]` entry there, and run it in each (before
//! `RedbMetaStore::synced_commits` existed, drop the synced count).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use wharf::{
    Algorithm, Digest, Durability, Entry, Expect, MetaStore, ObjectBlobStore, RedbMetaStore,
    Reference, Registry, RepoName, SmallObjects, Version, Versioned, Write,
};

/// Counts operations by kind and table (the key up to its first `/` or `@`).
#[derive(Debug)]
struct Counting {
    inner: RedbMetaStore,
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Counting {
    fn count(&self, op: &str, key: &str) {
        let table = key.split(['/', '@']).next().unwrap_or(key);
        *self
            .counts
            .lock()
            .unwrap()
            .entry(format!("{op} {table}"))
            .or_default() += 1;
    }

    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

#[async_trait]
impl MetaStore for Counting {
    async fn get(&self, key: &str) -> wharf::Result<Option<Versioned>> {
        self.count("get", key);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> wharf::Result<Version> {
        self.count("put", key);
        self.inner.put(key, value, expect).await
    }
    async fn delete(&self, key: &str, expect: Expect) -> wharf::Result<()> {
        self.count("delete", key);
        self.inner.delete(key, expect).await
    }
    fn atomic_batches(&self) -> bool {
        self.inner.atomic_batches()
    }
    async fn batch(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> wharf::Result<Vec<Option<Version>>> {
        for write in &writes {
            let op = match write {
                Write::Put { .. } => "put",
                Write::Delete { .. } => "delete",
            };
            self.count(op, write.key());
        }
        self.inner.batch(writes, durability).await
    }
    async fn sync(&self) -> wharf::Result<()> {
        self.inner.sync().await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> wharf::Result<Vec<Entry>> {
        self.count("list", prefix);
        self.inner.list(prefix, start_after, limit).await
    }
    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> wharf::Result<Vec<String>> {
        self.count("list", prefix);
        self.inner.list_keys(prefix, start_after, limit).await
    }
}

fn sha256(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

fn local(dir: &std::path::Path) -> (Registry, Arc<Counting>) {
    let meta = Arc::new(Counting {
        inner: RedbMetaStore::open(dir.join("meta.redb")).unwrap(),
        counts: Mutex::default(),
    });
    // As `Registry::open_local` keeps blobs: small ones (all of these) in the database.
    let (fs, _) = wharf::blob::local_objects(dir).unwrap();
    let objects = SmallObjects::new(fs, meta.clone());
    let registry = Registry::builder()
        .blob_store(Arc::new(ObjectBlobStore::new(Arc::new(objects))))
        .meta_store(meta.clone())
        .build()
        .unwrap();
    (registry, meta)
}

/// Pushes image `i`: its own config and layer, then its manifest as tag `v<i>`.
async fn push_image(registry: &Registry, r: &RepoName, i: u64) {
    let config = Bytes::from(format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{i}}}"
    ));
    let layer = Bytes::from(format!("layer {i}").repeat(64));
    for blob in [&config, &layer] {
        registry
            .push_blob(r, &sha256(blob), blob.clone())
            .await
            .unwrap();
    }
    let manifest = json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer).to_string(), "size": layer.len()}]});
    let tag = Reference::Tag(format!("v{i}").parse().unwrap());
    registry
        .push_manifest(r, &tag, Bytes::from(manifest.to_string()), None)
        .await
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (registry, meta) = local(dir.path());
    let r: RepoName = "bench/outbox".parse().unwrap();
    let mut next = 0u64;

    // The operations one push makes, by table (after the first, which creates the
    // repository).
    let (commits, synced) = runtime.block_on(async {
        push_image(&registry, &r, next).await;
        next += 1;
        meta.take();
        let before = (meta.inner.commits(), meta.inner.synced_commits());
        push_image(&registry, &r, next).await;
        next += 1;
        (
            meta.inner.commits() - before.0,
            meta.inner.synced_commits() - before.1,
        )
    });
    let counts = meta.take();
    let writes: u64 = counts
        .iter()
        .filter(|(k, _)| k.starts_with("put") || k.starts_with("delete"))
        .map(|(_, n)| n)
        .sum();
    let all: u64 = counts.values().sum();
    eprintln!(
        "metadata operations per tiny image push: {all} ({writes} writes in {commits} redb commits, {synced} synced)"
    );
    for (what, n) in &counts {
        eprintln!("  {what:<24} {n}");
    }

    let mut group = c.benchmark_group("outbox");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("tiny image push (fs + redb, fsync)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    push_image(&registry, &r, next).await;
                    next += 1;
                }
                start.elapsed()
            })
        })
    });
    let mut n = 0u64;
    group.bench_function("baseline: one redb commit", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    n += 1;
                    meta.inner
                        .put(
                            &format!("baseline/{n}"),
                            Bytes::from_static(b"{}"),
                            Expect::Any,
                        )
                        .await
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
