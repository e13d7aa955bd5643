//! The [`MetaStore`] conformance suite: one check per point of the trait's contract.

use bytes::Bytes;

use crate::error::ErrorKind;
use crate::meta::{Durability, Expect, MAX_KEY_LEN, MetaStore, Version, Write};

/// Runs every check against `store`.
pub async fn all(store: &dyn MetaStore) {
    get_returns_what_put_wrote(store).await;
    writes_honour_expectations(store).await;
    versions_never_repeat(store).await;
    deletes_honour_expectations(store).await;
    listing_is_ordered_bounded_and_paged(store).await;
    concurrent_creates_have_one_winner(store).await;
    concurrent_updates_have_one_winner(store).await;
    keys_and_values_at_the_limits(store).await;
    batches_apply_in_order(store).await;
    batches_stop_at_the_first_failed_expectation(store).await;
    batches_refuse_bad_keys_before_writing(store).await;
    concurrent_batches_have_one_winner(store).await;
    relaxed_batches_read_back_at_once(store).await;
    sync_keeps_what_relaxed_batches_wrote(store).await;
}

/// A prefix no other run uses, so the suite can share a bucket.
fn scope(check: &str) -> String {
    format!("conformance/{}/{check}/", crate::util::random_id())
}

/// Contract 1.
pub async fn get_returns_what_put_wrote(store: &dyn MetaStore) {
    let key = format!("{}k", scope("get"));
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "1: missing key reads as None"
    );
    let version = store
        .put(&key, Bytes::from_static(b"v1"), Expect::Absent)
        .await
        .unwrap();
    let got = store
        .get(&key)
        .await
        .unwrap()
        .expect("1: written key is readable");
    assert_eq!(got.value, "v1", "1: value read back");
    assert_eq!(
        got.version, version,
        "1: version read back is the one put returned"
    );
}

/// Contract 2.
pub async fn writes_honour_expectations(store: &dyn MetaStore) {
    let key = format!("{}k", scope("cas"));
    let v1 = store.put(&key, "a".into(), Expect::Absent).await.unwrap();
    let err = store
        .put(&key, "b".into(), Expect::Absent)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "2: create over an existing key conflicts"
    );
    let v2 = store
        .put(&key, "c".into(), Expect::Version(v1))
        .await
        .unwrap();
    let err = store
        .put(&key, "d".into(), Expect::Version(v1))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "2: update at a stale version conflicts"
    );
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (got.value, got.version),
        (Bytes::from("c"), v2),
        "2: failed writes change nothing"
    );
    let missing = format!("{}missing", scope("cas"));
    let err = store
        .put(&missing, "x".into(), Expect::Version(v2))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "2: update of a missing key conflicts"
    );
    assert_eq!(
        store.get(&missing).await.unwrap(),
        None,
        "2: failed update creates nothing"
    );
    let v3 = store.put(&key, "e".into(), Expect::Any).await.unwrap();
    assert!(v3 > v2, "2: Any applies over a value");
    store.put(&missing, "f".into(), Expect::Any).await.unwrap();
    assert_eq!(
        store.get(&missing).await.unwrap().unwrap().value,
        "f",
        "2: Any creates"
    );
}

/// Contract 3.
pub async fn versions_never_repeat(store: &dyn MetaStore) {
    let key = format!("{}k", scope("versions"));
    let mut seen: Vec<Version> = Vec::new();
    for round in 0..3 {
        let v = store
            .put(&key, "same".into(), Expect::Absent)
            .await
            .unwrap();
        let w = store
            .put(&key, "same".into(), Expect::Version(v))
            .await
            .unwrap();
        for new in [v, w] {
            assert!(
                !seen.contains(&new),
                "3: version {new} repeated in round {round}"
            );
            seen.push(new);
        }
        store.delete(&key, Expect::Version(w)).await.unwrap();
        let err = store
            .put(&key, "same".into(), Expect::Version(w))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "3: a deleted key's old version is stale"
        );
    }
}

/// Contract 4.
pub async fn deletes_honour_expectations(store: &dyn MetaStore) {
    let key = format!("{}k", scope("delete"));
    store
        .delete(&key, Expect::Any)
        .await
        .expect("4: deleting a missing key with Any succeeds");
    let v = store.put(&key, "a".into(), Expect::Absent).await.unwrap();
    let err = store.delete(&key, Expect::Absent).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "4: delete expecting absence of a present key"
    );
    let stale = Version::new(v.get().wrapping_add(1_000_000));
    let err = store
        .delete(&key, Expect::Version(stale))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "4: delete at a wrong version conflicts"
    );
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "4: failed delete removes nothing"
    );
    store.delete(&key, Expect::Version(v)).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "4: deleted key reads as None"
    );
    let err = store.delete(&key, Expect::Version(v)).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "4: delete of a missing key at a version conflicts"
    );
}

/// Contract 5.
pub async fn listing_is_ordered_bounded_and_paged(store: &dyn MetaStore) {
    let base = scope("list");
    // Keys that are prefixes of each other, and neighbours just outside the prefix.
    let inside = ["a", "a/b", "a0", "a@x", "a~", "b", "b:1", "ba", "z"];
    let stem = &base[..base.len() - 1];
    let outside = [stem.to_owned(), format!("{stem}0"), format!("{stem}.")];
    for k in &inside {
        store
            .put(&format!("{base}{k}"), Bytes::from(*k), Expect::Absent)
            .await
            .unwrap();
    }
    for k in &outside {
        store.put(k, "outside".into(), Expect::Any).await.unwrap();
    }
    let deleted = format!("{base}b0");
    let v = store
        .put(&deleted, "gone".into(), Expect::Absent)
        .await
        .unwrap();
    store.delete(&deleted, Expect::Version(v)).await.unwrap();

    let mut expected: Vec<String> = inside.iter().map(|k| format!("{base}{k}")).collect();
    expected.sort();
    let all = store.list_keys(&base, None, 100).await.unwrap();
    assert_eq!(
        all, expected,
        "5: keys under the prefix, ascending, no deleted keys"
    );

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_keys(&base, after.as_deref(), 4).await.unwrap();
        assert!(page.len() <= 4, "5: at most limit keys");
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged, expected, "5: pages join up to the full listing");

    let sub = store
        .list_keys(&format!("{base}a"), None, 100)
        .await
        .unwrap();
    let want: Vec<_> = expected
        .iter()
        .filter(|k| k.starts_with(&format!("{base}a")))
        .cloned()
        .collect();
    assert_eq!(sub, want, "5: a narrower prefix");

    let entries = store
        .list(&base, Some(&format!("{base}a~")), 2)
        .await
        .unwrap();
    let keys: Vec<_> = entries.iter().map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        vec![format!("{base}b"), format!("{base}b:1")],
        "5: list after a key"
    );
    assert_eq!(entries[0].value, "b", "5: list returns values");
    assert_eq!(
        store.get(&entries[0].key).await.unwrap().unwrap().version,
        entries[0].version,
        "5: list returns versions"
    );
    for k in &outside {
        store.delete(k, Expect::Any).await.unwrap();
    }
}

/// Contract 6, creates.
pub async fn concurrent_creates_have_one_winner(store: &dyn MetaStore) {
    let key = format!("{}k", scope("race-create"));
    let attempts =
        (0..16).map(|i| store.put(&key, Bytes::from(format!("writer {i}")), Expect::Absent));
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "6: exactly one concurrent create wins: {results:?}"
    );
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.kind(), ErrorKind::Conflict, "6: losers see Conflict");
        }
    }
    let value = store.get(&key).await.unwrap().unwrap().value;
    assert_eq!(
        value,
        format!("writer {}", winners[0].0),
        "6: the winner's value is stored"
    );
}

/// Contract 6, updates.
pub async fn concurrent_updates_have_one_winner(store: &dyn MetaStore) {
    let key = format!("{}k", scope("race-update"));
    let v = store
        .put(&key, "start".into(), Expect::Absent)
        .await
        .unwrap();
    let attempts =
        (0..16).map(|i| store.put(&key, Bytes::from(format!("writer {i}")), Expect::Version(v)));
    let results = futures::future::join_all(attempts).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        winners, 1,
        "6: exactly one concurrent update wins: {results:?}"
    );
}

/// Contract 7.
pub async fn keys_and_values_at_the_limits(store: &dyn MetaStore) {
    assert!(
        store.put("", "x".into(), Expect::Any).await.is_err(),
        "7: empty key refused"
    );
    let base = scope("limits");
    let long = format!("{base}{}", "x".repeat(MAX_KEY_LEN - base.len()));
    store
        .put(&long, Bytes::new(), Expect::Absent)
        .await
        .expect("7: longest key accepted");
    let got = store
        .get(&long)
        .await
        .unwrap()
        .expect("7: longest key readable");
    assert!(got.value.is_empty(), "7: empty value round-trips");
    assert_eq!(
        store.list_keys(&base, None, 10).await.unwrap(),
        vec![long.clone()],
        "7: empty value listed"
    );
    let too_long = format!("{long}x");
    assert!(
        store.put(&too_long, "x".into(), Expect::Any).await.is_err(),
        "7: over-long key refused"
    );
    let big = Bytes::from(vec![7u8; 1 << 20]);
    let k = format!("{base}big");
    store.put(&k, big.clone(), Expect::Absent).await.unwrap();
    assert_eq!(
        store.get(&k).await.unwrap().unwrap().value,
        big,
        "7: a 1 MiB value round-trips"
    );
}

fn put(key: &str, value: &str, expect: Expect) -> Write {
    Write::Put {
        key: key.to_owned(),
        value: Bytes::from(value.to_owned()),
        expect,
    }
}

/// Contract 8, a batch that applies.
pub async fn batches_apply_in_order(store: &dyn MetaStore) {
    let base = scope("batch");
    let (a, b, c) = (format!("{base}a"), format!("{base}b"), format!("{base}c"));
    let vb = store.put(&b, "old".into(), Expect::Absent).await.unwrap();
    let vc = store.put(&c, "gone".into(), Expect::Absent).await.unwrap();
    let versions = store
        .batch(
            vec![
                put(&a, "new", Expect::Absent),
                put(&b, "updated", Expect::Version(vb)),
                Write::Delete {
                    key: c.clone(),
                    expect: Expect::Version(vc),
                },
            ],
            Durability::Durable,
        )
        .await
        .expect("8: a batch whose expectations hold applies");
    assert_eq!(versions.len(), 3, "8: one answer per write");
    let (Some(va), Some(vb2), None) = (versions[0], versions[1], versions[2]) else {
        panic!("8: puts answer their version, deletes none: {versions:?}");
    };
    assert_ne!(va, vb2, "8: every write gets its own version");
    assert!(vb2 > vb, "3: a batch's versions are new for their keys");
    let got_a = store.get(&a).await.unwrap().expect("8: batch put readable");
    assert_eq!((got_a.value, got_a.version), (Bytes::from("new"), va));
    let got_b = store
        .get(&b)
        .await
        .unwrap()
        .expect("8: batch update readable");
    assert_eq!((got_b.value, got_b.version), (Bytes::from("updated"), vb2));
    assert_eq!(
        store.get(&c).await.unwrap(),
        None,
        "8: batch delete applied"
    );
    assert_eq!(
        store.batch(Vec::new(), Durability::Durable).await.unwrap(),
        Vec::<Option<Version>>::new(),
        "8: an empty batch does nothing"
    );
}

/// Contracts 8 and 9, a batch that fails part way.
pub async fn batches_stop_at_the_first_failed_expectation(store: &dyn MetaStore) {
    let base = scope("batch-fail");
    let (a, b, c) = (format!("{base}a"), format!("{base}b"), format!("{base}c"));
    let vb = store.put(&b, "taken".into(), Expect::Absent).await.unwrap();
    let err = store
        .batch(
            vec![
                put(&a, "first", Expect::Absent),
                put(&b, "second", Expect::Absent),
                put(&c, "third", Expect::Absent),
            ],
            Durability::Durable,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "8: the failed write's Conflict"
    );
    assert!(
        err.to_string().contains(&b),
        "8: the error names the key: {err}"
    );
    let got_b = store.get(&b).await.unwrap().unwrap();
    assert_eq!((got_b.value, got_b.version), (Bytes::from("taken"), vb));
    assert_eq!(
        store.get(&c).await.unwrap(),
        None,
        "8: nothing after the failed write applies"
    );
    let first = store.get(&a).await.unwrap();
    if store.atomic_batches() {
        assert_eq!(first, None, "9: a failed atomic batch changes nothing");
    } else {
        assert_eq!(
            first.map(|v| v.value),
            Some(Bytes::from("first")),
            "9: without atomic batches the writes before the failure stay"
        );
    }
}

/// Contract 8, refusals before any write.
pub async fn batches_refuse_bad_keys_before_writing(store: &dyn MetaStore) {
    let base = scope("batch-keys");
    let a = format!("{base}a");
    let repeated = store
        .batch(
            vec![put(&a, "1", Expect::Any), put(&a, "2", Expect::Any)],
            Durability::Durable,
        )
        .await
        .unwrap_err();
    assert_eq!(
        repeated.kind(),
        ErrorKind::InvalidArgument,
        "8: a key twice"
    );
    let too_long = format!("{base}{}", "x".repeat(MAX_KEY_LEN));
    let invalid = store
        .batch(
            vec![put(&a, "1", Expect::Any), put(&too_long, "2", Expect::Any)],
            Durability::Durable,
        )
        .await
        .unwrap_err();
    assert_eq!(invalid.kind(), ErrorKind::InvalidArgument, "8: a bad key");
    assert_eq!(
        store.get(&a).await.unwrap(),
        None,
        "8: a refused batch writes nothing, even before the bad key"
    );
}

/// Contracts 6, 8 and 9: batches racing for one key.
pub async fn concurrent_batches_have_one_winner(store: &dyn MetaStore) {
    let base = scope("batch-race");
    let shared = format!("{base}shared");
    let attempts = (0..16).map(|i| {
        let own = format!("{base}own-{i:02}");
        // Relaxed and durable batches race alike.
        let durability = if i % 2 == 0 {
            Durability::Durable
        } else {
            Durability::Relaxed
        };
        store.batch(
            vec![
                put(&own, "mine", Expect::Absent),
                put(&shared, &format!("writer {i}"), Expect::Absent),
            ],
            durability,
        )
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "6: one batch wins the key: {results:?}");
    assert_eq!(
        store.get(&shared).await.unwrap().unwrap().value,
        format!("writer {}", winners[0]),
        "8: the winner's write is stored"
    );
    let owned = store
        .list_keys(&format!("{base}own-"), None, 100)
        .await
        .unwrap();
    if store.atomic_batches() {
        assert_eq!(
            owned,
            vec![format!("{base}own-{:02}", winners[0])],
            "9: losing atomic batches leave nothing"
        );
    } else {
        assert_eq!(
            owned.len(),
            16,
            "9: ordered batches keep the writes before a failure"
        );
    }
}

/// Contract 10.
pub async fn relaxed_batches_read_back_at_once(store: &dyn MetaStore) {
    let base = scope("relaxed");
    let (a, b) = (format!("{base}a"), format!("{base}b"));
    let relaxed = store
        .batch(
            vec![put(&a, "session", Expect::Absent)],
            Durability::Relaxed,
        )
        .await
        .expect("10: a relaxed batch applies");
    let got = store.get(&a).await.unwrap().expect("10: read back at once");
    assert_eq!(
        (got.value, Some(got.version)),
        (Bytes::from("session"), relaxed[0])
    );
    let later = store
        .batch(
            vec![
                put(&a, "moved", Expect::Version(got.version)),
                put(&b, "durable", Expect::Absent),
            ],
            Durability::Durable,
        )
        .await
        .expect("10: a durable batch after a relaxed one sees it");
    assert!(
        later[0] > relaxed[0],
        "3: versions stay new across durabilities"
    );
    let err = store
        .batch(vec![put(&b, "again", Expect::Absent)], Durability::Relaxed)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Conflict,
        "10: relaxed batches keep expectations"
    );
}

/// Contract 11, as far as a running store shows it: `sync` succeeds with nothing
/// pending and after relaxed batches, and what they wrote reads back after it.
pub async fn sync_keeps_what_relaxed_batches_wrote(store: &dyn MetaStore) {
    let base = scope("sync");
    store.sync().await.expect("11: sync with nothing pending");
    let (a, b) = (format!("{base}a"), format!("{base}b"));
    let versions = store
        .batch(vec![put(&a, "first", Expect::Absent)], Durability::Relaxed)
        .await
        .unwrap();
    store
        .batch(vec![put(&b, "second", Expect::Absent)], Durability::Relaxed)
        .await
        .unwrap();
    store.sync().await.expect("11: sync after relaxed batches");
    let got = store.get(&a).await.unwrap().expect("11: kept");
    assert_eq!(
        (got.value, Some(got.version)),
        (Bytes::from("first"), versions[0])
    );
    assert!(store.get(&b).await.unwrap().is_some(), "11: kept");
}
