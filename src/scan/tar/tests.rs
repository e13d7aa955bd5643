//! The header fields and names of `tar`, checked piece by piece.

use super::*;

#[test]
fn octal_and_base256_numbers() {
    assert_eq!(number(b"0000644\0"), Some(0o644));
    assert_eq!(number(b"  17 \0"), Some(0o17));
    assert_eq!(number(b"\0\0\0"), Some(0));
    assert_eq!(number(b"0009"), None);
    assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 1, 0]), Some(256));
    assert_eq!(number(&[0xc0, 0, 0, 0]), None);
    assert_eq!(
        number(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None
    );
}

#[test]
fn names_are_normalised_and_may_not_escape() {
    assert_eq!(normalise("./etc//os-release").unwrap(), "etc/os-release");
    assert_eq!(normalise("/usr/lib/../bin/x").unwrap(), "usr/bin/x");
    assert_eq!(normalise("./").unwrap(), "");
    assert!(matches!(
        normalise("../etc/passwd"),
        Err(TarError::Escapes { .. })
    ));
    assert!(matches!(
        normalise("a/../../b"),
        Err(TarError::Escapes { .. })
    ));
}

#[test]
fn pax_records_parse_and_stop_at_garbage() {
    let body = b"20 path=a/very/long\n11 size=42\nxx garbage";
    let records = pax_records(body);
    assert_eq!(
        records,
        vec![
            (&b"path"[..], &b"a/very/long"[..]),
            (&b"size"[..], &b"42"[..])
        ]
    );
}
