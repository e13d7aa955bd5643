//! Repositories: creation on push or explicitly, settings, tag mutability, the catalog,
//! and deletion.

use crate::common;

use common::{repo, sha256, tag};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::json;
use wharf::{ErrorKind, Reference, Registry, RepoName, RepositorySettings, TagMutability};

/// Pushes a config blob and returns a manifest using it.
async fn image(registry: &Registry, r: &RepoName, seed: &str) -> Bytes {
    let config = format!("config {seed}");
    let digest = sha256(config.as_bytes());
    registry
        .push_blob(r, &digest, Bytes::from(config.clone()))
        .await
        .unwrap();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.to_string(), "size": config.len()},
        "layers": [],
    }))
    .unwrap()
    .into()
}

#[tokio::test]
async fn pushes_create_repositories_and_the_catalog_pages_lexically() {
    let registry = Registry::in_memory();
    let names = ["b", "a/b", "a-b", "a", "team/web", "team/api"];
    for name in names {
        registry
            .push_blob(&repo(name), &sha256(b"x"), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    let mut paged = Vec::new();
    let mut last: Option<RepoName> = None;
    loop {
        let page = registry.list_repositories(4, last.as_ref()).await.unwrap();
        let Some(end) = page.last() else { break };
        last = Some(end.clone());
        paged.extend(page.iter().map(|r| r.to_string()));
    }
    assert_eq!(paged, sorted);
    let a = registry.repository(&repo("a")).await.unwrap();
    assert_eq!(a.settings, RepositorySettings::default());
}

#[tokio::test]
async fn explicit_creation_like_ecr() {
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
        .create_repositories_on_push(false)
        .build()
        .unwrap();
    let r = repo("app");
    let err = registry
        .push_blob(&r, &sha256(b"x"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NameUnknown);
    assert!(err.message().contains("app"), "{err}");
    assert_eq!(
        registry.start_upload(&r).await.unwrap_err().kind(),
        ErrorKind::NameUnknown
    );
    assert_eq!(
        registry.list_tags(&r, 10, None).await.unwrap_err().kind(),
        ErrorKind::NameUnknown
    );

    registry
        .create_repository(&r, RepositorySettings::default())
        .await
        .unwrap();
    let err = registry
        .create_repository(&r, RepositorySettings::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        !err.is_retryable(),
        "an existing repository is not a race to retry"
    );
    registry
        .push_blob(&r, &sha256(b"x"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    registry.start_upload(&r).await.unwrap();
}

#[tokio::test]
async fn settings_are_stored_and_validated() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let settings = RepositorySettings {
        tag_mutability: TagMutability::MutableWithExclusion,
        mutability_exclusions: vec!["release-*".into()],
        encryption_key: Some("tenant-a".into()),
        encrypted: None,
        compressed: Some(false),
        scan_on_push: true,
        lifecycle_policy: Some(
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#
                .into(),
        ),
        labels: [("team".to_owned(), "web".to_owned())].into(),
        public: true,
    };
    registry
        .create_repository(&r, settings.clone())
        .await
        .unwrap();
    assert_eq!(registry.repository(&r).await.unwrap().settings, settings);
    let changed = RepositorySettings {
        scan_on_push: false,
        ..settings
    };
    registry
        .update_repository(&r, changed.clone())
        .await
        .unwrap();
    assert_eq!(registry.repository(&r).await.unwrap().settings, changed);

    let bad = RepositorySettings {
        tag_mutability: TagMutability::ImmutableWithExclusion,
        mutability_exclusions: (0..6).map(|i| format!("f{i}-*")).collect(),
        ..Default::default()
    };
    let err = registry.update_repository(&r, bad).await.unwrap_err();
    assert!(err.message().contains("at most 5"), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let bad_policy = RepositorySettings {
        lifecycle_policy: Some(r#"{"rules": []}"#.into()),
        ..Default::default()
    };
    let err = registry
        .update_repository(&r, bad_policy)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyInvalid, "{err}");
    assert_eq!(
        registry.repository(&r).await.unwrap().settings,
        changed,
        "a refused update changes nothing"
    );
    assert_eq!(
        registry
            .update_repository(&repo("missing"), changed)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NameUnknown
    );
}

#[tokio::test]
async fn immutable_tags_do_not_move() {
    let registry = Registry::in_memory();
    let r = repo("app");
    registry
        .create_repository(
            &r,
            RepositorySettings {
                tag_mutability: TagMutability::ImmutableWithExclusion,
                mutability_exclusions: vec!["latest".into(), "dev-*".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let first = image(&registry, &r, "first").await;
    let second = image(&registry, &r, "second").await;
    for name in ["v1", "latest", "dev-7"] {
        registry
            .push_manifest(&r, &tag(name), first.clone(), None)
            .await
            .unwrap();
    }
    registry
        .push_manifest(&r, &tag("v1"), first.clone(), None)
        .await
        .expect("same digest again is fine");
    let err = registry
        .push_manifest(&r, &tag("v1"), second.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TagImmutable);
    assert!(
        err.message().contains("v1") && err.message().contains(sha256(&first).as_str()),
        "{err}"
    );
    assert_eq!(
        registry
            .resolve_tag(&r, &"v1".parse().unwrap())
            .await
            .unwrap(),
        sha256(&first)
    );
    for name in ["latest", "dev-7"] {
        registry
            .push_manifest(&r, &tag(name), second.clone(), None)
            .await
            .expect("excluded tags move");
    }
}

#[tokio::test]
async fn deleting_a_repository_takes_everything_it_owns() {
    let registry = Registry::in_memory();
    let (r, neighbour) = (repo("app"), repo("app/sub"));
    let manifest = image(&registry, &r, "x").await;
    registry
        .push_manifest(&r, &tag("v1"), manifest.clone(), None)
        .await
        .unwrap();
    let neighbour_manifest = image(&registry, &neighbour, "x").await;
    registry
        .push_manifest(&neighbour, &tag("v1"), neighbour_manifest, None)
        .await
        .unwrap();

    // Uploads open into it, and one into its neighbour.
    let open = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &open.id, 0, Bytes::from_static(b"half a layer"))
        .await
        .unwrap();
    let idle = registry.start_upload(&r).await.unwrap();
    let next_door = registry.start_upload(&neighbour).await.unwrap();

    let err = registry.delete_repository(&r, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RepositoryNotEmpty);
    registry.delete_repository(&r, true).await.unwrap();
    // Its uploads went with it, staged bytes and all; the neighbour's stays.
    for id in [&open.id, &idle.id] {
        let err = registry.upload_status(&r, id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BlobUploadUnknown, "{err}");
    }
    registry
        .upload_status(&neighbour, &next_door.id)
        .await
        .unwrap();
    let staged: Vec<String> = registry
        .blob_store()
        .list_staging()
        .map_ok(|area| area.staging_id)
        .try_collect()
        .await
        .unwrap();
    assert!(
        !staged.contains(&open.id.to_string()),
        "nothing staged was left behind: {staged:?}"
    );
    assert_eq!(
        registry.repository(&r).await.unwrap_err().kind(),
        ErrorKind::NameUnknown
    );
    assert_eq!(
        registry.list_repositories(10, None).await.unwrap(),
        vec![neighbour.clone()]
    );
    let err = registry
        .read_blob(&r, &sha256(b"config x"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUnknown);
    // The repository whose name extends the deleted one's is untouched.
    assert_eq!(
        registry
            .list_tags(&neighbour, 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
    registry
        .read_blob(&neighbour, &sha256(b"config x"), None)
        .await
        .unwrap();

    // Re-created, it starts empty.
    registry
        .create_repository(&r, RepositorySettings::default())
        .await
        .unwrap();
    assert!(registry.list_tags(&r, 10, None).await.unwrap().is_empty());
    let err = registry
        .get_manifest(&r, &Reference::Digest(sha256(&manifest)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestUnknown);
    registry
        .delete_repository(&r, false)
        .await
        .expect("an empty repository needs no force");
}
