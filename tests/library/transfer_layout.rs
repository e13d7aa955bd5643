//! OCI image layouts in and out: round trips through a directory and an `oci-archive`
//! byte for byte, resumed exports, referrers, and layouts that are missing, corrupt or
//! truncated, each refused with its own error and nothing made visible.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wharf::transfer::Progress;
use wharf::transfer::layout::{self, INDEX_FILE};
use wharf::transfer::sink::{DirectorySink, TarSink};
use wharf::transfer::source::{ArchiveSource, DirectorySource, LayoutSource};
use wharf::{
    Algorithm, Digest, ErrorKind, ExportOptions, ImportOptions, Reference, Registry, RepoName, Tag,
};

use crate::common::images::{Image, index};

/// Counts what a transfer reports.
#[derive(Default)]
struct Counter {
    planned: AtomicU64,
    advanced: AtomicU64,
}

impl Progress for Counter {
    fn planned(&self, _blobs: usize, bytes: u64) {
        self.planned.store(bytes, Ordering::Relaxed);
    }

    fn advanced(&self, bytes: u64) {
        self.advanced.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn tag(name: &str) -> Tag {
    name.parse().unwrap()
}

/// A repository with a two-platform index tagged `multi`, an image tagged `v1` (sha256)
/// and one tagged `v512` (sha512), and a signature referring to `v1`.
async fn source_registry() -> (Registry, RepoName, Vec<Digest>) {
    let registry = Registry::in_memory();
    let app = repo("team/app");
    let amd = Image::seeded("amd64");
    let arm = Image::seeded("arm64");
    let amd_digest = amd
        .push(
            &registry,
            &app,
            &Reference::Digest(amd.digest(&amd.manifest())),
        )
        .await
        .unwrap();
    let arm_digest = arm
        .push(
            &registry,
            &app,
            &Reference::Digest(arm.digest(&arm.manifest())),
        )
        .await
        .unwrap();
    let list = index(&[
        (amd_digest, amd.manifest().len()),
        (arm_digest, arm.manifest().len()),
    ]);
    let multi = registry
        .push_manifest(&app, &Reference::Tag(tag("multi")), list, None)
        .await
        .unwrap()
        .digest;
    let v1 = Image::seeded("v1");
    let v1_digest = v1
        .push(&registry, &app, &Reference::Tag(tag("v1")))
        .await
        .unwrap();
    let v512 = Image::seeded("v512").with_algorithm(Algorithm::Sha512);
    let v512_digest = v512
        .push(&registry, &app, &Reference::Tag(tag("v512")))
        .await
        .unwrap();
    let signature = Image::seeded("signature").referring_to(
        &v1_digest,
        v1.manifest().len(),
        "application/vnd.dev.cosign.artifact.sig.v1+json",
    );
    signature
        .push(
            &registry,
            &app,
            &Reference::Digest(signature.digest(&signature.manifest())),
        )
        .await
        .unwrap();
    (registry, app, vec![multi, v1_digest, v512_digest])
}

fn tags(names: &[&str]) -> Vec<Reference> {
    names.iter().map(|n| Reference::Tag(tag(n))).collect()
}

/// Every manifest reachable from `digest` in `a` is byte for byte the same in `b`.
async fn same_manifest(
    a: (&Registry, &RepoName),
    b: (&Registry, &RepoName),
    reference: &Reference,
) {
    let left = a.0.get_manifest(a.1, reference).await.unwrap();
    let right = b.0.get_manifest(b.1, reference).await.unwrap();
    assert_eq!(left.raw, right.raw, "{reference}");
    assert_eq!(left.digest, right.digest);
}

#[tokio::test]
async fn a_directory_layout_round_trips_byte_for_byte() {
    let (registry, app, digests) = source_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let exported = registry
        .export_layout(
            &app,
            &tags(&["multi", "v1", "v512"]),
            Box::new(DirectorySink::create(dir.path()).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(exported.entries, 3);
    assert_eq!(exported.blobs_present, 0);
    assert!(dir.path().join("blobs/sha512").is_dir());

    let copy = Registry::in_memory();
    let target = repo("mirror/app");
    let progress = Arc::new(Counter::default());
    let options = ImportOptions {
        progress: progress.clone(),
        ..Default::default()
    };
    let imported = copy
        .import_layout(
            &target,
            Arc::new(DirectorySource::new(dir.path())),
            &options,
        )
        .await
        .unwrap();
    // Progress is told the whole of the bytes to move, and sees them all moved.
    let planned = progress.planned.load(Ordering::Relaxed);
    assert_eq!(planned, imported.bytes);
    assert_eq!(progress.advanced.load(Ordering::Relaxed), planned);
    let imported_digests: Vec<Digest> = imported.images.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(imported_digests, digests);
    assert_eq!(imported.manifests, exported.manifests);
    for reference in tags(&["multi", "v1", "v512"]) {
        same_manifest((&registry, &app), (&copy, &target), &reference).await;
    }
    // Platform manifests and blobs arrived too, and read back whole.
    let amd = Image::seeded("amd64");
    let layer = copy
        .read_blob(&target, &amd.digest(&amd.layers[0]), None)
        .await
        .unwrap();
    assert_eq!(layer.bytes().await.unwrap(), amd.layers[0]);

    // Importing again pushes nothing new.
    let again = copy
        .import_layout(
            &target,
            Arc::new(DirectorySource::new(dir.path())),
            &ImportOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(again.blobs, 0);
    assert_eq!(again.blobs_present, imported.blobs + imported.blobs_present);
}

#[tokio::test]
async fn an_archive_round_trips_and_matches_the_directory() {
    let (registry, app, _) = source_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    let file = std::fs::File::create(&archive).unwrap();
    registry
        .export_layout(
            &app,
            &tags(&["multi", "v1"]),
            Box::new(TarSink::new(file).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    let source = ArchiveSource::open(&archive).unwrap();
    let mut paths: Vec<&str> = source.paths().collect();
    paths.sort();
    assert!(paths.contains(&"oci-layout") && paths.contains(&INDEX_FILE));

    let copy = Registry::in_memory();
    let target = repo("from/archive");
    copy.import_layout(
        &target,
        Arc::new(source),
        &ImportOptions {
            tags: vec![tag("v1")],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    same_manifest(
        (&registry, &app),
        (&copy, &target),
        &Reference::Tag(tag("v1")),
    )
    .await;
    // Only the tag asked for.
    let listed = copy.list_tags(&target, 100, None).await.unwrap();
    assert_eq!(listed, vec![tag("v1")]);

    // The same export twice gives the same bytes.
    let second = dir.path().join("again.tar");
    registry
        .export_layout(
            &app,
            &tags(&["multi", "v1"]),
            Box::new(TarSink::new(std::fs::File::create(&second).unwrap()).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        std::fs::read(&second).unwrap()
    );
}

#[tokio::test]
async fn a_repeated_export_resumes_and_merges_the_index() {
    let (registry, app, _) = source_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let export = |references: Vec<Reference>| {
        let registry = registry.clone();
        let app = app.clone();
        let path = dir.path().to_path_buf();
        async move {
            registry
                .export_layout(
                    &app,
                    &references,
                    Box::new(DirectorySink::create(&path).unwrap()),
                    &ExportOptions::default(),
                )
                .await
                .unwrap()
        }
    };
    let first = export(tags(&["v1"])).await;
    assert_eq!(first.blobs_present, 0);
    let second = export(tags(&["v1", "v512"])).await;
    assert_eq!(second.blobs_present, first.blobs);
    let entries = layout::read_index(&std::fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap();
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.tag.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(names, ["v1", "v512"]);
    // No partial files are left behind.
    for entry in walk(dir.path()) {
        assert!(!entry.contains(".partial"), "{entry}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn referrers_travel_when_asked() {
    let (registry, app, digests) = source_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let report = registry
        .export_layout(
            &app,
            &tags(&["v1"]),
            Box::new(DirectorySink::create(dir.path()).unwrap()),
            &ExportOptions {
                referrers: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(report.entries, 2, "the image and its signature");
    let copy = Registry::in_memory();
    let target = repo("with/referrers");
    copy.import_layout(
        &target,
        Arc::new(DirectorySource::new(dir.path())),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    let found = copy.referrers(&target, &digests[1], None).await.unwrap();
    let index = wharf::Manifest::parse(found.index, None).unwrap();
    assert_eq!(index.children().len(), 1);
}

/// Exports `v1` into a fresh directory and returns it with the layer's path.
async fn exported_v1() -> (tempfile::TempDir, std::path::PathBuf, Digest) {
    let (registry, app, _) = source_registry().await;
    let dir = tempfile::tempdir().unwrap();
    registry
        .export_layout(
            &app,
            &tags(&["v1"]),
            Box::new(DirectorySink::create(dir.path()).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    let image = Image::seeded("v1");
    let layer = image.digest(&image.layers[0]);
    let path = dir.path().join(layout::blob_path(&layer));
    (dir, path, layer)
}

/// Nothing of an import is visible: no tag, no manifest.
async fn nothing_visible(registry: &Registry, target: &RepoName) {
    let tags = registry
        .list_tags(target, 100, None)
        .await
        .unwrap_or_default();
    assert!(tags.is_empty(), "{tags:?}");
    let v1 = Image::seeded("v1");
    let by_digest = Reference::Digest(v1.digest(&v1.manifest()));
    assert!(registry.get_manifest(target, &by_digest).await.is_err());
}

#[tokio::test]
async fn a_missing_blob_is_named_and_nothing_becomes_visible() {
    let (dir, layer_path, layer) = exported_v1().await;
    std::fs::remove_file(&layer_path).unwrap();
    let copy = Registry::in_memory();
    let target = repo("broken/missing");
    let error = copy
        .import_layout(
            &target,
            Arc::new(DirectorySource::new(dir.path())),
            &ImportOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BlobUnknown, "{error}");
    assert!(error.to_string().contains(layer.as_str()), "{error}");
    nothing_visible(&copy, &target).await;
}

#[tokio::test]
async fn a_corrupt_blob_is_named_and_nothing_becomes_visible() {
    let (dir, layer_path, layer) = exported_v1().await;
    let mut bytes = std::fs::read(&layer_path).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&layer_path, &bytes).unwrap();
    let copy = Registry::in_memory();
    let target = repo("broken/corrupt");
    let error = copy
        .import_layout(
            &target,
            Arc::new(DirectorySource::new(dir.path())),
            &ImportOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DigestInvalid, "{error}");
    assert!(error.to_string().contains(layer.hex()), "{error}");
    nothing_visible(&copy, &target).await;
    assert_eq!(
        copy.stat_blob(&target, &layer).await.unwrap_err().kind(),
        ErrorKind::BlobUnknown
    );
}

#[tokio::test]
async fn a_tampered_manifest_is_refused_before_anything_is_pushed() {
    let (dir, _, _) = exported_v1().await;
    let v1 = Image::seeded("v1");
    let manifest = dir
        .path()
        .join(layout::blob_path(&v1.digest(&v1.manifest())));
    let mut bytes = std::fs::read(&manifest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = b' ';
    std::fs::write(&manifest, &bytes).unwrap();
    let copy = Registry::in_memory();
    let target = repo("broken/manifest");
    let error = copy
        .import_layout(
            &target,
            Arc::new(DirectorySource::new(dir.path())),
            &ImportOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DigestInvalid, "{error}");
    nothing_visible(&copy, &target).await;
    let config = v1.digest(&v1.config);
    assert!(
        copy.stat_blob(&target, &config).await.is_err(),
        "no blob pushed"
    );
}

#[tokio::test]
async fn what_is_not_a_layout_is_refused_as_such() {
    let copy = Registry::in_memory();
    let target = repo("not/layout");
    let import = |dir: &Path| {
        let copy = copy.clone();
        let target = target.clone();
        let source: Arc<dyn LayoutSource> = Arc::new(DirectorySource::new(dir));
        async move {
            copy.import_layout(&target, source, &ImportOptions::default())
                .await
        }
    };
    let empty = tempfile::tempdir().unwrap();
    let error = import(empty.path()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ArchiveInvalid);
    assert!(error.to_string().contains("oci-layout"), "{error}");

    std::fs::write(empty.path().join("oci-layout"), layout::layout_file()).unwrap();
    let error = import(empty.path()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ArchiveInvalid);
    assert!(error.to_string().contains("index.json"), "{error}");

    std::fs::write(
        empty.path().join(INDEX_FILE),
        br#"{"schemaVersion":2,"manifests":"no"}"#,
    )
    .unwrap();
    let error = import(empty.path()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ArchiveInvalid, "{error}");

    std::fs::write(
        empty.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"9"}"#,
    )
    .unwrap();
    let error = import(empty.path()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ArchiveInvalid);

    // An entry whose tag is asked for but absent.
    let (dir, _, _) = exported_v1().await;
    let error = copy
        .import_layout(
            &target,
            Arc::new(DirectorySource::new(dir.path())),
            &ImportOptions {
                tags: vec![tag("nope")],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ManifestUnknown);
}

#[tokio::test]
async fn a_truncated_archive_is_refused_when_opened() {
    let (registry, app, _) = source_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.tar");
    registry
        .export_layout(
            &app,
            &tags(&["v1"]),
            Box::new(TarSink::new(std::fs::File::create(&archive).unwrap()).unwrap()),
            &ExportOptions::default(),
        )
        .await
        .unwrap();
    let bytes = std::fs::read(&archive).unwrap();
    // `oci-layout` (two blocks), `blobs/` and `blobs/sha256/` (one each), then the first
    // blob's header: cut ten bytes into its body.
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..5 * 512 + 10]).unwrap();
    let error = ArchiveSource::open(&cut).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    // And garbage is not a tar.
    std::fs::write(&cut, vec![7u8; 4096]).unwrap();
    assert_eq!(
        ArchiveSource::open(&cut).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
}

#[tokio::test]
async fn exporting_into_a_directory_that_is_not_a_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let error = DirectorySink::create(dir.path()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"mine"
    );
}
