//! Manifests through the `Registry` facade: push, verification, deletes, platforms,
//! descriptors, and every operation at the longest names (tags and referrers:
//! `tags_and_referrers.rs`).

use crate::common;
use crate::common::images::Image;

use bytes::Bytes;
use common::{repo, sha256, tag};
use serde_json::json;
use wharf::{Algorithm, Digest, ErrorKind, Reference, Registry, RepoName, Tag};

/// Pushes a blob and returns its descriptor.
pub(super) async fn blob(
    registry: &Registry,
    r: &RepoName,
    data: &[u8],
    media_type: &str,
) -> serde_json::Value {
    let digest = sha256(data);
    registry
        .push_blob(r, &digest, Bytes::copy_from_slice(data))
        .await
        .unwrap();
    json!({"mediaType": media_type, "digest": digest.to_string(), "size": data.len()})
}

pub(super) fn image(config: &serde_json::Value, layers: &[serde_json::Value]) -> Bytes {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .unwrap()
    .into()
}

pub(super) async fn pushed_image(registry: &Registry, r: &RepoName, seed: &str) -> (Digest, Bytes) {
    let image = Image::of(
        &Bytes::from(format!("config {seed}")),
        &[&Bytes::from(format!("layer {seed}"))],
    );
    let raw = image.manifest();
    let digest = image
        .push(registry, r, &Reference::Digest(sha256(&raw)))
        .await
        .unwrap();
    (digest, raw)
}

#[tokio::test]
async fn manifests_need_their_blobs_and_keep_their_bytes() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let config_data = b"{\"architecture\":\"amd64\"}";
    let layer_data = b"layer tar";
    let config = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": sha256(config_data).to_string(), "size": config_data.len()});
    let layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       "digest": sha256(layer_data).to_string(), "size": layer_data.len()});
    let raw = image(&config, &[layer]);

    let err = registry
        .push_manifest(&r, &tag("v1"), raw.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestBlobUnknown);
    assert!(
        err.message().contains(sha256(config_data).as_str())
            && err.message().contains(sha256(layer_data).as_str()),
        "{err}"
    );
    assert_eq!(
        registry
            .get_manifest(&r, &tag("v1"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ManifestUnknown
    );

    registry
        .push_blob(&r, &sha256(config_data), Bytes::from_static(config_data))
        .await
        .unwrap();
    registry
        .push_blob(&r, &sha256(layer_data), Bytes::from_static(layer_data))
        .await
        .unwrap();
    let pushed = registry
        .push_manifest(&r, &tag("v1"), raw.clone(), None)
        .await
        .unwrap();
    assert_eq!(pushed.digest, sha256(&raw));

    for reference in [tag("v1"), Reference::Digest(sha256(&raw))] {
        let got = registry.get_manifest(&r, &reference).await.unwrap();
        assert_eq!(got.raw, raw, "byte for byte");
        assert_eq!(got.digest, sha256(&raw));
        assert_eq!(got.media_type, wharf::OCI_IMAGE_MANIFEST);
        let info = registry.stat_manifest(&r, &reference).await.unwrap();
        let (digest, media_type, size) = (info.digest, info.media_type, info.size);
        assert_eq!(
            (digest, media_type.as_str(), size),
            (sha256(&raw), wharf::OCI_IMAGE_MANIFEST, raw.len() as u64)
        );
    }
    // Not visible from another repository.
    let err = registry
        .get_manifest(&repo("other"), &Reference::Digest(sha256(&raw)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestUnknown);
}

#[tokio::test]
async fn the_manifest_size_limit_is_configurable() {
    let registry = Registry::builder()
        .object_store(std::sync::Arc::new(object_store::memory::InMemory::new()))
        .meta_store(std::sync::Arc::new(wharf::MemoryMetaStore::new()))
        .max_manifest_size(100)
        .build()
        .unwrap();
    let r = repo("app");
    let config = blob(
        &registry,
        &r,
        b"config",
        "application/vnd.oci.image.config.v1+json",
    )
    .await;
    let raw = image(&config, &[]);
    assert!(raw.len() > 100);
    let err = registry
        .push_manifest(&r, &tag("v1"), raw, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestInvalid);
    assert!(err.message().contains("limit of 100 bytes"), "{err}");
}

#[tokio::test]
async fn a_listed_size_must_match_the_blob() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let mut config = blob(
        &registry,
        &r,
        b"config",
        "application/vnd.oci.image.config.v1+json",
    )
    .await;
    config["size"] = json!(7);
    let err = registry
        .push_manifest(&r, &tag("v1"), image(&config, &[]), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
}

#[tokio::test]
async fn digest_references_are_verified() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let config = blob(
        &registry,
        &r,
        b"config",
        "application/vnd.oci.image.config.v1+json",
    )
    .await;
    let raw = image(&config, &[]);
    let wrong = Reference::Digest(sha256(b"not the manifest"));
    let err = registry
        .push_manifest(&r, &wrong, raw.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestInvalid);
    let sha512 = Digest::of(Algorithm::Sha512, &raw);
    registry
        .push_manifest(&r, &Reference::Digest(sha512.clone()), raw.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        registry
            .get_manifest(&r, &Reference::Digest(sha512))
            .await
            .unwrap()
            .raw,
        raw
    );
    assert!(
        registry.list_tags(&r, 10, None).await.unwrap().is_empty(),
        "a push by digest tags nothing"
    );
}

#[tokio::test]
async fn indexes_need_their_children() {
    let registry = Registry::in_memory();
    let r = repo("multi");
    let (child, raw_child) = pushed_image(&registry, &r, "amd64").await;
    let missing = sha256(b"never pushed");
    let index = |children: Vec<(Digest, usize)>| -> Bytes {
        let manifests: Vec<_> = children
            .iter()
            .map(|(d, size)| json!({"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": d.to_string(), "size": size,
                                    "platform": {"architecture": "amd64", "os": "linux"}}))
            .collect();
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX, "manifests": manifests}))
            .unwrap()
            .into()
    };
    let err = registry
        .push_manifest(
            &r,
            &tag("latest"),
            index(vec![
                (child.clone(), raw_child.len()),
                (missing.clone(), 10),
            ]),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestBlobUnknown);
    assert!(
        err.message().contains(missing.as_str()) && !err.message().contains(child.as_str()),
        "{err}"
    );
    registry
        .push_manifest(
            &r,
            &tag("latest"),
            index(vec![(child, raw_child.len())]),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_a_manifest_takes_its_tags_and_referrer_entry() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let (subject, raw_subject) = pushed_image(&registry, &r, "subject").await;
    let (digest, raw) = pushed_image(&registry, &r, "image").await;
    for name in ["a", "b"] {
        registry
            .push_manifest(&r, &tag(name), raw.clone(), None)
            .await
            .unwrap();
    }
    registry
        .push_manifest(&r, &tag("keep"), raw_subject.clone(), None)
        .await
        .unwrap();
    // `image` also refers to `subject`, as a signature would.
    let mut body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    body["subject"] = json!({"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": subject.to_string(), "size": raw_subject.len()});
    let referrer = Bytes::from(serde_json::to_vec(&body).unwrap());
    registry
        .push_manifest(&r, &tag("sig"), referrer.clone(), None)
        .await
        .unwrap();

    registry
        .delete_manifest(&r, &sha256(&referrer))
        .await
        .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&registry.referrers(&r, &subject, None).await.unwrap().index)
            .unwrap();
    assert!(
        index["manifests"].as_array().unwrap().is_empty(),
        "referrer entry removed"
    );

    registry.delete_manifest(&r, &digest).await.unwrap();
    let err = registry
        .get_manifest(&r, &Reference::Digest(digest.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestUnknown);
    let tags: Vec<String> = registry
        .list_tags(&r, 100, None)
        .await
        .unwrap()
        .iter()
        .map(Tag::to_string)
        .collect();
    assert_eq!(
        tags,
        ["keep"],
        "tags of the deleted manifest are gone, others stay"
    );
    assert_eq!(
        registry
            .delete_manifest(&r, &digest)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::ManifestUnknown
    );
    // Its blobs stay linked and stored until garbage collection.
    assert!(registry.list_blobs(&r, None, 100).await.unwrap().len() >= 4);
}

#[tokio::test]
async fn a_manifest_listed_by_an_index_cannot_be_deleted() {
    let registry = Registry::in_memory();
    let r = repo("multi");
    let (child, raw_child) = pushed_image(&registry, &r, "child").await;
    let index = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX,
            "manifests": [{"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": child.to_string(), "size": raw_child.len()}]}))
        .unwrap(),
    );
    registry
        .push_manifest(&r, &tag("latest"), index.clone(), None)
        .await
        .unwrap();
    let err = registry.delete_manifest(&r, &child).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestReferenced);
    assert!(err.message().contains(sha256(&index).as_str()), "{err}");
    // The same child in another repository is not protected by this index.
    let other = repo("other");
    let (other_child, _) = pushed_image(&registry, &other, "child").await;
    assert_eq!(other_child, child);
    registry.delete_manifest(&other, &child).await.unwrap();

    registry.delete_manifest(&r, &sha256(&index)).await.unwrap();
    registry
        .delete_manifest(&r, &child)
        .await
        .expect("deletable once the index is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_racing_deletes_never_leave_a_tag_pointing_at_nothing() {
    let registry = Registry::in_memory();
    let r = repo("race");
    let (digest, raw) = pushed_image(&registry, &r, "contended").await;
    for round in 0..40 {
        let push = {
            let (registry, r, raw) = (registry.clone(), r.clone(), raw.clone());
            tokio::spawn(async move { registry.push_manifest(&r, &tag("latest"), raw, None).await })
        };
        let delete = {
            let (registry, r, digest) = (registry.clone(), r.clone(), digest.clone());
            tokio::spawn(async move { registry.delete_manifest(&r, &digest).await })
        };
        push.await.unwrap().unwrap();
        if let Err(e) = delete.await.unwrap() {
            assert_eq!(e.kind(), ErrorKind::ManifestUnknown, "round {round}: {e}");
        }
        for t in registry.list_tags(&r, 10, None).await.unwrap() {
            let target = registry.resolve_tag(&r, &t).await.unwrap();
            registry
                .get_manifest(&r, &Reference::Digest(target))
                .await
                .unwrap_or_else(|e| panic!("round {round}: tag {t} points at nothing: {e}"));
        }
        // Make sure the next round starts from a pushed manifest.
        registry
            .push_manifest(&r, &Reference::Digest(digest.clone()), raw.clone(), None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn platforms_resolve_to_index_children() {
    let registry = Registry::in_memory();
    let r = repo("multi");
    let (amd64, raw_amd64) = pushed_image(&registry, &r, "amd64").await;
    let (arm64, raw_arm64) = pushed_image(&registry, &r, "arm64").await;
    let index = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::DOCKER_MANIFEST_LIST, "manifests": [
            {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": amd64.to_string(), "size": raw_amd64.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": arm64.to_string(), "size": raw_arm64.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ]}))
        .unwrap(),
    );
    registry
        .push_manifest(&r, &tag("latest"), index, None)
        .await
        .unwrap();
    let resolve = |p: &str| {
        let (registry, r) = (registry.clone(), r.clone());
        let platform = wharf::Platform::parse(p).unwrap();
        async move {
            registry
                .resolve_platform(&r, &tag("latest"), &platform)
                .await
        }
    };
    assert_eq!(resolve("linux/amd64").await.unwrap().digest, amd64);
    assert_eq!(resolve("linux/arm64").await.unwrap().digest, arm64);
    let err = resolve("linux/ppc64le").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestUnknown);
    assert!(
        err.message().contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    let err = registry
        .resolve_platform(
            &r,
            &Reference::Digest(amd64),
            &wharf::Platform::parse("linux/amd64").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("not an index"), "{err}");
}

/// The longest valid repository name: slash-separated components, 255 bytes.
fn longest_repo_name() -> RepoName {
    let mut name = String::new();
    while name.len() + 10 <= wharf::MAX_REPO_NAME_LEN {
        if !name.is_empty() {
            name.push('/');
        }
        name.push_str("component");
    }
    while name.len() < wharf::MAX_REPO_NAME_LEN {
        name.push('z');
    }
    name.parse().unwrap()
}

/// Every metadata key fits the store's limit at the longest names: push, tag, refer,
/// index, pull, list and delete in a repository of the longest valid name, with sha512
/// digests and the longest tag, on every metadata store that enforces the limit.
#[tokio::test]
async fn every_operation_works_at_the_longest_names_with_sha512() {
    use crate::common::images::index;
    let dir = tempfile::tempdir().unwrap();
    for registry in [
        Registry::in_memory(),
        Registry::open_local(dir.path()).unwrap(),
    ] {
        let r = longest_repo_name();
        assert_eq!(r.as_str().len(), wharf::MAX_REPO_NAME_LEN);
        let long_tag: Tag = "t".repeat(wharf::MAX_TAG_LEN).parse().unwrap();
        let image = Image::seeded("long").with_algorithm(Algorithm::Sha512);
        let by_sha512 = Reference::Digest(image.digest(&image.manifest()));
        let subject = image.push(&registry, &r, &by_sha512).await.unwrap();
        registry
            .tag_manifest(&r, &long_tag, &subject)
            .await
            .unwrap();
        let signature = Image::seeded("signature")
            .with_algorithm(Algorithm::Sha512)
            .referring_to(&subject, image.manifest().len(), "application/example");
        let referrer = signature
            .push(
                &registry,
                &r,
                &Reference::Digest(signature.digest(&signature.manifest())),
            )
            .await
            .unwrap();
        let list = index(&[(subject.clone(), image.manifest().len())]);
        let list_digest = Digest::of(Algorithm::Sha512, &list);
        registry
            .push_manifest(&r, &Reference::Digest(list_digest.clone()), list, None)
            .await
            .unwrap();

        let got = registry
            .get_manifest(&r, &Reference::Tag(long_tag.clone()))
            .await
            .unwrap();
        assert_eq!(got.digest, subject);
        assert_eq!(
            registry.list_tags(&r, 10, None).await.unwrap(),
            vec![long_tag.clone()]
        );
        let referrers = registry.referrers(&r, &subject, None).await.unwrap();
        assert!(
            String::from_utf8_lossy(&referrers.index).contains(referrer.as_str()),
            "the referrer is listed"
        );
        // The index holds the image: deleting it first is refused.
        let err = registry.delete_manifest(&r, &subject).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ManifestReferenced);
        registry.delete_manifest(&r, &list_digest).await.unwrap();
        registry.delete_manifest(&r, &referrer).await.unwrap();
        let referrers = registry.referrers(&r, &subject, None).await.unwrap();
        assert!(!String::from_utf8_lossy(&referrers.index).contains(referrer.as_str()));
        registry.delete_manifest(&r, &subject).await.unwrap();
        assert!(registry.list_tags(&r, 10, None).await.unwrap().is_empty());
        registry.delete_repository(&r, true).await.unwrap();
        assert_eq!(
            registry.repository(&r).await.unwrap_err().kind(),
            ErrorKind::NameUnknown
        );
    }
}
