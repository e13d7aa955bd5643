//! Table b-trees: how the rows of one rowid table are laid out over pages, and a walk
//! that yields them in rowid order.
//!
//! # Pages
//!
//! Every b-tree page starts with a header (at offset 100 on page 1, after the database
//! header; at 0 elsewhere):
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | page type: 0x05 interior or 0x0d leaf of a table (0x02, 0x0a: index pages) |
//! | 1 | 2 | first freeblock (not needed to read) |
//! | 3 | 2 | number of cells |
//! | 5 | 2 | start of the cell content area (not needed to read) |
//! | 7 | 1 | fragmented free bytes (not needed to read) |
//! | 8 | 4 | interior pages only: the right-most child page |
//!
//! After the header (8 bytes on a leaf, 12 on an interior page) comes an array of 2-byte
//! cell offsets, counted from the start of the page, in rowid order. Numbers are
//! big-endian.
//!
//! # Cells
//!
//! An interior cell is a 4-byte child page and a varint rowid: the child holds the rows
//! up to that rowid, the right-most child those after the last cell. A leaf cell is a
//! varint payload length `P`, a varint rowid, the first `L` bytes of the payload and,
//! when `L < P`, the 4-byte number of the first overflow page. With `U` the usable page
//! size: `L = P` when `P ≤ U − 35`; otherwise, with `M = (U − 12) × 32 / 255 − 23` the
//! least a page keeps and `K = M + (P − M) mod (U − 4)`, `L` is `K` if `K ≤ U − 35`
//! and `M` if not. An overflow page is a 4-byte next page (0 on the last) and then up to
//! `U − 4` bytes of the payload.
//!
//! # Hostile files
//!
//! One walk visits each page at most once, b-tree and overflow pages alike, so a cycle
//! or a shared page is an error and the work is bounded by the file's size. Every cell
//! must lie inside the usable part of its page, after the cell offsets, and leaf cells
//! may not overlap, so each payload byte comes from a distinct byte of the file. Rows
//! are yielded one at a time: memory holds one page's cell list and one row.

use super::error::SqliteError;
use super::record::{Value, decode_record, read_varint};
use super::{Database, MAX_DEPTH};

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The rowid.
    pub rowid: i64,
    /// The column values as stored, with the rowid put in the column that aliases it
    /// (which the file stores as NULL). May be shorter than the table's column list:
    /// columns added after the row was written read as their default.
    pub values: Vec<Value>,
}

/// The rows of one table b-tree, in rowid order; after an error it yields nothing more.
#[derive(Debug)]
pub struct TableRows<'data> {
    database: Database<'data>,
    visited: PageSet,
    /// Pages still to visit, the next on top, with their depth.
    pending: Vec<(u32, usize)>,
    leaf: Option<Leaf<'data>>,
    rowid_alias: Option<usize>,
    last_rowid: Option<i64>,
    failed: bool,
}

/// A leaf page whose cells are being read.
#[derive(Debug)]
struct Leaf<'data> {
    number: u32,
    page: &'data [u8],
    cells: std::vec::IntoIter<LeafCell>,
}

/// Where a leaf cell's parts are.
#[derive(Debug, Clone, Copy)]
struct LeafCell {
    rowid: i64,
    payload_len: usize,
    local_start: usize,
    local_len: usize,
}

impl<'data> TableRows<'data> {
    pub(super) fn new(database: Database<'data>, root: u32, rowid_alias: Option<usize>) -> Self {
        TableRows {
            visited: PageSet::new(database.page_count()),
            database,
            pending: vec![(root, 0)],
            leaf: None,
            rowid_alias,
            last_rowid: None,
            failed: false,
        }
    }

    /// Marks `number` visited and returns its usable bytes.
    fn visit(&mut self, number: u32) -> Result<&'data [u8], SqliteError> {
        let page = self.database.page(number)?;
        if !self.visited.insert(number) {
            return Err(SqliteError::PageRevisited { page: number });
        }
        Ok(page)
    }

    /// Visits the next pending page: queues an interior page's children, or returns a
    /// leaf's cells.
    fn descend(&mut self) -> Result<Option<Leaf<'data>>, SqliteError> {
        let Some((number, depth)) = self.pending.pop() else {
            return Ok(None);
        };
        if depth >= MAX_DEPTH {
            return Err(SqliteError::TooDeep { page: number });
        }
        let page = self.visit(number)?;
        let header = if number == 1 { 100 } else { 0 };
        let corrupt = |offset, problem| SqliteError::Page {
            page: number,
            offset,
            problem,
        };
        let kind = *page
            .get(header)
            .ok_or(corrupt(header, "the page header is past the usable space"))?;
        let interior = match kind {
            0x05 => true,
            0x0d => false,
            kind => return Err(SqliteError::NotTablePage { page: number, kind }),
        };
        let cell_count =
            usize::from(be16(page, header + 3).ok_or(corrupt(header, "short header"))?);
        let offsets_at = header + if interior { 12 } else { 8 };
        let content_min = offsets_at + 2 * cell_count;
        if content_min > page.len() {
            return Err(corrupt(header + 3, "more cells than the page has room for"));
        }
        let cell_offsets = (0..cell_count).map(|i| {
            let at = offsets_at + 2 * i;
            match be16(page, at).map(usize::from) {
                Some(cell) if cell >= content_min && cell < page.len() => Ok(cell),
                _ => Err(corrupt(
                    at,
                    "a cell offset points outside the cell content area",
                )),
            }
        });
        if interior {
            let right_most = be32(page, header + 8).ok_or(corrupt(header + 8, "short header"))?;
            let mut children = Vec::with_capacity(cell_count + 1);
            for cell in cell_offsets {
                let cell = cell?;
                let child =
                    be32(page, cell).ok_or(corrupt(cell, "a child pointer runs off the page"))?;
                children.push(child);
            }
            children.push(right_most);
            // Pushed last child first, so the left-most is visited next.
            self.pending
                .extend(children.into_iter().rev().map(|child| (child, depth + 1)));
            return Ok(None);
        }
        let mut cells = Vec::with_capacity(cell_count);
        let mut extents = Vec::with_capacity(cell_count);
        for cell in cell_offsets {
            let cell = cell?;
            let (layout, end) = self.leaf_cell(number, page, cell)?;
            cells.push(layout);
            extents.push((cell, end));
        }
        extents.sort_unstable();
        if let Some(pair) = extents.windows(2).find(|pair| pair[1].0 < pair[0].1) {
            return Err(corrupt(pair[1].0, "two cells overlap"));
        }
        Ok(Some(Leaf {
            number,
            page,
            cells: cells.into_iter(),
        }))
    }

    /// Where the leaf cell at `at` keeps its parts, and where it ends.
    fn leaf_cell(
        &self,
        number: u32,
        page: &[u8],
        at: usize,
    ) -> Result<(LeafCell, usize), SqliteError> {
        let corrupt = |offset, problem| SqliteError::Page {
            page: number,
            offset,
            problem,
        };
        let tail = |from: usize| page.get(from..).unwrap_or_default();
        let (payload_len, len_bytes) =
            read_varint(tail(at)).ok_or(corrupt(at, "the payload length runs off the page"))?;
        let (rowid, rowid_bytes) =
            read_varint(tail(at + len_bytes)).ok_or(corrupt(at, "the rowid runs off the page"))?;
        let payload_len = usize::try_from(payload_len)
            .ok()
            .filter(|&len| len <= self.database.file_len())
            .ok_or(corrupt(at, "the payload is longer than the file"))?;
        let local_start = at + len_bytes + rowid_bytes;
        let local_len = local_payload_len(payload_len, page.len());
        let overflow_pointer = if local_len < payload_len { 4 } else { 0 };
        let end = local_start + local_len + overflow_pointer;
        if end > page.len() {
            return Err(corrupt(at, "the cell runs past the usable space"));
        }
        let layout = LeafCell {
            rowid: rowid as i64,
            payload_len,
            local_start,
            local_len,
        };
        Ok((layout, end))
    }

    /// The full payload of a leaf cell, its overflow chain followed.
    fn payload(
        &mut self,
        number: u32,
        page: &[u8],
        cell: LeafCell,
    ) -> Result<Vec<u8>, SqliteError> {
        let local = cell.local_start..cell.local_start + cell.local_len;
        let mut payload = page.get(local).unwrap_or_default().to_vec();
        if cell.local_len == cell.payload_len {
            return Ok(payload);
        }
        let overflow = |page, problem| SqliteError::Overflow {
            rowid: cell.rowid,
            page,
            problem,
        };
        let mut next = be32(page, cell.local_start + cell.local_len).unwrap_or(0);
        let mut current = number;
        while payload.len() < cell.payload_len {
            if next == 0 {
                return Err(overflow(current, "ends before the payload does"));
            }
            current = next;
            let overflow_page = self.visit(current)?;
            next = be32(overflow_page, 0).unwrap_or(0);
            let wanted = cell.payload_len - payload.len();
            let content = overflow_page.get(4..).unwrap_or_default();
            payload.extend_from_slice(content.get(..wanted).unwrap_or(content));
        }
        if next != 0 {
            return Err(overflow(current, "goes on after the payload ends"));
        }
        Ok(payload)
    }

    /// Reads the row of `cell` on the current leaf.
    fn row(&mut self, number: u32, page: &'data [u8], cell: LeafCell) -> Result<Row, SqliteError> {
        if self.last_rowid.is_some_and(|last| cell.rowid <= last) {
            return Err(SqliteError::Page {
                page: number,
                offset: cell.local_start,
                problem: "rowids are out of order",
            });
        }
        self.last_rowid = Some(cell.rowid);
        let payload = self.payload(number, page, cell)?;
        let mut values = decode_record(&payload, self.database.encoding()).map_err(|fault| {
            SqliteError::Record {
                rowid: cell.rowid,
                offset: fault.offset,
                problem: fault.problem,
            }
        })?;
        if let Some(value) = self.rowid_alias.and_then(|i| values.get_mut(i))
            && *value == Value::Null
        {
            *value = Value::Integer(cell.rowid);
        }
        Ok(Row {
            rowid: cell.rowid,
            values,
        })
    }

    fn advance(&mut self) -> Result<Option<Row>, SqliteError> {
        loop {
            if let Some(leaf) = &mut self.leaf {
                let (number, page) = (leaf.number, leaf.page);
                if let Some(cell) = leaf.cells.next() {
                    return self.row(number, page, cell).map(Some);
                }
                self.leaf = None;
            }
            if self.pending.is_empty() {
                return Ok(None);
            }
            self.leaf = self.descend()?;
        }
    }
}

impl Iterator for TableRows<'_> {
    type Item = Result<Row, SqliteError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.advance();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// How many payload bytes a leaf cell keeps on its page (the rule in the module docs).
fn local_payload_len(payload_len: usize, usable: usize) -> usize {
    let max_local = usable - 35;
    if payload_len <= max_local {
        return payload_len;
    }
    let min_local = (usable - 12) * 32 / 255 - 23;
    let kept = min_local + (payload_len - min_local) % (usable - 4);
    if kept <= max_local { kept } else { min_local }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let field = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([field[0], field[1]]))
}

pub(super) fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
}

/// Pages visited, one bit each.
#[derive(Debug)]
struct PageSet {
    bits: Vec<u64>,
}

impl PageSet {
    fn new(page_count: u32) -> Self {
        PageSet {
            bits: vec![0; page_count as usize / 64 + 1],
        }
    }

    /// Adds `page`; false if it was already there.
    fn insert(&mut self, page: u32) -> bool {
        let (word, bit) = (page as usize / 64, page % 64);
        match self.bits.get_mut(word) {
            Some(bits) if *bits & (1 << bit) == 0 => {
                *bits |= 1 << bit;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_payload_follows_the_spill_rule() {
        // 4096-byte pages: up to 4061 bytes stay on the page.
        assert_eq!(local_payload_len(4061, 4096), 4061);
        // M = (4084 × 32 / 255) − 23 = 489; K = 489 + (4062 − 489) mod 4092 = 4062 > 4061.
        assert_eq!(local_payload_len(4062, 4096), 489);
        // K = 489 + (5000 − 489) mod 4092 = 908.
        assert_eq!(local_payload_len(5000, 4096), 908);
        // 512-byte pages: X = 477, M = 39.
        assert_eq!(local_payload_len(477, 512), 477);
        // K = 39 + (600 − 39) mod 508 = 92; for 1000 bytes K = 492 > 477, so M.
        assert_eq!(local_payload_len(600, 512), 92);
        assert_eq!(local_payload_len(1000, 512), 39);
    }

    #[test]
    fn page_set_refuses_a_second_visit_and_out_of_range_pages() {
        let mut set = PageSet::new(130);
        assert!(set.insert(1));
        assert!(set.insert(129));
        assert!(!set.insert(1));
        assert!(!set.insert(129));
        assert!(!set.insert(200));
    }
}
