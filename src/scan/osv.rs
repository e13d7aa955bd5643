//! Offline vulnerability data in the OSV format, and matching packages against it.
//!
//! An [`OsvDatabase`] is built from OSV records ([`record`]): JSON files in a
//! directory tree or OSV's per-ecosystem `all.zip` exports ([`load`], [`zip`]). It
//! indexes every affected package by its ecosystem without the release (`Debian`,
//! `PyPI`) and its name as the ecosystem normalises it, so matching a package is a
//! hash lookup whatever the size of the data. [`matching`] finds the advisories that
//! apply to a package on a given OS release ([`ecosystem`]), decides whether the
//! installed version is affected ([`range`]) and rates each finding ([`severity`],
//! [`cvss`]).
//!
//! Building a database is pure apart from reading files: the registry builds a new
//! one to take new data and swaps it in, and [`OsvDatabase::fingerprint`] tells it
//! whether the data changed, so it can match stored inventories again.

use std::collections::HashMap;

use self::record::{Advisory, Affected};
use self::severity::{Rating, RatingSource};

pub mod cvss;
pub mod ecosystem;
pub mod load;
pub mod matching;
pub mod range;
pub mod record;
pub mod severity;
pub mod zip;

pub use self::ecosystem::{NotCovered, normalise_name};
pub use self::load::{LoadReport, OsvError, SkipReason};
pub use self::matching::{MatchReport, UnreadableVersion};

/// Loaded OSV advisories, indexed for matching.
#[derive(Debug)]
pub struct OsvDatabase {
    /// Sorted by id.
    advisories: Vec<Advisory>,
    /// `(ecosystem base, normalised package name)` → `(advisory, affected entry)`.
    index: HashMap<(String, String), Vec<(u32, u32)>>,
    /// CVE id → the CVSS v3 rating of the first advisory (by id) named after it that
    /// has one, lent to advisories about the same CVE that have no severity.
    cve_ratings: HashMap<String, Rating>,
    fingerprint: String,
}

impl OsvDatabase {
    /// A database of `advisories` (withdrawn ones already left out) whose content
    /// hashes to `fingerprint`.
    fn new(mut advisories: Vec<Advisory>, fingerprint: String) -> OsvDatabase {
        advisories.sort_by(|a, b| a.id.cmp(&b.id));
        let mut index: HashMap<(String, String), Vec<(u32, u32)>> = HashMap::new();
        let mut cve_ratings = HashMap::new();
        // The loader caps the count far below u32::MAX; past it nothing is indexed.
        for (at, advisory) in (0..u32::MAX).zip(&advisories) {
            for (entry_at, entry) in (0..u32::MAX).zip(&advisory.affected) {
                let base = ecosystem_base(&entry.ecosystem);
                let key = (base.to_owned(), normalise_name(base, &entry.name));
                index.entry(key).or_default().push((at, entry_at));
            }
            if advisory.name.starts_with("CVE-") && advisory.rating.source == RatingSource::CvssV3 {
                cve_ratings
                    .entry(advisory.name.clone())
                    .or_insert_with(|| advisory.rating.clone());
            }
        }
        OsvDatabase {
            advisories,
            index,
            cve_ratings,
            fingerprint,
        }
    }

    /// The identity of the data: `sha256:` and the hex SHA-256 of the advisories
    /// loaded (see [`load`] for what it covers). It changes when any of them does,
    /// and not when only file names or their order do.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// How many advisories are loaded.
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// The advisory with id `id`.
    pub fn advisory(&self, id: &str) -> Option<&Advisory> {
        let at = self
            .advisories
            .binary_search_by(|a| a.id.as_str().cmp(id))
            .ok()?;
        self.advisories.get(at)
    }

    /// The affected entries filed under ecosystem `base` for package `name` (as the
    /// ecosystem normalises it), with their advisories, in advisory id order.
    fn candidates<'a>(
        &'a self,
        base: &str,
        name: &str,
    ) -> impl Iterator<Item = (&'a Advisory, &'a Affected)> + 'a {
        self.index
            .get(&(base.to_owned(), normalise_name(base, name)))
            .into_iter()
            .flatten()
            .filter_map(|&(advisory, entry)| {
                let advisory = self.advisories.get(advisory as usize)?;
                Some((advisory, advisory.affected.get(entry as usize)?))
            })
    }

    /// The CVSS v3 rating another advisory gives `cve`.
    fn cve_rating(&self, cve: &str) -> Option<&Rating> {
        self.cve_ratings.get(cve)
    }
}

/// The ecosystem without its release: `Debian:12` → `Debian`, `Red Hat:enterprise_linux:9::baseos` → `Red Hat`.
pub fn ecosystem_base(ecosystem: &str) -> &str {
    ecosystem.split(':').next().unwrap_or(ecosystem)
}
