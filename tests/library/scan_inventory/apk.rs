//! apk: the hand-written Alpine 3.19 database (`tests/vectors/scan/apk-installed`, see
//! its README for where its facts come from) and hostile databases.

use wharf::scan::inventory::apk::{INSTALLED, MAX_PACKAGES, MAX_VALUE_LEN, parse_installed};
use wharf::scan::package::{Package, PackageKind, SourcePackage};

use super::vectors;

fn fixture() -> Vec<u8> {
    std::fs::read(vectors().join("apk-installed")).unwrap()
}

/// `(name, version, origin, licence)` of each package of the fixture, in file order.
const ALPINE_3_19: [(&str, &str, &str, &str); 15] = [
    (
        "alpine-baselayout-data",
        "3.4.3-r2",
        "alpine-baselayout",
        "GPL-2.0-only",
    ),
    ("musl", "1.2.4_git20230717-r4", "musl", "MIT"),
    ("busybox", "1.36.1-r15", "busybox", "GPL-2.0-only"),
    ("busybox-binsh", "1.36.1-r15", "busybox", "GPL-2.0-only"),
    (
        "alpine-baselayout",
        "3.4.3-r2",
        "alpine-baselayout",
        "GPL-2.0-only",
    ),
    ("alpine-keys", "2.4-r1", "alpine-keys", "MIT"),
    (
        "ca-certificates-bundle",
        "20230506-r0",
        "ca-certificates",
        "MPL-2.0 AND MIT",
    ),
    ("libcrypto3", "3.1.4-r2", "openssl", "Apache-2.0"),
    ("libssl3", "3.1.4-r2", "openssl", "Apache-2.0"),
    ("ssl_client", "1.36.1-r15", "busybox", "GPL-2.0-only"),
    ("zlib", "1.3-r2", "zlib", "Zlib"),
    ("apk-tools", "2.14.0-r5", "apk-tools", "GPL-2.0-only"),
    ("scanelf", "1.3.7-r2", "pax-utils", "GPL-2.0-only"),
    (
        "musl-utils",
        "1.2.4_git20230717-r4",
        "musl",
        "MIT AND BSD-2-Clause AND GPL-2.0-or-later",
    ),
    (
        "libc-utils",
        "0.7.2-r5",
        "libc-dev",
        "BSD-2-Clause AND BSD-3-Clause",
    ),
];

#[test]
fn an_alpine_3_19_database_lists_its_packages_with_their_origins() {
    let packages = parse_installed(&fixture(), INSTALLED).unwrap();
    let expected: Vec<Package> = ALPINE_3_19
        .iter()
        .map(|&(name, version, origin, license)| Package {
            kind: PackageKind::Apk,
            name: name.to_owned(),
            version: version.to_owned(),
            source: Some(SourcePackage {
                name: origin.to_owned(),
                version: None,
            }),
            arch: Some("x86_64".to_owned()),
            license: Some(license.to_owned()),
            path: INSTALLED.to_owned(),
        })
        .collect();
    assert_eq!(packages, expected);
}

#[test]
fn a_truncated_database_reads_as_a_prefix_or_fails() {
    let data = fixture();
    let full = parse_installed(&data, INSTALLED).unwrap();
    let mut refused = 0;
    for cut in 0..data.len() {
        let Ok(found) = parse_installed(&data[..cut], INSTALLED) else {
            refused += 1;
            continue;
        };
        // Every package but the one the cut went through is whole and in place.
        let whole = found.len().saturating_sub(1);
        assert_eq!(found[..whole], full[..whole], "cut at {cut}");
        assert!(found.len() <= full.len());
    }
    // Cuts inside `P:`/`V:` lines (`P:` alone, or no `V:` yet) and just after the
    // `C:` line are refused.
    assert!(refused > ALPINE_3_19.len(), "{refused}");
}

fn error_reason(data: &[u8]) -> String {
    let error = parse_installed(data, INSTALLED).unwrap_err();
    assert_eq!(error.format, "apk installed");
    error
        .reason
        .strip_prefix(&format!("{INSTALLED}: "))
        .unwrap()
        .to_owned()
}

#[test]
fn malformed_stanzas_name_their_line() {
    let cases: [(&[u8], &str); 7] = [
        (
            b"P:a\nV:1\nP:b\n",
            "line 3: a second P: line in the stanza (the first is line 1)",
        ),
        (b"C:Q1x=\nV:1-r0\n", "the stanza at line 1 has no P: line"),
        (b"P:a\nA:x86_64\n\n", "the stanza at line 1 has no V: line"),
        (b"P:a b\nV:1\n", "line 1: P:\"a b\" is not one word"),
        (
            b"P:a\nV:1\nfile list\n",
            "line 3: not of the form `letter:value`",
        ),
        (b"P:a\nV:1\xfe\n", "line 2: the V: value is not UTF-8"),
        (
            b"P:a\nV:1\nL:\xa9 2023\n",
            "line 3: the L: value is not UTF-8",
        ),
    ];
    for (data, reason) in cases {
        assert_eq!(error_reason(data), reason);
    }
}

#[test]
fn unread_lines_may_be_anything() {
    let data = b"C:Q1x=\nP:a\nV:1.0-r0\nT:caf\xe9 \xff\nR:\x80\x81\nL:\n\n\n\nP:b\nV:2-r1\n";
    let packages = parse_installed(data, INSTALLED).unwrap();
    let summary: Vec<(&str, &str, Option<&str>)> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.license.as_deref()))
        .collect();
    // An empty `L:` is no licence; runs of empty lines are one separator.
    assert_eq!(summary, [("a", "1.0-r0", None), ("b", "2-r1", None)]);
    assert_eq!(packages[0].source, None);
}

#[test]
fn enormous_lines_are_skipped_or_refused() {
    let huge_description = format!("P:a\nV:1-r0\nT:{}\nL:MIT\n", "x".repeat(8 << 20));
    let packages = parse_installed(huge_description.as_bytes(), INSTALLED).unwrap();
    assert_eq!(packages[0].license.as_deref(), Some("MIT"));
    let long_licence = format!("P:a\nV:1-r0\nL:{}\n", "MIT OR ".repeat(MAX_VALUE_LEN));
    assert_eq!(
        error_reason(long_licence.as_bytes()),
        "line 3: the L: value is longer than 1024 bytes"
    );
}

#[test]
fn more_than_the_cap_of_packages_is_refused() {
    let one = "P:p\nV:1-r0\n\n";
    let mut data = one.repeat(MAX_PACKAGES);
    assert_eq!(
        parse_installed(data.as_bytes(), INSTALLED).unwrap().len(),
        MAX_PACKAGES
    );
    data.push_str(one);
    assert!(error_reason(data.as_bytes()).starts_with("more than 200000 packages"));
}
