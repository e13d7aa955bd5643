//! The Berkeley DB rpmdb reader against hash databases written by Berkeley DB 5.3 (the
//! version RHEL 7 and 8 ship) through its `db5.3_load` tool, holding the header blobs
//! rpm wrote into `tests/vectors/scan/rpmdb.sqlite` (see `scan_rpm.rs`) under rpm's
//! keys: each package's number as a 4-byte integer in the file's byte order, and key 0
//! holding rpm's counter. What they list must be what `rpm -qa` listed for that
//! database, `rpmdb.qa.txt`.
//!
//! `tests/vectors/scan/rpmdb-bdb/Packages` is such a file (4096-byte pages,
//! little-endian, as on x86), so one test runs without the tool;
//! `WHARF_WRITE_VECTORS=1` rewrites it.

use std::path::PathBuf;
use std::process::Command;

use wharf::scan::inventory::rpm::{self, BdbError, HashDatabase};
use wharf::scan::sqlite::Database;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan")
}

/// `(package number, header blob)` of each row of the SQLite vector.
fn rpm_headers() -> Vec<(u32, Vec<u8>)> {
    let bytes = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let database = Database::open(&bytes).unwrap();
    let rows = database.table("Packages").unwrap().map(Result::unwrap);
    rows.map(|row| (row.rowid as u32, row.values[1].as_blob().unwrap().to_vec()))
        .collect()
}

/// Whether `db5.3_load` runs here; without it the tests skip, except under CI.
fn have_db_load() -> bool {
    if Command::new("db5.3_load").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the Berkeley DB tests: install db5.3-util"
    );
    eprintln!("db5.3_load not found: skipping (apt-get install db5.3-util)");
    false
}

/// A hash database of rpm's Packages pairs made by `db5.3_load`, from its dump format:
/// a header, then each key and each value on a line of its own, in hex after a space.
fn berkeley_packages(page_size: u32, big_endian: bool) -> Vec<u8> {
    let number = |n: u32| match big_endian {
        true => n.to_be_bytes(),
        false => n.to_le_bytes(),
    };
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let headers = rpm_headers();
    let byte_order = if big_endian { 4321 } else { 1234 };
    let mut dump = format!(
        "VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize={page_size}\n\
         db_lorder={byte_order}\nHEADER=END\n"
    );
    let next_number = headers.len() as u32 + 1;
    dump.push_str(&format!(
        " {}\n {}\n",
        hex(&number(0)),
        hex(&number(next_number))
    ));
    for (n, header) in &headers {
        dump.push_str(&format!(" {}\n {}\n", hex(&number(*n)), hex(header)));
    }
    dump.push_str("DATA=END\n");

    let dir = tempfile::tempdir().unwrap();
    let (dump_path, db_path) = (dir.path().join("dump"), dir.path().join("Packages"));
    std::fs::write(&dump_path, dump).unwrap();
    let status = Command::new("db5.3_load")
        .arg("-f")
        .arg(&dump_path)
        .arg(&db_path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&db_path).unwrap()
}

#[test]
fn berkeley_db_rpmdbs_list_what_rpm_listed() {
    if !have_db_load() {
        return;
    }
    let sqlite = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let from_sqlite = rpm::parse_sqlite(&sqlite, rpm::RPMDB_BDB[0]).unwrap();
    for (page_size, big_endian) in [(4096, false), (512, true), (65536, false)] {
        let bytes = berkeley_packages(page_size, big_endian);
        let database = HashDatabase::open(&bytes).unwrap();
        assert_eq!(database.big_endian(), big_endian);
        // Same packages, same (install) order.
        let packages = rpm::parse_bdb(&bytes, rpm::RPMDB_BDB[0]).unwrap();
        assert_eq!(packages, from_sqlite, "{page_size}-byte pages");
        if page_size == 4096 && std::env::var_os("WHARF_WRITE_VECTORS").is_some() {
            std::fs::create_dir_all(vectors().join("rpmdb-bdb")).unwrap();
            std::fs::write(vectors().join("rpmdb-bdb/Packages"), &bytes).unwrap();
        }
    }
}

#[test]
fn the_checked_in_berkeley_db_rpmdb_lists_what_rpm_listed() {
    let bytes = std::fs::read(vectors().join("rpmdb-bdb/Packages")).unwrap();
    let sqlite = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    let packages = rpm::parse_bdb(&bytes, rpm::RPMDB_BDB[0]).unwrap();
    assert_eq!(
        packages,
        rpm::parse_sqlite(&sqlite, rpm::RPMDB_BDB[0]).unwrap()
    );
    let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["wharf-long", "zero-epoch", "hello-wharf"]);

    // Five pairs: the counter, three packages and the signing key.
    let database = HashDatabase::open(&bytes).unwrap();
    let pairs: Vec<_> = database.pairs().map(Result::unwrap).collect();
    assert_eq!(pairs.len(), 5);
    let counter = pairs.iter().find(|p| p.key == [0; 4]).unwrap();
    assert_eq!(counter.value, 5u32.to_le_bytes());
}

/// The first page of `page_size` bytes with type `kind` (byte 25) and a next page.
fn chained_page(bytes: &[u8], page_size: usize, kind: u8) -> usize {
    (1..bytes.len() / page_size)
        .find(|&page| {
            let at = page * page_size;
            bytes[at + 25] == kind && bytes[at + 16..at + 20] != [0; 4]
        })
        .unwrap()
}

/// The error reading every pair of `bytes`, from opening on.
fn pairs_error(bytes: &[u8]) -> BdbError {
    let database = match HashDatabase::open(bytes) {
        Ok(database) => database,
        Err(error) => return error,
    };
    let mut pairs = database.pairs();
    let error = pairs
        .find_map(Result::err)
        .expect("the damage went unnoticed");
    assert!(pairs.next().is_none(), "pairs after an error");
    error
}

#[test]
fn damaged_berkeley_db_files_are_refused() {
    let bytes = std::fs::read(vectors().join("rpmdb-bdb/Packages")).unwrap();
    let page_size = 4096;
    let pages = (bytes.len() / page_size) as u32;

    assert_eq!(
        pairs_error(&bytes[..bytes.len() - page_size]),
        BdbError::Truncated {
            last_page: pages - 1,
            file_pages: pages - 1
        }
    );
    let sqlite = std::fs::read(vectors().join("rpmdb.sqlite")).unwrap();
    assert_eq!(pairs_error(&sqlite), BdbError::NotHash);

    // An overflow page chained to itself, then cut from the rest of its chain.
    let page = chained_page(&bytes, page_size, 7);
    let next_field = page * page_size + 16..page * page_size + 20;
    let mut cycle = bytes.clone();
    cycle[next_field.clone()].copy_from_slice(&(page as u32).to_le_bytes());
    assert_eq!(
        pairs_error(&cycle),
        BdbError::PageRevisited { page: page as u32 }
    );
    let mut cut = bytes.clone();
    cut[next_field.clone()].copy_from_slice(&[0; 4]);
    assert!(matches!(
        pairs_error(&cut),
        BdbError::Overflow {
            problem: "it ends before its length",
            ..
        }
    ));
    let mut far = bytes.clone();
    far[next_field].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    assert_eq!(
        pairs_error(&far),
        BdbError::PageOutOfRange { page: 0x00ff_ffff }
    );

    // The first item offset of the first hash page moved past the second's.
    let hash_page = (1..pages as usize)
        .find(|&p| bytes[p * page_size + 25] == 13)
        .unwrap();
    let offsets = hash_page * page_size + 26;
    let mut disordered = bytes.clone();
    disordered.copy_within(offsets + 2..offsets + 4, offsets);
    assert_eq!(
        pairs_error(&disordered),
        BdbError::Item {
            page: hash_page as u32,
            index: 1,
            problem: "its offset is out of order or off the page"
        }
    );

    let error = rpm::parse_bdb(&cycle, rpm::RPMDB_BDB[0]).unwrap_err();
    assert_eq!(error.format, "rpmdb");
    assert!(
        error
            .reason
            .starts_with("var/lib/rpm/Packages: overflow page"),
        "{}",
        error.reason
    );
}
