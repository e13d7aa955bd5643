//! Matching packages of each ecosystem against the OSV records in
//! `tests/vectors/scan/osv`, on the right distribution release, with the right fixed
//! version and severity, and counting what cannot be matched.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::json;
use wharf::scan::osv::severity::RatingSource;
use wharf::scan::osv::{NotCovered, OsvDatabase};
use wharf::scan::{Finding, OsRelease, Package, PackageKind, Severity, SourcePackage};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan/osv")
}

/// The vectors directory, loaded once.
fn database() -> &'static OsvDatabase {
    static DATABASE: OnceLock<OsvDatabase> = OnceLock::new();
    DATABASE.get_or_init(|| {
        OsvDatabase::from_dir(&vectors())
            .expect("the vectors load")
            .0
    })
}

fn os(id: &str, version_id: &str) -> OsRelease {
    OsRelease {
        id: id.to_owned(),
        version_id: Some(version_id.to_owned()),
        ..OsRelease::default()
    }
}

fn package(kind: PackageKind, name: &str, version: &str) -> Package {
    Package {
        kind,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
        arch: None,
        license: None,
        path: "test".to_owned(),
    }
}

/// An OS package built from source package `source`, at `source_version` when it
/// differs from the package's.
fn built_from(
    kind: PackageKind,
    name: &str,
    version: &str,
    source: &str,
    source_version: Option<&str>,
) -> Package {
    Package {
        source: Some(SourcePackage {
            name: source.to_owned(),
            version: source_version.map(str::to_owned),
        }),
        ..package(kind, name, version)
    }
}

/// `(name, fixed version)` of each finding.
fn found(os: Option<&OsRelease>, package: &Package) -> Vec<(String, Option<String>)> {
    database()
        .matches(os, package)
        .into_iter()
        .map(|f| (f.name, f.fixed_version))
        .collect()
}

fn one(name: &str, fixed: &str) -> Vec<(String, Option<String>)> {
    vec![(name.to_owned(), Some(fixed.to_owned()))]
}

/// The single finding for `package`.
fn the_finding(os: Option<&OsRelease>, package: &Package) -> Finding {
    let mut findings = database().matches(os, package);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    findings.remove(0)
}

#[test]
fn debian_matches_the_source_package_on_its_own_release() {
    let bookworm = os("debian", "12");
    let libc6 = |version: &str, source_version: Option<&str>| {
        built_from(PackageKind::Dpkg, "libc6", version, "glibc", source_version)
    };
    let finding = the_finding(Some(&bookworm), &libc6("2.36-9+deb12u1", None));
    assert_eq!(finding.name, "CVE-2023-4911");
    assert_eq!(finding.package.name, "libc6");
    assert_eq!(finding.fixed_version.as_deref(), Some("2.36-9+deb12u3"));
    assert_eq!(finding.aliases, ["DEBIAN-CVE-2023-4911"]);
    assert_eq!(
        finding.uri,
        "https://security-tracker.debian.org/tracker/CVE-2023-4911"
    );
    // Debian's record has no severity; Ubuntu's record of the same CVE has NVD's vector.
    assert_eq!(finding.severity, Severity::High);
    assert_eq!(
        finding.cvss.as_ref().map(|c| c.score.to_string()),
        Some("7.8".to_owned())
    );

    // Fixed: the Debian 13 entry, whose fix is a later version, must not apply.
    assert_eq!(found(Some(&bookworm), &libc6("2.36-9+deb12u3", None)), []);
    // A binNMU of the fixed source: dpkg records the source version, which is compared.
    assert_eq!(
        found(
            Some(&bookworm),
            &libc6("2.36-9+deb12u3+b1", Some("2.36-9+deb12u3"))
        ),
        []
    );
    // A binNMU of a vulnerable source without the source version still sorts below the fix.
    assert_eq!(
        found(Some(&bookworm), &libc6("2.36-9+deb12u1+b1", None)),
        one("CVE-2023-4911", "2.36-9+deb12u3")
    );
    // Debian 11 has no entry in the record (its glibc predates the bug).
    assert_eq!(
        found(Some(&os("debian", "11")), &libc6("2.31-13+deb11u5", None)),
        []
    );
    // The Debian 13 entry applies on Debian 13.
    assert_eq!(
        found(Some(&os("debian", "13")), &libc6("2.37-11", None)),
        one("CVE-2023-4911", "2.37-12")
    );
}

#[test]
fn debian_openssl_per_release_with_tilde_versions() {
    let libssl3 =
        |version: &str| built_from(PackageKind::Dpkg, "libssl3", version, "openssl", None);
    let bookworm = os("debian", "12");
    let finding = the_finding(Some(&bookworm), &libssl3("3.0.11-1~deb12u1"));
    assert_eq!(finding.name, "DSA-5532-1");
    assert_eq!(finding.fixed_version.as_deref(), Some("3.0.11-1~deb12u2"));
    assert_eq!(
        finding.severity,
        Severity::Undefined,
        "a DSA carries no severity"
    );
    assert_eq!(found(Some(&bookworm), &libssl3("3.0.11-1~deb12u2")), []);
    // The unstable upload the backport came from sorts after it.
    assert_eq!(found(Some(&bookworm), &libssl3("3.0.11-1")), []);

    let bullseye = os("debian", "11.8");
    let libssl = built_from(
        PackageKind::Dpkg,
        "libssl1.1",
        "1.1.1n-0+deb11u3",
        "openssl",
        None,
    );
    assert_eq!(
        found(Some(&bullseye), &libssl),
        one("DSA-5343-1", "1.1.1n-0+deb11u4")
    );
}

#[test]
fn ubuntu_matches_lts_releases_only_on_their_own_release() {
    let jammy = os("ubuntu", "22.04");
    let libc6 = |version: &str| built_from(PackageKind::Dpkg, "libc6", version, "glibc", None);
    let finding = the_finding(Some(&jammy), &libc6("2.35-0ubuntu3.1"));
    assert_eq!(finding.name, "CVE-2023-4911");
    assert_eq!(finding.aliases, ["UBUNTU-CVE-2023-4911"]);
    assert_eq!(finding.fixed_version.as_deref(), Some("2.35-0ubuntu3.4"));
    assert_eq!(finding.severity, Severity::High);
    assert_eq!(
        finding.uri,
        "https://osv.dev/vulnerability/UBUNTU-CVE-2023-4911"
    );
    // Fixed on 22.04, though below the 24.04 entry's fix.
    assert_eq!(found(Some(&jammy), &libc6("2.35-0ubuntu3.4")), []);
    assert_eq!(
        found(Some(&os("ubuntu", "24.04")), &libc6("2.38-1ubuntu5")),
        one("CVE-2023-4911", "2.38-1ubuntu6")
    );
}

#[test]
fn alpine_matches_the_origin_on_its_branch() {
    let libcrypto3 =
        |version: &str| built_from(PackageKind::Apk, "libcrypto3", version, "openssl", None);
    let v3_18 = os("alpine", "3.18.4");
    assert_eq!(
        found(Some(&v3_18), &libcrypto3("3.1.4-r0")),
        one("CVE-2023-5678", "3.1.4-r1")
    );
    assert_eq!(found(Some(&v3_18), &libcrypto3("3.1.4-r1")), []);
    assert_eq!(
        found(Some(&os("alpine", "3.19.0")), &libcrypto3("3.1.4-r0")),
        []
    );
}

#[test]
fn pypi_normalises_names_and_merges_two_advisories_of_one_cve() {
    let requests = |name: &str, version: &str| package(PackageKind::Python, name, version);
    let finding = the_finding(None, &requests("Requests", "2.28.1"));
    assert_eq!(finding.name, "CVE-2023-32681");
    assert_eq!(finding.aliases, ["GHSA-j8r2-6x86-q33q", "PYSEC-2023-74"]);
    assert_eq!(finding.severity, Severity::Medium);
    assert_eq!(finding.fixed_version.as_deref(), Some("2.31.0"));
    assert_eq!(
        finding.uri,
        "https://nvd.nist.gov/vuln/detail/CVE-2023-32681"
    );
    let attributes = finding.attributes();
    assert!(
        attributes.contains(&("CVSS3_SCORE", "6.1".to_owned())),
        "{attributes:?}"
    );
    assert!(attributes.contains(&("package_version", "2.28.1".to_owned())));
    // A release candidate of the fix is still before it; the range starts at 2.3.0.
    assert_eq!(found(None, &requests("requests", "2.31.0rc1")).len(), 1);
    assert_eq!(found(None, &requests("requests", "2.31.0")), []);
    assert_eq!(found(None, &requests("requests", "2.2.1")), []);
}

#[test]
fn npm_go_and_crates() {
    let lodash = the_finding(None, &package(PackageKind::Npm, "lodash", "4.17.20"));
    assert_eq!(
        (lodash.name.as_str(), lodash.severity),
        ("CVE-2021-23337", Severity::High)
    );
    assert_eq!(lodash.cvss.map(|c| c.score.tenths()), Some(72));
    assert_eq!(
        found(None, &package(PackageKind::Npm, "lodash-es", "4.17.15")),
        one("CVE-2021-23337", "4.17.21")
    );
    assert_eq!(
        found(None, &package(PackageKind::Npm, "lodash", "4.17.21")),
        []
    );

    // A pseudo-version from 2022 and the one the report names as vulnerable.
    let net = |version: &str| package(PackageKind::Go, "golang.org/x/net", version);
    assert_eq!(
        found(None, &net("v0.0.0-20220722155237-a158d28d115b")),
        one("CVE-2022-41723", "0.7.0")
    );
    assert_eq!(
        found(None, &net("v0.6.1-0.20230213185550-547e7edf3873")),
        one("CVE-2022-41723", "0.7.0")
    );
    assert_eq!(found(None, &net("v0.7.0")), []);
    let go = the_finding(None, &package(PackageKind::Go, "stdlib", "v1.20.0"));
    assert_eq!(go.fixed_version.as_deref(), Some("1.20.1"));
    assert_eq!(
        go.severity,
        Severity::Undefined,
        "the Go database rates nothing"
    );
    assert_eq!(
        found(None, &package(PackageKind::Go, "stdlib", "v1.19.6")),
        []
    );

    let openssl = |version: &str| package(PackageKind::Cargo, "openssl", version);
    assert_eq!(
        found(None, &openssl("0.10.54")),
        one("RUSTSEC-2023-0044", "0.10.55")
    );
    assert_eq!(found(None, &openssl("0.9.24")), []);
    assert_eq!(found(None, &openssl("0.10.55")), []);
}

#[test]
fn almalinux_compares_epochs() {
    let alma9 = os("almalinux", "9.3");
    let devel = |version: &str| {
        built_from(
            PackageKind::Rpm,
            "openssl-devel",
            version,
            "openssl",
            Some("3.0.7-25.el9"),
        )
    };
    let finding = the_finding(Some(&alma9), &devel("1:3.0.7-25.el9"));
    assert_eq!(finding.name, "ALSA-2024:2447");
    assert_eq!(finding.fixed_version.as_deref(), Some("1:3.0.7-27.el9"));
    assert_eq!(
        finding.severity,
        Severity::Low,
        "from the erratum's summary"
    );
    assert_eq!(
        finding.uri,
        "https://access.redhat.com/errata/RHSA-2024:2447"
    );
    assert_eq!(found(Some(&alma9), &devel("1:3.0.7-27.el9")), []);
    // Without an epoch a version is epoch 0: below any epoch-1 fix.
    assert_eq!(found(Some(&alma9), &devel("3.0.9-1.el9")).len(), 1);
    assert_eq!(
        found(Some(&os("almalinux", "8.9")), &devel("1:3.0.7-25.el9")),
        []
    );
}

#[test]
fn red_hat_streams_of_the_major_release() {
    // RHSA-2024:2447's fix as Red Hat files it, per product stream.
    let stream = |ecosystem: &str, fixed: &str| {
        json!({"package": {"ecosystem": ecosystem, "name": "openssl"},
               "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]})
    };
    let record = json!({
        "id": "RHSA-2024:2447", "modified": "2024-04-30T00:00:00Z",
        "summary": "Low: openssl and openssl-fips-provider security update",
        "affected": [stream("Red Hat:enterprise_linux:9::baseos", "1:3.0.7-27.el9"),
                     stream("Red Hat:enterprise_linux:9::appstream", "1:3.0.7-27.el9"),
                     stream("Red Hat:enterprise_linux:8::baseos", "1:1.1.1k-12.el8")]
    });
    let (database, _) =
        OsvDatabase::from_records([("rhsa".to_owned(), record.to_string().into_bytes())]);
    let libs =
        |version: &str| built_from(PackageKind::Rpm, "openssl-libs", version, "openssl", None);
    let on = |release: &str, version: &str| {
        database
            .matches(Some(&os("rhel", release)), &libs(version))
            .into_iter()
            .map(|f| f.fixed_version)
            .collect::<Vec<_>>()
    };
    // Found through two streams, reported once.
    assert_eq!(
        on("9.4", "1:3.0.7-25.el9"),
        [Some("1:3.0.7-27.el9".to_owned())]
    );
    assert_eq!(
        on("8.9", "1:1.1.1k-9.el8"),
        [Some("1:1.1.1k-12.el8".to_owned())]
    );
    assert_eq!(on("9.4", "1:3.0.7-27.el9"), Vec::<Option<String>>::new());
}

#[test]
fn what_is_not_matched_is_counted() {
    let packages = [
        package(PackageKind::Rpm, "openssl", "1:3.0.8-1.amzn2023.0.11"),
        package(PackageKind::Rpm, "glibc", "2.34-52.amzn2023.0.8"),
        package(PackageKind::Python, "requests", "2.28.1"),
        package(PackageKind::Python, "requests", "two point twenty-eight"),
    ];
    let report = database().match_inventory(Some(&os("amzn", "2023")), &packages);
    assert_eq!(report.findings.len(), 1, "the Python package still matches");
    assert_eq!(
        report.not_covered.get(&NotCovered::NoData {
            distribution: "amzn".into()
        }),
        Some(&2)
    );
    assert_eq!(report.unreadable_count, 1);
    assert_eq!(
        report.unreadable[0].advisory, None,
        "the installed version is what cannot be read"
    );
    let notes = report.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("OSV has no data for amzn (2 packages)"),
        "{notes:?}"
    );

    let report = database().match_inventory(
        None,
        [&package(PackageKind::Dpkg, "libc6", "2.36-9+deb12u1")],
    );
    assert_eq!(
        report.not_covered.keys().collect::<Vec<_>>(),
        [&NotCovered::UnknownOs {
            kind: PackageKind::Dpkg
        }]
    );
    assert!(report.findings.is_empty());
}

#[test]
fn findings_are_sorted_most_severe_first() {
    let packages = [
        package(PackageKind::Go, "stdlib", "v1.20.0"),
        package(PackageKind::Python, "requests", "2.28.1"),
        package(PackageKind::Npm, "lodash", "4.17.20"),
    ];
    let report = database().match_inventory(None, &packages);
    let severities: Vec<Severity> = report.findings.iter().map(|f| f.severity).collect();
    assert_eq!(
        severities,
        [Severity::High, Severity::Medium, Severity::Undefined]
    );
}

#[test]
fn matching_a_thousand_packages_against_many_records_is_by_index() {
    // 40 000 records over 4 000 npm packages, one of which is vulnerable per package
    // at versions below 1.0.5.
    let records = (0..40_000u32).map(|i| {
        let record = json!({
            "id": format!("GHSA-test-{i:05}"), "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "npm", "name": format!("package-{}", i % 4_000)},
                "ranges": [{"type": "SEMVER", "events": [
                    {"introduced": "0"},
                    {"fixed": if i < 4_000 { "1.0.5".to_owned() } else { format!("0.{}.0", i / 4_000) }}]}]}]
        });
        (format!("{i}.json"), record.to_string().into_bytes())
    });
    let (database, report) = OsvDatabase::from_records(records);
    assert_eq!(report.loaded, 40_000);
    let packages: Vec<Package> = (0..1_000)
        .map(|i| package(PackageKind::Npm, &format!("package-{i}"), "1.0.4"))
        .collect();
    let started = std::time::Instant::now();
    let report = database.match_inventory(None, &packages);
    let elapsed = started.elapsed();
    assert_eq!(report.findings.len(), 1_000);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.fixed_version.as_deref() == Some("1.0.5"))
    );
    // Ten candidates a package: far below a second even unoptimised on a busy machine.
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn findings_record_where_their_rating_came_from() {
    let bookworm = os("debian", "12");
    let libc6 = built_from(PackageKind::Dpkg, "libc6", "2.36-9+deb12u1", "glibc", None);
    let advisory = database().advisory("DEBIAN-CVE-2023-4911").unwrap();
    assert_eq!(advisory.rating.source, RatingSource::None);
    assert_eq!(
        database()
            .advisory("UBUNTU-CVE-2023-4911")
            .unwrap()
            .rating
            .source,
        RatingSource::CvssV3
    );
    assert_eq!(
        the_finding(Some(&bookworm), &libc6).severity,
        Severity::High
    );
}
