//! Fuzz body for version ordering (`scan::version`): every scheme on arbitrary text.

use std::cmp::Ordering;

use crate::scan::version::{MAX_VERSION_LEN, Version, VersionScheme, compare};

/// Version comparison. The first byte picks the scheme; the rest, read as UTF-8 (lossily),
/// is up to three versions separated by NUL bytes.
///
/// Asserts: comparing fails exactly when a version is invalid, naming it within the
/// length cap; a valid version equals itself; swapping the versions reverses the order;
/// parsing once and comparing agrees with [`compare`]; and, in every scheme but rpm
/// (whose release rule is not transitive), the order of three versions is transitive.
pub fn compare_versions(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Some(&scheme) = VersionScheme::ALL.get(usize::from(pick) % VersionScheme::ALL.len()) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut versions = text.split('\0');
    let a = versions.next().unwrap_or_default();
    let b = versions.next().unwrap_or(a);
    let c = versions.next();

    let (parsed_a, parsed_b) = (Version::parse(scheme, a), Version::parse(scheme, b));
    let forward = compare(scheme, a, b);
    let backward = compare(scheme, b, a);
    for error in [&parsed_a, &parsed_b]
        .into_iter()
        .filter_map(|parsed| parsed.as_ref().err())
    {
        assert_eq!(error.scheme, scheme);
        assert!(error.version.len() <= MAX_VERSION_LEN, "{error}");
        assert!(!error.reason.is_empty(), "{error}");
    }
    let (Ok(parsed_a), Ok(parsed_b)) = (parsed_a, parsed_b) else {
        assert!(
            forward.is_err() && backward.is_err(),
            "{scheme} {a:?} {b:?}"
        );
        return;
    };
    assert!(a.len() <= MAX_VERSION_LEN && b.len() <= MAX_VERSION_LEN);
    assert_eq!(parsed_a.scheme(), scheme);
    let (Ok(forward), Ok(backward)) = (forward, backward) else {
        panic!("{scheme}: {a:?} and {b:?} parse but do not compare");
    };
    assert_eq!(forward, backward.reverse(), "{scheme} {a:?} {b:?}");
    assert_eq!(parsed_a.compare(&parsed_b), Some(forward));
    assert_eq!(
        parsed_a.compare(&parsed_a),
        Some(Ordering::Equal),
        "{scheme} {a:?}"
    );
    assert_eq!(compare(scheme, a, a), Ok(Ordering::Equal), "{scheme} {a:?}");

    if scheme == VersionScheme::Rpm {
        return;
    }
    let Some(Ok(parsed_c)) = c.map(|c| Version::parse(scheme, c)) else {
        return;
    };
    let order = |x: &Version, y: &Version| x.compare(y).unwrap_or(Ordering::Equal);
    let (ab, bc, ac) = (
        order(&parsed_a, &parsed_b),
        order(&parsed_b, &parsed_c),
        order(&parsed_a, &parsed_c),
    );
    if ab == bc || bc == Ordering::Equal {
        assert_eq!(ac, ab, "{scheme} {a:?} {b:?} {c:?}");
    } else if ab == Ordering::Equal {
        assert_eq!(ac, bc, "{scheme} {a:?} {b:?} {c:?}");
    }
}
