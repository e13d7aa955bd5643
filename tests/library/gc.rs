//! Online garbage collection: what it reclaims and keeps, and that it never removes a
//! blob a surviving image needs while pushes, deletes and collections race.

use crate::common;
use crate::common::images::Image;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{registry_without_grace, repo, sha256, tag};
use futures::TryStreamExt;
use wharf::{
    Digest, ErrorKind, Event, GcOptions, GcReport, Manifest, MemoryEventSink, MemoryMetaStore,
    Reference, Registry, RepoName,
};

fn now_options() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    }
}

/// An image manifest over `config` and `layers`.
fn image(config: &Bytes, layers: &[&Bytes]) -> Bytes {
    Image::of(config, layers).manifest()
}

/// Uploads the blobs an image needs (skipping those the repository already has, as
/// clients do after a HEAD) and pushes its manifest.
async fn push_image(
    registry: &Registry,
    r: &RepoName,
    reference: &Reference,
    config: &Bytes,
    layers: &[&Bytes],
) -> wharf::Result<Digest> {
    Image::of(config, layers).push(registry, r, reference).await
}

async fn stored_blobs(registry: &Registry) -> Vec<Digest> {
    let mut all: Vec<Digest> = registry
        .blob_store()
        .list()
        .map_ok(|info| info.digest)
        .try_collect()
        .await
        .unwrap();
    all.sort();
    all
}

/// Pulls every image of every repository in full; each read verifies its digest.
async fn pull_everything(registry: &Registry) -> usize {
    let mut pulled = 0;
    for r in registry.list_repositories(10_000, None).await.unwrap() {
        for image in registry.inventory(&r).await.unwrap() {
            let stored = registry
                .get_manifest(&r, &Reference::Digest(image.digest.clone()))
                .await
                .unwrap_or_else(|e| panic!("{r}@{}: {e}", image.digest));
            let manifest = Manifest::parse(stored.raw, Some(&stored.media_type)).unwrap();
            for blob in manifest.blobs() {
                let bytes = registry
                    .read_blob(&r, &blob.digest, None)
                    .await
                    .unwrap_or_else(|e| panic!("{r}@{} needs {}: {e}", image.digest, blob.digest))
                    .bytes()
                    .await
                    .unwrap_or_else(|e| panic!("{r}: reading {}: {e}", blob.digest));
                assert_eq!(sha256(&bytes), blob.digest);
            }
            pulled += 1;
        }
        for t in registry.list_tags(&r, 10_000, None).await.unwrap() {
            registry
                .get_manifest(&r, &Reference::Tag(t.clone()))
                .await
                .unwrap_or_else(|e| panic!("tag {r}:{t} dangles: {e}"));
        }
    }
    pulled
}

#[tokio::test]
async fn unreferenced_blobs_go_and_referenced_ones_stay() {
    let events = Arc::new(MemoryEventSink::default());
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .event_sink(events.clone())
        .gc_grace(Duration::ZERO)
        .build()
        .unwrap();
    let r = repo("app");
    let shared = Bytes::from_static(b"shared layer");
    let only_a = Bytes::from_static(b"layer of a only");
    let orphan = Bytes::from_static(b"uploaded, never referenced");
    let (config_a, config_b) = (Bytes::from_static(b"{}"), Bytes::from_static(b"{\"b\":1}"));
    let a = push_image(&registry, &r, &tag("a"), &config_a, &[&shared, &only_a])
        .await
        .unwrap();
    push_image(&registry, &r, &tag("b"), &config_b, &[&shared])
        .await
        .unwrap();
    registry
        .push_blob(&r, &sha256(&orphan), orphan.clone())
        .await
        .unwrap();

    // Within the grace period nothing goes.
    let report = registry
        .collect_garbage(&GcOptions::default())
        .await
        .unwrap();
    assert_eq!(report.reclaimed_blobs, 0);
    assert!(report.deferred > 0);

    // The orphan goes; everything the two images need stays.
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 1, "{report:?}");
    assert_eq!(report.reclaimed_logical_bytes, orphan.len() as u64);
    assert_eq!(
        registry
            .stat_blob(&r, &sha256(&orphan))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::BlobUnknown,
        "its link goes with it"
    );
    let reclaimed: Vec<Event> = events
        .take()
        .into_iter()
        .filter(|e| matches!(e, Event::BlobReclaimed { .. }))
        .collect();
    assert_eq!(
        reclaimed,
        vec![Event::BlobReclaimed {
            digest: sha256(&orphan),
            size: orphan.len() as u64
        }]
    );
    assert_eq!(pull_everything(&registry).await, 2);

    // Deleting image a frees its own layer, config and manifest; the shared layer stays.
    registry.delete_manifest(&r, &a).await.unwrap();
    let before = stored_blobs(&registry).await;
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 3, "{report:?}");
    let after = stored_blobs(&registry).await;
    let gone: Vec<_> = before
        .iter()
        .filter(|d| !after.contains(d))
        .cloned()
        .collect();
    let mut expected = vec![sha256(&only_a), sha256(&config_a), a];
    expected.sort();
    assert_eq!(gone, expected);
    assert_eq!(pull_everything(&registry).await, 1);

    // A steady-state pass with nothing new examines nothing.
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(
        (report.examined, report.reclaimed_blobs),
        (0, 0),
        "{report:?}"
    );

    // A reclaimed blob can be pushed again.
    registry
        .push_blob(&r, &sha256(&orphan), orphan.clone())
        .await
        .unwrap();
    assert_eq!(
        registry
            .read_blob(&r, &sha256(&orphan), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        orphan
    );
}

#[tokio::test]
async fn a_dry_run_reports_what_a_real_run_then_does() {
    let registry = registry_without_grace();
    let r = repo("app");
    for i in 0..5u8 {
        let config = Bytes::from(format!("{{\"n\":{i}}}"));
        let layer = Bytes::from(vec![i; 1000 + i as usize]);
        let digest = push_image(&registry, &r, &tag(&format!("t{i}")), &config, &[&layer])
            .await
            .unwrap();
        if i % 2 == 0 {
            registry.delete_manifest(&r, &digest).await.unwrap();
        }
    }
    let before = stored_blobs(&registry).await;
    let preview = registry
        .collect_garbage(&GcOptions {
            dry_run: true,
            ..now_options()
        })
        .await
        .unwrap();
    assert_eq!(
        stored_blobs(&registry).await,
        before,
        "a dry run changes nothing"
    );
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert!(preview.dry_run && !report.dry_run);
    assert_eq!(
        preview.reclaimed_blobs, 9,
        "3 images x (manifest, config, layer)"
    );
    assert_eq!(
        (
            preview.reclaimed_blobs,
            preview.reclaimed_logical_bytes,
            preview.reclaimed_stored_bytes
        ),
        (
            report.reclaimed_blobs,
            report.reclaimed_logical_bytes,
            report.reclaimed_stored_bytes
        )
    );
    assert_eq!(pull_everything(&registry).await, 2);
}

#[tokio::test]
async fn steps_are_bounded_and_resume_where_they_stopped() {
    let registry = registry_without_grace();
    let r = repo("app");
    for i in 0..25u32 {
        let blob = Bytes::from(i.to_le_bytes().to_vec());
        registry.push_blob(&r, &sha256(&blob), blob).await.unwrap();
    }
    let options = GcOptions {
        batch: 10,
        ..now_options()
    };
    let mut total = GcReport::default();
    let mut cursor = None;
    let mut steps = 0;
    loop {
        let (report, next) = registry.gc_step(&options, cursor.as_ref()).await.unwrap();
        assert!(report.examined <= 10);
        total.reclaimed_blobs += report.reclaimed_blobs;
        steps += 1;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(total.reclaimed_blobs, 25);
    assert!(steps >= 3);
    assert!(stored_blobs(&registry).await.is_empty());
}

#[tokio::test]
async fn a_full_scan_finds_blobs_stored_behind_the_registrys_back() {
    let registry = registry_without_grace();
    let stray = Bytes::from_static(b"written straight into the blob store");
    wharf::BlobStoreExt::put_bytes(registry.blob_store().as_ref(), &sha256(&stray), stray)
        .await
        .unwrap();
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 0, "not a candidate: not visited");
    let full = GcOptions {
        full_scan: true,
        ..now_options()
    };
    // A full scan starts tracking it, and it goes once the grace period has passed (at
    // once here).
    let report = registry.collect_garbage(&full).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 1, "{report:?}");
    assert!(stored_blobs(&registry).await.is_empty());
}

#[tokio::test]
async fn abandoned_uploads_are_expired() {
    let clock = Arc::new(wharf::testing::ManualClock::starting_now());
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .upload_expiry(Duration::ZERO)
        .gc_grace(Duration::ZERO)
        .clock(clock.clone())
        .build()
        .unwrap();
    let r = repo("app");
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, Bytes::from_static(b"half a layer"))
        .await
        .unwrap();
    registry.flush_uploads().await.unwrap();
    clock.advance(Duration::from_millis(5));
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(report.expired_uploads, 1);
    assert_eq!(
        registry
            .upload_status(&r, &upload.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::BlobUploadUnknown
    );
}

/// The grace period of the race: far longer than an in-memory push takes, yet short
/// enough that blobs are judged many times during the race.
const RACE_GRACE: Duration = Duration::from_millis(100);

/// Many pushes of images sharing layers, deletes and collections, all at once; then
/// every surviving image is pulled in full, and once everything is deleted nothing is
/// left behind.
async fn race(registry: Registry) {
    let repos = [repo("race/a"), repo("race/b")];
    let layers: Vec<Bytes> = (0..6u8)
        .map(|i| Bytes::from(vec![i; 4096 + i as usize]))
        .collect();
    let layers = Arc::new(layers);
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let grace = RACE_GRACE;

    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let (registry, layers, pushed, refused) = (
            registry.clone(),
            layers.clone(),
            pushed.clone(),
            refused.clone(),
        );
        let repos = repos.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..60u64 {
                let r = &repos[((worker + i) % 2) as usize];
                let config = Bytes::from(format!("{{\"worker\":{worker},\"i\":{i}}}"));
                let picked = [
                    &layers[(i % 6) as usize],
                    &layers[((i + worker + 1) % 6) as usize],
                ];
                let reference = if i % 3 == 0 {
                    Reference::Digest(sha256(&image(&config, &picked)))
                } else {
                    tag(&format!("w{worker}-{}", i % 4))
                };
                match push_image(&registry, r, &reference, &config, &picked).await {
                    Ok(_) => pushed.fetch_add(1, Ordering::Relaxed),
                    // The collector removed a layer between the client's HEAD and its
                    // manifest: refused cleanly, as a real client would see it.
                    Err(e) if e.kind() == ErrorKind::ManifestBlobUnknown => {
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    // Slower than half the grace period (a loaded machine): refused before
                    // its commit point, to be pushed again.
                    Err(e) if e.kind() == ErrorKind::Conflict && e.is_retryable() => {
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => panic!("push failed: {e}"),
                };
                if i % 5 == 0 {
                    tokio::time::sleep(grace * 2).await;
                }
            }
        }));
    }
    let deleter = {
        let (registry, repos, stop) = (registry.clone(), repos.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let r = &repos[n % 2];
                n += 1;
                if let Ok(images) = registry.inventory(r).await {
                    for image in images.iter().skip(n % 2).step_by(2) {
                        match registry.delete_manifest(r, &image.digest).await {
                            Ok(()) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    ErrorKind::ManifestUnknown | ErrorKind::Conflict
                                ) => {}
                            Err(e) => panic!("delete failed: {e}"),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let collector = {
        let (registry, stop) = (registry.clone(), stop.clone());
        tokio::spawn(async move {
            let mut total = GcReport::default();
            let options = GcOptions {
                grace,
                batch: 7,
                ..GcOptions::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let report = registry.collect_garbage(&options).await.unwrap();
                total.reclaimed_blobs += report.reclaimed_blobs;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            total
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    deleter.await.unwrap();
    let collected = collector.await.unwrap();
    let pushed = pushed.load(Ordering::Relaxed);
    assert!(pushed > 100, "only {pushed} pushes succeeded");
    assert!(
        collected.reclaimed_blobs > 0,
        "the collector never reclaimed anything"
    );

    // One more collection after the grace period, then pull everything that survived.
    tokio::time::sleep(grace).await;
    registry
        .collect_garbage(&GcOptions {
            grace,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    let survivors = pull_everything(&registry).await;
    assert!(survivors > 0);

    // Delete everything (indexes first is not needed: there are none) and collect once
    // the grace period has passed: no blob may be left behind.
    for r in &repos {
        for image in registry.inventory(r).await.unwrap() {
            registry.delete_manifest(r, &image.digest).await.unwrap();
        }
    }
    tokio::time::sleep(grace).await;
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert!(report.reclaimed_blobs > 0);
    assert_eq!(
        stored_blobs(&registry).await,
        Vec::<Digest>::new(),
        "leaked blobs"
    );
    eprintln!(
        "pushed {pushed}, refused {}, reclaimed during the race {}, survivors {survivors}",
        refused.load(Ordering::Relaxed),
        collected.reclaimed_blobs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_pushes_deletes_and_collections_on_memory() {
    race(
        Registry::builder()
            .object_store(Arc::new(object_store::memory::InMemory::new()))
            .meta_store(Arc::new(MemoryMetaStore::new()))
            .gc_grace(RACE_GRACE)
            .build()
            .unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_pushes_deletes_and_collections_on_an_object_store() {
    race(
        common::builder_over(Arc::new(object_store::memory::InMemory::new()))
            .await
            .gc_grace(RACE_GRACE)
            .build()
            .unwrap(),
    )
    .await;
}

/// A store written before garbage collection existed has no blob records, references or
/// candidates, and manifest records without their blob lists. The first collection
/// records them; nothing an image needs is lost, and a later delete frees its blobs.
#[tokio::test]
async fn a_store_from_before_garbage_collection_keeps_its_images() {
    let registry = registry_without_grace();
    let r = repo("old/app");
    let shared = Bytes::from_static(b"a base layer from long ago");
    let (c1, c2) = (
        Bytes::from_static(b"{\"v\":1}"),
        Bytes::from_static(b"{\"v\":2}"),
    );
    let v1 = push_image(&registry, &r, &tag("v1"), &c1, &[&shared])
        .await
        .unwrap();
    push_image(&registry, &r, &tag("v2"), &c2, &[&shared])
        .await
        .unwrap();
    // Turn the metadata into what an older version wrote.
    let meta = registry.meta_store();
    for prefix in ["blob/", "ref/", "gc/"] {
        for key in meta.list_keys(prefix, None, 10_000).await.unwrap() {
            meta.delete(&key, wharf::Expect::Any).await.unwrap();
        }
    }
    for entry in meta.list("manifest/", None, 100).await.unwrap() {
        let mut record: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
        let object = record.as_object_mut().unwrap();
        object.remove("blobs");
        object.remove("held");
        meta.put(
            &entry.key,
            Bytes::from(serde_json::to_vec(&record).unwrap()),
            wharf::Expect::Version(entry.version),
        )
        .await
        .unwrap();
    }

    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 0, "{report:?}");
    assert_eq!(pull_everything(&registry).await, 2);
    let full = GcOptions {
        full_scan: true,
        ..now_options()
    };
    assert_eq!(
        registry
            .collect_garbage(&full)
            .await
            .unwrap()
            .reclaimed_blobs,
        0
    );
    assert_eq!(pull_everything(&registry).await, 2);

    // v1's own blobs (manifest and config) go once it is deleted; the shared layer stays.
    registry.delete_manifest(&r, &v1).await.unwrap();
    let report = registry.collect_garbage(&now_options()).await.unwrap();
    assert_eq!(report.reclaimed_blobs, 2, "{report:?}");
    assert_eq!(pull_everything(&registry).await, 1);
}
