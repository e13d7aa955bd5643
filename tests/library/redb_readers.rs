//! Readers of the redb store see each batch whole (contract point 9), also while a
//! commit takes the relaxed writes held in memory: a reader holding a copy of those
//! writes from before the commit must not lay them over what the commit wrote after
//! them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use wharf::{Durability, Expect, MetaStore, RedbMetaStore, Version, Write};

const ROUNDS: u64 = 1500;

fn put(key: &str, n: u64, expect: Expect) -> Write {
    Write::Put {
        key: key.into(),
        value: Bytes::from(n.to_string()),
        expect,
    }
}

fn number(value: &Bytes) -> u64 {
    std::str::from_utf8(value).unwrap().parse().unwrap()
}

/// Each round writes `a` = 2n relaxed, then `a` = `b` = 2n + 1 in one durable batch:
/// every state the store passes through has `a` == `b` or `a` == `b` + 1. Listings and
/// gets race the rounds; a listing that shows `a` < `b`, or a get of `a` after a get
/// of `b` that found it smaller, saw half of a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn readers_never_see_half_a_batch_while_held_writes_commit() {
    let dir = tempfile::tempdir().unwrap();
    let meta = Arc::new(RedbMetaStore::open(dir.path().join("meta.redb")).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (meta, done) = (meta.clone(), done.clone());
        tokio::spawn(async move {
            let first = vec![put("r/a", 1, Expect::Absent), put("r/b", 1, Expect::Absent)];
            let versions = meta.batch(first, Durability::Durable).await.unwrap();
            let (mut a, mut b) = (versions[0].unwrap(), versions[1].unwrap());
            for n in 1..ROUNDS {
                let relaxed = vec![put("r/a", 2 * n, Expect::Version(a))];
                a = meta.batch(relaxed, Durability::Relaxed).await.unwrap()[0].unwrap();
                let both = vec![
                    put("r/a", 2 * n + 1, Expect::Version(a)),
                    put("r/b", 2 * n + 1, Expect::Version(b)),
                ];
                let versions = meta.batch(both, Durability::Durable).await.unwrap();
                (a, b) = (versions[0].unwrap(), versions[1].unwrap());
            }
            done.store(true, Ordering::SeqCst);
            (a, b)
        })
    };
    let lister = {
        let (meta, done) = (meta.clone(), done.clone());
        tokio::spawn(async move {
            let mut listings = 0u64;
            while !done.load(Ordering::SeqCst) {
                let entries = meta.list("r/", None, 10).await.unwrap();
                if entries.len() == 2 {
                    let (a, b) = (number(&entries[0].value), number(&entries[1].value));
                    assert!(a == b || a == b + 1, "a listing saw a = {a}, b = {b}");
                    listings += 1;
                }
            }
            listings
        })
    };
    let getter = {
        let (meta, done) = (meta.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let Some(b) = meta.get("r/b").await.unwrap() else {
                    continue;
                };
                let a = meta.get("r/a").await.unwrap().unwrap();
                let (a, b) = (number(&a.value), number(&b.value));
                assert!(a >= b, "a get of a = {a} after b = {b}");
            }
        })
    };
    let (a, b): (Version, Version) = writer.await.unwrap();
    let listings = lister.await.unwrap();
    getter.await.unwrap();
    assert!(listings > 0, "the listings raced the rounds");
    for (key, version) in [("r/a", a), ("r/b", b)] {
        let last = meta.get(key).await.unwrap().unwrap();
        assert_eq!(
            (number(&last.value), last.version),
            (2 * ROUNDS - 1, version)
        );
    }
}
