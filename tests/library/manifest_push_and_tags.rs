//! Manifests, tags and referrers through the `Registry` facade.

use crate::common;
use crate::common::images::Image;

use bytes::Bytes;
use common::{repo, sha256, tag};
use serde_json::json;
use wharf::{Algorithm, Digest, ErrorKind, Reference, Registry, RepoName, Tag};

/// Pushes a blob and returns its descriptor.
async fn blob(
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

fn image(config: &serde_json::Value, layers: &[serde_json::Value]) -> Bytes {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .unwrap()
    .into()
}

async fn pushed_image(registry: &Registry, r: &RepoName, seed: &str) -> (Digest, Bytes) {
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
async fn tags_list_in_lexical_pages_and_keep_a_history() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let (a, raw_a) = pushed_image(&registry, &r, "a").await;
    let (b, raw_b) = pushed_image(&registry, &r, "b").await;
    let names = ["v2", "latest", "V1", "v10", "1.0", "_x", "v1"];
    for name in names {
        registry
            .push_manifest(&r, &tag(name), raw_a.clone(), None)
            .await
            .unwrap();
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort();
    let all: Vec<String> = registry
        .list_tags(&r, 100, None)
        .await
        .unwrap()
        .iter()
        .map(Tag::to_string)
        .collect();
    assert_eq!(all, sorted);
    let mut paged = Vec::new();
    let mut last: Option<Tag> = None;
    loop {
        let page = registry.list_tags(&r, 3, last.as_ref()).await.unwrap();
        assert!(page.len() <= 3);
        let Some(end) = page.last() else { break };
        last = Some(end.clone());
        paged.extend(page.iter().map(Tag::to_string));
    }
    assert_eq!(paged, sorted);

    let latest: Tag = "latest".parse().unwrap();
    registry
        .push_manifest(&r, &tag("latest"), raw_b.clone(), None)
        .await
        .unwrap();
    registry
        .push_manifest(&r, &tag("latest"), raw_b.clone(), None)
        .await
        .unwrap();
    assert_eq!(registry.resolve_tag(&r, &latest).await.unwrap(), b);
    registry.delete_tag(&r, &latest).await.unwrap();
    assert_eq!(
        registry.resolve_tag(&r, &latest).await.unwrap_err().kind(),
        ErrorKind::ManifestUnknown
    );
    assert!(
        !registry
            .list_tags(&r, 100, None)
            .await
            .unwrap()
            .contains(&latest)
    );
    assert_eq!(
        registry.delete_tag(&r, &latest).await.unwrap_err().kind(),
        ErrorKind::ManifestUnknown
    );
    let moves: Vec<_> = registry
        .tag_history(&r, &latest)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.from, m.to))
        .collect();
    assert_eq!(
        moves,
        vec![
            (None, Some(a.clone())),
            (Some(a.clone()), Some(b.clone())),
            (Some(b), None)
        ]
    );
    // The manifest stays when its tag goes.
    registry
        .get_manifest(&r, &Reference::Digest(a))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_to_one_tag_leave_a_consistent_history() {
    let registry = Registry::in_memory();
    let r = repo("race");
    let mut images = Vec::new();
    for i in 0..12 {
        images.push(pushed_image(&registry, &r, &format!("image {i}")).await);
    }
    let pushes = images.iter().map(|(_, raw)| {
        let (registry, r, raw) = (registry.clone(), r.clone(), raw.clone());
        tokio::spawn(async move { registry.push_manifest(&r, &tag("latest"), raw, None).await })
    });
    for push in futures::future::join_all(pushes).await {
        push.unwrap().unwrap();
    }
    let history = registry
        .tag_history(&r, &"latest".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(history.len(), images.len(), "every push moved the tag once");
    assert_eq!(history[0].from, None);
    for pair in history.windows(2) {
        assert_eq!(
            pair[1].from, pair[0].to,
            "each move starts where the previous ended"
        );
    }
    let head = registry
        .resolve_tag(&r, &"latest".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        Some(head),
        history.last().unwrap().to.clone(),
        "the last move is the winner"
    );
}

#[tokio::test]
async fn referrers_are_listed_and_filtered() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let (subject, raw_subject) = pushed_image(&registry, &r, "subject").await;
    let empty = blob(&registry, &r, b"{}", wharf::OCI_EMPTY).await;
    let artifact = |artifact_type: Option<&str>, config: &serde_json::Value, note: &str| -> Bytes {
        let mut body = json!({
            "schemaVersion": 2,
            "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "config": config,
            "layers": [],
            "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": subject.to_string(), "size": raw_subject.len()},
            "annotations": {"note": note},
        });
        if let Some(t) = artifact_type {
            body["artifactType"] = json!(t);
        }
        serde_json::to_vec(&body).unwrap().into()
    };
    let sbom = artifact(Some("application/vnd.example.sbom"), &empty, "sbom");
    let sig = artifact(Some("application/vnd.example.sig"), &empty, "sig");
    let sig_config = blob(
        &registry,
        &r,
        b"sig config",
        "application/vnd.example.sig.config",
    )
    .await;
    let by_config = artifact(None, &sig_config, "config type");
    for raw in [&sbom, &sig, &by_config] {
        let pushed = registry
            .push_manifest(&r, &Reference::Digest(sha256(raw)), raw.clone(), None)
            .await
            .unwrap();
        assert_eq!(pushed.subject.as_ref(), Some(&subject));
    }

    let listed = |index: &Bytes| -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_json::from_slice(index).unwrap();
        assert_eq!(v["mediaType"], wharf::OCI_IMAGE_INDEX);
        let mut out: Vec<_> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["digest"].as_str().unwrap().to_owned(),
                    d["artifactType"].as_str().unwrap().to_owned(),
                    d["annotations"]["note"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let all = registry.referrers(&r, &subject, None).await.unwrap();
    assert!(!all.filtered);
    let mut want = vec![
        (
            sha256(&sbom).to_string(),
            "application/vnd.example.sbom".to_owned(),
            "sbom".to_owned(),
        ),
        (
            sha256(&sig).to_string(),
            "application/vnd.example.sig".to_owned(),
            "sig".to_owned(),
        ),
        (
            sha256(&by_config).to_string(),
            "application/vnd.example.sig.config".to_owned(),
            "config type".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(listed(&all.index), want);

    let only_sig = registry
        .referrers(&r, &subject, Some("application/vnd.example.sig"))
        .await
        .unwrap();
    assert!(only_sig.filtered);
    assert_eq!(
        listed(&only_sig.index),
        vec![want.iter().find(|w| w.2 == "sig").unwrap().clone()]
    );

    let none = registry
        .referrers(&r, &sha256(b"no such subject"), None)
        .await
        .unwrap();
    assert!(
        listed(&none.index).is_empty(),
        "an unknown subject has an empty list, not an error"
    );
    let elsewhere = registry
        .referrers(&repo("other"), &subject, None)
        .await
        .unwrap();
    assert!(listed(&elsewhere.index).is_empty());
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

#[tokio::test]
async fn tag_history_is_bounded() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let mut digests = Vec::new();
    for i in 0..(wharf::TAG_HISTORY_LEN + 10) {
        let (digest, raw) = pushed_image(&registry, &r, &format!("n{i}")).await;
        registry
            .push_manifest(&r, &tag("latest"), raw, None)
            .await
            .unwrap();
        digests.push(digest);
    }
    let history = registry
        .tag_history(&r, &"latest".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(history.len(), wharf::TAG_HISTORY_LEN);
    assert_eq!(history.last().unwrap().to.as_ref(), digests.last());
    assert_eq!(
        history[0].to.as_ref(),
        Some(&digests[10]),
        "the oldest moves are dropped"
    );
}

#[tokio::test]
async fn a_subject_need_not_exist() {
    let registry = Registry::in_memory();
    let r = repo("app");
    let absent = sha256(b"pushed later, or never");
    let config = blob(&registry, &r, b"{}", wharf::OCI_EMPTY).await;
    let raw = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "artifactType": "application/vnd.example.sig", "config": config, "layers": [],
            "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": absent.to_string(), "size": 10}}))
        .unwrap(),
    );
    let pushed = registry
        .push_manifest(&r, &Reference::Digest(sha256(&raw)), raw.clone(), None)
        .await
        .unwrap();
    assert_eq!(pushed.subject.as_ref(), Some(&absent));
    let referrers = registry.referrers(&r, &absent, None).await.unwrap();
    let index: serde_json::Value = serde_json::from_slice(&referrers.index).unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&raw).to_string());
}

#[tokio::test]
async fn index_and_subject_descriptors_must_match_what_is_stored() {
    let registry = Registry::in_memory();
    let r = repo("multi");
    let (child, raw_child) = pushed_image(&registry, &r, "amd64").await;
    let index = |media_type: &str, size: usize| -> Bytes {
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX,
            "manifests": [{"mediaType": media_type, "digest": child.to_string(), "size": size}]}),
        )
        .unwrap()
        .into()
    };
    for (media_type, size, named) in [
        (wharf::OCI_IMAGE_MANIFEST, raw_child.len() + 1, "size"),
        (
            wharf::DOCKER_MANIFEST_V2,
            raw_child.len(),
            wharf::DOCKER_MANIFEST_V2,
        ),
    ] {
        let err = registry
            .push_manifest(&r, &tag("bad"), index(media_type, size), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
        assert!(
            err.message().contains("manifests") && err.message().contains(named),
            "{err}"
        );
    }
    registry
        .push_manifest(
            &r,
            &tag("good"),
            index(wharf::OCI_IMAGE_MANIFEST, raw_child.len()),
            None,
        )
        .await
        .unwrap();

    // A subject that is stored must be described as it is.
    let config = blob(&registry, &r, b"{}", wharf::OCI_EMPTY).await;
    let referrer = |size: usize| -> Bytes {
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "artifactType": "application/vnd.example.sig", "config": config, "layers": [],
            "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": child.to_string(), "size": size}}))
        .unwrap()
        .into()
    };
    let err = registry
        .push_manifest(&r, &tag("sig"), referrer(raw_child.len() - 1), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
    assert!(err.message().contains("subject"), "{err}");
    registry
        .push_manifest(&r, &tag("sig"), referrer(raw_child.len()), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn descriptors_are_validated_before_any_blob_is_looked_up() {
    let registry = Registry::in_memory();
    let r = repo("strict");
    // None of these blobs exists: each push fails on the descriptor, naming its field,
    // and never reaches a blob lookup (which would say MANIFEST_BLOB_UNKNOWN).
    let data = "e30="; // base64 of "{}"
    let empty = sha256(b"{}").to_string();
    let layer = |extra: serde_json::Value| {
        let mut layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(b"layer").to_string(), "size": 5});
        layer
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        layer
    };
    let config = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": empty.clone(), "size": 2});
    let cases = [
        (
            layer(json!({"mediaType": "application"})),
            "layers[0].mediaType",
        ),
        (
            layer(json!({"mediaType": "application/vnd.x; charset=utf-8"})),
            "layers[0].mediaType",
        ),
        (layer(json!({"mediaType": ""})), "layers[0].mediaType"),
        (
            layer(json!({"artifactType": "not a type"})),
            "layers[0].artifactType",
        ),
        (
            layer(json!({"urls": ["https://example.com/ok", "no scheme"]})),
            "layers[0].urls[1]",
        ),
        (
            layer(json!({"urls": ["http://example.com/%zz"]})),
            "layers[0].urls[0]",
        ),
        (layer(json!({"data": "e30"})), "layers[0].data"),
        (layer(json!({"data": "e3-="})), "layers[0].data"),
        (layer(json!({"data": 5})), "layers[0].data"),
        // Well-formed, but not what size and digest say.
        (layer(json!({"data": data})), "layers[0].data"),
    ];
    for (layer, field) in cases {
        let raw = image(&config, std::slice::from_ref(&layer));
        let err = registry
            .push_manifest(&r, &tag("v1"), raw, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{layer}: {err}");
        assert!(
            err.message().contains(field),
            "{layer}: {err} lacks {field}"
        );
    }
    // An index entry needs a media type.
    let index = Bytes::from(
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX,
            "manifests": [{"mediaType": "", "digest": empty.clone(), "size": 2}]}),
        )
        .unwrap(),
    );
    let err = registry
        .push_manifest(&r, &tag("v1"), index, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
    assert!(err.message().contains("manifests[0].mediaType"), "{err}");

    // Embedded data that matches its descriptor is fine: the push goes on to the blobs.
    let config = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": empty, "size": 2, "data": data});
    let err = registry
        .push_manifest(&r, &tag("v1"), image(&config, &[]), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestBlobUnknown, "{err}");
}

#[tokio::test]
async fn a_tag_set_again_continues_its_history_and_deleted_tags_leave_the_listing() {
    let registry = Registry::in_memory();
    let r = repo("history");
    let (a, raw_a) = pushed_image(&registry, &r, "a").await;
    let (b, raw_b) = pushed_image(&registry, &r, "b").await;
    let latest: Tag = "latest".parse().unwrap();
    registry
        .push_manifest(&r, &tag("latest"), raw_a, None)
        .await
        .unwrap();
    registry.delete_tag(&r, &latest).await.unwrap();
    // Deleted tags are not among the live ones a listing reads.
    let live = registry
        .meta_store()
        .list_keys("tag/history@", None, 10)
        .await
        .unwrap();
    assert!(live.is_empty(), "{live:?}");
    registry
        .push_manifest(&r, &tag("latest"), raw_b, None)
        .await
        .unwrap();
    let moves: Vec<_> = registry
        .tag_history(&r, &latest)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.from, m.to))
        .collect();
    assert_eq!(
        moves,
        vec![
            (None, Some(a.clone())),
            (Some(a), None),
            (None, Some(b.clone()))
        ]
    );
    assert_eq!(
        registry.list_tags(&r, 10, None).await.unwrap(),
        vec![latest.clone()]
    );
    assert_eq!(registry.resolve_tag(&r, &latest).await.unwrap(), b);
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
