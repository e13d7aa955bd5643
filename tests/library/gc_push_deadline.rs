//! A push held up between recording its blobs and its commit point for longer than half
//! the grace period must not commit, wherever the time was lost: a collection may already
//! have judged its blobs. Here the outbox write that comes right before the commit
//! stalls (the registry's clock jumps while it is written), as lost races and their
//! back-off do on a loaded machine.

use crate::common::images::Image;
use crate::common::{repo, tag};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use wharf::testing::ManualClock;
use wharf::{
    Entry, ErrorKind, Expect, MemoryMetaStore, MetaStore, Reference, Registry, Version, Versioned,
};

/// Short enough that a stall past half of it stays within the outbox's own deadline for
/// an announced change (30 s), which would refuse the push for another reason.
const GRACE: Duration = Duration::from_secs(20);

/// A metadata store whose next announcement of a pushed manifest moves the clock on.
#[derive(Debug)]
struct StallingMeta {
    inner: MemoryMetaStore,
    clock: Arc<ManualClock>,
    stall: Mutex<Option<Duration>>,
}

#[async_trait]
impl MetaStore for StallingMeta {
    async fn get(&self, key: &str) -> wharf::Result<Option<Versioned>> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> wharf::Result<Version> {
        let announces_push = key.starts_with("event/")
            && value
                .windows(b"\"manifest_pushed\"".len())
                .any(|w| w == b"\"manifest_pushed\"");
        if announces_push && let Some(by) = self.stall.lock().unwrap().take() {
            self.clock.advance(by);
        }
        self.inner.put(key, value, expect).await
    }

    async fn delete(&self, key: &str, expect: Expect) -> wharf::Result<()> {
        self.inner.delete(key, expect).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> wharf::Result<Vec<Entry>> {
        self.inner.list(prefix, start_after, limit).await
    }
}

fn stalling_registry() -> (Registry, Arc<StallingMeta>) {
    let clock = Arc::new(ManualClock::starting_now());
    let meta = Arc::new(StallingMeta {
        inner: MemoryMetaStore::new(),
        clock: clock.clone(),
        stall: Mutex::new(None),
    });
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(meta.clone())
        .gc_grace(GRACE)
        .clock(clock)
        .build()
        .unwrap();
    (registry, meta)
}

/// Pushes an image whose manifest announcement stalls for `stall`; the result, and
/// whether the manifest can be read afterwards by `reference`.
async fn push_stalled(reference: Reference, stall: Duration) -> (wharf::Result<()>, bool) {
    let (registry, meta) = stalling_registry();
    let r = repo("slow/app");
    let layer = Bytes::from_static(b"a layer pushed in good time");
    let image = Image::of(&Bytes::from_static(b"{}"), &[&layer]);
    *meta.stall.lock().unwrap() = Some(stall);
    let pushed = image.push(&registry, &r, &reference).await.map(drop);
    assert!(
        meta.stall.lock().unwrap().is_none(),
        "the stall never fired"
    );
    let readable = registry.get_manifest(&r, &reference).await.is_ok();
    (pushed, readable)
}

#[tokio::test]
async fn a_push_by_digest_that_stalls_past_half_the_grace_is_refused() {
    let image = Image::of(
        &Bytes::from_static(b"{}"),
        &[&Bytes::from_static(b"a layer pushed in good time")],
    );
    let by_digest = Reference::Digest(image.digest(&image.manifest()));

    let (pushed, readable) = push_stalled(by_digest.clone(), GRACE / 2 + GRACE / 10).await;
    let err = pushed.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("push it again"), "{err}");
    assert!(!readable, "the refused push is visible");

    // Within the deadline the same stall is harmless.
    let (pushed, readable) = push_stalled(by_digest, GRACE / 2 - GRACE / 10).await;
    pushed.unwrap();
    assert!(readable);
}

#[tokio::test]
async fn a_push_by_tag_that_stalls_past_half_the_grace_is_refused() {
    let by_tag = tag("v1");
    let (pushed, readable) = push_stalled(by_tag.clone(), GRACE).await;
    let err = pushed.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(!readable, "the tag moved for a refused push");

    let (pushed, readable) = push_stalled(by_tag, GRACE / 4).await;
    pushed.unwrap();
    assert!(readable);
}
