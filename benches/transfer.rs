//! Importing and exporting a 1 GiB OCI layout (eight 128 MiB layers of incompressible
//! bytes) with a registry on local disk as `Registry::open_local` keeps it (encrypted,
//! compression tried, blobs and index synced). Same-run baselines over the same files:
//! `cp -r` of the layout directory (the copy a transfer cannot beat) and `sha256sum` of
//! its blobs (the hashing every import must do). `cargo bench --bench transfer`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wharf::transfer::sink::DirectorySink;
use wharf::transfer::source::DirectorySource;
use wharf::{Algorithm, Digest, ExportOptions, ImportOptions, Reference, Registry, RepoName};

const LAYERS: usize = 8;
const LAYER: usize = 128 << 20;

/// Bytes no compressor shrinks: xorshift64*.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes the layout into `dir` through a registry, so its files are what an export writes.
async fn make_layout(dir: &Path) {
    let registry = Registry::in_memory();
    let repo: RepoName = "bench/big".parse().unwrap();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let mut layers = Vec::new();
    for seed in 0..LAYERS {
        let layer = noise(seed as u64 + 1, LAYER);
        let digest = Digest::of(Algorithm::Sha256, &layer);
        registry
            .push_blob(&repo, &digest, layer.into())
            .await
            .unwrap();
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest.to_string(), "size": LAYER}));
    }
    let config_digest = Digest::of(Algorithm::Sha256, &config);
    registry
        .push_blob(&repo, &config_digest, config.clone().into())
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    });
    let tag: Reference = "v1".parse().unwrap();
    registry
        .push_manifest(&repo, &tag, manifest.to_string().into(), None)
        .await
        .unwrap();
    registry
        .export_layout(
            &repo,
            &[tag],
            Box::new(DirectorySink::create(dir).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
}

fn run(command: &mut Command) {
    let status = command.status().unwrap();
    assert!(status.success(), "{command:?}");
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    runtime.block_on(make_layout(&layout));
    let repo: RepoName = "bench/imported".parse().unwrap();
    // A registry holding the image, for the export.
    let exporter_dir = work.path().join("exporter");
    let exporter = Registry::open_local(&exporter_dir).unwrap();
    runtime
        .block_on(exporter.import_layout(
            &repo,
            Arc::new(DirectorySource::new(&layout)),
            &ImportOptions::default(),
        ))
        .unwrap();
    let tag: Reference = "v1".parse().unwrap();

    let mut group = c.benchmark_group("transfer 1 GiB layout");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((LAYERS * LAYER) as u64));
    group.bench_function("baseline: cp -r", |b| {
        b.iter_batched(
            || {
                let target = work.path().join("copy");
                let _ = std::fs::remove_dir_all(&target);
                target
            },
            |target| run(Command::new("cp").arg("-r").arg(&layout).arg(&target)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("baseline: sha256sum of the blobs", |b| {
        b.iter(|| {
            run(Command::new("sh")
                .arg("-c")
                .arg("sha256sum blobs/sha256/* > /dev/null")
                .current_dir(&layout))
        })
    });
    group.bench_function("import into open_local", |b| {
        b.iter_batched(
            || {
                let dir = work.path().join("import");
                let _ = std::fs::remove_dir_all(&dir);
                Registry::open_local(&dir).unwrap()
            },
            |registry| {
                runtime
                    .block_on(registry.import_layout(
                        &repo,
                        Arc::new(DirectorySource::new(&layout)),
                        &ImportOptions::default(),
                    ))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("export from open_local", |b| {
        b.iter_batched(
            || {
                let dir = work.path().join("export");
                let _ = std::fs::remove_dir_all(&dir);
                DirectorySink::create(&dir).unwrap()
            },
            |sink| {
                runtime
                    .block_on(exporter.export_layout(
                        &repo,
                        std::slice::from_ref(&tag),
                        Box::new(sink),
                        &ExportOptions::default(),
                    ))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
