//! The SQLite reader against databases written by the `sqlite3` shell: every row it
//! reads must be what `sqlite3` itself selects, across page sizes, b-tree depths,
//! overflow chains, reserved bytes and text encodings; and damaged files must give the
//! error that names the damage.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use wharf::scan::sqlite::{Database, SqliteError, Value};

/// Whether the `sqlite3` shell runs here; without it the tests skip, except under CI.
fn have_sqlite3() -> bool {
    match Command::new("sqlite3").arg("-version").output() {
        Ok(output) if output.status.success() => true,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the SQLite reader tests: install sqlite3"
            );
            eprintln!("sqlite3 not found: skipping (apt-get install sqlite3)");
            false
        }
    }
}

/// Runs `script` in the `sqlite3` shell on the database at `path`; its output.
fn sqlite3(path: &Path, script: &str) -> String {
    let mut child = Command::new("sqlite3")
        .arg("-batch")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A database made by `script`, as bytes.
fn database(script: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    sqlite3(&path, script);
    std::fs::read(&path).unwrap()
}

/// Rows as `sqlite3` prints them in list mode: values joined by `|`, NULL empty, blobs
/// as upper-case hex (the test selects `hex(blob)`).
fn render(rows: impl IntoIterator<Item = Vec<Value>>) -> String {
    let mut out = String::new();
    for values in rows {
        let fields: Vec<String> = values
            .iter()
            .map(|value| match value {
                Value::Null => String::new(),
                Value::Integer(n) => n.to_string(),
                Value::Real(x) => x.to_string(),
                Value::Text(text) => text.clone(),
                Value::Blob(bytes) => bytes.iter().map(|b| format!("{b:02X}")).collect(),
            })
            .collect();
        out.push_str(&fields.join("|"));
        out.push('\n');
    }
    out
}

/// Reads table `name` of `bytes` with the reader, rendered.
fn read_table(bytes: &[u8], name: &str) -> String {
    let database = Database::open(bytes).unwrap();
    render(database.table(name).unwrap().map(|row| row.unwrap().values))
}

/// A table of `rows` rows with an alias rowid, text, integers of every width and blobs.
fn numbered_rows(page_size: u32, rows: u32) -> String {
    format!(
        "PRAGMA page_size={page_size};
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INTEGER, data BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})
         INSERT INTO t SELECT i * 3, 'row ' || i, (i - 2000) * (i * 1000003 - 70000),
                              randomblob(i % 40) FROM c;"
    )
}

/// Where page `number` starts in a file of `page_size`-byte pages.
fn page_at(page_size: usize, number: u32) -> usize {
    (number as usize - 1) * page_size
}

fn root_page(bytes: &[u8], table: &str) -> u32 {
    let database = Database::open(bytes).unwrap();
    let schema = database.schema().unwrap();
    schema.iter().find(|e| e.name == table).unwrap().root_page
}

#[test]
fn many_rows_span_a_btree_of_several_levels() {
    if !have_sqlite3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.db");
    sqlite3(&path, &numbered_rows(512, 5000));
    let expected = sqlite3(&path, "SELECT id, name, n, hex(data) FROM t ORDER BY id;");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(read_table(&bytes, "t"), expected);
    assert_eq!(expected.lines().count(), 5000);

    // The root is an interior page whose right-most child is interior too: three levels.
    let root = root_page(&bytes, "t");
    let root_at = page_at(512, root);
    assert_eq!(bytes[root_at], 0x05);
    let right_most = u32::from_be_bytes(bytes[root_at + 8..root_at + 12].try_into().unwrap());
    assert_eq!(bytes[page_at(512, right_most)], 0x05);
}

#[test]
fn payloads_larger_than_a_page_follow_their_overflow_chains() {
    if !have_sqlite3() {
        return;
    }
    for page_size in [512usize, 4096, 65536] {
        // Around each threshold of the spill rule, then many pages' worth.
        let sizes = [
            0,
            1,
            page_size - 40,
            page_size - 35,
            page_size - 30,
            page_size,
            3 * page_size + 7,
            200_000,
        ];
        let inserts: String = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                format!(
                    "INSERT INTO t VALUES ({i}, randomblob({size}), substr(hex(randomblob({size})), 1, {size}));\n"
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.db");
        sqlite3(
            &path,
            &format!(
                "PRAGMA page_size={page_size};
                 CREATE TABLE t(id INTEGER PRIMARY KEY, data BLOB, note TEXT);
                 {inserts}"
            ),
        );
        let expected = sqlite3(&path, "SELECT id, hex(data), note FROM t ORDER BY id;");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(Database::open(&bytes).unwrap().page_size(), page_size);
        assert_eq!(read_table(&bytes, "t"), expected, "page size {page_size}");
    }
}

#[test]
fn reserved_bytes_shrink_every_page() {
    if !have_sqlite3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reserved.db");
    sqlite3(
        &path,
        // A dot command must start its line; VACUUM rewrites the pages with the reserve.
        "PRAGMA page_size=1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n INTEGER, data BLOB);
.filectrl reserve_bytes 40
         VACUUM;
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)
         INSERT INTO t SELECT i, 'row ' || i, i, randomblob(i * 7) FROM c;",
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[20], 40, "sqlite3 did not reserve the bytes");
    let expected = sqlite3(&path, "SELECT id, name, n, hex(data) FROM t ORDER BY id;");
    assert_eq!(read_table(&bytes, "t"), expected);
}

#[test]
fn utf16_databases_decode_their_text() {
    if !have_sqlite3() {
        return;
    }
    for encoding in ["UTF-16le", "UTF-16be"] {
        let bytes = database(&format!(
            "PRAGMA encoding='{encoding}';
             CREATE TABLE \"Straße\"(word TEXT);
             INSERT INTO \"Straße\" VALUES ('grüße'), ('日本'), ('🦀');"
        ));
        assert_eq!(
            read_table(&bytes, "Straße"),
            "grüße\n日本\n🦀\n",
            "{encoding}"
        );
    }
}

#[test]
fn an_integer_primary_key_reads_as_the_rowid() {
    if !have_sqlite3() {
        return;
    }
    let bytes = database(
        "CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
         INSERT INTO Packages VALUES (7, x'0102'), (-3, x'');",
    );
    let database = Database::open(&bytes).unwrap();
    let rows: Vec<_> = database
        .table("packages")
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows.iter()
            .map(|r| (r.rowid, r.values.clone()))
            .collect::<Vec<_>>(),
        [
            (-3, vec![Value::Integer(-3), Value::Blob(vec![])]),
            (7, vec![Value::Integer(7), Value::Blob(vec![1, 2])]),
        ]
    );
    // As stored, the alias column is NULL.
    let root = root_page(&bytes, "Packages");
    let stored = database.rows(root).next().unwrap().unwrap();
    assert_eq!(stored.values, [Value::Null, Value::Blob(vec![])]);
}

#[test]
fn tables_without_rows_of_their_own_are_refused() {
    if !have_sqlite3() {
        return;
    }
    let bytes = database(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
         CREATE TABLE w(a TEXT PRIMARY KEY, b) WITHOUT ROWID;
         CREATE INDEX t_b ON t(b);
         CREATE VIEW v AS SELECT * FROM t;",
    );
    let database = Database::open(&bytes).unwrap();
    let objects: Vec<_> = database
        .schema()
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {} on {}", e.kind, e.name, e.table_name))
        .collect();
    assert_eq!(
        objects,
        [
            "table t on t",
            "table w on w",
            "index t_b on t",
            "view v on v"
        ]
    );
    for (name, expected) in [
        ("w", SqliteError::NotRowidTable { name: "w".into() }),
        ("v", SqliteError::NotRowidTable { name: "v".into() }),
        ("t_b", SqliteError::NoSuchTable { name: "t_b".into() }),
        (
            "nope",
            SqliteError::NoSuchTable {
                name: "nope".into(),
            },
        ),
    ] {
        assert_eq!(database.table(name).err(), Some(expected));
    }
    assert_eq!(database.table("t").unwrap().count(), 0);
}

/// The error reading table `t` of `bytes`, from opening on.
fn table_error(bytes: &[u8]) -> SqliteError {
    let database = match Database::open(bytes) {
        Ok(database) => database,
        Err(error) => return error,
    };
    let rows = match database.table("t") {
        Ok(rows) => rows,
        Err(error) => return error,
    };
    let mut rows = rows;
    let error = rows
        .find_map(Result::err)
        .expect("the damage went unnoticed");
    assert!(rows.next().is_none(), "rows after an error");
    error
}

#[test]
fn a_truncated_file_is_refused() {
    if !have_sqlite3() {
        return;
    }
    let bytes = database(&numbered_rows(512, 2000));
    let pages = (bytes.len() / 512) as u32;
    assert_eq!(
        table_error(&bytes[..bytes.len() / 2]),
        SqliteError::Truncated {
            header_pages: pages,
            file_pages: pages / 2
        }
    );
    assert_eq!(table_error(&bytes[..99]), SqliteError::NotSqlite);
    assert_eq!(table_error(b""), SqliteError::NotSqlite);
}

#[test]
fn damaged_page_pointers_and_cycles_are_refused() {
    if !have_sqlite3() {
        return;
    }
    let bytes = database(&numbered_rows(512, 2000));
    let page_count = (bytes.len() / 512) as u32;
    let root = root_page(&bytes, "t");
    let right_most = page_at(512, root) + 8;

    let mut far = bytes.clone();
    far[right_most..right_most + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    assert_eq!(
        table_error(&far),
        SqliteError::PageOutOfRange {
            page: 0x7fff_ffff,
            page_count
        }
    );

    let mut cycle = bytes.clone();
    cycle[right_most..right_most + 4].copy_from_slice(&root.to_be_bytes());
    assert_eq!(
        table_error(&cycle),
        SqliteError::PageRevisited { page: root }
    );

    let mut not_a_table = bytes.clone();
    not_a_table[page_at(512, root)] = 0x0a;
    assert_eq!(
        table_error(&not_a_table),
        SqliteError::NotTablePage {
            page: root,
            kind: 0x0a
        }
    );

    // The first cell pointer of the root aimed into its own header.
    let mut into_header = bytes;
    into_header[page_at(512, root) + 12..page_at(512, root) + 14].copy_from_slice(&[0, 4]);
    assert_eq!(
        table_error(&into_header),
        SqliteError::Page {
            page: root,
            offset: 12,
            problem: "a cell offset points outside the cell content area"
        }
    );
}

#[test]
fn damaged_overflow_chains_are_refused() {
    if !have_sqlite3() {
        return;
    }
    // One 3000-byte blob in a table rooted at page 2: its cell sits at the end of the
    // page, so the first overflow page's number is the page's last four bytes.
    let bytes = database(
        "PRAGMA page_size=512;
         CREATE TABLE t(data BLOB);
         INSERT INTO t VALUES (randomblob(3000));",
    );
    let first_overflow = u32::from_be_bytes(bytes[1020..1024].try_into().unwrap());
    assert_eq!(first_overflow, 3);
    let next_field = page_at(512, 3)..page_at(512, 3) + 4;
    assert_eq!(bytes[next_field.clone()], 4u32.to_be_bytes());

    let mut cycle = bytes.clone();
    cycle[next_field.clone()].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(table_error(&cycle), SqliteError::PageRevisited { page: 3 });

    let mut into_btree = bytes.clone();
    into_btree[next_field.clone()].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        table_error(&into_btree),
        SqliteError::PageRevisited { page: 2 }
    );

    let mut cut = bytes;
    cut[next_field].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        table_error(&cut),
        SqliteError::Overflow {
            rowid: 1,
            page: 3,
            problem: "ends before the payload does"
        }
    );
}

#[test]
fn a_btree_deeper_than_sqlite_allows_is_refused() {
    if !have_sqlite3() {
        return;
    }
    // Pages 2 to 30 rewritten as a chain of interior pages with no cells, each page's
    // right-most child the next: the walk gives up at the 21st level.
    let mut bytes = database(&numbered_rows(512, 2000));
    assert_eq!(root_page(&bytes, "t"), 2);
    for page in 2..=30u32 {
        let at = page_at(512, page);
        bytes[at..at + 512].fill(0);
        bytes[at] = 0x05;
        bytes[at + 8..at + 12].copy_from_slice(&(page + 1).to_be_bytes());
    }
    assert_eq!(table_error(&bytes), SqliteError::TooDeep { page: 22 });
}
