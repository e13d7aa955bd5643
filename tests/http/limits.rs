//! The registry server (`src/bin/wharf-registry`) at and past its limits, on local storage:
//! many chunked uploads open at once on a small blocking pool; hundreds of idle
//! connections over the connection cap and past the process's descriptor limit; every
//! connection busy (the next one refused with 503, the busy ones unharmed); connections
//! that never finish their headers or say nothing; and a PATCH whose body stalls (its
//! bytes kept, the session freed).
//!
//! Every client operation runs under a generous timeout, so a server that hangs fails a
//! test with a message instead of stalling the suite.

use crate::common;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::http::{
    api_with_fresh_connections, bounded_api, digest_of, serve, start_local, within,
};
use common::noise;
use common::server::RegistryServer;

/// How long a raw-socket wait may take before the test fails.
const SOCKET_LIMIT: Duration = Duration::from_secs(60);

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

/// A raw connection to `server`, opened within [`SOCKET_LIMIT`] (`what` names it in
/// messages).
async fn connect(server: &RegistryServer, what: &str) -> TcpStream {
    within(
        SOCKET_LIMIT,
        &format!("{what}: connecting"),
        TcpStream::connect(server.host()),
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: connecting: {e}"))
}

/// Opens a raw connection to `server` and sends the head of a PATCH to the session at
/// `location` promising `length` bytes from its start (`Content-Range: 0-…`), then `sent`,
/// the first of them; returns the connection, for the rest or for none.
async fn begin_patch(
    server: &RegistryServer,
    location: &str,
    length: usize,
    sent: &[u8],
    what: &str,
) -> TcpStream {
    let mut stream = connect(server, what).await;
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {length}\r\nContent-Range: 0-{}\r\n\r\n",
        server.host(),
        length - 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream.flush().await.unwrap();
    stream
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

#[tokio::test(flavor = "multi_thread")]
async fn many_concurrent_chunked_uploads_finish_with_a_small_blocking_pool() {
    const POOL: usize = 4;
    const UPLOADS: usize = 4 * POOL;
    const CHUNKS: usize = 8;
    const CHUNK: usize = 1 << 20;
    let (server, api) = serve(&["--blocking-threads", &POOL.to_string()]);
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
            api.finish_upload(&repo, &location, &data, &[]).await;
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

/// Opens `idle` connections to `server` that say nothing and holds them open while
/// `requests` ordinary requests, each on a new connection, get `200 {}`; then asserts the
/// server still runs and its log has a number of `accept:` lines within `accept_lines`
/// (`expected` says why, for the message).
async fn assert_served_past_idle_connections(
    server: &RegistryServer,
    idle: usize,
    requests: usize,
    accept_lines: RangeInclusive<usize>,
    expected: &str,
) {
    // Connections that say nothing, held open.
    let mut streams = Vec::with_capacity(idle);
    for n in 0..idle {
        let stream = connect(server, &format!("idle connection {n}")).await;
        streams.push(stream);
    }

    // Ordinary clients still get answers, each on a new connection.
    let api = api_with_fresh_connections(server);
    for n in 0..requests {
        let reply = api.get("/v2/").await;
        assert_eq!(
            reply.status,
            200,
            "request {n} after {idle} idle connections: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.json(), json!({}), "{}", reply.request);
    }

    assert_alive(server);
    let logs = server.logs();
    let accept_errors = logs.iter().filter(|line| line.contains("accept:")).count();
    assert!(
        accept_lines.contains(&accept_errors),
        "{accept_errors} `accept:` lines in the log, not {accept_lines:?} ({expected}):\n{}",
        logs.join("\n")
    );
    drop(streams);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_beyond_the_cap_do_not_lock_out_new_clients() {
    let server = start_local(&["--max-connections", "32", "--idle-timeout", "30s"]);
    assert_served_past_idle_connections(&server, 200, 20, 0..=50, "a storm").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_past_the_descriptor_limit_do_not_take_the_server_down() {
    // More idle connections than the process has descriptors, under the default cap:
    // `accept` fails, and the server must shed idle connections, back off and keep its
    // log quiet instead of spinning.
    let dir = tempfile::tempdir().unwrap();
    let server = tokio::task::block_in_place(|| {
        RegistryServer::spawn_under(
            &["prlimit", "--nofile=128:128", "--"],
            &dir.path().join("data"),
            Vec::new(),
        )
    })
    .expect("the server starts under a descriptor limit");
    assert_served_past_idle_connections(
        &server,
        400,
        20,
        1..=50,
        "the limit was reached, and logged without a storm",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_connection_is_busy_the_next_gets_503_and_the_busy_ones_finish() {
    const CAP: usize = 4;
    let server = start_local(&[
        "--max-connections",
        &CAP.to_string(),
        "--body-timeout",
        "60s",
    ]);
    let locations = {
        let api = api_with_fresh_connections(&server);
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
        busy.push(begin_patch(&server, location, 100, &data[..10], "a busy PATCH").await);
    }
    // Time for the server to read those heads (a wait, not a measurement).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut next = connect(&server, "over the cap").await;
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
    let api = api_with_fresh_connections(&server);
    assert_eq!(api.get("/v2/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_its_response_gives_its_connection_up() {
    // One connection allowed; a client takes it with a large GET and never reads.
    let (server, api) = serve(&["--max-connections", "1", "--body-timeout", "2s"]);
    let data = noise(32 << 20, common::seed_for("unread response"));
    api.push_blob("hostile/unread", &data).await;
    drop(api);
    let mut stuck = connect(&server, "the reader that stops").await;
    let head = format!(
        "GET /v2/hostile/unread/blobs/{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        digest_of(&data),
        server.host()
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    // Its response has begun (the status line arrived), so the connection is busy, not
    // idle: an idle connection would give its slot to the next client at once.
    let mut status_line = [0u8; 12];
    within(
        SOCKET_LIMIT,
        "the stuck response's first bytes",
        stuck.read_exact(&mut status_line),
    )
    .await
    .unwrap();
    assert_eq!(&status_line, b"HTTP/1.1 200");
    // Others are refused while it holds the only slot, then served once the server
    // gives the stuck response up.
    let api = api_with_fresh_connections(&server);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    loop {
        let reply = api.get("/v2/").await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.request);
        refused += 1;
        assert!(
            Instant::now() < deadline,
            "the stuck response still holds the only connection after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        refused > 0,
        "the stuck reader held the slot for a while first"
    );
    assert!(
        server.logs().iter().any(|l| l.contains("response stalled")),
        "the server says why it closed the connection"
    );
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_chunk_leaves_its_connection_open_for_the_next_request() {
    let (server, api) = serve(&[]);
    let location = api.start_upload("hostile/refused").await;
    let mut stream = connect(&server, "keep-alive after a 416").await;
    let host = server.host().to_owned();
    // At the wrong offset, with a body the server never needs to look at.
    let patch = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 20\r\nContent-Range: 22-41\r\n\r\n01234567890123456789"
    );
    stream.write_all(patch.as_bytes()).await.unwrap();
    let refused = within(
        SOCKET_LIMIT,
        "the refused PATCH",
        read_response(&mut stream, "416"),
    )
    .await;
    assert_eq!(refused.status, 416, "{refused:?}");
    // The same connection serves the next request.
    let get = format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(get.as_bytes()).await.unwrap();
    let next = within(
        SOCKET_LIMIT,
        "the next request",
        read_response(&mut stream, "after 416"),
    )
    .await;
    assert_eq!(next.status, 200, "{next:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let server = start_local(&["--idle-timeout", "2s"]);
    let cases: [(&str, &[u8]); 2] = [
        (
            "unfinished headers",
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\n".as_slice(),
        ),
        ("nothing sent", b"".as_slice()),
    ];
    for (what, sent) in cases {
        let mut stream = connect(&server, what).await;
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
        bounded_api(&server).get("/v2/").await.check(200);
    }
    assert_alive(&server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_patch_body_ends_keeps_its_bytes_and_frees_the_upload() {
    let (server, api) = serve(&["--body-timeout", "2s"]);
    let repo = "hostile/stalled";
    let data = noise(1000, common::seed_for("stalled patch"));
    let location = api.start_upload(repo).await;

    // A PATCH promising 1000 bytes that sends 100, then nothing (the socket stays open).
    let mut stream = begin_patch(&server, &location, 1000, &data[..100], "the stalled PATCH").await;
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
    api.finish_upload(repo, &location, &data, &[]).await;
    api.assert_blob_bytes(repo, &digest_of(&data), &data).await;
}
