//! OCI layouts exchanged with real tools: layouts written by `umoci` and by `skopeo` import
//! with their manifests byte for byte, and wharf's exports (directory and archive) are
//! read by `umoci` (down to unpacking a file) and `skopeo`, which copy them unchanged.
//! Under CI the tools must be there (`scripts/test` installs them); elsewhere a missing
//! tool skips its test with a message.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use wharf::transfer::sink::{DirectorySink, TarSink};
use wharf::transfer::source::{ArchiveSource, DirectorySource};
use wharf::{ExportOptions, ImportOptions, Reference, Registry, RepoName, Tag};

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the {name} tests: scripts/test installs it"
        );
        eprintln!("{name} not installed: skipping");
    }
    found
}

/// Runs `program args`, which must succeed; returns its stdout.
fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tag(name: &str) -> Tag {
    name.parse().unwrap()
}

/// A layout made by umoci: an image `base` with one file inserted.
fn umoci_layout(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("umoci");
    run("umoci", &["init", "--layout", path(&layout)]);
    let image = format!("{}:base", path(&layout));
    run("umoci", &["new", "--image", &image]);
    let file = dir.join("greeting");
    std::fs::write(&file, b"hello from umoci\n").unwrap();
    run(
        "umoci",
        &[
            "insert",
            "--rootless",
            "--image",
            &image,
            path(&file),
            "/etc/greeting",
        ],
    );
    layout
}

#[tokio::test]
async fn umoci_layouts_import_exactly_and_read_back_from_exports() {
    if !tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = umoci_layout(dir.path());
    let registry = Registry::in_memory();
    let repo: RepoName = "umoci/base".parse().unwrap();
    let report = registry
        .import_layout(
            &repo,
            Arc::new(DirectorySource::new(&layout)),
            &ImportOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.images.len(), 1);
    // The manifest is umoci's, byte for byte.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let stored = registry
        .get_manifest(&repo, &Reference::Tag(tag("base")))
        .await
        .unwrap();
    assert_eq!(stored.digest.as_str(), digest);
    let theirs =
        std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap();
    assert_eq!(&stored.raw[..], &theirs[..]);

    // umoci reads wharf's export and unpacks the file.
    let out = dir.path().join("exported");
    registry
        .export_layout(
            &repo,
            &[Reference::Tag(tag("base"))],
            Box::new(DirectorySink::create(&out).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    let listed = String::from_utf8(run("umoci", &["ls", "--layout", path(&out)])).unwrap();
    assert_eq!(listed.trim(), "base");
    let bundle = dir.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:base", path(&out)),
            path(&bundle),
        ],
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/greeting")).unwrap(),
        b"hello from umoci\n"
    );
}

#[tokio::test]
async fn skopeo_reads_exports_and_writes_layouts_that_import_unchanged() {
    if !tool("skopeo") || !tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = umoci_layout(dir.path());
    let registry = Registry::in_memory();
    let repo: RepoName = "skopeo/app".parse().unwrap();
    registry
        .import_layout(
            &repo,
            Arc::new(DirectorySource::new(&layout)),
            &ImportOptions::default(),
        )
        .await
        .unwrap();
    let ours = registry
        .get_manifest(&repo, &Reference::Tag(tag("base")))
        .await
        .unwrap();

    // wharf's archive, read by skopeo: the same manifest.
    let archive = dir.path().join("app.tar");
    registry
        .export_layout(
            &repo,
            &[Reference::Tag(tag("base"))],
            Box::new(TarSink::new(std::fs::File::create(&archive).unwrap()).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:base", path(&archive)),
    ]);
    assert_eq!(raw, ours.raw.to_vec());

    // skopeo copies wharf's archive into a layout of its own under another tag; wharf
    // imports that layout with the manifest unchanged.
    let copied = dir.path().join("skopeo-layout");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}:base", path(&archive)),
        &format!("oci:{}:copied", path(&copied)),
    ]);
    let again = Registry::in_memory();
    again
        .import_layout(
            &repo,
            Arc::new(DirectorySource::new(&copied)),
            &ImportOptions::default(),
        )
        .await
        .unwrap();
    let theirs = again
        .get_manifest(&repo, &Reference::Tag(tag("copied")))
        .await
        .unwrap();
    assert_eq!(theirs.raw, ours.raw);

    // And skopeo's own oci-archive imports through the archive source.
    let their_archive = dir.path().join("theirs.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:copied", path(&copied)),
        &format!("oci-archive:{}:fromskopeo", path(&their_archive)),
    ]);
    let third = Registry::in_memory();
    third
        .import_layout(
            &repo,
            Arc::new(ArchiveSource::open(&their_archive).unwrap()),
            &ImportOptions::default(),
        )
        .await
        .unwrap();
    let from_archive = third
        .get_manifest(&repo, &Reference::Tag(tag("fromskopeo")))
        .await
        .unwrap();
    assert_eq!(from_archive.raw, ours.raw);
}
