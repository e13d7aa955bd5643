//! The ELF section reader: real files of every class and byte order against `readelf`,
//! and files damaged in each field it reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use wharf::scan::inventory::elf::{self, ElfError, MAX_SECTIONS};

use super::{
    SHT_NOBITS, TestSection, elf64, get, have_tool, progbits, put, read_vector, run,
    section_header, vectors,
};

/// The `objcopy` output formats of the class and byte-order vectors, by file name.
const CLASS_VECTORS: [(&str, &str); 3] = [
    ("elf32-big.o", "elf32-big"),
    ("elf32-little.o", "elf32-little"),
    ("elf64-big.o", "elf64-big"),
];

/// `(index, name, type, offset, size)` of every section, as `readelf -S -W` prints them.
fn readelf_sections(path: &Path) -> Vec<(usize, String, String, u64, u64)> {
    let listing = run(Command::new("readelf").args(["-S", "-W"]).arg(path));
    let hex = |text: &str| u64::from_str_radix(text, 16).unwrap();
    listing
        .lines()
        .filter_map(|line| {
            let (index, rest) = line.trim_start().strip_prefix('[')?.split_once(']')?;
            let index: usize = index.trim().parse().ok()?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // Section 0 has no name, so its fields start one column early.
            let (name, fields) = if index == 0 {
                ("", &fields[..])
            } else {
                (fields[0], &fields[1..])
            };
            Some((
                index,
                name.to_owned(),
                fields[0].to_owned(),
                hex(fields[2]),
                hex(fields[3]),
            ))
        })
        .collect()
}

fn assert_matches_readelf(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let ours: Vec<_> = elf::sections(&data)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            let kind = match s.kind {
                0 => "NULL",
                SHT_NOBITS => "NOBITS",
                _ => "other",
            };
            (index, s.name, kind.to_owned(), s.offset, s.size)
        })
        .collect();
    let theirs: Vec<_> = readelf_sections(path)
        .into_iter()
        .map(|(index, name, kind, offset, size)| {
            let kind = if kind == "NULL" || kind == "NOBITS" {
                kind
            } else {
                "other".to_owned()
            };
            (index, name, kind, offset, size)
        })
        .collect();
    assert!(
        theirs.len() > 3,
        "{}: readelf lists no sections",
        path.display()
    );
    assert_eq!(ours, theirs, "{}", path.display());
}

#[test]
fn sections_match_readelf_on_real_files() {
    if !have_tool(
        "readelf",
        "--version",
        "sections_match_readelf_on_real_files",
    ) {
        return;
    }
    let mut files: Vec<PathBuf> = ["go-hello", "rust-auditable"]
        .iter()
        .chain(CLASS_VECTORS.iter().map(|(name, _)| name))
        .map(|name| vectors().join(name))
        .collect();
    // This test binary (with debug sections, unless too big to read whole) and a few
    // system programs.
    let this = std::env::current_exe().unwrap();
    if std::fs::metadata(&this).unwrap().len() <= 128 << 20 {
        files.push(this);
    }
    files.extend(
        [
            "/bin/ls",
            "/usr/bin/readelf",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
        .iter()
        .map(PathBuf::from)
        .filter(|path| path.exists()),
    );
    for path in files {
        assert_matches_readelf(&path);
    }
}

#[test]
fn test_builder_output_matches_readelf() {
    if !have_tool(
        "readelf",
        "--version",
        "test_builder_output_matches_readelf",
    ) {
        return;
    }
    let file = elf64(&[
        progbits(".text", b"\x90\x90\xc3"),
        TestSection {
            name: ".bss",
            kind: SHT_NOBITS,
            flags: 3,
            bytes: &[0; 4096],
        },
        progbits(".dep-v0", b"payload"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("built");
    std::fs::write(&path, &file).unwrap();
    assert_matches_readelf(&path);
}

#[test]
fn every_class_and_byte_order_finds_its_sections() {
    let blob = &read_vector("go-hello")[..];
    let expected_blob = elf::section_data(blob, ".go.buildinfo").unwrap().unwrap();
    let rust = read_vector("rust-auditable");
    let deps = elf::section_data(&rust, ".dep-v0").unwrap().unwrap();
    for (name, _) in CLASS_VECTORS {
        let file = read_vector(name);
        let names: Vec<String> = elf::sections(&file)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            [
                "",
                ".go.buildinfo",
                ".dep-v0",
                ".symtab",
                ".strtab",
                ".shstrtab"
            ],
            "{name}"
        );
        assert_eq!(
            elf::section_data(&file, ".go.buildinfo").unwrap(),
            Some(expected_blob),
            "{name}"
        );
        assert_eq!(
            elf::section_data(&file, ".dep-v0").unwrap(),
            Some(deps),
            "{name}"
        );
        assert_eq!(elf::section_data(&file, ".missing").unwrap(), None);
    }
}

#[test]
fn a_nobits_section_has_no_bytes() {
    let go = read_vector("go-hello");
    let bss = elf::sections(&go)
        .unwrap()
        .into_iter()
        .find(|s| s.name == ".bss")
        .unwrap();
    assert!(bss.size > 0 && bss.kind == SHT_NOBITS);
    assert_eq!(elf::section_data(&go, ".bss").unwrap(), Some(&[][..]));
}

#[test]
fn a_file_without_a_section_table_has_no_sections() {
    let mut file = elf64(&[progbits(".dep-v0", b"x")]);
    put(&mut file, 40, 0, 8);
    assert_eq!(elf::sections(&file), Ok(Vec::new()));
    assert_eq!(elf::section_data(&file, ".dep-v0"), Ok(None));
}

#[test]
fn extended_numbering_reads_count_and_name_index_from_entry_zero() {
    let file = elf64(&[progbits(".a", b"1"), progbits(".b", b"2")]);
    let mut extended = file.clone();
    let zero = section_header(&extended, 0);
    put(&mut extended, 60, 0, 2); // e_shnum
    put(&mut extended, 62, 0xffff, 2); // e_shstrndx = SHN_XINDEX
    put(&mut extended, zero + 32, 4, 8); // entry 0's sh_size: the count
    put(&mut extended, zero + 40, 3, 4); // entry 0's sh_link: the name index
    let mut listed = elf::sections(&file).unwrap();
    // Entry 0 itself now carries the count and link; only its size is visible here.
    listed[0].size = 4;
    assert_eq!(elf::sections(&extended).unwrap(), listed);
    assert_eq!(elf::section_data(&extended, ".b").unwrap(), Some(&b"2"[..]));
}

#[test]
fn damaged_headers_are_named() {
    let file = elf64(&[progbits(".dep-v0", b"x")]);
    assert_eq!(elf::sections(b"MZ\x90\x00"), Err(ElfError::NotElf));
    assert_eq!(
        elf::sections(&file[..40]),
        Err(ElfError::TruncatedHeader {
            needed: 64,
            file_size: 40
        })
    );
    let mut bad_class = file.clone();
    bad_class[4] = 3;
    assert_eq!(elf::sections(&bad_class), Err(ElfError::UnknownClass(3)));
    let mut bad_order = file.clone();
    bad_order[5] = 0;
    assert_eq!(
        elf::sections(&bad_order),
        Err(ElfError::UnknownByteOrder(0))
    );
    let mut small_entries = file.clone();
    put(&mut small_entries, 58, 10, 2);
    assert_eq!(
        elf::sections(&small_entries),
        Err(ElfError::EntryTooSmall {
            entry_size: 10,
            needed: 64
        })
    );
}

#[test]
fn a_count_of_two_to_the_sixteen_is_refused() {
    let mut file = elf64(&[progbits(".dep-v0", b"x")]);
    let zero = section_header(&file, 0);
    put(&mut file, 60, 0, 2);
    put(&mut file, zero + 32, 1 << 16, 8);
    assert_eq!(
        elf::sections(&file),
        Err(ElfError::TooManySections { count: 1 << 16 })
    );
    // The largest count e_shnum can hold is read, if the table is really there.
    let mut many = file.clone();
    put(&mut many, 60, MAX_SECTIONS as u64, 2);
    assert!(matches!(
        elf::sections(&many),
        Err(ElfError::TableOutsideFile { count: 65_535, .. })
    ));
}

#[test]
fn offsets_beyond_the_file_are_refused() {
    let file = elf64(&[progbits(".text", b"code"), progbits(".dep-v0", b"data")]);
    let size = file.len();

    let mut table_beyond = file.clone();
    put(&mut table_beyond, 40, size as u64, 8);
    assert!(matches!(
        elf::sections(&table_beyond),
        Err(ElfError::TableOutsideFile { .. })
    ));

    let mut data_beyond = file.clone();
    let dep = section_header(&data_beyond, 2);
    put(&mut data_beyond, dep + 24, u64::MAX - 1, 8);
    // The listing still reads; the section's bytes do not.
    assert!(elf::sections(&data_beyond).is_ok());
    assert_eq!(
        elf::section_data(&data_beyond, ".dep-v0"),
        Err(ElfError::SectionOutsideFile {
            name: ".dep-v0".to_owned(),
            offset: u64::MAX - 1,
            size: 4,
            file_size: size,
        })
    );
    assert_eq!(
        elf::section_data(&data_beyond, ".text").unwrap(),
        Some(&b"code"[..])
    );

    let mut size_beyond = file.clone();
    put(&mut size_beyond, dep + 32, size as u64, 8);
    assert!(matches!(
        elf::section_data(&size_beyond, ".dep-v0"),
        Err(ElfError::SectionOutsideFile { .. })
    ));

    let mut names_beyond = file.clone();
    let names = section_header(&names_beyond, 3);
    put(&mut names_beyond, names + 24, size as u64, 8);
    assert!(matches!(
        elf::sections(&names_beyond),
        Err(ElfError::NamesOutsideFile { index: 3, .. })
    ));

    let mut name_index_beyond = file.clone();
    put(&mut name_index_beyond, 62, 9, 2);
    assert_eq!(
        elf::sections(&name_index_beyond),
        Err(ElfError::NameSectionIndex { index: 9, count: 4 })
    );

    let mut name_beyond = file.clone();
    put(&mut name_beyond, dep, 10_000, 4);
    assert_eq!(
        elf::sections(&name_beyond),
        Err(ElfError::BadName {
            section: 2,
            name_offset: 10_000
        })
    );
}

#[test]
fn a_compressed_section_is_refused() {
    let file = elf64(&[TestSection {
        name: ".dep-v0",
        kind: 1,
        flags: 0x800,
        bytes: b"compressed",
    }]);
    assert_eq!(
        elf::section_data(&file, ".dep-v0"),
        Err(ElfError::CompressedSection {
            name: ".dep-v0".to_owned()
        })
    );
}

#[test]
fn every_truncation_of_a_real_binary_errs_or_lists_every_section() {
    let go = read_vector("go-hello");
    let full = elf::sections(&go).unwrap();
    let table_end = get(&go, 40, 8) + 64 * full.len() as u64;
    let names = full.iter().find(|s| s.name == ".shstrtab").unwrap();
    let needed = table_end.max(names.offset + names.size);
    for cut in (0..go.len()).step_by(997) {
        let prefix = &go[..cut];
        match elf::sections(prefix) {
            Ok(sections) => {
                assert!(cut as u64 >= needed, "cut at {cut}");
                assert_eq!(sections, full, "cut at {cut}");
                // Only the sections still inside the prefix give their bytes.
                for section in sections.iter().filter(|s| s.kind != SHT_NOBITS) {
                    let inside = section.offset + section.size <= cut as u64;
                    assert_eq!(section.bytes(prefix).is_ok(), inside, "cut at {cut}");
                }
            }
            Err(error) => assert!((cut as u64) < needed, "cut at {cut}: {error}"),
        }
    }
}

#[test]
#[ignore = "writes tests/vectors/scan/binaries; run by hand to rebuild the vectors"]
fn regenerate_class_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("go.buildinfo");
    let go = read_vector("go-hello");
    std::fs::write(
        &blob,
        elf::section_data(&go, ".go.buildinfo").unwrap().unwrap(),
    )
    .unwrap();
    let deps = dir.path().join("dep-v0");
    let rust = read_vector("rust-auditable");
    std::fs::write(&deps, elf::section_data(&rust, ".dep-v0").unwrap().unwrap()).unwrap();
    for (name, format) in CLASS_VECTORS {
        run(Command::new("objcopy")
            .args(["-I", "binary", "-O", format])
            .args(["--rename-section", ".data=.go.buildinfo", "--add-section"])
            .arg(format!(".dep-v0={}", deps.display()))
            .arg(&blob)
            .arg(vectors().join(name)));
    }
}
