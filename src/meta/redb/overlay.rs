//! [`Overlay`]: relaxed writes held in memory until the next commit takes them.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::meta::{Version, Versioned};

/// Most writes held before a relaxed batch commits to the database instead (taking
/// these along): bounds the memory held and the work the next commit inherits.
const MAX_WRITES: usize = 1024;
/// Most value bytes held, likewise.
const MAX_BYTES: usize = 8 << 20;

/// What relaxed batches wrote since the last commit, by key: the value with its
/// version, or `None` for a removal. Reads look here before the database.
///
/// A commit takes every write held, then the overlay is cleared: between the two, the
/// database holds them and whatever the commit's own batches wrote after them, so a
/// held write may be older than the stored entry. Every held write is stamped with a
/// version (a removal takes one too) and `high` is the last stamp: a read transaction
/// whose database's last version is at least `high` holds all of them, and reads it
/// alone. `committing` says such a commit is under way, so a read that finds it
/// unset may answer from the overlay without asking the database.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    writes: BTreeMap<String, Option<Versioned>>,
    bytes: usize,
    high: u64,
    committing: bool,
}

impl Overlay {
    /// What the overlay holds at `key`: `Some(None)` for a removal, `None` when no
    /// relaxed write since the last commit touched it.
    pub(super) fn get(&self, key: &str) -> Option<Option<&Versioned>> {
        self.writes.get(key).map(Option::as_ref)
    }

    /// The version at `key` if the overlay decides it.
    pub(super) fn version(&self, key: &str) -> Option<Option<Version>> {
        self.get(key).map(|held| held.map(|v| v.version))
    }

    /// Whether another batch may be held.
    pub(super) fn has_room(&self) -> bool {
        self.writes.len() < MAX_WRITES && self.bytes < MAX_BYTES
    }

    pub(super) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Holds a write of `key`: `Some` value, or `None` for a removal, stamped `stamp`
    /// (a value's own version).
    pub(super) fn record(&mut self, key: String, value: Option<Versioned>, stamp: u64) {
        self.bytes += key.len() + value.as_ref().map_or(0, |v| v.value.len());
        self.writes.insert(key, value);
        self.high = self.high.max(stamp);
    }

    /// The last stamp of a held write: a database at this version or later has them all.
    pub(super) fn high(&self) -> u64 {
        self.high
    }

    /// Whether a commit taking these writes is under way (see the type's docs).
    pub(super) fn committing(&self) -> bool {
        self.committing
    }

    /// A commit taking these writes is about to make them visible in the database.
    pub(super) fn begin_commit(&mut self) {
        self.committing = !self.writes.is_empty();
    }

    /// The commit failed: the writes are still only here.
    pub(super) fn commit_failed(&mut self) {
        self.committing = false;
    }

    /// The writes whose keys start with `prefix`, from `lower` on, in key order.
    pub(super) fn range(
        &self,
        prefix: &str,
        lower: Bound<&str>,
    ) -> Vec<(String, Option<Versioned>)> {
        self.writes
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// Every write held, in key order, for the commit that takes them.
    pub(super) fn snapshot(&self) -> Vec<(String, Option<Versioned>)> {
        self.range("", Bound::Unbounded)
    }

    /// Forgets every write: a commit has taken them.
    pub(super) fn clear(&mut self) {
        self.writes.clear();
        self.bytes = 0;
        self.committing = false;
    }
}

/// The entries of a listing: `stored` (ascending, as the database holds them) with
/// `held` (ascending, the overlay's writes in the same range) laid over them, at most
/// `limit`. A removal held hides the stored entry; a stored error ends the listing.
pub(super) fn merge<E>(
    stored: impl Iterator<Item = std::result::Result<(String, Versioned), E>>,
    held: Vec<(String, Option<Versioned>)>,
    limit: usize,
) -> std::result::Result<Vec<(String, Versioned)>, E> {
    let mut out = Vec::new();
    let mut stored = stored.peekable();
    let mut held = held.into_iter().peekable();
    while out.len() < limit {
        if let Some(Err(e)) = stored.next_if(Result::is_err) {
            return Err(e);
        }
        let next_stored = stored.peek().and_then(|s| s.as_ref().ok()).map(|(k, _)| k);
        let take_held = match (next_stored, held.peek()) {
            (None, None) => break,
            (Some(s), Some((h, _))) => h <= s,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if !take_held {
            out.push(stored.next().expect("peeked")?);
            continue;
        }
        let (key, value) = held.next().expect("peeked");
        // The held write replaces the stored entry under the same key.
        stored.next_if(|s| matches!(s, Ok((k, _)) if *k == key));
        if let Some(value) = value {
            out.push((key, value));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn at(key: &str, version: u64) -> (String, Versioned) {
        let value = Versioned {
            version: Version::new(version),
            value: Bytes::from(key.to_owned()),
        };
        (key.to_owned(), value)
    }

    #[test]
    fn held_writes_lie_over_stored_entries() {
        let stored = vec![at("a", 1), at("b", 2), at("d", 3)];
        let held = vec![
            ("b".to_owned(), Some(at("b", 9).1)),
            ("c".to_owned(), Some(at("c", 8).1)),
            ("d".to_owned(), None),
            ("e".to_owned(), None),
        ];
        let merged = merge(stored.into_iter().map(Ok::<_, ()>), held.clone(), 10).unwrap();
        let versions: Vec<_> = merged
            .iter()
            .map(|(k, v)| (k.as_str(), v.version.get()))
            .collect();
        assert_eq!(versions, [("a", 1), ("b", 9), ("c", 8)]);
        let stored = vec![at("a", 1), at("b", 2), at("d", 3)];
        let first_two = merge(stored.into_iter().map(Ok::<_, ()>), held, 2).unwrap();
        assert_eq!(first_two.len(), 2);
    }

    #[test]
    fn a_stored_error_ends_the_listing() {
        let stored = vec![Ok(at("a", 1)), Err("broken")];
        assert_eq!(merge(stored.into_iter(), Vec::new(), 10), Err("broken"));
    }
}
