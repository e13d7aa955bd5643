//! The registry example (`examples/registry`) against clients that misbehave or push its
//! limits, on local storage: many chunked uploads open at once on a small blocking pool;
//! hundreds of idle connections over the connection cap; connections that never finish
//! their headers or say nothing; a PATCH whose body stalls (its bytes kept, the session
//! freed); `Content-Range` on chunks checked strictly; blob byte ranges and `If-Range` as
//! RFC 9110 has them; the statuses of bad requests (pagination, methods with `Allow`,
//! malformed references); tag pages kept full past deleted tags; `?tag=` on a push by
//! digest; and a blob an image still uses refused deletion until the image is gone.
//!
//! Every client operation runs under a generous timeout, so a server that hangs fails a
//! test with a message instead of stalling the suite.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf::OCI_IMAGE_MANIFEST;

use common::noise;
use common::server::{RegistryServer, Storage};

const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// How long one request (or one raw-socket exchange) may take before the test fails.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

/// How long a raw-socket wait may take before the test fails.
const SOCKET_LIMIT: Duration = Duration::from_secs(60);

/// `future`, failing the test with `what` if it takes longer than `limit`.
async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {limit:?}"))
}

/// The digest of `data`, as text.
fn digest_of(data: &[u8]) -> String {
    common::sha256(data).to_string()
}

/// A request body holding a copy of `data`.
fn body(data: &[u8]) -> Option<reqwest::Body> {
    Some(reqwest::Body::from(data.to_vec()))
}

/// A request body streamed in pieces of `piece` bytes, with no length up front.
fn streamed(data: &[u8], piece: usize) -> Option<reqwest::Body> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(piece)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    Some(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
}

/// `location` with `query` added, after `&` if it already has a query.
fn with_query(location: &str, query: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{query}")
}

/// The target of a `Link: <target>; rel="next"` header.
fn next_link(link: &str) -> String {
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

/// One answer, read whole, with the request it answers for messages.
struct Reply {
    request: String,
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

impl Reply {
    /// Asserts the status; returns the reply for more checks.
    fn check(self, status: u16) -> Self {
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

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| {
            value
                .to_str()
                .unwrap_or_else(|_| panic!("{}: header {name} is not text", self.request))
        })
    }

    /// Every value of a header that may repeat, in order.
    fn header_all(&self, name: &str) -> Vec<&str> {
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
    fn must(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| {
            panic!(
                "{}: no {name} header among {:?}",
                self.request, self.headers
            )
        })
    }

    fn header_is(&self, name: &str, value: &str) {
        assert_eq!(
            self.header(name),
            Some(value),
            "{}: {name} (headers {:?})",
            self.request,
            self.headers
        );
    }

    fn json(&self) -> Value {
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
    fn error(&self, status: u16, code: &str) -> Value {
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
    fn allows(&self, methods: &[&str]) {
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
/// resolve against the server's URL. Every request is bounded by [`REQUEST_LIMIT`].
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl Api {
    fn new(server: &RegistryServer) -> Self {
        Self::with_client(server, reqwest::Client::builder())
    }

    fn with_client(server: &RegistryServer, builder: reqwest::ClientBuilder) -> Self {
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let base: reqwest::Url = server.url().parse().expect("the server URL");
        Self { http, base }
    }

    fn url(&self, target: &str) -> reqwest::Url {
        self.base
            .join(target)
            .unwrap_or_else(|e| panic!("{target:?} does not resolve against {}: {e}", self.base))
    }

    async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<reqwest::Body>,
    ) -> Reply {
        let request = format!("{method} {target} {headers:?}");
        let mut builder = self.http.request(method, self.url(target));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        within(REQUEST_LIMIT, &request, async {
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
        })
        .await
    }

    async fn get(&self, target: &str) -> Reply {
        self.send(Method::GET, target, &[], None).await
    }

    async fn head(&self, target: &str) -> Reply {
        self.send(Method::HEAD, target, &[], None).await
    }

    async fn delete(&self, target: &str) -> Reply {
        self.send(Method::DELETE, target, &[], None).await
    }

    /// Asserts that `reply`'s `Location` names `path`.
    fn assert_location(&self, reply: &Reply, path: &str) {
        assert_eq!(
            self.url(reply.must("location")),
            self.url(path),
            "{}: Location",
            reply.request
        );
    }

    /// Starts an upload session in `repo`; returns its `Location`.
    async fn start_upload(&self, repo: &str) -> String {
        let reply = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
            )
            .await
            .check(202);
        reply.header_is("range", "0-0");
        reply.must("location").to_owned()
    }

    /// PATCHes `chunk` to the session at `location` as `Content-Range: start-…`; checks
    /// the session then holds `start + chunk.len()` bytes and returns its next `Location`.
    async fn patch(&self, location: &str, start: usize, chunk: &[u8]) -> String {
        let end = start + chunk.len();
        let range = format!("{start}-{}", end - 1);
        let reply = self
            .send(
                Method::PATCH,
                location,
                &[("content-range", range.as_str())],
                body(chunk),
            )
            .await
            .check(202);
        reply.header_is("range", &format!("0-{}", end - 1));
        reply.must("location").to_owned()
    }

    /// Asserts where the session at `location` stands (its `Range`); returns its
    /// `Location`.
    async fn assert_session(&self, location: &str, range: &str) -> String {
        let reply = self.get(location).await.check(204);
        reply.header_is("range", range);
        reply.must("location").to_owned()
    }

    /// Closes the session at `location` as `data`'s digest, without a body, and checks
    /// the blob is created in `repo`.
    async fn finish_upload(&self, repo: &str, location: &str, data: &[u8]) {
        let digest = digest_of(data);
        let target = with_query(location, &format!("digest={digest}"));
        let reply = self.send(Method::PUT, &target, &[], None).await.check(201);
        self.assert_location(&reply, &format!("/v2/{repo}/blobs/{digest}"));
        reply.header_is("docker-content-digest", &digest);
    }

    /// Pushes `data` to `repo` in one request; returns its digest.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
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
        digest
    }

    /// Asserts that `repo` serves `data` as a blob: `HEAD` gives its length, `GET` bytes
    /// with its digest.
    async fn assert_blob(&self, repo: &str, data: &[u8]) {
        let digest = digest_of(data);
        let path = format!("/v2/{repo}/blobs/{digest}");
        let head = self.head(&path).await.check(200);
        head.header_is("content-length", &data.len().to_string());
        head.header_is("docker-content-digest", &digest);
        let get = self.get(&path).await.check(200);
        assert_eq!(
            get.body.len(),
            data.len(),
            "{}: length of the bytes back",
            get.request
        );
        assert_eq!(
            digest_of(&get.body),
            digest,
            "{}: digest of the bytes back",
            get.request
        );
    }

    /// PUTs `manifest` as an image manifest to `repo` at `target` (a reference, with any
    /// query); checks the answer names its digest and returns it for more checks.
    async fn put_manifest(&self, repo: &str, target: &str, manifest: &[u8]) -> Reply {
        let digest = digest_of(manifest);
        let reply = self
            .send(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{target}"),
                &[("content-type", OCI_IMAGE_MANIFEST)],
                body(manifest),
            )
            .await
            .check(201);
        self.assert_location(&reply, &format!("/v2/{repo}/manifests/{digest}"));
        reply.header_is("docker-content-digest", &digest);
        reply
    }

    /// GETs a tag list page; returns its tags and its `Link` target, if any.
    async fn tag_page(&self, target: &str) -> (Vec<String>, Option<String>) {
        let reply = self.get(target).await.check(200);
        let body = reply.json();
        let tags = body["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no tags array in {body}", reply.request))
            .iter()
            .map(|tag| tag.as_str().expect("tags are strings").to_owned())
            .collect();
        (tags, reply.header("link").map(next_link))
    }
}

/// The descriptor of `data` as `media_type`.
fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest_of(data), "size": data.len() })
}

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

/// A response read off a raw socket.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (head, then a `Content-Length` body) from `stream`; panics if the
/// connection ends first.
async fn read_response(stream: &mut TcpStream, what: &str) -> RawResponse {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream
            .read(&mut piece)
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the response: {e}"));
        assert!(
            n > 0,
            "{what}: connection closed before a response; got {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{what}: not an HTTP/1.1 status line: {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream
            .read(&mut piece)
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the response body: {e}"));
        assert!(n > 0, "{what}: connection closed mid-body");
        body.extend_from_slice(&piece[..n]);
    }
    body.truncate(length);
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Reads `stream` until the server closes it (end of stream, or a reset); returns what
/// arrived before.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        match stream.read(&mut piece).await {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&piece[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{what}: reading until the server closes: {e}"),
        }
    }
}

/// Asserts the server process is still running (not exited, not a zombie).
fn assert_alive(server: &RegistryServer) {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid()))
        .unwrap_or_else(|e| panic!("the server process is gone ({e})"));
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    assert!(
        !matches!(state, Some('Z' | 'X') | None),
        "the server process has exited (state {state:?}); its log:\n{}",
        server.logs().join("\n")
    );
}

fn start(flags: &[&str]) -> RegistryServer {
    RegistryServer::start_with(Storage::Local, flags).expect("a local server starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn many_concurrent_chunked_uploads_finish_with_a_small_blocking_pool() {
    const POOL: usize = 4;
    const UPLOADS: usize = 4 * POOL;
    const CHUNKS: usize = 8;
    const CHUNK: usize = 1 << 20;
    let server = start(&["--blocking-threads", &POOL.to_string()]);
    let api = Api::new(&server);
    let seed = common::seed_for("many_concurrent_chunked_uploads");
    // Every upload has a chunk in before any goes on: all of them open at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(UPLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..UPLOADS {
        let api = api.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            let repo = format!("hostile/c{i}");
            let data = noise(CHUNKS * CHUNK, seed.wrapping_add(i as u64));
            let mut location = api.start_upload(&repo).await;
            for (n, chunk) in data.chunks(CHUNK).enumerate() {
                location = api.patch(&location, n * CHUNK, chunk).await;
                if n == 0 {
                    barrier.wait().await;
                }
            }
            api.finish_upload(&repo, &location, &data).await;
            api.assert_blob(&repo, &data).await;
            i
        });
    }
    let mut finished = Vec::new();
    within(
        Duration::from_secs(600),
        &format!("{UPLOADS} concurrent chunked uploads on {POOL} blocking threads"),
        async {
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(i) => finished.push(i),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => panic!("an upload task failed: {e}"),
                }
            }
        },
    )
    .await;
    finished.sort_unstable();
    assert_eq!(finished, (0..UPLOADS).collect::<Vec<_>>());
    assert_alive(&server);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_beyond_the_cap_do_not_lock_out_new_clients() {
    const IDLE: usize = 200;
    const REQUESTS: usize = 20;
    let server = start(&["--max-connections", "32", "--idle-timeout", "30s"]);

    // Connections that say nothing, held open.
    let mut idle = Vec::with_capacity(IDLE);
    for n in 0..IDLE {
        let stream = within(
            SOCKET_LIMIT,
            &format!("opening idle connection {n}"),
            TcpStream::connect(server.host()),
        )
        .await
        .unwrap_or_else(|e| panic!("opening idle connection {n}: {e}"));
        idle.push(stream);
    }

    // Ordinary clients still get answers, each on a new connection.
    let api = Api::with_client(
        &server,
        reqwest::Client::builder().pool_max_idle_per_host(0),
    );
    for n in 0..REQUESTS {
        let reply = api.get("/v2/").await;
        assert_eq!(
            reply.status,
            200,
            "request {n} after {IDLE} idle connections: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json(), json!({}), "{}", reply.request);
    }

    assert_alive(&server);
    let logs = server.logs();
    let accept_errors = logs.iter().filter(|line| line.contains("accept:")).count();
    assert!(
        accept_errors <= 50,
        "{accept_errors} `accept:` lines in the log (a storm):\n{}",
        logs.join("\n")
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_past_the_descriptor_limit_do_not_take_the_server_down() {
    // More idle connections than the process has descriptors, under the default cap:
    // `accept` fails, and the server must shed idle connections, back off and keep its
    // log quiet instead of spinning.
    const IDLE: usize = 400;
    const REQUESTS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| {
        RegistryServer::spawn_under(
            &["prlimit", "--nofile=128:128", "--"],
            &dir.path().join("data"),
            Vec::new(),
        )
    })
    .expect("the server starts under a descriptor limit");
    let mut idle = Vec::with_capacity(IDLE);
    for n in 0..IDLE {
        let stream = within(
            SOCKET_LIMIT,
            &format!("opening idle connection {n}"),
            TcpStream::connect(server.host()),
        )
        .await
        .unwrap_or_else(|e| panic!("opening idle connection {n}: {e}"));
        idle.push(stream);
    }
    let api = Api::with_client(
        &server,
        reqwest::Client::builder().pool_max_idle_per_host(0),
    );
    for n in 0..REQUESTS {
        let reply = api.get("/v2/").await;
        assert_eq!(
            reply.status,
            200,
            "request {n} after {IDLE} idle connections: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert_alive(&server);
    let logs = server.logs();
    let accept_errors = logs.iter().filter(|line| line.contains("accept:")).count();
    assert!(
        (1..=50).contains(&accept_errors),
        "{accept_errors} `accept:` lines (the limit was reached, and logged without a storm):\n{}",
        logs.join("\n")
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_connection_is_busy_the_next_gets_503_and_the_busy_ones_finish() {
    const CAP: usize = 4;
    let server = start(&[
        "--max-connections",
        &CAP.to_string(),
        "--body-timeout",
        "60s",
    ]);
    let locations = {
        let api = Api::with_client(
            &server,
            reqwest::Client::builder().pool_max_idle_per_host(0),
        );
        let mut locations = Vec::new();
        for i in 0..CAP {
            locations.push(api.start_upload(&format!("hostile/busy{i}")).await);
        }
        locations
    };
    let data = noise(100, common::seed_for("busy connections"));
    // Every slot busy with a PATCH whose body is still coming.
    let mut busy = Vec::new();
    for location in &locations {
        let mut stream = within(
            SOCKET_LIMIT,
            "connecting",
            TcpStream::connect(server.host()),
        )
        .await
        .expect("a raw connection");
        let head = format!(
            "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\
             Content-Range: 0-99\r\n\r\n",
            server.host()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&data[..10]).await.unwrap();
        busy.push(stream);
    }
    // Time for the server to read those heads (a wait, not a measurement).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut next = within(
        SOCKET_LIMIT,
        "connecting",
        TcpStream::connect(server.host()),
    )
    .await
    .expect("a raw connection");
    next.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", server.host()).as_bytes())
        .await
        .unwrap();
    let refused = within(
        SOCKET_LIMIT,
        "the refused request",
        read_response(&mut next, "over the cap"),
    )
    .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("1"), "{refused:?}");
    let error: Value = serde_json::from_slice(&refused.body).expect("a JSON error body");
    assert_eq!(error["errors"][0]["code"], "TOOMANYREQUESTS", "{error}");

    // The busy ones were not disturbed: they finish.
    for (i, stream) in busy.iter_mut().enumerate() {
        stream.write_all(&data[10..]).await.unwrap();
        let done = within(
            SOCKET_LIMIT,
            "a busy PATCH",
            read_response(stream, "a busy PATCH"),
        )
        .await;
        assert_eq!(done.status, 202, "PATCH {i}: {done:?}");
        assert_eq!(done.header("range"), Some("0-99"), "PATCH {i}: {done:?}");
    }
    drop(busy);
    // And with room again, new clients are served.
    let api = Api::with_client(
        &server,
        reqwest::Client::builder().pool_max_idle_per_host(0),
    );
    assert_eq!(api.get("/v2/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let server = start(&["--idle-timeout", "2s"]);
    let cases: [(&str, &[u8]); 2] = [
        (
            "unfinished headers",
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\n".as_slice(),
        ),
        ("nothing sent", b"".as_slice()),
    ];
    for (what, sent) in cases {
        let mut stream = within(SOCKET_LIMIT, what, TcpStream::connect(server.host()))
            .await
            .unwrap_or_else(|e| panic!("{what}: connecting: {e}"));
        stream
            .write_all(sent)
            .await
            .unwrap_or_else(|e| panic!("{what}: writing: {e}"));
        let got = within(
            SOCKET_LIMIT,
            &format!("{what}: waiting for the server to close the connection"),
            read_until_closed(&mut stream, what),
        )
        .await;
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 "),
            "{what}: before closing the server sent {:?}",
            String::from_utf8_lossy(&got)
        );
        // The server still answers a well-behaved client.
        Api::new(&server).get("/v2/").await.check(200);
    }
    assert_alive(&server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_patch_body_ends_keeps_its_bytes_and_frees_the_upload() {
    let server = start(&["--body-timeout", "2s"]);
    let api = Api::new(&server);
    let repo = "hostile/stalled";
    let data = noise(1000, common::seed_for("stalled patch"));
    let location = api.start_upload(repo).await;

    // A PATCH promising 1000 bytes that sends 100, then nothing (the socket stays open).
    let mut stream = within(
        SOCKET_LIMIT,
        "connecting",
        TcpStream::connect(server.host()),
    )
    .await
    .expect("a raw connection");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000\r\nContent-Range: 0-999\r\n\r\n",
        server.host()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data[..100]).await.unwrap();
    stream.flush().await.unwrap();
    let stalled = tokio::spawn(async move {
        let response = within(
            SOCKET_LIMIT,
            "the stalled PATCH",
            read_response(&mut stream, "the stalled PATCH"),
        )
        .await;
        (response, stream)
    });

    // Meanwhile the session answers (once the stall ends, if not before).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let meanwhile = api.get(&location).await;
    // 204 once the body timeout ends the stalled PATCH; 409 if the session was still
    // busy with it for longer than the server waits.
    assert!(
        [204, 409].contains(&meanwhile.status),
        "{}: status {} during the stall, body {}",
        meanwhile.request,
        meanwhile.status,
        String::from_utf8_lossy(&meanwhile.body)
    );

    let (response, stream) = stalled.await.expect("the stalled PATCH task");
    assert!(
        (400..500).contains(&response.status),
        "the stalled PATCH: expected a 4xx, got {response:?}"
    );
    assert_eq!(
        response.header("range"),
        Some("0-99"),
        "the stalled PATCH: the bytes kept, in {response:?}"
    );
    let error: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!("the stalled PATCH: the error body is not JSON ({e}): {response:?}")
    });
    assert_eq!(
        error["errors"][0]["code"], "BLOB_UPLOAD_INVALID",
        "the stalled PATCH: {error}"
    );
    drop(stream);

    // The session holds the 100 bytes that arrived.
    let deadline = Instant::now() + SOCKET_LIMIT;
    let location = loop {
        let reply = api.get(&location).await;
        if reply.status == 204 && reply.header("range") == Some("0-99") {
            break reply.must("location").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{}: never showed Range 0-99; last status {} headers {:?} body {}",
            reply.request,
            reply.status,
            reply.headers,
            String::from_utf8_lossy(&reply.body)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The client resumes from there and finishes.
    let location = api.patch(&location, 100, &data[100..]).await;
    api.finish_upload(repo, &location, &data).await;
    let get = api
        .get(&format!("/v2/{repo}/blobs/{}", digest_of(&data)))
        .await
        .check(200);
    assert!(
        get.body[..] == data[..],
        "{}: {} bytes back, not the 1000 pushed",
        get.request,
        get.body.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn content_range_is_checked() {
    let server = start(&[]);
    let api = Api::new(&server);
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
        reply.error(416, "BLOB_UPLOAD_INVALID");
        reply.header_is("range", "0-0");
        api.assert_location(&reply, &session_path);
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
    reply.error(416, "BLOB_UPLOAD_INVALID");
    reply.header_is("range", "0-9");
    api.assert_location(&reply, &session_path);
    let location = api.assert_session(&location, "0-9").await;

    // Closed at the wrong offset: refused, and the session stays.
    let mut all = b"helloworld".to_vec();
    let last = b"12345";
    all.extend_from_slice(last);
    let digest = digest_of(&all);
    let closing = with_query(&location, &format!("digest={digest}"));
    let reply = api
        .send(
            Method::PUT,
            &closing,
            &[("content-range", "20-24")],
            body(last),
        )
        .await;
    reply.error(416, "BLOB_UPLOAD_INVALID");
    reply.header_is("range", "0-9");
    api.assert_location(&reply, &session_path);
    let location = api.assert_session(&location, "0-9").await;

    // Closed at the right one: the blob is the 15 bytes kept.
    let closing = with_query(&location, &format!("digest={digest}"));
    let reply = api
        .send(
            Method::PUT,
            &closing,
            &[("content-range", "10-14")],
            body(last),
        )
        .await
        .check(201);
    api.assert_location(&reply, &format!("/v2/{repo}/blobs/{digest}"));
    let get = api
        .get(&format!("/v2/{repo}/blobs/{digest}"))
        .await
        .check(200);
    assert_eq!(&get.body[..], &all[..], "{}", get.request);
    api.get(&location).await.error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_ranges_follow_rfc_9110() {
    let server = start(&[]);
    let api = Api::new(&server);
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
    let server = start(&[]);
    let api = Api::new(&server);
    let repo = "hostile/statuses";
    let image = push_image(&api, repo, "v1", common::seed_for("statuses")).await;

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
    api.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/-bad"),
        &[("content-type", OCI_IMAGE_MANIFEST)],
        body(&image.manifest),
    )
    .await
    .error(400, "TAG_INVALID");
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_pages_are_full_despite_deleted_tags() {
    let server = start(&[]);
    let api = Api::new(&server);
    let repo = "hostile/tags";
    let tags: Vec<String> = (0..12).map(|n| format!("t{n:02}")).collect();
    let image = push_image(&api, repo, &tags[0], common::seed_for("tag pages")).await;
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
        let (page, link) = api.tag_page(&target).await;
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
    let (page, link) = api.tag_page(&format!("{list}?n=2&last=t00")).await;
    assert_eq!(page, ["t04", "t06"], "after t00");
    assert!(link.is_some(), "after t00: no Link, though tags follow");

    // Exactly n left: no Link.
    let (page, link) = api.tag_page(&format!("{list}?n=2&last=t09")).await;
    assert_eq!(page, ["t10", "t11"], "after t09");
    assert_eq!(link, None, "after t09: a Link, though no tags follow");
    let (page, link) = api.tag_page(&format!("{list}?n={}", live.len())).await;
    assert_eq!(page, live, "n={}", live.len());
    assert_eq!(
        link,
        None,
        "n={}: a Link, though no tags follow",
        live.len()
    );
    let (page, link) = api.tag_page(&format!("{list}?n={}", live.len() - 1)).await;
    assert_eq!(page, live[..live.len() - 1], "n={}", live.len() - 1);
    assert!(
        link.is_some(),
        "n={}: no Link, though t11 follows",
        live.len() - 1
    );

    // Whole: the live tags only.
    let (page, link) = api.tag_page(&list).await;
    assert_eq!(page, live, "the whole list");
    assert_eq!(link, None, "the whole list has a Link");
}

#[tokio::test(flavor = "multi_thread")]
async fn push_by_digest_with_tag_parameters() {
    let server = start(&[]);
    let api = Api::new(&server);
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
    api.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{}?tag=-x", image.digest),
        &[("content-type", OCI_IMAGE_MANIFEST)],
        body(&image.manifest),
    )
    .await
    .error(400, "TAG_INVALID");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_blob_an_image_still_uses_is_refused() {
    let server = start(&[]);
    let api = Api::new(&server);
    let repo = "hostile/in/use";
    let image = push_image(&api, repo, "v1", common::seed_for("blob in use")).await;
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
