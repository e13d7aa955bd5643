//! Scanning through the registry server: `--scan-on-push` with `--vuln-db`, an image
//! pushed over `/v2/` and scanned after the push answered; the results fetched as
//! referrers by oci-client and through the ECR API by boto3 (`DescribeImageScanFindings`,
//! `DescribeImages`, `StartImageScan`, `PutImageScanningConfiguration`).

use crate::common;

use std::io::Write;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{Value, json};

use common::http::{descriptor, digest_of};
use common::layers::{TarBuilder, gzip};
use common::server::RegistryServer;

use super::auth::{ALICE, as_user, users_file};
use super::ecr::{boto3_with, have_boto3};

const STATUS: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u1\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n";

/// The Looney Tunables advisory for Debian 12 (fixed in 2.36-9+deb12u3), and the same
/// for Debian 11, which must not match.
fn osv_records(dir: &std::path::Path) {
    for (file, ecosystem, fixed) in [
        ("d12.json", "Debian:12", "2.36-9+deb12u3"),
        ("d11.json", "Debian:11", "2.31-13+deb11u7"),
    ] {
        let record = json!({
            "id": format!("DEBIAN-CVE-2023-4911-{file}"),
            "aliases": ["CVE-2023-4911"],
            "summary": "buffer overflow in ld.so's GLIBC_TUNABLES handling",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": ecosystem, "name": "glibc"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}],
        });
        let mut out = std::fs::File::create(dir.join(file)).unwrap();
        out.write_all(record.to_string().as_bytes()).unwrap();
    }
}

fn debian_layer() -> Vec<u8> {
    let mut tar = TarBuilder::new();
    tar.symlink("etc/os-release", "../usr/lib/os-release")
        .file(
            "usr/lib/os-release",
            b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            0o644,
        )
        .file("var/lib/dpkg/status", STATUS.as_bytes(), 0o644);
    gzip(&tar.finish())
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_images_are_scanned_and_their_results_served_as_referrers_and_by_the_ecr_api() {
    if !have_boto3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let osv = dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    osv_records(&osv);
    let users = users_file(dir.path());
    let server = RegistryServer::spawn(
        &dir.path().join("data"),
        vec![
            "--auth".into(),
            users.display().to_string(),
            "--scan-on-push".into(),
            "--vuln-db".into(),
            osv.display().to_string(),
        ],
    )
    .expect("the server starts");
    let alice = as_user(&server, ALICE.0, ALICE.1);

    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux"})).unwrap();
    let layer = debian_layer();
    alice.push_blob("team/app", &config).await;
    alice.push_blob("team/app", &layer).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
    }))
    .unwrap();
    alice.put_manifest("team/app", "v1", &manifest).await;
    let digest = digest_of(&manifest);

    // The ECR API: wait for the scan, then its findings, the summary in DescribeImages,
    // an on-demand scan and the repository's setting.
    let answer = boto3_with(
        &server,
        &format!(
            r#"
import time
DIGEST = "{digest}"
image = {{"imageDigest": DIGEST}}
for _ in range(300):
    found = alice.describe_image_scan_findings(repositoryName="team/app", imageId=image)
    if found["imageScanStatus"]["status"] != "IN_PROGRESS":
        break
    time.sleep(0.1)
assert found["imageScanStatus"]["status"] == "COMPLETE", found
findings = found["imageScanFindings"]["findings"]
assert [f["name"] for f in findings] == ["CVE-2023-4911"], findings
assert findings[0]["severity"] == "HIGH", findings
attributes = {{a["key"]: a["value"] for a in findings[0]["attributes"]}}
assert attributes["package_name"] == "libc6", attributes
assert attributes["package_version"] == "2.36-9+deb12u1", attributes
assert attributes["CVSS3_SCORE"] == "7.8", attributes
assert found["imageScanFindings"]["findingSeverityCounts"] == {{"HIGH": 1}}, found
details = alice.describe_images(repositoryName="team/app", imageIds=[{{"imageTag": "v1"}}])["imageDetails"]
assert details[0]["imageScanStatus"]["status"] == "COMPLETE", details
assert details[0]["imageScanFindingsSummary"]["findingSeverityCounts"] == {{"HIGH": 1}}, details
started = alice.start_image_scan(repositoryName="team/app", imageId={{"imageTag": "v1"}})
assert started["imageScanStatus"]["status"] in ("IN_PROGRESS", "COMPLETE"), started
assert started["imageId"]["imageDigest"] == DIGEST, started
for _ in range(300):
    again = alice.describe_image_scan_findings(repositoryName="team/app", imageId=image)
    if again["imageScanStatus"]["status"] != "IN_PROGRESS":
        break
    time.sleep(0.1)
assert again["imageScanFindings"]["findingSeverityCounts"] == {{"HIGH": 1}}, again
assert error_of(bob.start_image_scan, repositoryName="team/app", imageId=image) == "AccessDeniedException"
set = alice.put_image_scanning_configuration(repositoryName="team/app",
    imageScanningConfiguration={{"scanOnPush": False}})
assert set["imageScanningConfiguration"] == {{"scanOnPush": False}}, set
repo = alice.describe_repositories(repositoryNames=["team/app"])["repositories"][0]
assert repo["imageScanningConfiguration"] == {{"scanOnPush": False}}, repo
assert error_of(alice.describe_image_scan_findings, repositoryName="team/app",
    imageId={{"imageTag": "nope"}}) == "ImageNotFoundException"
print(json.dumps({{"ok": True}}))
"#
        ),
        &[],
    );
    assert_eq!(answer, json!({"ok": true}));

    // The SBOM and the findings as referrers, found by oci-client.
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let auth = RegistryAuth::Basic(ALICE.0.into(), ALICE.1.into());
    let image: Reference = format!("{}/team/app@{digest}", server.host())
        .parse()
        .unwrap();
    client
        .auth(&image, &auth, oci_client::RegistryOperation::Pull)
        .await
        .unwrap();
    let referrers = client
        .pull_referrers(&image, Some("application/vnd.cyclonedx+json"))
        .await
        .unwrap();
    assert_eq!(referrers.manifests.len(), 1, "{referrers:?}");
    let sbom_ref: Reference = format!(
        "{}/team/app@{}",
        server.host(),
        referrers.manifests[0].digest
    )
    .parse()
    .unwrap();
    let (sbom_manifest, _) = client.pull_image_manifest(&sbom_ref, &auth).await.unwrap();
    assert_eq!(
        sbom_manifest.artifact_type.as_deref(),
        Some("application/vnd.cyclonedx+json")
    );
    let mut sbom = Vec::new();
    client
        .pull_blob(&sbom_ref, &sbom_manifest.layers[0], &mut sbom)
        .await
        .unwrap();
    let sbom: Value = serde_json::from_slice(&sbom).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(
        purls.contains(&"pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12"),
        "{purls:?}"
    );
    let findings = client
        .pull_referrers(&image, Some(wharf::scan::FINDINGS_ARTIFACT_TYPE))
        .await
        .unwrap();
    assert_eq!(findings.manifests.len(), 1, "{findings:?}");
}
