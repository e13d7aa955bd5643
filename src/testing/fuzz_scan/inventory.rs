//! Fuzz bodies for the text package databases: dpkg status, apk installed, Python
//! metadata, npm `package.json` and os-release. Besides not panicking, what a parser
//! accepts stays within its caps and, written back out in the format, reads the same.

use std::fmt::Write as _;

use crate::scan::inventory::{apk, dpkg, npm, os_release, python};
use crate::scan::package::{Package, PackageKind};

const STATUS_D_FILE: &str = "var/lib/dpkg/status.d/fuzz";
const METADATA: &str = "usr/lib/python3/site-packages/fuzz-1.0.dist-info/METADATA";
const PACKAGE_JSON: &str = "app/node_modules/@fuzz/package/package.json";

/// The bytes as a dpkg status file and as a distroless `status.d/` file. Packages are
/// one-word names, versions and architectures within the caps; the status file's
/// packages are among the `status.d/` reading's (where a missing `Status` means
/// installed), in order; and each list, written back as a status file, reads the same.
pub fn parse_dpkg(data: &[u8]) {
    let status = dpkg::parse_status(data, dpkg::STATUS);
    let status_d = dpkg::parse_status(data, STATUS_D_FILE);
    for (path, result) in [(dpkg::STATUS, &status), (STATUS_D_FILE, &status_d)] {
        let Ok(packages) = result else {
            continue;
        };
        assert!(packages.len() <= dpkg::MAX_PACKAGES);
        for package in packages {
            assert_package(package, PackageKind::Dpkg, path, dpkg::MAX_VALUE_LEN);
            assert_eq!(package.license, None);
            if let Some(source) = &package.source {
                assert!(is_word(&source.name, dpkg::MAX_VALUE_LEN));
                assert_ne!(source.version.as_ref(), Some(&package.version));
            }
        }
        let written = write_dpkg_status(packages);
        assert_eq!(
            dpkg::parse_status(written.as_bytes(), path).as_ref(),
            Ok(packages)
        );
    }
    if let (Ok(installed), Ok(with_status_d_rule)) = (&status, &status_d) {
        let mut rest = with_status_d_rule.iter();
        for package in installed {
            assert!(
                rest.any(|other| Package {
                    path: package.path.clone(),
                    ..other.clone()
                } == *package),
                "{package:?} is missing from the status.d reading"
            );
        }
    }
}

/// The bytes as an apk database: names and versions are single words, values within
/// the cap, and the packages written back read the same.
pub fn parse_apk(data: &[u8]) {
    let Ok(packages) = apk::parse_installed(data, apk::INSTALLED) else {
        return;
    };
    assert!(packages.len() <= apk::MAX_PACKAGES);
    let mut written = String::new();
    for package in &packages {
        assert_package(
            package,
            PackageKind::Apk,
            apk::INSTALLED,
            apk::MAX_VALUE_LEN,
        );
        let _ = writeln!(written, "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let _ = writeln!(written, "P:{}\nV:{}", package.name, package.version);
        for (letter, value) in [
            ('A', &package.arch),
            ('L', &package.license),
            (
                'o',
                &package.source.as_ref().map(|source| source.name.clone()),
            ),
        ] {
            if let Some(value) = value {
                assert!(!value.is_empty() && value.len() <= apk::MAX_VALUE_LEN);
                let _ = writeln!(written, "{letter}:{value}");
            }
        }
        let _ = writeln!(
            written,
            "F:usr/bin\nR:fuzz\nZ:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        );
    }
    assert_eq!(
        apk::parse_installed(written.as_bytes(), apk::INSTALLED),
        Ok(packages)
    );
}

/// The bytes as Python core metadata: an accepted package has its name and version
/// within the cap, and written back as metadata 2.4 reads the same. At a path that is
/// not a metadata file's, nothing is read.
pub fn parse_python_metadata(data: &[u8]) {
    assert_eq!(
        python::parse_metadata(data, "usr/lib/python3/site-packages/fuzz/METADATA"),
        Ok(None)
    );
    let Ok(found) = python::parse_metadata(data, METADATA) else {
        return;
    };
    let Some(package) = found else {
        panic!("a metadata path read as not metadata");
    };
    let max = python::MAX_VALUE_LEN;
    assert!(!package.name.is_empty() && package.name.len() <= max);
    assert!(!package.version.is_empty() && package.version.len() <= max);
    assert!(package.license.as_ref().is_none_or(|l| l.len() <= max));
    let mut written = format!(
        "Metadata-Version: 2.4\nName: {}\nVersion: {}\n",
        package.name, package.version
    );
    if let Some(license) = &package.license {
        let _ = writeln!(written, "License-Expression: {license}");
    }
    written.push_str("\nThe description: Name: not-this\n");
    assert_eq!(
        python::parse_metadata(written.as_bytes(), METADATA),
        Ok(Some(package))
    );
}

/// The bytes as a `package.json`: an accepted package has its name and version within
/// the caps, and written back as JSON reads the same. At a path that is not a package's
/// manifest, nothing is read.
pub fn parse_npm_package(data: &[u8]) {
    assert_eq!(
        npm::parse_package_json(data, "app/node_modules/x/test/package.json"),
        Ok(None)
    );
    let Ok(Some(package)) = npm::parse_package_json(data, PACKAGE_JSON) else {
        return;
    };
    assert!(!package.name.is_empty() && package.name.len() <= npm::MAX_NAME_LEN);
    assert!(!package.version.is_empty() && package.version.len() <= npm::MAX_VALUE_LEN);
    let written = serde_json::json!({
        "name": package.name,
        "version": package.version,
        "license": package.license,
    });
    assert_eq!(
        npm::parse_package_json(written.to_string().as_bytes(), PACKAGE_JSON),
        Ok(Some(package))
    );
}

/// The bytes as an os-release file: an accepted release has an `ID`, values within the
/// cap, and written back in double quotes reads the same.
pub fn parse_os_release(data: &[u8]) {
    let Ok(os) = os_release::parse(data) else {
        return;
    };
    assert!(!os.id.is_empty());
    let quoted = |value: &str| {
        let mut out = String::from("\"");
        for c in value.chars() {
            if matches!(c, '"' | '\\' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    };
    let mut written = format!("NAME=\"Fuzz Linux\"\nID={}\n", quoted(&os.id));
    for (key, value) in [
        ("VERSION_ID", &os.version_id),
        ("VERSION_CODENAME", &os.version_codename),
        ("PRETTY_NAME", &os.pretty_name),
    ] {
        if let Some(value) = value {
            assert!(!value.is_empty() && value.len() <= os_release::MAX_VALUE_LEN);
            let _ = writeln!(written, "{key}={}", quoted(value));
        }
    }
    let _ = writeln!(
        written,
        "# a comment\nID_LIKE={}",
        quoted(&os.id_like.join(" "))
    );
    assert_eq!(os_release::parse(written.as_bytes()), Ok(os));
}

/// The invariants every dpkg and apk package keeps.
fn assert_package(package: &Package, kind: PackageKind, path: &str, max_len: usize) {
    assert_eq!((package.kind, package.path.as_str()), (kind, path));
    assert!(is_word(&package.name, max_len), "{package:?}");
    assert!(is_word(&package.version, max_len), "{package:?}");
}

fn is_word(text: &str, max_len: usize) -> bool {
    !text.is_empty() && text.len() <= max_len && !text.contains(char::is_whitespace)
}

/// `packages` as a status file, every one installed.
fn write_dpkg_status(packages: &[Package]) -> String {
    let mut written = String::new();
    for package in packages {
        let _ = writeln!(
            written,
            "Package: {}\nStatus: install ok installed\nPriority: optional",
            package.name
        );
        if let Some(arch) = &package.arch {
            assert!(is_word(arch, dpkg::MAX_VALUE_LEN));
            let _ = writeln!(written, "Architecture: {arch}");
        }
        if let Some(source) = &package.source {
            let _ = match &source.version {
                Some(version) => writeln!(written, "Source: {} ({version})", source.name),
                None => writeln!(written, "Source: {}", source.name),
            };
        }
        let _ = writeln!(
            written,
            "Version: {}\nDescription: fuzz\n a second line\n .\n a third\n",
            package.version
        );
    }
    written
}
