//! Tags and referrers through the `Registry` facade: pages, history, concurrent moves,
//! re-set tags, the referrers API and its filter.

use crate::common;

use bytes::Bytes;
use common::{repo, sha256, tag};
use serde_json::json;
use wharf::{ErrorKind, Reference, Registry, Tag};

use super::manifest_push::{blob, pushed_image};

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
