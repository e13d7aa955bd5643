//! Golden vectors pin the at-rest format: objects written with a fixed test key and salt
//! must come out byte for byte as stored in `tests/vectors/codec/`, and those stored
//! objects must decode. `WHARF_WRITE_VECTORS=1` rewrites them after a deliberate format
//! change (which also needs a new format version).

use std::path::PathBuf;

use wharf::codec::{Compression, DataKey, FrameEncoder, decode};

struct Case {
    name: &'static str,
    content: fn() -> Vec<u8>,
    encrypted: bool,
    compression: Compression,
    /// Unencrypted and named for its content's sha256.
    named: bool,
}

fn text() -> Vec<u8> {
    b"wharf keeps what a registry keeps. "
        .iter()
        .copied()
        .cycle()
        .take(150 * 1024)
        .collect()
}

fn pattern() -> Vec<u8> {
    (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

const CASES: &[Case] = &[
    Case {
        name: "empty-encrypted",
        content: Vec::new,
        encrypted: true,
        compression: Compression::Zstd { level: 1 },
        named: false,
    },
    Case {
        name: "hello-plain",
        content: || b"hello, wharf".to_vec(),
        encrypted: false,
        compression: Compression::Off,
        named: false,
    },
    Case {
        name: "hello-encrypted",
        content: || b"hello, wharf".to_vec(),
        encrypted: true,
        compression: Compression::Off,
        named: false,
    },
    Case {
        name: "text-3-frames-compressed-encrypted",
        content: text,
        encrypted: true,
        compression: Compression::Zstd { level: 1 },
        named: false,
    },
    Case {
        name: "pattern-2-frames-compressed-plain",
        content: pattern,
        encrypted: false,
        compression: Compression::Zstd { level: 3 },
        named: false,
    },
    Case {
        name: "pattern-2-frames-named",
        content: pattern,
        encrypted: false,
        compression: Compression::Off,
        named: true,
    },
];

fn test_key() -> DataKey {
    DataKey::from_bytes(*b"wharf golden vector test key 32B")
}

fn encode(case: &Case) -> Vec<u8> {
    let key = test_key();
    let salt = *b"golden-vec-salt!";
    let content = (case.content)();
    let mut encoder = if case.named {
        FrameEncoder::new_named(1 << 16, case.compression, salt)
    } else {
        FrameEncoder::new(
            1 << 16,
            case.compression,
            case.encrypted.then_some(&key),
            salt,
        )
    }
    .unwrap();
    let mut out = encoder.header().to_vec();
    out.extend(encoder.push(&content));
    if case.named {
        let digest = wharf::Digest::of(wharf::Algorithm::Sha256, &content);
        out.extend(encoder.finish_named(name_of(&digest)));
    } else {
        out.extend(encoder.finish());
    }
    out
}

/// The first 12 bytes of a digest's hash: what a named object holds.
fn name_of(digest: &wharf::Digest) -> [u8; 12] {
    unhex(&digest.hex()[..24]).try_into().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + bytes.len() / 32);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 32 == 0 {
            out.push('\n');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out.push('\n');
    out
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn golden_vectors_pin_the_format() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/codec");
    let rewrite = std::env::var_os("WHARF_WRITE_VECTORS").is_some();
    for case in CASES {
        let path = dir.join(format!("{}.hex", case.name));
        let written = encode(case);
        if rewrite {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, hex(&written)).unwrap();
            continue;
        }
        let stored = unhex(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (WHARF_WRITE_VECTORS=1 writes it)", path.display())
        }));
        assert_eq!(
            written, stored,
            "{}: the encoder's output changed",
            case.name
        );
        let key = test_key();
        assert_eq!(
            decode(&stored, case.encrypted.then_some(&key)).unwrap(),
            (case.content)(),
            "{}: the stored vector no longer decodes",
            case.name
        );
        if case.named {
            let footer = wharf::codec::Layout::footer_len(&stored).unwrap();
            let layout = wharf::codec::Layout::parse(
                &stored,
                &stored[stored.len() - footer..],
                stored.len() as u64,
                None,
            )
            .unwrap();
            let digest = wharf::Digest::of(wharf::Algorithm::Sha256, &(case.content)());
            assert!(
                layout.names(&name_of(&digest)),
                "{}: names its blob",
                case.name
            );
        }
    }
}

/// Every frame of every stored vector opens in place exactly when it is unencrypted and
/// stored uncompressed, to the same bytes `open` gives; a flipped bit in such a frame
/// fails the check in place as it fails `open`.
#[test]
fn frames_open_in_place_as_they_open() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/codec");
    let key = test_key();
    let mut in_place = 0;
    for case in CASES {
        let path = dir.join(format!("{}.hex", case.name));
        let stored = unhex(&std::fs::read_to_string(&path).unwrap());
        let footer = wharf::codec::Layout::footer_len(&stored).unwrap();
        let layout = wharf::codec::Layout::parse(
            &stored,
            &stored[stored.len() - footer..],
            stored.len() as u64,
            case.encrypted.then_some(&key),
        )
        .unwrap();
        for index in 0..layout.frame_count() {
            let range = layout.frame_range(index);
            let frame =
                bytes::Bytes::copy_from_slice(&stored[range.start as usize..range.end as usize]);
            let opened = layout.open(index, &frame).unwrap();
            let Some(slice) = layout.open_in_place(index, &frame).unwrap() else {
                let raw = !case.encrypted && case.compression == Compression::Off;
                assert!(
                    !raw || opened.is_empty(),
                    "{} frame {index}: raw, not in place",
                    case.name
                );
                continue;
            };
            in_place += 1;
            assert!(
                !case.encrypted,
                "{}: an encrypted frame in place",
                case.name
            );
            assert_eq!(slice, opened, "{} frame {index}", case.name);
            let mut damaged = frame.to_vec();
            let at = damaged.len() / 2;
            damaged[at] ^= 0x10;
            let damaged = bytes::Bytes::from(damaged);
            assert_eq!(
                layout
                    .open_in_place(index, &damaged)
                    .err()
                    .map(|e| e.kind()),
                Some(wharf::ErrorKind::CorruptData),
                "{} frame {index}: damage in place",
                case.name
            );
            assert_eq!(
                layout.open(index, &damaged).err().map(|e| e.kind()),
                Some(wharf::ErrorKind::CorruptData)
            );
        }
    }
    assert!(
        in_place >= 3,
        "the vectors hold raw frames under checksums: {in_place}"
    );
}
