//! Replication from the outbox to a second registry process (Distribution): every push
//! under the rule's prefix arrives, pushes elsewhere do not; while the destination is
//! down the image is `FAILED` with the reason and retried, and arrives once it is back;
//! deletes follow when the rule says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::remote::{Credentials, RemoteRegistry};
use wharf::{DispatchOptions, Reference, Registry, ReplicationRule, ReplicationStatus, RepoName};

use super::remote_copy::{distribution, distribution_on};
use crate::common::images::Image;

const USER: (&str, &str) = ("replicator", "replicator's password");

fn options() -> DispatchOptions {
    DispatchOptions {
        first_retry: Duration::from_millis(20),
        max_retry: Duration::from_millis(100),
        ..DispatchOptions::default()
    }
}

/// Steps `dispatcher` until `done` holds (or fails the test after 30 seconds).
async fn until<F: std::future::Future<Output = bool>>(
    dispatcher: &wharf::Dispatcher,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = dispatcher.step().await;
        if done().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_arrive_are_retried_while_the_destination_is_down_and_deletes_follow() {
    let dir = tempfile::tempdir().unwrap();
    let Some(peer) = distribution(dir.path(), USER) else {
        return;
    };
    let remote = Arc::new(
        RemoteRegistry::new(
            &peer.url,
            Some(Credentials {
                user: USER.0.into(),
                password: USER.1.into(),
            }),
            None,
        )
        .unwrap(),
    );
    let registry = Registry::in_memory();
    let rule = ReplicationRule {
        destination: "dr-site".into(),
        remote: remote.clone(),
        repository_prefixes: vec!["prod/".into()],
        replicate_deletes: true,
    };
    let dispatcher = registry
        .dispatcher(vec![registry.replicator(rule).unwrap()], options())
        .await
        .unwrap();

    let app: RepoName = "prod/app".parse().unwrap();
    let elsewhere: RepoName = "dev/app".parse().unwrap();
    let v1 = Image::seeded("replicated v1");
    let v1_digest = v1
        .push(&registry, &app, &"v1".parse().unwrap())
        .await
        .unwrap();
    let by_digest = Image::seeded("replicated by digest");
    let digest_only = by_digest
        .push(
            &registry,
            &app,
            &Reference::Digest(by_digest.digest(&by_digest.manifest())),
        )
        .await
        .unwrap();
    Image::seeded("not replicated")
        .push(&registry, &elsewhere, &"v1".parse().unwrap())
        .await
        .unwrap();
    until(&dispatcher, "the first pushes", || async {
        remote
            .manifest("prod/app", "v1")
            .await
            .ok()
            .flatten()
            .is_some()
            && remote
                .manifest("prod/app", digest_only.as_str())
                .await
                .ok()
                .flatten()
                .is_some()
    })
    .await;
    let arrived = remote.manifest("prod/app", "v1").await.unwrap().unwrap();
    assert_eq!(arrived.raw, v1.manifest());
    assert!(
        remote
            .manifest("dev/app", "v1")
            .await
            .ok()
            .flatten()
            .is_none()
    );
    let status = registry.replication_status(&app, &v1_digest).await.unwrap();
    assert_eq!(status["dr-site"].status, ReplicationStatus::Complete);

    // The destination goes down: the next push fails, is recorded, and retried.
    let port = peer.port;
    drop(peer);
    let v2 = Image::seeded("replicated v2");
    let v2_digest = v2
        .push(&registry, &app, &"v2".parse().unwrap())
        .await
        .unwrap();
    until(&dispatcher, "a failed attempt", || async {
        registry
            .replication_status(&app, &v2_digest)
            .await
            .unwrap()
            .get("dr-site")
            .is_some_and(|s| s.status == ReplicationStatus::Failed && s.last_error.is_some())
    })
    .await;
    // Back up on the same port and storage: v2 arrives.
    let _peer = distribution_on(dir.path(), USER, port);
    until(&dispatcher, "v2 after the outage", || async {
        remote
            .manifest("prod/app", "v2")
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    until(&dispatcher, "the status to settle", || async {
        registry.replication_status(&app, &v2_digest).await.unwrap()["dr-site"].status
            == ReplicationStatus::Complete
    })
    .await;

    // A delete here is a delete there.
    registry.delete_manifest(&app, &digest_only).await.unwrap();
    until(&dispatcher, "the delete", || async {
        remote
            .manifest("prod/app", digest_only.as_str())
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicates_to_a_wharf_process_that_wants_tokens() {
    use super::auth::{ALICE, start};
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let remote = Arc::new(
        RemoteRegistry::new(
            &server.url(),
            Some(Credentials {
                user: ALICE.0.into(),
                password: ALICE.1.into(),
            }),
            None,
        )
        .unwrap(),
    );
    let registry = Registry::in_memory();
    let rule = ReplicationRule {
        destination: "peer".into(),
        remote: remote.clone(),
        repository_prefixes: Vec::new(),
        replicate_deletes: false,
    };
    let dispatcher = registry
        .dispatcher(vec![registry.replicator(rule).unwrap()], options())
        .await
        .unwrap();
    let app: RepoName = "team/replicated".parse().unwrap();
    let mut pushed = Vec::new();
    for tag in ["a", "b", "c"] {
        let image = Image::seeded(&format!("to wharf {tag}"));
        image
            .push(&registry, &app, &tag.parse().unwrap())
            .await
            .unwrap();
        pushed.push((tag, image.manifest()));
    }
    until(&dispatcher, "every push at the peer", || async {
        let mut all = true;
        for (tag, _) in &pushed {
            all &= remote
                .manifest("team/replicated", tag)
                .await
                .ok()
                .flatten()
                .is_some();
        }
        all
    })
    .await;
    for (tag, manifest) in &pushed {
        let arrived = remote
            .manifest("team/replicated", tag)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&arrived.raw, manifest, "{tag}");
    }
    // Deletes are not copied unless the rule says so.
    let first = Image::seeded("to wharf a");
    let digest = first.digest(&first.manifest());
    registry.delete_manifest(&app, &digest).await.unwrap();
    for _ in 0..5 {
        let _ = dispatcher.step().await;
    }
    assert!(
        remote
            .manifest("team/replicated", digest.as_str())
            .await
            .unwrap()
            .is_some()
    );
}
