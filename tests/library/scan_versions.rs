//! Version ordering per package system (`wharf::scan::version`): ascending chains taken
//! from each scheme's specification and from real advisories, spellings that are equal,
//! versions each scheme rejects, and agreement with `dpkg --compare-versions` and rpm's
//! own `rpm.vercmp` on a few hundred generated pairs when those tools are installed.

use std::cmp::Ordering;
use std::process::Command;

use wharf::scan::version::{MAX_VERSION_LEN, Version, VersionScheme, compare};

/// Asserts that `chain` is strictly ascending in `scheme`, pair by pair both ways, and
/// that each version equals itself.
fn assert_ascending(scheme: VersionScheme, chain: &[&str]) {
    for (i, a) in chain.iter().enumerate() {
        assert_eq!(
            compare(scheme, a, a),
            Ok(Ordering::Equal),
            "{scheme}: {a} = {a}"
        );
        for b in chain.iter().skip(i + 1) {
            assert_eq!(
                compare(scheme, a, b),
                Ok(Ordering::Less),
                "{scheme}: {a} < {b}"
            );
            assert_eq!(
                compare(scheme, b, a),
                Ok(Ordering::Greater),
                "{scheme}: {b} > {a}"
            );
        }
    }
}

/// Asserts that each pair is equal in `scheme` both ways.
fn assert_equal(scheme: VersionScheme, pairs: &[(&str, &str)]) {
    for (a, b) in pairs {
        assert_eq!(
            compare(scheme, a, b),
            Ok(Ordering::Equal),
            "{scheme}: {a} = {b}"
        );
        assert_eq!(
            compare(scheme, b, a),
            Ok(Ordering::Equal),
            "{scheme}: {b} = {a}"
        );
    }
}

/// Asserts that each version is rejected, whichever side it is on, and that the error
/// names it.
fn assert_invalid(scheme: VersionScheme, valid: &str, versions: &[&str]) {
    for version in versions {
        for result in [
            compare(scheme, version, valid),
            compare(scheme, valid, version),
        ] {
            let Err(error) = result else {
                panic!("{scheme}: {version:?} should be invalid");
            };
            assert_eq!(error.scheme, scheme);
            assert_eq!(&error.version, version);
            assert!(!error.reason.is_empty());
        }
    }
}

#[test]
fn dpkg_orders_as_debian_policy() {
    let dpkg = VersionScheme::Dpkg;
    // Policy 5.6.12's own example of `~`, after a digit as upstream versions start.
    assert_ascending(dpkg, &["1~~", "1~~a", "1~", "1", "1a"]);
    // Letters before other characters, numbers numerically.
    assert_ascending(
        dpkg,
        &[
            "1.0~rc1", "1.0", "1.0a", "1.0+b1", "1.0.1", "1.0.9", "1.0.10", "1.1",
        ],
    );
    // DSA-5532-1: openssl in bookworm, fixed by a backport that sorts before unstable's.
    assert_ascending(
        dpkg,
        &[
            "3.0.11-1~deb12u1",
            "3.0.11-1~deb12u2",
            "3.0.11-1",
            "3.0.13-1~deb12u1",
        ],
    );
    // glibc in bullseye: security updates to revision 8 before revision 9.
    assert_ascending(
        dpkg,
        &[
            "2.31-13+deb11u5",
            "2.36.1-8",
            "2.36.1-8+deb11u1",
            "2.36.1-8+deb11u2",
            "2.36.1-9",
        ],
    );
    // Ubuntu security updates.
    assert_ascending(
        dpkg,
        &[
            "2.35-0ubuntu3",
            "2.35-0ubuntu3.1",
            "2.35-0ubuntu3.4",
            "2.35-0ubuntu3.10",
        ],
    );
    // The epoch beats everything after it.
    assert_ascending(dpkg, &["1:2.3-1~deb12u1", "1:2.3-1", "1:2.3-1+b1", "2:0.1"]);
    assert_ascending(dpkg, &["99.9-9", "1:0.1", "1:0.1-0.1", "1:0.1-1", "10:0"]);
    // Digit runs past 64 bits.
    assert_ascending(
        dpkg,
        &[
            "1.9",
            "1.18446744073709551615",
            "1.18446744073709551616",
            "1.100000000000000000000",
        ],
    );
    assert_equal(
        dpkg,
        &[
            ("0:1.0", "1.0"),
            ("1.0", "1.0-0"),
            ("1.0-1", "1.0-01"),
            ("1.00", "1.0"),
            ("1.0001", "1.1"),
            (" 1.0-1 ", "1.0-1"),
        ],
    );
    // An upstream version that does not start with a digit is only a dpkg warning.
    assert_ascending(dpkg, &["a1", "b"]);
    assert_ascending(dpkg, &["1:2:3-4", "1:2:4"]);
}

#[test]
fn dpkg_rejects_what_dpkg_rejects() {
    assert_invalid(
        VersionScheme::Dpkg,
        "1.0",
        &[
            "",
            "  ",
            ":1.0",
            "a:1.0",
            "-1:1.0",
            "2147483648:1.0",
            "1.0-",
            "-1",
            "1:",
            "1.0 1",
            "1.0_1",
            "1.0-1:2",
            "1.0-1_2",
            "1.0!",
            "1.0é",
        ],
    );
    assert_eq!(
        compare(VersionScheme::Dpkg, "2147483647:1.0", "1.0"),
        Ok(Ordering::Greater)
    );
}

#[test]
fn apk_orders_as_apk_tools() {
    let apk = VersionScheme::Apk;
    // A pre-release suffix before the release, a patch level after every release.
    assert_ascending(
        apk,
        &[
            "1.2.3_rc1-r0",
            "1.2.3-r0",
            "1.2.3-r1",
            "1.2.3-r10",
            "1.2.3_p1-r0",
            "1.2.3a-r0",
            "1.2.3.1",
        ],
    );
    assert_ascending(
        apk,
        &[
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_alpha2",
            "1.0_beta",
            "1.0_pre1",
            "1.0_rc1",
            "1.0_rc1_p1",
            "1.0",
            "1.0_cvs",
            "1.0_svn",
            "1.0_git20240101",
            "1.0_hg",
            "1.0_p",
            "1.0_p0",
            "1.0_p1",
            "1.0a",
            "1.0b",
            "1.0.0",
        ],
    );
    // After the first number, a group with a leading zero compares as a string.
    assert_ascending(
        apk,
        &[
            "1.001", "1.01", "1.010", "1.1", "1.2", "1.10", "2.0", "2.00", "10.0",
        ],
    );
    // A commit hash sorts after the end of the version, before its suffixes and release.
    assert_ascending(
        apk,
        &[
            "1.0_rc1~ab",
            "1.0",
            "1.0-r1",
            "1.0~00ff",
            "1.0~0a",
            "1.0~ab-r0",
            "1.0~ab-r1",
            "1.0_p1",
        ],
    );
    // Real Alpine fixes: busybox CVE-2023-42363, openssl CVE-2023-5678.
    assert_ascending(apk, &["1.36.1-r5", "1.36.1-r6", "1.36.1-r15", "1.37.0-r0"]);
    assert_ascending(apk, &["3.1.4-r0", "3.1.4-r1", "3.1.4-r5", "3.1.5-r0"]);
    assert_equal(
        apk,
        &[
            ("01.2", "1.2"),
            ("1.2_p01", "1.2_p1"),
            ("1.2-r01", "1.2-r1"),
        ],
    );
    assert_invalid(
        apk,
        "1.0",
        &[
            "",
            "v1.0",
            ".1",
            "1.",
            "1..2",
            "1.0A",
            "1.0a1",
            "1.0ab",
            "1.0a.1",
            "1.0_foo",
            "1.0_",
            "1.0_rc1a",
            "1.0~",
            "1.0~xyz",
            "1.0~ab_p1",
            "1.0-r",
            "1.0-1",
            "1.0-r1_p1",
            "1.0-r1-r2",
            "1.0-r1~ab",
            "1.0 ",
        ],
    );
}

#[test]
fn rpm_orders_as_rpmvercmp() {
    let rpm = VersionScheme::Rpm;
    // The epoch wins over everything after it.
    assert_ascending(rpm, &["1.0-2.el9", "9.9-9.el9", "1:1.0-1.el9", "2:0.1-1"]);
    // `~` before anything, `^` after the end but before more segments.
    assert_ascending(
        rpm,
        &[
            "1.0~~", "1.0~rc1", "1.0~rc2", "1.0", "1.0^", "1.0^git1", "1.0^git2", "1.0a", "1.0.1",
        ],
    );
    assert_ascending(rpm, &["1.0~rc1-1", "1.0-1", "1.0^20230101-1", "1.0.1-1"]);
    // Numbers after letters, numbers numerically.
    assert_ascending(rpm, &["1.a", "1.b", "1.0", "1.1", "1.9", "1.10", "1.100"]);
    // RHSA-2024:0627 (glibc) and RHSA-2024:0310 (openssl) on RHEL 9.
    assert_ascending(
        rpm,
        &[
            "2.34-60.el9",
            "2.34-60.el9_2.7",
            "2.34-83.el9_3.7",
            "2.34-83.el9_3.12",
        ],
    );
    assert_ascending(
        rpm,
        &["1:3.0.7-24.el9", "1:3.0.7-25.el9_3", "1:3.0.7-27.el9"],
    );
    assert_ascending(
        rpm,
        &[
            "1.0-1",
            "1.0-1.18446744073709551616",
            "1.0-18446744073709551616",
        ],
    );
    assert_equal(
        rpm,
        &[
            ("0:1.0-1", "1.0-1"),
            ("1.0-1", "1.0-01"),
            ("1.0_1", "1.0.1"),
            ("1.0+1", "1.0.1"),
            ("00:1.0", "1.0"),
        ],
    );
}

#[test]
fn rpm_compares_releases_only_when_both_have_one() {
    let rpm = VersionScheme::Rpm;
    assert_equal(rpm, &[("1.0", "1.0-5.el9"), ("1:1.0", "1:1.0-1")]);
    assert_eq!(compare(rpm, "1.0", "1.1-1"), Ok(Ordering::Less));
    assert_eq!(compare(rpm, "1.0", "0:0.9-99"), Ok(Ordering::Greater));
    assert_eq!(compare(rpm, "1.0", "1:0.9-1"), Ok(Ordering::Less));
    assert_eq!(compare(rpm, "1.0-1", "1.0-2"), Ok(Ordering::Less));
}

#[test]
fn rpm_rejects_what_rpmbuild_rejects() {
    assert_invalid(
        VersionScheme::Rpm,
        "1.0-1",
        &[
            "", ":1.0", "a:1.0", "1.0-", "-1", "1:", "1.0 1", "1.0-1,2", "1.0/1", "1.0é", "1:2:3",
        ],
    );
}

#[test]
fn pep440_orders_as_the_specification() {
    let pep440 = VersionScheme::Pep440;
    // The specification's own example of the ordering of every kind of release.
    assert_ascending(
        pep440,
        &[
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ],
    );
    assert_ascending(
        pep440,
        &[
            "1.0.dev1",
            "1.0a1",
            "1.0a1.post1.dev1",
            "1.0a1.post1",
            "1.0",
            "1.0.post1",
        ],
    );
    // Epochs, then releases of any length.
    assert_ascending(pep440, &["2.0", "2013.10", "1!1.0", "1!1.0.0.1", "2!0.1"]);
    // Local labels: words before numbers, a prefix first.
    assert_ascending(
        pep440,
        &[
            "1.0",
            "1.0+abc",
            "1.0+abc.a",
            "1.0+abc.1",
            "1.0+abd",
            "1.0+1",
            "1.0+2",
            "1.0+10",
            "1.0+10.a",
        ],
    );
    // Real fixes: Django CVE-2023-43665 (4.2.6), urllib3 CVE-2023-45803 (2.0.7).
    assert_ascending(pep440, &["4.2", "4.2.5", "4.2.6", "5.0a1", "5.0rc1", "5.0"]);
    assert_ascending(pep440, &["2.0.0a1", "2.0.0", "2.0.6", "2.0.7", "2.1.0"]);
    assert_ascending(
        pep440,
        &[
            "1.0.18446744073709551615",
            "1.0.18446744073709551616",
            "1.0.100000000000000000000",
        ],
    );
    assert_equal(
        pep440,
        &[
            ("1.0", "1.0.0"),
            ("1.0", "1.0.0.0"),
            ("1.0", "v1.0"),
            ("1.0", " 1.0\n"),
            ("1.0", "0!1.0"),
            ("1.0", "01.00"),
            ("1.0a1", "1.0.alpha.1"),
            ("1.0a1", "1.0-A1"),
            ("1.0a1", "1.0a01"),
            ("1.0b2", "1.0-beta_2"),
            ("1.0rc1", "1.0c1"),
            ("1.0rc1", "1.0pre1"),
            ("1.0rc1", "1.0preview1"),
            ("1.0rc1", "1.0-RC-1"),
            ("1.0a", "1.0a0"),
            ("1.0a", "1.0a."),
            ("1.0.post1", "1.0-1"),
            ("1.0.post1", "1.0post1"),
            ("1.0.post1", "1.0.rev1"),
            ("1.0.post1", "1.0-r-1"),
            ("1.0.post", "1.0.post0"),
            ("1.0.dev", "1.0-dev0"),
            ("1.0.dev0", "1.0DEV"),
            ("1.0+abc", "1.0+ABC"),
            ("1.0+abc.1", "1.0+abc-1"),
            ("1.0+abc.1", "1.0+abc_01"),
            ("1.0a1.post2.dev3", "1.0-a-1-2-dev-3"),
        ],
    );
}

#[test]
fn pep440_rejects_what_the_specification_rejects() {
    assert_invalid(
        VersionScheme::Pep440,
        "1.0",
        &[
            "",
            " ",
            "v",
            "1.",
            ".1",
            "1..0",
            "a1.0",
            "1.0-",
            "1!",
            "!1.0",
            "1.0+",
            "1.0+abc..1",
            "1.0+abc!",
            "1.0+ab+c",
            "1.0.post1.post2",
            "1.0.dev1a1",
            "1.0.dev1.post1",
            "1.0a1b1",
            "1.0 1",
            "1.0-beta-gamma",
            "1.0é",
        ],
    );
}

#[test]
fn semver_orders_as_semver_2() {
    let semver = VersionScheme::Semver;
    // SemVer 2.0.0, section 11.
    assert_ascending(
        semver,
        &[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ],
    );
    // Numbers of any length, numeric identifiers before the others, hyphens inside.
    assert_ascending(
        semver,
        &[
            "1.0.0-99999999999999999999",
            "1.0.0-100000000000000000000",
            "1.0.0--",
            "1.0.0-a-b",
            "1.0.0-a-b.0",
            "1.0.18446744073709551615",
            "1.0.18446744073709551616",
        ],
    );
    // GHSA-c2qf-rxjj-qqgw (the npm package semver): fixed in 7.5.2.
    assert_ascending(
        semver,
        &["6.3.0", "6.3.1", "7.0.0", "7.5.1", "7.5.2", "v7.5.3"],
    );
    assert_equal(
        semver,
        &[
            ("1.0.0", "v1.0.0"),
            ("1.0.0+build.1", "1.0.0+build.2"),
            ("1.0.0-rc.1+sha.5114f85", "v1.0.0-rc.1"),
        ],
    );
    assert_invalid(
        semver,
        "1.0.0",
        &[
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.00.0",
            "1.0.0-01",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-a..b",
            "1.0.0-a_b",
            "1.0.0+a+b",
            "V1.0.0",
            "vv1.0.0",
            "go1.21.0",
            " 1.0.0",
            "1.0.0-é",
        ],
    );
}

#[test]
fn go_orders_modules_pseudo_versions_and_toolchains() {
    let go = VersionScheme::Go;
    // Pseudo-versions are pre-releases of the next version, in commit-time order.
    assert_ascending(
        go,
        &[
            "v0.0.0-20191109021931-daa7c04131f5",
            "v0.0.0-20200101000000-abcdefabcdef",
            "v0.1.0",
            "v1.0.0-rc.1",
            "v1.0.0",
            "v1.2.3",
            "v1.2.4-0.20230101000000-abcdefabcdef",
            "v1.2.4-pre",
            "v1.2.4-pre.0.20230101000000-abcdefabcdef",
            "v1.2.4",
        ],
    );
    // golang.org/x/net, GO-2023-2102: fixed in 0.17.0 (OSV writes no `v`).
    assert_ascending(
        go,
        &[
            "v0.0.0-20230321023759-10a507213a29",
            "v0.16.0",
            "0.17.0",
            "v0.17.1",
        ],
    );
    // The toolchain: GO-2023-1571's lines, with release candidates and betas.
    assert_ascending(
        go,
        &[
            "go1.19.5",
            "1.19.6",
            "1.20.0-0",
            "go1.20beta1",
            "go1.20rc1",
            "go1.20rc3",
            "go1.20",
            "v1.20.1",
            "go1.21rc2",
            "go1.21.3",
        ],
    );
    assert_equal(
        go,
        &[
            ("go1.21.3", "v1.21.3"),
            ("go1.21.3", "1.21.3"),
            ("go1.21", "v1.21.0"),
            ("go1.21rc2", "v1.21.0-rc.2"),
            ("1.21rc2", "1.21.0-rc.2"),
            ("go1.19beta1", "1.19.0-beta.1"),
            ("go1", "v1.0.0"),
            ("v1", "v1.0.0"),
            ("v1.2", "v1.2.0"),
            ("v2.0.0+incompatible", "v2.0.0"),
        ],
    );
    assert_ascending(
        go,
        &["v2.0.0+incompatible", "v2.0.1+incompatible", "v2.1.0"],
    );
    assert_invalid(
        go,
        "v1.0.0",
        &[
            "",
            "(devel)",
            "v",
            "go",
            "v1.2.3.4",
            "v01.2.3",
            "v1.2-pre",
            "go1.21.3 X:boringcrypto",
            "go1.21rc",
            "go1.21alpha1",
            "gov1.21.0",
            "vv1.0.0",
        ],
    );
}

#[test]
fn overlong_versions_are_rejected_in_every_scheme() {
    let longest = format!("1.{}", "0".repeat(MAX_VERSION_LEN - 2));
    let overlong = format!("{longest}0");
    for scheme in VersionScheme::ALL {
        let error = compare(scheme, &overlong, "1.0.0").expect_err("too long");
        assert!(error.version.len() <= MAX_VERSION_LEN);
        assert!(error.reason.contains("bytes long"), "{error}");
    }
    // At the cap is fine where the form is valid.
    assert_eq!(
        compare(VersionScheme::Dpkg, &longest, "1.0"),
        Ok(Ordering::Equal)
    );
    // A multi-byte character straddling the cap is cut before it in the error.
    let straddling = format!("{}é", "1".repeat(MAX_VERSION_LEN - 1));
    let error = compare(VersionScheme::Pep440, &straddling, "1").expect_err("too long");
    assert_eq!(error.version, "1".repeat(MAX_VERSION_LEN - 1));
}

#[test]
fn parsed_versions_compare_within_their_scheme_only() {
    let installed = Version::parse(VersionScheme::Dpkg, "3.0.11-1~deb12u1").expect("valid");
    let fixed = Version::parse(VersionScheme::Dpkg, "3.0.11-1~deb12u2").expect("valid");
    assert_eq!(installed.scheme(), VersionScheme::Dpkg);
    assert_eq!(installed.compare(&fixed), Some(Ordering::Less));
    let other = Version::parse(VersionScheme::Rpm, "3.0.11-1").expect("valid");
    assert_eq!(installed.compare(&other), None);
    // The error says which version and why.
    let error = Version::parse(VersionScheme::Apk, "1.0_foo").expect_err("unknown suffix");
    assert_eq!(
        error.to_string(),
        "\"1.0_foo\" is not a valid apk version: unknown suffix \"foo\" at byte 3"
    );
}

#[test]
fn package_kinds_map_to_their_schemes() {
    use wharf::scan::package::PackageKind;
    let expected = [
        (PackageKind::Dpkg, VersionScheme::Dpkg, "dpkg"),
        (PackageKind::Apk, VersionScheme::Apk, "apk"),
        (PackageKind::Rpm, VersionScheme::Rpm, "rpm"),
        (PackageKind::Python, VersionScheme::Pep440, "pep440"),
        (PackageKind::Npm, VersionScheme::Semver, "semver"),
        (PackageKind::Cargo, VersionScheme::Semver, "semver"),
        (PackageKind::Go, VersionScheme::Go, "go"),
    ];
    for (kind, scheme, name) in expected {
        assert_eq!(VersionScheme::of(kind), scheme);
        assert_eq!(scheme.as_str(), name);
    }
}

/// A small deterministic generator (xorshift64), so the generated pairs are the same on
/// every run.
struct Generator(u64);

impl Generator {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.below(choices.len())]
    }

    /// A string of `1..=max` pieces.
    fn string(&mut self, pieces: &[&str], max: usize) -> String {
        let count = 1 + self.below(max);
        (0..count).map(|_| self.pick(pieces)).collect()
    }
}

/// Pairs of versions made of `pieces` around shared prefixes, so they differ late and in
/// the characters that matter, plus each version against a one-piece change of itself.
fn generated_pairs(
    seed: u64,
    count: usize,
    make: impl Fn(&mut Generator) -> String,
    pieces: &[&str],
) -> Vec<(String, String)> {
    let mut generator = Generator(seed);
    let mut pairs = Vec::new();
    while pairs.len() < count {
        let a = make(&mut generator);
        let b = if generator.below(2) == 0 {
            make(&mut generator)
        } else {
            format!("{a}{}", generator.pick(pieces))
        };
        pairs.push((a, b));
    }
    pairs
}

fn run(program: &str, args: &[&str]) -> Option<std::process::Output> {
    Command::new(program).args(args).output().ok()
}

#[test]
fn dpkg_agrees_with_dpkg_compare_versions() {
    if run("dpkg", &["--version"]).is_none() {
        eprintln!("skipped: no dpkg binary to compare with");
        return;
    }
    let pieces = [
        "0", "1", "2", "9", "10", "00", ".", "~", "+", "a", "b", "z", "A", "~a", ".0",
    ];
    let make = |g: &mut Generator| {
        let epoch = g.pick(&["", "", "", "0:", "1:", "2:"]);
        let upstream = format!(
            "{}{}",
            g.pick(&["0", "1", "1.0", "2", "10"]),
            g.string(&pieces, 5)
        );
        let revision = match g.below(3) {
            0 => String::new(),
            _ => format!(
                "-{}",
                g.string(&["0", "1", "2", "+deb", "u1", "~", ".", "ubuntu", "b"], 3)
            ),
        };
        format!("{epoch}{upstream}{revision}")
    };
    let mut pairs = generated_pairs(0x5eed_d9c9, 300, make, &pieces);
    pairs.extend(
        [
            ("1.0~", "1.0"),
            ("1.0~~", "1.0~"),
            ("1.0a", "1.0+"),
            ("1.0+", "1.0."),
            ("1:1", "1:1-0"),
            ("1.0-1~", "1.0-1"),
            ("1.0-1+", "1.0-1."),
            ("1.000000000000000000000001", "1.1"),
            ("1.99999999999999999999999", "1.100000000000000000000000"),
            ("2147483647:1", "1:2"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned())),
    );
    for (a, b) in &pairs {
        let holds = |op: &str| {
            let output = run("dpkg", &["--compare-versions", a, op, b]).expect("dpkg runs");
            assert!(
                output.status.code().is_some_and(|code| code <= 1),
                "dpkg rejects {a:?} or {b:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.status.success()
        };
        let expected = if holds("lt") {
            Ordering::Less
        } else if holds("eq") {
            Ordering::Equal
        } else {
            Ordering::Greater
        };
        assert_eq!(
            compare(VersionScheme::Dpkg, a, b),
            Ok(expected),
            "{a} vs {b}"
        );
    }
}

#[test]
fn rpm_agrees_with_rpm_vercmp() {
    if run("rpm", &["--version"]).is_none() {
        eprintln!("skipped: no rpm binary to compare with");
        return;
    }
    let pieces = [
        "0", "1", "2", "9", "10", "00", ".", "_", "+", "~", "^", "a", "b", "Z", "el9", "rc1",
    ];
    // Both versions with a release or both without: rpm's `vercmp` on a lone version
    // treats the missing release as less, where the ordering here ignores it.
    let with_release = |g: &mut Generator| {
        let epoch = g.pick(&["", "", "0:", "1:", "2:"]);
        let version = format!(
            "{}{}",
            g.pick(&["0", "1", "1.0", "2", "a"]),
            g.string(&pieces, 4)
        );
        format!("{epoch}{version}-{}", g.string(&pieces, 3))
    };
    let without_release = |g: &mut Generator| {
        format!(
            "{}{}",
            g.pick(&["0", "1", "1.0", "2", "a"]),
            g.string(&pieces, 5)
        )
    };
    let mut pairs = generated_pairs(0x5eed_00e1, 200, with_release, &pieces);
    pairs.extend(generated_pairs(0x5eed_00e2, 150, without_release, &pieces));
    pairs.extend(
        [
            ("1.0^", "1.0"),
            ("1.0^a", "1.0a"),
            ("1.0~^", "1.0^~"),
            ("1.0_1", "1.0.1"),
            ("1..0", "1.0"),
            ("a", "1"),
            ("1.a", "1.0"),
            ("0001", "1"),
            ("1:1.0-1", "1.0-2"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned())),
    );
    // One rpm run evaluates every comparison in its embedded Lua and prints the answers
    // on one line.
    let calls: String = pairs
        .iter()
        .map(|(a, b)| format!("r[#r+1] = rpm.vercmp(\"{a}\", \"{b}\")\n"))
        .collect();
    let script = format!("%{{lua:\nlocal r = {{}}\n{calls}print(table.concat(r, \" \"))\n}}");
    let output = run("rpm", &["--eval", &script]).expect("rpm runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(answers.len(), pairs.len(), "rpm said: {stdout}");
    for ((a, b), answer) in pairs.iter().zip(answers) {
        let expected = match answer {
            "-1" => Ordering::Less,
            "0" => Ordering::Equal,
            "1" => Ordering::Greater,
            other => panic!("rpm answered {other:?} for {a} vs {b}"),
        };
        assert_eq!(
            compare(VersionScheme::Rpm, a, b),
            Ok(expected),
            "{a} vs {b}"
        );
    }
}

#[test]
fn generated_versions_order_consistently() {
    // Antisymmetry, reflexivity and (outside rpm) transitivity on generated versions,
    // through the same checks the fuzz body makes.
    let pieces = [
        "0",
        "1",
        "9",
        "10",
        ".",
        "-",
        "_",
        "+",
        "~",
        "^",
        ":",
        "!",
        "a",
        "b",
        "rc",
        "p",
        "r",
        "post",
        "dev",
        "alpha",
        "go",
        "v",
        "-r1",
        "~ab",
        "+incompatible",
    ];
    let mut generator = Generator(0x5eed_f022);
    for _ in 0..3000 {
        let scheme = generator.below(VersionScheme::ALL.len());
        let mut input = vec![u8::try_from(scheme).expect("small")];
        for i in 0..3 {
            if i > 0 {
                input.push(0);
            }
            let start = generator.pick(&["1", "1.0", "2", "v1", "go1", "1:1"]);
            input.extend(format!("{start}{}", generator.string(&pieces, 6)).bytes());
        }
        wharf::testing::fuzz::compare_versions(&input);
    }
}
