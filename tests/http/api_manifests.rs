//! The registry server over plain HTTP, against local and S3 storage: image manifests
//! written by hand and pushed by tag and by digest, read back byte for byte, untagged and
//! deleted; referrers listed and filtered; tags and the catalog page by page through
//! `Link`.

use crate::common;

use serde_json::json;
use wharf::OCI_IMAGE_INDEX;

use common::http::{Api, body, digest_of, query_value, streamed};
use common::noise;
use common::server::{RegistryServer, Storage};

const SBOM: &str = "application/vnd.example.sbom.v1+json";
const SIGNATURE: &str = "application/vnd.example.signature.v1+json";

/// The largest manifest body the server takes (4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;

use super::api::{assert_referrers, image_manifest, push_artifact, push_image};

#[tokio::test(flavor = "multi_thread")]
async fn manifests_push_read_untag_and_delete() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));
        let repo = "manifests/team/app";

        // By tag, read back by tag and by digest: the bytes as pushed.
        let image = push_image(&api, repo, "v1", 10).await;
        api.assert_manifest(repo, "v1", &image.manifest).await;
        api.assert_manifest(repo, &image.digest, &image.manifest)
            .await;

        // The same bytes under a second tag, then that tag deleted: the manifest stays.
        api.put_manifest(repo, "v2", &image.manifest).await;
        api.assert_manifest(repo, "v2", &image.manifest).await;
        api.delete(&format!("/v2/{repo}/manifests/v2"))
            .await
            .check(202);
        api.assert_no_manifest(repo, "v2").await;
        api.assert_manifest(repo, &image.digest, &image.manifest)
            .await;
        api.assert_manifest(repo, "v1", &image.manifest).await;

        // A layer that was never pushed.
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        api.push_blob(repo, config).await;
        let missing = image_manifest(config, &[noise(5000, 11)]);
        api.send_manifest(repo, "missing", body(&missing))
            .await
            .error(400, "MANIFEST_BLOB_UNKNOWN");
        api.assert_no_manifest(repo, "missing").await;
        api.assert_no_manifest(repo, &digest_of(&missing)).await;

        // Not JSON.
        api.send_manifest(repo, "broken", body(br#"{"schemaVersion": 2, "config": "#))
            .await
            .error(400, "MANIFEST_INVALID");

        // A tag that breaks the grammar.
        api.send_manifest(repo, "-bad", body(&image.manifest))
            .await
            .error(400, "TAG_INVALID");

        // Over 4 MiB (streamed, so the server finds out by reading).
        let oversized = " ".repeat(MANIFEST_LIMIT + 1);
        api.send_manifest(repo, "huge", streamed(oversized.as_bytes(), 64 << 10))
            .await
            .error(413, "SIZE_INVALID");
        api.assert_no_manifest(repo, "huge").await;

        // Deleted by digest: gone, with its tag.
        api.delete(&format!("/v2/{repo}/manifests/{}", image.digest))
            .await
            .check(202);
        api.assert_no_manifest(repo, &image.digest).await;
        api.assert_no_manifest(repo, "v1").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_listed_and_filtered_by_artifact_type() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));
        let repo = "referrers/team/app";
        let subject = push_image(&api, repo, "latest", 20).await;
        let sbom = push_artifact(&api, repo, SBOM, &subject, br#"{"packages":[]}"#).await;
        let signature = push_artifact(&api, repo, SIGNATURE, &subject, b"signature").await;
        api.assert_manifest(repo, &sbom.digest, &sbom.manifest)
            .await;

        // All of them.
        let path = format!("/v2/{repo}/referrers/{}", subject.digest);
        let reply = api.get(&path).await.check(200);
        reply.header_is("content-type", OCI_IMAGE_INDEX);
        assert_eq!(
            reply.header("oci-filters-applied"),
            None,
            "{}",
            reply.request
        );
        assert_referrers(
            &reply.request,
            &reply.json(),
            &[(&sbom, SBOM), (&signature, SIGNATURE)],
        );

        // Only SBOMs, and the header saying a filter applied.
        let filtered = format!("{path}?artifactType={}", query_value(SBOM));
        let reply = api.get(&filtered).await.check(200);
        reply.header_is("content-type", OCI_IMAGE_INDEX);
        reply.header_is("oci-filters-applied", "artifactType");
        assert_referrers(&reply.request, &reply.json(), &[(&sbom, SBOM)]);

        // A subject nothing refers to: an empty index.
        let unknown = digest_of(b"no manifest has this digest");
        let reply = api
            .get(&format!("/v2/{repo}/referrers/{unknown}"))
            .await
            .check(200);
        reply.header_is("content-type", OCI_IMAGE_INDEX);
        assert_referrers(&reply.request, &reply.json(), &[]);

        // A deleted referrer is no longer listed.
        api.delete(&format!("/v2/{repo}/manifests/{}", sbom.digest))
            .await
            .check(202);
        let reply = api.get(&path).await.check(200);
        assert_referrers(&reply.request, &reply.json(), &[(&signature, SIGNATURE)]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_and_catalog_listed_whole_and_page_by_page() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));
        let tagged = "catalog/beta/gamma";

        // Tags pushed out of order; listed sorted.
        let image = push_image(&api, tagged, "v2.0", 30).await;
        for tag in ["latest", "a1", "v1.0", "b2"] {
            api.put_manifest(tagged, tag, &image.manifest).await;
        }
        let tags = ["a1", "b2", "latest", "v1.0", "v2.0"];
        let list = format!("/v2/{tagged}/tags/list");
        let reply = api.get(&list).await.check(200);
        assert_eq!(
            reply.json(),
            json!({ "name": tagged, "tags": tags }),
            "{}",
            reply.request
        );
        assert_eq!(reply.header("link"), None, "{}", reply.request);

        // Two at a time: a Link to each next page, none on the last.
        let first = api.get(&format!("{list}?n=2")).await.check(200);
        assert_eq!(
            first.json(),
            json!({ "name": tagged, "tags": ["a1", "b2"] }),
            "{}",
            first.request
        );
        first.header_is(
            "link",
            &format!("</v2/{tagged}/tags/list?n=2&last=b2>; rel=\"next\""),
        );
        let pages = api.walk(&format!("{list}?n=2"), "tags").await;
        let expected: [&[&str]; 3] = [&["a1", "b2"], &["latest", "v1.0"], &["v2.0"]];
        assert_eq!(pages, expected, "{storage:?}: tag pages");

        // No such repository.
        api.get("/v2/catalog/never/pushed/tags/list")
            .await
            .error(404, "NAME_UNKNOWN");

        // The catalog: every repository pushed to, sorted.
        for (repo, seed) in [("zeta/one/two", 40), ("alpha", 41), ("catalog/delta", 42)] {
            api.push_blob(repo, &noise(100, seed)).await;
        }
        let repositories = [
            "alpha",
            "catalog/beta/gamma",
            "catalog/delta",
            "zeta/one/two",
        ];
        let reply = api.get("/v2/_catalog").await.check(200);
        assert_eq!(
            reply.json(),
            json!({ "repositories": repositories }),
            "{}",
            reply.request
        );
        assert_eq!(reply.header("link"), None, "{}", reply.request);

        // One at a time.
        let first = api.get("/v2/_catalog?n=1").await.check(200);
        assert_eq!(
            first.json(),
            json!({ "repositories": ["alpha"] }),
            "{}",
            first.request
        );
        first.header_is("link", "</v2/_catalog?n=1&last=alpha>; rel=\"next\"");
        let pages = api.walk("/v2/_catalog?n=1", "repositories").await;
        assert!(
            pages.iter().all(|page| page.len() <= 1),
            "{storage:?}: catalog pages {pages:?}"
        );
        assert_eq!(pages.concat(), repositories, "{storage:?}: catalog pages");

        // Three at a time: a full page, then the last one without a Link.
        let pages = api.walk("/v2/_catalog?n=3", "repositories").await;
        let expected: [&[&str]; 2] = [&repositories[..3], &repositories[3..]];
        assert_eq!(pages, expected, "{storage:?}: catalog pages");
    }
}
