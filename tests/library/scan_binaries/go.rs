//! Go build info of real binaries: programs built here (offline, dependencies from a
//! local directory and from a vendor tree) and the checked-in `go-hello`, against
//! `go version -m`; binaries without section headers, truncated, or not built by Go.

use std::path::Path;
use std::process::Command;

use wharf::scan::inventory::go::{self, BuildInfo, BuildInfoError, BuildSetting, Module};
use wharf::scan::package::{Package, PackageKind};

use super::{elf64, have_tool, progbits, put, read_vector, run, vectors};

const GREETING_GO: &str = "// Package greeting is the test program's dependency.
package greeting

// Hello returns the greeting.
func Hello() string { return \"hello from a local module\" }
";

/// A program whose dependency comes from a local directory through a `replace`: what
/// `go-hello` was built from.
const DIRECTORY_REPLACEMENT: [(&str, &str); 4] = [
    (
        "greeting/go.mod",
        "module example.com/greeting\n\ngo 1.19\n",
    ),
    ("greeting/greeting.go", GREETING_GO),
    (
        "app/go.mod",
        "module example.com/app

go 1.19

require example.com/greeting v1.2.3

replace example.com/greeting v1.2.3 => ../greeting
",
    ),
    (
        "app/main.go",
        "package main

import (
\t\"os\"

\t\"example.com/greeting\"
)

func main() { os.Stdout.WriteString(greeting.Hello() + \"\\n\") }
",
    ),
];

/// A program built from a vendor tree: one dependency replaced by another module (a
/// fork), one as required.
const VENDORED: [(&str, &str); 5] = [
    (
        "app/go.mod",
        "module example.com/vendored

go 1.19

require (
\texample.com/greeting v1.2.3
\tgithub.com/pkg/errors v0.9.1
)

replace example.com/greeting v1.2.3 => example.com/greeting-fork v1.3.0
",
    ),
    (
        "app/main.go",
        "package main

import (
\t\"os\"

\t\"example.com/greeting\"
\t\"github.com/pkg/errors\"
)

func main() { os.Stdout.WriteString(errors.New(greeting.Hello()).Error() + \"\\n\") }
",
    ),
    ("app/vendor/example.com/greeting/greeting.go", GREETING_GO),
    (
        "app/vendor/github.com/pkg/errors/errors.go",
        "// Package errors stands in for the real module under its path.
package errors

type message string

func (m message) Error() string { return string(m) }

// New returns an error with the text.
func New(text string) error { return message(text) }
",
    ),
    (
        "app/vendor/modules.txt",
        "# example.com/greeting v1.2.3 => example.com/greeting-fork v1.3.0
## explicit; go 1.19
example.com/greeting
# github.com/pkg/errors v0.9.1
## explicit
github.com/pkg/errors
# example.com/greeting v1.2.3 => example.com/greeting-fork v1.3.0
",
    ),
];

/// Writes `files` under `root` and builds `root/app` offline (`-mod=<module_mode>`,
/// no proxy, this toolchain only), stripped as the vector was.
fn go_build(root: &Path, files: &[(&str, &str)], module_mode: &str) -> std::path::PathBuf {
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let binary = root.join("program");
    run(Command::new("go")
        .current_dir(root.join("app"))
        .env("GOFLAGS", format!("-mod={module_mode}"))
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
        .arg(&binary)
        .arg("."));
    binary
}

fn go_version_m(binary: &Path) -> String {
    run(Command::new("go").args(["version", "-m"]).arg(binary))
}

/// The packages a `go version -m` listing names, by the rules of the module under test
/// (written out again here): the toolchain as `stdlib` `vX.Y.Z`; `mod` unless
/// `(devel)`; each `dep`, or the module on its `=>` line unless that is a directory.
/// Also the `GOARCH` setting.
fn listed_packages(listing: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut lines = listing.lines();
    let (_, toolchain) = lines.next().unwrap().rsplit_once(": ").unwrap();
    let mut numbers: Vec<&str> = toolchain.strip_prefix("go").unwrap().split('.').collect();
    numbers.resize(3, "0");
    let mut packages = vec![("stdlib".to_owned(), format!("v{}", numbers.join(".")))];
    let mut arch = None;
    for line in lines {
        let fields: Vec<&str> = line.trim_start_matches('\t').split('\t').collect();
        match fields[..] {
            ["mod", _, "(devel)", ..] | ["path", ..] | [""] => {}
            ["mod" | "dep", path, version, ..] => packages.push((path.into(), version.into())),
            ["=>", path, version, ..] if !path.starts_with(['.', '/']) => {
                *packages.last_mut().unwrap() = (path.into(), version.into());
            }
            ["=>", ..] => {}
            ["build", setting] => {
                if let Some(value) = setting.strip_prefix("GOARCH=") {
                    arch = Some(value.to_owned());
                }
            }
            _ => panic!("unexpected go version -m line {line:?}"),
        }
    }
    (packages, arch)
}

fn assert_matches_listing(packages: &[Package], listing: &str) {
    let (expected, arch) = listed_packages(listing);
    let found: Vec<(String, String)> = packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    assert_eq!(found, expected, "{listing}");
    for package in packages {
        assert_eq!(package.kind, PackageKind::Go);
        assert_eq!(package.arch, arch);
    }
}

#[test]
fn the_vector_matches_its_go_version_listing() {
    let binary = read_vector("go-hello");
    let listing = std::fs::read_to_string(vectors().join("go-hello.go-version-m")).unwrap();
    let packages = go::parse(&binary, "usr/local/bin/hello").unwrap();
    assert_matches_listing(&packages, &listing);
    // The directory replacement keeps the required module and version.
    assert_eq!(packages[1].name, "example.com/greeting");
    assert_eq!(packages[1].version, "v1.2.3");
    assert_eq!(packages[1].path, "usr/local/bin/hello");
    assert_eq!(packages.len(), 2);
}

#[test]
fn a_build_with_a_directory_replacement_matches_go_version() {
    if !have_tool(
        "go",
        "version",
        "a_build_with_a_directory_replacement_matches_go_version",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = go_build(dir.path(), &DIRECTORY_REPLACEMENT, "mod");
    let packages = go::parse(&std::fs::read(&binary).unwrap(), "app").unwrap();
    assert_matches_listing(&packages, &go_version_m(&binary));
    assert!(
        packages
            .iter()
            .any(|p| p.name == "example.com/greeting" && p.version == "v1.2.3")
    );
}

#[test]
fn a_vendored_build_with_a_module_replacement_matches_go_version() {
    let test = "a_vendored_build_with_a_module_replacement_matches_go_version";
    if !have_tool("go", "version", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = go_build(dir.path(), &VENDORED, "vendor");
    let packages = go::parse(&std::fs::read(&binary).unwrap(), "app").unwrap();
    assert_matches_listing(&packages, &go_version_m(&binary));
    let modules: Vec<(&str, &str)> = packages[1..]
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        modules,
        [
            ("example.com/greeting-fork", "v1.3.0"),
            ("github.com/pkg/errors", "v0.9.1")
        ]
    );
}

#[test]
#[ignore = "writes tests/vectors/scan/binaries; run by hand to rebuild the vectors"]
fn regenerate_go_vector() {
    let dir = tempfile::tempdir().unwrap();
    let binary = go_build(dir.path(), &DIRECTORY_REPLACEMENT, "mod");
    std::fs::copy(&binary, vectors().join("go-hello")).unwrap();
    let listing = go_version_m(&binary).replacen(&binary.display().to_string(), "go-hello", 1);
    std::fs::write(vectors().join("go-hello.go-version-m"), listing).unwrap();
}

#[test]
fn the_vector_decodes_to_its_build_info() {
    let setting = |key: &str, value: &str| BuildSetting {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let module = |path: &str, version: &str| Module {
        path: path.to_owned(),
        version: version.to_owned(),
        checksum: None,
        replacement: None,
    };
    let info = go::read_build_info(&read_vector("go-hello"))
        .unwrap()
        .unwrap();
    let expected = BuildInfo {
        go_version: "go1.19.8".to_owned(),
        main_package: Some("example.com/app".to_owned()),
        main_module: Some(module("example.com/app", "(devel)")),
        dependencies: vec![Module {
            replacement: Some(Box::new(module("../greeting", "(devel)"))),
            ..module("example.com/greeting", "v1.2.3")
        }],
        settings: vec![
            setting("-compiler", "gc"),
            setting("-trimpath", "true"),
            setting("CGO_ENABLED", "1"),
            setting("GOARCH", "amd64"),
            setting("GOOS", "linux"),
            setting("GOAMD64", "v1"),
        ],
    };
    assert_eq!(info, expected);
    assert!(
        info.dependencies[0]
            .replacement
            .as_ref()
            .unwrap()
            .is_directory()
    );
}

#[test]
fn without_section_headers_the_aligned_magic_is_found() {
    let binary = read_vector("go-hello");
    let expected = go::parse(&binary, "app").unwrap();
    let mut headerless = binary.clone();
    put(&mut headerless, 40, 0, 8); // e_shoff
    put(&mut headerless, 60, 0, 2); // e_shnum
    assert_eq!(go::parse(&headerless, "app").unwrap(), expected);

    // A copy of the magic earlier in the file (as in a program that reads build info
    // itself), followed by something else, is passed over.
    let decoy_at = 0x62000; // .rodata
    headerless[decoy_at..decoy_at + 16].copy_from_slice(b"\xff Go buildinf:\x08\x00");
    assert_eq!(go::parse(&headerless, "app").unwrap(), expected);

    // Unaligned, the real blob is not found; the decoy's error is reported.
    let blob_at = 0xd4000;
    headerless.insert(blob_at, 0);
    assert_eq!(
        go::read_build_info(&headerless),
        Err(BuildInfoError::PointerLayout { pointer_size: 8 })
    );
}

#[test]
fn binaries_not_built_by_go_yield_nothing() {
    assert_eq!(
        go::parse(&read_vector("rust-auditable"), "app"),
        Ok(Vec::new())
    );
    assert_eq!(
        go::read_build_info(&elf64(&[progbits(".text", b"\xc3")])),
        Ok(None)
    );
    let error = go::parse(b"#!/bin/sh\n", "app").unwrap_err();
    assert_eq!(error.format, "go buildinfo");
}

#[test]
fn a_truncated_binary_names_the_section_past_its_end() {
    let binary = read_vector("go-hello");
    let error = go::parse(&binary[..0xd4010], "app").unwrap_err();
    assert!(error.reason.contains(".go.buildinfo"), "{error}");
    assert!(error.reason.contains("past the end of the file"), "{error}");
}
