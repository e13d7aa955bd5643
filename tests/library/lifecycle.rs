//! Lifecycle policies on a registry: attach, preview, apply; preview and apply agree;
//! concurrent tag changes are re-evaluated; archive and restore; events.

use crate::common;
use crate::common::images::Image;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wharf::testing::ManualClock;

use bytes::Bytes;
use common::{repo, sha256, tag};
use serde_json::json;
use wharf::{
    Digest, ErrorKind, Event, GcOptions, MemoryEventSink, MemoryMetaStore, Outcome, Reference,
    Registry, RepoName,
};

const DAY: Duration = Duration::from_secs(86_400);

fn registry_with_events() -> (Registry, Arc<MemoryEventSink>) {
    let (registry, events, _) = registry_with_clock();
    (registry, events)
}

/// [`registry_with_events`] on a clock that moves only when the test says so.
fn registry_with_clock() -> (Registry, Arc<MemoryEventSink>, Arc<ManualClock>) {
    let events = Arc::new(MemoryEventSink::default());
    let clock = Arc::new(ManualClock::starting_now());
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .archive_store(Arc::new(object_store::memory::InMemory::new()))
        .event_sink(events.clone())
        .gc_grace(Duration::ZERO)
        .clock(clock.clone())
        .build()
        .unwrap();
    (registry, events, clock)
}

/// Pushes a one-layer image whose contents derive from `seed`; returns its digest.
async fn push(registry: &Registry, r: &RepoName, reference: &str, seed: &str) -> Digest {
    let config = Bytes::from(format!("{{\"seed\":\"{seed}\"}}"));
    let layer = Bytes::from(format!("layer of {seed}").repeat(100));
    let image = Image::of(&config, &[&layer]);
    let reference = if reference.is_empty() {
        Reference::Digest(sha256(&image.manifest()))
    } else {
        tag(reference)
    };
    image.push(registry, r, &reference).await.unwrap()
}

/// Pushes a signature referring to `subject`, tagged `tag_name`.
async fn sign(registry: &Registry, r: &RepoName, subject: &Digest, tag_name: &str) -> Digest {
    let config = Bytes::from_static(b"{}");
    registry
        .push_blob(r, &sha256(&config), config.clone())
        .await
        .unwrap();
    let stat = registry
        .stat_manifest(r, &Reference::Digest(subject.clone()))
        .await
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256(&config).to_string(), "size": config.len()},
        "layers": [],
        "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": subject.to_string(), "size": stat.size}
    });
    let raw = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    registry
        .push_manifest(r, &tag(tag_name), raw, None)
        .await
        .unwrap()
        .digest
}

const KEEP_TWO_RELEASES: &str = r#"{"rules": [
  {"rulePriority": 1, "description": "two newest releases",
   "selection": {"tagStatus": "tagged", "tagPatternList": ["release-*"],
                 "countType": "imageCountMoreThan", "countNumber": 2},
   "action": {"type": "expire"}},
  {"rulePriority": 2, "description": "untagged after a day",
   "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                 "countUnit": "days", "countNumber": 1},
   "action": {"type": "expire"}}
]}"#;

#[tokio::test]
async fn an_invalid_policy_cannot_be_attached() {
    let registry = Registry::in_memory();
    let r = repo("app");
    push(&registry, &r, "v1", "a").await;
    let err = registry
        .set_lifecycle_policy(&r, Some(r#"{"rules": [{"rulePriority": 1}]}"#))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyInvalid);
    assert!(err.message().contains("rule 1"), "{err}");
    assert!(registry.lifecycle_policy(&r).await.unwrap().is_none());
    assert_eq!(
        registry
            .preview_lifecycle(&r, SystemTime::now())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::PolicyInvalid
    );
}

#[tokio::test]
async fn preview_and_apply_agree_and_apply_emits_events() {
    let (registry, events, clock) = registry_with_clock();
    let r = repo("app");
    let mut releases = Vec::new();
    for i in 0..4 {
        releases.push(push(&registry, &r, &format!("release-{i}"), &format!("r{i}")).await);
        clock.advance(Duration::from_secs(1));
    }
    let untagged = push(&registry, &r, "", "loose").await;
    // Tagged so no rule selects it: it goes only because its subject does.
    let signature = sign(&registry, &r, &releases[0], "sig-0").await;
    registry
        .set_lifecycle_policy(&r, Some(KEEP_TWO_RELEASES))
        .await
        .unwrap();

    let now = SystemTime::now() + 2 * DAY;
    let preview = registry.preview_lifecycle(&r, now).await.unwrap();
    let mut expected_expired = vec![
        releases[0].to_string(),
        releases[1].to_string(),
        untagged.to_string(),
    ];
    expected_expired.sort();
    assert_eq!(preview.expired(), expected_expired);
    assert_eq!(preview.cascade_expired(), [signature.to_string()]);
    assert_eq!(
        preview
            .decision(&releases[0].to_string())
            .map(|d| (d.outcome, d.rule)),
        Some((Outcome::Expire, Some(1)))
    );

    let report = registry.apply_lifecycle(&r, now).await.unwrap();
    assert_eq!(report.plans, 1);
    let mut applied: Vec<String> = report.expired.iter().map(|(d, _)| d.to_string()).collect();
    applied.sort();
    assert_eq!(applied, expected_expired);
    assert_eq!(report.cascade_expired, vec![signature.clone()]);
    let left: Vec<Digest> = registry
        .inventory(&r)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.digest)
        .collect();
    let mut kept = vec![releases[2].clone(), releases[3].clone()];
    kept.sort();
    assert_eq!(left, kept);
    let mut expired_events = 0;
    for event in events.take() {
        if let Event::ImageExpired { rule, digest, .. } = event {
            expired_events += 1;
            assert_eq!(rule.is_none(), digest == signature);
        }
    }
    assert_eq!(expired_events, 4);

    // Applying again finds nothing left to do, as a preview of the new state says.
    assert!(
        registry
            .preview_lifecycle(&r, now)
            .await
            .unwrap()
            .expired()
            .is_empty()
    );
    let again = registry.apply_lifecycle(&r, now).await.unwrap();
    assert!(again.expired.is_empty() && again.cascade_expired.is_empty());

    // The expired images' blobs are garbage now.
    let gc = registry
        .collect_garbage(&GcOptions {
            grace: Duration::ZERO,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    assert!(gc.reclaimed_blobs >= 6, "{gc:?}");
}

#[tokio::test]
async fn a_tag_moved_after_planning_is_re_evaluated_not_deleted() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let old = push(&registry, &r, "", "old").await;
    let now = SystemTime::now() + 2 * DAY;
    let policy = wharf::LifecyclePolicy::parse(KEEP_TWO_RELEASES).unwrap();
    let plan = registry
        .preview_lifecycle_with(&r, &policy, now)
        .await
        .unwrap();
    assert_eq!(plan.expired(), [old.to_string()]);

    // Between the preview and the apply, someone tags the image.
    let stored = registry
        .get_manifest(&r, &Reference::Digest(old.clone()))
        .await
        .unwrap();
    registry
        .push_manifest(&r, &tag("keep-me"), stored.raw, None)
        .await
        .unwrap();
    let report = registry
        .apply_lifecycle_with(&r, &policy, now)
        .await
        .unwrap();
    assert!(report.expired.is_empty(), "{report:?}");
    registry
        .stat_manifest(&r, &tag("keep-me"))
        .await
        .expect("the tagged image survives");
}

#[tokio::test]
async fn index_children_stay_while_their_index_does() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let amd = push(&registry, &r, "", "amd64").await;
    let arm = push(&registry, &r, "", "arm64").await;
    let child = |d: &Digest, arch: &str| {
        json!({"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": d.to_string(), "size": 1,
               "platform": {"os": "linux", "architecture": arch}})
    };
    let mut children = Vec::new();
    for (d, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let size = registry
            .stat_manifest(&r, &Reference::Digest(d.clone()))
            .await
            .unwrap()
            .size;
        let mut c = child(d, arch);
        c["size"] = json!(size);
        children.push(c);
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX, "manifests": children});
    let index = registry
        .push_manifest(
            &r,
            &tag("latest"),
            Bytes::from(serde_json::to_vec(&index).unwrap()),
            None,
        )
        .await
        .unwrap()
        .digest;
    let untagged_policy = r#"{"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1},
        "action": {"type": "expire"}}]}"#;
    registry
        .set_lifecycle_policy(&r, Some(untagged_policy))
        .await
        .unwrap();
    let now = SystemTime::now() + 2 * DAY;
    let report = registry.apply_lifecycle(&r, now).await.unwrap();
    assert!(report.expired.is_empty(), "{report:?}");
    assert_eq!(registry.inventory(&r).await.unwrap().len(), 3);

    // Once the index is untagged, all three go, the index before its children.
    registry
        .delete_tag(&r, &"latest".parse().unwrap())
        .await
        .unwrap();
    let report = registry.apply_lifecycle(&r, now).await.unwrap();
    let mut expired: Vec<Digest> = report.expired.iter().map(|(d, _)| d.clone()).collect();
    expired.sort();
    let mut all = vec![amd, arm, index];
    all.sort();
    assert_eq!(expired, all);
    assert!(registry.inventory(&r).await.unwrap().is_empty());
}

#[tokio::test]
async fn archived_images_are_listed_but_not_pulled_until_restored() {
    let (registry, events, clock) = registry_with_clock();
    let r = repo("app");
    let old = push(&registry, &r, "v1", "old").await;
    // Push times are kept to the millisecond: make "newer" unambiguous.
    clock.advance(Duration::from_secs(1));
    let new = push(&registry, &r, "v2", "new").await;
    let policy = r#"{"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "transition", "targetStorageClass": "archive"}}]}"#;
    registry
        .set_lifecycle_policy(&r, Some(policy))
        .await
        .unwrap();
    let report = registry
        .apply_lifecycle(&r, SystemTime::now())
        .await
        .unwrap();
    assert_eq!(report.transitioned, vec![(old.clone(), 1)]);
    assert!(events.take().contains(&Event::ImageArchived {
        repo: r.clone(),
        digest: old.clone(),
        rule: Some(1)
    }));

    // Listed, with its tag, but not pullable; the error says why.
    let inventory = registry.inventory(&r).await.unwrap();
    let archived = inventory.iter().find(|i| i.digest == old).unwrap();
    assert!(archived.archived_at.is_some());
    assert_eq!(registry.list_tags(&r, 10, None).await.unwrap().len(), 2);
    let err = registry.get_manifest(&r, &tag("v1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ImageArchived);
    assert!(err.message().contains("restore"), "{err}");
    registry.get_manifest(&r, &tag("v2")).await.unwrap();
    assert_eq!(
        registry
            .lifecycle_inventory(&r)
            .await
            .unwrap()
            .images
            .iter()
            .filter(|i| i.storage_class == wharf::StorageClass::Archive)
            .count(),
        1
    );

    // The move: a collection reclaims the archived image's config and layer.
    let gc = registry
        .collect_garbage(&GcOptions {
            grace: Duration::ZERO,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(gc.reclaimed_blobs, 2, "{gc:?}");

    // Restore brings it back, bytes and all.
    registry.restore_image(&r, &old).await.unwrap();
    let stored = registry.get_manifest(&r, &tag("v1")).await.unwrap();
    let manifest = wharf::Manifest::parse(stored.raw, Some(&stored.media_type)).unwrap();
    for blob in manifest.blobs() {
        let bytes = registry
            .read_blob(&r, &blob.digest, None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(sha256(&bytes), blob.digest);
    }
    assert!(events.take().contains(&Event::ImageRestored {
        repo: r.clone(),
        digest: old.clone()
    }));
    // Held again: a collection keeps it.
    let gc = registry
        .collect_garbage(&GcOptions {
            grace: Duration::ZERO,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(gc.reclaimed_blobs, 0, "{gc:?}");

    // Pushing an archived image again restores it at once, as in ECR.
    registry.archive_image(&r, &new).await.unwrap();
    registry
        .collect_garbage(&GcOptions {
            grace: Duration::ZERO,
            ..GcOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(
        registry
            .get_manifest(&r, &tag("v2"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ImageArchived
    );
    assert_eq!(push(&registry, &r, "v2", "new").await, new);
    registry.get_manifest(&r, &tag("v2")).await.unwrap();
    let restored = registry.inventory(&r).await.unwrap();
    let restored = restored.iter().find(|i| i.digest == new).unwrap();
    assert!(restored.archived_at.is_none() && restored.restored_at.is_some());
}

#[tokio::test]
async fn archive_rules_expire_archived_images_after_their_time() {
    let registry = registry_with_events().0;
    let r = repo("app");
    let image = push(&registry, &r, "v1", "x").await;
    registry.archive_image(&r, &image).await.unwrap();
    // Sooner than ECR's 90 days in the archive: refused when the policy is put.
    let too_soon = r#"{"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "any", "storageClass": "archive",
                      "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 30},
        "action": {"type": "expire"}}]}"#;
    let refused = registry
        .set_lifecycle_policy(&r, Some(too_soon))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), wharf::ErrorKind::PolicyInvalid);
    assert!(
        refused.message().contains("selection.countNumber"),
        "{refused}"
    );
    let policy = r#"{"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "any", "storageClass": "archive",
                      "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 120},
        "action": {"type": "expire"}}]}"#;
    registry
        .set_lifecycle_policy(&r, Some(policy))
        .await
        .unwrap();
    let soon = registry
        .apply_lifecycle(&r, SystemTime::now() + 91 * DAY)
        .await
        .unwrap();
    assert!(soon.expired.is_empty());
    let later = registry
        .apply_lifecycle(&r, SystemTime::now() + 121 * DAY)
        .await
        .unwrap();
    assert_eq!(later.expired, vec![(image, 1)]);
}

#[tokio::test]
async fn without_an_archive_store_transitions_are_refused() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let image = push(&registry, &r, "v1", "x").await;
    let err = registry.archive_image(&r, &image).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("archive store"), "{err}");
    registry.get_manifest(&r, &tag("v1")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_pushed_while_apply_runs_is_never_lost() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let mut images = Vec::new();
    for i in 0..40 {
        images.push(push(&registry, &r, "", &format!("u{i}")).await);
    }
    let policy = r#"{"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1},
        "action": {"type": "expire"}}]}"#;
    registry
        .set_lifecycle_policy(&r, Some(policy))
        .await
        .unwrap();
    // Raw bytes first: once expired, an image cannot be read to tag it.
    let mut raws = Vec::new();
    for digest in &images {
        raws.push(
            registry
                .get_manifest(&r, &Reference::Digest(digest.clone()))
                .await
                .unwrap()
                .raw,
        );
    }
    let tagger = {
        let (registry, r) = (registry.clone(), r.clone());
        tokio::spawn(async move {
            let mut tagged = Vec::new();
            for (i, raw) in raws.into_iter().enumerate().filter(|(i, _)| i % 2 == 0) {
                let name = format!("keep-{i}");
                // A push may lose to the delete that got there first: then it re-creates
                // the manifest it names, and the tag must hold.
                registry
                    .push_manifest(&r, &tag(&name), raw, None)
                    .await
                    .unwrap();
                tagged.push(name);
                tokio::task::yield_now().await;
            }
            tagged
        })
    };
    let report = registry
        .apply_lifecycle(&r, SystemTime::now() + 2 * DAY)
        .await
        .unwrap();
    let tagged = tagger.await.unwrap();
    for name in &tagged {
        let stored = registry
            .get_manifest(&r, &tag(name))
            .await
            .unwrap_or_else(|e| panic!("tag {name} was lost: {e}"));
        assert_eq!(sha256(&stored.raw), stored.digest);
    }
    assert!(!report.expired.is_empty());
    eprintln!(
        "expired {}, re-planned {}, plans {}",
        report.expired.len(),
        report.replanned.len(),
        report.plans
    );
}

#[tokio::test]
async fn an_exported_inventory_previews_the_same_offline() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open_local(dir.path()).unwrap();
    let r = repo("prod/app");
    let mut last = None;
    for i in 0..4 {
        last = Some(push(&registry, &r, &format!("release-{i}"), &format!("r{i}")).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    push(&registry, &r, "", "loose").await;
    sign(&registry, &r, last.as_ref().unwrap(), "sig").await;
    registry.get_manifest(&r, &tag("release-0")).await.unwrap();
    registry
        .set_lifecycle_policy(&r, Some(KEEP_TWO_RELEASES))
        .await
        .unwrap();
    let now = SystemTime::now() + 3 * DAY;
    let live = registry.preview_lifecycle(&r, now).await.unwrap();

    // What the lifecycle tool's `inventory` command prints, read back as `preview` does.
    let exported = registry.lifecycle_inventory(&r).await.unwrap().to_json();
    let offline_inventory = wharf::LifecycleInventory::from_json(&exported).unwrap();
    let policy = wharf::LifecyclePolicy::parse(KEEP_TWO_RELEASES).unwrap();
    let offline = wharf::lifecycle::plan(&policy, &offline_inventory, now);
    assert_eq!(offline, live);
    assert_eq!(offline.expired().len(), 3);
    // The pull of release-0 is in the export.
    let pulled = offline_inventory
        .images
        .iter()
        .find(|i| i.tags == ["release-0"])
        .unwrap();
    assert!(pulled.last_pulled_at.is_some());
}
