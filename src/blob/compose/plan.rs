//! How staged objects become the parts of one multipart upload, within S3's limits:
//! every part but the last at least `min` bytes, a copied part at most `max`.
//!
//! A staged object of at least `min` bytes is copied server-side, split into even
//! ranges of at most `max`. Smaller ones cannot be parts of their own (except last), so
//! they are gathered, with the head of the next object if need be, into a part that is
//! fetched and sent again. A gathered part stays under `2 * min` bytes.

use std::ops::Range;

/// One part of the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// A server-side copy of a byte range of one staged object.
    Copy { source: usize, range: Range<u64> },
    /// Byte ranges of staged objects, fetched and sent as one part.
    Send(Vec<(usize, Range<u64>)>),
}

impl Piece {
    pub(super) fn len(&self) -> u64 {
        match self {
            Piece::Copy { range, .. } => range.end - range.start,
            Piece::Send(ranges) => ranges.iter().map(|(_, r)| r.end - r.start).sum(),
        }
    }
}

/// The parts for objects of `lens` bytes, in order. `max` must be at least `2 * min`.
pub(super) fn plan(lens: &[u64], min: u64, max: u64) -> Vec<Piece> {
    assert!(
        min > 0 && max >= 2 * min,
        "part limits {min}..{max} are too close"
    );
    let mut pieces = Vec::new();
    let mut gathered: Vec<(usize, Range<u64>)> = Vec::new();
    let mut gathered_len = 0;
    for (source, &len) in lens.iter().enumerate() {
        let mut at = 0;
        if gathered_len > 0 {
            // Fill the gathered part from this object's head; take it all when what
            // would be left could not be a part of its own.
            let need = min - gathered_len;
            let take = if len < need + min { len } else { need };
            if take > 0 {
                gathered.push((source, 0..take));
            }
            gathered_len += take;
            at = take;
            if gathered_len >= min {
                pieces.push(Piece::Send(std::mem::take(&mut gathered)));
                gathered_len = 0;
            }
        }
        let rest = len - at;
        if rest == 0 {
            continue;
        }
        if rest < min {
            gathered.push((source, at..len));
            gathered_len += rest;
            continue;
        }
        // Even ranges: with `max >= 2 * min`, each is at least `min`.
        let count = rest.div_ceil(max);
        let (base, extra) = (rest / count, rest % count);
        for i in 0..count {
            let size = base + u64::from(i < extra);
            pieces.push(Piece::Copy {
                source,
                range: at..at + size,
            });
            at += size;
        }
    }
    if !gathered.is_empty() {
        pieces.push(Piece::Send(gathered));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the plan's promises for `lens`: the pieces cover every byte once, in
    /// order; every piece but the last is within the limits; gathered ones stay small.
    fn check(lens: &[u64], min: u64, max: u64) {
        let pieces = plan(lens, min, max);
        let mut expected = lens
            .iter()
            .enumerate()
            .filter(|(_, len)| **len > 0)
            .map(|(i, len)| (i, 0..*len));
        let mut covered: Vec<(usize, Range<u64>)> = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            assert!(
                last || piece.len() >= min,
                "{lens:?}: {piece:?} is too small"
            );
            match piece {
                Piece::Copy { source, range } => {
                    assert!(piece.len() <= max, "{lens:?}: {piece:?} is too large");
                    covered.push((*source, range.clone()));
                }
                Piece::Send(ranges) => {
                    assert!(piece.len() < 2 * min, "{lens:?}: {piece:?} holds too much");
                    covered.extend(ranges.iter().cloned());
                }
            }
        }
        // Merge adjacent ranges of one source, then compare with the whole objects.
        let mut merged: Vec<(usize, Range<u64>)> = Vec::new();
        for (source, range) in covered {
            assert!(range.start < range.end, "{lens:?}: empty range");
            match merged.last_mut() {
                Some((s, r)) if *s == source && r.end == range.start => r.end = range.end,
                _ => merged.push((source, range)),
            }
        }
        assert!(
            merged.into_iter().eq(expected.by_ref()),
            "{lens:?}: {pieces:?} does not cover the objects in order"
        );
    }

    #[test]
    fn every_mix_of_sizes_keeps_the_limits() {
        let sizes = [0, 1, 4, 5, 6, 9, 10, 11, 19, 20, 21, 47];
        for &a in &sizes {
            check(&[a], 5, 10);
            for &b in &sizes {
                check(&[a, b], 5, 10);
                for &c in &sizes {
                    check(&[a, b, c], 5, 10);
                    check(&[a, 1, b, 2, c], 5, 12);
                }
            }
        }
    }

    #[test]
    fn large_objects_are_copied_and_small_ones_gathered() {
        let gib = 1u64 << 30;
        let (min, max) = (5 << 20, 5 * gib);
        assert_eq!(
            plan(&[6 * gib], min, max),
            vec![
                Piece::Copy {
                    source: 0,
                    range: 0..3 * gib
                },
                Piece::Copy {
                    source: 0,
                    range: 3 * gib..6 * gib
                },
            ]
        );
        assert_eq!(
            plan(&[1 << 20, 1 << 20, 64 << 20], min, max),
            vec![
                Piece::Send(vec![(0, 0..1 << 20), (1, 0..1 << 20), (2, 0..3 << 20)]),
                Piece::Copy {
                    source: 2,
                    range: 3 << 20..64 << 20
                },
            ]
        );
    }
}
