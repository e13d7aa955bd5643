//! Everything against S3 (moto under `scripts/test`; feature `s3`): the metadata store and
//! blob store conformance suites in a bucket, and the whole registry over one.

mod common;

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
