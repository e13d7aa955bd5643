//! Debian package versions, as Debian Policy 5.6.12 defines them and
//! `dpkg --compare-versions` orders them.
//!
//! # Format
//!
//! `[epoch:]upstream_version[-debian_revision]`, split at the *first* colon and the
//! *last* hyphen:
//!
//! - The epoch is the text before the first colon: decimal digits, at most
//!   2147483647 (dpkg's limit, a C `int`). Without one the epoch is 0.
//! - The revision is the text after the last hyphen: ASCII letters, digits and `+ . ~`.
//!   Without one the revision is empty, which orders like `0` (so `1.0` equals `1.0-0`).
//!   A hyphen with nothing after it is an error.
//! - The upstream version is what lies between: ASCII letters, digits and `. + ~ - :`
//!   (a hyphen can only be there when a revision follows, a colon only after an epoch,
//!   since the splits take the others). It must not be empty. Policy says it should
//!   start with a digit; dpkg only warns when it does not, so neither is that an error
//!   here.
//! - Spaces around the version are ignored, as dpkg ignores them; inside it they are an
//!   error.
//!
//! # Ordering
//!
//! Epochs compare as numbers. Then the upstream versions, then the revisions, each by the
//! same rule: the string is cut into alternating runs, a run of non-digits first (maybe
//! empty), then a run of digits (maybe empty), and so on. Non-digit runs compare
//! character by character, where a missing character (the run has ended) weighs more
//! than `~` and less than anything else, letters weigh less than the other characters,
//! and otherwise ASCII order decides. Digit runs compare as numbers, an empty run as 0.
//! The first difference decides; strings that run out together are equal.
//!
//! So `1.0~rc1 < 1.0 < 1.0a < 1.0+b1 < 1.0.1`, and a Debian backport
//! `3.0.11-1~deb12u1` comes before the `3.0.11-1` it was built from.

use std::cmp::Ordering;

use super::{compare_numbers, split_run};

/// The largest epoch dpkg accepts.
const MAX_EPOCH: u32 = i32::MAX as u32;

/// A Debian version, parsed.
#[derive(Debug, Clone)]
pub(super) struct DpkgVersion {
    epoch: u32,
    upstream: String,
    revision: String,
}

impl DpkgVersion {
    /// Reads a Debian version, or says what is wrong with it.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() {
            return Err("only spaces".to_owned());
        }
        if let Some(at) = text.find(|c: char| c.is_ascii_whitespace()) {
            return Err(format!("a space inside the version, at byte {at}"));
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((epoch, rest)) => (parse_epoch(epoch)?, rest),
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return Err("the revision after the last '-' is empty".to_owned()),
            Some((upstream, revision)) => (upstream, revision),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err("the upstream version is empty".to_owned());
        }
        check_characters("upstream version", upstream, ".+~-:")?;
        check_characters("revision", revision, ".+~")?;
        Ok(DpkgVersion {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
        })
    }

    /// Orders two Debian versions: epoch, then upstream version, then revision.
    pub(super) fn compare(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| compare_part(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

fn parse_epoch(epoch: &str) -> Result<u32, String> {
    if epoch.is_empty() {
        return Err("the epoch before ':' is empty".to_owned());
    }
    if !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the epoch {epoch:?} is not a decimal number"));
    }
    epoch
        .parse::<u32>()
        .ok()
        .filter(|&value| value <= MAX_EPOCH)
        .ok_or_else(|| format!("the epoch {epoch} is larger than {MAX_EPOCH}"))
}

/// Accepts ASCII letters, digits and the `extra` punctuation in `part`.
fn check_characters(name: &str, part: &str, extra: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || extra.contains(c);
    match part.char_indices().find(|&(_, c)| !allowed(c)) {
        Some((at, c)) => Err(format!(
            "the {name} has {c:?} at byte {at}, which dpkg does not allow"
        )),
        None => Ok(()),
    }
}

/// Orders two upstream versions or two revisions by their alternating runs.
fn compare_part(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        let (a_text, a_rest) = split_run(a, |c| !c.is_ascii_digit());
        let (b_text, b_rest) = split_run(b, |c| !c.is_ascii_digit());
        let order = compare_text(a_text, b_text);
        if order != Ordering::Equal {
            return order;
        }
        let (a_number, a_rest) = split_run(a_rest, |c| c.is_ascii_digit());
        let (b_number, b_rest) = split_run(b_rest, |c| c.is_ascii_digit());
        let order = compare_numbers(a_number, b_number);
        if order != Ordering::Equal {
            return order;
        }
        (a, b) = (a_rest, b_rest);
    }
    Ordering::Equal
}

/// Orders two runs of non-digits character by character.
fn compare_text(a: &[u8], b: &[u8]) -> Ordering {
    (0..a.len().max(b.len()))
        .map(|i| weight(a.get(i).copied()).cmp(&weight(b.get(i).copied())))
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A character's weight in a non-digit run; `None` is the end of the run.
fn weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        // Past every letter.
        Some(c) => i32::from(c) + 256,
    }
}
