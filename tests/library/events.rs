//! Every change the registry commits reaches a subscriber once, in commit order, with a
//! stable id; nothing that did not commit does.

use crate::common::{self, Recorder, drain, images::Image, repo, tag};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use wharf::{
    DispatchOptions, ErrorKind, Event, GcOptions, Reference, Registry, RepositorySettings,
    Subscriber,
};

async fn dispatcher_for(registry: &Registry, recorder: &Arc<Recorder>) -> wharf::Dispatcher {
    let subscriber: Arc<dyn Subscriber> = recorder.clone();
    registry
        .dispatcher(vec![subscriber], DispatchOptions::default())
        .await
        .unwrap()
}

const EXPIRE_UNTAGGED: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;

#[tokio::test]
async fn every_change_is_delivered_once_in_commit_order() {
    let registry = common::registry_without_grace();
    let recorder = Recorder::new("pipeline");
    let dispatcher = dispatcher_for(&registry, &recorder).await;
    let r = repo("team/app");

    let first = Image::seeded("first");
    let second = Image::seeded("second");
    let one = first.push(&registry, &r, &tag("v1")).await.unwrap();
    let two = second.push(&registry, &r, &tag("v1")).await.unwrap();
    registry
        .tag_manifest(&r, &"stable".parse().unwrap(), &two)
        .await
        .unwrap();
    registry
        .delete_tag(&r, &"stable".parse().unwrap())
        .await
        .unwrap();
    registry.delete_manifest(&r, &one).await.unwrap();
    let orphan = Bytes::from_static(b"never referenced");
    registry
        .push_blob(&r, &common::sha256(&orphan), orphan.clone())
        .await
        .unwrap();
    let gc = GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    };
    registry.collect_garbage(&gc).await.unwrap();
    // An untagged image, expired by the lifecycle policy.
    let third = Image::seeded("third");
    let three = third
        .push(
            &registry,
            &r,
            &Reference::Digest(common::sha256(&third.manifest())),
        )
        .await
        .unwrap();
    let settings = RepositorySettings {
        lifecycle_policy: Some(EXPIRE_UNTAGGED.to_owned()),
        ..RepositorySettings::default()
    };
    registry.update_repository(&r, settings).await.unwrap();
    registry
        .apply_lifecycle(&r, SystemTime::now() + Duration::from_secs(3 * 86_400))
        .await
        .unwrap();
    registry
        .set_repository_policy(&r, r#"{"Version":"2012-10-17","Statement":[{"Sid":"Pull","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage"]}]}"#, None)
        .await
        .unwrap();

    drain(&dispatcher).await;
    let got = recorder.events();
    let kinds = recorder.kinds();
    let pushes = |n: usize| std::iter::repeat_n("blob_pushed", n);
    let mut expected: Vec<&str> = vec!["repository_created"];
    expected.extend(pushes(2));
    expected.push("manifest_pushed");
    expected.extend(pushes(2));
    expected.extend([
        "manifest_pushed",
        "tag_moved",
        "tag_deleted",
        "manifest_deleted",
        "blob_pushed",
    ]);
    // The collection reclaims the orphan and what only the deleted image held.
    let reclaimed = kinds.iter().filter(|k| **k == "blob_reclaimed").count();
    assert!(reclaimed >= 2, "{kinds:?}");
    expected.extend(std::iter::repeat_n("blob_reclaimed", reclaimed));
    expected.extend(pushes(2));
    expected.extend([
        "manifest_pushed",
        "repository_settings_changed",
        "image_expired",
        "repository_policy_changed",
    ]);
    assert_eq!(kinds, expected);

    // What each event says.
    let pushed: Vec<_> = got
        .iter()
        .filter_map(|r| match &r.event {
            Event::ManifestPushed {
                digest,
                tag,
                previous,
                ..
            } => Some((digest.clone(), tag.clone(), previous.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        pushed,
        vec![
            (one.clone(), Some("v1".parse().unwrap()), None),
            (two.clone(), Some("v1".parse().unwrap()), Some(one.clone())),
            (three.clone(), None, None),
        ]
    );
    assert!(got.iter().any(|r| r.event
        == Event::ManifestDeleted {
            repo: r.event.repo().unwrap().clone(),
            digest: one.clone()
        }));
    assert!(got.iter().any(|r| r.event
        == Event::ImageExpired {
            repo: repo("team/app"),
            digest: three.clone(),
            rule: Some(1)
        }));
    // Ids are unique and follow the outbox order.
    let ids: Vec<u64> = got.iter().map(|r| r.id.seq()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let unique: BTreeSet<_> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(unique.len(), got.len());

    // Nothing is delivered twice, and a change that did not happen has no event.
    let pushed_again = first.push(&registry, &r, &tag("v1")).await;
    pushed_again.unwrap();
    let refused = registry
        .push_manifest(&r, &tag("v2"), Bytes::from_static(b"{}"), None)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ManifestInvalid);
    drain(&dispatcher).await;
    let after: Vec<_> = recorder.events()[got.len()..].to_vec();
    let kinds: Vec<_> = after.iter().map(|r| r.event.kind()).collect();
    // The collection took the first image's blobs, so the client uploads them again.
    assert_eq!(
        kinds,
        ["blob_pushed", "blob_pushed", "manifest_pushed"],
        "{after:?}"
    );
}

/// In memory batches are atomic: each move and its event are one batch.
#[tokio::test]
async fn a_tag_moved_again_and_again_is_delivered_in_the_order_it_moved() {
    tag_moves_delivered_in_order(common::registry_without_grace()).await;
}

/// Over an object store batches are ordered, not atomic: announce, move, mark.
#[tokio::test]
async fn a_tag_moved_again_and_again_is_delivered_in_order_without_atomic_batches() {
    let store = Arc::new(object_store::memory::InMemory::new());
    let registry = common::builder_over(store).await.build().unwrap();
    tag_moves_delivered_in_order(registry).await;
}

/// Eight writers move one tag at once, many times: the moves delivered chain.
async fn tag_moves_delivered_in_order(registry: Registry) {
    let recorder = Recorder::new("order");
    let dispatcher = dispatcher_for(&registry, &recorder).await;
    let r = repo("race/tags");
    let images: Vec<Image> = (0..8).map(|i| Image::seeded(&format!("img{i}"))).collect();
    for image in &images {
        image
            .push(
                &registry,
                &r,
                &Reference::Digest(common::sha256(&image.manifest())),
            )
            .await
            .unwrap();
    }
    // Eight writers move one tag at once, each to its own image, many times.
    let latest: wharf::Tag = "latest".parse().unwrap();
    let mut writers = Vec::new();
    for image in &images {
        let (registry, r, latest) = (registry.clone(), r.clone(), latest.clone());
        let digest = common::sha256(&image.manifest());
        writers.push(tokio::spawn(async move {
            for _ in 0..5 {
                registry.tag_manifest(&r, &latest, &digest).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    drain(&dispatcher).await;
    // The moves as delivered chain: each starts where the one before ended, and the last
    // ends where the tag points.
    let moves: Vec<_> = recorder
        .events()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TagMoved { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert!(!moves.is_empty());
    assert_eq!(moves[0].0, None);
    for pair in moves.windows(2) {
        assert_eq!(pair[1].0.as_ref(), Some(&pair[0].1), "{moves:?}");
    }
    let history = registry.tag_history(&r, &latest).await.unwrap();
    assert_eq!(moves.len(), history.len().min(moves.len()));
    assert_eq!(
        Some(&moves.last().unwrap().1),
        registry.resolve_tag(&r, &latest).await.ok().as_ref()
    );
}

#[tokio::test]
async fn a_new_subscriber_starts_at_the_end_and_a_known_one_where_it_stopped() {
    let registry = common::registry_without_grace();
    let r = repo("cursor/app");
    Image::seeded("before")
        .push(&registry, &r, &tag("v1"))
        .await
        .unwrap();
    let recorder = Recorder::new("late");
    let dispatcher = dispatcher_for(&registry, &recorder).await;
    drain(&dispatcher).await;
    assert!(recorder.events().is_empty(), "history is not replayed");
    registry
        .delete_tag(&r, &"v1".parse().unwrap())
        .await
        .unwrap();
    // A graceful stop gives the subscriber up, so the next process need not wait for
    // the lease to run out.
    dispatcher.release().await.unwrap();
    // The same subscriber in a dispatcher made later (a restart) continues.
    let again = dispatcher_for(&registry, &recorder).await;
    drain(&again).await;
    assert_eq!(recorder.kinds(), ["tag_deleted"]);
    let backlog = again.backlog().await.unwrap();
    assert_eq!(backlog, vec![("late".to_owned(), 0)]);
}
