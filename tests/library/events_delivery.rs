//! Delivery: a refusing subscriber is retried with backoff, its events set aside as dead
//! letters once too old and replayed on request; two processes on one store deliver each
//! event once, and one takes over when the other stops.

use crate::common::{self, Recorder, drain, images::Image, repo, tag};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use object_store::memory::InMemory;
use wharf::testing::ManualClock;
use wharf::{DispatchOptions, Registry, Subscriber};

fn options(holder: &str) -> DispatchOptions {
    DispatchOptions {
        max_age: Duration::from_secs(60),
        lease: Duration::from_secs(30),
        holder: holder.to_owned(),
        ..DispatchOptions::default()
    }
}

async fn registry_with(store: Arc<InMemory>, clock: Arc<ManualClock>) -> Registry {
    common::builder_over(store)
        .await
        .clock(clock)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_refusing_subscriber_is_retried_then_dead_lettered_and_replayed() {
    let clock = Arc::new(ManualClock::starting_now());
    let registry = registry_with(Arc::new(InMemory::new()), clock.clone()).await;
    let recorder = Recorder::new("flaky");
    let subscriber: Arc<dyn Subscriber> = recorder.clone();
    let dispatcher = registry
        .dispatcher(vec![subscriber], options("one"))
        .await
        .unwrap();
    let r = repo("retry/app");
    recorder.refuse.store(true, Ordering::SeqCst);
    Image::seeded("a")
        .push(&registry, &r, &tag("v1"))
        .await
        .unwrap();

    // Refused: tried once, then not again until the backoff has passed.
    let report = dispatcher.step().await.unwrap();
    assert_eq!((report.failed, report.delivered), (1, 0));
    let report = dispatcher.step().await.unwrap();
    assert_eq!(report.failed, 0, "the retry is not due yet");
    assert!(report.waiting);
    clock.advance(Duration::from_secs(2));
    assert_eq!(dispatcher.step().await.unwrap().failed, 1);

    // The receiver is back: everything arrives, in order, once.
    recorder.refuse.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(5));
    drain(&dispatcher).await;
    assert_eq!(
        recorder.kinds(),
        [
            "repository_created",
            "blob_pushed",
            "blob_pushed",
            "manifest_pushed"
        ]
    );

    // Down for longer than the maximum age: the events go to the dead letters, and
    // delivery goes on past them.
    recorder.refuse.store(true, Ordering::SeqCst);
    registry
        .delete_tag(&r, &"v1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(dispatcher.step().await.unwrap().failed, 1);
    clock.advance(Duration::from_secs(61));
    let report = dispatcher.step().await.unwrap();
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    let letters = dispatcher.dead_letters("flaky").await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].record.event.kind(), "tag_deleted");
    assert_eq!(letters[0].attempts, 2);
    assert_eq!(letters[0].error, "the receiver is down");
    assert_eq!(dispatcher.backlog().await.unwrap()[0].1, 0);

    // Replayed while still down: kept. Once up: delivered and gone.
    let replay = dispatcher.replay_dead_letters("flaky").await.unwrap();
    assert_eq!((replay.delivered, replay.failed), (0, 1));
    recorder.refuse.store(false, Ordering::SeqCst);
    let replay = dispatcher.replay_dead_letters("flaky").await.unwrap();
    assert_eq!((replay.delivered, replay.failed), (1, 0));
    assert!(dispatcher.dead_letters("flaky").await.unwrap().is_empty());
    assert_eq!(recorder.kinds().last(), Some(&"tag_deleted"));
    assert!(dispatcher.dead_letters("nobody").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_deliver_each_event_once_and_one_takes_over_from_the_other() {
    let store = Arc::new(InMemory::new());
    let clock = Arc::new(ManualClock::starting_now());
    let a = registry_with(store.clone(), clock.clone()).await;
    let b = registry_with(store.clone(), clock.clone()).await;
    let recorder = Recorder::new("shared");
    let subscriber: Arc<dyn Subscriber> = recorder.clone();
    let in_a = a
        .dispatcher(vec![subscriber.clone()], options("process-a"))
        .await
        .unwrap();
    let in_b = b
        .dispatcher(vec![subscriber], options("process-b"))
        .await
        .unwrap();

    // Both processes push and both dispatch, at once.
    let mut pushes = Vec::new();
    for i in 0..12 {
        let registry = if i % 2 == 0 { a.clone() } else { b.clone() };
        pushes.push(tokio::spawn(async move {
            let r = repo(&format!("shared/app{}", i % 3));
            Image::seeded(&format!("img{i}"))
                .push(&registry, &r, &tag(&format!("v{i}")))
                .await
                .unwrap();
        }));
    }
    let stepping = tokio::spawn(async move {
        for _ in 0..50 {
            in_a.step().await.unwrap();
            in_b.step().await.unwrap();
            tokio::task::yield_now().await;
        }
        (in_a, in_b)
    });
    for push in pushes {
        push.await.unwrap();
    }
    let (in_a, in_b) = stepping.await.unwrap();
    drain(&in_a).await;
    drain(&in_b).await;
    let got = recorder.events();
    let pushed = got
        .iter()
        .filter(|r| r.event.kind() == "manifest_pushed")
        .count();
    assert_eq!(pushed, 12, "{:?}", recorder.kinds());
    let mut ids: Vec<_> = got.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        got.len(),
        "no event twice without a process death"
    );
    // In commit order: ids ascend.
    assert!(got.windows(2).all(|w| w[0].id < w[1].id));

    // Process A holds the subscriber and dies; B waits for its lease, then delivers.
    let r = repo("shared/app0");
    a.delete_tag(&r, &"v0".parse().unwrap()).await.unwrap();
    in_a.step().await.unwrap();
    b.delete_tag(&r, &"v6".parse().unwrap()).await.unwrap();
    drop(in_a);
    let report = in_b.step().await.unwrap();
    assert_eq!(report.held_elsewhere, 1);
    assert_eq!(report.delivered, 0);
    clock.advance(Duration::from_secs(31));
    drain(&in_b).await;
    let kinds = recorder.kinds();
    assert_eq!(&kinds[kinds.len() - 2..], ["tag_deleted", "tag_deleted"]);
}

#[tokio::test]
async fn a_slot_whose_writer_never_committed_is_void_after_its_deadline() {
    // A writer that announced and then lost its store (a crash before its commit point)
    // holds delivery back until the deadline, then counts for nothing.
    let store = Arc::new(InMemory::new());
    let clock = Arc::new(ManualClock::starting_now());
    let registry = registry_with(store.clone(), clock.clone()).await;
    let recorder = Recorder::new("deadline");
    let subscriber: Arc<dyn Subscriber> = recorder.clone();
    let dispatcher = registry
        .dispatcher(vec![subscriber], options("one"))
        .await
        .unwrap();
    let r = repo("deadline/app");
    let faulty = wharf::testing::FaultyStore::new(store.clone());
    let dying = common::builder_over(Arc::new(faulty.clone()))
        .await
        .clock(clock.clone())
        .build()
        .unwrap();
    // Find the push's operations, then crash it on the tag's write (the commit point):
    // the slot is written, the tag is not.
    let image = Image::seeded("dies");
    image.push(&registry, &r, &tag("base")).await.unwrap();
    drain(&dispatcher).await;
    let before = recorder.events().len();
    let digest = common::sha256(&image.manifest());
    for n in 0.. {
        faulty.arm(n, wharf::testing::FaultMode::Crash);
        let pushed = dying
            .tag_manifest(&r, &"next".parse().unwrap(), &digest)
            .await;
        faulty.disarm();
        if pushed.is_ok() {
            panic!("no operation of the tag move left a pending slot behind");
        }
        let report = dispatcher.step().await.unwrap();
        if report.waiting {
            break;
        }
    }
    assert!(
        registry
            .resolve_tag(&r, &"next".parse().unwrap())
            .await
            .is_err()
    );
    clock.advance(wharf::ANNOUNCE_DEADLINE + Duration::from_secs(31));
    let report = drain(&dispatcher).await;
    assert!(!report.waiting);
    assert_eq!(recorder.events().len(), before, "nothing invented");
    // And delivery goes on after it.
    registry
        .tag_manifest(&r, &"next".parse().unwrap(), &digest)
        .await
        .unwrap();
    drain(&dispatcher).await;
    assert_eq!(recorder.kinds()[before..], ["tag_moved"]);
}

#[tokio::test]
async fn a_job_lease_has_one_holder_until_it_runs_out_or_is_given_up() {
    let clock = Arc::new(ManualClock::starting_now());
    let registry = registry_with(Arc::new(InMemory::new()), clock.clone()).await;
    let ttl = Duration::from_secs(60);
    let mut first = registry
        .acquire_lease("gc", "a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        registry
            .acquire_lease("gc", "b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Renewed, it holds past its first end.
    clock.advance(Duration::from_secs(50));
    assert!(registry.renew_lease(&mut first, ttl).await.unwrap());
    clock.advance(Duration::from_secs(50));
    assert!(
        registry
            .acquire_lease("gc", "b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Not renewed, it runs out: another holder takes it with a larger fence, and the
    // old holder learns it lost it.
    clock.advance(Duration::from_secs(61));
    let second = registry
        .acquire_lease("gc", "b", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(second.fence() > first.fence());
    assert!(!registry.renew_lease(&mut first, ttl).await.unwrap());
    // Given up, it is free at once; other jobs were never affected.
    registry.release_lease(second).await.unwrap();
    assert!(
        registry
            .acquire_lease("gc", "c", ttl)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        registry
            .acquire_lease("lifecycle", "a", ttl)
            .await
            .unwrap()
            .is_some()
    );
    assert!(registry.acquire_lease("Bad Name", "a", ttl).await.is_err());
}
