//! Fuzz bodies for the rpmdb: the SQLite and Berkeley DB readers on any file, and the
//! RPM header parser.

use crate::scan::inventory::rpm::{self, GPG_PUBKEY, HashDatabase, RpmHeader, parse_header};
use crate::scan::sqlite::{Database, MAX_COLUMNS, MAX_SCHEMA_ENTRIES, Value};

/// Opens the bytes as a SQLite database and reads every table its schema names, then
/// as an rpmdb. Within one table rowids strictly increase and, since no page is read
/// twice and cells may not overlap, the values add up to no more than the file: each
/// value takes a serial-type byte, each blob byte and each text character at least one
/// byte of the file.
pub fn read_sqlite(data: &[u8]) {
    let Ok(database) = Database::open(data) else {
        return;
    };
    assert!(database.page_count() as usize * database.page_size() <= data.len());
    if let Ok(schema) = database.schema() {
        assert!(schema.len() <= MAX_SCHEMA_ENTRIES);
        for entry in schema.iter().filter(|entry| entry.kind == "table") {
            let Ok(rows) = database.table(&entry.name) else {
                continue;
            };
            let mut last_rowid = None;
            let mut file_bytes = 0;
            for row in rows.map_while(Result::ok) {
                assert!(last_rowid < Some(row.rowid), "rowids out of order");
                last_rowid = Some(row.rowid);
                assert!(row.values.len() <= MAX_COLUMNS);
                file_bytes += row.values.iter().map(least_stored_bytes).sum::<usize>();
            }
            assert!(
                file_bytes <= data.len(),
                "{file_bytes} bytes read from a file of {}",
                data.len()
            );
        }
    }
    if let Ok(packages) = rpm::parse_sqlite(data, rpm::RPMDB_SQLITE[0]) {
        assert!(packages.len() <= rpm::MAX_PACKAGES);
        for package in packages {
            assert!(!package.name.is_empty() && package.name != GPG_PUBKEY);
        }
    }
}

/// Opens the bytes as a Berkeley DB hash database and reads every pair, then as an
/// rpmdb. Items may not overlap and overflow pages are read once, so the keys and
/// values add up to no more than the file.
pub fn read_rpm_bdb(data: &[u8]) {
    let Ok(database) = HashDatabase::open(data) else {
        return;
    };
    let mut file_bytes = 0;
    for pair in database.pairs().map_while(Result::ok) {
        file_bytes += pair.key.len() + pair.value.len();
    }
    assert!(
        file_bytes <= data.len(),
        "{file_bytes} bytes read from a file of {}",
        data.len()
    );
    if let Ok(packages) = rpm::parse_bdb(data, rpm::RPMDB_BDB[0]) {
        assert!(packages.len() <= rpm::MAX_PACKAGES);
        for package in packages {
            assert!(!package.name.is_empty() && package.name != GPG_PUBKEY);
        }
    }
}

/// The fewest bytes of the file a value can have come from.
fn least_stored_bytes(value: &Value) -> usize {
    1 + match value {
        Value::Blob(bytes) => bytes.len(),
        Value::Text(text) => text.chars().count(),
        Value::Null | Value::Integer(_) | Value::Real(_) => 0,
    }
}

/// Parses the bytes as an RPM header blob. An accepted header has its needed strings
/// non-empty and NUL-free, and written back out as a blob it reads the same.
pub fn parse_rpm_header(data: &[u8]) {
    let Ok(Some(header)) = parse_header(data) else {
        return;
    };
    assert_ne!(header.name, GPG_PUBKEY);
    for text in [&header.name, &header.version, &header.release] {
        assert!(!text.is_empty() && !text.contains('\0') && text.len() < data.len());
    }
    let package = header.to_package("var/lib/rpm/rpmdb.sqlite");
    assert!(
        package
            .version
            .ends_with(&format!("{}-{}", header.version, header.release))
    );
    assert_eq!(parse_header(&write_header(&header)), Ok(Some(header)));
}

/// A header blob holding the tags of `header`.
fn write_header(header: &RpmHeader) -> Vec<u8> {
    const STRING: u32 = 6;
    const INT32: u32 = 4;
    let string = |text: &str| [text.as_bytes(), b"\0"].concat();
    let mut values: Vec<(u32, u32, Vec<u8>)> = vec![
        (1000, STRING, string(&header.name)),
        (1001, STRING, string(&header.version)),
        (1002, STRING, string(&header.release)),
    ];
    if let Some(epoch) = header.epoch {
        values.push((1003, INT32, epoch.to_be_bytes().to_vec()));
    }
    for (tag, text) in [
        (1014, &header.license),
        (1022, &header.arch),
        (1044, &header.source_rpm),
    ] {
        if let Some(text) = text {
            values.push((tag, STRING, string(text)));
        }
    }
    let mut index = Vec::new();
    let mut store = Vec::new();
    for (tag, kind, value) in values.iter() {
        let offset = u32::try_from(store.len()).unwrap_or(u32::MAX);
        for word in [*tag, *kind, offset, 1] {
            index.extend_from_slice(&word.to_be_bytes());
        }
        store.extend_from_slice(value);
    }
    let count = u32::try_from(values.len()).unwrap_or(u32::MAX);
    let store_len = u32::try_from(store.len()).unwrap_or(u32::MAX);
    [
        &count.to_be_bytes()[..],
        &store_len.to_be_bytes(),
        &index,
        &store,
    ]
    .concat()
}
