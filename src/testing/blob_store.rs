//! The [`BlobStore`] conformance suite: one check per point of the trait's contract.
//! [`all`] checks points 1 to 7 on any store; [`at_rest`] checks 8 to 11 on a store that
//! encrypts.

use bytes::Bytes;
use futures::TryStreamExt;

use crate::blob::{AtRest, BlobStore, BlobStoreExt};
use crate::digest::{Algorithm, Digest};
use crate::error::{ErrorKind, Result};

/// Runs every check against `store`.
pub async fn all(store: &dyn BlobStore) {
    nothing_is_readable_before_commit(store).await;
    mismatches_publish_nothing(store).await;
    commits_of_stored_digests_succeed(store).await;
    reads_and_ranges_are_exact(store).await;
    stat_delete_and_list(store).await;
    checkpoint_and_resume(store).await;
    staging_is_listed_and_discarded(store).await;
    large_blobs_stream(store).await;
}

/// Random bytes unique to this run, so digests never collide with other runs.
fn unique_bytes(len: usize) -> Bytes {
    let mut data = vec![0u8; len];
    let seed = crate::util::random_id();
    let mut state = u64::from_str_radix(&seed[..16], 16).unwrap_or(1) | 1;
    for chunk in data.chunks_mut(8) {
        // xorshift64: cheap, and enough to defeat accidental compression or dedup.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    if len >= 16 {
        data[..16].copy_from_slice(&seed.as_bytes()[..16]);
    }
    data.into()
}

fn sha256(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

/// Contract 1, visibility.
pub async fn nothing_is_readable_before_commit(store: &dyn BlobStore) {
    let data = unique_bytes(1000);
    let digest = sha256(&data);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(data.clone()).await.unwrap();
    writer.checkpoint().await.unwrap();
    let err = store.read(&digest, None).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::BlobUnknown,
        "1: checkpointed bytes are not readable"
    );
    assert_eq!(
        store.stat(&digest).await.unwrap(),
        None,
        "1: nor visible to stat"
    );
    let info = writer.commit(&digest, Some(1000)).await.unwrap();
    assert_eq!(
        (info.digest.clone(), info.size),
        (digest.clone(), 1000),
        "1: commit reports the blob"
    );
    assert_eq!(
        store.get_bytes(&digest).await.unwrap(),
        data,
        "1: committed bytes are readable"
    );
}

/// Contract 1, mismatches.
pub async fn mismatches_publish_nothing(store: &dyn BlobStore) {
    let data = unique_bytes(5000);
    let wrong = sha256(b"something else");
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(data.clone()).await.unwrap();
    let staging = writer.checkpoint().await.unwrap().staging_id;
    let err = writer.commit(&wrong, None).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::DigestInvalid,
        "1: wrong digest is DigestInvalid"
    );
    assert_eq!(
        store.stat(&wrong).await.unwrap(),
        None,
        "1: nothing published under the claimed digest"
    );
    assert_eq!(
        store.stat(&sha256(&data)).await.unwrap(),
        None,
        "1: nor under the real one"
    );
    let areas: Vec<_> = store.list_staging().try_collect().await.unwrap();
    assert!(
        !areas.iter().any(|a| a.staging_id == staging),
        "1: staged bytes removed after a mismatch"
    );

    let right = sha256(&data);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(data.clone()).await.unwrap();
    let err = writer.commit(&right, Some(4999)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::SizeInvalid,
        "1: wrong size is SizeInvalid"
    );
    assert_eq!(
        store.stat(&right).await.unwrap(),
        None,
        "1: nothing published on a size mismatch"
    );

    let sha512 = Digest::of(Algorithm::Sha512, &data);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(data.clone()).await.unwrap();
    writer
        .commit(&sha512, None)
        .await
        .expect("1: a sha512 digest verifies a sha256-hashed write");
    assert_eq!(
        store.get_bytes(&sha512).await.unwrap(),
        data,
        "1: sha512 blob readable"
    );
}

/// Contract 2.
pub async fn commits_of_stored_digests_succeed(store: &dyn BlobStore) {
    let data = unique_bytes(3000);
    let digest = sha256(&data);
    store.put_bytes(&digest, data.clone()).await.unwrap();
    store
        .put_bytes(&digest, data.clone())
        .await
        .expect("2: committing a stored digest succeeds");
    let racing = (0..8).map(|_| store.put_bytes(&digest, data.clone()));
    for result in futures::future::join_all(racing).await {
        result.expect("2: concurrent commits of one digest all succeed");
    }
    let fresh = unique_bytes(3000);
    let fresh_digest = sha256(&fresh);
    let racing = (0..8).map(|_| store.put_bytes(&fresh_digest, fresh.clone()));
    for result in futures::future::join_all(racing).await {
        result.expect("2: concurrent first commits of one digest all succeed");
    }
    assert_eq!(
        store.get_bytes(&fresh_digest).await.unwrap(),
        fresh,
        "2: one intact copy"
    );
    let copies = store
        .list()
        .try_filter(|b| futures::future::ready(b.digest == fresh_digest))
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(copies.len(), 1, "2: listed once");
}

/// Contract 3.
pub async fn reads_and_ranges_are_exact(store: &dyn BlobStore) {
    let data = unique_bytes(10_000);
    let digest = sha256(&data);
    store.put_bytes(&digest, data.clone()).await.unwrap();
    for range in [
        0..1,
        0..10_000,
        1..9_999,
        4096..8192,
        9_999..10_000,
        5000..5000,
    ] {
        let read = store.read(&digest, Some(range.clone())).await.unwrap();
        assert_eq!(read.range, range, "3: read reports its range");
        assert_eq!(read.info.size, 10_000, "3: read reports the blob size");
        let got = read.bytes().await.unwrap();
        assert_eq!(
            got,
            data.slice(range.start as usize..range.end as usize),
            "3: range {range:?}"
        );
    }
    for bad in [0..10_001, 10_000..10_001, 20_000..20_100] {
        let err = store.read(&digest, Some(bad.clone())).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::RangeInvalid,
            "3: range {bad:?} past the end"
        );
    }
    let unknown = sha256(&unique_bytes(64));
    assert_eq!(
        store.read(&unknown, None).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown,
        "3: unknown digest"
    );
    assert_eq!(
        store.read(&unknown, Some(0..1)).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown,
        "3: unknown digest, ranged"
    );
    let empty = sha256(b"");
    store
        .put_bytes(&empty, Bytes::new())
        .await
        .expect("3: empty blob");
    assert!(
        store.get_bytes(&empty).await.unwrap().is_empty(),
        "3: empty blob reads empty"
    );
    assert_eq!(
        store.stat(&empty).await.unwrap().unwrap().size,
        0,
        "3: empty blob has size 0"
    );
}

/// Contracts 4 and 5.
pub async fn stat_delete_and_list(store: &dyn BlobStore) {
    let data = unique_bytes(777);
    let digest = sha256(&data);
    store.put_bytes(&digest, data).await.unwrap();
    assert_eq!(
        store.stat(&digest).await.unwrap().map(|i| i.size),
        Some(777),
        "4: stat size"
    );
    let listed: Vec<_> = store.list().try_collect().await.unwrap();
    assert!(
        listed.iter().any(|b| b.digest == digest && b.size == 777),
        "5: list has the blob"
    );
    store.delete(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None, "5: deleted");
    store
        .delete(&digest)
        .await
        .expect("5: deleting an absent blob succeeds");
    let listed: Vec<_> = store.list().try_collect().await.unwrap();
    assert!(
        !listed.iter().any(|b| b.digest == digest),
        "5: deleted blob not listed"
    );
}

/// Contract 6.
pub async fn checkpoint_and_resume(store: &dyn BlobStore) {
    let data = unique_bytes(100_000);
    let digest = sha256(&data);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    let mut state = writer.checkpoint().await.unwrap();
    assert_eq!(state.len(), 0, "6: empty checkpoint");
    drop(writer);
    // Cut at uneven places, resuming from serialized state each time as a new process would.
    for window in [0, 1, 4097, 50_000, 99_999, 100_000].windows(2) {
        let json = serde_json::to_string(&state).unwrap();
        let restored = serde_json::from_str(&json).unwrap();
        let mut writer = store.resume_writer(&restored).await.unwrap();
        assert_eq!(
            writer.len(),
            window[0] as u64,
            "6: resumed at the checkpoint"
        );
        writer
            .write(data.slice(window[0]..window[1]))
            .await
            .unwrap();
        state = writer.checkpoint().await.unwrap();
    }
    let writer = store.resume_writer(&state).await.unwrap();
    writer.commit(&digest, Some(100_000)).await.unwrap();
    assert_eq!(
        store.get_bytes(&digest).await.unwrap(),
        data,
        "6: resumed write equals the bytes"
    );
    let areas: Vec<_> = store.list_staging().try_collect().await.unwrap();
    assert!(
        !areas.iter().any(|a| a.staging_id == state.staging_id),
        "6: staging removed after commit"
    );
}

/// Contract 7.
pub async fn staging_is_listed_and_discarded(store: &dyn BlobStore) {
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(unique_bytes(100)).await.unwrap();
    let state = writer.checkpoint().await.unwrap();
    let areas: Vec<_> = store.list_staging().try_collect().await.unwrap();
    assert!(
        areas.iter().any(|a| a.staging_id == state.staging_id),
        "7: staging area listed"
    );
    store.discard_staging(&state.staging_id).await.unwrap();
    let areas: Vec<_> = store.list_staging().try_collect().await.unwrap();
    assert!(
        !areas.iter().any(|a| a.staging_id == state.staging_id),
        "7: staging area discarded"
    );
    assert!(
        store.discard_staging("../../blobs").await.is_err(),
        "7: hostile staging id refused"
    );
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    writer.write(unique_bytes(100)).await.unwrap();
    let id = writer.checkpoint().await.unwrap().staging_id;
    writer.abort().await.unwrap();
    let areas: Vec<_> = store.list_staging().try_collect().await.unwrap();
    assert!(
        !areas.iter().any(|a| a.staging_id == id),
        "7: abort removes the staging area"
    );
}

/// Contract 1 and 3 for blobs spanning many multipart parts.
pub async fn large_blobs_stream(store: &dyn BlobStore) {
    let data = unique_bytes(21 << 20);
    let digest = sha256(&data);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    // Uneven chunks, as network reads deliver them.
    let mut offset = 0;
    let mut step = 1;
    while offset < data.len() {
        let end = (offset + step).min(data.len());
        writer.write(data.slice(offset..end)).await.unwrap();
        offset = end;
        step = (step * 7 + 12_345) % (3 << 20) + 1;
    }
    writer
        .commit(&digest, Some(data.len() as u64))
        .await
        .unwrap();
    let got = store.get_bytes(&digest).await.unwrap();
    assert!(got == data, "3: large blob reads back exactly");
    let tail = store
        .read(&digest, Some((20 << 20)..(21 << 20)))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(tail == data.slice(20 << 20..), "3: range in the last part");
}

/// A KEK name the store under the at-rest checks must not be able to use.
pub const MISSING_KEK: &str = "conformance-no-such-kek";

/// Runs the at-rest checks (contract 8 to 11) against `store`, whose key provider holds
/// the KEKs `kek` and `other` and none named [`MISSING_KEK`]. Rotation moves every wrap
/// under `kek` in the store to `other`: run it on a store of its own.
pub async fn at_rest(store: &dyn BlobStore, kek: &str, other: &str) {
    at_rest_writes_read_back(store, kek).await;
    grants_open_blobs_to_another_kek(store, kek, other).await;
    footprints_tell_both_sizes(store).await;
    rotation_keeps_every_blob_readable(store, kek, other).await;
}

/// Writes `data` as `at_rest` says, straight through.
async fn write_with(store: &dyn BlobStore, data: &Bytes, at_rest: &AtRest) -> Result<Digest> {
    let digest = sha256(data);
    let mut writer = store.writer_with(Algorithm::Sha256, at_rest).await?;
    let half = data.len() / 2;
    writer.write(data.slice(..half)).await?;
    writer.write(data.slice(half..)).await?;
    writer.commit(&digest, Some(data.len() as u64)).await?;
    Ok(digest)
}

async fn read_all(store: &dyn BlobStore, digest: &Digest, at_rest: &AtRest) -> Result<Bytes> {
    store.read_with(digest, None, at_rest).await?.bytes().await
}

/// Contract 8.
pub async fn at_rest_writes_read_back(store: &dyn BlobStore, kek: &str) {
    let compressed = AtRest {
        encryption: None,
        ..AtRest::default()
    };
    for (what, setting) in [
        ("plain", AtRest::plain()),
        ("compressed", compressed),
        ("encrypted", AtRest::encrypted(kek)),
    ] {
        let data = unique_bytes(300_000);
        let digest = write_with(store, &data, &setting).await.unwrap();
        assert!(
            read_all(store, &digest, &setting).await.unwrap() == data,
            "8: a {what} blob reads back"
        );
        let slice = store
            .read_with(&digest, Some(100_000..100_100), &setting)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            slice == data.slice(100_000..100_100),
            "8: a range of a {what} blob"
        );
    }
    let data = unique_bytes(10_000);
    let digest = write_with(store, &data, &AtRest::encrypted(kek))
        .await
        .unwrap();
    let err = read_all(store, &digest, &AtRest::encrypted(MISSING_KEK))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "8: a reader without a wrap of the key is denied: {err}"
    );
    let err = write_with(
        store,
        &unique_bytes(10_000),
        &AtRest::encrypted(MISSING_KEK),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "8: a write under a KEK the store cannot use is denied: {err}"
    );
    // An upload session's path: the state first, the bytes later.
    let data = unique_bytes(50_000);
    let digest = sha256(&data);
    let staging = format!("conformance-{}", crate::util::random_id());
    let state = store
        .start_state(&staging, Algorithm::Sha256, &AtRest::encrypted(kek))
        .await
        .unwrap();
    let mut writer = store.resume_writer(&state).await.unwrap();
    writer.write(data.clone()).await.unwrap();
    writer.commit(&digest, None).await.unwrap();
    assert!(
        read_all(store, &digest, &AtRest::encrypted(kek))
            .await
            .unwrap()
            == data,
        "8: a write started from start_state reads back"
    );
    let err = read_all(store, &digest, &AtRest::encrypted(MISSING_KEK))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "8: and it was encrypted as its state said"
    );
}

/// Contract 9.
pub async fn grants_open_blobs_to_another_kek(store: &dyn BlobStore, kek: &str, other: &str) {
    let data = unique_bytes(20_000);
    let digest = write_with(store, &data, &AtRest::encrypted(kek))
        .await
        .unwrap();
    let err = read_all(store, &digest, &AtRest::encrypted(other))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "9: not before the grant");
    store
        .grant(&digest, &AtRest::encrypted(other))
        .await
        .unwrap();
    assert!(
        read_all(store, &digest, &AtRest::encrypted(other))
            .await
            .unwrap()
            == data,
        "9: readable through the granted KEK"
    );
}

/// Contract 10.
pub async fn footprints_tell_both_sizes(store: &dyn BlobStore) {
    let absent = sha256(&unique_bytes(100));
    assert_eq!(
        store.footprint(&absent).await.unwrap(),
        None,
        "10: no footprint for an absent blob"
    );
    let text = format!("{} a very compressible line\n", crate::util::random_id());
    let data = Bytes::from(text.repeat(20_000));
    let compressed = AtRest {
        encryption: None,
        ..AtRest::default()
    };
    let digest = write_with(store, &data, &compressed).await.unwrap();
    let footprint = store
        .footprint(&digest)
        .await
        .unwrap()
        .expect("10: a footprint");
    assert_eq!(footprint.logical, data.len() as u64, "10: the logical size");
    assert!(
        footprint.stored > 0 && footprint.stored < footprint.logical,
        "10: compressible data takes fewer stored bytes: {footprint:?}"
    );
}

/// Contract 11.
pub async fn rotation_keeps_every_blob_readable(store: &dyn BlobStore, kek: &str, other: &str) {
    let data = unique_bytes(30_000);
    let digest = write_with(store, &data, &AtRest::encrypted(kek))
        .await
        .unwrap();
    let moved = store.rotate_kek(kek, other, &|_| {}).await.unwrap();
    assert!(
        moved.total >= 1 && moved.rewrapped == moved.total,
        "11: the rotation reports what it moved: {moved:?}"
    );
    assert!(
        read_all(store, &digest, &AtRest::encrypted(other))
            .await
            .unwrap()
            == data,
        "11: readable through the new KEK"
    );
}
