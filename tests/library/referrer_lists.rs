//! The referrer lists (`referrer-list/<repo>@<subject>`) under concurrent pushes,
//! deletes and listings, and their leftovers: a listing shows a referrer exactly while its
//! manifest is readable, once the writers are done, whether the store's batches are
//! atomic (memory) or not (an object store).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{repo, sha256};
use object_store::memory::InMemory;
use serde_json::json;
use tokio::sync::oneshot;
use wharf::testing::ManualClock;
use wharf::{
    Digest, Durability, Entry, ErrorKind, Expect, MetaStore, ObjectMetaStore, Reference, Registry,
    RepoName, Version, Versioned, Write,
};

use super::manifest_push::{blob, pushed_image};

/// A referrer of `subject`, told apart by `note`.
fn artifact(subject: &Digest, subject_len: usize, note: &str) -> Bytes {
    let empty =
        json!({"mediaType": wharf::OCI_EMPTY, "digest": sha256(b"{}").to_string(), "size": 2});
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": wharf::OCI_IMAGE_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": empty,
        "layers": [],
        "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": subject.to_string(), "size": subject_len},
        "annotations": {"note": note},
    }))
    .unwrap()
    .into()
}

async fn listed(registry: &Registry, r: &RepoName, subject: &Digest) -> Vec<String> {
    let referrers = registry.referrers(r, subject, None).await.unwrap();
    let mut out = common::referrer_digests(&referrers.index);
    out.sort();
    out
}

/// Rounds of pushes and deletes per referrer.
const ROUNDS: usize = 150;

async fn race(registry: Registry) {
    let r = repo("race/app");
    let (subject, raw_subject) = pushed_image(&registry, &r, "subject").await;
    blob(&registry, &r, b"{}", wharf::OCI_EMPTY).await;
    let artifacts: Vec<Bytes> = (0..6)
        .map(|i| artifact(&subject, raw_subject.len(), &format!("sig {i}")))
        .collect();
    let mut tasks = Vec::new();
    for (i, raw) in artifacts.iter().enumerate() {
        // A pusher and a deleter per referrer, so pushes and deletes of one manifest meet,
        // and all six write the one list.
        let (pusher, pushed_to, pushed) = (registry.clone(), r.clone(), raw.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let by_digest = Reference::Digest(sha256(&pushed));
                match pusher
                    .push_manifest(&pushed_to, &by_digest, pushed.clone(), None)
                    .await
                {
                    Err(e) if e.kind() == ErrorKind::Conflict => {}
                    other => drop(other.unwrap()),
                }
            }
        }));
        let (registry, r, digest) = (registry.clone(), r.clone(), sha256(raw));
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                if (round + i) % 2 == 0 {
                    tokio::task::yield_now().await;
                }
                match registry.delete_manifest(&r, &digest).await {
                    Err(e)
                        if matches!(e.kind(), ErrorKind::ManifestUnknown | ErrorKind::Conflict) => {
                    }
                    other => other.unwrap(),
                }
            }
        }));
    }
    for _ in 0..2 {
        let (registry, r, subject) = (registry.clone(), r.clone(), subject.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS * 4 {
                listed(&registry, &r, &subject).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut readable = Vec::new();
    for raw in &artifacts {
        let digest = sha256(raw);
        if registry
            .get_manifest(&r, &Reference::Digest(digest.clone()))
            .await
            .is_ok()
        {
            readable.push(digest.to_string());
        }
    }
    readable.sort();
    assert_eq!(listed(&registry, &r, &subject).await, readable);
    // Push every one again, delete the first two: listed exactly the other four.
    for raw in &artifacts {
        registry
            .push_manifest(&r, &Reference::Digest(sha256(raw)), raw.clone(), None)
            .await
            .unwrap();
    }
    for raw in &artifacts[..2] {
        registry.delete_manifest(&r, &sha256(raw)).await.unwrap();
    }
    let mut want: Vec<String> = artifacts[2..]
        .iter()
        .map(|a| sha256(a).to_string())
        .collect();
    want.sort();
    assert_eq!(listed(&registry, &r, &subject).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_deletes_and_listings_leave_a_true_list_on_an_object_store() {
    let store = Arc::new(InMemory::new());
    race(common::builder_over(store).await.build().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_deletes_and_listings_leave_a_true_list_with_atomic_batches() {
    race(Registry::in_memory()).await;
}

/// A push that added its entry and stopped before its commit point: not listed, and
/// removed by the first listing after the collection grace period.
#[tokio::test]
async fn an_entry_whose_push_never_committed_is_hidden_then_removed() {
    let clock = Arc::new(ManualClock::starting_now());
    let grace = Duration::from_secs(3600);
    let registry = common::builder_over(Arc::new(InMemory::new()))
        .await
        .clock(clock.clone())
        .gc_grace(grace)
        .build()
        .unwrap();
    let r = repo("left/app");
    let (subject, raw_subject) = pushed_image(&registry, &r, "subject").await;
    blob(&registry, &r, b"{}", wharf::OCI_EMPTY).await;
    let kept = artifact(&subject, raw_subject.len(), "kept");
    registry
        .push_manifest(&r, &Reference::Digest(sha256(&kept)), kept.clone(), None)
        .await
        .unwrap();
    let never = artifact(&subject, raw_subject.len(), "never committed");
    let key = format!("referrer-list/{r}@{subject}");
    let meta = registry.meta_store();
    let stored = meta.get(&key).await.unwrap().unwrap();
    let mut list: serde_json::Value = serde_json::from_slice(&stored.value).unwrap();
    let now_ms = wharf::Clock::now_millis(clock.as_ref());
    list["entries"].as_array_mut().unwrap().push(json!({
        "descriptor": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": sha256(&never).to_string(), "size": never.len()},
        "state": "pending",
        "at_ms": now_ms,
    }));
    let mut entries = list["entries"].as_array().unwrap().clone();
    entries.sort_by_key(|e| e["descriptor"]["digest"].as_str().unwrap().to_owned());
    list["entries"] = json!(entries);
    meta.put(
        &key,
        Bytes::from(serde_json::to_vec(&list).unwrap()),
        Expect::Version(stored.version),
    )
    .await
    .unwrap();

    let only_kept = vec![sha256(&kept).to_string()];
    assert_eq!(listed(&registry, &r, &subject).await, only_kept);
    let entries = |raw: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
        v["entries"].as_array().unwrap().len()
    };
    let still = meta.get(&key).await.unwrap().unwrap();
    assert_eq!(entries(&still.value), 2, "a push may still be under way");

    clock.advance(grace + Duration::from_secs(1));
    assert_eq!(listed(&registry, &r, &subject).await, only_kept);
    let tidied = meta.get(&key).await.unwrap().unwrap();
    assert_eq!(entries(&tidied.value), 1, "the leftover is removed");
}

/// A write held at a gate until the test lets it through.
struct Gate {
    op: &'static str,
    key: String,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// A metadata store whose puts and deletes of chosen keys (alone or in a batch) stop at
/// gates, so a test can put two operations' steps in the order it fears.
#[derive(Clone)]
struct Gated {
    inner: Arc<dyn MetaStore>,
    gates: Arc<std::sync::Mutex<Vec<Gate>>>,
}

impl std::fmt::Debug for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gated")
    }
}

impl Gated {
    /// The next `op` ("put" or "delete") on `key` waits: returns the signal that it
    /// arrived and the switch that lets it through.
    fn gate(&self, op: &'static str, key: &str) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached, arrived) = oneshot::channel();
        let (open, release) = oneshot::channel();
        self.gates.lock().unwrap().push(Gate {
            op,
            key: key.to_owned(),
            reached,
            release,
        });
        (arrived, open)
    }

    fn clear(&self) {
        self.gates.lock().unwrap().clear();
    }

    async fn pass(&self, op: &str, key: &str) {
        let gate = {
            let mut gates = self.gates.lock().unwrap();
            let at = gates.iter().position(|g| g.op == op && g.key == key);
            at.map(|i| gates.remove(i))
        };
        if let Some(gate) = gate {
            let _ = gate.reached.send(());
            let _ = gate.release.await;
        }
    }
}

#[async_trait]
impl MetaStore for Gated {
    async fn get(&self, key: &str) -> wharf::Result<Option<Versioned>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> wharf::Result<Version> {
        self.pass("put", key).await;
        self.inner.put(key, value, expect).await
    }
    async fn delete(&self, key: &str, expect: Expect) -> wharf::Result<()> {
        self.pass("delete", key).await;
        self.inner.delete(key, expect).await
    }
    fn atomic_batches(&self) -> bool {
        self.inner.atomic_batches()
    }
    async fn batch(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> wharf::Result<Vec<Option<Version>>> {
        for write in &writes {
            let op = match write {
                Write::Put { .. } => "put",
                Write::Delete { .. } => "delete",
            };
            self.pass(op, write.key()).await;
        }
        self.inner.batch(writes, durability).await
    }
    async fn sync(&self) -> wharf::Result<()> {
        self.inner.sync().await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> wharf::Result<Vec<Entry>> {
        self.inner.list(prefix, start_after, limit).await
    }
    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> wharf::Result<Vec<String>> {
        self.inner.list_keys(prefix, start_after, limit).await
    }
}

/// A registry whose metadata (an object store's) passes through [`Gated`], with a
/// subject image in its repository and one referrer of it, pushed by digest and listed.
struct Listed {
    gated: Gated,
    registry: Registry,
    subject: Digest,
    sig: Bytes,
    digest: Digest,
}

async fn listed_behind_gates(r: &RepoName) -> Listed {
    let store = Arc::new(InMemory::new());
    let meta = ObjectMetaStore::connect(store.clone(), "meta")
        .await
        .unwrap();
    let gated = Gated {
        inner: Arc::new(meta),
        gates: Arc::default(),
    };
    let registry = Registry::builder()
        .object_store(store)
        .meta_store(Arc::new(gated.clone()))
        .build()
        .unwrap();
    let (subject, raw_subject) = pushed_image(&registry, r, "subject").await;
    blob(&registry, r, b"{}", wharf::OCI_EMPTY).await;
    let sig = artifact(&subject, raw_subject.len(), "sig");
    let digest = sha256(&sig);
    registry
        .push_manifest(r, &Reference::Digest(digest.clone()), sig.clone(), None)
        .await
        .unwrap();
    assert_eq!(listed(&registry, r, &subject).await, [digest.to_string()]);
    Listed {
        gated,
        registry,
        subject,
        sig,
        digest,
    }
}

/// The interleaving a confirmation must survive: a delete has marked the referrer and
/// stops before removing its record; a listing reads the list and sees the record; the
/// delete removes the record and stops before taking the entry out; the listing writes
/// what it decided; the delete finishes. The referrer must not stay listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_saw_the_record_does_not_keep_a_deleted_referrer() {
    let r = repo("gated/app");
    let Listed {
        gated,
        registry,
        subject,
        digest,
        ..
    } = listed_behind_gates(&r).await;
    let list_key = format!("referrer-list/{r}@{subject}");
    let record_key = format!("manifest/{r}@{digest}");

    // The delete marks the entry and stops before its commit point.
    let (delete_reached, delete_go) = gated.gate("delete", &record_key);
    let deleting = {
        let (registry, r, digest) = (registry.clone(), r.clone(), digest.clone());
        tokio::spawn(async move { registry.delete_manifest(&r, &digest).await })
    };
    delete_reached.await.unwrap();
    // A listing now sees the record; if it writes the list, it stops there.
    let (listing_wrote, listing_go) = gated.gate("put", &list_key);
    let mut listing = {
        let (registry, r, subject) = (registry.clone(), r.clone(), subject.clone());
        tokio::spawn(async move { listed(&registry, &r, &subject).await })
    };
    let listing_waits = tokio::select! {
        seen = &mut listing => {
            assert_eq!(seen.unwrap(), [digest.to_string()], "the record is still there");
            false
        }
        _ = listing_wrote => true,
    };
    gated.clear();
    // The delete removes the record and stops before taking the entry out.
    let (unlist_reached, unlist_go) = gated.gate("put", &list_key);
    delete_go.send(()).unwrap();
    let unlisting = tokio::time::timeout(Duration::from_secs(5), unlist_reached).await;
    // The listing writes what it decided; then the delete finishes.
    if listing_waits {
        listing_go.send(()).unwrap();
        listing.await.unwrap();
    }
    if unlisting.is_ok() {
        unlist_go.send(()).unwrap();
    }
    gated.clear();
    deleting.await.unwrap().unwrap();
    assert!(
        registry
            .get_manifest(&r, &Reference::Digest(digest.clone()))
            .await
            .is_err()
    );
    assert!(
        listed(&registry, &r, &subject).await.is_empty(),
        "a deleted referrer stays listed"
    );
}

/// The interleaving a push must survive: a referrer is listed `confirmed`; a push of it
/// again finds it so (and leaves the list as it is) and stops at its commit point; a
/// delete runs whole: marks the entry, removes the record, takes the entry out; the push
/// commits, bringing the record back. The manifest is visible, so it must be listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_commits_after_an_overlapping_delete_is_listed() {
    let r = repo("gated/again");
    let Listed {
        gated,
        registry,
        subject,
        sig,
        digest,
    } = listed_behind_gates(&r).await;
    let by_digest = Reference::Digest(digest.clone());

    // The push again stops at its commit point (the record's write).
    let (commit_reached, commit_go) = gated.gate("put", &format!("manifest/{r}@{digest}"));
    let pushing = {
        let (registry, r, by_digest, sig) = (registry.clone(), r.clone(), by_digest.clone(), sig);
        tokio::spawn(async move { registry.push_manifest(&r, &by_digest, sig, None).await })
    };
    commit_reached.await.unwrap();
    registry.delete_manifest(&r, &digest).await.unwrap();
    assert!(listed(&registry, &r, &subject).await.is_empty());
    commit_go.send(()).unwrap();
    pushing.await.unwrap().unwrap();

    assert!(registry.get_manifest(&r, &by_digest).await.is_ok());
    assert_eq!(
        listed(&registry, &r, &subject).await,
        [digest.to_string()],
        "a visible referrer is listed"
    );
}
