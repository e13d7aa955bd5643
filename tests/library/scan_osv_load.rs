//! Loading OSV data: a directory of JSON records and zip exports, what is skipped and
//! why, duplicate ids, withdrawn records, the fingerprint, and the zip reader on its
//! own (archives written here by hand, and one written by Python's `zipfile` in the
//! vectors).

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use wharf::scan::osv::record::RecordError;
use wharf::scan::osv::zip::{ZipArchive, ZipError};
use wharf::scan::osv::{OsvDatabase, SkipReason};
use wharf::scan::{Package, PackageKind};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan/osv")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap()
}

const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// A zip archive of `(name, data, method)` entries, laid out as APPNOTE.TXT describes:
/// local headers and data, the central directory, the end record.
fn zip(files: &[(&str, &[u8], u16)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, data, method) in files {
        let body = if *method == DEFLATED {
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        } else {
            data.to_vec()
        };
        let offset = out.len() as u32;
        let mut common = Vec::new();
        common.extend(method.to_le_bytes());
        common.extend([0; 4]); // time and date
        common.extend(crc32fast::hash(data).to_le_bytes());
        common.extend((body.len() as u32).to_le_bytes());
        common.extend((data.len() as u32).to_le_bytes());
        common.extend((name.len() as u16).to_le_bytes());
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0]); // version needed, flags
        out.extend(&common);
        out.extend([0, 0]); // extra length
        out.extend(name.as_bytes());
        out.extend(&body);
        directory.extend(0x0201_4b50u32.to_le_bytes());
        directory.extend([20, 0, 20, 0, 0, 0]); // versions, flags
        directory.extend(&common);
        directory.extend([0; 12]); // extra and comment lengths, disk, attributes
        directory.extend(offset.to_le_bytes());
        directory.extend(name.as_bytes());
    }
    let directory_at = out.len() as u32;
    out.extend(&directory);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0; 4]); // disk numbers
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((directory.len() as u32).to_le_bytes());
    out.extend(directory_at.to_le_bytes());
    out.extend([0, 0]); // comment length
    out
}

fn open(bytes: Vec<u8>) -> Result<ZipArchive<Cursor<Vec<u8>>>, ZipError> {
    ZipArchive::open(Cursor::new(bytes))
}

#[test]
fn the_vectors_load_and_the_broken_ones_are_reported() {
    let (database, report) = OsvDatabase::from_dir(&vectors()).unwrap();
    // Ten JSON records and two in the zip, one of them a duplicate of a JSON record.
    assert_eq!(report.loaded, 11, "{report:#?}");
    assert_eq!(database.len(), 11);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.withdrawn, 0);
    let skipped: Vec<(&str, &SkipReason)> = report
        .skipped
        .iter()
        .map(|(source, reason)| (source.rsplit('/').next().unwrap_or(source), reason))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(matches!(
        skipped[0],
        (
            "truncated.json",
            SkipReason::Record(RecordError::Json { .. })
        )
    ));
    assert!(matches!(
        skipped[1],
        (
            "two-fields-in-one-event.json",
            SkipReason::Record(RecordError::BadEvent {
                affected: 0,
                range: 0,
                event: 0,
                fields: 2
            })
        )
    ));
    assert!(database.advisory("ALSA-2024:2447").is_some());
    assert!(
        database.advisory("PYSEC-2023-74").is_some(),
        "read from the zip export"
    );
}

#[test]
fn withdrawn_records_match_nothing_and_newer_duplicates_win() {
    let record = |modified: &str, fixed: &str, withdrawn: bool| {
        let mut record = json!({
            "id": "GHSA-35jh-r3h4-6jhm", "modified": modified, "aliases": ["CVE-2021-23337"],
            "affected": [{"package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
        });
        if withdrawn {
            record["withdrawn"] = json!("2024-01-01T00:00:00Z");
        }
        record.to_string().into_bytes()
    };
    let lodash = Package {
        kind: PackageKind::Npm,
        name: "lodash".to_owned(),
        version: "4.17.20".to_owned(),
        source: None,
        arch: None,
        license: None,
        path: "app/node_modules/lodash/package.json".to_owned(),
    };
    let fixes = |database: &OsvDatabase| {
        database
            .matches(None, &lodash)
            .into_iter()
            .map(|f| f.fixed_version.unwrap_or_default())
            .collect::<Vec<_>>()
    };

    let old = (
        "old".to_owned(),
        record("2021-05-06T00:00:00Z", "4.17.19", false),
    );
    let new = (
        "new".to_owned(),
        record("2022-02-08T00:00:00Z", "4.17.21", false),
    );
    let (forward, report) = OsvDatabase::from_records([old.clone(), new.clone()]);
    let (backward, _) = OsvDatabase::from_records([new.clone(), old.clone()]);
    assert_eq!((report.loaded, report.duplicates), (1, 1));
    assert_eq!(fixes(&forward), ["4.17.21"]);
    assert_eq!(fixes(&backward), ["4.17.21"]);
    assert_eq!(
        forward.fingerprint(),
        backward.fingerprint(),
        "order does not matter"
    );

    let gone = (
        "gone".to_owned(),
        record("2024-01-01T00:00:00Z", "4.17.21", true),
    );
    let (withdrawn, report) = OsvDatabase::from_records([old, gone]);
    assert_eq!((report.loaded, report.withdrawn), (0, 1));
    assert!(fixes(&withdrawn).is_empty());
    assert_ne!(withdrawn.fingerprint(), forward.fingerprint());
}

#[test]
fn the_fingerprint_follows_the_content_not_the_names() {
    let records = [
        ("a".to_owned(), read("npm/GHSA-35jh-r3h4-6jhm.json")),
        ("b".to_owned(), read("go/GO-2023-1571.json")),
    ];
    let renamed = [
        ("go.json".to_owned(), read("go/GO-2023-1571.json")),
        ("npm.json".to_owned(), read("npm/GHSA-35jh-r3h4-6jhm.json")),
    ];
    let (original, _) = OsvDatabase::from_records(records.clone());
    let (same, _) = OsvDatabase::from_records(renamed);
    assert_eq!(original.fingerprint(), same.fingerprint());
    assert!(original.fingerprint().starts_with("sha256:"));
    assert_eq!(original.fingerprint().len(), "sha256:".len() + 64);

    let mut changed = records;
    changed[1].1 = String::from_utf8(changed[1].1.clone())
        .unwrap()
        .replace("0.7.0", "0.7.1")
        .into_bytes();
    let (other, _) = OsvDatabase::from_records(changed);
    assert_ne!(original.fingerprint(), other.fingerprint());
}

#[test]
fn a_corrupt_zip_entry_is_skipped_and_the_rest_loads() {
    let go = read("go/GO-2023-1571.json");
    let lodash = read("npm/GHSA-35jh-r3h4-6jhm.json");
    let mut archive = zip(&[
        ("GO-2023-1571.json", &go, STORED),
        ("GHSA-35jh-r3h4-6jhm.json", &lodash, STORED),
        ("README", b"x", STORED),
    ]);
    // Flip a byte of the first entry's data (after its 30-byte header and 17-byte name).
    archive[30 + 17 + 10] ^= 0x20;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.zip"), archive).unwrap();
    let mut zip64 = zip(&[("GO-2023-1571.json", &go, STORED)]);
    let end = zip64.len() - 22;
    zip64[end + 16..end + 20].copy_from_slice(&[0xff; 4]);
    std::fs::write(dir.path().join("big.zip"), zip64).unwrap();

    let (database, report) = OsvDatabase::from_dir(dir.path()).unwrap();
    assert_eq!(database.len(), 1);
    assert!(database.advisory("GHSA-35jh-r3h4-6jhm").is_some());
    assert_eq!(report.skipped.len(), 2, "{report:#?}");
    assert!(report.skipped[0].0.ends_with("all.zip!GO-2023-1571.json"));
    assert!(matches!(
        report.skipped[0].1,
        SkipReason::Zip(ZipError::CrcMismatch { .. })
    ));
    assert!(report.skipped[1].0.ends_with("big.zip"));
    assert_eq!(report.skipped[1].1, SkipReason::Zip(ZipError::Zip64));
}

#[test]
fn a_missing_directory_is_an_error() {
    let error = OsvDatabase::from_dir(&vectors().join("no such directory")).unwrap_err();
    assert!(error.to_string().contains("no such directory"), "{error}");
}

#[test]
fn the_zip_reader_reads_stored_and_deflated_entries() {
    let go = read("go/GO-2023-1571.json");
    let mut archive = open(zip(&[
        ("a/GO-2023-1571.json", &go, STORED),
        ("b.json", &go, DEFLATED),
        ("c/", b"", STORED),
    ]))
    .unwrap();
    let names: Vec<&str> = archive.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a/GO-2023-1571.json", "b.json", "c/"]);
    assert!(archive.entries()[2].is_dir());
    assert!(archive.entries()[1].compressed_size < archive.entries()[1].size);
    assert_eq!(archive.read(0).unwrap(), go);
    assert_eq!(archive.read(1).unwrap(), go);
    assert!(archive.read(3).is_err());

    // Python's zipfile wrote this one.
    let mut export =
        ZipArchive::open(std::fs::File::open(vectors().join("exports/PyPI-all.zip")).unwrap())
            .unwrap();
    let methods: Vec<u16> = export.entries().iter().map(|e| e.method).collect();
    assert_eq!(methods, [DEFLATED, STORED]);
    assert_eq!(
        export.read(0).unwrap(),
        read("pypi/GHSA-j8r2-6x86-q33q.json")
    );
}

#[test]
fn the_zip_reader_checks_and_refuses() {
    let record = br#"{"id": "X-1"}"#;
    // A flipped data byte (after the 30-byte header and 6-byte name) fails the CRC.
    let mut flipped = zip(&[("a.json", record, STORED)]);
    flipped[36] ^= 1;
    assert!(matches!(
        open(flipped).unwrap().read(0),
        Err(ZipError::CrcMismatch { .. })
    ));
    // bzip2 (12) is not read.
    let mut bzip2 = zip(&[("a.json", record, STORED)]);
    bzip2[8] = 12;
    let directory = bzip2.len() - 22 - 52;
    bzip2[directory + 10] = 12;
    assert!(matches!(
        open(bzip2).unwrap().read(0),
        Err(ZipError::UnsupportedMethod { method: 12, .. })
    ));
    // Encrypted entries are not read.
    let mut encrypted = zip(&[("a.json", record, STORED)]);
    encrypted[directory + 8] = 1;
    assert!(matches!(
        open(encrypted).unwrap().read(0),
        Err(ZipError::Encrypted { .. })
    ));
    // A saturated entry count marks zip64.
    let mut zip64 = zip(&[("a.json", record, STORED)]);
    let end = zip64.len() - 22;
    zip64[end + 10..end + 12].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(open(zip64).err(), Some(ZipError::Zip64));
    assert_eq!(
        open(b"PK\x03\x04 but no directory".to_vec()).err(),
        Some(ZipError::NotZip)
    );
    // An entry declaring more than the cap is refused before anything is inflated.
    let mut huge = zip(&[("a.json", record, DEFLATED)]);
    let directory = huge.len() - 22 - 52;
    huge[directory + 24..directory + 28].copy_from_slice(&(64u32 << 20).to_le_bytes());
    assert!(matches!(
        open(huge).unwrap().read(0),
        Err(ZipError::TooLarge { .. })
    ));
}

#[test]
fn every_truncation_of_an_archive_is_refused() {
    let bytes = zip(&[
        ("a.json", br#"{"id": "X-1"}"#, DEFLATED),
        ("b.json", b"{}", STORED),
    ]);
    for cut in 0..bytes.len() {
        assert!(open(bytes[..cut].to_vec()).is_err(), "cut at {cut} opened");
    }
}

#[test]
fn links_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("GO-2023-1571.json"),
        read("go/GO-2023-1571.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(vectors(), dir.path().join("elsewhere")).unwrap();
    let (database, report) = OsvDatabase::from_dir(dir.path()).unwrap();
    assert_eq!(database.len(), 1);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].0.ends_with("elsewhere"));
    assert_eq!(report.skipped[0].1, SkipReason::Symlink);
}
