//! Scanning through the registry: scan on push, results as referrers, whiteouts across
//! layers, hostile layers ending in the right status, matching against OSV records,
//! re-matching from the stored SBOM, and the scan event.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use wharf::scan::{PackageKind, ScanLimits, Severity, walk::WalkLimits};
use wharf::{BuiltinScanner, Digest, Registry, RepoName, RepositorySettings, ScanStatus, Scanner};

use crate::common::images::Image;
use crate::common::layers::{TarBuilder, gnu_tar, gzip};
use crate::common::{repo, tag};

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

const BOOKWORM: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

/// A dpkg status with glibc's `libc6` at a version before the fix for CVE-2023-4911
/// (fixed in Debian 12 by 2.36-9+deb12u3) and a package without a source field.
const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 12986\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u1\nDescription: GNU C Library: Shared libraries\n\nPackage: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\nDescription: Debian base system miscellaneous files\n";

fn scanner_registry(scanner: Arc<BuiltinScanner>) -> Registry {
    scanner_registry_over(Arc::new(object_store::memory::InMemory::new()), scanner)
}

fn scanner_registry_over(
    store: Arc<dyn object_store::ObjectStore>,
    scanner: Arc<BuiltinScanner>,
) -> Registry {
    Registry::builder()
        .object_store(store)
        .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
        .scanner(scanner)
        .build()
        .unwrap()
}

async fn scanning_repo(registry: &Registry, name: &str) -> RepoName {
    let repo = repo(name);
    let settings = RepositorySettings {
        scan_on_push: true,
        ..RepositorySettings::default()
    };
    registry.create_repository(&repo, settings).await.unwrap();
    repo
}

fn debian_layer(status: &str) -> Bytes {
    let mut tar = TarBuilder::new();
    tar.dir("etc")
        .symlink("etc/os-release", "../usr/lib/os-release")
        .dir("usr/lib")
        .file("usr/lib/os-release", BOOKWORM.as_bytes(), 0o644)
        .dir("var/lib/dpkg")
        .file("var/lib/dpkg/status", status.as_bytes(), 0o644);
    Bytes::from(gzip(&tar.finish()))
}

fn image(layers: &[Bytes]) -> Image {
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    Image::of(&config, &layers.iter().collect::<Vec<_>>()).with_layer_media_type(GZIP)
}

async fn push_and_wait(registry: &Registry, repo: &RepoName, image: &Image) -> Digest {
    let digest = image.push(registry, repo, &tag("latest")).await.unwrap();
    registry.wait_for_scans().await;
    digest
}

fn osv_dir(records: &[serde_json::Value]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, record) in records.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.json")), record.to_string()).unwrap();
    }
    dir
}

fn looney_tunables(ecosystem: &str) -> serde_json::Value {
    json!({
        "id": format!("DEBIAN-CVE-2023-4911-{}", ecosystem.replace(':', "-")),
        "aliases": ["CVE-2023-4911"],
        "modified": "2023-10-03T18:00:00Z",
        "summary": "buffer overflow in ld.so's GLIBC_TUNABLES handling",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{
            "package": {"ecosystem": ecosystem, "name": "glibc"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u3"}]}]
        }]
    })
}

#[tokio::test]
async fn scan_on_push_stores_an_sbom_and_findings_as_referrers() {
    let scanner = Arc::new(BuiltinScanner::new());
    let osv = osv_dir(&[looney_tunables("Debian:12"), looney_tunables("Debian:11")]);
    scanner.load_database(osv.path()).unwrap();
    let registry = scanner_registry(scanner);
    let repo = scanning_repo(&registry, "team/app").await;
    let digest = push_and_wait(&registry, &repo, &image(&[debian_layer(STATUS)])).await;

    let found = registry.scan_findings(&repo, &digest).await.unwrap();
    assert_eq!(
        found.scan.status,
        ScanStatus::Complete,
        "{:?}",
        found.scan.reason
    );
    // One advisory for Debian 12; the Debian 11 record must not match.
    assert_eq!(found.findings.len(), 1, "{:#?}", found.findings);
    let finding = &found.findings[0];
    assert_eq!(finding.severity, Severity::High);
    assert_eq!(finding.package.name, "libc6");
    assert_eq!(finding.fixed_version.as_deref(), Some("2.36-9+deb12u3"));

    let inventory = registry.scan_inventory(&repo, &digest).await.unwrap();
    assert_eq!(
        inventory.os.as_ref().map(|os| os.id.as_str()),
        Some("debian")
    );
    let names: Vec<_> = inventory
        .packages
        .iter()
        .map(|p| {
            (
                p.package.kind,
                p.package.name.as_str(),
                p.package.version.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (PackageKind::Dpkg, "base-files", "12.4+deb12u5"),
            (PackageKind::Dpkg, "libc6", "2.36-9+deb12u1"),
        ]
    );

    // Both results are referrers of the image, found by artifact type.
    for artifact_type in [
        "application/vnd.cyclonedx+json",
        wharf::scan::FINDINGS_ARTIFACT_TYPE,
    ] {
        let referrers = registry
            .referrers(&repo, &digest, Some(artifact_type))
            .await
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(&referrers.index).unwrap();
        assert_eq!(
            index["manifests"].as_array().unwrap().len(),
            1,
            "{artifact_type}"
        );
    }
}

#[tokio::test]
async fn nothing_is_scanned_without_scan_on_push_and_on_demand_scans_work() {
    let registry = scanner_registry(Arc::new(BuiltinScanner::new()));
    let repo = repo("plain");
    let digest = push_and_wait(&registry, &repo, &image(&[debian_layer(STATUS)])).await;
    assert_eq!(registry.scan_status(&repo, &digest).await.unwrap(), None);
    let err = registry.scan_findings(&repo, &digest).await.unwrap_err();
    assert_eq!(err.kind(), wharf::ErrorKind::ScanNotFound);

    let started = registry.start_scan(&repo, &digest).await.unwrap();
    assert_eq!(started.status, ScanStatus::InProgress);
    registry.wait_for_scans().await;
    let done = registry.scan_status(&repo, &digest).await.unwrap().unwrap();
    assert_eq!(done.status, ScanStatus::Complete);
    assert!(done.sbom.is_some() && done.findings_artifact.is_some());
}

#[tokio::test]
async fn whiteouts_in_upper_layers_change_the_inventory() {
    let registry = scanner_registry(Arc::new(BuiltinScanner::new()));
    let repo = scanning_repo(&registry, "whiteouts").await;
    let base = debian_layer(STATUS);

    // The status file deleted by a whiteout: no dpkg packages.
    let mut deleted = TarBuilder::new();
    deleted.file("var/lib/dpkg/.wh.status", b"", 0o644);
    let deleted = Bytes::from(gzip(&deleted.finish()));
    let digest = push_and_wait(&registry, &repo, &image(&[base.clone(), deleted])).await;
    let inventory = registry.scan_inventory(&repo, &digest).await.unwrap();
    assert!(inventory.packages.is_empty(), "{:?}", inventory.packages);

    // Replaced by a smaller status: only what the upper one lists, from the upper layer.
    let only_base_files = STATUS.split("\n\n").nth(1).unwrap();
    let mut replaced = TarBuilder::new();
    replaced.file("var/lib/dpkg/status", only_base_files.as_bytes(), 0o644);
    let replaced = Bytes::from(gzip(&replaced.finish()));
    let upper = crate::common::sha256(&replaced).to_string();
    let digest = push_and_wait(&registry, &repo, &image(&[base.clone(), replaced])).await;
    let inventory = registry.scan_inventory(&repo, &digest).await.unwrap();
    let packages: Vec<_> = inventory
        .packages
        .iter()
        .map(|p| (p.package.name.as_str(), p.layer.as_deref()))
        .collect();
    assert_eq!(packages, vec![("base-files", Some(upper.as_str()))]);

    // An opaque directory hides the lower status; a status of its own layer stays.
    let mut opaque = TarBuilder::new();
    opaque
        .file("var/lib/dpkg/status", only_base_files.as_bytes(), 0o644)
        .file("var/lib/dpkg/.wh..wh..opq", b"", 0o644);
    let opaque = Bytes::from(gzip(&opaque.finish()));
    let digest = push_and_wait(&registry, &repo, &image(&[base, opaque])).await;
    let inventory = registry.scan_inventory(&repo, &digest).await.unwrap();
    assert_eq!(inventory.packages.len(), 1);
    assert_eq!(inventory.packages[0].package.name, "base-files");
}

/// Pushes an image of `layers` (as `media_type`) and returns its scan.
async fn scan_of(
    registry: &Registry,
    name: &str,
    layers: Vec<Bytes>,
    media_type: &str,
) -> wharf::ImageScan {
    let repo = scanning_repo(registry, name).await;
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let image =
        Image::of(&config, &layers.iter().collect::<Vec<_>>()).with_layer_media_type(media_type);
    let digest = push_and_wait(registry, &repo, &image).await;
    registry.scan_status(&repo, &digest).await.unwrap().unwrap()
}

fn assert_status(scan: &wharf::ImageScan, status: ScanStatus, reason: &str) {
    assert_eq!(scan.status, status, "{:?}", scan.reason);
    let said = scan.reason.as_deref().unwrap_or_default();
    assert!(
        said.contains(reason),
        "reason {said:?} does not say {reason:?}"
    );
}

#[tokio::test]
async fn hostile_layers_end_in_failed_or_unsupported_with_a_reason() {
    let limits = ScanLimits {
        walk: WalkLimits {
            expansion: wharf::scan::decompress::ExpansionLimits {
                max_bytes: 64 << 20,
                max_ratio: 100,
                ratio_floor: 1 << 20,
            },
            ..WalkLimits::default()
        },
        ..ScanLimits::default()
    };
    let registry = scanner_registry(Arc::new(BuiltinScanner::with_limits(limits)));

    let mut traversal = TarBuilder::new();
    traversal.file("../../etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644);
    let scan = scan_of(
        &registry,
        "traversal",
        vec![gzip(&traversal.finish()).into()],
        GZIP,
    )
    .await;
    assert_status(&scan, ScanStatus::Failed, "climbs out of the image root");

    let mut looped = TarBuilder::new();
    looped
        .symlink("etc/os-release", "../usr/lib/os-release")
        .symlink("usr/lib/os-release", "/etc/os-release");
    let scan = scan_of(&registry, "loop", vec![gzip(&looped.finish()).into()], GZIP).await;
    assert_status(&scan, ScanStatus::Failed, "symlink loop");

    let mut truncated = TarBuilder::new();
    truncated.file("var/lib/dpkg/status", STATUS.as_bytes(), 0o644);
    let mut cut = truncated.unfinished();
    cut.truncate(700);
    let scan = scan_of(&registry, "truncated", vec![gzip(&cut).into()], GZIP).await;
    assert_status(&scan, ScanStatus::Failed, "ends early");

    let mut corrupt = TarBuilder::new().file("a", b"x", 0o644).finish();
    corrupt[0] ^= 0xff; // the checksum no longer matches the name
    let scan = scan_of(&registry, "checksum", vec![gzip(&corrupt).into()], GZIP).await;
    assert_status(&scan, ScanStatus::Failed, "bad checksum");

    // A header that claims far more bytes than the layer holds.
    let mut absurd = TarBuilder::new();
    let mut header = TarBuilder::header("big", b'0', 0, 0o644, "");
    header[124..136].copy_from_slice(b"77777777777\0");
    TarBuilder::seal(&mut header);
    absurd.raw(&header).raw(&[0u8; 512]);
    let scan = scan_of(
        &registry,
        "absurd",
        vec![gzip(&absurd.unfinished()).into()],
        GZIP,
    )
    .await;
    assert_status(&scan, ScanStatus::Failed, "ends early");

    // 200 MiB of zeros: a few hundred KiB of gzip, well past a 100:1 ratio.
    let zeros = vec![0u8; 200 << 20];
    let bomb = TarBuilder::new().file("zeros", &zeros, 0o644).finish();
    let scan = scan_of(&registry, "bomb", vec![gzip(&bomb).into()], GZIP).await;
    assert_status(&scan, ScanStatus::Failed, "decompression bomb");

    let mut garbage = gzip(STATUS.as_bytes());
    garbage.truncate(garbage.len() / 2);
    let scan = scan_of(&registry, "gzip", vec![garbage.into()], GZIP).await;
    assert_eq!(scan.status, ScanStatus::Failed, "{:?}", scan.reason);

    let scan = scan_of(
        &registry,
        "wasm",
        vec![Bytes::from_static(b"\0asm")],
        "application/wasm",
    )
    .await;
    assert_status(
        &scan,
        ScanStatus::UnsupportedImage,
        "not a filesystem layer",
    );
}

#[tokio::test]
async fn rematching_uses_the_stored_sbom_and_needs_no_layer() {
    let scanner = Arc::new(BuiltinScanner::new());
    let store = Arc::new(wharf::testing::FaultyStore::new(Arc::new(
        object_store::memory::InMemory::new(),
    )));
    let registry = scanner_registry_over(store.clone(), scanner.clone());
    let repo = scanning_repo(&registry, "rematch").await;
    let layer = debian_layer(STATUS);
    let image = image(std::slice::from_ref(&layer));
    let digest = push_and_wait(&registry, &repo, &image).await;
    let before = registry.scan_findings(&repo, &digest).await.unwrap();
    assert!(before.findings.is_empty());
    let old_findings = before.scan.findings_artifact.clone().unwrap();

    // New data: the rematch reads the stored SBOM, never the layer.
    store.take_gets();
    let osv = osv_dir(&[looney_tunables("Debian:12")]);
    scanner.load_database(osv.path()).unwrap();
    let report = registry.rematch_scans(None).await.unwrap();
    assert_eq!((report.rematched, report.rescanned), (1, 0), "{report:?}");
    let after = registry.scan_findings(&repo, &digest).await.unwrap();
    assert_eq!(after.scan.status, ScanStatus::Complete);
    assert_eq!(after.findings.len(), 1);
    assert_eq!(after.scan.database, scanner.database());
    let layer_hex = image.digest(&layer).hex().to_owned();
    let gets = store.take_gets();
    assert!(!gets.is_empty());
    assert!(
        gets.iter()
            .all(|(path, _)| !path.as_ref().contains(&layer_hex)),
        "the layer was read: {gets:?}"
    );
    // The superseded findings artifact is gone; one findings referrer remains.
    assert!(
        registry
            .stat_manifest(&repo, &wharf::Reference::Digest(old_findings))
            .await
            .is_err()
    );
    let second = registry.rematch_scans(None).await.unwrap();
    assert_eq!((second.rematched, second.current), (0, 1));
}

#[tokio::test]
async fn an_index_reports_its_platform_manifests_combined() {
    let registry = scanner_registry(Arc::new(BuiltinScanner::new()));
    let repo = scanning_repo(&registry, "multi").await;
    let amd = image(&[debian_layer(STATUS)]);
    let arm = image(&[debian_layer(STATUS.split("\n\n").nth(1).unwrap())]);
    let mut children = Vec::new();
    for image in [&amd, &arm] {
        let manifest = image.manifest();
        let digest = image
            .push(
                &registry,
                &repo,
                &wharf::Reference::Digest(image.digest(&manifest)),
            )
            .await
            .unwrap();
        children.push((digest, manifest.len()));
    }
    let index = crate::common::images::index(&children);
    let pushed = registry
        .push_manifest(&repo, &tag("multi"), index, Some(wharf::OCI_IMAGE_INDEX))
        .await
        .unwrap();
    registry.wait_for_scans().await;
    let combined = registry.scan_findings(&repo, &pushed.digest).await.unwrap();
    assert_eq!(combined.scan.status, ScanStatus::Complete);
    for (child, _) in &children {
        let scan = registry.scan_status(&repo, child).await.unwrap().unwrap();
        assert_eq!(scan.status, ScanStatus::Complete);
    }
}

/// The whole scan path on this machine's own files: a layer made by GNU tar of its dpkg
/// database and os-release (a symlink on Debian), whose inventory must equal what
/// `dpkg-query` lists.
#[tokio::test]
async fn the_inventory_of_this_machines_dpkg_database_equals_dpkg_query() {
    let Ok(output) = std::process::Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${Package}\t${Architecture}\t${Version}\t${db:Status-Status}\n",
        ])
        .output()
    else {
        eprintln!("skipped: dpkg-query is not installed");
        return;
    };
    let mut expected: Vec<(String, String, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[3] == "installed").then(|| {
                (
                    fields[0].to_owned(),
                    fields[2].to_owned(),
                    fields[1].to_owned(),
                )
            })
        })
        .collect();
    expected.sort();
    let layer = gnu_tar(
        std::path::Path::new("/"),
        &[
            "var/lib/dpkg/status",
            "etc/os-release",
            "usr/lib/os-release",
        ],
    );
    let registry = scanner_registry(Arc::new(BuiltinScanner::new()));
    let repo = scanning_repo(&registry, "this-machine").await;
    let digest = push_and_wait(&registry, &repo, &image(&[Bytes::from(gzip(&layer))])).await;
    let inventory = registry.scan_inventory(&repo, &digest).await.unwrap();
    let mut found: Vec<(String, String, String)> = inventory
        .packages
        .iter()
        .map(|p| {
            (
                p.package.name.clone(),
                p.package.version.clone(),
                p.package.arch.clone().unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let id = inventory
        .os
        .expect("os-release found through its symlink")
        .id;
    assert!(os.contains(&format!("ID={id}\n")), "{id} vs {os}");
}

/// A finished scan is an event in the outbox, which the ECR format renders as EventBridge's
/// "ECR Image Scan" with the counts and the image's tags.
#[tokio::test]
async fn a_finished_scan_is_an_ecr_image_scan_event() {
    let scanner = Arc::new(BuiltinScanner::new());
    let osv = osv_dir(&[looney_tunables("Debian:12")]);
    scanner.load_database(osv.path()).unwrap();
    let registry = scanner_registry(scanner);
    let recorder = crate::common::Recorder::new("scans");
    let subscriber: Arc<dyn wharf::Subscriber> = recorder.clone();
    let dispatcher = registry
        .dispatcher(vec![subscriber], wharf::DispatchOptions::default())
        .await
        .unwrap();
    let repo = scanning_repo(&registry, "events").await;
    let digest = push_and_wait(&registry, &repo, &image(&[debian_layer(STATUS)])).await;
    crate::common::drain(&dispatcher).await;
    let scanned: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|r| r.event.kind() == "image_scanned")
        .collect();
    assert_eq!(scanned.len(), 1, "{:?}", recorder.kinds());
    let origin = wharf::events::format::Origin {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        source: "//registry".into(),
        host: "registry".into(),
    };
    let body = wharf::events::format::Format::Ecr
        .render(&scanned[0], &origin)
        .unwrap();
    assert_eq!(body["detail-type"], "ECR Image Scan");
    assert_eq!(
        body["resources"][0],
        "arn:aws:ecr:eu-west-1:123456789012:repository/events"
    );
    assert_eq!(
        body["detail"],
        json!({
            "scan-status": "COMPLETE",
            "repository-name": "events",
            "finding-severity-counts": {"HIGH": 1},
            "image-digest": digest.to_string(),
            "image-tags": ["latest"],
        })
    );
}
