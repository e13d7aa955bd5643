//! `SmallObjects` keeps data-key wraps in the metadata store as relaxed writes; the
//! wrapped store never gets ahead of them. An object too large for the table relies on
//! its wrap, and a rotation deletes a wrap's old file once the new one is written: the
//! metadata store is synced before such a change reaches the wrapped store, so a crash
//! leaves no object without its wrap and no wrap without a copy. And `MetaStore::sync`
//! on redb costs a synced commit only while a relaxed write may not be durable.
//!
//! The wrapped store is armed to fail the change: a sync counted although the change
//! never happened was made before it.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use wharf::testing::{FaultMode, FaultyStore};
use wharf::{
    Durability, Expect, MetaStore, RedbMetaStore, SMALL_OBJECT_LIMIT, SmallObjects, Write,
};

const OBJECT: &str = "blobs/sha256/ab/abcd";
const WRAP: &str = "keys/sha256/ab/abcd/00ff/default";

/// A store on redb in `dir`, over an in-memory store that can be armed to fail.
fn small_objects(dir: &std::path::Path) -> (SmallObjects, Arc<FaultyStore>, Arc<RedbMetaStore>) {
    let meta = Arc::new(RedbMetaStore::open(dir.join("meta.redb")).unwrap());
    let wrapped = Arc::new(FaultyStore::new(Arc::new(InMemory::new())));
    let store = SmallObjects::new(wrapped.clone(), meta.clone());
    (store, wrapped, meta)
}

fn large() -> PutPayload {
    PutPayload::from(vec![3u8; SMALL_OBJECT_LIMIT + 1])
}

#[tokio::test]
async fn an_object_too_large_for_the_table_finds_its_wrap_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, wrapped, meta) = small_objects(dir.path());
    let synced = meta.synced_commits();
    store
        .put(&Path::from(WRAP), PutPayload::from_static(b"wrapped key"))
        .await
        .unwrap();
    assert_eq!(meta.synced_commits(), synced, "a wrap alone is relaxed");

    wrapped.arm(0, FaultMode::Crash);
    assert!(store.put(&Path::from(OBJECT), large()).await.is_err());
    assert_eq!(
        meta.synced_commits(),
        synced + 1,
        "the wrap was synced before the object's write"
    );
    wrapped.disarm();

    // Synced once, a wrap costs no second sync.
    store.put(&Path::from(OBJECT), large()).await.unwrap();
    assert_eq!(meta.synced_commits(), synced + 1);
}

#[tokio::test]
async fn a_multipart_object_finds_its_wrap_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, wrapped, meta) = small_objects(dir.path());
    store
        .put(&Path::from(WRAP), PutPayload::from_static(b"wrapped key"))
        .await
        .unwrap();
    let synced = meta.synced_commits();
    let mut upload = store.put_multipart(&Path::from(OBJECT)).await.unwrap();
    upload.put_part(large()).await.unwrap();
    // The next operation the wrapped store sees is the completion.
    wrapped.arm(0, FaultMode::Crash);
    assert!(upload.complete().await.is_err());
    assert_eq!(meta.synced_commits(), synced + 1);
}

/// A rotation writes the new wrap (to the table), then deletes the old one, a file
/// from before the table: the delete waits for the new wrap to be durable.
#[tokio::test]
async fn an_old_wrap_is_deleted_only_once_the_new_one_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, wrapped, meta) = small_objects(dir.path());
    let old = Path::from("keys/sha256/ab/abcd/00ff/old-kek");
    wrapped
        .inner()
        .put(&old, PutPayload::from_static(b"old wrap"))
        .await
        .unwrap();
    store
        .put(&Path::from(WRAP), PutPayload::from_static(b"new wrap"))
        .await
        .unwrap();
    let synced = meta.synced_commits();
    wrapped.arm(0, FaultMode::Crash);
    assert!(store.delete(&old).await.is_err());
    assert_eq!(meta.synced_commits(), synced + 1);
    wrapped.disarm();
    assert!(store.head(&old).await.is_ok(), "the failed delete kept it");
}

/// With no wrap written, a large object costs no sync of the metadata store.
#[tokio::test]
async fn without_wraps_large_objects_sync_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, meta) = small_objects(dir.path());
    store
        .put(
            &Path::from("blobs/sha256/cd/small"),
            PutPayload::from_static(b"small"),
        )
        .await
        .unwrap();
    let synced = meta.synced_commits();
    store.put(&Path::from(OBJECT), large()).await.unwrap();
    store.delete(&Path::from(OBJECT)).await.unwrap();
    assert_eq!(meta.synced_commits(), synced);
}

/// `sync` on redb: a synced commit while a relaxed batch may not be durable, none
/// otherwise, and the batch reads back after it.
#[tokio::test]
async fn redb_syncs_only_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let meta = RedbMetaStore::open(dir.path().join("meta.redb")).unwrap();
    let synced = meta.synced_commits();
    meta.sync().await.unwrap();
    assert_eq!(meta.synced_commits(), synced, "nothing pending");

    let put = Write::Put {
        key: "session/a".into(),
        value: "held".into(),
        expect: Expect::Absent,
    };
    meta.batch(vec![put], Durability::Relaxed).await.unwrap();
    assert_eq!(meta.synced_commits(), synced);
    meta.sync().await.unwrap();
    assert_eq!(
        meta.synced_commits(),
        synced + 1,
        "the relaxed batch synced"
    );
    meta.sync().await.unwrap();
    assert_eq!(meta.synced_commits(), synced + 1, "and only once");
    assert_eq!(meta.get("session/a").await.unwrap().unwrap().value, "held");

    // A durable batch after a relaxed one leaves nothing for `sync`.
    let relaxed = Write::Put {
        key: "session/b".into(),
        value: "held".into(),
        expect: Expect::Absent,
    };
    meta.batch(vec![relaxed], Durability::Relaxed)
        .await
        .unwrap();
    meta.put("link/b", "durable".into(), Expect::Absent)
        .await
        .unwrap();
    let after = meta.synced_commits();
    meta.sync().await.unwrap();
    assert_eq!(meta.synced_commits(), after);
}
