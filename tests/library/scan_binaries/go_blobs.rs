//! Go build info blobs written here: module information of every record kind, toolchain
//! versions, and blobs damaged in each field the reader checks.

use wharf::scan::inventory::go::{self, BuildInfoError, MAX_MODINFO_BYTES, MAX_MODULES};

use super::{elf64, progbits};

#[test]
fn toolchain_versions_follow_the_vulnerability_database() {
    for (toolchain, expected) in [
        ("go1.22.3", Some("v1.22.3")),
        ("go1.21", Some("v1.21.0")),
        ("go1", Some("v1.0.0")),
        ("go1.21rc2", Some("v1.21.0-rc.2")),
        ("go1.19beta1", Some("v1.19.0-beta.1")),
        ("go1.22.3 X:boringcrypto", Some("v1.22.3")),
        ("go1.21.0-bigcorp", Some("v1.21.0")),
        ("devel go1.23-e0e4e3b Wed Jan 10 18:30:00 2024 +0000", None),
        ("go1.2.3.4", None),
        ("go1.21alpha1", None),
        ("go1..2", None),
        ("", None),
    ] {
        assert_eq!(
            go::stdlib_version(toolchain).as_deref(),
            expected,
            "{toolchain}"
        );
    }
}

/// A blob in the Go 1.18+ layout: header with `flags`, then the two strings.
fn blob_with(flags: u8, version: &[u8], modinfo: &[u8]) -> Vec<u8> {
    let mut blob = go::MAGIC.to_vec();
    blob.extend_from_slice(&[8, flags]);
    blob.resize(32, 0);
    for string in [version, modinfo] {
        let mut length = string.len();
        while length >= 0x80 {
            blob.push(length as u8 | 0x80);
            length >>= 7;
        }
        blob.push(length as u8);
        blob.extend_from_slice(string);
    }
    blob
}

/// Module information text between the toolchain's sentinels.
fn framed(text: &str) -> Vec<u8> {
    let mut framed = b"\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6".to_vec();
    framed.extend_from_slice(text.as_bytes());
    framed.extend_from_slice(b"\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2");
    framed
}

fn blob(text: &str) -> Vec<u8> {
    blob_with(2, b"go1.22.3", &framed(text))
}

#[test]
fn module_information_with_checksums_and_a_main_module_version() {
    let text = "path\texample.com/cmd/tool\n\
                mod\texample.com/cmd\tv1.4.0\th1:main=\n\
                dep\tgolang.org/x/net\tv0.24.0\th1:net=\n\
                dep\tgolang.org/x/sys\tv0.19.0\th1:sys=\n\
                =>\tgithub.com/fork/sys\tv0.19.1\th1:fork=\n\
                build\t-ldflags=\"-s -w\"\nbuild\tGOARCH=arm64\nfuture\tline\n";
    let packages = go::BuildInfo::packages(&go::decode(&blob(text)).unwrap(), "bin/tool");
    let found: Vec<(&str, &str)> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("stdlib", "v1.22.3"),
            ("example.com/cmd", "v1.4.0"),
            ("golang.org/x/net", "v0.24.0"),
            ("github.com/fork/sys", "v0.19.1"),
        ]
    );
    assert!(packages.iter().all(|p| p.arch.as_deref() == Some("arm64")));
}

#[test]
fn a_binary_built_outside_module_mode_yields_the_toolchain() {
    let info = go::decode(&blob_with(2, b"go1.20.1", b"")).unwrap();
    assert_eq!(info.main_module, None);
    let packages = info.packages("app");
    assert_eq!(packages.len(), 1);
    assert_eq!(
        (packages[0].name.as_str(), packages[0].version.as_str()),
        ("stdlib", "v1.20.1")
    );
    let devel = go::decode(&blob_with(2, b"devel go1.23-abc", b"")).unwrap();
    assert!(devel.packages("app").is_empty());
}

#[test]
fn the_pre_1_18_layout_is_unsupported() {
    let mut old = go::MAGIC.to_vec();
    old.extend_from_slice(&[8, 0]);
    old.extend_from_slice(&[0x10; 16]); // two pointers
    let error = go::decode(&old).unwrap_err();
    assert_eq!(error, BuildInfoError::PointerLayout { pointer_size: 8 });
    assert!(error.is_unsupported());
    let binary = elf64(&[progbits(".go.buildinfo", &old)]);
    let reported = go::parse(&binary, "app").unwrap_err();
    assert!(
        reported
            .reason
            .starts_with("unsupported: built by Go before 1.18"),
        "{reported}"
    );
}

#[test]
fn damaged_blobs_are_named() {
    let header = &blob_with(2, b"", b"")[..32];
    let with_tail = |tail: &[u8]| [header, tail].concat();
    assert_eq!(
        go::decode(&header[..20]),
        Err(BuildInfoError::TruncatedHeader { available: 20 })
    );
    // A varint whose continuation bits run past the data.
    assert_eq!(
        go::decode(&with_tail(&[0x80, 0x80])),
        Err(BuildInfoError::VarintPastEnd {
            field: "Go version",
            offset: 32
        })
    );
    assert_eq!(
        go::decode(&with_tail(&[0xff; 11])),
        Err(BuildInfoError::VarintOverflow {
            field: "Go version",
            offset: 32
        })
    );
    assert_eq!(
        go::decode(&with_tail(b"\x64go1.22")),
        Err(BuildInfoError::StringPastEnd {
            field: "Go version",
            offset: 32,
            length: 100
        })
    );
    let huge = (MAX_MODINFO_BYTES + 1) as u64;
    let mut too_long = with_tail(b"\x00");
    let mut length = huge;
    while length >= 0x80 {
        too_long.push(length as u8 | 0x80);
        length >>= 7;
    }
    too_long.push(length as u8);
    assert_eq!(
        go::decode(&too_long),
        Err(BuildInfoError::StringTooLong {
            field: "module information",
            length: huge,
            max: MAX_MODINFO_BYTES
        })
    );
    assert_eq!(
        go::decode(&blob_with(2, b"go1.22\xff", b"")),
        Err(BuildInfoError::NotUtf8 {
            field: "Go version",
            offset: 6
        })
    );
    let mut no_magic = blob("mod\tx\tv1.0.0\n");
    no_magic[1] = b'!';
    let section = elf64(&[progbits(".go.buildinfo", &no_magic)]);
    assert_eq!(go::read_build_info(&section), Err(BuildInfoError::NoMagic));
}

#[test]
fn module_information_without_sentinels_is_refused() {
    let text = "path\tx\nmod\tx\tv1.0.0\n";
    let bare = blob_with(2, b"go1.22.3", text.as_bytes());
    assert_eq!(go::decode(&bare), Err(BuildInfoError::Unframed));
    let whole = framed(text);
    let start_only = blob_with(2, b"go1.22.3", &whole[..whole.len() - 16]);
    assert_eq!(go::decode(&start_only), Err(BuildInfoError::Unframed));
    let no_final_newline = framed("mod\tx\tv1.0.0");
    assert_eq!(
        go::decode(&blob_with(2, b"go1.22.3", &no_final_newline)),
        Err(BuildInfoError::Unframed)
    );
}

#[test]
fn malformed_lines_are_named() {
    for (text, number) in [
        ("=>\tgithub.com/fork\tv1.0.0\t\n", 1),
        ("path\ta\tb\n", 1),
        ("mod\texample.com/app\t\n", 1),
        ("mod\texample.com/app\n", 1),
        ("dep\t\tv1.0.0\n", 1),
        ("dep\tx\tv1\th1:\textra\n", 1),
        ("dep\tx\tv1\n=>\ty\tv2\n=>\tz\tv3\n", 3),
        ("\nbuild\tnovalue\n", 2),
    ] {
        assert!(
            matches!(go::decode(&blob(text)), Err(BuildInfoError::Line { number: n, .. }) if n == number),
            "{text:?}: {:?}",
            go::decode(&blob(text))
        );
    }
}

#[test]
fn the_module_count_is_capped() {
    let lines = |count: usize| -> String {
        (0..count)
            .map(|i| format!("dep\texample.com/m{i}\tv1.0.0\n"))
            .collect()
    };
    let at_cap = go::decode(&blob(&lines(MAX_MODULES))).unwrap();
    assert_eq!(at_cap.dependencies.len(), MAX_MODULES);
    assert_eq!(
        go::decode(&blob(&lines(MAX_MODULES + 1))),
        Err(BuildInfoError::TooManyModules)
    );
}
