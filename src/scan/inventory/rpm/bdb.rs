//! Berkeley DB hash databases, as the rpmdb of RHEL 7 and 8, CentOS and Amazon Linux 2
//! keeps them (`var/lib/rpm/Packages`): a reader of every key/value pair, in memory and
//! read-only.
//!
//! # Pages
//!
//! The file is a sequence of equal pages numbered from 0. Numbers are in the byte order
//! of the machine that wrote the file, told by the magic number (little-endian on x86).
//! Page 0 is the metadata page:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 12 | 4 | magic `0x00061561` for a hash database |
//! | 16 | 4 | hash format version: 8 or 9 (Berkeley DB 4 and 5) |
//! | 20 | 4 | page size: a power of two from 512 to 65536 |
//! | 24 | 1 | encryption algorithm (0: none) |
//! | 26 | 1 | flags; bit 0: pages carry checksums, which shift their layout |
//! | 32 | 4 | the last page's number |
//!
//! Every other page starts with a 26-byte header: `next_pgno` at 16 (4 bytes),
//! `entries` at 20 (2), `hf_offset` at 22 (2) and the page type at 25 (1). Hash pages
//! (types 2 and 13) hold `entries` items, alternately a key and its value: after the
//! header, an array of 2-byte item offsets from the start of the page; items are laid
//! from the end of the page down, so item `i` ends where item `i − 1` starts (item 0 at
//! the page's end). An item's first byte is its kind:
//!
//! - 1, key/data: the bytes that follow.
//! - 3, off-page: 3 unused bytes, the first overflow page (4) and the total length (4).
//!   Overflow pages (type 7) hold `hf_offset` bytes after their header and chain
//!   through `next_pgno` to 0.
//! - 2 and 4 hold duplicate values, which a database of unique keys (the rpmdb) has
//!   not.
//!
//! Every hash page is read in file order, so the buckets need not be followed; pages
//! freed or not yet used have type 0 and are passed over. The hash function, meta
//! counters and free list are not needed.
//!
//! # Hostile files
//!
//! Item offsets must decrease within their page (items may not overlap) and each
//! overflow page may be read once, so the values add up to no more than the file.

use std::fmt;

/// The magic number of a hash database.
const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;

const PAGE_HASH_UNSORTED: u8 = 2;
const PAGE_OVERFLOW: u8 = 7;
const PAGE_HASH: u8 = 13;

const ITEM_KEYDATA: u8 = 1;
const ITEM_DUPLICATE: u8 = 2;
const ITEM_OFFPAGE: u8 = 3;
const ITEM_OFFPAGE_DUPLICATE: u8 = 4;

/// Why a Berkeley DB file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BdbError {
    /// The file is shorter than a metadata page or lacks the hash magic in either byte
    /// order (a B-tree or queue database, or not Berkeley DB at all).
    NotHash,
    /// The hash format version is not 8 or 9.
    Version {
        /// The version found.
        version: u32,
    },
    /// The page size is not a power of two from 512 to 65536.
    PageSize {
        /// The page size found.
        page_size: u32,
    },
    /// The pages are encrypted or checksummed, which an rpmdb never is.
    Protected,
    /// The file holds fewer pages than the metadata says.
    Truncated {
        /// The last page's number, from the metadata.
        last_page: u32,
        /// Whole pages in the file.
        file_pages: u32,
    },
    /// An overflow page number is 0 or beyond the last page.
    PageOutOfRange {
        /// The page number.
        page: u32,
    },
    /// An overflow page is reached twice: a cycle, or two values sharing a chain.
    PageRevisited {
        /// The page.
        page: u32,
    },
    /// A page in an overflow chain is not an overflow page.
    NotOverflowPage {
        /// The page.
        page: u32,
        /// Its type.
        kind: u8,
    },
    /// A hash page's items are malformed.
    Item {
        /// The page.
        page: u32,
        /// The item's index on the page.
        index: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// An overflow chain does not hold the length its item says.
    Overflow {
        /// The first page of the chain.
        page: u32,
        /// What is wrong.
        problem: &'static str,
    },
}

impl fmt::Display for BdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BdbError::NotHash => f.write_str("not a Berkeley DB hash database"),
            BdbError::Version { version } => {
                write!(f, "hash format version {version} (8 or 9 are read)")
            }
            BdbError::PageSize { page_size } => write!(f, "page size {page_size}"),
            BdbError::Protected => f.write_str("encrypted or checksummed pages"),
            BdbError::Truncated {
                last_page,
                file_pages,
            } => write!(
                f,
                "truncated: the last page is {last_page}, the file holds {file_pages} pages"
            ),
            BdbError::PageOutOfRange { page } => write!(f, "page {page} does not exist"),
            BdbError::PageRevisited { page } => write!(
                f,
                "overflow page {page} is reached twice: a cycle or a shared chain"
            ),
            BdbError::NotOverflowPage { page, kind } => {
                write!(f, "page {page} has type {kind}, not an overflow page (7)")
            }
            BdbError::Item {
                page,
                index,
                problem,
            } => write!(f, "page {page}, item {index}: {problem}"),
            BdbError::Overflow { page, problem } => {
                write!(f, "overflow chain from page {page}: {problem}")
            }
        }
    }
}

impl std::error::Error for BdbError {}

/// A hash database in memory, its metadata checked.
#[derive(Debug, Clone, Copy)]
pub struct HashDatabase<'data> {
    data: &'data [u8],
    page_size: usize,
    last_page: u32,
    big_endian: bool,
}

impl<'data> HashDatabase<'data> {
    /// Reads the metadata page of `data`.
    pub fn open(data: &'data [u8]) -> Result<Self, BdbError> {
        let magic = data.get(12..16).ok_or(BdbError::NotHash)?;
        let magic = [magic[0], magic[1], magic[2], magic[3]];
        let big_endian = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (HASH_MAGIC, _) => false,
            (_, HASH_MAGIC) => true,
            _ => return Err(BdbError::NotHash),
        };
        let read = |at| u32_at(data, at, big_endian).ok_or(BdbError::NotHash);
        let version = read(16)?;
        if !(8..=9).contains(&version) {
            return Err(BdbError::Version { version });
        }
        let page_size = read(20)?;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(BdbError::PageSize { page_size });
        }
        let (encryption, flags) = (data.get(24).copied(), data.get(26).copied());
        if encryption != Some(0) || flags.is_none_or(|flags| flags & 1 != 0) {
            return Err(BdbError::Protected);
        }
        let last_page = read(32)?;
        let page_size = page_size as usize;
        let file_pages = u32::try_from(data.len() / page_size).unwrap_or(u32::MAX);
        if last_page >= file_pages {
            return Err(BdbError::Truncated {
                last_page,
                file_pages,
            });
        }
        Ok(HashDatabase {
            data,
            page_size,
            last_page,
            big_endian,
        })
    }

    /// Whether the file's numbers are big-endian (it was written on such a machine).
    pub fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// Every key/value pair, hash page by hash page.
    pub fn pairs(&self) -> Pairs<'data> {
        Pairs {
            database: *self,
            next_page: 1,
            page: None,
            visited: vec![false; self.last_page as usize + 1],
            failed: false,
        }
    }

    fn page(&self, number: u32) -> Option<&'data [u8]> {
        let start = (number as usize).checked_mul(self.page_size)?;
        self.data.get(start..start.checked_add(self.page_size)?)
    }

    fn u16_at(&self, bytes: &[u8], at: usize) -> Option<u16> {
        let field = bytes.get(at..at + 2)?;
        let field = [field[0], field[1]];
        Some(if self.big_endian {
            u16::from_be_bytes(field)
        } else {
            u16::from_le_bytes(field)
        })
    }
}

fn u32_at(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    let field = [field[0], field[1], field[2], field[3]];
    Some(if big_endian {
        u32::from_be_bytes(field)
    } else {
        u32::from_le_bytes(field)
    })
}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// The key/value pairs of a hash database; after an error it yields nothing more.
#[derive(Debug)]
pub struct Pairs<'data> {
    database: HashDatabase<'data>,
    next_page: u32,
    page: Option<HashPage<'data>>,
    /// Overflow pages read so far.
    visited: Vec<bool>,
    failed: bool,
}

/// The hash page being read.
#[derive(Debug)]
struct HashPage<'data> {
    number: u32,
    bytes: &'data [u8],
    /// Where each item starts and ends.
    items: Vec<(usize, usize)>,
    /// The index of the next key.
    next_key: usize,
}

impl<'data> Pairs<'data> {
    /// The extents of the items on hash page `number`.
    fn items(&self, number: u32, page: &[u8]) -> Result<Vec<(usize, usize)>, BdbError> {
        let item = |index, problem| BdbError::Item {
            page: number,
            index,
            problem,
        };
        let count = usize::from(self.database.u16_at(page, 20).unwrap_or(0));
        let offsets_end = PAGE_HEADER + 2 * count;
        if offsets_end > page.len() {
            return Err(item(0, "more items than the page has room for"));
        }
        if count % 2 != 0 {
            return Err(item(count - 1, "a key without a value"));
        }
        let mut extents = Vec::with_capacity(count);
        let mut end = page.len();
        for index in 0..count {
            let start = self.database.u16_at(page, PAGE_HEADER + 2 * index);
            match start.map(usize::from) {
                Some(start) if start >= offsets_end && start < end => {
                    extents.push((start, end));
                    end = start;
                }
                _ => return Err(item(index, "its offset is out of order or off the page")),
            }
        }
        Ok(extents)
    }

    /// The bytes an item stands for, following an overflow chain.
    fn item_bytes(
        &mut self,
        number: u32,
        index: usize,
        item: &'data [u8],
    ) -> Result<Vec<u8>, BdbError> {
        let problem = |problem| BdbError::Item {
            page: number,
            index,
            problem,
        };
        match item.first().copied() {
            Some(ITEM_KEYDATA) => Ok(item.get(1..).unwrap_or_default().to_vec()),
            Some(ITEM_OFFPAGE) => {
                let big_endian = self.database.big_endian;
                let first = u32_at(item, 4, big_endian).ok_or(problem("a short off-page item"))?;
                let length = u32_at(item, 8, big_endian).ok_or(problem("a short off-page item"))?;
                self.overflow(first, length as usize)
            }
            Some(ITEM_DUPLICATE | ITEM_OFFPAGE_DUPLICATE) => {
                Err(problem("duplicate values (an rpmdb has none)"))
            }
            _ => Err(problem("an unknown item type")),
        }
    }

    /// The `length` bytes of the overflow chain from page `first`.
    fn overflow(&mut self, first: u32, length: usize) -> Result<Vec<u8>, BdbError> {
        let chain_error = |problem| BdbError::Overflow {
            page: first,
            problem,
        };
        if length > self.database.data.len() {
            return Err(chain_error("its length is larger than the file"));
        }
        let mut value = Vec::with_capacity(length);
        let mut next = first;
        while next != 0 {
            let page = match self.visited.get_mut(next as usize) {
                Some(seen) if !*seen => {
                    *seen = true;
                    self.database.page(next)
                }
                Some(_) => return Err(BdbError::PageRevisited { page: next }),
                None => None,
            }
            .ok_or(BdbError::PageOutOfRange { page: next })?;
            let kind = page.get(25).copied().unwrap_or(0);
            if kind != PAGE_OVERFLOW {
                return Err(BdbError::NotOverflowPage { page: next, kind });
            }
            let held = usize::from(self.database.u16_at(page, 22).unwrap_or(0));
            let content = page
                .get(PAGE_HEADER..PAGE_HEADER + held)
                .ok_or(chain_error("a page holds more than fits"))?;
            if value.len() + content.len() > length {
                return Err(chain_error("it holds more than its length"));
            }
            value.extend_from_slice(content);
            next = u32_at(page, 16, self.database.big_endian).unwrap_or(0);
        }
        if value.len() != length {
            return Err(chain_error("it ends before its length"));
        }
        Ok(value)
    }

    fn advance(&mut self) -> Result<Option<Pair>, BdbError> {
        loop {
            if let Some(page) = &mut self.page {
                let (number, bytes, index) = (page.number, page.bytes, page.next_key);
                let item = |index: usize| {
                    let &(start, end) = page.items.get(index)?;
                    bytes.get(start..end)
                };
                if let (Some(key), Some(value)) = (item(index), item(index + 1)) {
                    page.next_key += 2;
                    let key = self.item_bytes(number, index, key)?;
                    let value = self.item_bytes(number, index + 1, value)?;
                    return Ok(Some(Pair { key, value }));
                }
                self.page = None;
            }
            if self.next_page > self.database.last_page {
                return Ok(None);
            }
            let number = self.next_page;
            self.next_page += 1;
            let Some(page) = self.database.page(number) else {
                return Err(BdbError::PageOutOfRange { page: number });
            };
            if let Some(PAGE_HASH | PAGE_HASH_UNSORTED) = page.get(25).copied() {
                self.page = Some(HashPage {
                    number,
                    bytes: page,
                    items: self.items(number, page)?,
                    next_key: 0,
                });
            }
        }
    }
}

impl Iterator for Pairs<'_> {
    type Item = Result<Pair, BdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.advance();
        self.failed = next.is_err();
        next.transpose()
    }
}
