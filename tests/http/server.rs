//! The registry server (`src/bin/wharf-registry`) as a process, on local storage: a graceful
//! stop (SIGTERM or SIGINT) exits cleanly and leaves an open upload for the next process
//! on the same directory to resume; bad flags end in a message naming them and a non-zero
//! exit, never a panic; a replica whose key file holds another key under a name the
//! store knows refuses to start; `--help` lists the flags; and a 2 GiB layer, compressed and
//! encrypted at rest, streams in through one PATCH and back out while the server's memory
//! stays bounded.

use crate::common;

use std::pin::pin;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::Method;
use sha2::Digest as _;

use common::http::{Api, body, digest_of};
use common::noise;
use common::server::{RegistryServer, Storage, registry_binary};

const MIB: usize = 1 << 20;

/// The 2 GiB layer: `LAYER_CHUNKS` chunks of `MIB` bytes.
const LAYER_CHUNKS: u64 = 2048;
const LAYER_SIZE: u64 = LAYER_CHUNKS * MIB as u64;

/// The most memory the server may touch while the 2 GiB layer goes through it.
const PEAK_RSS_LIMIT_KIB: u64 = 128 * 1024;

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Chunk `index` of the 2 GiB layer: 1 MiB of noise (nothing for zstd to find), the same
/// every time it is generated, so the layer is never held anywhere.
fn layer_chunk(index: u64) -> Vec<u8> {
    noise(MIB, index)
}

/// What one run of the registry binary printed, and how it ended.
struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self, args: &[String]) -> String {
        format!(
            "registry {} ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.status,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs the registry binary with `args` to its end (killed, and failing the test, if it
/// is still running after a minute).
async fn run_registry(args: &[String]) -> Run {
    let mut command = tokio::process::Command::new(registry_binary());
    command
        .args(args)
        // Settings from the environment would stand in for missing flags.
        .env_remove("WHARF_REGISTRY_S3_BUCKET")
        .env_remove("WHARF_REGISTRY_LISTEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("registry {args:?} still runs after 60 s"))
        .expect("run the registry server");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_leaves_open_uploads_resumable_by_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut first = tokio::task::block_in_place(|| RegistryServer::spawn(&root, Vec::new()))
        .expect("the server starts");
    let repo = "resume/team/app";
    let data = noise(5 * MIB + 12_345, 1);
    let digest = digest_of(&data);
    let head = 3 * MIB;
    let received = format!("0-{}", head - 1);

    // 3 MiB into an upload, then SIGTERM.
    let api = Api::new(&first);
    let location = api.start_upload(repo).await;
    let location = api.patch(&location, 0, &data[..head]).await;
    drop(api);
    let status = tokio::task::block_in_place(|| first.stop_with("TERM"));
    assert!(
        status.success(),
        "SIGTERM: exit {status}\n{}",
        first.logs().join("\n")
    );

    // The next process on the same directory has the 3 MiB, and takes the rest.
    let second = tokio::task::block_in_place(|| RegistryServer::spawn(&root, Vec::new()))
        .expect("the server starts again");
    let api = Api::new(&second);
    let location = api.assert_session(&location, &received).await;
    let location = api.patch(&location, head, &data[head..]).await;
    api.close_upload(repo, &location, &digest, None).await;

    api.assert_blob_bytes(repo, &digest, &data).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_the_server_cleanly() {
    let mut server = RegistryServer::start(Storage::Local).expect("local storage");
    let repo = "stop/team/app";
    let data = noise(100_000, 2);
    let digest = digest_of(&data);
    let api = Api::new(&server);
    let reply = api
        .send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[],
            body(&data),
        )
        .await
        .check(201);
    reply.header_is("docker-content-digest", &digest);
    drop(api);

    let status = tokio::task::block_in_place(|| server.stop_with("INT"));
    assert!(
        status.success(),
        "SIGINT: exit {status}\n{}",
        server.logs().join("\n")
    );

    // What it stored is there for the next process.
    let root = server.root().to_owned();
    let next = tokio::task::block_in_place(|| RegistryServer::spawn(&root, Vec::new()))
        .expect("the server starts again");
    Api::new(&next)
        .assert_blob_bytes(repo, &digest, &data)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_are_clear_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let root = root.to_str().expect("a UTF-8 temporary path");
    // The flags, then what the error must name. `--listen` comes after the valid one, as
    // the later flag wins.
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--listen", "not-an-address"],
            &["--listen", "not-an-address"],
        ),
        (
            &["--compression", "sometimes"],
            &["--compression", "sometimes"],
        ),
        (&["--metadata", "s3"], &["--metadata", "bucket"]),
        (&["--no-such-flag"], &["--no-such-flag"]),
        (&["--upload-expiry", "soon"], &["--upload-expiry", "soon"]),
    ];
    for (flags, named) in cases {
        let args: Vec<String> = ["--root", root, "--listen", "127.0.0.1:0"]
            .iter()
            .chain(flags)
            .map(|arg| (*arg).to_owned())
            .collect();
        let run = run_registry(&args).await;
        let said = run.describe(&args);
        assert!(
            matches!(run.status.code(), Some(code) if code != 0),
            "a non-zero exit: {said}"
        );
        for word in named {
            assert!(run.stderr.contains(word), "the error names {word}: {said}");
        }
        assert!(!run.stderr.contains("panicked"), "{said}");
        assert!(!run.stdout.contains("panicked"), "{said}");
        assert!(!run.stderr.contains("listening on"), "{said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_with_another_key_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut first = tokio::task::block_in_place(|| RegistryServer::spawn(&root, Vec::new()))
        .expect("the server starts");
    let repo = "keys/app";
    let data = noise(100_000, 3);
    let digest = digest_of(&data);
    let api = Api::new(&first);
    api.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[],
        body(&data),
    )
    .await
    .check(201);
    drop(api);
    assert!(tokio::task::block_in_place(|| first.stop_with("TERM")).success());

    // Another key file: a fresh "default" key under the same name.
    let key_file = root.join("keys.json");
    let kept = dir.path().join("keys.json.kept");
    std::fs::rename(&key_file, &kept).unwrap();
    let args: Vec<String> = ["--root", root.to_str().unwrap(), "--listen", "127.0.0.1:0"]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
    let run = run_registry(&args).await;
    let said = run.describe(&args);
    assert!(
        matches!(run.status.code(), Some(code) if code != 0),
        "a non-zero exit: {said}"
    );
    for word in ["\"default\"", "fingerprint", "keys.json"] {
        assert!(run.stderr.contains(word), "the error names {word}: {said}");
    }
    assert_eq!(run.stderr.matches("fingerprint ").count(), 2, "{said}");
    assert!(!run.stderr.contains("listening on"), "{said}");

    // With the store's key file back it starts and serves what it stored.
    std::fs::rename(&kept, &key_file).unwrap();
    let again = tokio::task::block_in_place(|| RegistryServer::spawn(&root, Vec::new()))
        .expect("the server starts with its own keys");
    Api::new(&again)
        .assert_blob_bytes(repo, &digest, &data)
        .await;
}

/// With compression and encryption off, `--framing` decides how a pushed blob is kept:
/// in checksummed frames that name it (the default), or exactly as received. Either way
/// it reads back whole and by range.
#[tokio::test(flavor = "multi_thread")]
async fn framing_decides_how_plain_blobs_are_kept() {
    let data = layer_chunk(3);
    let digest = digest_of(&data);
    let hex = digest.trim_start_matches("sha256:");
    for framing in ["on", "off"] {
        let flags = [
            "--compression",
            "off",
            "--encryption",
            "off",
            "--framing",
            framing,
        ];
        let server = RegistryServer::start_with(Storage::Local, &flags).expect("a local server");
        let api = Api::new(&server);
        let location = api.start_upload("framing/app").await;
        let location = api.patch(&location, 0, &data).await;
        api.finish_upload("framing/app", &location, &data, &[])
            .await;
        let dir = server
            .root()
            .join(format!("blobs/blobs/sha256/{}", &hex[..2]));
        let stored = |name: String| std::fs::read(dir.join(name)).ok();
        match framing {
            "on" => {
                let object = stored(format!("{hex}.whrf")).expect("a framed object");
                let header = wharf::codec::Header::decode(&object).unwrap();
                assert_eq!(header.sealing, wharf::codec::Sealing::NamedChecksums);
                assert_eq!(stored(hex.to_owned()), None, "no raw copy");
            }
            _ => {
                assert_eq!(stored(hex.to_owned()), Some(data.clone()), "as received");
                assert_eq!(stored(format!("{hex}.whrf")), None, "no framed copy");
            }
        }
        api.assert_blob("framing/app", &data).await;
        let part = api
            .send(
                Method::GET,
                &format!("/v2/framing/app/blobs/{digest}"),
                &[("range", "bytes=10-19")],
                None,
            )
            .await
            .check(206);
        assert_eq!(part.body, data[10..20], "framing {framing}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn help_lists_the_flags() {
    let args = ["--help".to_owned()];
    let run = run_registry(&args).await;
    let said = run.describe(&args);
    assert!(run.status.success(), "{said}");
    let text = format!("{}{}", run.stdout, run.stderr);
    for flag in ["--root", "--listen", "--s3-bucket"] {
        assert!(text.contains(flag), "usage lists {flag}: {said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gib_layer_streams_through_bounded_memory() {
    // Default settings: compression and encryption on.
    let server = RegistryServer::start(Storage::Local).expect("local storage");
    let api = Api::new(&server);
    let repo = "big/layer";

    // The digest first, from the generator the upload runs again.
    let clock = Instant::now();
    let mut hasher = sha2::Sha256::new();
    for index in 0..LAYER_CHUNKS {
        hasher.update(layer_chunk(index));
    }
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    eprintln!("generated and hashed 2 GiB in {:.1?}", clock.elapsed());

    // One PATCH whose body is generated as it is sent, then the PUT that closes it.
    let clock = Instant::now();
    let location = api.start_upload(repo).await;
    let chunks = futures::stream::iter(
        (0..LAYER_CHUNKS).map(|index| Ok::<_, std::io::Error>(Bytes::from(layer_chunk(index)))),
    );
    let patched = api
        .send(
            Method::PATCH,
            &location,
            &[],
            Some(reqwest::Body::wrap_stream(chunks)),
        )
        .await
        .check(202);
    patched.header_is("range", &format!("0-{}", LAYER_SIZE - 1));
    eprintln!("PATCH of 2 GiB took {:.1?}", clock.elapsed());
    let clock = Instant::now();
    api.close_upload(repo, patched.must("location"), &digest, None)
        .await;
    eprintln!("PUT closing it took {:.1?}", clock.elapsed());

    // Read back as a stream, hashed as it arrives.
    let clock = Instant::now();
    let path = format!("/v2/{repo}/blobs/{digest}");
    let response = api
        .client()
        .get(api.url(&path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    let mut pieces = pin!(response.bytes_stream());
    let mut hasher = sha2::Sha256::new();
    let mut length = 0u64;
    while let Some(piece) = pieces.next().await {
        let piece = piece.unwrap_or_else(|e| panic!("GET {path} after {length} bytes: {e}"));
        length += piece.len() as u64;
        hasher.update(&piece);
    }
    assert_eq!(length, LAYER_SIZE, "GET {path}: length");
    assert_eq!(
        format!("sha256:{}", hex(&hasher.finalize())),
        digest,
        "GET {path}: digest"
    );
    eprintln!("GET of 2 GiB took {:.1?}", clock.elapsed());

    // 1 KiB near the end, across the last two chunks.
    let first = LAYER_SIZE - MIB as u64 - 512;
    let last = first + 1023;
    let mut expected = layer_chunk(LAYER_CHUNKS - 2)[MIB - 512..].to_vec();
    expected.extend_from_slice(&layer_chunk(LAYER_CHUNKS - 1)[..512]);
    let range = format!("bytes={first}-{last}");
    let reply = api
        .send(Method::GET, &path, &[("range", range.as_str())], None)
        .await
        .check(206);
    reply.header_is(
        "content-range",
        &format!("bytes {first}-{last}/{LAYER_SIZE}"),
    );
    assert!(
        reply.body[..] == expected[..],
        "{} {range}: not the bytes pushed ({} bytes back)",
        reply.request,
        reply.body.len()
    );

    let peak = server.peak_rss_kib();
    eprintln!("server peak RSS: {} MiB", peak / 1024);
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "server peak RSS {peak} KiB, over {PEAK_RSS_LIMIT_KIB} KiB"
    );
}
