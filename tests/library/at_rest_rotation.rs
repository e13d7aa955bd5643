//! KEK rotation through the registry (interrupted at every storage operation, and
//! across settings and revocations), and range reads of encoded blobs that fetch only
//! the frames they need.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use wharf::testing::{FaultMode, FaultyStore};
use wharf::{
    Algorithm, AtRest, BlobStore, ErrorKind, ObjectBlobStore, Registry, RepoName,
    RepositorySettings,
};

use common::{repo, sha256};

use super::at_rest::{all_paths, compressible, keys, random, registry_over};

/// Pushes a few blobs into two repositories, one with its own KEK.
async fn populate(registry: &Registry) -> Vec<(RepoName, Bytes)> {
    let tenant = RepositorySettings {
        encryption_key: Some("tenant".into()),
        ..Default::default()
    };
    registry
        .create_repository(&repo("t/app"), tenant)
        .await
        .unwrap();
    let mut pushed = Vec::new();
    for i in 0..4u64 {
        let name = if i % 2 == 0 {
            repo("app")
        } else {
            repo("t/app")
        };
        let data = random(70_000 + i as usize * 1000, 10 + i);
        registry
            .push_blob(&name, &sha256(&data), data.clone())
            .await
            .unwrap();
        pushed.push((name, data));
    }
    pushed
}

async fn assert_all_readable(registry: &Registry, pushed: &[(RepoName, Bytes)], when: &str) {
    for (name, data) in pushed {
        let read = registry
            .read_blob(name, &sha256(data), None)
            .await
            .unwrap_or_else(|e| panic!("{when}: {name}: {e}"));
        assert_eq!(read.bytes().await.unwrap(), *data, "{when}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_interrupted_at_every_operation_finishes_when_run_again() {
    for mode in [FaultMode::Crash, FaultMode::FailOnce] {
        for n in 0.. {
            let faulty = FaultyStore::new(Arc::new(InMemory::new()));
            let provider = keys(&["default", "tenant", "2026-11"]);
            let registry = registry_over(Arc::new(faulty.clone()), provider.clone());
            let pushed = populate(&registry).await;
            let progress = std::sync::Mutex::new(Vec::new());
            faulty.arm(n, mode);
            let outcome = registry
                .rotate_kek_with("default", "2026-11", &|p| progress.lock().unwrap().push(p))
                .await;
            let fired = faulty.fired();
            faulty.disarm();
            if !fired {
                let done = outcome.unwrap();
                assert_eq!((done.rewrapped, done.total), (2, 2));
                let seen = progress.into_inner().unwrap();
                assert_eq!(seen.first().map(|p| p.rewrapped), Some(0));
                assert_eq!(seen.last(), Some(&done));
                assert!(n > 5, "rotation ran through only {n} operations");
                break;
            }
            // Whatever happened, every blob reads, through old or new KEK.
            assert_all_readable(&registry, &pushed, &format!("{mode:?} at {n}")).await;
            // Running it again finishes it; then the old KEK is not needed.
            registry.rotate_kek("default", "2026-11").await.unwrap();
            provider.remove("default");
            assert_all_readable(&registry, &pushed, &format!("{mode:?} at {n}, rerun")).await;
            let wraps: Vec<_> = all_paths(faulty.inner().as_ref(), "keys").await;
            assert!(
                wraps.iter().all(|p| p.filename() != Some("default")),
                "{mode:?} at {n}: no wrap left under the old KEK"
            );
            // New blobs go under the new KEK.
            let data = random(1000, 99);
            registry
                .push_blob(&repo("app"), &sha256(&data), data.clone())
                .await
                .unwrap();
            assert_all_readable(&registry, &[(repo("app"), data)], "after rotation").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_range_of_a_1_gib_blob_fetches_at_most_two_frames() {
    const GIB: u64 = 1 << 30;
    const FRAME: u64 = wharf::codec::DEFAULT_FRAME_SIZE as u64;
    let faulty = FaultyStore::new(Arc::new(InMemory::new()));
    let keys = keys(&["main"]);
    let blobs = ObjectBlobStore::new(Arc::new(faulty.clone()))
        .with_key_provider(keys)
        .with_at_rest(AtRest::encrypted("main"));
    // 1 GiB streamed from a 4 MiB pattern that changes every chunk (no frame repeats).
    let pattern = random(4 << 20, 8);
    let mut writer = blobs.writer(Algorithm::Sha256).await.unwrap();
    let mut hasher = wharf::Digester::new(Algorithm::Sha256);
    for i in 0..GIB / (4 << 20) {
        let mut chunk = pattern.to_vec();
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        hasher.update(&chunk);
        writer.write(chunk.into()).await.unwrap();
    }
    let digest = hasher.finish();
    writer.commit(&digest, Some(GIB)).await.unwrap();

    for offset in [0, FRAME - 512, 300 * FRAME + 7, GIB / 2 - 100, GIB - 1024] {
        faulty.take_gets();
        let read = blobs
            .read(&digest, Some(offset..offset + 1024))
            .await
            .unwrap();
        let got = read.bytes().await.unwrap();
        assert_eq!(got.len(), 1024);
        let gets = faulty.take_gets();
        let fetched: u64 = gets.iter().map(|(_, r)| r.end - r.start).sum();
        // Header, a tail holding the frame index, the wrapped key (with its KEK's
        // fingerprint), and the frames.
        let index_and_key = 24 + (64 << 10) + 81;
        assert!(
            fetched <= index_and_key + 2 * (FRAME + 21),
            "offset {offset}: fetched {fetched} bytes in {gets:?}"
        );
        let frame_gets = gets
            .iter()
            .filter(|(_, r)| r.end - r.start > 64 << 10)
            .count();
        assert!(frame_gets <= 1, "offset {offset}: {gets:?}");
        // The content is right: byte i of the blob is byte i % 4 MiB of chunk i / 4 MiB.
        for (i, byte) in got.iter().enumerate() {
            let at = offset + i as u64;
            let chunk = at / (4 << 20);
            let within = (at % (4 << 20)) as usize;
            let expected = if within < 8 {
                chunk.to_le_bytes()[within]
            } else {
                pattern[within]
            };
            assert_eq!(*byte, expected, "offset {offset}, byte {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_range_of_encoded_blobs_reads_back() {
    let keys = keys(&["main"]);
    let frame = 64 << 10;
    let configs = [
        AtRest::encrypted("main"),
        AtRest::default(),
        AtRest {
            compression: wharf::codec::Compression::Off,
            ..AtRest::encrypted("main")
        },
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound.max(1)
    };
    for case in 0..60u64 {
        let at_rest = configs[(case % 3) as usize].clone();
        let blobs = ObjectBlobStore::new(Arc::new(InMemory::new()))
            .with_key_provider(keys.clone())
            .with_frame_size(frame)
            .with_at_rest(at_rest);
        // Sizes around frame boundaries, and empty.
        let size = match case % 5 {
            0 => 0,
            1 => frame as u64 * (1 + next(3)),
            2 => frame as u64 * (1 + next(3)) + 1,
            3 => frame as u64 * (1 + next(3)) - 1,
            _ => 1 + next(4 * frame as u64),
        } as usize;
        let data = if case % 2 == 0 {
            compressible(size, case)
        } else {
            random(size, case)
        };
        let digest = sha256(&data);
        // Written in uneven chunks, with a checkpoint and a resume in the middle.
        let mut writer = blobs.writer(Algorithm::Sha256).await.unwrap();
        let cut = next(size as u64 + 1) as usize;
        for piece in data[..cut].chunks(1 + next(100_000) as usize) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let state = writer.checkpoint().await.unwrap();
        drop(writer);
        let mut writer = blobs.resume_writer(&state).await.unwrap();
        for piece in data[cut..].chunks(1 + next(100_000) as usize) {
            writer.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        writer.commit(&digest, Some(size as u64)).await.unwrap();

        let whole = blobs.read(&digest, None).await.unwrap();
        assert_eq!(whole.info.size, size as u64, "case {case}");
        assert_eq!(whole.bytes().await.unwrap(), data, "case {case}");
        for _ in 0..8 {
            let start = next(size as u64 + 1);
            let end = start + next(size as u64 - start + 1);
            let read = blobs.read(&digest, Some(start..end)).await.unwrap();
            assert_eq!(
                read.bytes().await.unwrap(),
                data.slice(start as usize..end as usize),
                "case {case}: {start}..{end} of {size}"
            );
        }
        let past = blobs
            .read(&digest, Some(0..size as u64 + 1))
            .await
            .unwrap_err();
        assert_eq!(past.kind(), ErrorKind::RangeInvalid, "case {case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_works_across_settings_revocations_and_rotations() {
    let provider = keys(&["default", "tenant-a", "tenant-b", "tenant-c", "next"]);
    let registry = registry_over(Arc::new(InMemory::new()), provider.clone());
    share_revoke_and_rotate(&registry, &provider).await;
}

/// The same with small blobs and every wrap in the metadata store, as on local disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_works_across_rotations_with_small_objects_in_the_metadata_store() {
    let provider = keys(&["default", "tenant-a", "tenant-b", "tenant-c", "next"]);
    let meta: Arc<dyn wharf::MetaStore> = Arc::new(wharf::MemoryMetaStore::new());
    let objects = wharf::SmallObjects::new(Arc::new(InMemory::new()), meta.clone());
    let registry = Registry::builder()
        .checkpoint_interval(1)
        .object_store(Arc::new(objects))
        .meta_store(meta.clone())
        .key_provider(provider.clone())
        .build()
        .unwrap();
    share_revoke_and_rotate(&registry, &provider).await;
    let kept = meta.list_keys("object/keys/", None, 100).await.unwrap();
    assert!(
        kept.iter().any(|k| k.ends_with("/next")),
        "wraps, rotated ones too, are kept in the metadata store: {kept:?}"
    );
}

/// Shares an encrypted blob between tenants of their own KEKs, revokes one, mounts it
/// into another, and rotates the default KEK under an upload in flight.
async fn share_revoke_and_rotate(registry: &Registry, provider: &wharf::keys::MemoryKeyProvider) {
    let settings = |kek: &str| RepositorySettings {
        encryption_key: Some(kek.into()),
        ..Default::default()
    };
    for (name, kek) in [
        ("a/app", "tenant-a"),
        ("b/app", "tenant-b"),
        ("c/app", "tenant-c"),
    ] {
        registry
            .create_repository(&repo(name), settings(kek))
            .await
            .unwrap();
    }
    let plain = RepositorySettings {
        encrypted: Some(false),
        ..Default::default()
    };
    registry
        .create_repository(&repo("plain/app"), plain)
        .await
        .unwrap();
    let layer = random(200_000, 21);
    let digest = sha256(&layer);
    for name in ["a/app", "b/app", "plain/app"] {
        registry
            .push_blob(&repo(name), &digest, layer.clone())
            .await
            .unwrap();
    }
    // A repository that writes unencrypted reads a shared encrypted copy.
    let read = registry
        .read_blob(&repo("plain/app"), &digest, None)
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap(), layer);

    // One holder's KEK revoked: others still share the blob with new tenants.
    provider.remove("tenant-a");
    registry
        .mount_blob(&repo("c/app"), &digest, Some(&repo("b/app")))
        .await
        .unwrap();
    let read = registry
        .read_blob(&repo("c/app"), &digest, None)
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap(), layer);

    // An upload that began before a rotation ends readable under the new KEK alone.
    let r = repo("app");
    let data = compressible(600_000, 22);
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, data.slice(..300_000))
        .await
        .unwrap();
    registry.rotate_kek("default", "next").await.unwrap();
    registry
        .finish_upload(&r, &upload.id, &sha256(&data), Some(data.slice(300_000..)))
        .await
        .unwrap();
    provider.remove("default");
    let read = registry.read_blob(&r, &sha256(&data), None).await.unwrap();
    assert_eq!(read.bytes().await.unwrap(), data);
}
