//! `docker save` archives: wharf's exports round-trip and are read by skopeo; skopeo's
//! archives import with their configs and layers unchanged; a tampered or incomplete
//! archive is refused with nothing made visible.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use wharf::transfer::sink::TarSink;
use wharf::transfer::source::ArchiveSource;
use wharf::{
    Algorithm, Digest, ErrorKind, ExportOptions, ImportOptions, Reference, Registry, RepoName, Tag,
};

use crate::common::layers::TarBuilder;

fn tag(name: &str) -> Tag {
    name.parse().unwrap()
}

/// An image whose config names its layers' diff ids, as `docker save` needs: two
/// uncompressed tar layers.
struct DockerImage {
    config: Bytes,
    layers: Vec<Bytes>,
}

impl DockerImage {
    fn new(seed: &str) -> Self {
        let layers: Vec<Bytes> = (0..2)
            .map(|i| {
                Bytes::from(
                    TarBuilder::new()
                        .file(
                            &format!("etc/{seed}-{i}"),
                            format!("{seed} layer {i}\n").as_bytes(),
                            0o644,
                        )
                        .finish(),
                )
            })
            .collect();
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| Digest::of(Algorithm::Sha256, l).to_string())
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        DockerImage {
            config: Bytes::from(config.to_string()),
            layers,
        }
    }

    async fn push(&self, registry: &Registry, repo: &RepoName, tag: &str) -> Digest {
        let descriptor = |media: &str, data: &Bytes| serde_json::json!({"mediaType": media, "size": data.len(), "digest": Digest::of(Algorithm::Sha256, data).to_string()});
        for blob in self.layers.iter().chain([&self.config]) {
            registry
                .push_blob(repo, &Digest::of(Algorithm::Sha256, blob), blob.clone())
                .await
                .unwrap();
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": wharf::DOCKER_MANIFEST_V2,
            "config": descriptor("application/vnd.docker.container.image.v1+json", &self.config),
            "layers": self.layers.iter().map(|l| descriptor("application/vnd.docker.image.rootfs.diff.tar", l)).collect::<Vec<_>>(),
        });
        registry
            .push_manifest(
                repo,
                &Reference::Tag(tag.parse().unwrap()),
                Bytes::from(manifest.to_string()),
                None,
            )
            .await
            .unwrap()
            .digest
    }
}

async fn export(registry: &Registry, repo: &RepoName, tags: &[&str], to: &Path) {
    let references: Vec<Reference> = tags.iter().map(|t| t.parse().unwrap()).collect();
    registry
        .export_docker_archive(
            repo,
            &references,
            Box::new(TarSink::docker(std::fs::File::create(to).unwrap()).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
}

async fn import(
    registry: &Registry,
    repo: &RepoName,
    from: &Path,
) -> wharf::Result<wharf::ImportReport> {
    let source = ArchiveSource::open(from)
        .map_err(|e| wharf::Error::new(ErrorKind::ArchiveInvalid, e.to_string()))?;
    registry
        .import_docker_archive(repo, Arc::new(source), &ImportOptions::default())
        .await
}

#[tokio::test]
async fn an_export_round_trips_with_the_same_manifest() {
    let registry = Registry::in_memory();
    let repo: RepoName = "docker/app".parse().unwrap();
    let v1 = DockerImage::new("v1");
    let digest = v1.push(&registry, &repo, "v1").await;
    DockerImage::new("v2").push(&registry, &repo, "v2").await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    export(&registry, &repo, &["v1", "v2"], &archive).await;

    let copy = Registry::in_memory();
    let target: RepoName = "loaded/app".parse().unwrap();
    let report = import(&copy, &target, &archive).await.unwrap();
    assert_eq!(report.manifests, 2);
    // The manifest wharf makes on import is the one it exported from, byte for byte.
    let loaded = copy
        .get_manifest(&target, &Reference::Tag(tag("v1")))
        .await
        .unwrap();
    assert_eq!(loaded.digest, digest);
    let tags = copy.list_tags(&target, 10, None).await.unwrap();
    assert_eq!(tags, vec![tag("v1"), tag("v2")]);
}

#[tokio::test]
async fn a_tampered_layer_is_refused_and_nothing_becomes_visible() {
    let registry = Registry::in_memory();
    let repo: RepoName = "docker/app".parse().unwrap();
    let image = DockerImage::new("v1");
    image.push(&registry, &repo, "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    export(&registry, &repo, &["v1"], &archive).await;
    // Change one byte of the first layer's file content inside the archive.
    let mut bytes = std::fs::read(&archive).unwrap();
    let needle = b"v1 layer 0\n";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] = b'V';
    std::fs::write(&archive, &bytes).unwrap();

    let copy = Registry::in_memory();
    let target: RepoName = "loaded/app".parse().unwrap();
    let error = import(&copy, &target, &archive).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DigestInvalid, "{error}");
    assert!(
        copy.list_tags(&target, 10, None)
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn an_incomplete_archive_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("broken.tar");
    let manifest =
        br#"[{"Config":"abc.json","RepoTags":["app:v1"],"Layers":["missing/layer.tar"]}]"#;
    std::fs::write(
        &archive,
        TarBuilder::new()
            .file("manifest.json", manifest, 0o644)
            .file(
                "abc.json",
                br#"{"rootfs":{"diff_ids":["sha256:00"]}}"#,
                0o644,
            )
            .finish(),
    )
    .unwrap();
    let copy = Registry::in_memory();
    let target: RepoName = "loaded/app".parse().unwrap();
    let error = import(&copy, &target, &archive).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ArchiveInvalid, "{error}");
    assert!(error.to_string().contains("missing/layer.tar"), "{error}");
    assert!(
        copy.repository(&target).await.is_err(),
        "not even the repository"
    );

    // Not a docker archive at all.
    std::fs::write(&archive, TarBuilder::new().file("x", b"y", 0o644).finish()).unwrap();
    let error = import(&copy, &target, &archive).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ArchiveInvalid);
    assert!(error.to_string().contains("manifest.json"), "{error}");
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let output = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn skopeo_reads_our_archives_and_we_read_theirs() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the skopeo tests"
        );
        eprintln!("skopeo not installed: skipping");
        return;
    }
    let registry = Registry::in_memory();
    let repo: RepoName = "docker/app".parse().unwrap();
    let image = DockerImage::new("v1");
    image.push(&registry, &repo, "v1").await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("ours.tar");
    export(&registry, &repo, &["v1"], &archive).await;

    // skopeo reads it: the config it sees is ours.
    let config = skopeo(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", archive.display()),
    ]);
    assert_eq!(config, image.config.to_vec());

    // skopeo writes one from our archive; we import it with config and layers unchanged.
    let theirs = dir.path().join("theirs.tar");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker-archive:{}:skopeo/app:copied", theirs.display()),
    ]);
    let copy = Registry::in_memory();
    let target: RepoName = "loaded/app".parse().unwrap();
    import(&copy, &target, &theirs).await.unwrap();
    let loaded = copy
        .get_manifest(&target, &Reference::Tag(tag("copied")))
        .await
        .unwrap();
    let manifest = wharf::Manifest::parse(loaded.raw, None).unwrap();
    let blobs: Vec<Digest> = manifest.blobs().map(|d| d.digest.clone()).collect();
    let mut expected: Vec<Digest> = vec![Digest::of(Algorithm::Sha256, &image.config)];
    expected.extend(
        image
            .layers
            .iter()
            .map(|l| Digest::of(Algorithm::Sha256, l)),
    );
    assert_eq!(blobs, expected);
}
