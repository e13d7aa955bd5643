//! The [`BlobStore`] conformance suite: one check per point of the trait's contract.

use bytes::Bytes;
use futures::TryStreamExt;

use crate::blob::{BlobStore, BlobStoreExt};
use crate::digest::{Algorithm, Digest};
use crate::error::ErrorKind;

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
