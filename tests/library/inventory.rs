//! Inventory and pull times.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use wharf::{
    Algorithm, Digest, Entry, Expect, MemoryMetaStore, MetaStore, Reference, Registry, RepoName,
    Version, Versioned,
};

fn sha256(data: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, data)
}

/// Counts writes to keys with a prefix.
#[derive(Debug)]
struct CountingMeta {
    inner: MemoryMetaStore,
    prefix: &'static str,
    writes: AtomicUsize,
}

#[async_trait]
impl MetaStore for CountingMeta {
    async fn get(&self, key: &str) -> wharf::Result<Option<Versioned>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> wharf::Result<Version> {
        if key.starts_with(self.prefix) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.put(key, value, expect).await
    }
    async fn delete(&self, key: &str, expect: Expect) -> wharf::Result<()> {
        self.inner.delete(key, expect).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> wharf::Result<Vec<Entry>> {
        self.inner.list(prefix, after, limit).await
    }
}

fn registry_counting(resolution: Duration) -> (Registry, Arc<CountingMeta>) {
    let meta = Arc::new(CountingMeta {
        inner: MemoryMetaStore::new(),
        prefix: "pulled/",
        writes: AtomicUsize::new(0),
    });
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(meta.clone())
        .pull_time_resolution(resolution)
        .build()
        .unwrap();
    (registry, meta)
}

async fn image(
    registry: &Registry,
    r: &RepoName,
    seed: &str,
    extra: serde_json::Value,
) -> (Digest, Bytes, u64) {
    let config = format!("config {seed}");
    let layer = format!("layer {seed} with some bytes");
    for data in [&config, &layer] {
        registry
            .push_blob(r, &sha256(data.as_bytes()), Bytes::from(data.clone()))
            .await
            .unwrap();
    }
    let mut body = json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config.as_bytes()).to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer.as_bytes()).to_string(), "size": layer.len()}],
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let raw = Bytes::from(serde_json::to_vec(&body).unwrap());
    let digest = sha256(&raw);
    registry
        .push_manifest(r, &Reference::Digest(digest.clone()), raw.clone(), None)
        .await
        .unwrap();
    let size = raw.len() as u64 + config.len() as u64 + layer.len() as u64;
    (digest, raw, size)
}

#[tokio::test]
async fn inventory_reports_tags_times_sizes_children_and_subjects() {
    let (registry, _) = registry_counting(Duration::from_secs(300));
    let r: RepoName = "app".parse().unwrap();
    let (amd64, raw_amd64, size_amd64) = image(&registry, &r, "amd64", json!({})).await;
    let index = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX, "manifests": [
            {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": amd64.to_string(), "size": raw_amd64.len(),
             "platform": {"architecture": "amd64", "os": "linux"}}]}))
        .unwrap(),
    );
    registry
        .push_manifest(
            &r,
            &Reference::Tag("v1".parse().unwrap()),
            index.clone(),
            None,
        )
        .await
        .unwrap();
    registry
        .push_manifest(
            &r,
            &Reference::Tag("latest".parse().unwrap()),
            index.clone(),
            None,
        )
        .await
        .unwrap();
    let subject = json!({"subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": amd64.to_string(), "size": raw_amd64.len()},
                         "artifactType": "application/vnd.example.sig"});
    let (sig, _, _) = image(&registry, &r, "sig", subject).await;
    let before_pull = std::time::SystemTime::now();
    registry
        .get_manifest(&r, &Reference::Tag("v1".parse().unwrap()))
        .await
        .unwrap();

    let inventory = registry.inventory(&r).await.unwrap();
    assert_eq!(inventory.len(), 3);
    let find = |d: &Digest| inventory.iter().find(|i| &i.digest == d).unwrap();
    let index_info = find(&sha256(&index));
    let tags: Vec<String> = index_info.tags.iter().map(|t| t.to_string()).collect();
    assert_eq!(tags, ["latest", "v1"]);
    assert_eq!(index_info.children, vec![amd64.clone()]);
    assert_eq!(index_info.size, index.len() as u64);
    assert!(
        index_info
            .last_pulled_at
            .is_some_and(|t| t >= before_pull - Duration::from_secs(1))
    );
    assert_eq!(index_info.media_type, wharf::OCI_IMAGE_INDEX);
    let child = find(&amd64);
    assert!(child.tags.is_empty() && child.last_pulled_at.is_none());
    assert_eq!(child.size, size_amd64);
    let sig_info = find(&sig);
    assert_eq!(sig_info.subject.as_ref(), Some(&amd64));
    assert_eq!(
        sig_info.artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    assert!(sig_info.pushed_at <= std::time::SystemTime::now());
}

#[tokio::test]
async fn a_burst_of_pulls_costs_one_write() {
    let (registry, meta) = registry_counting(Duration::from_secs(300));
    let r: RepoName = "app".parse().unwrap();
    let (digest, _, _) = image(&registry, &r, "x", json!({})).await;
    for _ in 0..100 {
        registry
            .get_manifest(&r, &Reference::Digest(digest.clone()))
            .await
            .unwrap();
    }
    assert_eq!(meta.writes.load(Ordering::SeqCst), 1);

    let (registry, meta) = registry_counting(Duration::ZERO);
    let (digest, _, _) = image(&registry, &r, "x", json!({})).await;
    for _ in 0..10 {
        registry
            .get_manifest(&r, &Reference::Digest(digest.clone()))
            .await
            .unwrap();
    }
    assert_eq!(
        meta.writes.load(Ordering::SeqCst),
        10,
        "without a window every pull is written"
    );
}
