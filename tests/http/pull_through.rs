//! The pull-through cache against a real upstream: Distribution (`docker-registry`)
//! behind Basic authentication, its access log counting what reaches it.
//!
//! - A first pull is fetched and served; the image lands here whole; a second pull sends
//!   no request upstream; with upstream stopped, the cache still serves (past the TTL
//!   too); a tag moved upstream shows only once the TTL has passed.
//! - Concurrent misses of one blob fetch it once, and every reader gets every byte.
//! - A tampered blob upstream is never stored, and the response carrying it ends in an
//!   error; the image stays out.
//! - A caller who may read but not `ecr:BatchImportUpstreamImage` gets what is cached
//!   and nothing more.
//! - The example server with a `"pull_through"` rule serves skopeo, then keeps serving
//!   with upstream gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use wharf::access::{Context, Identity, Policy, Principal};
use wharf::remote::{Credentials, RemoteRegistry};
use wharf::testing::ManualClock;
use wharf::{
    CallerRegistry, CopyOptions, Digest, ErrorKind, MemoryMetaStore, PullThroughRule,
    PullThroughSettings, Reference, Registry, ResourceAccount,
};

use super::remote_copy::{Distribution, distribution, distribution_logged};
use crate::common::images::Image;
use crate::common::{noise, repo, seed_for};

const USER: (&str, &str) = ("cache", "the cache's password");
const TTL: Duration = Duration::from_secs(3600);

/// Distribution with its storage, its access log and a client for it.
struct Upstream {
    dir: tempfile::TempDir,
    peer: Option<Distribution>,
    port: u16,
    log: PathBuf,
    remote: Arc<RemoteRegistry>,
}

impl Upstream {
    fn start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        // Learn a free port from a first start, then run with the log on that port.
        let port = distribution(dir.path(), USER)?.port;
        let log = dir.path().join("access.log");
        let peer = distribution_logged(dir.path(), USER, port, &log);
        let remote = Arc::new(RemoteRegistry::new(&peer.url, credentials(), None).unwrap());
        Some(Upstream {
            dir,
            peer: Some(peer),
            port,
            log,
            remote,
        })
    }

    fn stop(&mut self) {
        self.peer = None;
    }

    fn restart(&mut self) {
        self.peer = Some(distribution_logged(
            self.dir.path(),
            USER,
            self.port,
            &self.log,
        ));
    }

    /// The requests upstream has answered so far.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(" /v2/"))
            .map(str::to_owned)
            .collect()
    }

    /// Pushes `image` to `name:tag` upstream (through a scratch registry).
    async fn publish(&self, name: &str, tag: &str, image: &Image) -> Digest {
        let scratch = Registry::in_memory();
        let local = repo("scratch/image");
        let reference: Reference = tag.parse().unwrap();
        let digest = image.push(&scratch, &local, &reference).await.unwrap();
        scratch
            .push_remote(
                &local,
                &reference,
                &self.remote,
                name,
                &CopyOptions::default(),
            )
            .await
            .unwrap();
        digest
    }

    /// The file Distribution keeps `digest`'s bytes in.
    fn blob_file(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

fn credentials() -> Option<Credentials> {
    Some(Credentials {
        user: USER.0.into(),
        password: USER.1.into(),
    })
}

/// A registry caching `hub/…` from `upstream`, on `clock`.
fn cache(upstream: &Upstream, clock: Arc<ManualClock>) -> Registry {
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .clock(clock)
        .resource_account(ResourceAccount {
            region: "eu-west-1".into(),
            account: ACCOUNT.into(),
        })
        .build()
        .unwrap();
    let rule = PullThroughRule {
        tag_ttl: TTL,
        ..PullThroughRule::new("hub/", upstream.remote.clone())
    };
    registry
        .set_pull_through(PullThroughSettings::new(vec![rule]))
        .unwrap();
    registry
}

async fn manifest(view: &CallerRegistry, name: &str, reference: &str) -> wharf::StoredManifest {
    view.get_manifest(&repo(name), &reference.parse().unwrap())
        .await
        .unwrap()
}

async fn blob(view: &CallerRegistry, name: &str, digest: &Digest) -> wharf::Result<Vec<u8>> {
    let read = view.read_blob(&repo(name), digest, None).await?;
    let chunks: Vec<Bytes> = read.stream.try_collect().await?;
    Ok(chunks.concat())
}

/// Pulls `image` as a client would: the manifest by tag, then every blob.
async fn pull(view: &CallerRegistry, name: &str, tag: &str, image: &Image) -> Digest {
    let got = manifest(view, name, tag).await;
    assert_eq!(got.raw, image.manifest(), "{name}:{tag}");
    for data in image.layers.iter().chain([&image.config]) {
        let bytes = blob(view, name, &image.digest(data)).await.unwrap();
        assert_eq!(bytes, data.as_ref(), "a blob of {name}:{tag}");
    }
    got.digest
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_once_then_serves_locally_and_while_upstream_is_down_and_refreshes_after_the_ttl() {
    let Some(mut upstream) = Upstream::start() else {
        return;
    };
    let clock = Arc::new(ManualClock::starting_now());
    let registry = cache(&upstream, clock.clone());
    let view = registry.as_trusted();
    let app = repo("hub/team/app");
    let v1 = Image::seeded("upstream v1");
    let v1_digest = upstream.publish("team/app", "v1", &v1).await;

    // The first pull is fetched upstream and served as it comes.
    assert_eq!(pull(&view, "hub/team/app", "v1", &v1).await, v1_digest);
    registry.pull_through_settled().await;
    // It landed whole, as a push would: tag, manifest, blobs.
    let local = registry
        .get_manifest(&app, &"v1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(local.digest, v1_digest);
    for data in v1.layers.iter().chain([&v1.config]) {
        registry.stat_blob(&app, &v1.digest(data)).await.unwrap();
    }

    // The second pull asks upstream nothing.
    let before = upstream.requests();
    assert!(!before.is_empty(), "the access log records the first pull");
    pull(&view, "hub/team/app", "v1", &v1).await;
    pull(&view, "hub/team/app", v1_digest.as_str(), &v1).await;
    assert_eq!(
        upstream.requests(),
        before,
        "a cached pull reached upstream"
    );

    // Upstream down, even past the TTL: the cache serves what it has.
    upstream.stop();
    clock.advance(TTL * 2);
    assert_eq!(pull(&view, "hub/team/app", "v1", &v1).await, v1_digest);

    // Upstream back with the tag moved: the stale tag asks, and gets the new image.
    upstream.restart();
    let v2 = Image::seeded("upstream v2");
    let v2_digest = upstream.publish("team/app", "v1", &v2).await;
    assert_eq!(pull(&view, "hub/team/app", "v1", &v2).await, v2_digest);
    registry.pull_through_settled().await;
    assert_eq!(
        registry
            .get_manifest(&app, &"v1".parse().unwrap())
            .await
            .unwrap()
            .digest,
        v2_digest
    );

    // Moved again upstream: within the TTL the cache keeps v2 and asks nothing...
    let v3 = Image::seeded("upstream v3");
    let v3_digest = upstream.publish("team/app", "v1", &v3).await;
    let before = upstream.requests();
    assert_eq!(pull(&view, "hub/team/app", "v1", &v2).await, v2_digest);
    assert_eq!(upstream.requests(), before);
    // ...and after it, follows.
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(pull(&view, "hub/team/app", "v1", &v3).await, v3_digest);
    registry.pull_through_settled().await;

    // A name upstream does not have is unknown, not an error of the cache.
    let missing = view
        .get_manifest(&repo("hub/team/none"), &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::ManifestUnknown, "{missing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_of_one_blob_fetch_it_once() {
    let Some(upstream) = Upstream::start() else {
        return;
    };
    let registry = cache(&upstream, Arc::new(ManualClock::starting_now()));
    let layer = Bytes::from(noise(12 << 20, seed_for("pull-through big layer")));
    let image = Image::of(&Bytes::from_static(b"{\"big\":true}"), &[&layer]);
    upstream.publish("team/big", "v1", &image).await;
    let digest = image.digest(&layer);

    // A client that takes the first bytes and stalls holds back no one.
    let stalled = registry
        .as_trusted()
        .read_blob(&repo("hub/team/big"), &digest, None)
        .await
        .unwrap();
    let mut stalled = stalled.stream;
    let first = stalled.try_next().await.unwrap().unwrap();
    assert_eq!(first, layer[..first.len()]);

    let readers: Vec<_> = (0..24)
        .map(|i| {
            let view = registry.as_trusted();
            let digest = digest.clone();
            tokio::spawn(async move {
                let name = repo("hub/team/big");
                // Some read a range, starting while the fetch runs.
                let range = (i % 3 == 0).then_some(1000..(5 << 20));
                let read = view.read_blob(&name, &digest, range).await.unwrap();
                let chunks: Vec<Bytes> = read.stream.try_collect().await.unwrap();
                (read.range, chunks.concat())
            })
        })
        .collect();
    for reader in readers {
        let (range, bytes) = reader.await.unwrap();
        assert_eq!(
            bytes,
            &layer[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    // The blob was stored while the stalled client still holds its response.
    crate::common::http::within(
        Duration::from_secs(60),
        "the fetch to settle",
        registry.pull_through_settled(),
    )
    .await;
    drop(stalled);
    let blob_path = format!("/v2/team/big/blobs/{digest}");
    let fetched = upstream
        .requests()
        .iter()
        .filter(|line| line.contains(&format!("\"GET {blob_path} ")) && line.contains("\" 200 "))
        .count();
    assert_eq!(fetched, 1, "{:#?}", upstream.requests());
    registry
        .stat_blob(&repo("hub/team/big"), &digest)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_blob_upstream_is_never_stored_and_its_response_fails() {
    let Some(upstream) = Upstream::start() else {
        return;
    };
    let registry = cache(&upstream, Arc::new(ManualClock::starting_now()));
    let view = registry.as_trusted();
    // Large, and tampered near its end, so the read below begins while the fetch runs.
    let layer = Bytes::from(noise(16 << 20, seed_for("pull-through tampered")));
    let image = Image::of(&Bytes::from_static(b"{\"tampered\":true}"), &[&layer]);
    upstream.publish("team/bad", "v1", &image).await;
    let digest = image.digest(&layer);
    let file = upstream.blob_file(&digest);
    let mut bytes = std::fs::read(&file).unwrap();
    let near_end = bytes.len() - 1000;
    bytes[near_end] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();

    // The response ends in the error before its last byte: a client never holds every
    // byte of a blob that failed its digest.
    // (A fetch that failed before the read began fails the read at once.)
    let mut received = 0;
    let failed = match view.read_blob(&repo("hub/team/bad"), &digest, None).await {
        Err(e) => e,
        Ok(read) => {
            assert_eq!(read.info.size, layer.len() as u64);
            let mut stream = read.stream;
            loop {
                match stream.next().await {
                    Some(Ok(chunk)) => received += chunk.len(),
                    Some(Err(e)) => break e,
                    None => panic!("the tampered blob's response ended without an error"),
                }
            }
        }
    };
    assert_eq!(failed.kind(), ErrorKind::DigestInvalid, "{failed}");
    assert!(
        received < layer.len(),
        "all {received} bytes were handed out"
    );
    eprintln!(
        "{received} of {} bytes handed out before the error",
        layer.len()
    );
    let name = repo("hub/team/bad");
    let unknown = registry.stat_blob(&name, &digest).await.unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::BlobUnknown, "{unknown}");

    // The manifest is served from upstream (it is intact), but its import fails on the
    // layer: nothing of the image becomes visible.
    manifest(&view, "hub/team/bad", "v1").await;
    registry.pull_through_settled().await;
    let absent = registry
        .get_manifest(&name, &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            absent.kind(),
            ErrorKind::ManifestUnknown | ErrorKind::NameUnknown
        ),
        "{absent}"
    );
    assert!(registry.stat_blob(&name, &digest).await.is_err());
}

const ACCOUNT: &str = "123456789012";

fn caller(registry: &Registry, name: &str, actions: &str) -> CallerRegistry {
    let policy = Policy::identity(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": [{actions}], "Resource": "*"}}]}}"#
    ))
    .unwrap();
    let principal = Principal::Identity(Identity::user(ACCOUNT, name).with_policy(policy));
    registry.as_caller(principal, Context::at(SystemTime::now()))
}

const READ: &str =
    r#""ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability""#;

#[tokio::test(flavor = "multi_thread")]
async fn importing_needs_its_own_permission_reading_the_cache_does_not() {
    let Some(upstream) = Upstream::start() else {
        return;
    };
    let registry = cache(&upstream, Arc::new(ManualClock::starting_now()));
    let image = Image::seeded("import permission");
    upstream.publish("team/gated", "v1", &image).await;
    let published = upstream.requests().len();

    let reader = caller(&registry, "reader", READ);
    let refused = reader
        .get_manifest(&repo("hub/team/gated"), &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Denied, "{refused}");
    let layer = image.digest(&image.layers[0]);
    let refused = blob(&reader, "hub/team/gated", &layer).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::BlobUnknown, "{refused}");
    // A HEAD promises nothing a GET would refuse.
    let refused = reader
        .stat_blob(&repo("hub/team/gated"), &layer)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::BlobUnknown, "{refused}");
    registry.pull_through_settled().await;
    // The reader made the cache neither ask upstream nor create anything.
    let asked = upstream.requests();
    assert!(
        asked[published..].iter().all(|l| !l.contains("team/gated")),
        "{asked:#?}"
    );
    let none = registry
        .repository(&repo("hub/team/gated"))
        .await
        .unwrap_err();
    assert_eq!(none.kind(), ErrorKind::NameUnknown, "{none}");

    let importer = caller(
        &registry,
        "importer",
        &format!("{READ}, \"ecr:BatchImportUpstreamImage\""),
    );
    pull(&importer, "hub/team/gated", "v1", &image).await;
    registry.pull_through_settled().await;
    // Cached now: the reader gets it.
    pull(&reader, "hub/team/gated", "v1", &image).await;

    // Upstream refusing the cache's own credentials is the cache's failure (a server
    // error), never the caller's (a 401 would have clients re-enter their password).
    let url = &upstream.peer.as_ref().unwrap().url;
    let wrong = Credentials {
        user: USER.0.into(),
        password: "not the password".into(),
    };
    let locked_out = Registry::in_memory();
    let rule = PullThroughRule::new(
        "hub/",
        Arc::new(RemoteRegistry::new(url, Some(wrong), None).unwrap()),
    );
    locked_out
        .set_pull_through(PullThroughSettings::new(vec![rule]))
        .unwrap();
    let view = locked_out.as_trusted();
    let failed = view
        .get_manifest(&repo("hub/team/gated"), &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::Storage, "{failed}");
    let failed = blob(&view, "hub/team/gated", &layer).await.unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::Storage, "{failed}");
    let none = locked_out
        .repository(&repo("hub/team/gated"))
        .await
        .unwrap_err();
    assert_eq!(none.kind(), ErrorKind::NameUnknown, "{none}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_server_caches_for_skopeo_and_serves_with_upstream_gone() {
    if !super::skopeo::have_skopeo() {
        return;
    }
    let Some(mut upstream) = Upstream::start() else {
        return;
    };
    let image = Image::of(
        &Bytes::from_static(b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"),
        &[&Bytes::from(noise(2 << 20, seed_for("pull-through skopeo")))],
    );
    let digest = upstream.publish("library/tool", "1.0", &image).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let rule = serde_json::json!({"pull_through": [{
        "prefix": "mirror/", "url": format!("http://127.0.0.1:{}", upstream.port),
        "upstream_prefix": "library/", "tag_ttl": "1h",
        "user": USER.0, "password_env": "UPSTREAM_PASSWORD"
    }]});
    std::fs::write(&config, rule.to_string()).unwrap();
    let password = format!("UPSTREAM_PASSWORD={}", USER.1);
    let server = crate::common::server::RegistryServer::spawn_under(
        &["env", &password],
        &dir.path().join("data"),
        vec!["--config".into(), config.display().to_string()],
    )
    .unwrap();

    let source = format!("docker://{}/mirror/tool:1.0", server.host());
    let first = dir.path().join("first");
    copy_out(&source, &first);
    assert_eq!(layout_manifest(&first), image.manifest());

    // Once the import has moved the tag here, upstream can go.
    wait_for_tag(&server, "mirror/tool", "1.0").await;
    upstream.stop();
    let second = dir.path().join("second");
    copy_out(&source, &second);
    assert_eq!(layout_manifest(&second), image.manifest());
    let by_digest = format!("docker://{}/mirror/tool@{digest}", server.host());
    copy_out(&by_digest, &dir.path().join("third"));
}

/// `skopeo copy` from the server into an OCI layout at `dir`.
fn copy_out(source: &str, dir: &Path) {
    let target = format!("oci:{}:pulled", dir.display());
    let output = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            source,
            &target,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo copy {source}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The manifest the layout at `dir` holds (its only one).
fn layout_manifest(dir: &Path) -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest: Digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::read(dir.join("blobs/sha256").join(digest.hex())).unwrap()
}

/// Waits until the server lists `tag` in `name` (the tag list is what is held there).
async fn wait_for_tag(server: &crate::common::server::RegistryServer, name: &str, tag: &str) {
    let client = reqwest::Client::new();
    let url = format!("{}/v2/{name}/tags/list", server.url());
    for _ in 0..600 {
        if let Ok(reply) = client.get(&url).send().await
            && let Ok(text) = reply.text().await
            && text.contains(&format!("\"{tag}\""))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name}:{tag} never landed in the cache");
}

#[tokio::test]
async fn rules_are_checked_and_the_longest_prefix_wins() {
    let remote = Arc::new(RemoteRegistry::new("http://127.0.0.1:1", None, None).unwrap());
    let registry = Registry::in_memory();
    for (prefix, upstream_prefix) in [("hub", ""), ("/hub/", ""), ("Hub/", ""), ("hub/", "lib")] {
        let rule = PullThroughRule {
            upstream_prefix: upstream_prefix.into(),
            ..PullThroughRule::new(prefix, remote.clone())
        };
        let refused = registry
            .set_pull_through(PullThroughSettings::new(vec![rule]))
            .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidArgument, "{prefix:?}");
    }
    let rules = vec![
        PullThroughRule::new("hub/", remote.clone()),
        PullThroughRule {
            upstream_prefix: "library/".into(),
            ..PullThroughRule::new("hub/library/", remote.clone())
        },
    ];
    registry
        .set_pull_through(PullThroughSettings::new(rules))
        .unwrap();
    let rule = registry
        .pull_through_rule(&repo("hub/library/alpine"))
        .unwrap();
    assert_eq!(rule.prefix, "hub/library/");
    assert_eq!(
        registry.pull_through_rule(&repo("hub/x")).unwrap().prefix,
        "hub/"
    );
    assert!(registry.pull_through_rule(&repo("hubx/y")).is_none());
    // Outside every rule, reads are the registry's own: nothing goes upstream.
    let unknown = registry
        .as_trusted()
        .get_manifest(&repo("team/app"), &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(
        unknown.kind(),
        ErrorKind::ManifestUnknown | ErrorKind::NameUnknown
    ));
}
