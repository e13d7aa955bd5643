//! Every metadata store behaves like a `BTreeMap` under random operation sequences.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use proptest::prelude::*;
use wharf::{
    Durability, ErrorKind, Expect, MemoryMetaStore, MetaStore, ObjectMetaStore, RedbMetaStore,
    Version, Write,
};

const KEYS: &[&str] = &["a", "a/b", "a/c", "ab", "b", "b/a", "tags/x:1", "tags/x:2"];
const PREFIXES: &[&str] = &["", "a", "a/", "b", "tags/", "z"];

#[derive(Debug, Clone)]
enum Want {
    Any,
    Absent,
    Current,
    Stale,
}

#[derive(Debug, Clone)]
enum Op {
    /// A put, alone or (`true`) as a relaxed batch of one.
    Put(usize, u8, Want, bool),
    /// A delete, alone or (`true`) as a relaxed batch of one.
    Delete(usize, Want, bool),
    Get(usize),
    List(usize, Option<usize>, usize),
}

fn want() -> impl Strategy<Value = Want> {
    prop_oneof![
        Just(Want::Any),
        Just(Want::Absent),
        Just(Want::Current),
        Just(Want::Stale)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        (key.clone(), any::<u8>(), want(), any::<bool>())
            .prop_map(|(k, v, w, r)| Op::Put(k, v, w, r)),
        (key.clone(), want(), any::<bool>()).prop_map(|(k, w, r)| Op::Delete(k, w, r)),
        key.clone().prop_map(Op::Get),
        (0..PREFIXES.len(), proptest::option::of(key), 1usize..5)
            .prop_map(|(p, a, l)| Op::List(p, a, l)),
    ]
}

type Model = BTreeMap<String, (Version, Bytes)>;

/// The key, the expectation to send, whether the model says it holds, and the model's version.
fn resolve(
    model: &Model,
    k: usize,
    w: &Want,
    stale: Version,
) -> (&'static str, Expect, bool, Option<Version>) {
    let key = KEYS[k];
    let current = model.get(key).map(|(v, _)| *v);
    let expect = match w {
        Want::Any => Expect::Any,
        Want::Absent => Expect::Absent,
        Want::Current => current.map_or(Expect::Version(stale), Expect::Version),
        Want::Stale => Expect::Version(stale),
    };
    let holds = match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    };
    (key, expect, holds, current)
}

/// `write` alone in a relaxed batch; its version.
async fn relaxed_batch(store: &dyn MetaStore, write: Write) -> wharf::Result<Option<Version>> {
    let versions = store.batch(vec![write], Durability::Relaxed).await?;
    Ok(versions[0])
}

/// Runs `ops` on `store` and on the model, comparing every answer; the model after.
async fn check(store: &dyn MetaStore, ops: &[Op]) -> Result<Model, TestCaseError> {
    let mut model = Model::new();
    let stale = Version::new(u64::MAX / 2);
    for op in ops {
        match op {
            Op::Put(k, v, w, relaxed) => {
                let (key, expect, holds, current) = resolve(&model, *k, w, stale);
                let value = Bytes::from(vec![*v; (*v % 5) as usize]);
                let put = match relaxed {
                    false => store.put(key, value.clone(), expect).await,
                    true => {
                        let write = Write::Put {
                            key: key.to_owned(),
                            value: value.clone(),
                            expect,
                        };
                        relaxed_batch(store, write)
                            .await
                            .map(|v| v.expect("a put's version"))
                    }
                };
                match (holds, put) {
                    (true, Ok(version)) => {
                        prop_assert!(current.is_none_or(|c| version != c), "fresh version");
                        model.insert(key.to_owned(), (version, value));
                    }
                    (false, Err(e)) => prop_assert_eq!(e.kind(), ErrorKind::Conflict),
                    (holds, r) => prop_assert!(
                        false,
                        "put {key} {expect:?}: model says {holds}, store {r:?}"
                    ),
                }
            }
            Op::Delete(k, w, relaxed) => {
                let (key, expect, holds, _) = resolve(&model, *k, w, stale);
                let deleted = match relaxed {
                    false => store.delete(key, expect).await,
                    true => {
                        let write = Write::Delete {
                            key: key.to_owned(),
                            expect,
                        };
                        relaxed_batch(store, write).await.map(drop)
                    }
                };
                match (holds, deleted) {
                    (true, Ok(())) => {
                        model.remove(key);
                    }
                    (false, Err(e)) => prop_assert_eq!(e.kind(), ErrorKind::Conflict),
                    (holds, r) => prop_assert!(
                        false,
                        "delete {key} {expect:?}: model says {holds}, store {r:?}"
                    ),
                }
            }
            Op::Get(k) => {
                let key = KEYS[*k];
                let got = store.get(key).await.unwrap().map(|v| (v.version, v.value));
                prop_assert_eq!(got, model.get(key).cloned(), "get {}", key);
            }
            Op::List(p, after, limit) => {
                let prefix = PREFIXES[*p];
                let after = after.map(|a| KEYS[a]);
                let got: Vec<_> = store
                    .list(prefix, after, *limit)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.key, e.version, e.value))
                    .collect();
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                    .take(*limit)
                    .map(|(k, (version, value))| (k.clone(), *version, value.clone()))
                    .collect();
                prop_assert_eq!(got, want, "list {:?} after {:?}", prefix, after);
            }
        }
    }
    Ok(model)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        runtime().block_on(check(&MemoryMetaStore::new(), &ops))?;
    }

    #[test]
    fn redb_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetaStore::open(dir.path().join("m.redb")).unwrap();
        runtime().block_on(check(&store, &ops))?;
    }

    /// What relaxed batches wrote is in the database once the store is closed.
    #[test]
    fn redb_store_keeps_the_model_when_reopened(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let model = {
            let store = RedbMetaStore::open(&path).unwrap();
            runtime().block_on(check(&store, &ops))?
        };
        let store = RedbMetaStore::open(&path).unwrap();
        let stored: Vec<_> = runtime()
            .block_on(store.list("", None, 100))
            .unwrap()
            .into_iter()
            .map(|e| (e.key, (e.version, e.value)))
            .collect();
        prop_assert_eq!(stored, model.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn object_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        let store = rt.block_on(ObjectMetaStore::connect(Arc::new(InMemory::new()), "m")).unwrap();
        rt.block_on(check(&store, &ops))?;
    }
}
