//! A read-only reader of SQLite database files held in memory, enough to list every row
//! of a rowid table: how the rpmdb of current Fedora, RHEL 9 and Amazon Linux 2023 is
//! read without a SQLite library or a file on disk.
//!
//! # The file
//!
//! A database is a sequence of equal pages numbered from 1; page `n` starts at byte
//! `(n − 1) × page size`. Page 1 begins with a 100-byte header, of which this reader
//! uses (numbers big-endian):
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 16 | `SQLite format 3` and a NUL |
//! | 16 | 2 | page size: a power of two from 512 to 32768, or 1 for 65536 |
//! | 18, 19 | 1 each | write and read format: 1 rollback journal, 2 write-ahead log |
//! | 20 | 1 | bytes reserved at the end of every page (for extensions); the rest is *usable* and must be at least 480 |
//! | 21, 22, 23 | 1 each | payload fractions, always 64, 32, 32 |
//! | 24 | 4 | change counter |
//! | 28 | 4 | size of the database in pages, trusted only when the change counter equals the one at 92 (older writers did not keep it) |
//! | 56 | 4 | text encoding: 1 UTF-8, 2 UTF-16le, 3 UTF-16be |
//! | 92 | 4 | the change counter the size at 28 was written with |
//!
//! The rest of page 1 is the root of the schema table ([`SchemaEntry`]), which gives
//! each table's root page; tables are b-trees of pages ([`TableRows`]) whose rows are
//! records ([`Value`]).
//!
//! # What is not read
//!
//! Indexes, free lists and `WITHOUT ROWID` tables are not needed to list a table's
//! rows. A write-ahead log (`<name>-wal`) is not read: a database with a non-empty log
//! beside it may lack its most recent rows here. Images are built with the database
//! closed cleanly, which folds the log back into the file.
//!
//! # Hostile files
//!
//! Every page number, offset and length is checked against the file and its pages; no
//! page is visited twice while reading one table, and b-trees deeper than
//! [`MAX_DEPTH`] are refused, so each table is read in time and memory bounded by the
//! file's size. Each problem is a [`SqliteError`] naming where it was found.

mod btree;
mod error;
mod record;
mod schema;

pub use self::btree::{Row, TableRows};
pub use self::error::SqliteError;
pub use self::record::{MAX_COLUMNS, Value};
pub use self::schema::{MAX_SCHEMA_ENTRIES, SchemaEntry};

use self::btree::be32;
use self::record::TextEncoding;

/// The deepest a table b-tree may be, as in SQLite itself (20 levels of 512-byte pages
/// hold far more rows than a file of any size can).
pub const MAX_DEPTH: usize = 20;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const HEADER_LEN: usize = 100;

/// A SQLite database file in memory, its header checked.
#[derive(Debug, Clone, Copy)]
pub struct Database<'data> {
    data: &'data [u8],
    page_size: usize,
    usable_size: usize,
    page_count: u32,
    encoding: TextEncoding,
}

impl<'data> Database<'data> {
    /// Reads the database header of `data`.
    pub fn open(data: &'data [u8]) -> Result<Self, SqliteError> {
        let header = data
            .get(..HEADER_LEN)
            .filter(|header| header.starts_with(MAGIC))
            .ok_or(SqliteError::NotSqlite)?;
        let field = |at| be32(header, at).unwrap_or(0);
        let page_size_field = u16::from_be_bytes([header[16], header[17]]);
        let page_size = match page_size_field {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => usize::from(n),
            value => return Err(SqliteError::PageSize { value }),
        };
        let reserved = header[20];
        let usable_size = page_size - usize::from(reserved);
        if usable_size < 480 {
            return Err(SqliteError::ReservedSpace {
                page_size,
                reserved,
            });
        }
        if header[21..24] != [64, 32, 32] {
            return Err(SqliteError::PayloadFractions);
        }
        // 0 appears in files written before any text was: the default is UTF-8.
        let encoding = match field(56) {
            0 => TextEncoding::Utf8,
            code => {
                TextEncoding::from_code(code).ok_or(SqliteError::TextEncoding { value: code })?
            }
        };
        let file_pages = u32::try_from(data.len() / page_size).unwrap_or(u32::MAX);
        let header_pages = field(28);
        let header_pages_valid = header_pages != 0 && field(24) == field(92);
        let page_count = if header_pages_valid {
            header_pages
        } else {
            file_pages
        };
        if page_count > file_pages || page_count == 0 {
            return Err(SqliteError::Truncated {
                header_pages: page_count.max(1),
                file_pages,
            });
        }
        Ok(Database {
            data,
            page_size,
            usable_size,
            page_count,
            encoding,
        })
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The number of pages in the database.
    pub fn page_count(&self) -> u32 {
        self.page_count
    }

    /// The rows of `sqlite_schema`: every table, index, view and trigger.
    pub fn schema(&self) -> Result<Vec<SchemaEntry>, SqliteError> {
        let mut entries = Vec::new();
        for row in self.rows(1) {
            if entries.len() == MAX_SCHEMA_ENTRIES {
                return Err(SqliteError::SchemaTooLarge);
            }
            entries.push(SchemaEntry::from_row(&row?)?);
        }
        Ok(entries)
    }

    /// The rows of the rowid table `name` (compared ignoring ASCII case), with the
    /// column that aliases the rowid filled in.
    pub fn table(&self, name: &str) -> Result<TableRows<'data>, SqliteError> {
        let schema = self.schema()?;
        let entry = schema
            .iter()
            .find(|entry| entry.is_table_or_view(name))
            .ok_or_else(|| SqliteError::NoSuchTable { name: name.into() })?;
        let layout = entry.sql.as_deref().map(schema::rowid_layout);
        if entry.root_page == 0 || layout.is_some_and(|layout| layout.without_rowid) {
            return Err(SqliteError::NotRowidTable { name: name.into() });
        }
        let alias = layout.and_then(|layout| layout.alias);
        Ok(TableRows::new(*self, entry.root_page, alias))
    }

    /// The rows of the table b-tree rooted at `root_page`, as stored (a rowid alias
    /// column reads NULL).
    pub fn rows(&self, root_page: u32) -> TableRows<'data> {
        TableRows::new(*self, root_page, None)
    }

    /// The usable bytes of page `number`.
    fn page(&self, number: u32) -> Result<&'data [u8], SqliteError> {
        let out_of_range = SqliteError::PageOutOfRange {
            page: number,
            page_count: self.page_count,
        };
        if number == 0 || number > self.page_count {
            return Err(out_of_range);
        }
        let start = (number as usize - 1) * self.page_size;
        self.data
            .get(start..start + self.usable_size)
            .ok_or(out_of_range)
    }

    fn file_len(&self) -> usize {
        self.data.len()
    }

    fn encoding(&self) -> TextEncoding {
        self.encoding
    }
}
