//! Every metadata store behaves like a `BTreeMap` under random operation sequences.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use proptest::prelude::*;
use wharf::{
    ErrorKind, Expect, MemoryMetaStore, MetaStore, ObjectMetaStore, RedbMetaStore, Version,
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
    Put(usize, u8, Want),
    Delete(usize, Want),
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
        (key.clone(), any::<u8>(), want()).prop_map(|(k, v, w)| Op::Put(k, v, w)),
        (key.clone(), want()).prop_map(|(k, w)| Op::Delete(k, w)),
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

async fn check(store: &dyn MetaStore, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    let stale = Version::new(u64::MAX / 2);
    for op in ops {
        match op {
            Op::Put(k, v, w) => {
                let (key, expect, holds, current) = resolve(&model, *k, w, stale);
                let value = Bytes::from(vec![*v; (*v % 5) as usize]);
                match (holds, store.put(key, value.clone(), expect).await) {
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
            Op::Delete(k, w) => {
                let (key, expect, holds, _) = resolve(&model, *k, w, stale);
                match (holds, store.delete(key, expect).await) {
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
                let got = store.list_keys(prefix, after, *limit).await.unwrap();
                let want: Vec<String> = model
                    .keys()
                    .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                    .take(*limit)
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want, "list {:?} after {:?}", prefix, after);
            }
        }
    }
    Ok(())
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

    #[test]
    fn object_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        let store = rt.block_on(ObjectMetaStore::connect(Arc::new(InMemory::new()), "m")).unwrap();
        rt.block_on(check(&store, &ops))?;
    }
}
