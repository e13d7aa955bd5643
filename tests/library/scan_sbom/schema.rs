//! Both formats against their official JSON schemas (`tests/vectors/scan/schema/`), by
//! `tests/vectors/scan/validate_sbom.py` with Python's `jsonschema`; skipped, saying so,
//! when python3 or jsonschema is missing.

use std::process::Command;

use wharf::scan::package::{OsRelease, PackageKind};
use wharf::scan::sbom::SbomFormat;

use super::{FORMATS, debian, json, package, realistic, vectors, write};

/// Whether `python3` with `jsonschema` can run; says why not when it cannot.
fn python_with_jsonschema() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import jsonschema, referencing"])
        .output();
    match probe {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            eprintln!(
                "skipping SBOM schema validation: python3 has no jsonschema (pip install jsonschema): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            false
        }
        Err(error) => {
            eprintln!("skipping SBOM schema validation: no python3 ({error})");
            false
        }
    }
}

#[test]
fn documents_validate_against_the_official_schemas() {
    if !python_with_jsonschema() {
        return;
    }
    let os = OsRelease {
        id_like: vec!["debian".to_owned()],
        ..debian()
    };
    let mut packages = realistic();
    packages.push((package(PackageKind::Npm, "", "", "app/package.json"), None));
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        for os in [Some(&os), None] {
            let file = dir.path().join(format!("{format}.json"));
            std::fs::write(&file, write(format, os, &packages)).unwrap();
            let output = Command::new("python3")
                .arg(vectors().join("validate_sbom.py"))
                .arg(vectors().join("schema"))
                .arg(format.as_str())
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{format} fails its schema:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    // The validator does reject: a serial number that is no UUID.
    let mut bom = json(&write(SbomFormat::CycloneDx, Some(&os), &packages));
    bom["serialNumber"] = "urn:uuid:wharf".into();
    let file = dir.path().join("invalid.json");
    std::fs::write(&file, serde_json::to_vec(&bom).unwrap()).unwrap();
    let output = Command::new("python3")
        .arg(vectors().join("validate_sbom.py"))
        .arg(vectors().join("schema"))
        .arg("cyclonedx")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("serialNumber"));
}
