//! Scanning a 500 MiB image: one gzip layer of system files (text and binary records)
//! holding a 20 MiB dpkg database among them. Measured: the layer walk alone (gunzip,
//! tar, whiteouts, analyzers) and a whole scan through a registry on local disk (blob read,
//! walk, SBOM and findings stored as referrers). Same-run baseline: gunzip of the same
//! layer to nowhere, which is what the walk cannot beat. Also printed once: the peak
//! memory growth of a scan (`VmHWM` after resetting it through `/proc/self/clear_refs`).
//! `cargo bench --bench scan`.

use std::hint::black_box;
use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wharf::scan::inventory::BuiltinAnalyzers;
use wharf::scan::walk::{LayerInput, WalkLimits, walk};
use wharf::{Algorithm, BuiltinScanner, Digest, Reference, Registry, RepositorySettings};

const IMAGE: usize = 500 << 20;
const DATABASE: usize = 20 << 20;
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A ustar header for a regular file.
fn header(name: &str, size: usize, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn append(tar: &mut Vec<u8>, name: &str, data: &[u8], mode: u32) {
    tar.extend_from_slice(&header(name, data.len(), mode));
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// A 20 MiB dpkg status of made-up packages, each stanza shaped like Debian's.
fn dpkg_status() -> Vec<u8> {
    let mut out = Vec::with_capacity(DATABASE);
    let mut i = 0;
    while out.len() < DATABASE {
        out.extend_from_slice(
            format!(
                "Package: lib-bench-{i}\nStatus: install ok installed\nPriority: optional\nSection: libs\n\
                 Installed-Size: {}\nMaintainer: Bench Maintainers <bench@example.org>\nArchitecture: amd64\n\
                 Multi-Arch: same\nSource: bench-{}\nVersion: 1.{}.{}-{}+deb12u1\nDepends: libc6 (>= 2.34)\n\
                 Description: a package of the benchmark\n this line continues the description of package {i}\n\n",
                i % 9000,
                i / 3,
                i % 17,
                i % 101,
                i % 7
            )
            .as_bytes(),
        );
        i += 1;
    }
    out
}

/// System-file-like content: text lines and small binary records (compresses about 4:1).
fn file_content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = seed;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                "usr/share/bench/{}/item_{}.conf\tvalue={}\n",
                i % 331,
                i,
                (i * 7919) % 100_003
            )
            .as_bytes(),
        );
        out.extend_from_slice(&(i.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// The layer: os-release, the dpkg database, then files of 1 MiB up to 500 MiB.
fn layer() -> Vec<u8> {
    let mut tar = Vec::with_capacity(IMAGE + (1 << 20));
    append(
        &mut tar,
        "etc/os-release",
        b"ID=debian\nVERSION_ID=\"12\"\n",
        0o644,
    );
    append(&mut tar, "var/lib/dpkg/status", &dpkg_status(), 0o644);
    let mut n = 0u64;
    while tar.len() < IMAGE {
        let mode = if n.is_multiple_of(5) { 0o755 } else { 0o644 };
        append(
            &mut tar,
            &format!("usr/share/bench/file-{n}"),
            &file_content(n, 1 << 20),
            mode,
        );
        n += 1;
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn walk_once(layer: &Bytes) -> usize {
    let input = LayerInput {
        digest: "sha256:bench".into(),
        media_type: GZIP.into(),
        bytes: Box::new(Cursor::new(layer.clone())),
    };
    let walked = walk(
        [input],
        &BuiltinAnalyzers::default(),
        &WalkLimits::default(),
    )
    .unwrap();
    walked.entries.len()
}

fn gunzip(layer: &[u8]) -> u64 {
    let mut decoder = flate2::read::MultiGzDecoder::new(layer);
    std::io::copy(&mut decoder, &mut std::io::sink()).unwrap()
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A registry on local disk (blobs in files, metadata in redb), so that what a scan
/// stores is not counted as the memory it uses.
async fn registry_with(dir: &Path, layer: &Bytes) -> (Registry, wharf::RepoName, Digest) {
    let blobs = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    let registry = Registry::builder()
        .object_store(Arc::new(blobs))
        .meta_store(Arc::new(
            wharf::RedbMetaStore::open(dir.join("meta.redb")).unwrap(),
        ))
        .scanner(Arc::new(BuiltinScanner::new()))
        .build()
        .unwrap();
    let repo: wharf::RepoName = "bench/scan".parse().unwrap();
    registry
        .create_repository(&repo, RepositorySettings::default())
        .await
        .unwrap();
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    for blob in [&config, layer] {
        let digest = Digest::of(Algorithm::Sha256, blob);
        registry
            .push_blob(&repo, &digest, blob.clone())
            .await
            .unwrap();
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(Algorithm::Sha256, &config).to_string(), "size": config.len()},
        "layers": [{"mediaType": GZIP, "digest": Digest::of(Algorithm::Sha256, layer).to_string(), "size": layer.len()}],
    });
    let raw = Bytes::from(manifest.to_string());
    let pushed = registry
        .push_manifest(&repo, &Reference::Tag("v1".parse().unwrap()), raw, None)
        .await
        .unwrap();
    (registry, repo, pushed.digest)
}

fn bench(c: &mut Criterion) {
    let layer = layer();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let shared = Bytes::from(layer.clone());
    let dir = tempfile::tempdir().unwrap();
    let (registry, repo, digest) = runtime.block_on(registry_with(dir.path(), &shared));

    // Peak memory growth of one whole scan, the input already in memory.
    let before = status_kib("VmRSS:");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let scan = runtime
        .block_on(registry.scan_image(&repo, &digest))
        .unwrap();
    let peak = status_kib("VmHWM:");
    let packages = runtime
        .block_on(registry.scan_inventory(&repo, &digest))
        .unwrap()
        .packages
        .len();
    eprintln!(
        "scan of a {} MiB image ({} MiB gzip): {:?}, {packages} packages, peak memory growth {} MiB",
        IMAGE >> 20,
        layer.len() >> 20,
        scan.status,
        peak.saturating_sub(before) >> 10
    );

    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(IMAGE as u64));
    group.bench_function("baseline: gunzip to nowhere", |b| {
        b.iter(|| black_box(gunzip(&layer)))
    });
    group.bench_function("layer walk", |b| b.iter(|| black_box(walk_once(&shared))));
    group.bench_function("scan through the registry", |b| {
        b.iter(|| {
            black_box(
                runtime
                    .block_on(registry.scan_image(&repo, &digest))
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
