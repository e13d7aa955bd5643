//! Fuzz bodies for the parsers of package databases, binaries, versions and OSV data:
//! none may panic, and what they accept keeps its invariants.

use crate::scan::inventory::{apk, cargo_auditable, dpkg, go, npm, os_release, python, rpm};

/// Every package-database parser on the same bytes.
pub fn parse_package_databases(data: &[u8]) {
    let _ = os_release::parse(data);
    for packages in [
        dpkg::parse_status(data, dpkg::STATUS),
        dpkg::parse_status(data, "var/lib/dpkg/status.d/x"),
        apk::parse_installed(data, apk::INSTALLED),
        rpm::parse_sqlite(data, rpm::RPMDB_SQLITE[0]),
    ]
    .into_iter()
    .flatten()
    {
        for package in packages {
            assert!(!package.name.is_empty());
        }
    }
    let _ = python::parse_metadata(data, "usr/lib/python3/site-packages/x-1.dist-info/METADATA");
    let _ = npm::parse_package_json(data, "app/node_modules/x/package.json");
}

/// The binary analyzers: ELF sections, Go build info, `cargo auditable`.
pub fn parse_binaries(data: &[u8]) {
    let _ = go::parse(data, "bin/app");
    let _ = cargo_auditable::parse(data, "bin/app");
}
