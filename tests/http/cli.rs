//! The offline CLI (`examples/wharf`): every command on a sample registry directory with
//! `--json` parsed, the exit statuses that say what failed, and the message when a
//! running registry holds the directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wharf::transfer::sink::DirectorySink;
use wharf::{ExportOptions, Reference, Registry, RepoName};

use crate::common::images::Image;
use crate::common::server::{RegistryServer, registry_binary};

fn cli_binary() -> PathBuf {
    // target/<profile>/wharf-registry -> target/<profile>/examples/wharf
    let profile_dir = registry_binary()
        .parent()
        .expect("target dir")
        .to_path_buf();
    profile_dir.join("examples").join("wharf")
}

/// Runs `wharf --root ROOT --json ARGS`: the exit status and the JSON it printed (stdout
/// on success, stderr on failure).
fn wharf(root: &Path, args: &[&str]) -> (i32, Value) {
    let output = Command::new(cli_binary())
        .arg("--root")
        .arg(root)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let status = output.status.code().unwrap_or(-1);
    let text = if output.status.success() {
        output.stdout
    } else {
        output.stderr
    };
    let value = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "wharf {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&text)
        )
    });
    (status, value)
}

fn ok(root: &Path, args: &[&str]) -> Value {
    let (status, value) = wharf(root, args);
    assert_eq!(status, 0, "wharf {args:?}: {value}");
    value
}

/// A layout with two images tagged `v1` and `v2`.
async fn sample_layout(dir: &Path) -> PathBuf {
    layout_of(dir, [Image::seeded("v1"), Image::seeded("v2")]).await
}

/// An OCI layout in `dir/layout` of `images` tagged `v1` and `v2`.
async fn layout_of(dir: &Path, images: [Image; 2]) -> PathBuf {
    let registry = Registry::in_memory();
    let repo: RepoName = "sample/app".parse().unwrap();
    for (image, tag) in images.iter().zip(["v1", "v2"]) {
        image
            .push(&registry, &repo, &Reference::Tag(tag.parse().unwrap()))
            .await
            .unwrap();
    }
    let layout = dir.join("layout");
    registry
        .export_layout(
            &repo,
            &["v1".parse().unwrap(), "v2".parse().unwrap()],
            Box::new(DirectorySink::create(&layout).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    layout
}

#[tokio::test]
async fn every_command_on_a_sample_registry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = sample_layout(dir.path()).await;
    let root = dir.path().join("registry");
    let source = format!("oci:{}", layout.display());

    let imported = ok(&root, &["import", "team/app", &source]);
    assert_eq!(imported["images"].as_array().unwrap().len(), 2);
    assert_eq!(imported["images"][0]["tag"], "v1");
    assert!(imported["blobs"].as_u64().unwrap() >= 4);

    let listed = ok(&root, &["ls"]);
    assert_eq!(listed["repositories"], serde_json::json!(["team/app"]));
    let images = ok(&root, &["ls", "team/app"]);
    let mut tags: Vec<&str> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| {
            i["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
        })
        .collect();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    assert!(images["images"][0]["size"].as_u64().unwrap() > 0);

    let stats = ok(&root, &["stats"]);
    assert!(stats["blobs"].as_u64().unwrap() >= 4);
    let verified = ok(&root, &["verify"]);
    assert_eq!(verified["damaged"], serde_json::json!([]));
    assert!(verified["checked"].as_u64().unwrap() >= 6);

    let archive = dir.path().join("v1.tar");
    let exported = ok(
        &root,
        &[
            "export",
            "team/app",
            "v1",
            "--to",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    assert_eq!(exported["entries"], 1);
    let other = dir.path().join("other");
    let again = ok(
        &other,
        &[
            "import",
            "copy/app",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    assert_eq!(
        again["images"][0]["digest"],
        imported["images"][0]["digest"]
    );

    // A docker archive out and back in (the sample's layers are not tars: docker's
    // diff ids cannot be checked on them, so only the wharf round trip is asked here).
    let docker = dir.path().join("v2.docker.tar");
    let saved = ok(
        &root,
        &[
            "export",
            "team/app",
            "v2",
            "--to",
            &format!("docker-archive:{}", docker.display()),
        ],
    );
    assert_eq!(saved["blobs"], 2);
    let (status, refused) = wharf(
        &other,
        &[
            "import",
            "docker/app",
            &format!("docker-archive:{}", docker.display()),
        ],
    );
    // The sample's config has no rootfs: refused as not an image docker could load.
    assert_eq!(status, 5, "{refused}");
    assert_eq!(refused["error"]["code"], "ARCHIVE_INVALID");

    let gc = ok(&root, &["gc", "--dry-run"]);
    assert_eq!(gc["dry_run"], true);

    // A lifecycle policy set through the library, previewed and applied by the CLI.
    {
        let registry = Registry::open_local(&root).unwrap();
        let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
        registry
            .set_lifecycle_policy(&"team/app".parse().unwrap(), Some(policy))
            .await
            .unwrap();
    }
    let preview = ok(&root, &["lifecycle", "preview", "team/app"]);
    assert_eq!(preview["expired"].as_array().unwrap().len(), 1);
    let applied = ok(&root, &["lifecycle", "apply", "team/app"]);
    assert_eq!(applied["expired"].as_array().unwrap().len(), 1);
    assert_eq!(
        ok(&root, &["ls", "team/app"])["images"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Failures: a key that does not exist, usage, a registry that is not there.
    let (status, error) = wharf(&root, &["rotate-key", "default", "no-such-key"]);
    assert_eq!(status, 1, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-key"),
        "{error}"
    );
    let (status, error) = wharf(&root, &["export", "team/app"]);
    assert_eq!(status, 2, "{error}");
    assert_eq!(error["error"]["code"], "USAGE");
    let (status, _) = wharf(&dir.path().join("nowhere"), &["ls"]);
    assert_eq!(status, 1);
}

#[tokio::test]
async fn verify_reports_damage_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A layer too large (and too random to compress) to be kept in the database, so it
    // has a file to damage.
    let layer = bytes::Bytes::from(crate::common::noise(4 * wharf::SMALL_OBJECT_LIMIT, 1));
    let large = Image::of(&bytes::Bytes::from_static(b"{}"), &[&layer]);
    let layout = layout_of(dir.path(), [large, Image::seeded("v2")]).await;
    let root = dir.path().join("registry");
    ok(
        &root,
        &["import", "team/app", &format!("oci:{}", layout.display())],
    );
    // Flip a byte in the middle of the largest stored blob.
    let mut files = Vec::new();
    let mut pending = vec![root.join("blobs")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push((std::fs::metadata(&path).unwrap().len(), path));
            }
        }
    }
    files.sort();
    let (size, victim) = files.last().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[size as usize / 2] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

    let (status, report) = wharf(&root, &["verify"]);
    assert_eq!(status, 3, "{report}");
    assert_eq!(report["error"]["code"], "DAMAGED");
    // The damaged file is still there: verify reports, never deletes.
    assert_eq!(std::fs::read(&victim).unwrap(), bytes);
    let output = Command::new(cli_binary())
        .arg("--root")
        .arg(&root)
        .arg("--json")
        .arg("verify")
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["damaged"].as_array().unwrap().len(), 1, "{printed}");
}

#[tokio::test]
async fn a_corrupt_layout_is_refused_with_its_own_status() {
    let dir = tempfile::tempdir().unwrap();
    let layout = sample_layout(dir.path()).await;
    let image = Image::seeded("v1");
    let layer = layout.join(wharf::transfer::layout::blob_path(
        &image.digest(&image.layers[0]),
    ));
    std::fs::remove_file(&layer).unwrap();
    let root = dir.path().join("registry");
    let (status, error) = wharf(
        &root,
        &["import", "team/app", &format!("oci:{}", layout.display())],
    );
    assert_eq!(status, 5, "{error}");
    assert_eq!(error["error"]["code"], "BLOB_UNKNOWN");
    let listed = ok(&root, &["ls"]);
    assert_eq!(
        listed["repositories"],
        serde_json::json!([]),
        "nothing visible"
    );
}

#[test]
fn a_directory_held_by_a_running_registry_is_named_with_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let server = RegistryServer::spawn(&root, Vec::new()).expect("server starts");
    let (status, error) = wharf(&root, &["ls"]);
    assert_eq!(status, 4, "{error}");
    assert_eq!(error["error"]["code"], "DATABASE_IN_USE");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("pid {}", server.pid())),
        "{message}"
    );
    assert!(message.contains("registry"), "{message}");
    drop(server);
}

#[cfg(feature = "remote")]
#[tokio::test]
async fn copy_pushes_to_and_pulls_from_a_registry_that_wants_tokens() {
    use super::auth::{ALICE, BOB, start};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("server")).unwrap();
    let server = start(&dir.path().join("server"));
    let host = server.url().trim_start_matches("http://").to_owned();
    let layout = sample_layout(dir.path()).await;
    let root = dir.path().join("registry");
    let imported = ok(
        &root,
        &["import", "team/app", &format!("oci:{}", layout.display())],
    );
    let alice = format!("{}:{}", ALICE.0, ALICE.1);
    let pushed = ok(
        &root,
        &[
            "copy",
            "team/app:v1",
            &format!("docker://{host}/team/app"),
            "--plain-http",
            "--creds",
            &alice,
        ],
    );
    assert_eq!(pushed["digest"], imported["images"][0]["digest"]);
    assert_eq!(pushed["blobs"], 2);

    let other = dir.path().join("other");
    // `import` creates a registry; `copy` needs one there.
    std::fs::create_dir_all(&other).unwrap();
    drop(Registry::open_local(&other).unwrap());
    let bob = format!("{}:{}", BOB.0, BOB.1);
    let pulled = ok(
        &other,
        &[
            "copy",
            &format!("docker://{host}/team/app:v1"),
            "mirror/app",
            "--plain-http",
            "--creds",
            &bob,
        ],
    );
    assert_eq!(pulled["digest"], imported["images"][0]["digest"]);
    let listed = ok(&other, &["ls", "mirror/app"]);
    assert_eq!(listed["images"][0]["tags"], serde_json::json!(["v1"]));

    // Refused credentials: a failure with the remote's word for it, nothing copied.
    let (status, error) = wharf(
        &other,
        &[
            "copy",
            &format!("docker://{host}/team/app:v1"),
            "wrong/app",
            "--plain-http",
            "--creds",
            "bob:nope",
        ],
    );
    assert_eq!(status, 1, "{error}");
    assert_eq!(error["error"]["code"], "UNAUTHORIZED");
}
