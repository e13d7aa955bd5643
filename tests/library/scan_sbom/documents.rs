//! The documents as written: what each format holds, reading back what was written,
//! determinism, and golden output. The golden documents are
//! `tests/vectors/scan/sbom/small.{cdx,spdx}.json`; `WHARF_WRITE_VECTORS=1` rewrites them.

use serde_json::Value;
use wharf::scan::package::{OsRelease, Package, PackageKind};
use wharf::scan::sbom::{self, SbomContents, SbomFormat, SbomSubject};

use super::{
    APP_LAYER, BASE_LAYER, DIGEST, FORMATS, created, debian, json, layers, located, package,
    realistic, source, subject, vectors, write,
};

#[test]
fn both_formats_read_back_what_they_wrote() {
    let os = OsRelease {
        id_like: vec!["rhel".to_owned(), "fedora".to_owned()],
        ..debian()
    };
    let mut packages = realistic();
    // Odd but possible values: no layer, an empty version, a name with no purl.
    packages.push((package(PackageKind::Npm, "", "", "app/package.json"), None));
    packages.push((package(PackageKind::Cargo, "ring", "", "usr/bin/x"), None));
    let mut sorted = packages.clone();
    sorted.sort();
    for format in FORMATS {
        for os in [Some(&os), None] {
            let contents = sbom::read(format, &write(format, os, &packages)).unwrap();
            assert_eq!(
                contents,
                SbomContents {
                    os: os.cloned(),
                    packages: sorted.clone(),
                },
                "{format}"
            );
        }
    }
}

#[test]
fn output_is_deterministic_whatever_the_input_order() {
    let packages = realistic();
    let mut reversed = packages.clone();
    reversed.reverse();
    let os = debian();
    for format in FORMATS {
        let first = write(format, Some(&os), &packages);
        assert_eq!(first, write(format, Some(&os), &reversed), "{format}");
        assert!(!first.contains(&b'\n'), "{format} output is pretty-printed");
    }
    // The document id changes with the creation time, and between formats.
    let layers = layers();
    let later = SbomSubject {
        created: created() + chrono::Duration::seconds(1),
        ..subject(Some(&os), &layers)
    };
    let serial = |bytes: &[u8]| json(bytes)["serialNumber"].clone();
    let now = write(SbomFormat::CycloneDx, Some(&os), &packages);
    let then = sbom::write(SbomFormat::CycloneDx, &later, &located(&packages));
    assert_ne!(serial(&now), serial(&then));
    let namespace =
        json(&write(SbomFormat::Spdx, Some(&os), &packages))["documentNamespace"].clone();
    let uuid = serial(&now)
        .as_str()
        .unwrap()
        .trim_start_matches("urn:uuid:")
        .to_owned();
    assert!(!namespace.as_str().unwrap().contains(&uuid));
}

/// The `value`s of the properties named `name`, in order.
fn properties<'a>(component: &'a Value, name: &str) -> Vec<&'a str> {
    component["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .filter_map(|p| p["value"].as_str())
        .collect()
}

#[test]
fn cyclonedx_document_carries_the_image_os_and_packages() {
    let os = debian();
    let bom = json(&write(SbomFormat::CycloneDx, Some(&os), &realistic()));
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert_eq!(bom["version"], 1);
    // A version-4-shaped UUID.
    let serial = bom["serialNumber"].as_str().unwrap();
    let uuid = serial.strip_prefix("urn:uuid:").unwrap();
    let groups: Vec<&str> = uuid.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(
        groups[2].starts_with('4') && "89ab".contains(&groups[3][..1]),
        "{uuid}"
    );
    let metadata = &bom["metadata"];
    assert_eq!(metadata["timestamp"], "2024-05-01T12:00:00Z");
    assert_eq!(metadata["tools"]["components"][0]["name"], "wharf");
    assert_eq!(metadata["tools"]["components"][0]["version"], "0.1.0");
    let image = &metadata["component"];
    assert_eq!(
        (&image["type"], &image["name"], &image["version"]),
        (&"container".into(), &"team/app".into(), &DIGEST.into())
    );
    assert_eq!(
        properties(image, "wharf:image:layer"),
        [BASE_LAYER, APP_LAYER]
    );
    assert_eq!(properties(image, "wharf:image:platform"), ["linux/amd64"]);

    let components = bom["components"].as_array().unwrap();
    assert_eq!(components.len(), 1 + realistic().len());
    let os_component = &components[0];
    assert_eq!(os_component["type"], "operating-system");
    assert_eq!(os_component["name"], "debian");
    assert_eq!(os_component["version"], "12");
    assert_eq!(
        os_component["description"],
        "Debian GNU/Linux 12 (bookworm)"
    );
    assert_eq!(properties(os_component, "wharf:os:codename"), ["bookworm"]);

    let libc = components.iter().find(|c| c["name"] == "libc6").unwrap();
    assert_eq!(libc["type"], "library");
    assert_eq!(libc["version"], "2.36-9+deb12u4");
    assert_eq!(
        libc["licenses"],
        serde_json::json!([{"license": {"name": "LGPL-2.1+"}}])
    );
    assert_eq!(libc["bom-ref"], libc["purl"]);
    for (name, value) in [
        ("wharf:package:kind", "dpkg"),
        ("wharf:package:path", "var/lib/dpkg/status"),
        ("wharf:package:arch", "amd64"),
        ("wharf:layer:digest", BASE_LAYER),
        ("wharf:package:source", "glibc"),
    ] {
        assert_eq!(properties(libc, name), [value], "{name}");
    }
    let bsdutils = components.iter().find(|c| c["name"] == "bsdutils").unwrap();
    assert_eq!(
        properties(bsdutils, "wharf:package:source-version"),
        ["2.38.1-5"]
    );

    // Every bom-ref is unique: the second lodash gets a suffix.
    let refs: Vec<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let mut unique = refs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), refs.len());
    assert!(refs.contains(&"pkg:npm/lodash@4.17.21"));
    assert!(refs.contains(&"pkg:npm/lodash@4.17.21|2"));
}

#[test]
fn spdx_document_carries_the_image_os_and_packages() {
    let os = debian();
    let document = json(&write(SbomFormat::Spdx, Some(&os), &realistic()));
    assert_eq!(document["spdxVersion"], "SPDX-2.3");
    assert_eq!(document["dataLicense"], "CC0-1.0");
    assert_eq!(document["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(document["name"], format!("team/app@{DIGEST}"));
    let namespace = document["documentNamespace"].as_str().unwrap();
    assert!(namespace.starts_with("https://wharf.invalid/spdx/") && !namespace.contains('#'));
    assert_eq!(document["creationInfo"]["created"], "2024-05-01T12:00:00Z");
    assert_eq!(
        document["creationInfo"]["creators"],
        serde_json::json!(["Tool: wharf-0.1.0"])
    );

    let packages = document["packages"].as_array().unwrap();
    assert_eq!(packages.len(), 2 + realistic().len());
    let ids: Vec<&str> = packages
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    for id in &ids {
        let rest = id.strip_prefix("SPDXRef-").unwrap();
        assert!(
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{id}"
        );
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.contains(&"SPDXRef-Package-npm-lodash-4.17.21"));
    assert!(ids.contains(&"SPDXRef-Package-npm-lodash-4.17.21-2"));

    assert_eq!(packages[0]["primaryPackagePurpose"], "CONTAINER");
    assert_eq!(packages[1]["primaryPackagePurpose"], "OPERATING_SYSTEM");
    assert_eq!(packages[1]["name"], "debian");
    let libc = packages.iter().find(|p| p["name"] == "libc6").unwrap();
    assert_eq!(libc["primaryPackagePurpose"], "LIBRARY");
    assert_eq!(libc["versionInfo"], "2.36-9+deb12u4");
    assert_eq!(libc["downloadLocation"], "NOASSERTION");
    assert_eq!(libc["filesAnalyzed"], false);
    assert_eq!(libc["licenseConcluded"], "NOASSERTION");
    assert_eq!(libc["licenseDeclared"], "NOASSERTION");
    assert_eq!(libc["licenseComments"], "LGPL-2.1+");
    assert_eq!(
        libc["externalRefs"],
        serde_json::json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
        }])
    );
    let comments: Vec<&str> = libc["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["annotationType"], "OTHER");
            assert_eq!(a["annotator"], "Tool: wharf-0.1.0");
            a["comment"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        comments,
        [
            "wharf:package:kind=dpkg",
            "wharf:package:path=var/lib/dpkg/status",
            "wharf:package:arch=amd64",
            &format!("wharf:layer:digest={BASE_LAYER}"),
            "wharf:package:source=glibc",
        ]
    );

    // The document describes the image, which contains everything else.
    let relationships = document["relationships"].as_array().unwrap();
    assert_eq!(
        relationships[0],
        serde_json::json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"})
    );
    let contained: Vec<&str> = relationships[1..]
        .iter()
        .map(|r| {
            assert_eq!(
                (&r["spdxElementId"], &r["relationshipType"]),
                (&"SPDXRef-Image".into(), &"CONTAINS".into())
            );
            r["relatedSpdxElement"].as_str().unwrap()
        })
        .collect();
    assert_eq!(contained, ids[1..]);
}

#[test]
fn golden_documents_for_a_small_image() {
    use PackageKind::*;
    let os = debian();
    let packages = vec![
        (
            Package {
                source: source("glibc", None),
                arch: Some("amd64".to_owned()),
                license: Some("LGPL-2.1+".to_owned()),
                ..package(Dpkg, "libc6", "2.36-9+deb12u4", "var/lib/dpkg/status")
            },
            Some(BASE_LAYER.to_owned()),
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
            Some(APP_LAYER.to_owned()),
        ),
    ];
    let write_vectors = std::env::var_os("WHARF_WRITE_VECTORS").is_some();
    for (format, file) in [
        (SbomFormat::CycloneDx, "small.cdx.json"),
        (SbomFormat::Spdx, "small.spdx.json"),
    ] {
        let path = vectors().join("sbom").join(file);
        let written = write(format, Some(&os), &packages);
        if write_vectors {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &written).unwrap();
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            written == golden,
            "{format} output differs from {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&written)
        );
    }
}
