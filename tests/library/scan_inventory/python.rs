//! Python metadata: the checked-in files (`tests/vectors/scan/python`, copied from this
//! machine), every distribution of this machine's Python against `importlib.metadata`,
//! and hostile headers.

use std::path::Path;

use serde_json::Value;
use wharf::scan::inventory::python::{MAX_VALUE_LEN, is_metadata_path, parse_metadata};
use wharf::scan::package::PackageKind;

use super::{files_under, have, run, vectors};

const METADATA: &str = "usr/lib/python3/dist-packages/x-1.0.dist-info/METADATA";

#[test]
fn the_checked_in_tree_lists_its_distributions() {
    let mut found = Vec::new();
    for (path, data) in files_under(&vectors().join("python")) {
        if !is_metadata_path(&path) {
            continue;
        }
        let package = parse_metadata(&data, &path).unwrap().unwrap();
        assert_eq!(
            (package.kind, package.path.as_str()),
            (PackageKind::Python, path.as_str())
        );
        assert_eq!((package.source, package.arch), (None, None));
        found.push((path, package.name, package.version, package.license));
    }
    let owned = |(path, name, version, license): (&str, &str, &str, Option<&str>)| {
        (
            path.to_owned(),
            name.to_owned(),
            version.to_owned(),
            license.map(str::to_owned),
        )
    };
    let expected = [
        (
            "usr/lib/python2.7/wsgiref.egg-info",
            "wsgiref",
            "0.1.2",
            Some("PSF or ZPL"),
        ),
        (
            "usr/lib/python3/dist-packages/python_apt-2.6.0.egg-info/PKG-INFO",
            "python-apt",
            "2.6.0",
            Some("GNU GPL"),
        ),
        (
            "usr/local/lib/python3.11/site-packages/click-8.4.0.dist-info/METADATA",
            "click",
            "8.4.0",
            Some("BSD-3-Clause"),
        ),
        // Its `License` runs over continuation lines: licence text, not a name.
        (
            "usr/local/lib/python3.11/site-packages/libcst-1.0.1.dist-info/METADATA",
            "libcst",
            "1.0.1",
            None,
        ),
        (
            "usr/local/lib/python3.11/site-packages/pip-23.2.1.dist-info/METADATA",
            "pip",
            "23.2.1",
            Some("MIT"),
        ),
    ];
    assert_eq!(found, expected.map(owned));
}

/// Lists every distribution Python finds, as `[metadata location, Name, Version]`.
const LIST_DISTRIBUTIONS: &str = "
import importlib.metadata, json
print(json.dumps([[str(d._path), d.metadata['Name'], d.version]
                  for d in importlib.metadata.distributions() if hasattr(d, '_path')]))
";

#[test]
fn this_machines_python_distributions_read_as_importlib_reads_them() {
    if !have(
        "python3",
        &["--version"],
        "the importlib.metadata comparison",
    ) {
        return;
    }
    let listing = run("python3", &["-c", LIST_DISTRIBUTIONS], Path::new("/"));
    let Value::Array(distributions) = serde_json::from_str(&listing).unwrap() else {
        panic!("not a list: {listing}");
    };
    assert!(distributions.len() > 3, "{listing}");
    for distribution in distributions {
        let [location, name, version] = [0, 1, 2].map(|i| distribution[i].as_str().unwrap());
        // `dist-info` and `egg-info` directories, or an `egg-info` file.
        let location = Path::new(location);
        let file = ["METADATA", "PKG-INFO"]
            .map(|name| location.join(name))
            .into_iter()
            .find(|file| file.is_file())
            .unwrap_or_else(|| location.to_path_buf());
        let data = std::fs::read(&file).unwrap();
        let path = file.to_str().unwrap().trim_start_matches('/');
        assert!(is_metadata_path(path), "{path}");
        let package = parse_metadata(&data, path).unwrap().unwrap();
        assert_eq!(
            (package.name.as_str(), package.version.as_str()),
            (name, version)
        );
    }
}

#[test]
fn metadata_paths() {
    let yes = [
        "usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA",
        "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
        "opt/app/lib/foo-1.0-py3.11.egg/EGG-INFO/PKG-INFO",
        "usr/lib/python2.7/lib-dynload/Python-2.7.18-py2.7.egg-info",
        "a.dist-info/METADATA",
    ];
    let no = [
        "usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/RECORD",
        "usr/lib/python3/dist-packages/.dist-info/METADATA",
        "usr/lib/python3/dist-packages/foo/METADATA",
        "usr/lib/python3/dist-packages/six-1.16.0.egg-info/top_level.txt",
        "usr/lib/python3/dist-packages/foo/EGG-INFO/PKG-INFO",
        "usr/lib/python3/dist-packages/foo.egg-info/requires.txt",
        ".egg-info",
        "METADATA",
    ];
    for path in yes {
        assert!(is_metadata_path(path), "{path}");
    }
    for path in no {
        assert!(!is_metadata_path(path), "{path}");
        assert_eq!(parse_metadata(b"Name: a\nVersion: 1\n", path), Ok(None));
    }
}

fn read(text: &[u8]) -> (String, String, Option<String>) {
    let package = parse_metadata(text, METADATA).unwrap().unwrap();
    (package.name, package.version, package.license)
}

fn owned(name: &str, version: &str, license: Option<&str>) -> (String, String, Option<String>) {
    (
        name.to_owned(),
        version.to_owned(),
        license.map(str::to_owned),
    )
}

#[test]
fn headers_are_read_as_an_email_parser_reads_them() {
    // The first Name and Version count; keys are case-insensitive; the body is not read.
    let text = b"Metadata-Version: 2.1\nname: First\nName: Second\nVERSION: 1.0\n\
                 Version: 2.0\n\nName: in-the-body\n";
    assert_eq!(read(text), owned("First", "1.0", None));
    // `License-Expression` wins over an earlier `License`; `UNKNOWN` is no licence.
    let text = b"Name: a\nVersion: 1\nLicense: MIT License\nLicense-Expression: MIT\n";
    assert_eq!(read(text), owned("a", "1", Some("MIT")));
    assert_eq!(
        read(b"Name: a\nVersion: 1\nLicense: UNKNOWN\n"),
        owned("a", "1", None)
    );
    // Licence text over continuation lines is not a licence name.
    let text = b"Name: a\nVersion: 1\nLicense: Copyright 2020\n        Permission is granted\n";
    assert_eq!(read(text), owned("a", "1", None));
    let long = format!(
        "Name: a\nVersion: 1\nLicense: {}\n",
        "x".repeat(MAX_VALUE_LEN + 1)
    );
    assert_eq!(read(long.as_bytes()), owned("a", "1", None));
    // CRLF, and undecodable bytes where nothing is read.
    let text = b"Name: a\r\nVersion: 1\r\nAuthor: Fran\xe7ois\r\nLicense: \xa9 Me\r\n\r\n\xff";
    assert_eq!(read(text), owned("a", "1", None));
}

#[test]
fn missing_or_broken_names_and_versions_are_refused() {
    let cases: [(&[u8], &str); 7] = [
        (b"Name: a\n", "no Version header"),
        (b"Version: 1\nSummary: x\n", "no Name header"),
        (b"Name: a\n\nVersion: 1\n", "no Version header"),
        // A line no header can be ends the headers, as in Python's email parser.
        (
            b"Name: a\nthis is not a header\nVersion: 1\n",
            "no Version header",
        ),
        (b"Name: caf\xe9\nVersion: 1\n", "line 1: Name is not UTF-8"),
        (b"Name: a\nVersion:\n", "line 2: Version is empty"),
        (
            b"Name: a\n  b\nVersion: 1\n",
            "line 1: Name continues onto a second line",
        ),
    ];
    for (text, reason) in cases {
        let error = parse_metadata(text, METADATA).unwrap_err();
        assert_eq!(error.format, "python metadata");
        assert_eq!(error.reason, format!("{METADATA}: {reason}"));
    }
    let long = format!("Name: {}\nVersion: 1\n", "a".repeat(MAX_VALUE_LEN + 1));
    let error = parse_metadata(long.as_bytes(), METADATA).unwrap_err();
    assert!(
        error
            .reason
            .ends_with("line 1: Name is longer than 1024 bytes"),
        "{error}"
    );
}
