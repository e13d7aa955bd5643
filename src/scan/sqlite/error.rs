//! Why a database file could not be read: one variant per way a hostile or damaged file
//! can be malformed, each naming the page, offset, row or table where it was found.

use std::fmt;

use super::MAX_DEPTH;
use super::schema::MAX_SCHEMA_ENTRIES;

/// Why a SQLite database, or one of its tables, could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteError {
    /// The file does not start with the 16-byte `SQLite format 3\0` magic, or is shorter
    /// than the 100-byte database header.
    NotSqlite,
    /// The header's page size is not a power of two from 512 to 65536.
    PageSize {
        /// The big-endian u16 at offset 16 (1 stands for 65536).
        value: u16,
    },
    /// The bytes reserved at the end of each page leave fewer than 480 usable bytes.
    ReservedSpace {
        /// The page size.
        page_size: usize,
        /// The reserved bytes per page (offset 20).
        reserved: u8,
    },
    /// The payload fractions at offsets 21 to 23 are not 64, 32 and 32, the only values
    /// the format allows: the cell layout rules would not hold.
    PayloadFractions,
    /// The text encoding at offset 56 is not 1 (UTF-8), 2 (UTF-16le) or 3 (UTF-16be).
    TextEncoding {
        /// The value found.
        value: u32,
    },
    /// The file holds fewer whole pages than its header says the database has.
    Truncated {
        /// Pages the header says the database has.
        header_pages: u32,
        /// Whole pages the file holds.
        file_pages: u32,
    },
    /// A page number is 0 or beyond the last page.
    PageOutOfRange {
        /// The page number found.
        page: u32,
        /// Pages in the database.
        page_count: u32,
    },
    /// A page is reached a second time while reading one table: a cycle in the b-tree or
    /// an overflow chain, or two parents sharing a child.
    PageRevisited {
        /// The page reached twice.
        page: u32,
    },
    /// A b-tree is deeper than [`MAX_DEPTH`] levels.
    TooDeep {
        /// The page found below the limit.
        page: u32,
    },
    /// A page of a table b-tree has a type other than interior (0x05) or leaf (0x0d).
    NotTablePage {
        /// The page.
        page: u32,
        /// Its type byte.
        kind: u8,
    },
    /// A b-tree page's header, cell pointers or cells are malformed.
    Page {
        /// The page.
        page: u32,
        /// The offset in the page where the problem is.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A row's overflow chain ends before its payload does, or runs on past it.
    Overflow {
        /// The row.
        rowid: i64,
        /// The last overflow page read (or the cell's page, if none was).
        page: u32,
        /// What is wrong.
        problem: &'static str,
    },
    /// A row's record (its column values) is malformed.
    Record {
        /// The row.
        rowid: i64,
        /// The offset in the record's payload where the problem is.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A row of `sqlite_schema` is not `(type, name, tbl_name, rootpage, sql)`.
    Schema {
        /// The row.
        rowid: i64,
        /// What is wrong.
        problem: &'static str,
    },
    /// `sqlite_schema` has more than [`MAX_SCHEMA_ENTRIES`] rows.
    SchemaTooLarge,
    /// The schema names no table by that name.
    NoSuchTable {
        /// The name looked up.
        name: String,
    },
    /// The table exists but is not stored as a rowid b-tree: a view, a virtual table or
    /// a `WITHOUT ROWID` table.
    NotRowidTable {
        /// The table.
        name: String,
    },
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqliteError::NotSqlite => f.write_str("not a SQLite 3 database file"),
            SqliteError::PageSize { value } => {
                write!(
                    f,
                    "page size field {value} is not a power of two from 512 to 65536"
                )
            }
            SqliteError::ReservedSpace {
                page_size,
                reserved,
            } => write!(
                f,
                "{reserved} reserved bytes leave fewer than 480 usable in a {page_size}-byte page"
            ),
            SqliteError::PayloadFractions => {
                f.write_str("payload fractions in the header are not 64, 32, 32")
            }
            SqliteError::TextEncoding { value } => write!(f, "unknown text encoding {value}"),
            SqliteError::Truncated {
                header_pages,
                file_pages,
            } => write!(
                f,
                "truncated: the header says {header_pages} pages, the file holds {file_pages}"
            ),
            SqliteError::PageOutOfRange { page, page_count } => write!(
                f,
                "page {page} does not exist (the database has {page_count} pages)"
            ),
            SqliteError::PageRevisited { page } => write!(
                f,
                "page {page} is reached twice: a cycle in a b-tree or overflow chain"
            ),
            SqliteError::TooDeep { page } => {
                write!(f, "page {page} is more than {MAX_DEPTH} b-tree levels deep")
            }
            SqliteError::NotTablePage { page, kind } => write!(
                f,
                "page {page} has type {kind:#04x}, not a table b-tree page (0x05 or 0x0d)"
            ),
            SqliteError::Page {
                page,
                offset,
                problem,
            } => write!(f, "page {page}, offset {offset}: {problem}"),
            SqliteError::Overflow {
                rowid,
                page,
                problem,
            } => write!(f, "row {rowid}: overflow chain {problem} (at page {page})"),
            SqliteError::Record {
                rowid,
                offset,
                problem,
            } => write!(f, "row {rowid}, record offset {offset}: {problem}"),
            SqliteError::Schema { rowid, problem } => {
                write!(f, "sqlite_schema row {rowid}: {problem}")
            }
            SqliteError::SchemaTooLarge => {
                write!(f, "sqlite_schema has more than {MAX_SCHEMA_ENTRIES} rows")
            }
            SqliteError::NoSuchTable { name } => write!(f, "no table named {name:?}"),
            SqliteError::NotRowidTable { name } => write!(
                f,
                "table {name:?} is not a rowid table (a view, virtual or WITHOUT ROWID table)"
            ),
        }
    }
}

impl std::error::Error for SqliteError {}
