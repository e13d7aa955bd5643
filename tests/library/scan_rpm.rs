//! The rpmdb analyzer against databases written by rpm itself: what it lists must be
//! what `rpm -qa` lists.
//!
//! [`make_rpmdb`] builds three tiny packages with `rpmbuild` (an `Epoch: 2` and a `~` in
//! a version; `Epoch: 0`; a native-arch package whose long description makes its header
//! span several 4096-byte pages), installs them with `rpm --justdb` into a fresh
//! SQLite rpmdb and imports a signing key, which rpm records as a `gpg-pubkey`
//! pseudo-package. `tests/vectors/scan/rpmdb.sqlite` is such a database as rpm 4.18
//! (Debian 12) wrote it, and `rpmdb.qa.txt` what `rpm -qa --qf` [`QUERY_FORMAT`]
//! listed for it, signing keys left out; `WHARF_WRITE_VECTORS=1` rewrites both.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf::scan::inventory::rpm;
use wharf::scan::package::{Package, PackageKind};
use wharf::scan::sqlite::Database;

/// What each package is listed as: the fields rpm's `-qa` prints, then `EVR` and
/// `LICENSE` to check the version and licence exactly.
const QUERY_FORMAT: &str =
    "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{SOURCERPM}\\t%{EVR}\\t%{LICENSE}\\n";

/// An Ed25519 public key made for these tests with `gpg --quick-gen-key`.
const SIGNING_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxEZKxYJKwYBBAHaRw8BAQdAprKhqoA5eM/VUhwvnEC0dTvbPiEbpwxXQ2Jt
r8CMxP20MXdoYXJmIHRlc3Qgc2lnbmluZyBrZXkgPHNjYW4tdGVzdHNAd2hhcmYu
aW52YWxpZD6IkAQTFggAOBYhBCT8GvYZLvMf6TwRumLdoJzkIMfPBQJrERkrAhsD
BQsJCAcCBhUKCQgLAgQWAgMBAh4BAheAAAoJEGLdoJzkIMfP3DcA/0B+TqvMZplB
0eTQWK9NOl/9OqpFyNGIjjkLJsC65EHcAQC4OPejSkR/4MK8A0vAe2xI1+0OClmJ
A3stcQorwMPeBQ==
=cZWr
-----END PGP PUBLIC KEY BLOCK-----
";

/// `(file name, spec)` of the packages.
fn specs() -> Vec<(&'static str, String)> {
    let long_description = "A line of the description, long enough to matter.\n".repeat(200);
    vec![
        (
            "hello-wharf.spec",
            "Name: hello-wharf\nEpoch: 2\nVersion: 1.2~rc1\nRelease: 3.fc40\n\
             Summary: An epoch and a tilde\nLicense: MIT AND (Apache-2.0 OR BSD-3-Clause)\n\
             BuildArch: noarch\n%description\nTest package.\n%files\n"
                .to_owned(),
        ),
        (
            "zero-epoch.spec",
            "Name: zero-epoch\nEpoch: 0\nVersion: 20240101\nRelease: 1.el9\n\
             Summary: An explicit epoch 0\nLicense: LicenseRef-Fedora-Public-Domain\n\
             BuildArch: noarch\n%description\nTest package.\n%files\n"
                .to_owned(),
        ),
        (
            "wharf-long.spec",
            format!(
                "Name: wharf-long\nVersion: 0.9.1\nRelease: 7\n\
                 Summary: A header larger than a page\nLicense: GPL-2.0-or-later\n\
                 %description\n{long_description}%files\n"
            ),
        ),
    ]
}

/// Runs `program` with `args`, panicking with its output if it fails; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Whether rpm and rpmbuild run here; without them the test skips, except under CI.
fn have_rpm() -> bool {
    let runs = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if runs("rpm") && runs("rpmbuild") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the rpmdb test: install rpm (it has rpmbuild)"
    );
    eprintln!("rpm or rpmbuild not found: skipping (apt-get install rpm)");
    false
}

/// Builds the packages under `work` and installs them into a new SQLite rpmdb there;
/// the database's directory.
fn make_rpmdb(work: &Path) -> PathBuf {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let top = work.join("rpmbuild");
    let define_top = format!("_topdir {}", path(&top));
    for (name, spec) in specs() {
        let spec_path = work.join(name);
        std::fs::write(&spec_path, spec).unwrap();
        run(
            "rpmbuild",
            &["--define", &define_top, "--quiet", "-bb", &path(&spec_path)],
        );
    }
    let mut packages = Vec::new();
    for arch in std::fs::read_dir(top.join("RPMS")).unwrap() {
        for package in std::fs::read_dir(arch.unwrap().path()).unwrap() {
            packages.push(path(&package.unwrap().path()));
        }
    }
    assert_eq!(packages.len(), 3, "{packages:?}");

    let db = work.join("db");
    let db_path = path(&db);
    let rpm_db = |args: &[&str]| {
        let base = ["--dbpath", &db_path, "--define", "_db_backend sqlite"];
        run("rpm", &[&base[..], args].concat())
    };
    rpm_db(&["--initdb"]);
    let mut install = vec!["-i", "--justdb", "--nodeps", "--noscripts", "--notriggers"];
    install.extend(["--ignorearch", "--ignoreos"]);
    install.extend(packages.iter().map(String::as_str));
    rpm_db(&install);
    let key = work.join("signing-key.asc");
    std::fs::write(&key, SIGNING_KEY).unwrap();
    rpm_db(&["--import", &path(&key)]);

    // rpm folds its write-ahead log back into the database when it closes it.
    let wal = db.join("rpmdb.sqlite-wal");
    assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0));
    db
}

/// `rpm -qa` of the database in `db`, signing keys left out, sorted.
fn rpm_listing(db: &Path) -> String {
    let listing = run(
        "rpm",
        &[
            "--dbpath",
            db.to_str().unwrap(),
            "--define",
            "_db_backend sqlite",
            "-qa",
            "--qf",
            QUERY_FORMAT,
        ],
    );
    let mut lines: Vec<&str> = listing
        .lines()
        .filter(|line| !line.starts_with("gpg-pubkey\t"))
        .collect();
    lines.sort_unstable();
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// The packages in [`QUERY_FORMAT`], sorted: the listing rpm gives of them.
fn listing(packages: &[Package]) -> String {
    let none = || "(none)".to_owned();
    let mut lines: Vec<String> = packages
        .iter()
        .map(|package| {
            assert_eq!(package.kind, PackageKind::Rpm);
            let (epoch, version_release) = package
                .version
                .split_once(':')
                .unwrap_or(("0", &package.version));
            let source_rpm = package.source.as_ref().map_or_else(none, |source| {
                let version = source.version.as_deref().unwrap_or(version_release);
                format!("{}-{version}.src.rpm", source.name)
            });
            format!(
                "{}\t{epoch}:{version_release}\t{}\t{source_rpm}\t{}\t{}\n",
                package.name,
                package.arch.clone().unwrap_or_else(none),
                package.version,
                package.license.clone().unwrap_or_else(none),
            )
        })
        .collect();
    lines.sort_unstable();
    lines.concat()
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan")
}

#[test]
fn an_rpmdb_written_by_rpm_lists_what_rpm_lists() {
    if !have_rpm() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let db = make_rpmdb(work.path());
    let expected = rpm_listing(&db);
    assert_eq!(expected.lines().count(), 3);
    let bytes = std::fs::read(db.join("rpmdb.sqlite")).unwrap();
    let packages = rpm::parse_sqlite(&bytes, rpm::RPMDB_SQLITE[0]).unwrap();
    assert_eq!(listing(&packages), expected);
    assert!(
        packages
            .iter()
            .all(|p| p.path == "var/lib/rpm/rpmdb.sqlite")
    );

    if std::env::var_os("WHARF_WRITE_VECTORS").is_some() {
        std::fs::write(vectors().join("rpmdb.sqlite"), &bytes).unwrap();
        std::fs::write(vectors().join("rpmdb.qa.txt"), &expected).unwrap();
    }
}

#[test]
fn the_checked_in_rpmdb_lists_what_rpm_listed() {
    let bytes = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let expected = std::fs::read_to_string(vectors().join("rpmdb.qa.txt")).unwrap();
    let path = rpm::RPMDB_SQLITE[1];
    let packages = rpm::parse_sqlite(&bytes, path).unwrap();
    assert_eq!(listing(&packages), expected);

    let hello = packages.iter().find(|p| p.name == "hello-wharf").unwrap();
    assert_eq!(hello.version, "2:1.2~rc1-3.fc40");
    assert_eq!(hello.arch.as_deref(), Some("noarch"));
    assert_eq!(hello.path, path);
    let source = hello.source.as_ref().unwrap();
    assert_eq!(
        (source.name.as_str(), source.version.as_deref()),
        ("hello-wharf", Some("1.2~rc1-3.fc40"))
    );
    // Without an epoch the source's version is the package's.
    let long = packages.iter().find(|p| p.name == "wharf-long").unwrap();
    assert_eq!(long.version, "0.9.1-7");
    assert_eq!(long.source.as_ref().unwrap().version, None);
}

#[test]
fn signing_keys_are_rows_but_not_packages() {
    let bytes = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let database = Database::open(&bytes).unwrap();
    let mut keys = 0;
    let mut rows = 0;
    for row in database.table("Packages").unwrap() {
        let row = row.unwrap();
        rows += 1;
        let header = rpm::parse_header(row.values[1].as_blob().unwrap()).unwrap();
        keys += usize::from(header.is_none());
    }
    assert_eq!((rows, keys), (4, 1));
    assert_eq!(rpm::parse_sqlite(&bytes, "p").unwrap().len(), 3);
}

#[test]
fn the_rpmdb_with_512_byte_pages_reads_the_same() {
    // Every header then spans an overflow chain of several pages.
    let have_sqlite3 = Command::new("sqlite3").arg("-version").output().is_ok();
    if !have_sqlite3 {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test: install sqlite3"
        );
        eprintln!("sqlite3 not found: skipping (apt-get install sqlite3)");
        return;
    }
    let original = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("rpmdb.sqlite");
    std::fs::write(&copy, &original).unwrap();
    run(
        "sqlite3",
        &[
            copy.to_str().unwrap(),
            "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM;",
        ],
    );
    let small = std::fs::read(&copy).unwrap();
    assert_eq!(Database::open(&small).unwrap().page_size(), 512);
    assert_eq!(
        rpm::parse_sqlite(&small, "p").unwrap(),
        rpm::parse_sqlite(&original, "p").unwrap()
    );
}

#[test]
fn a_damaged_rpmdb_is_an_error_naming_the_file() {
    let bytes = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let error = rpm::parse_sqlite(&bytes[..bytes.len() - 4096], rpm::RPMDB_SQLITE[0]).unwrap_err();
    assert_eq!(error.format, "rpmdb");
    assert!(
        error
            .reason
            .starts_with("var/lib/rpm/rpmdb.sqlite: truncated"),
        "{}",
        error.reason
    );
}
