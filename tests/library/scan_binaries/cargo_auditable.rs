//! `cargo auditable` sections: a Rust program built here by `rustc` with the section the
//! way `cargo auditable` links it, the checked-in build of it, and sections that are
//! bombs, truncated, or not the expected JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf::scan::inventory::cargo_auditable::{
    self, AuditError, AuditedCrate, CrateSource, DependencyKind, MAX_CRATES, MAX_JSON_BYTES,
};
use wharf::scan::package::PackageKind;

use super::{SHT_NOBITS, TestSection, elf64, have_tool, progbits, read_vector, run, vectors, zlib};

/// The packages `rust-auditable.json` yields: runtime crates from crates.io and git,
/// and the local root crate; not the build-only crates (`cc`, the proc-macro stack) nor
/// the local workspace member `app-core`.
const REPORTED: [(&str, &str); 8] = [
    ("anyhow", "1.0.86"),
    ("app", "0.1.0"),
    ("itoa", "1.0.11"),
    ("log", "0.4.22"),
    ("memchr", "2.7.4"),
    ("ryu", "1.0.18"),
    ("serde", "1.0.204"),
    ("serde_json", "1.0.120"),
];

/// A Rust program carrying `json`, zlib-compressed, in a `.dep-v0` section: a `#[used]`
/// static placed there by `link_section`, which is how `cargo auditable` embeds it.
fn build_auditable(dir: &Path, json: &[u8]) -> PathBuf {
    let compressed = zlib(json);
    std::fs::write(dir.join("deps.zlib"), &compressed).unwrap();
    let source = format!(
        "#[used]\n\
         #[unsafe(link_section = \".dep-v0\")]\n\
         static DEPENDENCIES: [u8; {}] = *include_bytes!(\"deps.zlib\");\n\
         \n\
         fn main() {{\n    println!(\"built with an audit section\");\n}}\n",
        compressed.len()
    );
    std::fs::write(dir.join("main.rs"), source).unwrap();
    let binary = dir.join("app");
    run(Command::new("rustc")
        .args(["--edition", "2024", "-C", "strip=debuginfo", "-o"])
        .arg(&binary)
        .arg(dir.join("main.rs")));
    binary
}

fn reported(binary: &[u8]) -> Vec<(String, String)> {
    let packages = cargo_auditable::parse(binary, "usr/bin/app").unwrap();
    for package in &packages {
        assert_eq!(package.kind, PackageKind::Cargo);
        assert_eq!(package.path, "usr/bin/app");
    }
    packages.into_iter().map(|p| (p.name, p.version)).collect()
}

fn expected() -> Vec<(String, String)> {
    REPORTED
        .iter()
        .map(|(name, version)| (name.to_string(), version.to_string()))
        .collect()
}

#[test]
fn a_rustc_build_with_an_audit_section_yields_its_runtime_crates() {
    let test = "a_rustc_build_with_an_audit_section_yields_its_runtime_crates";
    if !have_tool("rustc", "--version", test) {
        return;
    }
    let json = read_vector("rust-auditable.json");
    let dir = tempfile::tempdir().unwrap();
    let binary = std::fs::read(build_auditable(dir.path(), &json)).unwrap();
    assert_eq!(reported(&binary), expected());
    let crates = cargo_auditable::read_crates(&binary).unwrap().unwrap();
    assert_eq!(crates.len(), 15);
}

#[test]
fn the_vector_yields_its_runtime_crates() {
    let binary = read_vector("rust-auditable");
    assert_eq!(reported(&binary), expected());
}

#[test]
fn every_recorded_crate_is_read_with_its_source_and_kind() {
    let crates = cargo_auditable::read_crates(&read_vector("rust-auditable"))
        .unwrap()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&read_vector("rust-auditable.json")).unwrap();
    let listed = json["packages"].as_array().unwrap();
    assert_eq!(crates.len(), listed.len());
    for (audited, entry) in crates.iter().zip(listed) {
        assert_eq!(audited.name, entry["name"].as_str().unwrap());
        assert_eq!(audited.version, entry["version"].as_str().unwrap());
        assert_eq!(
            String::from(audited.source.clone()),
            entry["source"].as_str().unwrap()
        );
        let build = entry["kind"].as_str() == Some("build");
        assert_eq!(audited.kind == DependencyKind::Build, build, "{audited:?}");
        assert_eq!(audited.root, entry["root"] == true, "{audited:?}");
    }
    let root = crates.iter().find(|c| c.root).unwrap();
    assert_eq!(
        (root.name.as_str(), &root.source),
        ("app", &CrateSource::Local)
    );
    let log = crates.iter().find(|c| c.name == "log").unwrap();
    assert_eq!(log.source, CrateSource::Git);
}

#[test]
#[ignore = "writes tests/vectors/scan/binaries; run by hand to rebuild the vectors"]
fn regenerate_rust_vector() {
    let dir = tempfile::tempdir().unwrap();
    let binary = build_auditable(dir.path(), &read_vector("rust-auditable.json"));
    std::fs::copy(binary, vectors().join("rust-auditable")).unwrap();
}

#[test]
fn which_crates_are_reported() {
    use CrateSource::{CratesIo, Git, Local, Other, Registry};
    use DependencyKind::{Build, Runtime};
    let audited = |source: CrateSource, kind: DependencyKind, root: bool| AuditedCrate {
        name: "c".to_owned(),
        version: "1.0.0".to_owned(),
        source,
        kind,
        root,
    };
    for (source, kind, root, expected) in [
        (CratesIo, Runtime, false, true),
        (Registry, Runtime, false, true),
        (Git, Runtime, false, true),
        (Local, Runtime, true, true),
        (Local, Runtime, false, false),
        (Other("svn".to_owned()), Runtime, false, false),
        (CratesIo, Build, false, false),
        (Local, Build, true, false),
    ] {
        let audited = audited(source, kind, root);
        assert_eq!(audited.is_reported(), expected, "{audited:?}");
    }
}

/// A binary whose `.dep-v0` section holds `bytes`.
fn with_section(bytes: &[u8]) -> Vec<u8> {
    elf64(&[progbits(".text", b"\xc3"), progbits(".dep-v0", bytes)])
}

#[test]
fn a_binary_without_the_section_yields_nothing() {
    assert_eq!(
        cargo_auditable::parse(&read_vector("go-hello"), "app"),
        Ok(Vec::new())
    );
    let plain = elf64(&[progbits(".text", b"\xc3")]);
    assert_eq!(cargo_auditable::read_crates(&plain), Ok(None));
}

#[test]
fn a_zlib_bomb_is_refused() {
    // Valid JSON, padded with whitespace to one byte past the cap: 8 MiB of it
    // compresses to a few kilobytes.
    let mut json =
        br#"{"packages":[{"name":"a","version":"1.0.0","source":"crates.io"}]}"#.to_vec();
    let at_cap = {
        let mut padded = json.clone();
        padded.resize(MAX_JSON_BYTES, b' ');
        padded
    };
    json.resize(MAX_JSON_BYTES + 1, b' ');
    let bomb = zlib(&json);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    assert_eq!(
        cargo_auditable::read_crates(&with_section(&bomb)),
        Err(AuditError::TooLarge)
    );
    let error = cargo_auditable::parse(&with_section(&bomb), "app").unwrap_err();
    assert_eq!(error.format, "cargo auditable");
    assert!(
        error.reason.contains("inflates to more than 8388608 bytes"),
        "{error}"
    );
    // Exactly at the cap is still read.
    assert_eq!(
        cargo_auditable::decode_section(&zlib(&at_cap)).map(|c| c.len()),
        Ok(1)
    );
}

#[test]
fn sections_that_do_not_inflate_are_refused() {
    let stream = zlib(&read_vector("rust-auditable.json"));
    for damaged in [
        &stream[..stream.len() / 2],
        &stream[..2],
        b"{\"packages\":[]}".as_slice(),
    ] {
        assert!(
            matches!(
                cargo_auditable::decode_section(damaged),
                Err(AuditError::Inflate { .. })
            ),
            "{:?}",
            cargo_auditable::decode_section(damaged)
        );
    }
    // A `SHT_NOBITS` section has no bytes to inflate.
    let nobits = elf64(&[TestSection {
        name: ".dep-v0",
        kind: SHT_NOBITS,
        flags: 0,
        bytes: &[0; 64],
    }]);
    assert!(matches!(
        cargo_auditable::read_crates(&nobits),
        Err(AuditError::Inflate { .. })
    ));
}

#[test]
fn json_of_another_shape_is_refused() {
    for json in [
        r#"["not", "an", "object"]"#,
        r#"{"crates":[]}"#,
        r#"{"packages":[{"name":"a","version":"1.0.0"}]}"#,
        r#"{"packages":[{"name":"a","version":"1.0.0","source":"crates.io","kind":"dev"}]}"#,
        r#"{"packages":[{"name":"a","version":"1.0.0","source":7}]}"#,
        r#"{"packages":[{"name":"a""#,
    ] {
        assert!(
            matches!(
                cargo_auditable::decode_section(&zlib(json.as_bytes())),
                Err(AuditError::Json { .. })
            ),
            "{json}"
        );
    }
    // Unknown fields and sources are kept apart, not refused.
    let newer =
        r#"{"format":8,"packages":[{"name":"a","version":"1.0.0","source":"sparse","extra":{}}]}"#;
    let crates = cargo_auditable::decode_section(&zlib(newer.as_bytes())).unwrap();
    assert_eq!(crates[0].source, CrateSource::Other("sparse".to_owned()));
}

#[test]
fn the_crate_count_is_capped() {
    let list = |count: usize| {
        let entry = r#"{"name":"a","version":"1.0.0","source":"crates.io"}"#;
        format!(r#"{{"packages":[{}]}}"#, vec![entry; count].join(","))
    };
    let at_cap = cargo_auditable::decode_section(&zlib(list(MAX_CRATES).as_bytes())).unwrap();
    assert_eq!(at_cap.len(), MAX_CRATES);
    match cargo_auditable::decode_section(&zlib(list(MAX_CRATES + 1).as_bytes())) {
        Err(AuditError::Json { reason }) => {
            assert!(reason.contains("more than 20000 packages"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
