//! Everything against S3 and KMS (moto under `scripts/test`; features `s3` and `kms`): the
//! metadata store and blob store conformance suites in a bucket, the whole registry over
//! one, and the KMS key provider.

mod common;
#[path = "s3/compose.rs"]
mod compose;
#[path = "s3/listings.rs"]
mod listings;

use std::sync::Arc;

use wharf::testing::{blob_store, meta_store};
use wharf::{ObjectBlobStore, ObjectMetaStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_meta_store_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    let store = ObjectMetaStore::connect(s3, "meta").await.unwrap();
    meta_store::all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    // S3 needs parts of at least 5 MiB.
    blob_store::all(&ObjectBlobStore::new(s3).with_part_size(5 << 20)).await;
}

/// The whole registry over S3: blobs in the bucket and metadata in the bucket through
/// conditional writes, as a multi-replica deployment runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    let meta = ObjectMetaStore::connect(s3.clone(), "meta").await.unwrap();
    let registry = wharf::Registry::builder()
        .blob_store(Arc::new(ObjectBlobStore::new(s3).with_part_size(5 << 20)))
        .meta_store(Arc::new(meta))
        .checkpoint_interval(0)
        .build()
        .unwrap();
    let r = common::repo("s3/app");
    let layer: bytes::Bytes = (0..(6u32 << 20))
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let upload = registry.start_upload(&r).await.unwrap();
    registry
        .append_upload(&r, &upload.id, 0, layer.slice(..(5 << 20) + 1))
        .await
        .unwrap();
    registry
        .finish_upload(
            &r,
            &upload.id,
            &common::sha256(&layer),
            Some(layer.slice((5 << 20) + 1..)),
        )
        .await
        .unwrap();
    let config = bytes::Bytes::from_static(b"{}");
    registry
        .push_blob(&r, &common::sha256(&config), config.clone())
        .await
        .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": common::sha256(&config).to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": common::sha256(&layer).to_string(), "size": layer.len()}],
    }))
    .unwrap();
    registry
        .push_manifest(&r, &common::tag("latest"), manifest.clone().into(), None)
        .await
        .unwrap();
    let pulled = registry
        .get_manifest(&r, &common::tag("latest"))
        .await
        .unwrap();
    assert_eq!(pulled.raw, manifest);
    let read = registry
        .read_blob(&r, &common::sha256(&layer), None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(read == layer, "the layer reads back from S3");
    let tail = registry
        .read_blob(&r, &common::sha256(&layer), Some(100..200))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(tail, layer.slice(100..200));
    assert_eq!(registry.list_tags(&r, 10, None).await.unwrap().len(), 1);
    assert_eq!(
        registry.list_repositories(100, None).await.unwrap(),
        vec![r.clone()]
    );
    registry.delete_manifest(&r, &pulled.digest).await.unwrap();
    assert!(registry.list_tags(&r, 10, None).await.unwrap().is_empty());
}

fn kms_provider(endpoint: &str, default_key: Option<&str>) -> wharf::keys::AwsKmsKeyProvider {
    let credentials = wharf::keys::AwsCredentials {
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        session_token: None,
    };
    wharf::keys::AwsKmsKeyProvider::new("us-east-1", Some(endpoint), credentials, default_key)
        .unwrap()
}

/// The KMS key provider keeps the key-provider contract against KMS, under the default
/// KEK and under a key named directly; a disabled key is denied by name; two
/// registries on one bucket, each with its own provider for the same KMS key, read each
/// other's encrypted blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_kms_key_provider_on_kms() {
    let Some(s3) = common::s3_store() else { return };
    let endpoint = std::env::var("WHARF_S3_ENDPOINT").unwrap();
    let key = common::kms_key(&endpoint);
    let provider = kms_provider(&endpoint, Some(&key));
    wharf::testing::key_provider::all(&provider, wharf::keys::DEFAULT_KEK).await;
    wharf::testing::key_provider::all(&provider, &format!("kms.{key}")).await;

    // Two replicas, one KMS key.
    let meta = Arc::new(wharf::MemoryMetaStore::new());
    let replica = || {
        let mut at_rest = wharf::AtRest::plain();
        at_rest.encryption = Some(wharf::keys::DEFAULT_KEK.to_owned());
        wharf::Registry::builder()
            .object_store(s3.clone())
            .meta_store(meta.clone())
            .key_provider(Arc::new(kms_provider(&endpoint, Some(&key))))
            .at_rest(at_rest)
            .build()
            .unwrap()
    };
    let (one, two) = (replica(), replica());
    let r = common::repo("kms/app");
    let layer = bytes::Bytes::from_static(b"a layer wrapped by KMS");
    one.push_blob(&r, &common::sha256(&layer), layer.clone())
        .await
        .unwrap();
    let read = two
        .read_blob(&r, &common::sha256(&layer), None)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(read, layer);

    // A disabled key: wrapping under it is denied, naming it.
    let disabled = common::kms_key(&endpoint);
    common::disable_kms_key(&endpoint, &disabled);
    // (moto's Encrypt ignores the disabled state; KMS answers DisabledException, which
    // is mapped to Denied like the answers below.) Its fingerprint, which the registry
    // checks at start, is denied by name; so is wrapping under a key KMS does not have.
    use wharf::keys::KeyProvider;
    let refused = provider
        .fingerprint(&format!("kms.{disabled}"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), wharf::ErrorKind::Denied, "{refused}");
    assert!(refused.message().contains(&disabled), "{refused}");
    let missing = "11111111-2222-3333-4444-555555555555";
    let key_material = wharf::codec::DataKey::generate().unwrap();
    let refused = provider
        .wrap(&format!("kms.{missing}"), &key_material, b"context")
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), wharf::ErrorKind::Denied, "{refused}");
    assert!(refused.message().contains(missing), "{refused}");
}

/// Two registry processes on one bucket: each change's event reaches the subscriber once,
/// whichever process made it and whichever delivers; and one process at a time holds a
/// job's lease, another taking it once the holder stops renewing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_bucket_deliver_each_event_once_and_share_jobs_by_lease() {
    use std::time::Duration;
    use wharf::{DispatchOptions, Subscriber};

    let Some(s3) = common::s3_store() else { return };
    let a = common::builder_over(s3.clone()).await.build().unwrap();
    let b = common::builder_over(s3).await.build().unwrap();
    let recorder = common::Recorder::new("pipeline");
    let subscriber: Arc<dyn Subscriber> = recorder.clone();
    let options = |holder: &str| DispatchOptions {
        holder: holder.into(),
        ..DispatchOptions::default()
    };
    let in_a = a
        .dispatcher(vec![subscriber.clone()], options("a"))
        .await
        .unwrap();
    let in_b = b.dispatcher(vec![subscriber], options("b")).await.unwrap();
    let mut pushes = Vec::new();
    for i in 0..6 {
        let registry = if i % 2 == 0 { a.clone() } else { b.clone() };
        pushes.push(tokio::spawn(async move {
            common::images::Image::seeded(&format!("s3-{i}"))
                .push(
                    &registry,
                    &common::repo("shared/app"),
                    &common::tag(&format!("v{i}")),
                )
                .await
                .unwrap();
        }));
    }
    for push in pushes {
        push.await.unwrap();
    }
    // Both step: one holds the subscriber's lease and delivers, the other waits.
    for _ in 0..3 {
        let (ra, rb) = (common::drain(&in_a).await, common::drain(&in_b).await);
        assert!(ra.held_elsewhere + rb.held_elsewhere >= 1);
    }
    let got = recorder.events();
    let pushed = got
        .iter()
        .filter(|r| r.event.kind() == "manifest_pushed")
        .count();
    assert_eq!(pushed, 6, "{:?}", recorder.kinds());
    let mut ids: Vec<_> = got.iter().map(|r| r.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "each event once");
    assert!(got.windows(2).all(|w| w[0].id < w[1].id), "in outbox order");

    // Garbage collection: one process at a time.
    let ttl = Duration::from_secs(2);
    let held = a
        .acquire_lease("gc", "a", ttl)
        .await
        .unwrap()
        .expect("free");
    assert!(b.acquire_lease("gc", "b", ttl).await.unwrap().is_none());
    tokio::time::sleep(ttl + Duration::from_millis(500)).await;
    let taken = b
        .acquire_lease("gc", "b", ttl)
        .await
        .unwrap()
        .expect("expired");
    assert!(
        taken.fence() > held.fence(),
        "a new holder gets a larger fence"
    );
    let mut stale = held;
    assert!(
        !a.renew_lease(&mut stale, ttl).await.unwrap(),
        "the old holder lost it"
    );
}
