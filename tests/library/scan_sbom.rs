//! SBOMs: purls for each ecosystem, CycloneDX 1.5 and SPDX 2.3 documents checked
//! against the official JSON schemas, reading back what was written, and golden output.
//! The fixtures here are shared by the modules, one per concern.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use wharf::scan::package::{OsRelease, Package, PackageKind, SourcePackage};
use wharf::scan::sbom::{self, LocatedPackage, SbomFormat, SbomSubject};

#[path = "scan_sbom/documents.rs"]
mod documents;
#[path = "scan_sbom/purl.rs"]
mod purl;
#[path = "scan_sbom/reading.rs"]
mod reading;
#[path = "scan_sbom/schema.rs"]
mod schema;

const FORMATS: [SbomFormat; 2] = [SbomFormat::CycloneDx, SbomFormat::Spdx];
const DIGEST: &str = "sha256:6a0f2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
const BASE_LAYER: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const APP_LAYER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan")
}

fn package(kind: PackageKind, name: &str, version: &str, path: &str) -> Package {
    Package {
        kind,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
        arch: None,
        license: None,
        path: path.to_owned(),
    }
}

fn source(name: &str, version: Option<&str>) -> Option<SourcePackage> {
    Some(SourcePackage {
        name: name.to_owned(),
        version: version.map(str::to_owned),
    })
}

fn debian() -> OsRelease {
    OsRelease {
        id: "debian".to_owned(),
        version_id: Some("12".to_owned()),
        version_codename: Some("bookworm".to_owned()),
        id_like: Vec::new(),
        pretty_name: Some("Debian GNU/Linux 12 (bookworm)".to_owned()),
    }
}

/// One of each ecosystem, with the awkward cases: epochs, `+` and `~` in versions, an
/// npm scope, a Python name with `_` and capitals, a Go module path with capitals and a
/// `+incompatible` version, and the same npm package at two paths.
fn realistic() -> Vec<(Package, Option<String>)> {
    use PackageKind::*;
    let status = "var/lib/dpkg/status";
    let base = Some(BASE_LAYER.to_owned());
    let app = Some(APP_LAYER.to_owned());
    vec![
        (
            Package {
                source: source("glibc", None),
                arch: Some("amd64".to_owned()),
                license: Some("LGPL-2.1+".to_owned()),
                ..package(Dpkg, "libc6", "2.36-9+deb12u4", status)
            },
            base.clone(),
        ),
        (
            Package {
                source: source("util-linux", Some("2.38.1-5")),
                arch: Some("amd64".to_owned()),
                ..package(Dpkg, "bsdutils", "1:2.38.1-5+b1", status)
            },
            base.clone(),
        ),
        (
            Package {
                source: source("musl", None),
                arch: Some("x86_64".to_owned()),
                license: Some("MIT".to_owned()),
                ..package(Apk, "musl", "1.2.4_git20230717-r4", "lib/apk/db/installed")
            },
            base.clone(),
        ),
        (
            Package {
                source: source("openssl", Some("3.0.7-27.el9")),
                arch: Some("x86_64".to_owned()),
                license: Some("ASL 2.0".to_owned()),
                ..package(
                    Rpm,
                    "openssl-libs",
                    "1:3.0.7-27.el9",
                    "var/lib/rpm/rpmdb.sqlite",
                )
            },
            base.clone(),
        ),
        (
            Package {
                arch: Some("noarch".to_owned()),
                ..package(Rpm, "tzdata", "2024a~rc1-1.el9", "var/lib/rpm/rpmdb.sqlite")
            },
            base,
        ),
        (
            Package {
                license: Some("BSD-3-Clause".to_owned()),
                ..package(
                    Python,
                    "Typing_Extensions",
                    "4.8.0",
                    "usr/lib/python3/dist-packages/typing_extensions-4.8.0.dist-info/METADATA",
                )
            },
            app.clone(),
        ),
        (
            Package {
                license: Some("MIT".to_owned()),
                ..package(
                    Npm,
                    "@angular/core",
                    "17.0.0",
                    "app/node_modules/@angular/core/package.json",
                )
            },
            app.clone(),
        ),
        (
            package(
                Npm,
                "lodash",
                "4.17.21",
                "app/node_modules/lodash/package.json",
            ),
            app.clone(),
        ),
        (
            package(
                Npm,
                "lodash",
                "4.17.21",
                "app/node_modules/async/node_modules/lodash/package.json",
            ),
            app.clone(),
        ),
        (
            package(
                Go,
                "github.com/BurntSushi/toml",
                "v1.3.2",
                "usr/local/bin/app",
            ),
            app.clone(),
        ),
        (
            package(
                Go,
                "github.com/docker/docker",
                "v24.0.7+incompatible",
                "usr/local/bin/app",
            ),
            app.clone(),
        ),
        (
            package(Go, "stdlib", "1.21.5", "usr/local/bin/app"),
            app.clone(),
        ),
        (
            Package {
                license: Some("MIT OR Apache-2.0".to_owned()),
                ..package(Cargo, "serde", "1.0.193", "usr/local/bin/rg")
            },
            app,
        ),
    ]
}

fn located(packages: &[(Package, Option<String>)]) -> Vec<LocatedPackage<'_>> {
    packages
        .iter()
        .map(|(package, layer)| LocatedPackage {
            package,
            layer: layer.as_deref(),
        })
        .collect()
}

fn created() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn subject<'a>(os: Option<&'a OsRelease>, layers: &'a [String]) -> SbomSubject<'a> {
    SbomSubject {
        repository: "team/app",
        digest: DIGEST,
        platform: Some("linux/amd64"),
        os,
        layers,
        created: created(),
        tool_version: "0.1.0",
    }
}

fn layers() -> Vec<String> {
    vec![BASE_LAYER.to_owned(), APP_LAYER.to_owned()]
}

fn write(
    format: SbomFormat,
    os: Option<&OsRelease>,
    packages: &[(Package, Option<String>)],
) -> Vec<u8> {
    let layers = layers();
    sbom::write(format, &subject(os, &layers), &located(packages))
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn media_types_and_names() {
    assert_eq!(SbomFormat::default(), SbomFormat::CycloneDx);
    for format in FORMATS {
        assert_eq!(SbomFormat::parse(format.as_str()), Some(format));
    }
    assert_eq!(
        SbomFormat::CycloneDx.media_type(),
        "application/vnd.cyclonedx+json"
    );
    assert_eq!(SbomFormat::Spdx.media_type(), "application/spdx+json");
    assert_eq!(SbomFormat::parse("CycloneDX"), None);
}
