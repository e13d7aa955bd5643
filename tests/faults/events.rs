//! A push interrupted at every storage operation (crash or transient failure): after a
//! restart, each of its events is delivered exactly when its change is visible.

use crate::common::{self, Recorder, drain, images::Image, repo, tag};

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use wharf::testing::{FaultMode, FaultyMeta, FaultyStore, ManualClock};
use wharf::{DispatchOptions, Event, MemoryMetaStore, Registry, Subscriber};

/// Where the faults go: every operation of one object store holding blobs and an
/// `ObjectMetaStore` (ordered batches: announce, change, mark), or every operation of a
/// `MemoryMetaStore` beside fault-free blobs (atomic batches: a change and its event in
/// one).
#[derive(Clone)]
enum Faults {
    Store(FaultyStore),
    Meta {
        meta: FaultyMeta,
        blobs: Arc<InMemory>,
    },
}

impl Faults {
    fn fresh(&self) -> Self {
        match self {
            Self::Store(_) => Self::Store(FaultyStore::new(Arc::new(InMemory::new()))),
            Self::Meta { .. } => Self::Meta {
                meta: FaultyMeta::new(Arc::new(MemoryMetaStore::new())),
                blobs: Arc::new(InMemory::new()),
            },
        }
    }

    fn operations(&self) -> usize {
        match self {
            Self::Store(store) => store.operations(),
            Self::Meta { meta, .. } => meta.operations(),
        }
    }

    fn arm(&self, at: usize, mode: FaultMode) {
        match self {
            Self::Store(store) => store.arm(at, mode),
            Self::Meta { meta, .. } => meta.arm(at, mode),
        }
    }

    fn fired(&self) -> bool {
        match self {
            Self::Store(store) => store.fired(),
            Self::Meta { meta, .. } => meta.fired(),
        }
    }

    /// Disarms; after a crash the metadata store also loses the relaxed writes no
    /// durable one came after.
    async fn restart(&self, mode: FaultMode) {
        match self {
            Self::Store(store) => store.disarm(),
            Self::Meta { meta, .. } if mode == FaultMode::Crash => {
                meta.restart_after_crash().await.unwrap()
            }
            Self::Meta { meta, .. } => meta.disarm(),
        }
    }

    /// A registry (a process) over the same data.
    async fn registry(&self, clock: Arc<ManualClock>) -> Registry {
        let builder = match self {
            Self::Store(store) => common::builder_over(Arc::new(store.clone())).await,
            Self::Meta { meta, blobs } => Registry::builder()
                .object_store(blobs.clone())
                .meta_store(Arc::new(meta.clone())),
        };
        builder.clock(clock).build().unwrap()
    }
}

async fn interrupted_at_every_operation(mode: FaultMode, kind: Faults) {
    let image = Image::seeded("pushed");
    let r = repo("crash/events");
    let config = common::sha256(&image.config);
    let layer = common::sha256(&image.layers[0]);
    let manifest = common::sha256(&image.manifest());
    for n in 0.. {
        let faulty = kind.fresh();
        let clock = Arc::new(ManualClock::starting_now());
        let registry = faulty.registry(clock.clone()).await;
        let recorder = Recorder::new("sweep");
        let subscriber: Arc<dyn Subscriber> = recorder.clone();
        // The subscriber exists before the push, as a configured webhook does.
        registry
            .dispatcher(vec![subscriber.clone()], DispatchOptions::default())
            .await
            .unwrap();
        let start = faulty.operations();
        faulty.arm(start + n, mode);
        let outcome = image.push(&registry, &r, &tag("v1")).await;
        let fired = faulty.fired();
        faulty.restart(mode).await;
        if !fired {
            outcome.expect("an undisturbed push succeeds");
            assert!(n > 10, "the push ran through only {n} operations");
            let what = match kind {
                Faults::Store(_) => "storage",
                Faults::Meta { .. } => "metadata",
            };
            eprintln!("{mode:?}: push interrupted at each of its {n} {what} operations");
            return;
        }
        // The restarted process, once every slot the dead one left is past its deadline.
        clock.advance(wharf::ANNOUNCE_DEADLINE + Duration::from_secs(31));
        let restarted = faulty.registry(clock.clone()).await;
        let options = DispatchOptions {
            holder: "restarted".into(),
            lease: Duration::from_secs(1),
            ..DispatchOptions::default()
        };
        let dispatcher = restarted
            .dispatcher(vec![subscriber], options)
            .await
            .unwrap();
        let report = drain(&dispatcher).await;
        assert!(
            !report.waiting,
            "op {n}: a slot stays undecided: {report:?}"
        );
        let got = recorder.events();
        let count =
            |wanted: &dyn Fn(&Event) -> bool| got.iter().filter(|r| wanted(&r.event)).count();
        let tagged = restarted.resolve_tag(&r, &"v1".parse().unwrap()).await.ok();
        assert_eq!(
            count(&|e| matches!(e, Event::ManifestPushed { digest, .. } if digest == &manifest)),
            usize::from(tagged.as_ref() == Some(&manifest)),
            "op {n}: the push's event exactly when its tag points at it ({got:?})"
        );
        for blob in [&config, &layer] {
            let linked = restarted.stat_blob(&r, blob).await.is_ok();
            assert_eq!(
                count(&|e| matches!(e, Event::BlobPushed { digest, .. } if digest == blob)),
                usize::from(linked),
                "op {n}: blob {blob} linked {linked}"
            );
        }
        let exists = restarted.repository(&r).await.is_ok();
        assert_eq!(
            count(&|e| matches!(e, Event::RepositoryCreated { .. })),
            usize::from(exists),
            "op {n}: repository exists {exists}"
        );
        // Pushing again completes it, and the events follow.
        image
            .push(&restarted, &r, &tag("v1"))
            .await
            .unwrap_or_else(|e| panic!("op {n}: push after restart: {e}"));
        drain(&dispatcher).await;
        let got = recorder.events();
        assert!(
            got.iter().any(
                |r| matches!(&r.event, Event::ManifestPushed { digest, .. } if digest == &manifest)
            ),
            "op {n}: {got:?}"
        );
    }
}

fn object_store() -> Faults {
    Faults::Store(FaultyStore::new(Arc::new(InMemory::new())))
}

fn atomic_meta() -> Faults {
    Faults::Meta {
        meta: FaultyMeta::new(Arc::new(MemoryMetaStore::new())),
        blobs: Arc::new(InMemory::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_push_leaves_events_exactly_for_what_is_visible() {
    interrupted_at_every_operation(FaultMode::Crash, object_store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_push_leaves_events_exactly_for_what_is_visible()
{
    interrupted_at_every_operation(FaultMode::FailOnce, object_store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_metadata_operation_with_atomic_batches_leaves_events_exactly_for_what_is_visible()
 {
    interrupted_at_every_operation(FaultMode::Crash, atomic_meta()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_metadata_operation_with_atomic_batches_leaves_events_exactly_for_what_is_visible()
 {
    interrupted_at_every_operation(FaultMode::FailOnce, atomic_meta()).await;
}
