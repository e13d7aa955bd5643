//! A garbage-collection pass over a store of 1,000,000 blobs in memory: time and peak
//! memory.
//!
//! The store holds `WHARF_BENCH_GC_BLOBS` blobs (default 1,000,000) of 64 bytes, pushed
//! through the registry; a tenth of them are layers of images (10 per manifest), the
//! rest were never referenced. A pass with no grace period reclaims the unreferenced
//! ones and keeps the rest; a second pass, with nothing new, shows the steady state.
//! Peak memory is the growth of the peak resident set (VmHWM, reset before the pass)
//! over the resident set before it. Same-run baseline: listing every blob of the store,
//! which is what a mark-and-sweep collector starts with.
//! `cargo bench --bench gc`.

use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use wharf::{Algorithm, Digest, GcOptions, Reference, Registry, RepoName};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}

fn blob(i: u64) -> Bytes {
    Bytes::from(format!("{i:064}"))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total: u64 = std::env::var("WHARF_BENCH_GC_BLOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let registry = Registry::builder()
            .object_store(std::sync::Arc::new(object_store::memory::InMemory::new()))
            .meta_store(std::sync::Arc::new(wharf::MemoryMetaStore::new()))
            .gc_grace(std::time::Duration::ZERO)
            .build()
            .unwrap();
        let repo: RepoName = "bench/gc".parse().unwrap();
        let started = Instant::now();
        futures::stream::iter(0..total)
            .map(|i| {
                let registry = registry.clone();
                let repo = repo.clone();
                async move {
                    let data = blob(i);
                    let digest = Digest::of(Algorithm::Sha256, &data);
                    registry.push_blob(&repo, &digest, data).await
                }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        let config = Bytes::from_static(b"{}");
        let config_digest = Digest::of(Algorithm::Sha256, &config);
        registry
            .push_blob(&repo, &config_digest, config.clone())
            .await
            .unwrap();
        let images = total / 100;
        futures::stream::iter(0..images)
            .map(|m| {
                let registry = registry.clone();
                let repo = repo.clone();
                let config_digest = config_digest.clone();
                async move {
                    let layers: Vec<_> = (0..10)
                        .map(|k| {
                            let data = blob(m * 10 + k);
                            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": Digest::of(Algorithm::Sha256, &data).to_string(),
                                   "size": data.len()})
                        })
                        .collect();
                    let manifest = json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": config_digest.to_string(), "size": 2},
                        "layers": layers});
                    let raw = Bytes::from(serde_json::to_vec(&manifest).unwrap());
                    let reference = Reference::Digest(Digest::of(Algorithm::Sha256, &raw));
                    registry.push_manifest(&repo, &reference, raw, None).await
                }
            })
            .buffer_unordered(64)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        println!(
            "setup: {total} blobs, {images} images of 10 layers, in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let listing = Instant::now();
        let listed = registry.blob_store().list().try_fold(0u64, |n, _| async move { Ok(n + 1) }).await.unwrap();
        let list_time = listing.elapsed();

        // The first collection on a store records every link's and manifest's holds
        // once (for stores from before garbage collection); timed apart.
        let first = Instant::now();
        registry
            .gc_step(
                &GcOptions {
                    batch: 1,
                    dry_run: true,
                    ..GcOptions::default()
                },
                None,
            )
            .await
            .unwrap();
        let first_time = first.elapsed();

        let before = status_kib("VmRSS:");
        // Reset the peak to the current resident set (Linux 4.0+).
        std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
        let options = GcOptions {
            grace: std::time::Duration::ZERO,
            ..GcOptions::default()
        };
        let pass = Instant::now();
        let report = registry.collect_garbage(&options).await.unwrap();
        let pass_time = pass.elapsed();
        let peak = status_kib("VmHWM:");
        let steady = Instant::now();
        let again = registry.collect_garbage(&options).await.unwrap();
        let steady_time = steady.elapsed();

        println!(
            "baseline: listing all {listed} blobs of the store: {:.2} s",
            list_time.as_secs_f64()
        );
        println!(
            "first collection on the store: checking {total} links and {images} manifests once: {:.2} s",
            first_time.as_secs_f64()
        );
        println!(
            "gc pass: examined {} candidates, reclaimed {} blobs ({} bytes), kept {} referenced, in {:.2} s ({:.1} µs per candidate, {:.2}x the listing)",
            report.examined,
            report.reclaimed_blobs,
            report.reclaimed_logical_bytes,
            report.still_referenced,
            pass_time.as_secs_f64(),
            pass_time.as_secs_f64() * 1e6 / report.examined.max(1) as f64,
            pass_time.as_secs_f64() / list_time.as_secs_f64()
        );
        println!(
            "gc pass peak memory growth: {:.1} MiB (resident before: {:.1} MiB)",
            peak.saturating_sub(before) as f64 / 1024.0,
            before as f64 / 1024.0
        );
        println!(
            "steady-state pass (nothing new): examined {} in {:.1} ms",
            again.examined,
            steady_time.as_secs_f64() * 1e3
        );
        assert_eq!(report.reclaimed_blobs, total - images * 10);
    });
}
