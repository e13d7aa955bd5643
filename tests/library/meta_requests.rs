//! Metadata on an object store (S3 and the like) at scale: what a page of a listing costs,
//! counted in requests at the object store. A page must cost a fixed number of requests,
//! not one per entry.

use crate::common;
use crate::common::images::Image;
use crate::common::{referrer_digests, repo, requests, tag};

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use wharf::testing::FaultyStore;
use wharf::{Expect, Reference, Registry, RepositorySettings, Tag};

/// A registry whose blobs and metadata are objects in one counted store.
async fn counted() -> (Registry, FaultyStore) {
    let store = FaultyStore::new(Arc::new(InMemory::new()));
    let registry = common::builder_over(Arc::new(store.clone()))
        .await
        .build()
        .unwrap();
    (registry, store)
}

#[tokio::test]
async fn a_page_of_tags_or_repositories_costs_a_fixed_number_of_requests() {
    let (registry, store) = counted().await;
    let r = repo("big/app");
    let image = Image::seeded("many tags");
    let digest = image.push(&registry, &r, &tag("t000")).await.unwrap();
    for i in 1..250 {
        let name: Tag = format!("t{i:03}").parse().unwrap();
        registry.tag_manifest(&r, &name, &digest).await.unwrap();
    }
    // The first listing in a process reads the store's tag layout once.
    registry.list_tags(&r, 1, None).await.unwrap();

    let (page, sent) = requests(&store, registry.list_tags(&r, 100, None)).await;
    let page = page.unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[99].as_str(), "t099");
    // The repository's record, and one listing.
    assert!(sent <= 2, "a page of 100 tags cost {sent} requests");
    let (next, sent) = requests(&store, registry.list_tags(&r, 100, page.last())).await;
    assert_eq!(next.unwrap()[0].as_str(), "t100");
    assert!(sent <= 2, "the next page cost {sent} requests");

    for i in 0..120 {
        let name = repo(&format!("many/r{i:03}"));
        registry
            .create_repository(&name, RepositorySettings::default())
            .await
            .unwrap();
    }
    let (catalog, sent) = requests(&store, registry.list_repositories(100, None)).await;
    assert_eq!(catalog.unwrap().len(), 100);
    assert!(sent <= 1, "a catalog page of 100 cost {sent} requests");

    // Another process on the same store: one more read, for the layout, once.
    let other = common::builder_over(Arc::new(store.clone()))
        .await
        .build()
        .unwrap();
    let (page, sent) = requests(&store, other.list_tags(&r, 100, None)).await;
    assert_eq!(page.unwrap().len(), 100);
    assert!(
        sent <= 3,
        "a first page in a new process cost {sent} requests"
    );
}

/// A store from before `tag-history/` kept deleted tags in `tag/` with no target: the
/// first listing moves them out, keeping their history, and lists the live ones only.
#[tokio::test]
async fn deleted_tags_an_older_store_kept_are_moved_out_by_the_first_listing() {
    let (registry, _) = counted().await;
    let r = repo("old/app");
    let image = Image::of(&Bytes::from_static(b"{}"), &[]);
    let digest = image.push(&registry, &r, &tag("live")).await.unwrap();
    let legacy = serde_json::json!({
        "digest": null,
        "history": [
            {"from": null, "to": digest.to_string(), "at_ms": 1_000},
            {"from": digest.to_string(), "to": null, "at_ms": 2_000},
        ],
    });
    let meta = registry.meta_store();
    meta.put(
        "tag/old/app@gone",
        Bytes::from(serde_json::to_vec(&legacy).unwrap()),
        Expect::Absent,
    )
    .await
    .unwrap();

    let live: Vec<String> = registry
        .list_tags(&r, 10, None)
        .await
        .unwrap()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(live, ["live"]);
    let gone: Tag = "gone".parse().unwrap();
    let moves = registry.tag_history(&r, &gone).await.unwrap();
    assert_eq!(moves.len(), 2);
    assert_eq!(moves[1].to, None);
    assert!(meta.get("tag/old/app@gone").await.unwrap().is_none());
    assert!(meta.get("tag-layout").await.unwrap().is_some());
    // Set again, the tag continues its history.
    registry.tag_manifest(&r, &gone, &digest).await.unwrap();
    assert_eq!(registry.tag_history(&r, &gone).await.unwrap().len(), 3);
    assert_eq!(registry.resolve_tag(&r, &gone).await.unwrap(), digest);
}

/// The referrers of a subject are one record: a listing of 100 costs one read.
#[tokio::test]
async fn a_listing_of_many_referrers_costs_one_read() {
    let (registry, store) = counted().await;
    let r = repo("signed/app");
    let image = Image::seeded("signed");
    let subject = image.push(&registry, &r, &tag("v1")).await.unwrap();
    let size = image.manifest().len();
    let mut pushed = Vec::new();
    for i in 0..100 {
        let sig = Image::seeded(&format!("signature {i}")).referring_to(
            &subject,
            size,
            "application/vnd.example.sig",
        );
        let digest = sig.digest(&sig.manifest());
        sig.push(&registry, &r, &Reference::Digest(digest.clone()))
            .await
            .unwrap();
        pushed.push(digest.to_string());
    }
    pushed.sort();

    let (listing, sent) = requests(&store, registry.referrers(&r, &subject, None)).await;
    assert_eq!(referrer_digests(&listing.unwrap().index), pushed);
    // The store's layout mark, once per process, and the list.
    assert!(sent <= 2, "a listing of 100 referrers cost {sent} requests");
    let (_, sent) = requests(&store, registry.referrers(&r, &subject, None)).await;
    assert_eq!(sent, 1, "a second listing cost {sent} requests");
    let filtered = registry.referrers(&r, &subject, Some("application/other"));
    let (_, sent) = requests(&store, filtered).await;
    assert_eq!(sent, 1);
}

/// A store from before the lists kept one `referrer/` entry per referrer: the first
/// listing moves them in, lists those whose manifest is there, and marks the store.
#[tokio::test]
async fn referrer_entries_an_older_store_kept_are_moved_in_by_the_first_listing() {
    let (registry, store) = counted().await;
    let r = repo("old/signed");
    let image = Image::seeded("old subject");
    let subject = image.push(&registry, &r, &tag("v1")).await.unwrap();
    let size = image.manifest().len();
    let sig =
        Image::seeded("old signature").referring_to(&subject, size, "application/vnd.example.sig");
    let sig_digest = sig.digest(&sig.manifest());
    sig.push(&registry, &r, &Reference::Digest(sig_digest.clone()))
        .await
        .unwrap();
    // Rewrite the store as an older version left it: per-referrer entries, one of them
    // for a push that never committed, and no lists.
    let meta = registry.meta_store();
    let list_key = format!("referrer-list/{r}@{subject}");
    meta.delete(&list_key, Expect::Any).await.unwrap();
    let never = Image::seeded("never committed").referring_to(
        &subject,
        size,
        "application/vnd.example.sig",
    );
    let never_digest = never.digest(&never.manifest());
    for digest in [&sig_digest, &never_digest] {
        let descriptor = serde_json::json!({
            "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "digest": digest.to_string(),
            "size": size,
            "artifactType": "application/vnd.example.sig",
        });
        meta.put(
            &format!("referrer/{r}@{subject}/{digest}"),
            Bytes::from(serde_json::to_vec(&descriptor).unwrap()),
            Expect::Absent,
        )
        .await
        .unwrap();
    }
    let reopened = common::builder_over(Arc::new(store.clone()))
        .await
        .build()
        .unwrap();
    let meta = reopened.meta_store();
    meta.delete("referrer-layout", Expect::Any).await.unwrap();

    let listing = reopened.referrers(&r, &subject, None).await.unwrap();
    assert_eq!(referrer_digests(&listing.index), [sig_digest.to_string()]);
    assert!(
        meta.list_keys("referrer/", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(meta.get("referrer-layout").await.unwrap().is_some());
    assert!(meta.get(&list_key).await.unwrap().is_some());
    // The signature was confirmed by that listing; the entry that never committed costs
    // a look at its record until the grace period has passed.
    let (_, sent) = requests(&store, reopened.referrers(&r, &subject, None)).await;
    assert_eq!(sent, 2);
}
