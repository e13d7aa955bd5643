//! Package URLs: what each ecosystem's packages are named, and the parser against the
//! specification's examples, lenient input and malformed input.

use wharf::scan::package::{OsRelease, Package, PackageKind};
use wharf::scan::sbom::purl::{Purl, PurlError};

use super::{debian, package, realistic};

#[test]
fn purls_follow_the_spec_for_each_ecosystem() {
    let os = debian();
    let purls: Vec<String> = realistic()
        .iter()
        .map(|(package, _)| Purl::of(package, Some(&os)).unwrap().to_string())
        .collect();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
            // dpkg keeps the epoch in the version; `:` is never encoded.
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12",
            "pkg:apk/debian/musl@1.2.4_git20230717-r4?arch=x86_64&distro=debian-12",
            // rpm moves the epoch to a qualifier.
            "pkg:rpm/debian/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=debian-12&epoch=1",
            "pkg:rpm/debian/tzdata@2024a~rc1-1.el9?arch=noarch&distro=debian-12",
            "pkg:pypi/typing-extensions@4.8.0",
            "pkg:npm/%40angular/core@17.0.0",
            "pkg:npm/lodash@4.17.21",
            "pkg:npm/lodash@4.17.21",
            "pkg:golang/github.com/BurntSushi/toml@v1.3.2",
            "pkg:golang/github.com/docker/docker@v24.0.7%2Bincompatible",
            "pkg:golang/stdlib@1.21.5",
            "pkg:cargo/serde@1.0.193",
        ]
    );
}

#[test]
fn os_packages_take_their_namespace_and_distro_from_os_release() {
    use PackageKind::*;
    let alpine = OsRelease {
        id: "alpine".to_owned(),
        version_id: Some("3.19.1".to_owned()),
        ..OsRelease::default()
    };
    let testing = OsRelease {
        id: "debian".to_owned(),
        version_codename: Some("trixie".to_owned()),
        ..OsRelease::default()
    };
    let busybox = Package {
        arch: Some("aarch64".to_owned()),
        ..package(Apk, "BusyBox", "1.36.1-r15", "lib/apk/db/installed")
    };
    let purl = |package: &Package, os: Option<&OsRelease>| {
        Purl::of(package, os).map(|purl| purl.to_string())
    };
    assert_eq!(
        purl(&busybox, Some(&alpine)).as_deref(),
        Some("pkg:apk/alpine/busybox@1.36.1-r15?arch=aarch64&distro=alpine-3.19.1")
    );
    let dash = package(Dpkg, "dash", "0.5.12-9", "var/lib/dpkg/status");
    assert_eq!(
        purl(&dash, Some(&testing)).as_deref(),
        Some("pkg:deb/debian/dash@0.5.12-9?distro=debian-trixie")
    );
    // No os-release: no vendor to name, so no namespace and no distro.
    assert_eq!(purl(&dash, None).as_deref(), Some("pkg:deb/dash@0.5.12-9"));
    // Nothing to name: no purl at all.
    assert_eq!(purl(&package(Npm, "@scope/", "1.0.0", "x"), None), None);
    assert_eq!(purl(&package(Cargo, "", "1.0.0", "x"), None), None);
}

#[test]
fn purl_parser_reads_the_spec_examples_and_writes_them_back() {
    for text in [
        "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie",
        "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64",
        "pkg:rpm/fedora/centerim@4.22.10-1.el6?arch=i686&distro=fedora-25&epoch=1",
        "pkg:apk/alpine/curl@7.83.0-r0?arch=x86",
        "pkg:npm/%40angular/animation@12.3.1",
        "pkg:npm/mypackage@12.4.5?vcs_url=git:%2F%2Fhost.com%2F%2Fpath%2Fto%2Frepo.git%404345abcd34343",
        "pkg:golang/github.com/gorilla/context@234fd47e07d1004f0aed9c#api",
        "pkg:golang/google.golang.org/genproto#googleapis/api/annotations",
        "pkg:pypi/django-allauth@12.23",
        "pkg:cargo/rand@0.7.2",
    ] {
        let purl = Purl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(purl.to_string(), text);
    }
    let angular = Purl::parse("pkg:npm/%40angular/animation@12.3.1").unwrap();
    assert_eq!(angular.namespace, ["@angular"]);
    assert_eq!(angular.name, "animation");
    let go =
        Purl::parse("pkg:golang/google.golang.org/genproto#googleapis/api/annotations").unwrap();
    assert_eq!(go.namespace, ["google.golang.org"]);
    assert_eq!(go.version, None);
    assert_eq!(go.subpath, ["googleapis", "api", "annotations"]);
    let vcs = Purl::parse("pkg:npm/mypackage@12.4.5?vcs_url=git:%2F%2Fhost.com%2F%2Fpath%2Fto%2Frepo.git%404345abcd34343").unwrap();
    assert_eq!(
        vcs.qualifiers["vcs_url"],
        "git://host.com//path/to/repo.git@4345abcd34343"
    );
}

#[test]
fn purl_parser_writes_lenient_input_in_canonical_form() {
    for (text, canonical) in [
        // Scheme, type and qualifier keys in any case, `//` after the scheme, qualifiers
        // in any order, empty qualifier values and empty segments dropped.
        (
            "PKG://Deb/debian//curl@7.50.3-1?Distro=jessie&arch=i386&empty=",
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie",
        ),
        // An npm scope's `@` left bare.
        ("pkg:npm/@babel/core#/api/", "pkg:npm/%40babel/core#api"),
        // Lower-case escapes, and escapes of characters that need none.
        (
            "pkg:deb/debian/attr@1%3a2.4.47-2%2bb1",
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1",
        ),
        ("pkg:cargo/r%61nd@0.7.2", "pkg:cargo/rand@0.7.2"),
        // UTF-8 is encoded byte by byte; `.` and `..` subpath segments are dropped.
        (
            "pkg:generic/caf%C3%A9@1#a/./b/../c",
            "pkg:generic/caf%C3%A9@1#a/b/c",
        ),
    ] {
        assert_eq!(Purl::parse(text).unwrap().to_string(), canonical, "{text}");
    }
    assert_eq!(Purl::parse("pkg:generic/caf%C3%A9").unwrap().name, "café");
}

#[test]
fn purl_parser_names_what_is_wrong() {
    for (text, error) in [
        ("deb/debian/curl@1", PurlError::NoScheme),
        (
            "pkg:1deb/curl",
            PurlError::BadType {
                found: "1deb".to_owned(),
            },
        ),
        (
            "pkg:de%62/curl",
            PurlError::BadType {
                found: "de%62".to_owned(),
            },
        ),
        ("pkg:deb/@1.0", PurlError::NoName),
        (
            "pkg:rpm/fedora/curl?1arch=i386",
            PurlError::BadQualifier {
                found: "1arch=i386".to_owned(),
            },
        ),
        (
            "pkg:cargo/ra%G1nd",
            PurlError::BadEscape {
                component: "name",
                escape: "%G1".to_owned(),
            },
        ),
        (
            "pkg:cargo/rand@1%2",
            PurlError::BadEscape {
                component: "version",
                escape: "%2".to_owned(),
            },
        ),
        ("pkg:cargo/%FF", PurlError::NotUtf8 { component: "name" }),
        (
            "pkg:golang/a%2Fb/c",
            PurlError::SlashInSegment {
                component: "namespace",
            },
        ),
        (
            "pkg:cargo/rand?arch",
            PurlError::BadQualifier {
                found: "arch".to_owned(),
            },
        ),
        (
            "pkg:cargo/rand?a%20b=1",
            PurlError::BadQualifier {
                found: "a%20b=1".to_owned(),
            },
        ),
        (
            "pkg:cargo/rand?arch=x&ARCH=y",
            PurlError::DuplicateQualifier {
                key: "arch".to_owned(),
            },
        ),
    ] {
        assert_eq!(Purl::parse(text), Err(error), "{text}");
    }
}
