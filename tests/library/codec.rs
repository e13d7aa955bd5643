//! The at-rest format: every range of random blobs round-trips; truncation, reordering,
//! swapping frames within or between objects, any bit flip and a wrong key are corrupt
//! data, never content.

use proptest::prelude::*;
use wharf::ErrorKind;
use wharf::codec::{Compression, DataKey, FrameEncoder, HEADER_LEN, Layout, decode};

const FRAME: usize = 1 << 16;

fn encode(data: &[u8], compression: Compression, key: Option<&DataKey>, salt: u8) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(FRAME, compression, key, [salt; 16]).unwrap();
    let mut out = encoder.header().to_vec();
    // Uneven pieces, as a network delivers them.
    for piece in data.chunks(7919) {
        out.extend(encoder.push(piece));
    }
    out.extend(encoder.finish());
    out
}

fn layout(object: &[u8], key: Option<&DataKey>) -> wharf::Result<Layout> {
    let footer_len = Layout::footer_len(object)?;
    Layout::parse(
        object,
        &object[object.len() - footer_len..],
        object.len() as u64,
        key,
    )
}

/// Reads a logical range the way a ranged read does: only the frames it needs.
fn read_range(object: &[u8], key: Option<&DataKey>, range: std::ops::Range<u64>) -> Vec<u8> {
    let layout = layout(object, key).unwrap();
    let (frames, stored) = layout.locate(range.clone());
    let mut out = Vec::new();
    for index in frames.clone() {
        let at = layout.frame_range(index);
        assert!(at.start >= stored.start && at.end <= stored.end);
        out.extend(
            layout
                .open(index, &object[at.start as usize..at.end as usize])
                .unwrap(),
        );
    }
    let skip = (range.start - frames.start as u64 * FRAME as u64) as usize;
    out[skip..skip + (range.end - range.start) as usize].to_vec()
}

fn compressible(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"the quick brown fox jumps over the lazy dog "[i % 44])
        .collect()
}

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn key(byte: u8) -> DataKey {
    DataKey::from_bytes([byte; 32])
}

fn assert_corrupt(result: wharf::Result<Vec<u8>>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: decoded"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::CorruptData, "{what}: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_range_round_trips(
        len in 0usize..300_000,
        seed in any::<u64>(),
        compressible_data in any::<bool>(),
        encrypted in any::<bool>(),
        compressed in any::<bool>(),
        ranges in proptest::collection::vec((any::<u64>(), any::<u64>()), 8),
    ) {
        let data = if compressible_data { compressible(len) } else { random(len, seed) };
        let key = key(3);
        let key = encrypted.then_some(&key);
        let compression = if compressed { Compression::default() } else { Compression::Off };
        let object = encode(&data, compression, key, 9);
        prop_assert_eq!(&decode(&object, key).unwrap(), &data);
        if len > 0 {
            for (a, b) in ranges {
                let (a, b) = (a % len as u64, b % len as u64);
                let range = a.min(b)..a.max(b) + 1;
                prop_assert_eq!(
                    read_range(&object, key, range.clone()),
                    data[range.start as usize..range.end as usize].to_vec()
                );
            }
        }
    }
}

#[test]
fn incompressible_and_precompressed_content_is_stored_raw() {
    let key = key(1);
    let noise = random(5 * FRAME, 7);
    let object = encode(&noise, Compression::default(), Some(&key), 1);
    let overhead = object.len() - noise.len();
    assert!(
        overhead < 200,
        "raw frames cost only their framing: {overhead}"
    );
    let mut gzip_like = vec![0x1f, 0x8b];
    gzip_like.extend(compressible(3 * FRAME));
    let object = encode(&gzip_like, Compression::default(), Some(&key), 1);
    assert!(
        object.len() > gzip_like.len(),
        "a gzip stream is not compressed again"
    );
    let text = compressible(3 * FRAME);
    let object = encode(&text, Compression::default(), Some(&key), 1);
    assert!(object.len() < text.len() / 10);
}

#[test]
fn a_range_needs_at_most_the_frames_it_touches() {
    let data = random(10 * FRAME, 1);
    let key = key(2);
    let object = encode(&data, Compression::Off, Some(&key), 1);
    let layout = layout(&object, Some(&key)).unwrap();
    for start in [
        0,
        1,
        FRAME as u64 - 512,
        5 * FRAME as u64 + 77,
        10 * FRAME as u64 - 1024,
    ] {
        let (frames, _) = layout.locate(start..start + 1024);
        assert!(frames.len() <= 2, "{start}: {frames:?}");
    }
}

#[test]
fn tampering_is_detected_never_returned() {
    let key = key(5);
    let data = compressible(3 * FRAME + 100);
    for encrypted in [true, false] {
        let key = encrypted.then_some(&key);
        let object = encode(&data, Compression::default(), key, 4);
        let frames = layout(&object, key).unwrap();
        let f = |i: usize| {
            let r = frames.frame_range(i);
            r.start as usize..r.end as usize
        };
        // Every single bit flip, sampled across the whole object.
        for at in (0..object.len()).step_by(object.len() / 97 + 1) {
            for bit in [0, 7] {
                let mut bad = object.clone();
                bad[at] ^= 1 << bit;
                let result = decode(&bad, key);
                assert!(
                    result.is_err(),
                    "encrypted {encrypted}: flip at {at} bit {bit} decoded"
                );
            }
        }
        // Truncation: drop the last frame, keep the rest consistent-looking.
        let mut truncated = object[..f(3).start].to_vec();
        truncated.extend_from_slice(&object[f(3).end..]);
        assert_corrupt(decode(&truncated, key), "truncated");
        assert_corrupt(decode(&object[..object.len() - 1], key), "cut short");
        // Reordering frames 0 and 1 (same sizes when compressed alike).
        let mut swapped = object[..f(0).start].to_vec();
        swapped.extend_from_slice(&object[f(1).clone()]);
        swapped.extend_from_slice(&object[f(0).clone()]);
        swapped.extend_from_slice(&object[f(1).end..]);
        assert_corrupt(decode(&swapped, key), "reordered");
    }
}

#[test]
fn frames_cannot_move_between_objects() {
    let key = key(6);
    let a = compressible(2 * FRAME);
    let mut b = compressible(2 * FRAME);
    b[10] = b'X';
    // Same key, different objects (salts).
    let object_a = encode(&a, Compression::Off, Some(&key), 1);
    let object_b = encode(&b, Compression::Off, Some(&key), 2);
    let layout_a = layout(&object_a, Some(&key)).unwrap();
    let r = layout_a.frame_range(0);
    let mut mixed = object_b.clone();
    mixed[r.start as usize..r.end as usize]
        .copy_from_slice(&object_a[r.start as usize..r.end as usize]);
    assert_corrupt(decode(&mixed, Some(&key)), "frame from another object");
}

#[test]
fn a_wrong_or_missing_key_reads_nothing() {
    let data = random(FRAME + 10, 3);
    let object = encode(&data, Compression::default(), Some(&key(1)), 1);
    assert_corrupt(decode(&object, Some(&key(2))), "wrong key");
    let err = decode(&object, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    assert_eq!(format!("{:?}", key(1)), "DataKey(redacted)");
}

#[test]
fn headers_are_checked() {
    let object = encode(b"x", Compression::Off, None, 1);
    let mut future = object.clone();
    future[4] = 9;
    assert_eq!(
        decode(&future, None).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_corrupt(decode(&object[..HEADER_LEN - 1], None), "short");
    assert_corrupt(decode(b"", None), "empty");
    assert!(FrameEncoder::new(1000, Compression::Off, None, [0; 16]).is_err());
}

/// A named object (unencrypted) carries its blob's name after the footer's checksum;
/// an unnamed one must have zeros there, and no object is both named and encrypted.
#[test]
fn names_are_read_and_checked() {
    let data = random(2 * FRAME + 5, 9);
    let name = *b"twelve bytes";
    let mut encoder = FrameEncoder::new_named(FRAME, Compression::default(), [3; 16]).unwrap();
    let mut named = encoder.header().to_vec();
    named.extend(encoder.push(&data));
    named.extend(encoder.finish_named(name));
    assert_eq!(decode(&named, None).unwrap(), data);
    let parsed = layout(&named, None).unwrap();
    assert!(parsed.header().named() && parsed.names(&name));
    assert!(!parsed.names(b"twelve bytez"), "another name");
    assert!(!parsed.names(b"twelve"), "a prefix too short to name");
    // The name is outside the checksum: a damaged one names no blob, and reads go on
    // (a full read then hashes).
    let name_at = named.len() - 8 - 12;
    let mut damaged = named.clone();
    damaged[name_at] ^= 1;
    assert_eq!(decode(&damaged, None).unwrap(), data);
    assert!(!layout(&damaged, None).unwrap().names(&name));

    let unnamed = encode(&data, Compression::default(), None, 3);
    let parsed = layout(&unnamed, None).unwrap();
    assert_eq!(parsed.header().sealing, wharf::codec::Sealing::Checksums);
    assert!(!parsed.names(&[0; 12]));
    let mut claims_a_name = unnamed.clone();
    claims_a_name[name_at] = 1;
    assert_corrupt(
        decode(&claims_a_name, None),
        "an unnamed object with a name",
    );
    // An encoder not made named names nothing, whatever it is given.
    let mut encoder = FrameEncoder::new(FRAME, Compression::Off, None, [3; 16]).unwrap();
    let mut object = encoder.header().to_vec();
    object.extend(encoder.push(b"abc"));
    object.extend(encoder.finish_named(name));
    assert!(!layout(&object, None).unwrap().names(&name));

    let mut both = encode(b"x", Compression::Off, Some(&key(1)), 1);
    both[5] |= 2;
    assert_corrupt(decode(&both, Some(&key(1))), "named and encrypted");
    let mut unknown = unnamed.clone();
    unknown[5] |= 4;
    assert_corrupt(decode(&unknown, None), "an unknown flag");
}

#[test]
fn an_empty_blob_is_one_empty_frame() {
    for key in [None, Some(key(1))] {
        let object = encode(b"", Compression::default(), key.as_ref(), 1);
        assert_eq!(decode(&object, key.as_ref()).unwrap(), b"");
        assert_eq!(layout(&object, key.as_ref()).unwrap().frame_count(), 1);
    }
}

#[test]
fn parallel_sealing_writes_the_same_object() {
    let key = key(4);
    let data = compressible(11 * FRAME + 123);
    let encode_with = |workers: usize| {
        let mut encoder = FrameEncoder::new(FRAME, Compression::default(), Some(&key), [3; 16])
            .unwrap()
            .with_workers(workers);
        let mut out = encoder.header().to_vec();
        for piece in data.chunks(50_000) {
            out.extend(encoder.push(piece));
        }
        out.extend(encoder.finish());
        out
    };
    let one = encode_with(1);
    assert_eq!(encode_with(3), one);
    assert_eq!(encode_with(8), one);
    assert_eq!(decode(&one, Some(&key)).unwrap(), data);
}
