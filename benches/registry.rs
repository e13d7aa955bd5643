//! Registry operations: manifest push with a tag move (memory; local filesystem + redb),
//! tag resolve and a 100-tag page as the repository grows from 1,000 to 100,000 tags, and
//! the referrers of a subject with 1,000 referrers. Same-run baseline: one metadata put
//! on the same store, the unit every registry operation is built from.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use serde_json::json;
use wharf::{
    Algorithm, Digest, Expect, MemoryMetaStore, MetaStore, ObjectBlobStore, RedbMetaStore,
    Reference, Registry, RepoName, Tag,
};

fn sha256(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn memory_registry() -> (Registry, Arc<dyn MetaStore>) {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
    let registry = Registry::builder()
        .object_store(Arc::new(InMemory::new()))
        .meta_store(meta.clone())
        .build()
        .unwrap();
    (registry, meta)
}

fn local_registry(dir: &std::path::Path) -> (Registry, Arc<dyn MetaStore>) {
    let meta: Arc<dyn MetaStore> = Arc::new(RedbMetaStore::open(dir.join("meta.redb")).unwrap());
    let fs = LocalFileSystem::new_with_prefix(dir)
        .unwrap()
        .with_fsync(true);
    let registry = Registry::builder()
        .blob_store(Arc::new(ObjectBlobStore::new(Arc::new(fs))))
        .meta_store(meta.clone())
        .build()
        .unwrap();
    (registry, meta)
}

/// A config blob pushed into `r`, and manifest `i` using it (distinct bytes per `i`).
async fn prepare(registry: &Registry, r: &RepoName) -> serde_json::Value {
    let config = Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}");
    registry
        .push_blob(r, &sha256(&config), config.clone())
        .await
        .unwrap();
    json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config).to_string(), "size": config.len()})
}

fn manifest(config: &serde_json::Value, i: u64, subject: Option<&Digest>) -> Bytes {
    let mut body = json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST, "config": config,
                          "layers": [], "annotations": {"n": i.to_string()}});
    if let Some(subject) = subject {
        body["subject"] = json!({"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": subject.to_string(), "size": 1});
        body["artifactType"] = json!("application/vnd.example.sig");
    }
    serde_json::to_vec(&body).unwrap().into()
}

fn push(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("manifest_push_with_tag");
    group
        .throughput(Throughput::Elements(1))
        .measurement_time(Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    for (name, (registry, meta)) in [
        ("memory", memory_registry()),
        ("fs_redb", local_registry(dir.path())),
    ] {
        let r: RepoName = "bench/app".parse().unwrap();
        let config = rt.block_on(prepare(&registry, &r));
        let mut i = 0u64;
        group.bench_function(BenchmarkId::new("baseline_meta_put", name), |b| {
            b.iter(|| {
                i += 1;
                rt.block_on(meta.put(&format!("bench/{i}"), Bytes::from_static(b"x"), Expect::Any))
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("push", name), |b| {
            b.iter(|| {
                i += 1;
                let raw = manifest(&config, i, None);
                rt.block_on(registry.push_manifest(
                    &r,
                    &Reference::Tag("latest".parse().unwrap()),
                    raw,
                    None,
                ))
                .unwrap()
            })
        });
    }
    group.finish();
}

fn tags(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tags");
    for count in [1_000u64, 100_000] {
        let (registry, _) = memory_registry();
        let r: RepoName = "bench/tags".parse().unwrap();
        let config = rt.block_on(prepare(&registry, &r));
        let raw = manifest(&config, 0, None);
        rt.block_on(async {
            for i in 0..count {
                let tag = Reference::Tag(format!("t{i:06}").parse().unwrap());
                registry
                    .push_manifest(&r, &tag, raw.clone(), None)
                    .await
                    .unwrap();
            }
        });
        let middle: Tag = format!("t{:06}", count / 2).parse().unwrap();
        group.bench_function(BenchmarkId::new("resolve", count), |b| {
            b.iter(|| rt.block_on(registry.resolve_tag(&r, &middle)).unwrap())
        });
        group.bench_function(BenchmarkId::new("page_of_100", count), |b| {
            b.iter(|| {
                let page = rt
                    .block_on(registry.list_tags(&r, 100, Some(&middle)))
                    .unwrap();
                assert_eq!(page.len(), 100);
                page
            })
        });
    }
    group.finish();
}

fn referrers(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("referrers");
    let (registry, _) = memory_registry();
    let r: RepoName = "bench/refs".parse().unwrap();
    let config = rt.block_on(prepare(&registry, &r));
    let subject_raw = manifest(&config, 0, None);
    let subject = sha256(&subject_raw);
    rt.block_on(async {
        registry
            .push_manifest(&r, &Reference::Digest(subject.clone()), subject_raw, None)
            .await
            .unwrap();
        for i in 1..=1000 {
            let raw = manifest(&config, i, Some(&subject));
            registry
                .push_manifest(&r, &Reference::Digest(sha256(&raw)), raw, None)
                .await
                .unwrap();
        }
    });
    group.bench_function("list_1000", |b| {
        b.iter(|| rt.block_on(registry.referrers(&r, &subject, None)).unwrap())
    });
    group.bench_function("list_1000_filtered", |b| {
        b.iter(|| {
            rt.block_on(registry.referrers(&r, &subject, Some("application/vnd.example.sig")))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, push, tags, referrers);
criterion_main!(benches);
