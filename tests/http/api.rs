//! The registry server (`src/bin/wharf-registry`) over plain HTTP, against local and S3
//! storage, blob endpoints and the rest of the protocol, driven request by request with
//! each status and header checked: blobs pushed whole, read whole and by byte range, and
//! deleted; chunked uploads resumed, refused out of order, closed and cancelled;
//! cross-repository mounts and their fallback to an upload; the spec's error bodies;
//! repository names of several components; and the request log (manifests, tags,
//! referrers and the catalog: `api_manifests.rs`).

use crate::common;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use wharf::{OCI_EMPTY, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST};

use common::http::{Api, CONFIG, LAYER, body, descriptor, digest_of, streamed, with_query};
use common::noise;
use common::server::{RegistryServer, Storage};

const PAYLOAD: &str = "application/vnd.example.payload";

/// An image manifest over `config` and `layers`, indented as some clients write them (so
/// only the exact bytes have its digest).
pub(super) fn image_manifest(config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    let layers: Vec<Value> = layers.iter().map(|l| descriptor(LAYER, l)).collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "config": descriptor(CONFIG, config),
        "layers": layers,
        "annotations": { "org.opencontainers.image.title": "http api test" },
    });
    serde_json::to_vec_pretty(&manifest).unwrap()
}

/// A manifest pushed, with its digest.
pub(super) struct Pushed {
    pub(super) manifest: Vec<u8>,
    pub(super) digest: String,
}

/// Pushes a config and two layers to `repo`, then the image manifest over them as `tag`.
pub(super) async fn push_image(api: &Api, repo: &str, tag: &str, seed: u64) -> Pushed {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "seed": seed.to_string() } },
    }))
    .unwrap();
    let layers = [noise(4096, seed), noise(70_000, seed + 1)];
    api.push_blob(repo, &config).await;
    for layer in &layers {
        api.push_blob(repo, layer).await;
    }
    let manifest = image_manifest(&config, &layers);
    api.put_manifest(repo, tag, &manifest).await;
    Pushed {
        digest: digest_of(&manifest),
        manifest,
    }
}

/// Pushes an artifact of `artifact_type` about `subject` to `repo` by digest (an empty
/// config and one layer of `payload`); checks the answer names the subject.
pub(super) async fn push_artifact(
    api: &Api,
    repo: &str,
    artifact_type: &str,
    subject: &Pushed,
    payload: &[u8],
) -> Pushed {
    api.push_blob(repo, b"{}").await;
    api.push_blob(repo, payload).await;
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [descriptor(PAYLOAD, payload)],
        "subject": descriptor(OCI_IMAGE_MANIFEST, &subject.manifest),
        "annotations": { "org.example.kind": artifact_type },
    }))
    .unwrap();
    let digest = digest_of(&manifest);
    let reply = api.put_manifest(repo, &digest, &manifest).await;
    reply.header_is("oci-subject", &subject.digest);
    Pushed { manifest, digest }
}

/// Asserts that a referrers index lists exactly `expected` (each with its artifact type).
pub(super) fn assert_referrers(request: &str, index: &Value, expected: &[(&Pushed, &str)]) {
    assert_eq!(index["schemaVersion"], 2, "{request}: {index}");
    assert_eq!(index["mediaType"], OCI_IMAGE_INDEX, "{request}: {index}");
    let listed = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{request}: no manifests array in {index}"));
    assert_eq!(listed.len(), expected.len(), "{request}: {index}");
    for (pushed, artifact_type) in expected {
        let entry = listed
            .iter()
            .find(|entry| entry["digest"] == pushed.digest.as_str())
            .unwrap_or_else(|| panic!("{request}: {} not listed in {index}", pushed.digest));
        assert_eq!(entry["mediaType"], OCI_IMAGE_MANIFEST, "{request}: {entry}");
        assert_eq!(entry["artifactType"], *artifact_type, "{request}: {entry}");
        assert_eq!(entry["size"], pushed.manifest.len(), "{request}: {entry}");
    }
}

/// How many lines of `logs` record `method target` answered with `status` and a time.
fn logged(logs: &[String], method: &str, target: &str, status: u16) -> usize {
    let status = status.to_string();
    logs.iter()
        .filter(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some(method)
                && words.next() == Some(target)
                && words.next() == Some(status.as_str())
                && words
                    .next()
                    .and_then(|time| time.strip_suffix("ms"))
                    .is_some_and(|ms| ms.parse::<f64>().is_ok_and(|ms| ms >= 0.0))
        })
        .count()
}

/// Asserts that the server logged `method target status` exactly `count` times (waiting
/// a little for the lines to arrive).
async fn assert_logged(
    server: &RegistryServer,
    method: &str,
    target: &str,
    status: u16,
    count: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server.logs();
        let found = logged(&logs, method, target, status);
        if found >= count || Instant::now() > deadline {
            assert_eq!(
                found,
                count,
                "lines for `{method} {target} {status}` in:\n{}",
                logs.join("\n")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_push_read_ranges_and_delete() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));
        let repo = "blobs/team/app";
        let data = noise(300_000, 1);
        let size = data.len();

        // The base endpoint.
        let base = api.get("/v2/").await.check(200);
        assert_eq!(base.json(), json!({}), "{}", base.request);

        // Pushed whole, then read whole.
        let digest = api.push_blob(repo, &data).await;
        api.assert_blob(repo, &data).await;
        let path = format!("/v2/{repo}/blobs/{digest}");

        // Another repository does not have it.
        api.assert_no_blob("blobs/other", &digest).await;

        // A body that does not match the digest it is pushed as is refused, and stored
        // under neither digest.
        let other = noise(1000, 2);
        let claimed = digest_of(b"something else");
        api.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={claimed}"),
            &[],
            body(&other),
        )
        .await
        .error(400, "DIGEST_INVALID");
        api.assert_no_blob(repo, &claimed).await;
        api.assert_no_blob(repo, &digest_of(&other)).await;

        // A digest that is not one.
        api.get(&format!("/v2/{repo}/blobs/sha256:not-hex"))
            .await
            .error(400, "DIGEST_INVALID");

        // Byte ranges: a-b, a- and the suffix -n.
        let ranges = [
            ("bytes=0-0".to_owned(), 0, 0),
            ("bytes=1000-1999".to_owned(), 1000, 1999),
            (format!("bytes={}-", size - 1234), size - 1234, size - 1),
            ("bytes=-500".to_owned(), size - 500, size - 1),
        ];
        for (range, first, last) in ranges {
            let reply = api
                .send(Method::GET, &path, &[("range", range.as_str())], None)
                .await
                .check(206);
            reply.header_is("content-range", &format!("bytes {first}-{last}/{size}"));
            assert!(
                reply.body[..] == data[first..=last],
                "{} {range}: {} bytes back, want {}",
                reply.request,
                reply.body.len(),
                last + 1 - first
            );
        }
        // Unsatisfiable: starting at or past the end.
        for range in [
            format!("bytes={size}-"),
            format!("bytes={}-{}", size + 10, size + 20),
        ] {
            let reply = api
                .send(Method::GET, &path, &[("range", range.as_str())], None)
                .await
                .check(416);
            reply.header_is("content-range", &format!("bytes */{size}"));
        }

        // Deleted from the repository.
        let deleted = api.delete(&path).await.check(202);
        assert!(deleted.body.is_empty(), "{}", deleted.request);
        api.assert_no_blob(repo, &digest).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_resume_refuse_out_of_order_chunks_and_cancel() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));
        let repo = "uploads/team/app";
        let data = noise(2_000_777, 3);
        let (first, rest) = data.split_at(700_000);
        let (second, rest) = rest.split_at(600_000);
        let (third, last) = rest.split_at(400_000);
        let at_second = first.len();
        let at_third = at_second + second.len();
        let at_last = at_third + third.len();

        let location = api.start_upload(repo).await;
        let location = api.patch(&location, 0, first).await;

        // Where the session stands.
        let mut location = api
            .assert_session(&location, &format!("0-{}", at_second - 1))
            .await;

        // A chunk past the end (a gap), then one from the start again: 416 saying where
        // the upload is, and the session carries on. (Small chunks: the server answers
        // without reading them.)
        let stray = &second[..1000];
        for start in [at_second + 10, 0] {
            let range = format!("{start}-{}", start + stray.len() - 1);
            let reply = api
                .send(
                    Method::PATCH,
                    &location,
                    &[("content-range", range.as_str())],
                    body(stray),
                )
                .await;
            reply.error(416, "BLOB_UPLOAD_INVALID");
            reply.header_is("range", &format!("0-{}", at_second - 1));
            location = reply.must("location").to_owned();
        }
        let location = api.patch(&location, at_second, second).await;

        // Streamed without Content-Range (or a length): appended where the upload is.
        let location = api
            .patch_with(&location, None, streamed(third, 64 << 10), at_last)
            .await;
        let location = api
            .assert_session(&location, &format!("0-{}", at_last - 1))
            .await;

        // Closed with the last chunk in the PUT.
        api.finish_upload(repo, &location, &data, last).await;
        api.assert_blob(repo, &data).await;
        api.get(&location).await.error(404, "BLOB_UPLOAD_UNKNOWN");

        // A session closed by one PUT holding the whole blob.
        let whole = noise(50_000, 4);
        let location = api.start_upload(repo).await;
        api.finish_upload(repo, &location, &whole, &whole).await;
        api.assert_blob(repo, &whole).await;

        // A session closed by a PUT without a body after its only PATCH.
        let patched = noise(80_000, 5);
        let location = api.start_upload(repo).await;
        let location = api.patch(&location, 0, &patched).await;
        api.finish_upload(repo, &location, &patched, &[]).await;
        api.assert_blob(repo, &patched).await;

        // Closed as the wrong digest: refused, and nothing published under it.
        let location = api.start_upload(repo).await;
        let wrong = b"not what is claimed";
        let location = api.patch(&location, 0, wrong).await;
        let claimed = digest_of(b"something else entirely");
        api.send(
            Method::PUT,
            &with_query(&location, &format!("digest={claimed}")),
            &[],
            None,
        )
        .await
        .error(400, "DIGEST_INVALID");
        api.assert_no_blob(repo, &claimed).await;

        // Cancelled: the session is gone.
        let location = api.start_upload(repo).await;
        let location = api.patch(&location, 0, &whole[..1000]).await;
        let cancelled = api.delete(&location).await.check(204);
        assert!(cancelled.body.is_empty(), "{}", cancelled.request);
        api.get(&location).await.error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_mount_across_repositories_or_fall_back_to_an_upload() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));
        let source = "mount/source/app";
        let target = "mount/target/app";

        // In the source repository: mounted at once.
        let data = noise(100_000, 6);
        let digest = api.push_blob(source, &data).await;
        let reply = api
            .post(&format!(
                "/v2/{target}/blobs/uploads/?mount={digest}&from={source}"
            ))
            .await
            .check(201);
        api.assert_location(&reply, &format!("/v2/{target}/blobs/{digest}"));
        api.assert_blob(target, &data).await;
        api.assert_blob(source, &data).await;

        // Stored, but not in the repository named: an upload session instead. Then a
        // repository that does not exist at all.
        let elsewhere = noise(60_000, 7);
        api.push_blob("mount/elsewhere", &elsewhere).await;
        let nowhere = noise(61_000, 8);
        for (blob, from) in [(&elsewhere, source), (&nowhere, "mount/never/pushed")] {
            let digest = digest_of(blob);
            let reply = api
                .post(&format!(
                    "/v2/{target}/blobs/uploads/?mount={digest}&from={from}"
                ))
                .await
                .check(202);
            let location = reply.must("location").to_owned();
            api.assert_no_blob(target, &digest).await;
            let location = api.patch(&location, 0, &blob[..10_000]).await;
            api.finish_upload(target, &location, blob, &blob[10_000..])
                .await;
            api.assert_blob(target, blob).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_of_several_components_invalid_names_and_the_request_log() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let api = Api::new(&server).labelled(format!("{storage:?}"));

        // A name of several components, through blobs, uploads, manifests and listings.
        let repo = "a/b/c";
        let image = push_image(&api, repo, "v1", 50).await;
        api.assert_manifest(repo, "v1", &image.manifest).await;
        let data = noise(10_000, 51);
        let location = api.start_upload(repo).await;
        api.finish_upload(repo, &location, &data, &data).await;
        api.assert_blob(repo, &data).await;
        let reply = api.get("/v2/a/b/c/tags/list").await.check(200);
        assert_eq!(
            reply.json(),
            json!({ "name": "a/b/c", "tags": ["v1"] }),
            "{}",
            reply.request
        );

        // Names that break the grammar, on every kind of endpoint.
        api.get("/v2/UPPER/case/tags/list")
            .await
            .error(400, "NAME_INVALID");
        api.post("/v2/UPPER/case/blobs/uploads/")
            .await
            .error(400, "NAME_INVALID");
        api.get("/v2/UPPER/case/manifests/latest")
            .await
            .error(400, "NAME_INVALID");
        api.get(&format!("/v2/UPPER/case/blobs/{}", digest_of(&data)))
            .await
            .error(400, "NAME_INVALID");

        // One line per request: method, path with query, status, time.
        api.get("/v2/").await.check(200);
        api.get("/v2/").await.check(200);
        let catalog = api.get("/v2/_catalog?n=1").await.check(200);
        assert_eq!(
            catalog.json(),
            json!({ "repositories": ["a/b/c"] }),
            "{}",
            catalog.request
        );
        assert_logged(&server, "GET", "/v2/", 200, 2).await;
        assert_logged(&server, "GET", "/v2/_catalog?n=1", 200, 1).await;
        assert_logged(&server, "GET", "/v2/UPPER/case/tags/list", 400, 1).await;
        assert_logged(&server, "GET", "/v2/a/b/c/manifests/v1", 200, 1).await;
        assert_logged(&server, "HEAD", "/v2/a/b/c/manifests/v1", 200, 1).await;
        assert_logged(&server, "POST", "/v2/UPPER/case/blobs/uploads/", 400, 1).await;
    }
}
