//! Just enough ELF to find a section by name: the binary analyzers (Go build info,
//! `cargo auditable`) look for metadata the toolchain left in a named section.
//!
//! # The format, as far as it is read here
//!
//! An ELF file starts with a 16-byte identification: the magic `\x7fELF`, then the class
//! (byte 4: 1 = 32-bit, 2 = 64-bit) and the data encoding (byte 5: 1 = little-endian,
//! 2 = big-endian). Every later multi-byte field is in that byte order, and the "word"
//! fields (addresses, offsets, sizes) are 4 bytes wide in a 32-bit file, 8 in a 64-bit one.
//!
//! The file header (52 bytes for 32-bit, 64 for 64-bit) says where the section header
//! table is:
//!
//! | field | 32-bit at | 64-bit at | width | meaning |
//! |---|---|---|---|---|
//! | `e_shoff` | 32 | 40 | word | file offset of the table; 0 = no table |
//! | `e_shentsize` | 46 | 58 | 2 | bytes per table entry |
//! | `e_shnum` | 48 | 60 | 2 | entries |
//! | `e_shstrndx` | 50 | 62 | 2 | index of the section holding the section names |
//!
//! A section header is 40 bytes (32-bit) or 64 bytes (64-bit):
//!
//! | field | 32-bit at | 64-bit at | width | meaning |
//! |---|---|---|---|---|
//! | `sh_name` | 0 | 0 | 4 | offset of the NUL-terminated name in the name section |
//! | `sh_type` | 4 | 4 | 4 | 8 = `SHT_NOBITS`: occupies no bytes in the file (`.bss`) |
//! | `sh_flags` | 8 | 8 | word | 0x800 = `SHF_COMPRESSED`: the bytes are compressed |
//! | `sh_offset` | 16 | 24 | word | file offset of the section's bytes |
//! | `sh_size` | 20 | 32 | word | their length |
//! | `sh_link` | 24 | 40 | 4 | (used by extended numbering, below) |
//!
//! Extended numbering: a file with 0xff00 sections or more writes `e_shnum` = 0 and
//! keeps the count in the `sh_size` of entry 0, and a name-section index that large is
//! written as `e_shstrndx` = 0xffff (`SHN_XINDEX`) with the index in entry 0's `sh_link`.
//! Index 0 (`SHN_UNDEF`) for the name section means the sections have no names.
//!
//! # Limits
//!
//! The input is untrusted: every offset, size and index is checked against the file
//! before use, a table of more than [`MAX_SECTIONS`] entries is refused, and the only
//! allocation is the list of sections (bounded by that cap and the file's own length).

use std::fmt;

use crate::scan::package::InventoryError;

/// The most section headers read; a file that claims more is refused. Real binaries
/// have a few dozen, and `e_shnum` itself cannot count past this.
pub const MAX_SECTIONS: usize = 65_535;

/// The magic every ELF file starts with.
pub const MAGIC: &[u8; 4] = b"\x7fELF";

const SHT_NOBITS: u32 = 8;
const SHF_COMPRESSED: u64 = 0x800;
const SHN_UNDEF: u64 = 0;
const SHN_XINDEX: u64 = 0xffff;

/// Where the fields this reader needs sit, for one ELF class.
struct Layout {
    word: usize,
    header_size: usize,
    e_shoff: usize,
    e_shentsize: usize,
    e_shnum: usize,
    e_shstrndx: usize,
    entry_size: u64,
    sh_flags: usize,
    sh_offset: usize,
    sh_size: usize,
    sh_link: usize,
}

const ELF32: Layout = Layout {
    word: 4,
    header_size: 52,
    e_shoff: 32,
    e_shentsize: 46,
    e_shnum: 48,
    e_shstrndx: 50,
    entry_size: 40,
    sh_flags: 8,
    sh_offset: 16,
    sh_size: 20,
    sh_link: 24,
};

const ELF64: Layout = Layout {
    word: 8,
    header_size: 64,
    e_shoff: 40,
    e_shentsize: 58,
    e_shnum: 60,
    e_shstrndx: 62,
    entry_size: 64,
    sh_flags: 8,
    sh_offset: 24,
    sh_size: 32,
    sh_link: 40,
};

/// One section, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name (`.text`, `.go.buildinfo`, `.dep-v0`); empty when the file names none.
    /// Bytes that are not UTF-8 are replaced, so such a name never equals a real one.
    pub name: String,
    /// `sh_type` (1 = `SHT_PROGBITS`, 8 = `SHT_NOBITS`, …).
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_offset`: where the section's bytes start in the file.
    pub offset: u64,
    /// `sh_size`: how many bytes it has (in memory, for a `SHT_NOBITS` section).
    pub size: u64,
}

impl Section {
    /// The section's bytes in `file` (the file its header was read from): empty for a
    /// `SHT_NOBITS` section, which occupies no bytes in the file.
    ///
    /// Errors when the bytes lie outside the file, or are compressed (`SHF_COMPRESSED`),
    /// which this reader does not undo.
    pub fn bytes<'a>(&self, file: &'a [u8]) -> Result<&'a [u8], ElfError> {
        if self.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        if self.flags & SHF_COMPRESSED != 0 {
            return Err(ElfError::CompressedSection {
                name: self.name.clone(),
            });
        }
        range(file, self.offset, self.size).ok_or_else(|| ElfError::SectionOutsideFile {
            name: self.name.clone(),
            offset: self.offset,
            size: self.size,
            file_size: file.len(),
        })
    }
}

/// Why a file could not be read as ELF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    NotElf,
    /// The file is shorter than its class's file header.
    TruncatedHeader {
        /// The header's size for the file's class.
        needed: usize,
        /// The file's size.
        file_size: usize,
    },
    /// Byte 4 is neither 1 (32-bit) nor 2 (64-bit).
    UnknownClass(u8),
    /// Byte 5 is neither 1 (little-endian) nor 2 (big-endian).
    UnknownByteOrder(u8),
    /// `e_shentsize` is smaller than a section header of the file's class.
    EntryTooSmall {
        /// `e_shentsize`.
        entry_size: u64,
        /// The size of a section header of the file's class.
        needed: u64,
    },
    /// The file claims more than [`MAX_SECTIONS`] sections.
    TooManySections {
        /// The claimed count.
        count: u64,
    },
    /// The section header table does not fit in the file.
    TableOutsideFile {
        /// `e_shoff`.
        offset: u64,
        /// The number of entries.
        count: u64,
        /// `e_shentsize`.
        entry_size: u64,
        /// The file's size.
        file_size: usize,
    },
    /// The name section's index is not one of the file's sections.
    NameSectionIndex {
        /// The index given.
        index: u64,
        /// The number of sections.
        count: usize,
    },
    /// A section's name does not lie, NUL-terminated, inside the name section.
    BadName {
        /// The section's index.
        section: usize,
        /// `sh_name`.
        name_offset: u64,
    },
    /// The section-name section is `SHT_NOBITS` or its bytes lie outside the file.
    NamesOutsideFile {
        /// Its index.
        index: usize,
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
        /// The file's size.
        file_size: usize,
    },
    /// A section's bytes lie outside the file.
    SectionOutsideFile {
        /// The section's name.
        name: String,
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
        /// The file's size.
        file_size: usize,
    },
    /// A section is compressed (`SHF_COMPRESSED`).
    CompressedSection {
        /// The section's name.
        name: String,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file (no \\x7fELF magic)"),
            ElfError::TruncatedHeader { needed, file_size } => write!(
                f,
                "the file header needs {needed} bytes, the file has {file_size}"
            ),
            ElfError::UnknownClass(class) => write!(f, "unknown ELF class {class} at byte 4"),
            ElfError::UnknownByteOrder(order) => {
                write!(f, "unknown ELF byte order {order} at byte 5")
            }
            ElfError::EntryTooSmall { entry_size, needed } => write!(
                f,
                "e_shentsize is {entry_size}, a section header needs {needed} bytes"
            ),
            ElfError::TooManySections { count } => write!(
                f,
                "the file claims {count} sections, more than the {MAX_SECTIONS} read"
            ),
            ElfError::TableOutsideFile {
                offset,
                count,
                entry_size,
                file_size,
            } => write!(
                f,
                "the section header table ({count} entries of {entry_size} bytes at offset \
                 {offset:#x}) runs past the end of the file ({file_size} bytes)"
            ),
            ElfError::NameSectionIndex { index, count } => write!(
                f,
                "e_shstrndx names section {index}, the file has {count} sections"
            ),
            ElfError::BadName {
                section,
                name_offset,
            } => write!(
                f,
                "section {section}'s name (sh_name {name_offset:#x}) is not a NUL-terminated \
                 string inside the name section"
            ),
            ElfError::NamesOutsideFile {
                index,
                offset,
                size,
                file_size,
            } => write!(
                f,
                "the section-name section ({index}: {size} bytes at offset {offset:#x}) is not \
                 inside the file ({file_size} bytes)"
            ),
            ElfError::SectionOutsideFile {
                name,
                offset,
                size,
                file_size,
            } => write!(
                f,
                "section {name:?} ({size} bytes at offset {offset:#x}) runs past the end of \
                 the file ({file_size} bytes)"
            ),
            ElfError::CompressedSection { name } => {
                write!(
                    f,
                    "section {name:?} is compressed (SHF_COMPRESSED), not read"
                )
            }
        }
    }
}

impl std::error::Error for ElfError {}

impl From<ElfError> for InventoryError {
    fn from(error: ElfError) -> Self {
        InventoryError::new("elf", error.to_string())
    }
}

/// Whether `data` starts with the ELF magic.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

/// The sections of an ELF file, in table order; none when the file has no section header
/// table (`e_shoff` = 0), as stripped-down binaries may.
pub fn sections(data: &[u8]) -> Result<Vec<Section>, ElfError> {
    let file = ElfFile::open(data)?;
    let Some(table) = file.section_table()? else {
        return Ok(Vec::new());
    };
    let names = file.name_section(&table)?;
    let mut sections = Vec::with_capacity(table.count);
    for index in 0..table.count {
        let header = file.header(&table, index)?;
        let name = match names {
            Some(names) => name_at(names, header.name_offset).ok_or(ElfError::BadName {
                section: index,
                name_offset: header.name_offset,
            })?,
            None => String::new(),
        };
        sections.push(Section {
            name,
            kind: header.kind,
            flags: header.flags,
            offset: header.offset,
            size: header.size,
        });
    }
    Ok(sections)
}

/// The bytes of the first section called `name`, or `None` when the file has no such
/// section (or no section header table). A `SHT_NOBITS` section has no bytes: `Some(&[])`.
pub fn section_data<'a>(data: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, ElfError> {
    match sections(data)?
        .into_iter()
        .find(|section| section.name == name)
    {
        Some(section) => section.bytes(data).map(Some),
        None => Ok(None),
    }
}

/// A file whose identification and header have been checked.
struct ElfFile<'a> {
    data: &'a [u8],
    layout: &'static Layout,
    big_endian: bool,
}

/// The section header table, checked to lie inside the file.
struct Table {
    offset: usize,
    entry_size: usize,
    count: usize,
    name_index: u64,
}

/// The fields of one section header this reader uses.
struct RawHeader {
    name_offset: u64,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u64,
}

impl<'a> ElfFile<'a> {
    fn open(data: &'a [u8]) -> Result<Self, ElfError> {
        if !is_elf(data) {
            return Err(ElfError::NotElf);
        }
        let layout = match data.get(4).copied() {
            Some(1) => &ELF32,
            Some(2) => &ELF64,
            other => return Err(ElfError::UnknownClass(other.unwrap_or(0))),
        };
        let big_endian = match data.get(5).copied() {
            Some(1) => false,
            Some(2) => true,
            other => return Err(ElfError::UnknownByteOrder(other.unwrap_or(0))),
        };
        if data.len() < layout.header_size {
            return Err(ElfError::TruncatedHeader {
                needed: layout.header_size,
                file_size: data.len(),
            });
        }
        Ok(ElfFile {
            data,
            layout,
            big_endian,
        })
    }

    /// An unsigned integer of `width` bytes (at most 8) at `at`, in the file's byte order.
    fn uint(&self, at: usize, width: usize) -> Option<u64> {
        let bytes = self.data.get(at..at.checked_add(width)?)?;
        let push = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
        Some(if self.big_endian {
            bytes.iter().fold(0, push)
        } else {
            bytes.iter().rev().fold(0, push)
        })
    }

    /// A header field: `open` checked the header is in the file, so this cannot fail.
    fn header_field(&self, at: usize, width: usize) -> u64 {
        self.uint(at, width).unwrap_or(0)
    }

    fn section_table(&self) -> Result<Option<Table>, ElfError> {
        let layout = self.layout;
        let offset = self.header_field(layout.e_shoff, layout.word);
        let entry_size = self.header_field(layout.e_shentsize, 2);
        let short_count = self.header_field(layout.e_shnum, 2);
        let short_name_index = self.header_field(layout.e_shstrndx, 2);
        if offset == 0 {
            return Ok(None);
        }
        if entry_size < layout.entry_size {
            return Err(ElfError::EntryTooSmall {
                entry_size,
                needed: layout.entry_size,
            });
        }
        let outside = |count| ElfError::TableOutsideFile {
            offset,
            count,
            entry_size,
            file_size: self.data.len(),
        };
        let checked = |count: u64| -> Result<Table, ElfError> {
            let fits = count
                .checked_mul(entry_size)
                .and_then(|bytes| range(self.data, offset, bytes))
                .is_some();
            // When the table fits in the file, offset, entry size and count fit in usize.
            let as_usize = |value: u64| usize::try_from(value).ok().filter(|_| fits);
            match (as_usize(offset), as_usize(entry_size), as_usize(count)) {
                (Some(offset), Some(entry_size), Some(count)) => Ok(Table {
                    offset,
                    entry_size,
                    count,
                    name_index: short_name_index,
                }),
                _ => Err(outside(count)),
            }
        };
        // Entry 0 carries the real count and name index under extended numbering.
        let first = checked(1)?;
        let first_entry = self.header(&first, 0)?;
        let count = if short_count == 0 {
            first_entry.size
        } else {
            short_count
        };
        if count == 0 {
            return Ok(None);
        }
        if count > MAX_SECTIONS as u64 {
            return Err(ElfError::TooManySections { count });
        }
        let mut table = checked(count)?;
        if short_name_index == SHN_XINDEX {
            table.name_index = first_entry.link;
        }
        Ok(Some(table))
    }

    fn header(&self, table: &Table, index: usize) -> Result<RawHeader, ElfError> {
        index
            .checked_mul(table.entry_size)
            .and_then(|relative| relative.checked_add(table.offset))
            .and_then(|at| self.header_at(at))
            .ok_or(ElfError::TableOutsideFile {
                offset: table.offset as u64,
                count: table.count as u64,
                entry_size: table.entry_size as u64,
                file_size: self.data.len(),
            })
    }

    fn header_at(&self, at: usize) -> Option<RawHeader> {
        let layout = self.layout;
        let field = |relative: usize, width: usize| self.uint(at.checked_add(relative)?, width);
        Some(RawHeader {
            name_offset: field(0, 4)?,
            kind: u32::try_from(field(4, 4)?).ok()?,
            flags: field(layout.sh_flags, layout.word)?,
            offset: field(layout.sh_offset, layout.word)?,
            size: field(layout.sh_size, layout.word)?,
            link: field(layout.sh_link, 4)?,
        })
    }

    /// The bytes of the section-name section, or `None` when the file names no sections.
    fn name_section(&self, table: &Table) -> Result<Option<&'a [u8]>, ElfError> {
        if table.name_index == SHN_UNDEF {
            return Ok(None);
        }
        let index = usize::try_from(table.name_index)
            .ok()
            .filter(|&index| index < table.count)
            .ok_or(ElfError::NameSectionIndex {
                index: table.name_index,
                count: table.count,
            })?;
        let header = self.header(table, index)?;
        let outside = ElfError::NamesOutsideFile {
            index,
            offset: header.offset,
            size: header.size,
            file_size: self.data.len(),
        };
        if header.kind == SHT_NOBITS {
            return Err(outside);
        }
        range(self.data, header.offset, header.size)
            .map(Some)
            .ok_or(outside)
    }
}

/// The NUL-terminated string at `offset` of the name section.
fn name_at(names: &[u8], offset: u64) -> Option<String> {
    let tail = names.get(usize::try_from(offset).ok()?..)?;
    let end = tail.iter().position(|&byte| byte == 0)?;
    Some(String::from_utf8_lossy(tail.get(..end)?).into_owned())
}

/// `size` bytes of `data` from `offset`, if they are all inside it.
fn range(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}
