//! Put and get through the blob store (memory storage) with the at-rest format: codec
//! off, compression only, encryption only, both; for compressible content (an
//! uncompressed tar of this machine's system files) and incompressible content (the same
//! tar gzipped, as a layer arrives). Same-run baselines: plain sha256, plain zstd of the
//! same bytes in one call on one core, plain AES-256-GCM; and the encoder alone
//! (`encode_only_both`: frames sealed in parallel, no hashing or storage). Then frame
//! sizes: a 1 KiB range read of an encrypted, compressed blob, whole puts and gets.
//!
//! `cargo bench --bench at_rest` (64 MiB); `WHARF_BENCH_GIB=1` adds 1 GiB blobs.

use std::hint::black_box;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use object_store::memory::InMemory;
use wharf::codec::Compression;
use wharf::keys::MemoryKeyProvider;
use wharf::{Algorithm, AtRest, BlobStore, Digest, ObjectBlobStore};

const MIB: usize = 1 << 20;

/// A tar of system files: the first `size` bytes (at most 256 MiB, then repeated).
fn system_tar(size: usize) -> Vec<u8> {
    use std::io::Read;
    let mut tar = Command::new("tar")
        .args(["-cf", "-", "--ignore-failed-read", "/usr/share", "/usr/lib"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tar");
    let mut head = Vec::new();
    let stdout = tar.stdout.take().unwrap();
    stdout
        .take(size.min(256 * MIB) as u64)
        .read_to_end(&mut head)
        .unwrap();
    let _ = tar.kill();
    let _ = tar.wait();
    assert!(
        head.len() > 16 * MIB,
        "tar of /usr gave only {} bytes",
        head.len()
    );
    head.iter().copied().cycle().take(size).collect()
}

/// `data` gzipped (as a layer is), cycled to `size` bytes; keeps the gzip magic first.
fn gzipped(data: &[u8], size: usize) -> Vec<u8> {
    let mut gzip = Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = gzip.stdin.take().unwrap();
    let input = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = gzip.wait_with_output().unwrap().stdout;
    feeder.join().unwrap().unwrap();
    out.iter().copied().cycle().take(size).collect()
}

fn store(at_rest: AtRest) -> ObjectBlobStore {
    store_with_frames(at_rest, wharf::codec::DEFAULT_FRAME_SIZE)
}

fn store_with_frames(at_rest: AtRest, frame_size: usize) -> ObjectBlobStore {
    let keys = MemoryKeyProvider::default();
    keys.generate("bench").unwrap();
    ObjectBlobStore::new(Arc::new(InMemory::new()))
        .with_key_provider(Arc::new(keys))
        .with_at_rest(at_rest)
        .with_frame_size(frame_size)
}

fn configs() -> [(&'static str, AtRest); 4] {
    let encrypted = AtRest::encrypted("bench");
    [
        ("off", AtRest::plain()),
        ("compress", AtRest::default()),
        (
            "encrypt",
            AtRest {
                compression: Compression::Off,
                ..encrypted.clone()
            },
        ),
        ("both", encrypted),
    ]
}

async fn put(blobs: &ObjectBlobStore, data: &Bytes, digest: &Digest) {
    let mut writer = blobs.writer(Algorithm::Sha256).await.unwrap();
    for at in (0..data.len()).step_by(MIB) {
        writer
            .write(data.slice(at..(at + MIB).min(data.len())))
            .await
            .unwrap();
    }
    writer
        .commit(digest, Some(data.len() as u64))
        .await
        .unwrap();
}

async fn get(blobs: &ObjectBlobStore, digest: &Digest) -> usize {
    let mut stream = blobs.read(digest, None).await.unwrap().stream;
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len();
    }
    n
}

fn bench_size(c: &mut Criterion, size: usize, label: &str, tar: &[u8]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let compressible = Bytes::from(tar[..size].to_vec());
    let incompressible = Bytes::from(gzipped(&compressible, size));
    for (content, data) in [
        ("compressible", compressible),
        ("incompressible", incompressible),
    ] {
        let digest = Digest::of(Algorithm::Sha256, &data);
        let mut group = c.benchmark_group(format!("at_rest_{label}_{content}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.sample_size(10);
        group.bench_function("baseline_sha256", |b| {
            b.iter(|| black_box(Digest::of(Algorithm::Sha256, &data)))
        });
        group.bench_function("baseline_zstd1_one_core", |b| {
            b.iter(|| black_box(zstd::bulk::compress(&data, 1).unwrap()))
        });
        group.bench_function("baseline_aes256gcm", |b| {
            let cipher = Aes256Gcm::new(&[9u8; 32].into());
            let mut buf = data.to_vec();
            b.iter(|| {
                black_box(
                    cipher
                        .encrypt_inout_detached(
                            &Nonce::<Aes256Gcm>::from([0; 12]),
                            b"",
                            buf.as_mut_slice().into(),
                        )
                        .unwrap(),
                )
            })
        });
        group.bench_function("encode_only_both", |b| {
            let key = wharf::codec::DataKey::from_bytes([9; 32]);
            b.iter(|| {
                let mut encoder = wharf::codec::FrameEncoder::new(
                    wharf::codec::DEFAULT_FRAME_SIZE,
                    Compression::default(),
                    Some(&key),
                    [7; 16],
                )
                .unwrap();
                let mut stored = 0;
                for chunk in data.chunks(MIB) {
                    stored += encoder
                        .push_frames(chunk)
                        .iter()
                        .map(Vec::len)
                        .sum::<usize>();
                }
                black_box(stored + encoder.finish().len())
            })
        });
        for (name, at_rest) in configs() {
            group.bench_function(format!("put_{name}"), |b| {
                b.iter_batched(
                    || store(at_rest.clone()),
                    |blobs| runtime.block_on(put(&blobs, &data, &digest)),
                    criterion::BatchSize::PerIteration,
                )
            });
            let blobs = store(at_rest.clone());
            runtime.block_on(put(&blobs, &data, &digest));
            group.bench_function(format!("get_{name}"), |b| {
                b.iter(|| black_box(runtime.block_on(get(&blobs, &digest))))
            });
        }
        group.finish();
    }
}

fn bench(c: &mut Criterion) {
    let gib = std::env::var_os("WHARF_BENCH_GIB").is_some();
    let tar = system_tar(if gib { 1 << 30 } else { 64 * MIB });
    bench_size(c, 64 * MIB, "64MiB", &tar);
    if gib {
        bench_size(c, 1 << 30, "1GiB", &tar);
    }

    // Frame sizes: a 1 KiB range of a 64 MiB encrypted, compressed blob on memory
    // storage, and whole puts and gets.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = Bytes::from(tar[..64 * MIB].to_vec());
    let digest = Digest::of(Algorithm::Sha256, &data);
    let mut group = c.benchmark_group("at_rest_frame_size");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    for frame in [256 << 10, 1 << 20, 4 << 20] {
        let label = format!("{}KiB", frame >> 10);
        let blobs = store_with_frames(AtRest::encrypted("bench"), frame);
        runtime.block_on(put(&blobs, &data, &digest));
        let mut offset = 12_345u64;
        group.bench_function(format!("range_1KiB_both_{label}"), |b| {
            b.iter(|| {
                offset = (offset * 7919 + 104_729) % (64 * MIB as u64 - 1024);
                runtime.block_on(async {
                    let read = blobs
                        .read(&digest, Some(offset..offset + 1024))
                        .await
                        .unwrap();
                    black_box(read.bytes().await.unwrap())
                })
            })
        });
        group.bench_function(format!("put_both_{label}"), |b| {
            b.iter_batched(
                || store_with_frames(AtRest::encrypted("bench"), frame),
                |blobs| runtime.block_on(put(&blobs, &data, &digest)),
                criterion::BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("get_both_{label}"), |b| {
            b.iter(|| black_box(runtime.block_on(get(&blobs, &digest))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
