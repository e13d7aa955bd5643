//! A push interrupted at every storage operation (crash or transient failure): after a
//! restart, each of its events is delivered exactly when its change is visible.

use crate::common::{self, Recorder, drain, images::Image, repo, tag};

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use wharf::testing::{FaultMode, FaultyStore, ManualClock};
use wharf::{DispatchOptions, Event, Registry, Subscriber};

async fn registry_over(
    store: Arc<dyn object_store::ObjectStore>,
    clock: Arc<ManualClock>,
) -> Registry {
    common::builder_over(store)
        .await
        .clock(clock)
        .build()
        .unwrap()
}

async fn interrupted_at_every_operation(mode: FaultMode) {
    let image = Image::seeded("pushed");
    let r = repo("crash/events");
    let config = common::sha256(&image.config);
    let layer = common::sha256(&image.layers[0]);
    let manifest = common::sha256(&image.manifest());
    for n in 0.. {
        let faulty = FaultyStore::new(Arc::new(InMemory::new()));
        let clock = Arc::new(ManualClock::starting_now());
        let registry = registry_over(Arc::new(faulty.clone()), clock.clone()).await;
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
        faulty.disarm();
        if !fired {
            outcome.expect("an undisturbed push succeeds");
            assert!(n > 10, "the push ran through only {n} operations");
            eprintln!("{mode:?}: push interrupted at each of its {n} storage operations");
            return;
        }
        // The restarted process, once every slot the dead one left is past its deadline.
        clock.advance(wharf::ANNOUNCE_DEADLINE + Duration::from_secs(31));
        let restarted = registry_over(Arc::new(faulty.clone()), clock.clone()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_push_leaves_events_exactly_for_what_is_visible() {
    interrupted_at_every_operation(FaultMode::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_push_leaves_events_exactly_for_what_is_visible()
{
    interrupted_at_every_operation(FaultMode::FailOnce).await;
}
