//! The registry server (`src/bin/wharf-registry`) driven by skopeo, against local and S3
//! storage: a two-platform image written by hand as an OCI image layout is copied in with
//! `--all` and back out unchanged (same index digest, same blobs byte for byte), its tags
//! are listed, a registry-to-registry copy mounts blobs across repositories instead of
//! uploading them, and a deleted image is gone while the original stays. The round trip
//! also runs on a server with compression and encryption off.
//!
//! The layers are uncompressed (`…layer.v1.tar`), so every copy passes
//! `--preserve-digests`: without it skopeo gzips them on the way to a registry or a layout
//! and every digest changes.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use wharf::{OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST};

use common::server::{RegistryServer, Storage};
use common::{noise, seed_for, sha256};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether skopeo runs here; without it the tests skip, except under CI.
pub(super) fn have_skopeo() -> bool {
    match Command::new("skopeo").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the skopeo tests: install skopeo (scripts/test does)"
            );
            eprintln!("skopeo not found: skipping (apt-get install skopeo)");
            false
        }
    }
}

/// Runs `skopeo --insecure-policy ARGS`.
pub(super) fn run_skopeo(args: &[&str]) -> Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo")
}

pub(super) fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "skopeo {} ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `skopeo --insecure-policy ARGS`, which must succeed; returns its stdout.
pub(super) fn skopeo(args: &[&str]) -> Vec<u8> {
    let output = run_skopeo(args);
    assert!(output.status.success(), "{}", describe(args, &output));
    output.stdout
}

/// `skopeo copy --all --preserve-digests SRC DEST`, without TLS on the registry side.
fn copy(src: &str, dest: &str) {
    let mut args = vec!["copy", "--all", "--preserve-digests"];
    if src.starts_with("docker://") {
        args.push("--src-tls-verify=false");
    }
    if dest.starts_with("docker://") {
        args.push("--dest-tls-verify=false");
    }
    args.extend([src, dest]);
    skopeo(&args);
}

/// The digest of the manifest `reference` names, computed over the bytes skopeo reads.
fn raw_digest(reference: &str) -> String {
    let manifest = skopeo(&["inspect", "--raw", "--tls-verify=false", reference]);
    sha256(&manifest).to_string()
}

/// `label`, then `len` bytes of xorshift noise that differ between labels and between
/// runs. The text up front keeps skopeo from taking the layer for compressed data.
fn layer_bytes(label: &str, len: usize) -> Vec<u8> {
    let mut out = format!("wharf test layer {label}\n").into_bytes();
    out.extend(noise(len, seed_for(label)));
    out
}

/// Writes `data` into the blobs of the layout at `root`; returns its descriptor.
fn put_blob(root: &Path, media_type: &str, data: &[u8]) -> Value {
    let digest = sha256(data);
    std::fs::write(root.join("blobs/sha256").join(digest.hex()), data).unwrap();
    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": data.len() })
}

/// Every blob of the layout at `root`, by file name.
fn blobs(root: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect()
}

/// An OCI image layout written by hand: an index tagged `v1` over a linux/amd64 and a
/// linux/arm64 image, which share their first layer.
pub(super) struct Layout {
    dir: tempfile::TempDir,
    index_digest: String,
    amd64_layers: Vec<String>,
}

impl Layout {
    pub(super) fn write() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();

        let shared = put_blob(root, LAYER, &layer_bytes("shared", 256 << 10));
        let mut children = Vec::new();
        let mut amd64_layers = Vec::new();
        for (arch, size) in [("amd64", 384 << 10), ("arm64", 192 << 10)] {
            let own = put_blob(root, LAYER, &layer_bytes(arch, size));
            let layers = [shared.clone(), own];
            // Uncompressed layers: each diff_id is the layer's own digest.
            let diff_ids: Vec<String> = layers
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_owned())
                .collect();
            let config = json!({
                "architecture": arch,
                "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": diff_ids },
            });
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MANIFEST,
                "config": put_blob(root, CONFIG, &serde_json::to_vec(&config).unwrap()),
                "layers": layers,
            });
            let mut entry = put_blob(
                root,
                OCI_IMAGE_MANIFEST,
                &serde_json::to_vec(&manifest).unwrap(),
            );
            entry["platform"] = json!({ "architecture": arch, "os": "linux" });
            children.push(entry);
            if arch == "amd64" {
                amd64_layers = diff_ids;
            }
        }

        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX,
            "manifests": children,
        });
        let mut top = put_blob(root, OCI_IMAGE_INDEX, &serde_json::to_vec(&index).unwrap());
        let index_digest = top["digest"].as_str().unwrap().to_owned();
        top["annotations"] = json!({ REF_NAME: "v1" });
        let index_json = json!({ "schemaVersion": 2, "manifests": [top] });
        std::fs::write(root.join("index.json"), index_json.to_string()).unwrap();
        Self {
            dir,
            index_digest,
            amd64_layers,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `oci:DIR:v1`.
    pub(super) fn reference(&self) -> String {
        format!("oci:{}:v1", self.path().display())
    }

    /// Asserts that the layout at `copy` tags this index `v1` and holds exactly these
    /// blobs, byte for byte.
    pub(super) fn assert_copied_to(&self, copy: &Path) {
        let index: Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        let tagged: Vec<&Value> = index["manifests"]
            .as_array()
            .expect("manifests in index.json")
            .iter()
            .filter(|m| m["annotations"][REF_NAME] == "v1")
            .collect();
        assert_eq!(tagged.len(), 1, "one v1 in {index}");
        assert_eq!(tagged[0]["digest"], self.index_digest.as_str(), "{index}");

        let (original, copied) = (blobs(self.path()), blobs(copy));
        let names: Vec<&String> = original.keys().collect();
        let copied_names: Vec<&String> = copied.keys().collect();
        assert_eq!(copied_names, names, "blobs of the copy");
        for (name, data) in &original {
            assert!(copied[name] == *data, "blob {name} differs in the copy");
        }
    }
}

/// Copies `layout` into the registry as `REPO:v1` and back into a new layout, which must
/// match it.
fn round_trip(layout: &Layout, server: &RegistryServer, repo: &str) {
    let image = format!("docker://{}/{repo}:v1", server.host());
    copy(&layout.reference(), &image);
    assert_eq!(raw_digest(&image), layout.index_digest, "{image}");
    let pulled = tempfile::tempdir().unwrap();
    copy(&image, &format!("oci:{}:v1", pulled.path().display()));
    layout.assert_copied_to(pulled.path());
}

/// Asserts that the server answered at least one cross-repository mount into `repo`
/// of a blob from `from` with 201 Created; prints the blob requests for `repo` if not.
fn assert_mounted(server: &RegistryServer, repo: &str, from: &str) {
    let logs = server.logs();
    let blobs_path = format!("/v2/{repo}/blobs/");
    let requests: Vec<&str> = logs
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains(&blobs_path))
        .collect();
    let start = format!("POST {blobs_path}uploads/?");
    // skopeo sends `from` form-encoded (`skopeo%2Fmulti`).
    let sources = [
        format!("from={from}"),
        format!("from={}", from.replace('/', "%2F")),
    ];
    let mounts: Vec<&str> = requests
        .iter()
        .copied()
        .filter(|l| l.starts_with(&start) && l.contains("mount="))
        .filter(|l| sources.iter().any(|s| l.contains(s.as_str())))
        .collect();
    let created = mounts
        .iter()
        .any(|l| l.split_whitespace().nth(2) == Some("201"));
    assert!(
        created,
        "no mount from {from} into {repo} answered 201 (skopeo mounts the blobs its blob \
         info cache knows in another repository of the registry)\nmount requests:\n{}\n\
         blob requests for {repo}:\n{}",
        mounts.join("\n"),
        requests.join("\n"),
    );
}

#[test]
fn skopeo_copies_lists_mounts_and_deletes() {
    if !have_skopeo() {
        return;
    }
    let layout = Layout::write();
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let host = server.host();

        round_trip(&layout, &server, "skopeo/multi");

        // A second tag, then both listed.
        let multi = format!("docker://{host}/skopeo/multi");
        copy(&layout.reference(), &format!("{multi}:v2"));
        let list = ["list-tags", "--tls-verify=false", multi.as_str()];
        let listed: Value = serde_json::from_slice(&skopeo(&list)).unwrap();
        assert_eq!(listed["Tags"], json!(["v1", "v2"]), "{storage:?}: {listed}");

        // Registry to registry: same index, blobs mounted from the first repository.
        let v1 = format!("{multi}:v1");
        let other = format!("docker://{host}/skopeo/other:v1");
        copy(&v1, &other);
        assert_eq!(raw_digest(&other), layout.index_digest, "{storage:?}");
        assert_mounted(&server, "skopeo/other", "skopeo/multi");

        // Deleted, the copy is gone; the original still inspects, platform and all.
        skopeo(&["delete", "--tls-verify=false", other.as_str()]);
        let args = ["inspect", "--raw", "--tls-verify=false", other.as_str()];
        let gone = run_skopeo(&args);
        assert!(
            !gone.status.success(),
            "{storage:?}: deleted, yet {}",
            describe(&args, &gone)
        );
        let inspected: Value = serde_json::from_slice(&skopeo(&[
            "--override-os",
            "linux",
            "--override-arch",
            "amd64",
            "inspect",
            "--tls-verify=false",
            v1.as_str(),
        ]))
        .unwrap();
        assert_eq!(
            inspected["Digest"],
            layout.index_digest.as_str(),
            "{inspected}"
        );
        assert_eq!(inspected["Architecture"], "amd64", "{inspected}");
        assert_eq!(
            inspected["Layers"],
            json!(layout.amd64_layers),
            "{inspected}"
        );
    }
}

#[test]
fn skopeo_round_trip_with_compression_and_encryption_off() {
    if !have_skopeo() {
        return;
    }
    let layout = Layout::write();
    for storage in Storage::ALL {
        // In checksummed frames (the default), and exactly as received.
        for framing in ["on", "off"] {
            let flags = [
                "--compression",
                "off",
                "--encryption",
                "off",
                "--framing",
                framing,
            ];
            let Some(server) = RegistryServer::start_with(storage, &flags) else {
                continue;
            };
            round_trip(&layout, &server, "skopeo/plain");
        }
    }
}

/// With `--auth`: skopeo logs in with `--dest-creds` / `--src-creds` (Basic, after the
/// server's challenge); a user whose policies allow only pulls cannot push, nor can an
/// anonymous client; the image comes back byte for byte through the reader.
#[test]
fn skopeo_logs_in_with_credentials_and_is_held_to_its_policies() {
    use super::auth::{ALICE, BOB, start};
    if !have_skopeo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let layout = Layout::write();
    let source = layout.reference();
    let image = format!("docker://{}/team/app:v1", server.host());
    let push = |creds: Option<String>| {
        let mut args = vec![
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ];
        let creds = creds.unwrap_or_default();
        if !creds.is_empty() {
            args.extend(["--dest-creds", creds.as_str()]);
        }
        args.extend([source.as_str(), image.as_str()]);
        let output = run_skopeo(&args);
        (output.status.success(), describe(&args, &output))
    };
    let (pushed, said) = push(None);
    assert!(!pushed, "an anonymous push is refused: {said}");
    let (pushed, said) = push(Some(format!("{}:{}", BOB.0, BOB.1)));
    assert!(!pushed, "a reader's push is refused: {said}");
    assert!(said.contains("denied") || said.contains("DENIED"), "{said}");
    let (pushed, said) = push(Some(format!("{}:{}", ALICE.0, ALICE.1)));
    assert!(pushed, "{said}");

    let pulled = tempfile::tempdir().unwrap();
    let target = format!("oci:{}:v1", pulled.path().display());
    let bob = format!("{}:{}", BOB.0, BOB.1);
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        &bob,
        &image,
        &target,
    ]);
    layout.assert_copied_to(pulled.path());
    // skopeo followed the Bearer challenge to the token endpoint.
    let logs = server.logs();
    assert!(
        logs.iter()
            .any(|line| line.starts_with("GET /token?") && line.contains(" 200 ")),
        "{logs:?}"
    );
}
