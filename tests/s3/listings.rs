//! Listings against S3 (moto), counted in requests: a page of tags, a page of the
//! catalog and a subject's referrers each cost a fixed number of requests, whatever the
//! number of entries.

use crate::common;
use crate::common::images::Image;
use crate::common::{referrer_digests, repo, requests, tag};

use std::sync::Arc;

use wharf::testing::FaultyStore;
use wharf::{ObjectMetaStore, Reference, Registry, RepositorySettings, Tag};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_tags_catalog_and_referrers_cost_fixed_requests_on_s3() {
    let Some(s3) = common::s3_store() else { return };
    let counted = FaultyStore::new(s3);
    let meta = ObjectMetaStore::connect(Arc::new(counted.clone()), "meta")
        .await
        .unwrap();
    let registry = Registry::builder()
        .object_store(Arc::new(counted.clone()))
        .meta_store(Arc::new(meta))
        .build()
        .unwrap();
    let r = repo("s3/listed");
    let image = Image::seeded("listed on s3");
    let subject = image.push(&registry, &r, &tag("t000")).await.unwrap();
    for i in 1..120 {
        let name: Tag = format!("t{i:03}").parse().unwrap();
        registry.tag_manifest(&r, &name, &subject).await.unwrap();
    }
    for i in 0..110 {
        registry
            .create_repository(
                &repo(&format!("s3/many/r{i:03}")),
                RepositorySettings::default(),
            )
            .await
            .unwrap();
    }
    let size = image.manifest().len();
    for i in 0..40 {
        let sig = Image::seeded(&format!("s3 signature {i}")).referring_to(
            &subject,
            size,
            "application/vnd.example.sig",
        );
        sig.push(
            &registry,
            &r,
            &Reference::Digest(sig.digest(&sig.manifest())),
        )
        .await
        .unwrap();
    }
    // Each listing's one-time layout check, behind us.
    registry.list_tags(&r, 1, None).await.unwrap();
    registry.referrers(&r, &subject, None).await.unwrap();

    let (page, sent) = requests(&counted, registry.list_tags(&r, 100, None)).await;
    assert_eq!(page.unwrap().len(), 100);
    eprintln!("a page of 100 tags on S3: {sent} requests");
    assert!(sent <= 2, "a page of 100 tags cost {sent} requests");

    let (page, sent) = requests(&counted, registry.list_repositories(100, None)).await;
    assert_eq!(page.unwrap().len(), 100);
    eprintln!("a page of 100 repositories on S3: {sent} requests");
    assert!(sent <= 2, "a page of 100 repositories cost {sent} requests");

    let (listing, sent) = requests(&counted, registry.referrers(&r, &subject, None)).await;
    assert_eq!(referrer_digests(&listing.unwrap().index).len(), 40);
    eprintln!("40 referrers on S3: {sent} requests");
    assert_eq!(sent, 1, "a listing of 40 referrers cost {sent} requests");
}
