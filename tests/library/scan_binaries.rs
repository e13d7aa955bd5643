//! The binary analyzers (ELF sections, Go build info, `cargo auditable`) on real
//! binaries: Go programs built here by the Go toolchain and compared with
//! `go version -m`, a Rust program built by `rustc` with a `.dep-v0` section, system
//! binaries compared with `readelf`, the checked-in builds in
//! `tests/vectors/scan/binaries` (so the tests also run without the toolchains), and
//! hostile variants of each. A test whose tool is missing says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "scan_binaries/cargo_auditable.rs"]
mod cargo_auditable;
#[path = "scan_binaries/elf.rs"]
mod elf;
#[path = "scan_binaries/go.rs"]
mod go;
#[path = "scan_binaries/go_blobs.rs"]
mod go_blobs;

/// The checked-in binaries and their listings.
fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/scan/binaries")
}

fn read_vector(name: &str) -> Vec<u8> {
    let path = vectors().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `program` runs (with `argument`, e.g. `--version`); if not, says which test
/// it skips.
fn have_tool(program: &str, argument: &str, test: &str) -> bool {
    let runs = Command::new(program)
        .arg(argument)
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        eprintln!("{test}: skipped, `{program}` is not installed");
    }
    runs
}

/// Runs `command`, failing the test with its output if it fails; returns its stdout.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the tool prints UTF-8")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

const SHT_PROGBITS: u32 = 1;
const SHT_NOBITS: u32 = 8;

/// One section for [`elf64`].
struct TestSection<'a> {
    name: &'a str,
    kind: u32,
    flags: u64,
    bytes: &'a [u8],
}

/// A `SHT_PROGBITS` section.
fn progbits<'a>(name: &'a str, bytes: &'a [u8]) -> TestSection<'a> {
    TestSection {
        name,
        kind: SHT_PROGBITS,
        flags: 0,
        bytes,
    }
}

/// A little-endian 64-bit executable with the null section, `sections`, then the
/// section names (`.shstrtab`), laid out as linkers do: file header, the sections'
/// bytes (16-byte aligned; none for `SHT_NOBITS`), then the section header table.
fn elf64(sections: &[TestSection]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_offsets = Vec::new();
    for name in sections.iter().map(|s| s.name).chain([".shstrtab"]) {
        name_offsets.push(names.len() as u64);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let mut file = vec![0u8; 64];
    // (type, flags, offset, size) of every entry after the null one.
    let mut entries = Vec::new();
    for section in sections {
        file.resize(file.len().next_multiple_of(16), 0);
        entries.push((
            section.kind,
            section.flags,
            file.len() as u64,
            section.bytes.len() as u64,
        ));
        if section.kind != SHT_NOBITS {
            file.extend_from_slice(section.bytes);
        }
    }
    entries.push((3, 0, file.len() as u64, names.len() as u64)); // SHT_STRTAB
    file.extend_from_slice(&names);
    file.resize(file.len().next_multiple_of(8), 0);
    let table = file.len();
    file.resize(table + 64 * (entries.len() + 1), 0);
    for (index, (kind, flags, offset, size)) in entries.iter().enumerate() {
        let at = table + 64 * (index + 1);
        put(&mut file, at, name_offsets[index], 4);
        put(&mut file, at + 4, u64::from(*kind), 4);
        put(&mut file, at + 8, *flags, 8);
        put(&mut file, at + 24, *offset, 8);
        put(&mut file, at + 32, *size, 8);
    }
    file[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    put(&mut file, 16, 2, 2); // ET_EXEC
    put(&mut file, 18, 62, 2); // EM_X86_64
    put(&mut file, 20, 1, 4); // EV_CURRENT
    put(&mut file, 40, table as u64, 8); // e_shoff
    put(&mut file, 52, 64, 2); // e_ehsize
    put(&mut file, 58, 64, 2); // e_shentsize
    put(&mut file, 60, entries.len() as u64 + 1, 2); // e_shnum
    put(&mut file, 62, entries.len() as u64, 2); // e_shstrndx: the names, last
    file
}

/// Writes `value` little-endian into `width` bytes at `at`.
fn put(file: &mut [u8], at: usize, value: u64, width: usize) {
    file[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// Reads a little-endian value of `width` bytes at `at`.
fn get(file: &[u8], at: usize, width: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..width].copy_from_slice(&file[at..at + width]);
    u64::from_le_bytes(bytes)
}

/// Where section header `index` starts in a little-endian 64-bit file.
fn section_header(file: &[u8], index: usize) -> usize {
    get(file, 40, 8) as usize + 64 * index
}
