//! npm: the checked-in manifests (`tests/vectors/scan/npm`, copied from this machine's
//! npm), the whole tree of this machine's npm against `npm ls`, and hostile manifests.

use std::collections::BTreeSet;
use std::path::Path;

use wharf::scan::inventory::npm::{MAX_NAME_LEN, is_package_json_path, parse_package_json};
use wharf::scan::package::{Package, PackageKind};

use super::{files_under, have, run, vectors};

/// Where Node.js installs npm on Debian and in the official images.
const NPM_ROOT: &str = "/usr/lib/node_modules/npm";

/// The packages in the files under `root`, each given as the path `prefix` + its path
/// under `root`.
fn packages_under(root: &Path, prefix: &str) -> Vec<Package> {
    files_under(root)
        .into_iter()
        .filter_map(|(path, data)| {
            let path = format!("{prefix}{path}");
            match is_package_json_path(&path) {
                true => parse_package_json(&data, &path).unwrap(),
                false => None,
            }
        })
        .collect()
}

#[test]
fn the_checked_in_tree_lists_its_packages() {
    let found = packages_under(&vectors().join("npm"), "");
    let expected = [
        (
            "usr/lib/node_modules/npm/node_modules/@isaacs/string-locale-compare/",
            "@isaacs/string-locale-compare",
            "1.1.0",
            Some("ISC"),
        ),
        (
            "usr/lib/node_modules/npm/node_modules/ms/",
            "ms",
            "2.1.3",
            Some("MIT"),
        ),
        // A legacy `licenses` list.
        (
            "usr/lib/node_modules/npm/node_modules/qrcode-terminal/",
            "qrcode-terminal",
            "0.12.0",
            Some("Apache 2.0"),
        ),
        (
            "usr/lib/node_modules/npm/node_modules/semver/",
            "semver",
            "7.8.5",
            Some("ISC"),
        ),
        (
            "usr/lib/node_modules/npm/",
            "npm",
            "11.19.1",
            Some("Artistic-2.0"),
        ),
    ]
    .map(|(dir, name, version, license)| Package {
        kind: PackageKind::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
        arch: None,
        license: license.map(str::to_owned),
        path: format!("{dir}package.json"),
    });
    // glob's `dist/esm/package.json` is there too, and is not a package.
    assert_eq!(found, expected);
}

#[test]
fn this_machines_npm_tree_lists_what_npm_ls_lists() {
    let root = Path::new(NPM_ROOT);
    if !root.is_dir() || !have("npm", &["--version"], "the npm ls comparison") {
        return;
    }
    // `path:name@version`, one line per installed package, npm itself first. npm's
    // development dependencies are not installed; without `--omit=dev` npm ls would
    // call them missing and fail.
    let listing = run(
        "npm",
        &["ls", "--all", "--parseable", "--long", "--omit=dev"],
        root,
    );
    let expected: BTreeSet<(String, String, String)> = listing
        .lines()
        .map(|line| {
            let (dir, rest) = line.split_once(':').unwrap();
            let spec = rest.split(':').next().unwrap();
            let (name, version) = spec.rsplit_once('@').unwrap();
            let dir = dir.trim_start_matches('/');
            (dir.to_owned(), name.to_owned(), version.to_owned())
        })
        .collect();
    let found: BTreeSet<(String, String, String)> =
        packages_under(root, "usr/lib/node_modules/npm/")
            .into_iter()
            .map(|p| {
                let dir = p.path.strip_suffix("/package.json").unwrap().to_owned();
                (dir, p.name, p.version)
            })
            .collect();
    assert!(expected.len() > 50, "{listing}");
    assert_eq!(found, expected);
}

#[test]
fn package_json_paths() {
    let yes = [
        "node_modules/a/package.json",
        "app/node_modules/a/package.json",
        "app/node_modules/@scope/a/package.json",
        "app/node_modules/a/node_modules/b/package.json",
        "app/node_modules/.pnpm/b@1.0.0/node_modules/b/package.json",
    ];
    let no = [
        "package.json",
        "app/package.json",
        "app/node_modules/package.json",
        "app/node_modules/a/test/fixtures/package.json",
        "app/node_modules/a/dist/esm/package.json",
        "app/node_modules/@scope/package.json",
        "app/node_modules/@/a/package.json",
        "app/node_modules/.bin/package.json",
        "app/node_modules/a/xpackage.json",
        "app/lib/@scope/a/package.json",
    ];
    for path in yes {
        assert!(is_package_json_path(path), "{path}");
    }
    for path in no {
        assert!(!is_package_json_path(path), "{path}");
        assert_eq!(
            parse_package_json(br#"{"name":"a","version":"1"}"#, path),
            Ok(None)
        );
    }
}

const PATH: &str = "app/node_modules/foo/package.json";

fn read(json: &str) -> Option<(String, String, Option<String>)> {
    parse_package_json(json.as_bytes(), PATH)
        .unwrap()
        .map(|p| (p.name, p.version, p.license))
}

fn owned(
    name: &str,
    version: &str,
    license: Option<&str>,
) -> Option<(String, String, Option<String>)> {
    Some((
        name.to_owned(),
        version.to_owned(),
        license.map(str::to_owned),
    ))
}

#[test]
fn names_versions_and_licences() {
    // An alias installs `bar` under `node_modules/foo/`: the manifest's name counts.
    assert_eq!(
        read(r#"{"name":"bar","version":"1.0.0"}"#),
        owned("bar", "1.0.0", None)
    );
    assert_eq!(
        read(r#"{"name":"foo","version":"1"}"#),
        owned("foo", "1", None)
    );
    assert_eq!(
        read(r#"{"name":"foo","version":"1","license":{"type":"MIT","url":"x"}}"#),
        owned("foo", "1", Some("MIT"))
    );
    assert_eq!(
        read(r#"{"name":"foo","version":"1","licenses":[{"type":"MIT"},{"type":"GPL-2.0"}]}"#),
        owned("foo", "1", Some("MIT OR GPL-2.0"))
    );
    assert_eq!(
        read(r#"{"name":"foo","version":"1","license":["MIT"]}"#),
        owned("foo", "1", None)
    );
    // Without a name or a version it is no package.
    assert_eq!(read(r#"{"version":"1"}"#), None);
    assert_eq!(read(r#"{"name":"foo","version":""}"#), None);
    assert_eq!(read(r#"{"type":"module"}"#), None);
}

#[test]
fn malformed_manifests_are_refused() {
    let long_name = format!(
        r#"{{"name":"{}","version":"1"}}"#,
        "a".repeat(MAX_NAME_LEN + 1)
    );
    let cases = [
        (
            r#"{"name":"foo","version":1}"#.to_owned(),
            "`version` is not a string",
        ),
        (
            r#"{"name":["foo"],"version":"1"}"#.to_owned(),
            "`name` is not a string",
        ),
        (r#"["foo"]"#.to_owned(), "not a JSON object"),
        (long_name, "`name` is longer than 214 bytes"),
        (
            r#"{"name":"foo","#.to_owned(),
            "EOF while parsing a value at line 1 column 14",
        ),
    ];
    for (json, reason) in cases {
        let error = parse_package_json(json.as_bytes(), PATH).unwrap_err();
        assert_eq!(error.format, "npm package.json");
        assert_eq!(error.reason, format!("{PATH}: {reason}"), "{json}");
    }
    let not_utf8 = parse_package_json(b"{\"name\":\"f\xff\",\"version\":\"1\"}", PATH);
    assert!(not_utf8.unwrap_err().reason.contains("line 1 column"));
}
