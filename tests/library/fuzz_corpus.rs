//! Replays every kept fuzz input on the stable toolchain.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "fuzz input {} fails", path.display());
        count += 1;
    }
    assert!(count > 0, "no corpus for {target}");
}

#[test]
fn parse_digest_corpus() {
    replay("parse_digest", wharf::testing::fuzz::parse_digest);
}

#[test]
fn parse_names_corpus() {
    replay("parse_names", wharf::testing::fuzz::parse_names);
}

#[test]
fn parse_manifest_corpus() {
    replay("parse_manifest", wharf::testing::fuzz::parse_manifest);
}

#[test]
fn decode_object_corpus() {
    replay("decode_object", wharf::testing::fuzz::decode_object);
}

#[test]
fn parse_policy_corpus() {
    replay("parse_policy", wharf::testing::fuzz::parse_policy);
}

#[test]
fn walk_layer_corpus() {
    replay("walk_layer", wharf::testing::fuzz::walk_layer);
}

#[test]
fn compare_versions_corpus() {
    replay("compare_versions", wharf::testing::fuzz::compare_versions);
}

#[test]
fn parse_osv_record_corpus() {
    replay("parse_osv_record", wharf::testing::fuzz::parse_osv_record);
}

#[test]
fn read_osv_zip_corpus() {
    replay("read_osv_zip", wharf::testing::fuzz::read_osv_zip);
}

#[test]
fn parse_cvss_corpus() {
    replay("parse_cvss", wharf::testing::fuzz::parse_cvss);
}

#[test]
fn parse_elf_sections_corpus() {
    replay(
        "parse_elf_sections",
        wharf::testing::fuzz::parse_elf_sections,
    );
}

#[test]
fn parse_go_buildinfo_corpus() {
    replay(
        "parse_go_buildinfo",
        wharf::testing::fuzz::parse_go_buildinfo,
    );
}

#[test]
fn parse_auditable_corpus() {
    replay("parse_auditable", wharf::testing::fuzz::parse_auditable);
}

#[test]
fn read_sqlite_corpus() {
    replay("read_sqlite", wharf::testing::fuzz::read_sqlite);
}

#[test]
fn parse_rpm_header_corpus() {
    replay("parse_rpm_header", wharf::testing::fuzz::parse_rpm_header);
}

#[test]
fn read_rpm_bdb_corpus() {
    replay("read_rpm_bdb", wharf::testing::fuzz::read_rpm_bdb);
}

#[test]
fn parse_dpkg_corpus() {
    replay("parse_dpkg", wharf::testing::fuzz::parse_dpkg);
}

#[test]
fn parse_apk_corpus() {
    replay("parse_apk", wharf::testing::fuzz::parse_apk);
}

#[test]
fn parse_python_metadata_corpus() {
    replay(
        "parse_python_metadata",
        wharf::testing::fuzz::parse_python_metadata,
    );
}

#[test]
fn parse_npm_package_corpus() {
    replay("parse_npm_package", wharf::testing::fuzz::parse_npm_package);
}

#[test]
fn parse_os_release_corpus() {
    replay("parse_os_release", wharf::testing::fuzz::parse_os_release);
}

#[test]
fn parse_purl_corpus() {
    replay("parse_purl", wharf::testing::fuzz::parse_purl);
}

#[test]
fn read_sbom_corpus() {
    replay("read_sbom", wharf::testing::fuzz::read_sbom);
}
