//! Fuzz bodies for the binary analyzers: the ELF section reader, Go build info and
//! `cargo auditable` sections. None may panic; what they accept stays within its caps
//! and reads back the same when written out again.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

use crate::scan::inventory::cargo_auditable::{self, AuditError, AuditedCrate};
use crate::scan::inventory::elf;
use crate::scan::inventory::go::{self, BuildInfo, Module};
use crate::scan::package::{Package, PackageKind};

/// `sh_type` of a section that occupies no bytes in the file.
const SHT_NOBITS: u32 = 8;

/// How many distinct section names the ELF body looks up again by name (each lookup
/// reads the whole table, so not all of 65,535).
const NAMES_LOOKED_UP: usize = 16;

/// The input as an ELF file: the listing stays within [`elf::MAX_SECTIONS`]; every
/// section's bytes lie inside the input and have the header's size (none for
/// `SHT_NOBITS`); looking a section up by name gives the first section of that name.
pub fn parse_elf_sections(data: &[u8]) {
    let Ok(sections) = elf::sections(data) else {
        return;
    };
    assert!(sections.len() <= elf::MAX_SECTIONS);
    let file = data.as_ptr_range();
    for section in &sections {
        if let Ok(bytes) = section.bytes(data) {
            let expected = if section.kind == SHT_NOBITS {
                0
            } else {
                section.size
            };
            assert_eq!(bytes.len() as u64, expected, "{section:?}");
            if !bytes.is_empty() {
                let inside = bytes.as_ptr_range();
                assert!(file.start <= inside.start && inside.end <= file.end);
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for section in &sections {
        if names.len() == NAMES_LOOKED_UP {
            break;
        }
        if names.contains(&section.name.as_str()) {
            continue;
        }
        names.push(&section.name);
        assert_eq!(
            elf::section_data(data, &section.name),
            section.bytes(data).map(Some),
            "{section:?}"
        );
    }
}

/// The input as a binary, and as a build info blob with and without the magic in front:
/// packages are Go modules with a name and a version, within the caps; a blob that
/// decodes decodes the same after being written out again.
pub fn parse_go_buildinfo(data: &[u8]) {
    if let Ok(packages) = go::parse(data, "bin/app") {
        check_go_packages(&packages);
    }
    for blob in [data.to_vec(), [go::MAGIC.as_slice(), data].concat()] {
        let Ok(info) = go::decode(&blob) else {
            continue;
        };
        assert!(info.dependencies.len() <= go::MAX_MODULES);
        assert!(info.settings.len() <= go::MAX_SETTINGS);
        check_go_packages(&info.packages("bin/app"));
        assert_eq!(go::decode(&encode_build_info(&info)), Ok(info));
    }
}

fn check_go_packages(packages: &[Package]) {
    assert!(packages.len() <= go::MAX_MODULES + 2);
    for package in packages {
        assert_eq!(package.kind, PackageKind::Go);
        assert!(!package.name.is_empty() && !package.version.is_empty());
        assert!(!package.name.contains(['\t', '\n']), "{package:?}");
    }
}

/// A build info blob (the inline-string layout) holding `info`.
fn encode_build_info(info: &BuildInfo) -> Vec<u8> {
    let line = |kind: &str, module: &Module| {
        let mut line = format!("{kind}\t{}\t{}", module.path, module.version);
        if let Some(checksum) = &module.checksum {
            line.push('\t');
            line.push_str(checksum);
        }
        line.push('\n');
        line
    };
    let mut text = String::new();
    if let Some(path) = &info.main_package {
        text.push_str(&format!("path\t{path}\n"));
    }
    let modules = info.main_module.iter().map(|module| ("mod", module));
    let dependencies = info.dependencies.iter().map(|module| ("dep", module));
    for (kind, module) in modules.chain(dependencies) {
        text.push_str(&line(kind, module));
        if let Some(replacement) = &module.replacement {
            text.push_str(&line("=>", replacement));
        }
    }
    for setting in &info.settings {
        text.push_str(&format!("build\t{}={}\n", setting.key, setting.value));
    }
    let mut modinfo = Vec::new();
    if !text.is_empty() {
        // The toolchain's sentinels around the text.
        modinfo
            .extend_from_slice(b"\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6");
        modinfo.extend_from_slice(text.as_bytes());
        modinfo
            .extend_from_slice(b"\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2");
    }
    let mut blob = go::MAGIC.to_vec();
    blob.extend_from_slice(&[8, 0b10]);
    blob.resize(32, 0);
    for string in [info.go_version.as_bytes(), &modinfo] {
        push_varint(&mut blob, string.len() as u64);
        blob.extend_from_slice(string);
    }
    blob
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The input as a binary, as a `.dep-v0` section, and as the JSON inside one: packages
/// are crates within the caps; JSON that is accepted reads back the same after being
/// written out again; a stream this body compressed always inflates, and is refused as
/// too large exactly when the input is over the cap.
pub fn parse_auditable(data: &[u8]) {
    if let Ok(packages) = cargo_auditable::parse(data, "bin/app") {
        assert!(packages.len() <= cargo_auditable::MAX_CRATES);
        assert!(packages.iter().all(|p| p.kind == PackageKind::Cargo));
    }
    if let Ok(crates) = cargo_auditable::decode_section(data) {
        assert!(crates.len() <= cargo_auditable::MAX_CRATES);
    }
    match cargo_auditable::decode_section(&zlib(data)) {
        Ok(crates) => {
            assert!(crates.len() <= cargo_auditable::MAX_CRATES);
            assert_eq!(
                cargo_auditable::decode_section(&zlib(&list_json(&crates))),
                Ok(crates)
            );
        }
        Err(AuditError::TooLarge) => assert!(data.len() > cargo_auditable::MAX_JSON_BYTES),
        Err(AuditError::Json { .. }) => assert!(data.len() <= cargo_auditable::MAX_JSON_BYTES),
        Err(other) => panic!("a stream compressed here fails with {other}"),
    }
}

fn list_json(crates: &[AuditedCrate]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "packages": crates })).unwrap_or_default()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}
