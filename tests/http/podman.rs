//! The registry server (`src/bin/wharf-registry`) driven by podman: several `podman push`es of
//! a 10-layer image (4 MiB of random data a layer) at once, as CI jobs do, all finish and
//! every pushed image reads back whole. Three concurrent pushes once hung the registry
//! for good (each open upload parked a thread of its blocking pool).
//!
//! Podman runs daemonless with its own storage under a temporary directory
//! (`--storage-driver vfs`, which needs no kernel support). The image is written by hand
//! as an OCI layout of real tar layers, pulled into that storage, tagged once per
//! destination and pushed to all of them in parallel.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use wharf::OCI_IMAGE_MANIFEST;

use common::server::{RegistryServer, Storage};
use common::{noise, seed_for, sha256};

const LAYERS: usize = 10;
const LAYER_FILE: usize = 4 << 20;
const PUSHES: usize = 3;
const TAR_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Whether podman runs here; without it the test skips, except under CI.
fn have_podman() -> bool {
    match Command::new("podman").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the podman test: install podman (scripts/test does)"
            );
            eprintln!("podman not found: skipping (apt-get install podman)");
            false
        }
    }
}

/// Podman with its storage under `dir`.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("run podman");
        assert!(output.status.success(), "{}", describe(args, &output));
        output
    }
}

fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "podman {} ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A tar archive (ustar) holding one regular file.
fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    // The checksum counts its own field as spaces.
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512) + 1024, 0);
    out
}

/// Writes `data` into the layout's blobs; returns its descriptor.
fn put_blob(root: &Path, media_type: &str, data: &[u8]) -> Value {
    let digest = sha256(data);
    std::fs::write(root.join("blobs/sha256").join(digest.hex()), data).unwrap();
    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": data.len() })
}

/// A linux/amd64 image of `LAYERS` uncompressed tar layers, tagged `v1`, as an OCI layout.
fn write_layout(root: &Path) {
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..LAYERS {
        let tar = tar_with(
            &format!("layer-{i}.bin"),
            &noise(LAYER_FILE, seed_for(&format!("podman layer {i}"))),
        );
        diff_ids.push(sha256(&tar).to_string());
        layers.push(put_blob(root, TAR_LAYER, &tar));
    }
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "config": put_blob(root, CONFIG, config.to_string().as_bytes()),
        "layers": layers,
    });
    let mut entry = put_blob(root, OCI_IMAGE_MANIFEST, manifest.to_string().as_bytes());
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": "v1" });
    let index = json!({ "schemaVersion": 2, "manifests": [entry] });
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// GETs `path` from the server; the status and body.
async fn get(client: &reqwest::Client, server: &RegistryServer, path: &str) -> (u16, Vec<u8>) {
    let reply = client
        .get(format!("{}{path}", server.url()))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = reply.status().as_u16();
    (status, reply.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_podman_pushes_all_finish() {
    if !have_podman() {
        return;
    }
    let server = tokio::task::block_in_place(|| RegistryServer::start(Storage::Local))
        .expect("a local server starts");
    tokio::task::block_in_place(|| push_concurrently(&server));

    // Every repository has the image, and every layer reads back as its digest says.
    let client = reqwest::Client::new();
    for i in 0..PUSHES {
        let repo = format!("ci/job{i}");
        let (status, body) = get(&client, &server, &format!("/v2/{repo}/manifests/v1")).await;
        assert_eq!(status, 200, "{repo}: {}", String::from_utf8_lossy(&body));
        let manifest: Value = serde_json::from_slice(&body).unwrap();
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), LAYERS, "{repo}: {manifest}");
        for layer in layers {
            let digest = layer["digest"].as_str().unwrap();
            let (status, blob) = get(&client, &server, &format!("/v2/{repo}/blobs/{digest}")).await;
            assert_eq!(status, 200, "{repo} {digest}");
            assert_eq!(sha256(&blob).to_string(), digest, "{repo}: layer bytes");
            assert_eq!(blob.len() as u64, layer["size"].as_u64().unwrap());
        }
    }
}

/// Pulls the image into podman's storage, tags it once per destination and pushes to
/// all of them at once.
fn push_concurrently(server: &RegistryServer) {
    // Podman names the pulled image after the layout's path, which must be lowercase.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = tempfile::Builder::new()
        .prefix(&format!("wharf-podman-{}-{nanos}", std::process::id()))
        .rand_bytes(0)
        .tempdir()
        .unwrap();
    let layout = dir.path().join("layout");
    write_layout(&layout);
    let podman = Podman {
        dir: dir.path().to_owned(),
    };
    let source = format!("oci:{}:v1", layout.display());
    podman.run(&["pull", "--quiet", &source]);
    let pulled = String::from_utf8(podman.run(&["images", "--quiet"]).stdout).unwrap();
    let image = pulled
        .lines()
        .next()
        .expect("the pulled image")
        .trim()
        .to_owned();

    let destinations: Vec<String> = (0..PUSHES)
        .map(|i| format!("{}/ci/job{i}:v1", server.host()))
        .collect();
    for destination in &destinations {
        podman.run(&["tag", &image, destination]);
    }
    let mut pushes: Vec<(String, std::process::Child)> = destinations
        .iter()
        .map(|destination| {
            let child = podman
                .command(&["push", "--tls-verify=false", destination])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start podman push");
            (destination.clone(), child)
        })
        .collect();
    // Bounded: a hung push fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    for (destination, child) in &mut pushes {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
                }
                assert!(
                    status.success(),
                    "podman push {destination}: {status}\n{stderr}"
                );
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "podman push {destination} still runs after 300 s\nserver log:\n{}",
                    server.logs().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
