//! Python versions, as PEP 440 (the "Version specifiers" specification) defines,
//! normalises and orders them.
//!
//! # Format
//!
//! `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`: an epoch, a release of one or more
//! dot-separated numbers, then optionally a pre-release, a post-release, a developmental
//! release and a local label, in this order. The specification's normalisation is
//! applied while reading, so every spelling of one version is the same version:
//!
//! - letters in any case; spaces around the version and a leading `v` ignored;
//! - pre-release labels `alpha` = `a`, `beta` = `b`, `c` = `pre` = `preview` = `rc`;
//!   post-release labels `post` = `rev` = `r`, and `1.0-1` is `1.0.post1`;
//! - before and after each label an optional `.`, `-` or `_` (`1.0-RC.1` is `1.0rc1`);
//!   a label without a number has the number 0 (`1.0a` is `1.0a0`, `1.0.post` is
//!   `1.0.post0`);
//! - the local label is ASCII letters and digits in segments separated by `.`, `-` or
//!   `_` (all read as `.`).
//!
//! # Ordering
//!
//! - the epoch, as a number (without one, 0);
//! - the release, number by number, with missing numbers 0 (`1.0` = `1.0.0`);
//! - where the version stands against that release: a developmental release of the final
//!   version (`1.0.dev1`, no pre- or post-release) first, then pre-releases (`a < b <
//!   rc`, then by number), then the final release and its post-releases;
//! - no post-release before any post-release, then by number;
//! - any developmental release before none, then by number;
//! - no local label before any; local labels segment by segment, where a segment of
//!   letters (compared as strings) comes before a number (compared as numbers), and a
//!   label that is a prefix of another comes first.
//!
//! So `1.0.dev1 < 1.0a1 < 1.0a1.post1.dev1 < 1.0a1.post1 < 1.0 < 1.0+local < 1.0.post1`.

use std::cmp::Ordering;

use super::compare_numbers;

/// A PEP 440 version, parsed and normalised.
#[derive(Debug, Clone)]
pub(super) struct Pep440Version {
    epoch: String,
    release: Vec<String>,
    pre: Option<(PreRelease, String)>,
    post: Option<String>,
    dev: Option<String>,
    local: Vec<LocalSegment>,
}

/// The pre-release phases, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PreRelease {
    Alpha,
    Beta,
    ReleaseCandidate,
}

/// One segment of a local label.
#[derive(Debug, Clone)]
enum LocalSegment {
    Word(String),
    Number(String),
}

/// The pre-release labels, a longer label before any label that is its prefix.
const PRE_RELEASE_LABELS: [(&str, PreRelease); 8] = [
    ("preview", PreRelease::ReleaseCandidate),
    ("alpha", PreRelease::Alpha),
    ("beta", PreRelease::Beta),
    ("pre", PreRelease::ReleaseCandidate),
    ("rc", PreRelease::ReleaseCandidate),
    ("a", PreRelease::Alpha),
    ("b", PreRelease::Beta),
    ("c", PreRelease::ReleaseCandidate),
];

const POST_RELEASE_LABELS: [(&str, ()); 3] = [("post", ()), ("rev", ()), ("r", ())];

const DEV_RELEASE_LABELS: [(&str, ()); 1] = [("dev", ())];

impl Pep440Version {
    /// Reads a PEP 440 version in any of its spellings, or says what is wrong with it.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let mut reader = Reader {
            rest: lower.strip_prefix('v').unwrap_or(&lower),
        };
        let epoch = reader.epoch().unwrap_or("0").to_owned();
        let mut release = Vec::new();
        loop {
            let Some(number) = reader.digits() else {
                return Err(if release.is_empty() {
                    "no release number where the version should start".to_owned()
                } else {
                    "no number after a '.' in the release".to_owned()
                });
            };
            release.push(number.to_owned());
            // A dot continues the release only before a number (`1.0.post1`, `1.0.a1`).
            match reader.rest.strip_prefix('.') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => reader.rest = rest,
                _ => break,
            }
        }
        let pre = reader.labelled(&PRE_RELEASE_LABELS);
        let post = match reader.implicit_post_release() {
            Some(number) => Some(number),
            None => reader
                .labelled(&POST_RELEASE_LABELS)
                .map(|((), number)| number),
        };
        let dev = reader
            .labelled(&DEV_RELEASE_LABELS)
            .map(|((), number)| number);
        let local = match reader.rest.strip_prefix('+') {
            Some(label) => {
                reader.rest = "";
                parse_local(label)?
            }
            None => Vec::new(),
        };
        if !reader.rest.is_empty() {
            return Err(format!("{:?} follows the version", reader.rest));
        }
        Ok(Pep440Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// Orders two PEP 440 versions.
    pub(super) fn compare(&self, other: &Self) -> Ordering {
        compare_numbers(self.epoch.as_bytes(), other.epoch.as_bytes())
            .then_with(|| compare_release(&self.release, &other.release))
            .then_with(|| self.stage().cmp(&other.stage()))
            .then_with(|| match (&self.pre, &other.pre) {
                (Some((ours, our_number)), Some((theirs, their_number))) => ours
                    .cmp(theirs)
                    .then_with(|| compare_numbers(our_number.as_bytes(), their_number.as_bytes())),
                _ => Ordering::Equal,
            })
            .then_with(|| compare_optional(&self.post, &other.post, Ordering::Less))
            .then_with(|| compare_optional(&self.dev, &other.dev, Ordering::Greater))
            .then_with(|| compare_local(&self.local, &other.local))
    }

    /// Where the version stands against its release: 0 for a developmental release of
    /// the final version, 1 for a pre-release, 2 for the final release or a post-release.
    fn stage(&self) -> u8 {
        match (&self.pre, &self.post, &self.dev) {
            (None, None, Some(_)) => 0,
            (Some(_), _, _) => 1,
            _ => 2,
        }
    }
}

/// Reads a lower-cased version from the front.
struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    fn digits(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at_checked(end)?;
        if digits.is_empty() {
            return None;
        }
        self.rest = rest;
        Some(digits)
    }

    /// An epoch `N!`; nothing is read when there is none.
    fn epoch(&mut self) -> Option<&'a str> {
        let start = self.rest;
        let number = self.digits()?;
        match self.rest.strip_prefix('!') {
            Some(rest) => {
                self.rest = rest;
                Some(number)
            }
            None => {
                self.rest = start;
                None
            }
        }
    }

    fn separator(&mut self) {
        if let Some(rest) = self.rest.strip_prefix(['.', '-', '_']) {
            self.rest = rest;
        }
    }

    /// `[sep]label[sep][N]` with one of `labels`, and its number (0 when absent); nothing
    /// is read when no label is there.
    fn labelled<T: Copy>(&mut self, labels: &[(&str, T)]) -> Option<(T, String)> {
        let start = self.rest;
        self.separator();
        let found = labels
            .iter()
            .find_map(|&(label, value)| Some((value, self.rest.strip_prefix(label)?)));
        let Some((value, rest)) = found else {
            self.rest = start;
            return None;
        };
        self.rest = rest;
        self.separator();
        Some((value, self.digits().unwrap_or("0").to_owned()))
    }

    /// The post-release spelled `-N`.
    fn implicit_post_release(&mut self) -> Option<String> {
        let start = self.rest;
        self.rest = self.rest.strip_prefix('-')?;
        match self.digits() {
            Some(number) => Some(number.to_owned()),
            None => {
                self.rest = start;
                None
            }
        }
    }
}

fn parse_local(label: &str) -> Result<Vec<LocalSegment>, String> {
    label
        .split(['.', '-', '_'])
        .map(|segment| {
            if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Err(format!(
                    "the local label {label:?} has a segment {segment:?} that is not letters and digits"
                ))
            } else if segment.bytes().all(|b| b.is_ascii_digit()) {
                Ok(LocalSegment::Number(segment.to_owned()))
            } else {
                Ok(LocalSegment::Word(segment.to_owned()))
            }
        })
        .collect()
}

/// Orders two releases number by number, a missing number being 0.
fn compare_release(a: &[String], b: &[String]) -> Ordering {
    fn number(release: &[String], i: usize) -> &[u8] {
        release.get(i).map_or(b"0", |n| n.as_bytes())
    }
    (0..a.len().max(b.len()))
        .map(|i| compare_numbers(number(a, i), number(b, i)))
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Orders two optional numbers, an absent one being `absent` against a present one.
fn compare_optional(a: &Option<String>, b: &Option<String>, absent: Ordering) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => absent,
        (Some(_), None) => absent.reverse(),
        (Some(a), Some(b)) => compare_numbers(a.as_bytes(), b.as_bytes()),
    }
}

/// Orders two local labels segment by segment, words before numbers.
fn compare_local(a: &[LocalSegment], b: &[LocalSegment]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|pair| match pair {
            (LocalSegment::Number(a), LocalSegment::Number(b)) => {
                compare_numbers(a.as_bytes(), b.as_bytes())
            }
            (LocalSegment::Word(a), LocalSegment::Word(b)) => a.cmp(b),
            (LocalSegment::Word(_), LocalSegment::Number(_)) => Ordering::Less,
            (LocalSegment::Number(_), LocalSegment::Word(_)) => Ordering::Greater,
        })
        .find(|order| order.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}
