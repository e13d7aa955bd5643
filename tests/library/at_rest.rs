//! Blobs at rest through the registry: encrypted and compressed by default, tenant keys
//! over one copy, per-repository switches, refused keys, resumed and concurrent
//! encrypted writes, and storage figures (KEK rotation and range reads:
//! `at_rest_rotation.rs`).

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use wharf::keys::{KeyProvider, MemoryKeyProvider};
use wharf::{
    Algorithm, AtRest, BlobStore, Digest, ErrorKind, MemoryMetaStore, ObjectBlobStore, Registry,
    RepositorySettings,
};

use common::{repo, sha256};

/// Bytes that compress about 3:1, like an uncompressed tar of text files.
pub(super) fn compressible(len: usize, seed: u64) -> Bytes {
    let words = [
        "usr/share/doc ",
        "copyright ",
        "#!/bin/sh\n",
        "exit 0\n",
        "Licensed under ",
        "the Apache License ",
        "0644 root root ",
        "lib/x86_64-linux-gnu/ ",
    ];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(words[(state % words.len() as u64) as usize].as_bytes());
        out.push(b'0' + (state >> 60) as u8 % 10);
    }
    out.truncate(len);
    out.into()
}

/// Bytes that do not compress.
pub(super) fn random(len: usize, seed: u64) -> Bytes {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

pub(super) async fn all_paths(store: &dyn ObjectStore, prefix: &str) -> Vec<Path> {
    store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap()
}

pub(super) fn registry_over(store: Arc<dyn ObjectStore>, keys: Arc<MemoryKeyProvider>) -> Registry {
    Registry::builder()
        .checkpoint_interval(1)
        .object_store(store)
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .key_provider(keys)
        .build()
        .unwrap()
}

pub(super) fn keys(names: &[&str]) -> Arc<MemoryKeyProvider> {
    let keys = MemoryKeyProvider::default();
    for name in names {
        keys.generate(name).unwrap();
    }
    Arc::new(keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_encrypts_and_compresses() {
    let dir = tempfile::tempdir().unwrap();
    let r = repo("app");
    let text = compressible(3 << 20, 1);
    let noise = random(2 << 20, 2);
    {
        let registry = Registry::open_local(dir.path()).unwrap();
        registry
            .push_blob(&r, &sha256(&text), text.clone())
            .await
            .unwrap();
        // A chunked upload, checkpointed after each chunk.
        let upload = registry.start_upload(&r).await.unwrap();
        registry
            .append_upload(&r, &upload.id, 0, noise.slice(..1_500_000))
            .await
            .unwrap();
        registry
            .finish_upload(
                &r,
                &upload.id,
                &sha256(&noise),
                Some(noise.slice(1_500_000..)),
            )
            .await
            .unwrap();
    }
    let key_file = dir.path().join("keys.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is owner-only");

    // What is on disk is neither the bytes nor anything that contains them.
    for data in [&text, &noise] {
        let hex = sha256(data).hex().to_owned();
        let dir = dir.path().join("blobs/blobs/sha256").join(&hex[..2]);
        assert!(!dir.join(&hex).exists(), "no plain copy");
        let stored = std::fs::read(dir.join(format!("{hex}.whrf"))).unwrap();
        assert_eq!(stored[5] & 1, 1, "the header says encrypted");
        let probe = &data[1_000_000..1_000_064];
        assert!(
            !stored.windows(probe.len()).any(|w| w == probe),
            "stored bytes do not contain the content"
        );
    }

    // Another process with the same directory reads everything back.
    let registry = Registry::open_local(dir.path()).unwrap();
    for data in [&text, &noise] {
        let read = registry.read_blob(&r, &sha256(data), None).await.unwrap();
        assert_eq!(read.bytes().await.unwrap(), *data);
        let part = registry
            .read_blob(&r, &sha256(data), Some(1_048_000..1_049_000))
            .await
            .unwrap();
        assert_eq!(
            part.bytes().await.unwrap(),
            data.slice(1_048_000..1_049_000)
        );
    }
    let stats = registry.storage_stats(Some(&r)).await.unwrap();
    assert_eq!(stats.blobs, 2);
    assert_eq!(stats.logical_bytes, (text.len() + noise.len()) as u64);
    assert!(
        stats.stored_bytes < stats.logical_bytes - (text.len() as u64) / 2,
        "compressible content is stored smaller: {stats:?}"
    );
    assert_eq!(registry.storage_stats(None).await.unwrap(), stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_share_one_copy_and_lose_only_their_own_access() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let keys = keys(&["default", "tenant-a", "tenant-b", "tenant-c"]);
    let registry = registry_over(store.clone(), keys.clone());
    for (name, kek) in [
        ("a/app", "tenant-a"),
        ("b/app", "tenant-b"),
        ("c/app", "tenant-c"),
    ] {
        let settings = RepositorySettings {
            encryption_key: Some(kek.into()),
            ..Default::default()
        };
        registry
            .create_repository(&repo(name), settings)
            .await
            .unwrap();
    }
    let layer = random(300_000, 3);
    let digest = sha256(&layer);
    registry
        .push_blob(&repo("a/app"), &digest, layer.clone())
        .await
        .unwrap();
    registry
        .push_blob(&repo("b/app"), &digest, layer.clone())
        .await
        .unwrap();
    registry
        .mount_blob(&repo("c/app"), &digest, Some(&repo("a/app")))
        .await
        .unwrap();

    assert_eq!(
        all_paths(store.as_ref(), "blobs").await.len(),
        1,
        "one copy"
    );
    let wraps: BTreeSet<String> = all_paths(store.as_ref(), "keys")
        .await
        .iter()
        .map(|p| p.filename().unwrap().to_owned())
        .collect();
    assert_eq!(
        wraps,
        ["tenant-a", "tenant-b", "tenant-c"]
            .map(String::from)
            .into()
    );

    keys.remove("tenant-a");
    let err = registry
        .read_blob(&repo("a/app"), &digest, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(err.message().contains("tenant-a"), "{err}");
    for other in ["b/app", "c/app"] {
        let read = registry
            .read_blob(&repo(other), &digest, None)
            .await
            .unwrap();
        assert_eq!(read.bytes().await.unwrap(), layer, "{other} still reads");
    }

    // A repository whose KEK has no wrap of a blob cannot read it through the store.
    let blobs = registry.blob_store();
    let err = blobs
        .read_with(&digest, None, &AtRest::encrypted("default"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_per_repository_and_older_blobs_stay_readable() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let registry = registry_over(store.clone(), keys(&["default"]));
    let r = repo("plain/app");
    let plain = RepositorySettings {
        encrypted: Some(false),
        compressed: Some(false),
        ..Default::default()
    };
    registry.create_repository(&r, plain).await.unwrap();
    let first = compressible(200_000, 4);
    registry
        .push_blob(&r, &sha256(&first), first.clone())
        .await
        .unwrap();
    let hex = sha256(&first).hex().to_owned();
    let framed = Path::from(format!("blobs/sha256/{}/{hex}.whrf", &hex[..2]));
    let object = store.get(&framed).await.unwrap().bytes().await.unwrap();
    let header = wharf::codec::Header::decode(&object).unwrap();
    assert_eq!(header.sealing, wharf::codec::Sealing::NamedChecksums);
    assert_eq!(
        wharf::codec::decode(&object, None).unwrap(),
        first,
        "framed, neither compressed nor encrypted"
    );

    let encrypted_only = RepositorySettings {
        encrypted: Some(true),
        compressed: Some(false),
        ..Default::default()
    };
    registry
        .update_repository(&r, encrypted_only)
        .await
        .unwrap();
    let second = compressible(200_000, 5);
    registry
        .push_blob(&r, &sha256(&second), second.clone())
        .await
        .unwrap();
    let hex = sha256(&second).hex().to_owned();
    let encoded = Path::from(format!("blobs/sha256/{}/{hex}.whrf", &hex[..2]));
    let stored = store.get(&encoded).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored[5] & 1, 1, "encrypted");
    assert!(stored.len() > second.len(), "not compressed");

    for data in [&first, &second] {
        let read = registry.read_blob(&r, &sha256(data), None).await.unwrap();
        assert_eq!(read.bytes().await.unwrap(), *data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_wrong_keys_are_refused() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let ours = keys(&["default"]);
    let registry = registry_over(store.clone(), ours.clone());
    let r = repo("app");
    let layer = random(100_000, 6);
    let digest = sha256(&layer);
    registry
        .push_blob(&r, &digest, layer.clone())
        .await
        .unwrap();

    // A process whose provider lacks the KEK.
    let without = registry_over_same_meta(&registry, store.clone(), keys(&[]));
    let err = without.blob_store().read(&digest, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(err.message().contains("default"), "{err}");

    // A replica whose KEK of that name is another key (another key file): its reads
    // say so, naming the KEK and both fingerprints, instead of calling the blob corrupt.
    let theirs = keys(&["default"]);
    let wrong = registry_over_same_meta(&registry, store.clone(), theirs.clone());
    let ours_fp = ours.fingerprint("default").await.unwrap();
    let theirs_fp = theirs.fingerprint("default").await.unwrap();
    assert_ne!(ours_fp, theirs_fp);
    let err = wrong.blob_store().read(&digest, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    for fragment in ["\"default\"", &ours_fp, &theirs_fp] {
        assert!(
            err.message().contains(fragment),
            "{fragment} missing: {err}"
        );
    }
    assert!(
        !format!("{err:?}").contains("DataKey("),
        "no key material in errors"
    );
    // It is refused at start, and before it writes anything the others cannot read.
    let err = wrong.check_keys(["default"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    for fragment in ["\"default\"", &ours_fp, &theirs_fp] {
        assert!(
            err.message().contains(fragment),
            "{fragment} missing: {err}"
        );
    }
    let other = random(5_000, 7);
    let err = wrong
        .push_blob(&r, &sha256(&other), other.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(registry.stat_blob(&r, &sha256(&other)).await.is_err());
    // The replica with the right key passes the check and reads everything.
    registry.check_keys(["default"]).await.unwrap();
    let same = registry_over_same_meta(&registry, store.clone(), ours.clone());
    same.check_keys(["default"]).await.unwrap();
    assert_eq!(
        same.read_blob(&r, &digest, None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        layer
    );
}

pub(super) fn registry_over_same_meta(
    registry: &Registry,
    store: Arc<dyn ObjectStore>,
    keys: Arc<MemoryKeyProvider>,
) -> Registry {
    Registry::builder()
        .checkpoint_interval(1)
        .object_store(store)
        .meta_store(registry.meta_store().clone())
        .key_provider(keys)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_upload_resumes_in_another_process() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let provider = keys(&["default"]);
    let first = registry_over(store.clone(), provider.clone());
    let r = repo("app");
    let data = compressible(5 << 20, 7);
    let upload = first.start_upload(&r).await.unwrap();
    first
        .append_upload(&r, &upload.id, 0, data.slice(..2_500_000))
        .await
        .unwrap();
    // The first process is gone; another picks the session up from the metadata.
    let second = registry_over_same_meta(&first, store.clone(), provider);
    drop(first);
    let status = second.upload_status(&r, &upload.id).await.unwrap();
    assert_eq!(status.offset, 2_500_000);
    second
        .append_upload(&r, &upload.id, 2_500_000, data.slice(2_500_000..4_000_000))
        .await
        .unwrap();
    second
        .finish_upload(
            &r,
            &upload.id,
            &sha256(&data),
            Some(data.slice(4_000_000..)),
        )
        .await
        .unwrap();
    let read = second.read_blob(&r, &sha256(&data), None).await.unwrap();
    assert_eq!(read.bytes().await.unwrap(), data);
    assert!(
        all_paths(store.as_ref(), "uploads").await.is_empty(),
        "nothing staged is left"
    );

    // A client digest of another algorithm: the staged frames are opened and hashed again.
    let upload = second.start_upload(&r).await.unwrap();
    second
        .append_upload(&r, &upload.id, 0, data.slice(..3_000_000))
        .await
        .unwrap();
    let sha512 = Digest::of(Algorithm::Sha512, &data);
    second
        .finish_upload(&r, &upload.id, &sha512, Some(data.slice(3_000_000..)))
        .await
        .unwrap();
    let read = second
        .read_blob(&r, &sha512, Some(10..5_000_000))
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap(), data.slice(10..5_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_under_different_keks_both_read_the_copy_that_wins() {
    let keys = keys(&["a", "b"]);
    for round in 0..20u64 {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let blobs = ObjectBlobStore::new(store.clone()).with_key_provider(keys.clone());
        let data = random(700_000, 100 + round);
        let digest = sha256(&data);
        let mut writers = Vec::new();
        for kek in ["a", "b"] {
            let mut writer = blobs
                .writer_with(Algorithm::Sha256, &AtRest::encrypted(kek))
                .await
                .unwrap();
            writer.write(data.clone()).await.unwrap();
            writers.push(writer);
        }
        let b = writers.pop().unwrap();
        let a = writers.pop().unwrap();
        let (ra, rb) = tokio::join!(a.commit(&digest, None), b.commit(&digest, None));
        ra.unwrap();
        rb.unwrap();
        for kek in ["a", "b"] {
            let read = blobs
                .read_with(&digest, None, &AtRest::encrypted(kek))
                .await
                .unwrap_or_else(|e| panic!("round {round}: through {kek}: {e}"));
            assert_eq!(read.bytes().await.unwrap(), data, "round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bytes_of_an_encrypted_upload_are_sealed_and_checked() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let provider = keys(&["default"]);
    let registry = registry_over(store.clone(), provider.clone());
    let r = repo("app");
    let data = compressible(100_000, 23);
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, data.clone())
        .await
        .unwrap();
    let staged = all_paths(store.as_ref(), "uploads").await;
    let tail = staged
        .iter()
        .find(|p| p.filename().unwrap().starts_with("tail-"))
        .expect("a checkpoint saved the held bytes");
    let stored = store.get(tail).await.unwrap().bytes().await.unwrap();
    let probe = &data[50_000..50_064];
    assert!(
        !stored.windows(probe.len()).any(|w| w == probe),
        "held bytes are not stored in the clear"
    );
    let mut tampered = stored.to_vec();
    tampered[40] ^= 1;
    store.put(tail, tampered.into()).await.unwrap();
    // Another process resumes from the checkpoint and reads the held bytes back.
    let other = registry_over_same_meta(&registry, store.clone(), provider);
    let err = other
        .finish_upload(
            &r,
            &upload.id,
            &sha256(&data),
            Some(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
}
