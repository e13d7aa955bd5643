//! A manifest push interrupted at every storage operation (crash or transient failure)
//! never leaves a tag pointing at nothing, a listed referrer that cannot be read, or a
//! manifest whose bytes are missing; pushing again afterwards completes it.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use serde_json::json;
use wharf::testing::{FaultMode, FaultyStore};
use wharf::{Algorithm, Digest, ErrorKind, Reference, Registry, RepoName};

fn sha256(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

async fn registry_over(store: Arc<dyn object_store::ObjectStore>) -> Registry {
    common::builder_over(store).await.build().unwrap()
}

struct Push {
    config: Bytes,
    image: Bytes,
    signature: Bytes,
}

fn push_content() -> Push {
    let config = Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}");
    let image = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config).to_string(), "size": config.len()},
            "layers": []}))
        .unwrap(),
    );
    let signature = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "artifactType": "application/vnd.example.sig",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config).to_string(), "size": config.len()},
            "layers": [],
            "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": sha256(&image).to_string(), "size": image.len()}}))
        .unwrap(),
    );
    Push {
        config,
        image,
        signature,
    }
}

async fn push(registry: &Registry, r: &RepoName, p: &Push) -> wharf::Result<()> {
    registry
        .push_blob(r, &sha256(&p.config), p.config.clone())
        .await?;
    registry
        .push_manifest(
            r,
            &Reference::Tag("v1".parse().unwrap()),
            p.image.clone(),
            None,
        )
        .await?;
    registry
        .push_manifest(
            r,
            &Reference::Tag("v1-sig".parse().unwrap()),
            p.signature.clone(),
            None,
        )
        .await?;
    Ok(())
}

/// What must hold whatever happened.
async fn check_consistent(registry: &Registry, r: &RepoName, p: &Push, n: usize) {
    for t in registry.list_tags(r, 100, None).await.unwrap_or_default() {
        let target = registry.resolve_tag(r, &t).await.unwrap();
        let got = registry
            .get_manifest(r, &Reference::Digest(target.clone()))
            .await
            .unwrap_or_else(|e| {
                panic!("op {n}: tag {t} points at {target}, which is unreadable: {e}")
            });
        assert_eq!(sha256(&got.raw), target, "op {n}");
    }
    for raw in [&p.image, &p.signature] {
        match registry
            .get_manifest(r, &Reference::Digest(sha256(raw)))
            .await
        {
            Ok(got) => assert_eq!(&got.raw, raw, "op {n}: stored manifest bytes"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ManifestUnknown, "op {n}: {e}"),
        }
    }
    let referrers = registry
        .referrers(r, &sha256(&p.image), None)
        .await
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&referrers.index).unwrap();
    for d in index["manifests"].as_array().unwrap() {
        let digest: Digest = d["digest"].as_str().unwrap().parse().unwrap();
        registry
            .get_manifest(r, &Reference::Digest(digest))
            .await
            .unwrap_or_else(|e| panic!("op {n}: listed referrer unreadable: {e}"));
    }
}

/// Each push by tag became visible whole or not at all: the manifest by digest exactly
/// when its tag points at it, and the signature in the referrers list likewise.
async fn check_atomic(registry: &Registry, r: &RepoName, p: &Push, n: usize) {
    for (raw, name) in [(&p.image, "v1"), (&p.signature, "v1-sig")] {
        let by_digest = registry
            .get_manifest(r, &Reference::Digest(sha256(raw)))
            .await
            .is_ok();
        let tagged =
            registry.resolve_tag(r, &name.parse().unwrap()).await.ok() == Some(sha256(raw));
        assert_eq!(
            by_digest, tagged,
            "op {n}: {name} visible by digest {by_digest}, tagged {tagged}"
        );
    }
    let referrers = registry
        .referrers(r, &sha256(&p.image), None)
        .await
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&referrers.index).unwrap();
    let listed = !index["manifests"].as_array().unwrap().is_empty();
    let tagged = registry
        .resolve_tag(r, &"v1-sig".parse().unwrap())
        .await
        .is_ok();
    assert_eq!(
        listed, tagged,
        "op {n}: signature listed {listed}, tagged {tagged}"
    );
}

async fn interrupted_at_every_operation(mode: FaultMode) {
    let content = push_content();
    let r: RepoName = "crash/manifests".parse().unwrap();
    for n in 0.. {
        let faulty = FaultyStore::new(Arc::new(InMemory::new()));
        let registry = registry_over(Arc::new(faulty.clone())).await;
        faulty.arm(n, mode);
        let outcome = push(&registry, &r, &content).await;
        let fired = faulty.fired();
        faulty.disarm();
        if !fired {
            outcome.expect("an undisturbed push succeeds");
            assert!(n > 10, "the push ran through only {n} operations");
            eprintln!("{mode:?}: manifest push interrupted at each of its {n} storage operations");
            return;
        }
        let restarted = registry_over(Arc::new(faulty.clone())).await;
        check_consistent(&restarted, &r, &content, n).await;
        check_atomic(&restarted, &r, &content, n).await;
        // The client pushes again; everything is in place afterwards.
        push(&restarted, &r, &content)
            .await
            .unwrap_or_else(|e| panic!("op {n}: push after restart: {e}"));
        check_consistent(&restarted, &r, &content, n).await;
        assert_eq!(
            restarted
                .resolve_tag(&r, &"v1".parse().unwrap())
                .await
                .unwrap(),
            sha256(&content.image)
        );
        let referrers = restarted
            .referrers(&r, &sha256(&content.image), None)
            .await
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(&referrers.index).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "op {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_manifest_push() {
    interrupted_at_every_operation(FaultMode::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_manifest_push() {
    interrupted_at_every_operation(FaultMode::FailOnce).await;
}

/// The signature's entries in the referrers listing, as digests.
async fn listed_referrers(registry: &Registry, r: &RepoName, p: &Push) -> Vec<String> {
    let referrers = registry
        .referrers(r, &sha256(&p.image), None)
        .await
        .unwrap();
    common::referrer_digests(&referrers.index)
}

/// A referrer's delete interrupted at every storage operation: the listing shows the
/// referrer exactly while its manifest is readable, deleting again finishes the job, and
/// pushing it again lists it again.
async fn delete_interrupted_at_every_operation(mode: FaultMode) {
    let content = push_content();
    let r: RepoName = "crash/referrer-delete".parse().unwrap();
    let signature = sha256(&content.signature);
    for n in 0.. {
        let faulty = FaultyStore::new(Arc::new(InMemory::new()));
        let registry = registry_over(Arc::new(faulty.clone())).await;
        push(&registry, &r, &content).await.unwrap();
        // Listed once, so the listing's one-time layout check is behind us.
        assert_eq!(listed_referrers(&registry, &r, &content).await.len(), 1);
        faulty.arm(n, mode);
        let outcome = registry.delete_manifest(&r, &signature).await;
        let fired = faulty.fired();
        faulty.disarm();
        if !fired {
            outcome.expect("an undisturbed delete succeeds");
            assert!(n > 3, "the delete ran through only {n} operations");
            eprintln!(
                "{mode:?}: referrer delete interrupted at each of its {n} storage operations"
            );
            return;
        }
        let restarted = registry_over(Arc::new(faulty.clone())).await;
        check_consistent(&restarted, &r, &content, n).await;
        let readable = restarted
            .get_manifest(&r, &Reference::Digest(signature.clone()))
            .await
            .is_ok();
        let listed = listed_referrers(&restarted, &r, &content).await;
        assert_eq!(
            !listed.is_empty(),
            readable,
            "op {n}: signature listed {listed:?}, readable {readable}"
        );
        if readable {
            restarted.delete_manifest(&r, &signature).await.unwrap();
        }
        assert!(
            listed_referrers(&restarted, &r, &content).await.is_empty(),
            "op {n}: listed after its delete"
        );
        push(&restarted, &r, &content)
            .await
            .unwrap_or_else(|e| panic!("op {n}: push after restart: {e}"));
        assert_eq!(
            listed_referrers(&restarted, &r, &content).await,
            [signature.to_string()],
            "op {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_operation_of_a_referrer_delete() {
    delete_interrupted_at_every_operation(FaultMode::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failure_at_every_operation_of_a_referrer_delete() {
    delete_interrupted_at_every_operation(FaultMode::FailOnce).await;
}
