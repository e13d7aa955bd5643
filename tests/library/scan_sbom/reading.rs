//! Reading back: documents that are not what wharf writes are refused with an error that
//! names the element and the fact, and what other tools add is ignored.

use serde_json::Value;
use wharf::scan::package::PackageKind;
use wharf::scan::sbom::purl::PurlError;
use wharf::scan::sbom::{self, MAX_FACTS, MAX_SBOM_BYTES, SbomContents, SbomError, SbomFormat};

use super::{FORMATS, debian, json, realistic, write};

/// Writes `format`, lets `edit` change the JSON, and reads it back.
fn read_edited(
    format: SbomFormat,
    edit: impl FnOnce(&mut Value),
) -> Result<SbomContents, SbomError> {
    let os = debian();
    let mut document = json(&write(format, Some(&os), &realistic()));
    edit(&mut document);
    sbom::read(format, &serde_json::to_vec(&document).unwrap())
}

/// The CycloneDX component or SPDX package for `libc6`.
fn libc_element(format: SbomFormat, document: &mut Value) -> &mut Value {
    let list = match format {
        SbomFormat::CycloneDx => "components",
        SbomFormat::Spdx => "packages",
    };
    document[list]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|element| element["name"] == "libc6")
        .unwrap()
}

#[test]
fn reading_names_what_is_wrong_with_a_document() {
    let libc_ref = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12";
    let libc_id = "SPDXRef-Package-dpkg-libc6-2.36-9-deb12u4";
    for format in FORMATS {
        let element = match format {
            SbomFormat::CycloneDx => libc_ref,
            SbomFormat::Spdx => libc_id,
        }
        .to_owned();
        let facts = match format {
            SbomFormat::CycloneDx => "properties",
            SbomFormat::Spdx => "annotations",
        };
        // The other format's document.
        let other = match format {
            SbomFormat::CycloneDx => SbomFormat::Spdx,
            SbomFormat::Spdx => SbomFormat::CycloneDx,
        };
        let wrong = sbom::read(format, &write(other, Some(&debian()), &realistic()));
        assert!(
            matches!(wrong, Err(SbomError::WrongFormat { .. })),
            "{format}: {wrong:?}"
        );
        // Not JSON at all.
        let garbage = sbom::read(format, b"{\"components\": [");
        assert!(
            matches!(garbage, Err(SbomError::Malformed { .. })),
            "{format}"
        );
        // Over the size cap, refused before parsing.
        let huge = vec![b' '; MAX_SBOM_BYTES + 1];
        assert_eq!(
            sbom::read(format, &huge),
            Err(SbomError::TooLarge {
                size: MAX_SBOM_BYTES + 1
            })
        );
        // A fact missing, then one twice.
        let missing = read_edited(format, |d| {
            libc_element(format, d)[facts]
                .as_array_mut()
                .unwrap()
                .remove(0);
        });
        assert_eq!(
            missing,
            Err(SbomError::MissingFact {
                element: element.clone(),
                fact: "wharf:package:kind"
            })
        );
        let twice = read_edited(format, |d| {
            let list = libc_element(format, d)[facts].as_array_mut().unwrap();
            let path = list[1].clone();
            list.push(path);
        });
        assert_eq!(
            twice,
            Err(SbomError::DuplicateFact {
                element: element.clone(),
                fact: "wharf:package:path"
            })
        );
        // A purl of another ecosystem, and one that is no purl.
        let set_purl = |d: &mut Value, purl: &str| match format {
            SbomFormat::CycloneDx => libc_element(format, d)["purl"] = purl.into(),
            SbomFormat::Spdx => {
                libc_element(format, d)["externalRefs"][0]["referenceLocator"] = purl.into()
            }
        };
        let mismatch = read_edited(format, |d| set_purl(d, "pkg:apk/alpine/libc6@1"));
        assert!(
            matches!(
                &mismatch,
                Err(SbomError::PurlMismatch {
                    kind: PackageKind::Dpkg,
                    ..
                })
            ),
            "{mismatch:?}"
        );
        let bad = read_edited(format, |d| set_purl(d, "libc6"));
        assert!(
            matches!(
                &bad,
                Err(SbomError::BadPurl {
                    error: PurlError::NoScheme,
                    ..
                })
            ),
            "{bad:?}"
        );
        // More properties on one element than the cap.
        let crowded = read_edited(format, |d| {
            let list = libc_element(format, d)[facts].as_array_mut().unwrap();
            let last = list.last().unwrap().clone();
            list.resize(MAX_FACTS + 1, last);
        });
        match crowded {
            Err(SbomError::Malformed { reason, .. }) => {
                assert!(
                    reason.contains(&format!("more than {MAX_FACTS}")),
                    "{reason}"
                )
            }
            other => panic!("{format}: {other:?}"),
        }
    }
    // Unknown kinds, and a source version without its source.
    let unknown = read_edited(SbomFormat::CycloneDx, |d| {
        libc_element(SbomFormat::CycloneDx, d)["properties"][0]["value"] = "deb".into();
    });
    assert_eq!(
        unknown,
        Err(SbomError::BadFact {
            element: libc_ref.to_owned(),
            fact: "wharf:package:kind",
            value: "deb".to_owned()
        })
    );
    let orphan = read_edited(SbomFormat::Spdx, |d| {
        let annotations = libc_element(SbomFormat::Spdx, d)["annotations"]
            .as_array_mut()
            .unwrap();
        annotations.retain(|a| a["comment"] != "wharf:package:source=glibc");
        let mut version = annotations[0].clone();
        version["comment"] = "wharf:package:source-version=2.36-9".into();
        annotations.push(version);
    });
    assert_eq!(
        orphan,
        Err(SbomError::BadFact {
            element: libc_id.to_owned(),
            fact: "wharf:package:source-version",
            value: "2.36-9".to_owned()
        })
    );
    // Two operating systems.
    let two = read_edited(SbomFormat::CycloneDx, |d| {
        let components = d["components"].as_array_mut().unwrap();
        let mut second = components[0].clone();
        second["bom-ref"] = "os:ubuntu".into();
        components.push(second);
    });
    assert_eq!(
        two,
        Err(SbomError::TwoOperatingSystems {
            element: "os:ubuntu".to_owned()
        })
    );
}

#[test]
fn reading_ignores_what_other_tools_add() {
    let os = debian();
    let expected = sbom::read(
        SbomFormat::CycloneDx,
        &write(SbomFormat::CycloneDx, Some(&os), &realistic()),
    )
    .unwrap();
    let edited = read_edited(SbomFormat::CycloneDx, |d| {
        let components = d["components"].as_array_mut().unwrap();
        components.push(serde_json::json!({"type": "file", "name": "README"}));
        components[1]["properties"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "syft:package:type", "value": "deb"}));
        d["dependencies"] = serde_json::json!([]);
    });
    assert_eq!(edited, Ok(expected));
}
