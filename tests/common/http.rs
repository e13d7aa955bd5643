//! A plain HTTP client for the registry server (`src/bin/wharf-registry`), for the tests that
//! drive its API request by request: [`Api`] sends one request at a time and reads each
//! answer whole into a [`Reply`], whose helpers check statuses, headers and the spec's
//! error bodies; `Api` also has the steps of a push (uploads, chunks, blobs, manifests)
//! with their answers checked, and listings followed page by page through `Link`. Around
//! it: request bodies, digests as text, query strings and descriptors.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};
use wharf::OCI_IMAGE_MANIFEST;

use super::server::{RegistryServer, Storage};

/// The media type of an image config.
pub(crate) const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// The media type of a gzipped tar layer.
pub(crate) const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `future`, failing the test with `what` if it takes longer than `limit`.
pub(crate) async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {limit:?}"))
}

/// The digest of `data`, as text.
pub(crate) fn digest_of(data: &[u8]) -> String {
    super::sha256(data).to_string()
}

/// A request body holding a copy of `data`.
pub(crate) fn body(data: &[u8]) -> Option<reqwest::Body> {
    Some(reqwest::Body::from(data.to_vec()))
}

/// A request body streamed in pieces of `piece` bytes, with no length up front.
pub(crate) fn streamed(data: &[u8], piece: usize) -> Option<reqwest::Body> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(piece)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    Some(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
}

/// `location` with `query` added, after `&` if it already has a query.
pub(crate) fn with_query(location: &str, query: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{query}")
}

/// `text` percent-encoded for a query value (`+` would otherwise read as a space).
pub(crate) fn query_value(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The target of a `Link: <target>; rel="next"` header.
pub(crate) fn next_link(link: &str) -> String {
    let (target, params) = link
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .unwrap_or_else(|| panic!("Link {link:?} is not <target>; rel=\"next\""));
    assert!(
        params.contains("rel=\"next\""),
        "Link {link:?} has no rel=\"next\""
    );
    target.to_owned()
}

/// The descriptor of `data` as `media_type`.
pub(crate) fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest_of(data), "size": data.len() })
}

/// One answer, read whole, with the request it answers for messages.
pub(crate) struct Reply {
    /// The request, as text for messages: the client's label, method, target and any
    /// headers sent.
    pub(crate) request: String,
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// Asserts the status; returns the reply for more checks.
    pub(crate) fn check(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status}, headers {:?}, body {}",
            self.request,
            self.headers,
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// A header's value, if it is there; panics if it is not text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| {
            value
                .to_str()
                .unwrap_or_else(|_| panic!("{}: header {name} is not text", self.request))
        })
    }

    /// Every value of a header that may repeat, in order.
    pub(crate) fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| {
                value
                    .to_str()
                    .unwrap_or_else(|_| panic!("{}: header {name} is not text", self.request))
            })
            .collect()
    }

    /// A header that must be there.
    pub(crate) fn must(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| {
            panic!(
                "{}: no {name} header among {:?}",
                self.request, self.headers
            )
        })
    }

    /// Asserts a header is there with `value`.
    pub(crate) fn header_is(&self, name: &str, value: &str) {
        assert_eq!(
            self.header(name),
            Some(value),
            "{}: {name} (headers {:?})",
            self.request,
            self.headers
        );
    }

    /// The body as JSON; panics if it is not.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {}",
                self.request,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the spec's error response: `status`, a JSON body whose first error has
    /// `code` and a message; returns the first error.
    pub(crate) fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: expected {status} {code}, body {}",
            self.request,
            String::from_utf8_lossy(&self.body)
        );
        let content_type = self.must("content-type");
        assert!(
            content_type.starts_with("application/json"),
            "{}: error content type {content_type}",
            self.request
        );
        let body = self.json();
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no errors array in {body}", self.request));
        assert!(
            !errors.is_empty(),
            "{}: empty errors in {body}",
            self.request
        );
        assert_eq!(errors[0]["code"], code, "{}: {body}", self.request);
        assert!(
            errors[0]["message"].is_string(),
            "{}: no message in {body}",
            self.request
        );
        errors[0].clone()
    }

    /// Asserts the `Allow` header of a 405 names each of `methods`.
    pub(crate) fn allows(&self, methods: &[&str]) {
        let allow = self.must("allow");
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for method in methods {
            assert!(
                listed.contains(method),
                "{}: Allow {allow:?} lacks {method}",
                self.request
            );
        }
    }
}

/// A client for one server; requests name their targets as paths (or `Location`s), which
/// resolve against the server's URL. Redirects are not followed. A client may carry a
/// label that starts each request's text (say, the storage under test), and a limit on
/// how long each request may take before the test fails.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: reqwest::Url,
    label: Option<String>,
    limit: Option<Duration>,
}

impl Api {
    /// A client with reqwest's defaults (connections pooled), no label and no limit.
    pub(crate) fn new(server: &RegistryServer) -> Self {
        Self::with_client(server, reqwest::Client::builder())
    }

    /// A client built by `builder` (with redirects off and no proxy), no label and no
    /// limit.
    pub(crate) fn with_client(server: &RegistryServer, builder: reqwest::ClientBuilder) -> Self {
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let base: reqwest::Url = server.url().parse().expect("the server URL");
        Self {
            http,
            base,
            label: None,
            limit: None,
        }
    }

    /// This client, with `label` starting the text of each request it sends.
    pub(crate) fn labelled(self, label: impl Into<String>) -> Self {
        Self {
            label: Some(label.into()),
            ..self
        }
    }

    /// This client, failing the test when a request (sent and read whole) takes longer
    /// than `limit`.
    pub(crate) fn bounded(self, limit: Duration) -> Self {
        Self {
            limit: Some(limit),
            ..self
        }
    }

    /// The underlying HTTP client, for requests read other than whole.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// `target` resolved against the server's URL.
    pub(crate) fn url(&self, target: &str) -> reqwest::Url {
        self.base
            .join(target)
            .unwrap_or_else(|e| panic!("{target:?} does not resolve against {}: {e}", self.base))
    }

    /// Sends `method target` with `headers` and `body`; returns the answer read whole.
    pub(crate) async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<reqwest::Body>,
    ) -> Reply {
        let mut request = match &self.label {
            Some(label) => format!("{label}: {method} {target}"),
            None => format!("{method} {target}"),
        };
        if !headers.is_empty() {
            request.push_str(&format!(" {headers:?}"));
        }
        let mut builder = self.http.request(method, self.url(target));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let exchange = async {
            let response = builder
                .send()
                .await
                .unwrap_or_else(|e| panic!("{request}: {e:?}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{request}: reading the body: {e:?}"));
            Reply {
                request: request.clone(),
                status,
                headers,
                body,
            }
        };
        match self.limit {
            Some(limit) => within(limit, &request, exchange).await,
            None => exchange.await,
        }
    }

    pub(crate) async fn get(&self, target: &str) -> Reply {
        self.send(Method::GET, target, &[], None).await
    }

    pub(crate) async fn head(&self, target: &str) -> Reply {
        self.send(Method::HEAD, target, &[], None).await
    }

    pub(crate) async fn delete(&self, target: &str) -> Reply {
        self.send(Method::DELETE, target, &[], None).await
    }

    pub(crate) async fn post(&self, target: &str) -> Reply {
        self.send(Method::POST, target, &[], None).await
    }

    /// Asserts that `reply`'s `Location` names `path`.
    pub(crate) fn assert_location(&self, reply: &Reply, path: &str) {
        assert_eq!(
            self.url(reply.must("location")),
            self.url(path),
            "{}: Location",
            reply.request
        );
    }

    /// Starts an upload session in `repo` (checking it starts empty and has an ID);
    /// returns its `Location`.
    pub(crate) async fn start_upload(&self, repo: &str) -> String {
        let reply = self
            .post(&format!("/v2/{repo}/blobs/uploads/"))
            .await
            .check(202);
        reply.header_is("range", "0-0");
        assert!(
            !reply.must("docker-upload-uuid").is_empty(),
            "{}: empty Docker-Upload-UUID",
            reply.request
        );
        reply.must("location").to_owned()
    }

    /// PATCHes `chunk` to the session at `location` as `Content-Range: start-…`; checks
    /// the session then holds `start + chunk.len()` bytes and returns its next `Location`.
    pub(crate) async fn patch(&self, location: &str, start: usize, chunk: &[u8]) -> String {
        self.patch_with(location, Some(start), body(chunk), start + chunk.len())
            .await
    }

    /// PATCHes `chunk` to the session at `location`, with `Content-Range` when `start`
    /// is given; checks the session then holds `offset` bytes and returns its next
    /// `Location`.
    pub(crate) async fn patch_with(
        &self,
        location: &str,
        start: Option<usize>,
        chunk: Option<reqwest::Body>,
        offset: usize,
    ) -> String {
        let range = start.map(|start| format!("{start}-{}", offset - 1));
        let headers: Vec<(&str, &str)> = range
            .iter()
            .map(|range| ("content-range", range.as_str()))
            .collect();
        let reply = self
            .send(Method::PATCH, location, &headers, chunk)
            .await
            .check(202);
        reply.header_is("range", &format!("0-{}", offset - 1));
        reply.must("location").to_owned()
    }

    /// Asserts where the session at `location` stands (its `Range`); returns its
    /// `Location`.
    pub(crate) async fn assert_session(&self, location: &str, range: &str) -> String {
        let reply = self.get(location).await.check(204);
        reply.header_is("range", range);
        reply.must("location").to_owned()
    }

    /// Closes the session at `location` as `digest`, sending `last` as the final chunk if
    /// given, and checks the blob is created in `repo`.
    pub(crate) async fn close_upload(
        &self,
        repo: &str,
        location: &str,
        digest: &str,
        last: Option<reqwest::Body>,
    ) {
        let target = with_query(location, &format!("digest={digest}"));
        let reply = self.send(Method::PUT, &target, &[], last).await.check(201);
        self.assert_location(&reply, &format!("/v2/{repo}/blobs/{digest}"));
        reply.header_is("docker-content-digest", digest);
    }

    /// Closes the session at `location` as `data`'s digest, sending `last` as the final
    /// chunk unless it is empty, and checks the blob is created in `repo`.
    pub(crate) async fn finish_upload(&self, repo: &str, location: &str, data: &[u8], last: &[u8]) {
        let chunk = if last.is_empty() { None } else { body(last) };
        self.close_upload(repo, location, &digest_of(data), chunk)
            .await;
    }

    /// Pushes `data` to `repo` in one request; returns its digest.
    pub(crate) async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = digest_of(data);
        let reply = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                &[],
                body(data),
            )
            .await
            .check(201);
        self.assert_location(&reply, &format!("/v2/{repo}/blobs/{digest}"));
        reply.header_is("docker-content-digest", &digest);
        digest
    }

    /// Asserts that `repo` serves `data` as a blob: `HEAD` gives its length and digest
    /// and no body, `GET` its digest and bytes.
    pub(crate) async fn assert_blob(&self, repo: &str, data: &[u8]) {
        let digest = digest_of(data);
        let head = self
            .head(&format!("/v2/{repo}/blobs/{digest}"))
            .await
            .check(200);
        head.header_is("content-length", &data.len().to_string());
        head.header_is("docker-content-digest", &digest);
        assert!(head.body.is_empty(), "{}: HEAD has a body", head.request);
        let get = self.assert_blob_bytes(repo, &digest, data).await;
        get.header_is("docker-content-digest", &digest);
    }

    /// Asserts that a `GET` of blob `digest` in `repo` answers 200 with exactly `data`;
    /// returns the reply for more checks.
    pub(crate) async fn assert_blob_bytes(&self, repo: &str, digest: &str, data: &[u8]) -> Reply {
        let get = self
            .get(&format!("/v2/{repo}/blobs/{digest}"))
            .await
            .check(200);
        assert!(
            get.body[..] == data[..],
            "{}: {} bytes back for {} pushed",
            get.request,
            get.body.len(),
            data.len()
        );
        get
    }

    /// Asserts that `repo` has no blob `digest`.
    pub(crate) async fn assert_no_blob(&self, repo: &str, digest: &str) {
        let path = format!("/v2/{repo}/blobs/{digest}");
        self.head(&path).await.check(404);
        self.get(&path).await.error(404, "BLOB_UNKNOWN");
    }

    /// PUTs `manifest` (a body, maybe not a valid one) as an image manifest to `repo` at
    /// `target` (a reference, with any query); returns the answer, unchecked.
    pub(crate) async fn send_manifest(
        &self,
        repo: &str,
        target: &str,
        manifest: Option<reqwest::Body>,
    ) -> Reply {
        self.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{target}"),
            &[("content-type", OCI_IMAGE_MANIFEST)],
            manifest,
        )
        .await
    }

    /// PUTs `manifest` as an image manifest to `repo` at `target` (a reference, with any
    /// query); checks the answer names its digest and returns it for more checks.
    pub(crate) async fn put_manifest(&self, repo: &str, target: &str, manifest: &[u8]) -> Reply {
        let digest = digest_of(manifest);
        let reply = self
            .send_manifest(repo, target, body(manifest))
            .await
            .check(201);
        self.assert_location(&reply, &format!("/v2/{repo}/manifests/{digest}"));
        reply.header_is("docker-content-digest", &digest);
        reply
    }

    /// Asserts that `repo` serves `manifest` as `reference`, to `GET` and `HEAD`.
    pub(crate) async fn assert_manifest(&self, repo: &str, reference: &str, manifest: &[u8]) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let digest = digest_of(manifest);
        let length = manifest.len().to_string();
        let get = self.get(&path).await.check(200);
        let head = self.head(&path).await.check(200);
        for reply in [&get, &head] {
            reply.header_is("content-type", OCI_IMAGE_MANIFEST);
            reply.header_is("docker-content-digest", &digest);
            reply.header_is("content-length", &length);
        }
        assert!(
            get.body[..] == manifest[..],
            "{}: not the bytes pushed: {}",
            get.request,
            String::from_utf8_lossy(&get.body)
        );
        assert!(head.body.is_empty(), "{}: HEAD has a body", head.request);
    }

    /// Asserts that `repo` has no manifest `reference`.
    pub(crate) async fn assert_no_manifest(&self, repo: &str, reference: &str) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        self.head(&path).await.check(404);
        self.get(&path).await.error(404, "MANIFEST_UNKNOWN");
    }

    /// GETs one page of a listing (tags or the catalog); returns its `key` list (of
    /// strings) and its `Link` target, if any.
    pub(crate) async fn page(&self, target: &str, key: &str) -> (Vec<String>, Option<String>) {
        let reply = self.get(target).await.check(200);
        let body = reply.json();
        let items = body[key]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no {key} array in {body}", reply.request))
            .iter()
            .map(|item| {
                item.as_str()
                    .unwrap_or_else(|| panic!("{}: {key} holds {item}", reply.request))
                    .to_owned()
            })
            .collect();
        (items, reply.header("link").map(next_link))
    }

    /// Follows `Link: <…>; rel="next"` from `first` until a page has none; returns each
    /// page's `key` list.
    pub(crate) async fn walk(&self, first: &str, key: &str) -> Vec<Vec<String>> {
        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(target) = next.take() {
            assert!(pages.len() < 100, "{first}: over 100 pages");
            let (items, link) = self.page(&target, key).await;
            pages.push(items);
            next = link;
        }
        pages
    }
}

/// How long one request may take before a test fails (a server that hangs fails the
/// test with a message instead of stalling the suite).
pub(crate) const REQUEST_LIMIT: Duration = Duration::from_secs(120);

/// A client for `server` whose every request is bounded by [`REQUEST_LIMIT`].
pub(crate) fn bounded_api(server: &RegistryServer) -> Api {
    Api::new(server).bounded(REQUEST_LIMIT)
}

/// A client for `server` that opens a new connection for each request, every request
/// bounded by [`REQUEST_LIMIT`].
pub(crate) fn api_with_fresh_connections(server: &RegistryServer) -> Api {
    Api::with_client(server, reqwest::Client::builder().pool_max_idle_per_host(0))
        .bounded(REQUEST_LIMIT)
}

/// A server on local storage started with `flags`.
pub(crate) fn start_local(flags: &[&str]) -> RegistryServer {
    RegistryServer::start_with(Storage::Local, flags).expect("a local server starts")
}

/// A local server started with `flags`, and a client for it whose every request is
/// bounded by [`REQUEST_LIMIT`].
pub(crate) fn serve(flags: &[&str]) -> (RegistryServer, Api) {
    let server = start_local(flags);
    let api = bounded_api(&server);
    (server, api)
}
