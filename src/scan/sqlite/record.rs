//! Column values: SQLite's variable-length integers and the record format a row's
//! payload is written in.
//!
//! # Varints
//!
//! One to nine bytes, the most significant bits first. Each of the first eight bytes
//! carries seven bits and, in its top bit, whether another byte follows; a ninth byte,
//! when reached, carries all eight of its bits. Nine bytes thus hold any 64-bit value;
//! rowids are those 64 bits read as two's complement.
//!
//! # Records
//!
//! A record starts with a header: a varint giving the header's own length in bytes
//! (itself included), then one varint *serial type* per column. The column values follow
//! the header, back to back, in column order:
//!
//! | serial type | value | bytes in the body |
//! |---|---|---|
//! | 0 | NULL | 0 |
//! | 1, 2, 3, 4, 5, 6 | big-endian two's-complement integer | 1, 2, 3, 4, 6, 8 |
//! | 7 | big-endian IEEE 754 double | 8 |
//! | 8, 9 | the integer 0, the integer 1 | 0 |
//! | 10, 11 | reserved: never in a database file | — |
//! | even N ≥ 12 | blob | (N − 12) / 2 |
//! | odd N ≥ 13 | text in the database's encoding, unterminated | (N − 13) / 2 |
//!
//! A record may hold fewer values than its table has columns (columns added later by
//! `ALTER TABLE` take their default then); the values are returned as stored.

/// The most columns one record may hold: SQLite's own upper bound for a table.
pub const MAX_COLUMNS: usize = 32767;

/// One column's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text, decoded from the database's encoding (invalid sequences become U+FFFD).
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

impl Value {
    /// The bytes of a blob.
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Value::Blob(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The text of a text value.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The integer of an integer value.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(n) => Some(*n),
            _ => None,
        }
    }
}

/// How the database stores text (header offset 56).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

impl TextEncoding {
    /// The encoding for the header's code, if it is one of the three.
    pub(super) fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(TextEncoding::Utf8),
            2 => Some(TextEncoding::Utf16Le),
            3 => Some(TextEncoding::Utf16Be),
            _ => None,
        }
    }

    fn decode(self, bytes: &[u8]) -> String {
        let units = |to_u16: fn([u8; 2]) -> u16| {
            let units = bytes.chunks_exact(2).map(|pair| to_u16([pair[0], pair[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        };
        match self {
            TextEncoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            TextEncoding::Utf16Le => units(u16::from_le_bytes),
            TextEncoding::Utf16Be => units(u16::from_be_bytes),
        }
    }
}

/// Reads a varint from the start of `bytes`: its value and length, or `None` when the
/// bytes end inside it.
pub(super) fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().take(9).enumerate() {
        if index == 8 {
            return Some(((value << 8) | u64::from(byte), 9));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// Where in a record's payload it is malformed, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordFault {
    pub(super) offset: usize,
    pub(super) problem: &'static str,
}

fn fault<T>(offset: usize, problem: &'static str) -> Result<T, RecordFault> {
    Err(RecordFault { offset, problem })
}

/// The values of the record `payload`.
pub(super) fn decode_record(
    payload: &[u8],
    encoding: TextEncoding,
) -> Result<Vec<Value>, RecordFault> {
    let Some((header_len, mut at)) = read_varint(payload) else {
        return fault(0, "the header length is truncated");
    };
    let header_len = match usize::try_from(header_len) {
        Ok(len) if len >= at && len <= payload.len() => len,
        _ => return fault(0, "the header length is outside the record"),
    };
    let mut serial_types = Vec::new();
    while at < header_len {
        if serial_types.len() == MAX_COLUMNS {
            return fault(at, "more columns than SQLite allows");
        }
        let Some((serial_type, len)) = payload.get(at..header_len).and_then(read_varint) else {
            return fault(at, "a serial type runs past the header");
        };
        serial_types.push((at, serial_type));
        at += len;
    }
    let mut body = payload.get(header_len..).unwrap_or_default();
    let mut body_at = header_len;
    let mut values = Vec::with_capacity(serial_types.len());
    for (type_at, serial_type) in serial_types {
        let len = match serial_type {
            0 | 8 | 9 => 0,
            1..=4 => serial_type as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return fault(type_at, "a reserved serial type (10 or 11)"),
            // Lengths beyond the payload fail the bounds check just below.
            n => usize::try_from((n - 12) / 2).unwrap_or(usize::MAX),
        };
        let Some((bytes, rest)) = body.split_at_checked(len) else {
            return fault(body_at, "a value runs past the end of the record");
        };
        values.push(match serial_type {
            0 => Value::Null,
            8 => Value::Integer(0),
            9 => Value::Integer(1),
            1..=6 => Value::Integer(signed_big_endian(bytes)),
            7 => Value::Real(f64::from_bits(signed_big_endian(bytes) as u64)),
            n if n % 2 == 0 => Value::Blob(bytes.to_vec()),
            _ => Value::Text(encoding.decode(bytes)),
        });
        body = rest;
        body_at += len;
    }
    Ok(values)
}

/// A big-endian two's-complement integer of one to eight bytes.
fn signed_big_endian(bytes: &[u8]) -> i64 {
    let negative = bytes.first().is_some_and(|&b| b & 0x80 != 0);
    let start = if negative { -1 } else { 0 };
    bytes
        .iter()
        .fold(start, |value: i64, &b| (value << 8) | i64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_one_to_nine_bytes() {
        assert_eq!(read_varint(&[0x00]), Some((0, 1)));
        assert_eq!(read_varint(&[0x7f]), Some((127, 1)));
        assert_eq!(read_varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(read_varint(&[0x82, 0x80, 0x01]), Some((0x8001, 3)));
        // Nine bytes: 8 × 7 bits, then a whole byte.
        assert_eq!(read_varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(read_varint(&[0x80, 0x80]), None);
        assert_eq!(read_varint(&[]), None);
    }

    #[test]
    fn a_record_of_every_serial_type() {
        // header: len 9; NULL, int8 -2, int16 300, 0, 1, float, blob(2), text(3)
        let mut record = vec![9, 0, 1, 2, 8, 9, 7, 16, 19];
        record.extend_from_slice(&[0xfe, 0x01, 0x2c]);
        record.extend_from_slice(&1.5f64.to_be_bytes());
        record.extend_from_slice(&[0xaa, 0xbb, b'a', b'b', b'c']);
        assert_eq!(
            decode_record(&record, TextEncoding::Utf8),
            Ok(vec![
                Value::Null,
                Value::Integer(-2),
                Value::Integer(300),
                Value::Integer(0),
                Value::Integer(1),
                Value::Real(1.5),
                Value::Blob(vec![0xaa, 0xbb]),
                Value::Text("abc".into()),
            ])
        );
    }

    #[test]
    fn six_and_eight_byte_integers_keep_their_sign() {
        let mut record = vec![3, 5, 6];
        record.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        record.extend_from_slice(&i64::MIN.to_be_bytes());
        assert_eq!(
            decode_record(&record, TextEncoding::Utf8),
            Ok(vec![Value::Integer(-2), Value::Integer(i64::MIN)])
        );
    }

    #[test]
    fn utf16_text_is_decoded() {
        let record = [2, 21, b'h', 0, 0xe9, 0];
        assert_eq!(
            decode_record(&record, TextEncoding::Utf16Le),
            Ok(vec![Value::Text("hé".into())])
        );
        let record = [2, 21, 0, b'h', 0, 0xe9];
        assert_eq!(
            decode_record(&record, TextEncoding::Utf16Be),
            Ok(vec![Value::Text("hé".into())])
        );
    }

    #[test]
    fn malformed_records_name_the_offset() {
        let problem = |record: &[u8]| decode_record(record, TextEncoding::Utf8).map(|_| ());
        assert_eq!(
            problem(&[5, 1]),
            fault(0, "the header length is outside the record")
        );
        assert_eq!(
            problem(&[2, 10]),
            fault(1, "a reserved serial type (10 or 11)")
        );
        // A 4-byte integer with 2 bytes of body.
        assert_eq!(
            problem(&[3, 0, 4, 1, 2]),
            fault(3, "a value runs past the end of the record")
        );
        // A serial type whose varint is cut by the header's end.
        assert_eq!(
            problem(&[2, 0x81, 0]),
            fault(1, "a serial type runs past the header")
        );
        // A blob claiming 2^62 bytes.
        let huge = [10, 0xc0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            problem(&huge),
            fault(10, "a value runs past the end of the record")
        );
    }
}
