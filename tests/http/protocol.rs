//! The registry server (`src/bin/wharf-registry`) held to the protocol, on local storage:
//! `Content-Range` on chunks checked strictly (and on a closing `PUT`); blob byte ranges
//! and `If-Range` as RFC 9110 has them; the statuses of bad requests (pagination, methods
//! with `Allow`, malformed references); tag pages kept full past deleted tags, with a
//! `Link` exactly when more follow; `?tag=` on a push by digest; and a blob an image still
//! uses refused deletion until the image is gone.

use crate::common;

use reqwest::Method;
use serde_json::{Value, json};
use wharf::OCI_IMAGE_MANIFEST;

use common::http::{
    Api, CONFIG, LAYER, Reply, body, descriptor, digest_of, serve, streamed, with_query,
};
use common::noise;
use common::server::RegistryServer;

/// A small image: its manifest and the layer it names.
struct Image {
    manifest: Vec<u8>,
    digest: String,
    layer: Vec<u8>,
}

/// Pushes a config and one layer to `repo`; returns the image manifest over them (not
/// pushed).
async fn push_image_blobs(api: &Api, repo: &str, seed: u64) -> Image {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "seed": seed.to_string() } },
    }))
    .unwrap();
    let layer = noise(5000, seed);
    api.push_blob(repo, &config).await;
    api.push_blob(repo, &layer).await;
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "config": descriptor(CONFIG, &config),
        "layers": [descriptor(LAYER, &layer)],
    }))
    .unwrap();
    Image {
        digest: digest_of(&manifest),
        manifest,
        layer,
    }
}

/// Pushes a small image to `repo` as `tag`.
async fn push_image(api: &Api, repo: &str, tag: &str, seed: u64) -> Image {
    let image = push_image_blobs(api, repo, seed).await;
    api.put_manifest(repo, tag, &image.manifest).await;
    image
}

/// A local server with the default flags, a bounded client for it, and a small image
/// pushed to `repo` as `tag`, its content seeded from `label`.
async fn serve_with_image(repo: &str, tag: &str, label: &str) -> (RegistryServer, Api, Image) {
    let (server, api) = serve(&[]);
    let image = push_image(&api, repo, tag, common::seed_for(label)).await;
    (server, api, image)
}

/// Asserts `reply` refuses a chunk, or a close, for its `Content-Range`: 416 saying the
/// session at `session_path` holds `range`.
fn assert_range_refused(api: &Api, reply: &Reply, range: &str, session_path: &str) {
    reply.error(416, "BLOB_UPLOAD_INVALID");
    reply.header_is("range", range);
    api.assert_location(reply, session_path);
}

/// PUTs `last` to close the session at `location` as `digest`, with `Content-Range:
/// range`; returns the answer, unchecked.
async fn close_with_range(
    api: &Api,
    location: &str,
    digest: &str,
    range: &str,
    last: &[u8],
) -> Reply {
    let closing = with_query(location, &format!("digest={digest}"));
    api.send(
        Method::PUT,
        &closing,
        &[("content-range", range)],
        body(last),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn content_range_is_checked() {
    let (_server, api) = serve(&[]);
    let repo = "hostile/ranges";
    let mut location = api.start_upload(repo).await;
    let session_path = api.url(&location).path().to_owned();

    // Refused before anything is written: 416 with where the upload stands.
    let refusals: [(&str, &[u8]); 6] = [
        ("5-1", b"hello"),
        ("0-100", b"hello"),
        ("5-", b"hello"),
        ("bytes 5-9/*", b"hello"),
        ("+5-9", b"hello"),
        ("3-7", b"hello"),
    ];
    for (range, chunk) in refusals {
        let reply = api
            .send(
                Method::PATCH,
                &location,
                &[("content-range", range)],
                body(chunk),
            )
            .await;
        assert_range_refused(&api, &reply, "0-0", &session_path);
        location = reply.must("location").to_owned();
        location = api.assert_session(&location, "0-0").await;
    }

    // The right range: taken.
    let location = api.patch(&location, 0, b"hello").await;
    let location = api.assert_session(&location, "0-4").await;

    // Streamed (no length up front), longer than its range: the bytes within it kept.
    let streamed_chunk = b"worldXYZ";
    let reply = api
        .send(
            Method::PATCH,
            &location,
            &[("content-range", "5-9")],
            streamed(streamed_chunk, streamed_chunk.len()),
        )
        .await;
    assert_range_refused(&api, &reply, "0-9", &session_path);
    let location = api.assert_session(&location, "0-9").await;

    // Closed at the wrong offset: refused, and the session stays.
    let mut all = b"helloworld".to_vec();
    let last = b"12345";
    all.extend_from_slice(last);
    let digest = digest_of(&all);
    let reply = close_with_range(&api, &location, &digest, "20-24", last).await;
    assert_range_refused(&api, &reply, "0-9", &session_path);
    let location = api.assert_session(&location, "0-9").await;

    // Closed at the right one: the blob is the 15 bytes kept.
    let reply = close_with_range(&api, &location, &digest, "10-14", last)
        .await
        .check(201);
    api.assert_location(&reply, &format!("/v2/{repo}/blobs/{digest}"));
    api.assert_blob_bytes(repo, &digest, &all).await;
    api.get(&location).await.error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_ranges_follow_rfc_9110() {
    let (_server, api) = serve(&[]);
    let repo = "hostile/ranges/blob";
    let data = noise(2000, common::seed_for("blob ranges"));
    let digest = api.push_blob(repo, &data).await;
    let path = format!("/v2/{repo}/blobs/{digest}");
    let etag = api.head(&path).await.check(200).must("etag").to_owned();
    assert_eq!(etag, format!("\"{digest}\""), "the blob's ETag");

    let get = |headers: Vec<(&'static str, String)>| {
        let api = &api;
        let path = &path;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            api.send(Method::GET, path, &headers, None).await
        }
    };

    // Satisfiable: 206 with the bytes asked for.
    for (range, first, last) in [
        ("bytes=0-9", 0, 9),
        ("bytes=1990-", 1990, 1999),
        ("bytes=-5", 1995, 1999),
    ] {
        let reply = get(vec![("range", range.to_owned())]).await.check(206);
        reply.header_is("content-range", &format!("bytes {first}-{last}/2000"));
        assert!(
            reply.body[..] == data[first..=last],
            "{} {range}: {} bytes back",
            reply.request,
            reply.body.len()
        );
    }

    // Well formed, no bytes: 416 with the size.
    for range in ["bytes=500-0", "bytes=5000-6000"] {
        let reply = get(vec![("range", range.to_owned())]).await.check(416);
        reply.header_is("content-range", "bytes */2000");
    }

    // Ignored (malformed, another unit, several ranges): the whole blob.
    let whole = |reply: Reply| {
        let reply = reply.check(200);
        assert_eq!(reply.header("content-range"), None, "{}", reply.request);
        assert!(
            reply.body[..] == data[..],
            "{}: {} bytes back, not the whole 2000",
            reply.request,
            reply.body.len()
        );
    };
    for range in ["bytes=abc", "items=0-5", "bytes 0-5", "bytes=0-1,5-6"] {
        whole(get(vec![("range", range.to_owned())]).await);
    }

    // If-Range: the blob's own ETag honours the range; anything else gets it all.
    let reply = get(vec![
        ("range", "bytes=0-9".to_owned()),
        ("if-range", etag.clone()),
    ])
    .await
    .check(206);
    reply.header_is("content-range", "bytes 0-9/2000");
    assert!(reply.body[..] == data[..10], "{}", reply.request);
    let other = format!("\"sha256:{}\"", "0".repeat(64));
    for validator in [other, "Wed, 21 Oct 2015 07:28:00 GMT".to_owned()] {
        whole(
            get(vec![
                ("range", "bytes=0-9".to_owned()),
                ("if-range", validator),
            ])
            .await,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_for_bad_requests() {
    let repo = "hostile/statuses";
    let (_server, api, image) = serve_with_image(repo, "v1", "statuses").await;

    // Pagination counts that are not counts.
    for n in ["abc", "-1"] {
        api.get(&format!("/v2/{repo}/tags/list?n={n}"))
            .await
            .error(400, "PAGINATION_NUMBER_INVALID");
    }
    // An unknown repository, with and without n (even n=0).
    for query in ["?n=0", ""] {
        api.get(&format!("/v2/nosuch/repo/tags/list{query}"))
            .await
            .error(404, "NAME_UNKNOWN");
    }

    // Methods an endpoint does not have: 405 with what it allows.
    for method in [Method::POST, Method::DELETE] {
        let reply = api.send(method, "/v2/", &[], None).await;
        reply.error(405, "UNSUPPORTED");
        reply.allows(&["GET"]);
    }
    let blob = format!("/v2/{repo}/blobs/{}", digest_of(&image.layer));
    let reply = api.send(Method::PUT, &blob, &[], body(b"x")).await;
    reply.error(405, "UNSUPPORTED");
    reply.allows(&["GET", "HEAD", "DELETE"]);

    // References that are neither tag nor digest: unknown to a read, invalid to a push.
    for reference in ["bad%20ref", "-bad"] {
        let path = format!("/v2/{repo}/manifests/{reference}");
        api.get(&path).await.error(404, "MANIFEST_UNKNOWN");
        api.head(&path).await.check(404);
    }
    api.send_manifest(repo, "-bad", body(&image.manifest))
        .await
        .error(400, "TAG_INVALID");
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_pages_are_full_despite_deleted_tags() {
    let repo = "hostile/tags";
    let tags: Vec<String> = (0..12).map(|n| format!("t{n:02}")).collect();
    let (_server, api, image) = serve_with_image(repo, &tags[0], "tag pages").await;
    for tag in &tags[1..] {
        api.put_manifest(repo, tag, &image.manifest).await;
    }
    let deleted = ["t01", "t02", "t03", "t05", "t08"];
    for tag in deleted {
        api.delete(&format!("/v2/{repo}/manifests/{tag}"))
            .await
            .check(202);
    }
    let live: Vec<String> = tags
        .iter()
        .filter(|tag| !deleted.contains(&tag.as_str()))
        .cloned()
        .collect();
    let list = format!("/v2/{repo}/tags/list");

    // Two at a time, following Link: full pages, a Link exactly when more follow.
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut next = Some(format!("{list}?n=2"));
    while let Some(target) = next.take() {
        assert!(pages.len() < 20, "{list}: over 20 pages: {pages:?}");
        let (page, link) = api.page(&target, "tags").await;
        let seen = pages.iter().map(Vec::len).sum::<usize>() + page.len();
        let more = seen < live.len();
        assert_eq!(
            link.is_some(),
            more,
            "GET {target}: page {page:?}, Link {link:?}, {} live tags in all",
            live.len()
        );
        if more {
            assert_eq!(page.len(), 2, "GET {target}: a page short of n=2: {page:?}");
        }
        pages.push(page);
        next = link;
    }
    assert_eq!(pages.concat(), live, "{list}?n=2: the tags across pages");
    assert_eq!(
        pages.len(),
        live.len().div_ceil(2),
        "{list}?n=2: pages {pages:?}"
    );

    // Past deleted tags, a page still comes back full.
    let (page, link) = api.page(&format!("{list}?n=2&last=t00"), "tags").await;
    assert_eq!(page, ["t04", "t06"], "after t00");
    assert!(link.is_some(), "after t00: no Link, though tags follow");

    // Exactly n left: no Link.
    let (page, link) = api.page(&format!("{list}?n=2&last=t09"), "tags").await;
    assert_eq!(page, ["t10", "t11"], "after t09");
    assert_eq!(link, None, "after t09: a Link, though no tags follow");
    let (page, link) = api.page(&format!("{list}?n={}", live.len()), "tags").await;
    assert_eq!(page, live, "n={}", live.len());
    assert_eq!(
        link,
        None,
        "n={}: a Link, though no tags follow",
        live.len()
    );
    let (page, link) = api
        .page(&format!("{list}?n={}", live.len() - 1), "tags")
        .await;
    assert_eq!(page, live[..live.len() - 1], "n={}", live.len() - 1);
    assert!(
        link.is_some(),
        "n={}: no Link, though t11 follows",
        live.len() - 1
    );

    // Whole: the live tags only.
    let (page, link) = api.page(&list, "tags").await;
    assert_eq!(page, live, "the whole list");
    assert_eq!(link, None, "the whole list has a Link");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_by_digest_with_tag_parameters() {
    let (_server, api) = serve(&[]);
    let repo = "hostile/tagged/by/digest";
    let image = push_image_blobs(&api, repo, common::seed_for("tag parameters")).await;

    let reply = api
        .put_manifest(
            repo,
            &format!("{}?tag=a1&tag=b2", image.digest),
            &image.manifest,
        )
        .await;
    let mut tagged = reply.header_all("oci-tag");
    tagged.sort_unstable();
    assert_eq!(tagged, ["a1", "b2"], "{}: OCI-Tag headers", reply.request);
    for tag in ["a1", "b2"] {
        let get = api
            .get(&format!("/v2/{repo}/manifests/{tag}"))
            .await
            .check(200);
        get.header_is("docker-content-digest", &image.digest);
        assert!(
            get.body[..] == image.manifest[..],
            "{}: not the bytes pushed",
            get.request
        );
    }
    let listed = api
        .get(&format!("/v2/{repo}/tags/list"))
        .await
        .check(200)
        .json();
    let listed: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags array in {listed}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for tag in ["a1", "b2"] {
        assert!(listed.contains(&tag), "tags/list {listed:?} lacks {tag}");
    }

    // A tag that breaks the grammar.
    api.send_manifest(
        repo,
        &format!("{}?tag=-x", image.digest),
        body(&image.manifest),
    )
    .await
    .error(400, "TAG_INVALID");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_blob_an_image_still_uses_is_refused() {
    let repo = "hostile/in/use";
    let (_server, api, image) = serve_with_image(repo, "v1", "blob in use").await;
    let layer = format!("/v2/{repo}/blobs/{}", digest_of(&image.layer));

    let reply = api.delete(&layer).await;
    let error = reply.error(405, "UNSUPPORTED");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&image.digest),
        "{}: the error does not name manifest {}: {error}",
        reply.request,
        image.digest
    );
    api.assert_blob(repo, &image.layer).await;

    api.delete(&format!("/v2/{repo}/manifests/{}", image.digest))
        .await
        .check(202);
    api.delete(&layer).await.check(202);
    api.get(&layer).await.error(404, "BLOB_UNKNOWN");
}
