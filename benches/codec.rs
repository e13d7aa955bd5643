//! The at-rest codec alone (no storage): encoding and decoding 64 MiB of compressible
//! content (a tar-like mix of text and structured bytes) and of incompressible content
//! (random bytes, as in a gzip layer), with compression and encryption off and on, and
//! for several frame sizes. Same-run baselines: plain sha256, plain zstd level 1 of the
//! same bytes in one call, plain AES-256-GCM. `cargo bench --bench codec`.

use std::hint::black_box;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wharf::codec::{Compression, DataKey, FrameEncoder, decode};
use wharf::{Algorithm, Digest};

const SIZE: usize = 64 << 20;

fn incompressible() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..SIZE)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Text lines and small binary records, which compress about as a tar of system files.
fn compressible() -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE);
    let mut i = 0u64;
    while out.len() < SIZE {
        out.extend_from_slice(
            format!(
                "usr/lib/python3/dist-packages/module_{}/file_{}.py\tmode=0644 uid=0 gid=0 size={}\n",
                i % 977,
                i,
                (i * 7919) % 100_000
            )
            .as_bytes(),
        );
        out.extend_from_slice(&(i.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40).to_le_bytes());
        i += 1;
    }
    out.truncate(SIZE);
    out
}

fn encode(data: &[u8], frame: usize, compression: Compression, key: Option<&DataKey>) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(frame, compression, key, [7; 16]).unwrap();
    let mut out = encoder.header().to_vec();
    for chunk in data.chunks(1 << 20) {
        out.extend(encoder.push(chunk));
    }
    out.extend(encoder.finish());
    out
}

fn bench(c: &mut Criterion) {
    let key = DataKey::from_bytes([9; 32]);
    for (name, data) in [
        ("incompressible", incompressible()),
        ("compressible", compressible()),
    ] {
        let mut group = c.benchmark_group(format!("codec_64MiB_{name}"));
        group.throughput(Throughput::Bytes(SIZE as u64));
        group.sample_size(10);
        group.bench_function("baseline_sha256", |b| {
            b.iter(|| black_box(Digest::of(Algorithm::Sha256, &data)))
        });
        group.bench_function("baseline_zstd1_one_call", |b| {
            b.iter(|| black_box(zstd::bulk::compress(&data, 1).unwrap()))
        });
        group.bench_function("baseline_aes256gcm", |b| {
            let cipher = Aes256Gcm::new(key.expose().into());
            let mut buf = data.clone();
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
        for (label, compression, key) in [
            ("encode_plain", Compression::Off, None),
            ("encode_zstd", Compression::default(), None),
            ("encode_aes", Compression::Off, Some(&key)),
            ("encode_zstd_aes", Compression::default(), Some(&key)),
        ] {
            group.bench_function(label, |b| {
                b.iter(|| black_box(encode(&data, 1 << 20, compression, key)))
            });
        }
        let both = encode(&data, 1 << 20, Compression::default(), Some(&key));
        println!(
            "{name}: stored {} bytes for {SIZE} ({:.2}x)",
            both.len(),
            SIZE as f64 / both.len() as f64
        );
        group.bench_function("decode_zstd_aes", |b| {
            b.iter(|| black_box(decode(&both, Some(&key)).unwrap()))
        });
        for frame_log2 in [16, 18, 20, 22] {
            group.bench_function(format!("encode_zstd_aes_frame_2^{frame_log2}"), |b| {
                b.iter(|| {
                    black_box(encode(
                        &data,
                        1 << frame_log2,
                        Compression::default(),
                        Some(&key),
                    ))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
