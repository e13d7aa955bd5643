//! dpkg: this machine's status file against `dpkg-query`, the distroless `status.d/`
//! form built from its stanzas, and hand-made and hostile status files.

use std::collections::BTreeMap;
use std::path::Path;

use wharf::scan::inventory::dpkg::{MAX_PACKAGES, MAX_VALUE_LEN, STATUS, STATUS_D, parse_status};
use wharf::scan::package::{Package, PackageKind, SourcePackage};

use super::{have, run};

const LIVE_STATUS: &str = "/var/lib/dpkg/status";

/// What `dpkg-query` lists of each package, tab-separated: its state (the third word
/// of `Status`), the fields compared, and the multi-arch facts behind
/// `${binary:Package}`.
const QUERY_FORMAT: &str = "${db:Status-Status}\t${Package}\t${Architecture}\t${Version}\t\
                            ${source:Package}\t${source:Version}\t${Multi-Arch}\t${binary:Package}\n";

/// This machine's status file and what `dpkg-query` listed for it, read while the
/// database stood still (other processes may install packages meanwhile); `None`, with
/// a note, where there is no dpkg.
fn live_database() -> Option<(Vec<u8>, String)> {
    if !have("dpkg-query", &["--version"], "the dpkg database tests") {
        return None;
    }
    let format = format!("--showformat={QUERY_FORMAT}");
    for _ in 0..5 {
        let before = std::fs::read(LIVE_STATUS).unwrap();
        let listing = run("dpkg-query", &["--show", &format], Path::new("/"));
        if std::fs::read(LIVE_STATUS).unwrap() == before {
            return Some((before, listing));
        }
    }
    panic!("{LIVE_STATUS} kept changing while dpkg-query ran");
}

#[test]
fn this_machines_status_file_lists_what_dpkg_query_lists() {
    let Some((status, listing)) = live_database() else {
        return;
    };
    let packages = parse_status(&status, STATUS).unwrap();
    assert!(
        packages
            .iter()
            .all(|p| p.kind == PackageKind::Dpkg && p.path == STATUS && p.license.is_none())
    );

    // dpkg-query also lists packages whose files are gone (`config-files`); the
    // inventory is of the installed ones.
    let listed: Vec<Vec<&str>> = listing
        .lines()
        .map(|line| line.split('\t').collect())
        .filter(|fields: &Vec<&str>| fields[0] == "installed")
        .collect();
    assert!(
        listed.len() > 50,
        "a Debian system has more packages than that"
    );

    // Package, architecture, version, and the source package's name and version (which
    // dpkg-query prints as the binary's where `Source` does not say otherwise).
    let mut expected: Vec<[&str; 5]> = listed
        .iter()
        .map(|f| [f[1], f[2], f[3], f[4], f[5]])
        .collect();
    let mut found: Vec<[&str; 5]> = packages
        .iter()
        .map(|p| {
            let source = p.source.as_ref();
            [
                p.name.as_str(),
                p.arch.as_deref().unwrap(),
                p.version.as_str(),
                source.map_or(p.name.as_str(), |s| s.name.as_str()),
                source
                    .and_then(|s| s.version.as_deref())
                    .unwrap_or(&p.version),
            ]
        })
        .collect();
    expected.sort_unstable();
    found.sort_unstable();
    assert_eq!(found.len(), expected.len());
    assert_eq!(found, expected);

    // `${binary:Package}` qualifies a name with its architecture where the plain name is
    // ambiguous: for a `Multi-Arch: same` package (several architectures may be
    // installed side by side) and for a package of a foreign architecture.
    let native = run("dpkg", &["--print-architecture"], Path::new("/"));
    let native = native.trim();
    let multi_arch: BTreeMap<(&str, &str), &str> =
        listed.iter().map(|f| ((f[1], f[2]), f[6])).collect();
    let mut expected_binary: Vec<String> = listed
        .iter()
        .map(|f| format!("{}\t{}", f[7], f[3]))
        .collect();
    let mut found_binary: Vec<String> = packages
        .iter()
        .map(|p| {
            let arch = p.arch.as_deref().unwrap();
            let same = multi_arch[&(p.name.as_str(), arch)] == "same";
            let foreign = arch != native && arch != "all";
            match same || foreign {
                true => format!("{}:{arch}\t{}", p.name, p.version),
                false => format!("{}\t{}", p.name, p.version),
            }
        })
        .collect();
    expected_binary.sort_unstable();
    found_binary.sort_unstable();
    assert_eq!(found_binary, expected_binary);
}

#[test]
fn distroless_status_d_files_read_as_the_status_file_does() {
    let Some((status, _)) = live_database() else {
        return;
    };
    let everything = parse_status(&status, STATUS).unwrap();
    let text = String::from_utf8_lossy(&status);
    let stanzas: Vec<&str> = text
        .split("\n\n")
        .filter(|s| s.contains("\nStatus: install ok installed\n"))
        .collect();
    // One of each kind that matters: a source with its own version, a `Multi-Arch:
    // same` package, an `Architecture: all` one.
    let has_line = |stanza: &str, wanted: &dyn Fn(&str) -> bool| stanza.lines().any(wanted);
    let kinds: [&dyn Fn(&str) -> bool; 3] = [
        &|line| line.starts_with("Source: ") && line.ends_with(')'),
        &|line| line == "Multi-Arch: same",
        &|line| line == "Architecture: all",
    ];
    let picks = kinds.map(|kind| *stanzas.iter().find(|s| has_line(s, kind)).unwrap());
    for stanza in picks {
        let field = |name: &str| {
            let prefix = format!("{name}: ");
            let line = stanza
                .lines()
                .find(|line| line.starts_with(&prefix))
                .unwrap();
            line[prefix.len()..].to_owned()
        };
        // Distroless writes no `Status`.
        let without_status: String = stanza
            .lines()
            .filter(|line| !line.starts_with("Status:"))
            .map(|line| format!("{line}\n"))
            .collect();
        let (name, arch) = (field("Package"), field("Architecture"));
        let path = format!("{STATUS_D}{name}");
        let found = parse_status(without_status.as_bytes(), &path).unwrap();
        let original = everything
            .iter()
            .find(|p| p.name == name && p.arch.as_ref() == Some(&arch))
            .unwrap();
        let expected = Package {
            path: path.clone(),
            ..original.clone()
        };
        assert_eq!(found, [expected], "{path}");
        // The same stanza with its status: still installed; removed: not.
        assert_eq!(parse_status(stanza.as_bytes(), &path).unwrap().len(), 1);
        let removed = stanza.replace("install ok installed", "deinstall ok config-files");
        assert_eq!(parse_status(removed.as_bytes(), &path), Ok(vec![]));
        // In the main status file, a stanza without `Status` is not a package.
        assert_eq!(parse_status(without_status.as_bytes(), STATUS), Ok(vec![]));
    }
}

fn stanza(name: &str, status: &str, extra: &str) -> String {
    format!(
        "Package: {name}\nStatus: {status}\nPriority: optional\nMaintainer: Someone <a@b.c>\n\
         Version: 1.0-1\n{extra}Description: a package\n long text\n .\n more\n\n"
    )
}

fn names(packages: &[Package]) -> Vec<&str> {
    packages.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn only_installed_states_count() {
    let status: String = [
        stanza("a", "install ok installed", ""),
        stanza("b", "hold ok installed", ""),
        stanza("c", "deinstall ok installed", ""),
        stanza("d", "deinstall ok config-files", ""),
        stanza("e", "install reinstreq half-installed", ""),
        stanza("f", "install ok unpacked", ""),
        stanza("g", "install ok triggers-pending", ""),
        "Package: h\nStatus: purge ok not-installed\nPriority: optional\n\n".to_owned(),
    ]
    .concat();
    let packages = parse_status(status.as_bytes(), STATUS).unwrap();
    assert_eq!(names(&packages), ["a", "b", "c"]);
}

#[test]
fn multi_arch_and_source_forms() {
    let status = [
        stanza(
            "libc6",
            "install ok installed",
            "Architecture: amd64\nMulti-Arch: same\nSource: glibc\n",
        ),
        stanza(
            "libc6",
            "install ok installed",
            "Architecture: i386\nMulti-Arch: same\nSource: glibc\n",
        ),
        stanza(
            "libssl3",
            "install ok installed",
            "Architecture: amd64\nSource: openssl (3.0.11-1~deb12u2)\n",
        ),
        stanza(
            "same-version",
            "install ok installed",
            "Source: src (1.0-1)\n",
        ),
        stanza("tzdata", "install ok installed", "Architecture: all\n"),
    ]
    .concat();
    let packages = parse_status(status.as_bytes(), STATUS).unwrap();
    let summary: Vec<(&str, Option<&str>, Option<&SourcePackage>)> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.arch.as_deref(), p.source.as_ref()))
        .collect();
    let source = |name: &str, version: Option<&str>| SourcePackage {
        name: name.to_owned(),
        version: version.map(str::to_owned),
    };
    assert_eq!(
        summary,
        [
            ("libc6", Some("amd64"), Some(&source("glibc", None))),
            ("libc6", Some("i386"), Some(&source("glibc", None))),
            (
                "libssl3",
                Some("amd64"),
                Some(&source("openssl", Some("3.0.11-1~deb12u2")))
            ),
            // A source version equal to the binary's says nothing more.
            ("same-version", None, Some(&source("src", None))),
            ("tzdata", Some("all"), None),
        ]
    );
}

#[test]
fn field_names_are_case_insensitive_and_crlf_is_read() {
    let lower = "package: a\nstatus: install ok installed\nVERSION: 2:1.0\n";
    assert_eq!(
        parse_status(lower.as_bytes(), STATUS).unwrap()[0].version,
        "2:1.0"
    );
    let lf = [
        stanza("a", "install ok installed", ""),
        stanza("b", "hold ok installed", ""),
    ]
    .concat();
    let crlf = lf.replace('\n', "\r\n");
    assert_eq!(
        parse_status(crlf.as_bytes(), STATUS),
        parse_status(lf.as_bytes(), STATUS)
    );
}

#[test]
fn undecodable_bytes_matter_only_in_the_fields_read() {
    let latin1 = b"Package: a\nStatus: install ok installed\nMaintainer: Fran\xe7ois <f@x>\n\
                   Version: 1\nDescription: caf\xe9\n d\xe9tail\n\n";
    assert_eq!(names(&parse_status(latin1, STATUS).unwrap()), ["a"]);
    let bad_version = b"Package: a\nStatus: install ok installed\nVersion: 1\xff\n";
    let error = parse_status(bad_version, STATUS).unwrap_err();
    assert_eq!(error.format, "dpkg status");
    assert!(
        error.reason.contains("line 3: Version is not UTF-8"),
        "{error}"
    );
}

#[test]
fn enormous_lines_are_skipped_or_refused() {
    let description = "x".repeat(8 << 20);
    let big = stanza(
        "a",
        "install ok installed",
        &format!("Homepage: {description}\n"),
    );
    assert_eq!(names(&parse_status(big.as_bytes(), STATUS).unwrap()), ["a"]);
    let long_version = format!(
        "Package: a\nStatus: install ok installed\nVersion: {}\n",
        "1".repeat(MAX_VALUE_LEN + 1)
    );
    let error = parse_status(long_version.as_bytes(), STATUS).unwrap_err();
    assert!(
        error
            .reason
            .contains("line 3: Version is longer than 1024 bytes"),
        "{error}"
    );
}

#[test]
fn malformed_stanzas_name_their_line() {
    let cases: [(&str, &str); 9] = [
        (
            "Package: a\nStatus: install ok installed\nVersion: 1\nVersion: 2\n",
            "line 4: a second Version in the stanza (the first is on line 3)",
        ),
        (
            "Package: a\nStatus: install ok installed\nVersion: 1\n 2\n",
            "line 4: Version continues onto a second line",
        ),
        (
            "Package: a\nStatus: install ok installed\nVersion 1\n",
            "line 3: no ':' after a field name",
        ),
        (
            "Status: install ok installed\nVersion: 1\n",
            "the stanza at line 1 has no Package",
        ),
        (
            "Package: a\nStatus: install ok installed\n",
            "line 1: package a is installed but has no Version",
        ),
        (
            "Package: a\nStatus: installed\nVersion: 1\n",
            "line 2: Status \"installed\" is not three words",
        ),
        (
            "Package: a b\nStatus: install ok installed\nVersion: 1\n",
            "line 1: \"a b\" is not one word",
        ),
        (
            "Package: a\nStatus: install ok installed\nVersion:\n",
            "line 3: Version is empty",
        ),
        (
            "Package: a\nStatus: install ok installed\nVersion: 1\nSource: b (2\n",
            "line 4: Source \"b (2\" is not `name` or `name (version)`",
        ),
    ];
    for (status, reason) in cases {
        let error = parse_status(status.as_bytes(), STATUS).unwrap_err();
        assert_eq!(error.reason, format!("{STATUS}: {reason}"));
    }
}

#[test]
fn a_truncated_file_reads_as_a_prefix_or_fails() {
    let full_text = [
        stanza(
            "a",
            "install ok installed",
            "Architecture: amd64\nSource: s (0.9)\n",
        ),
        stanza("b", "install ok installed", "Architecture: amd64\n"),
        stanza("c", "install ok installed", "Architecture: all\n"),
    ]
    .concat();
    let full = parse_status(full_text.as_bytes(), STATUS).unwrap();
    assert_eq!(names(&full), ["a", "b", "c"]);
    for cut in 0..full_text.len() {
        let Ok(found) = parse_status(&full_text.as_bytes()[..cut], STATUS) else {
            continue;
        };
        // Every package but the one the cut went through is whole and in place.
        let whole = found.len().saturating_sub(1);
        assert_eq!(found[..whole], full[..whole], "cut at {cut}");
        assert!(found.len() <= full.len());
    }
}

#[test]
fn more_than_the_cap_of_packages_is_refused() {
    let one = "Package: p\nStatus: install ok installed\nVersion: 1\n\n";
    let mut status = one.repeat(MAX_PACKAGES);
    assert_eq!(
        parse_status(status.as_bytes(), STATUS).unwrap().len(),
        MAX_PACKAGES
    );
    status.push_str(one);
    let error = parse_status(status.as_bytes(), STATUS).unwrap_err();
    assert!(
        error.reason.contains("more than 200000 installed packages"),
        "{error}"
    );
}
