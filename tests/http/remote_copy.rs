//! Copying images between wharf and remote registries (feature `remote`): to and from the
//! example server with token authentication (Bearer challenge, `/token`), and to and
//! from Distribution (`docker-registry`) behind Basic authentication; one platform of an
//! index; a repeated copy moves no blob twice; refused credentials are errors.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wharf::remote::{Credentials, RemoteRegistry};
use wharf::{CopyOptions, ErrorKind, Platform, Reference, Registry, RepoName};

use super::auth::{ALICE, BOB, start};
use crate::common::images::{Image, index};

fn credentials((user, password): (&str, &str)) -> Option<Credentials> {
    Some(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn tag(name: &str) -> Reference {
    name.parse().unwrap()
}

/// A local registry with `v1` (an image) and `multi` (an index over amd64 and arm64).
async fn local() -> Registry {
    let registry = Registry::in_memory();
    let app = repo("local/app");
    Image::seeded("remote v1")
        .push(&registry, &app, &tag("v1"))
        .await
        .unwrap();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let image = Image::seeded(arch);
        let digest = image
            .push(
                &registry,
                &app,
                &Reference::Digest(image.digest(&image.manifest())),
            )
            .await
            .unwrap();
        children.push((digest, image.manifest().len()));
    }
    let mut list: serde_json::Value = serde_json::from_slice(&index(&children)).unwrap();
    for (child, arch) in list["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(["amd64", "arm64"])
    {
        child["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
    }
    registry
        .push_manifest(&app, &tag("multi"), Bytes::from(list.to_string()), None)
        .await
        .unwrap();
    registry
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_through_token_authentication_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let source = local().await;
    let app = repo("local/app");

    // alice pushes to team/app through the Bearer challenge and /token.
    let as_alice = RemoteRegistry::new(&server.url(), credentials(ALICE), None).unwrap();
    let pushed = source
        .push_remote(
            &app,
            &tag("multi"),
            &as_alice,
            "team/app",
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.manifests, 3);
    assert_eq!(pushed.blobs, 4);
    // Again: every blob is already there.
    let again = source
        .push_remote(
            &app,
            &tag("multi"),
            &as_alice,
            "team/app",
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!((again.blobs, again.blobs_present), (0, 4));

    // bob (pull only) copies it back, whole and as one platform.
    let as_bob = RemoteRegistry::new(&server.url(), credentials(BOB), None).unwrap();
    let copy = Registry::in_memory();
    let target = repo("mirror/app");
    let pulled = copy
        .pull_remote(
            &as_bob,
            "team/app",
            &tag("multi"),
            &target,
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    let ours = source.get_manifest(&app, &tag("multi")).await.unwrap();
    let theirs = copy.get_manifest(&target, &tag("multi")).await.unwrap();
    assert_eq!(ours.raw, theirs.raw);

    let arm = Registry::in_memory();
    let options = CopyOptions {
        platform: Some(Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
            features: Vec::new(),
        }),
        ..CopyOptions::default()
    };
    let one = arm
        .pull_remote(&as_bob, "team/app", &tag("multi"), &target, &options)
        .await
        .unwrap();
    let arm64 = Image::seeded("arm64");
    assert_eq!(one.digest, arm64.digest(&arm64.manifest()));
    assert_eq!(one.manifests, 1);

    // bob may not push; a wrong password gets no token.
    let denied = copy
        .push_remote(
            &target,
            &tag("multi"),
            &as_bob,
            "team/other",
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(denied.kind(), ErrorKind::Denied | ErrorKind::Unauthorized),
        "{denied}"
    );
    let wrong = RemoteRegistry::new(&server.url(), credentials(("alice", "not it")), None).unwrap();
    let refused = copy
        .pull_remote(
            &wrong,
            "team/app",
            &tag("multi"),
            &repo("x/y"),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unauthorized, "{refused}");
}

/// Distribution with Basic authentication (deletes enabled) on a free port.
pub(super) struct Distribution {
    child: Child,
    pub(super) url: String,
    pub(super) port: u16,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn distribution(dir: &Path, user: (&str, &str)) -> Option<Distribution> {
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Distribution tests: scripts/test installs docker-registry"
        );
        eprintln!("docker-registry not installed: skipping");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Some(distribution_on(dir, user, port))
}

/// Distribution on `port`, its storage in `dir` (so a restart finds what it held).
pub(super) fn distribution_on(dir: &Path, user: (&str, &str), port: u16) -> Distribution {
    launch(dir, user, port, None)
}

/// Distribution on `port` (storage in `dir`) writing every request it answers to
/// `access_log`, appended across restarts.
pub(super) fn distribution_logged(
    dir: &Path,
    user: (&str, &str),
    port: u16,
    access_log: &Path,
) -> Distribution {
    launch(dir, user, port, Some(access_log))
}

fn launch(dir: &Path, user: (&str, &str), port: u16, access_log: Option<&Path>) -> Distribution {
    let hash = bcrypt::hash(user.1, 4).unwrap().replacen("$2b$", "$2y$", 1);
    std::fs::write(dir.join("htpasswd"), format!("{}:{hash}\n", user.0)).unwrap();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
            access_log.is_none(),
            dir.join("storage").display(),
            dir.join("htpasswd").display()
        ),
    )
    .unwrap();
    let output = || match access_log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        ),
        None => Stdio::null(),
    };
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Distribution {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_to_and_from_distribution_with_basic_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let Some(peer) = distribution(dir.path(), ("ci", "ci's password")) else {
        return;
    };
    let source = local().await;
    let app = repo("local/app");
    let remote =
        RemoteRegistry::new(&peer.url, credentials(("ci", "ci's password")), None).unwrap();
    for reference in ["v1", "multi"] {
        source
            .push_remote(
                &app,
                &tag(reference),
                &remote,
                "mirror/app",
                &CopyOptions::default(),
            )
            .await
            .unwrap();
    }
    let copy = Registry::in_memory();
    let target = repo("back/app");
    for reference in ["v1", "multi"] {
        copy.pull_remote(
            &remote,
            "mirror/app",
            &tag(reference),
            &target,
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        let ours = source.get_manifest(&app, &tag(reference)).await.unwrap();
        let back = copy.get_manifest(&target, &tag(reference)).await.unwrap();
        assert_eq!(ours.raw, back.raw, "{reference}");
    }
    // Without credentials: refused, and said so.
    let anonymous = RemoteRegistry::new(&peer.url, None, None).unwrap();
    let error = copy
        .pull_remote(
            &anonymous,
            "mirror/app",
            &tag("v1"),
            &repo("x/y"),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unauthorized, "{error}");
    // A tag that is not there.
    let missing = copy
        .pull_remote(
            &remote,
            "mirror/app",
            &tag("nope"),
            &repo("x/y"),
            &CopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::ManifestUnknown, "{missing}");
}
