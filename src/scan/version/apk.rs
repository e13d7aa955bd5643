//! Alpine package versions, as `apk version` (apk-tools) reads and orders them.
//!
//! # Format
//!
//! `digits{.digits}[letter]{_suffix[digits]}[~hash][-rdigits]`, as a sequence of tokens
//! that must come in this order:
//!
//! | token | written | example |
//! |---|---|---|
//! | first number | digits | `1` |
//! | number | `.` digits | `.2` |
//! | letter | one of `a`–`z` | `b` |
//! | suffix | `_` and one of `alpha beta pre rc cvs svn git hg p` | `_rc` |
//! | suffix number | digits right after a suffix | `2` |
//! | commit hash | `~` and lower-case hex digits | `~1a2b3c` |
//! | release | `-r` digits | `-r4` |
//!
//! Numbers and suffixes repeat (`1.2.3`, `_git20240101_p1`); the letter, the hash and
//! the release come at most once; nothing follows the release. Anything else (an
//! upper-case letter, digits right after the letter, `-` not followed by `r` and digits,
//! an unknown suffix) is an error, as apk's own check says.
//!
//! # Ordering
//!
//! The two token sequences are walked together while the tokens are of the same kind:
//!
//! - the first number, suffix numbers and the release compare as numbers;
//! - a later number compares as a number too, unless either of the two starts with `0`:
//!   then both compare as strings, byte by byte, a prefix first. This is how apk-tools
//!   reads `1.02` as a decimal fraction: `1.002 < 1.01 < 1.010 < 1.1 < 1.2 < 1.10`, and
//!   `1.0 < 1.00`.
//! - letters by their byte, suffixes in the order `alpha < beta < pre < rc < cvs < svn <
//!   git < hg < p`, commit hashes as strings.
//!
//! When one sequence reaches a token of another kind than the other's (or its end): a
//! pre-release suffix (`alpha`, `beta`, `pre`, `rc`) there makes its version the
//! smaller; otherwise the version whose token is *later* in the table above (the end
//! counting as later than all) is the smaller. So `1.2.3_rc1-r0 < 1.2.3-r0 < 1.2.3-r1 <
//! 1.2.3_p1-r0 < 1.2.3a < 1.2.3.1`: a patch level is a newer upstream version, whatever
//! the release.

use std::cmp::Ordering;

use super::{compare_numbers, split_run};

/// An Alpine version, parsed.
#[derive(Debug, Clone)]
pub(super) struct ApkVersion {
    tokens: Vec<Token>,
}

/// One token and its value.
#[derive(Debug, Clone)]
enum Token {
    FirstNumber(String),
    Number(String),
    Letter(u8),
    Suffix(Suffix),
    SuffixNumber(String),
    CommitHash(String),
    Release(String),
}

/// The kinds of token in the order they must appear, which is also the order that
/// decides when two versions diverge in kind; `End` is where a version has run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    FirstNumber,
    Number,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Release,
    End,
}

/// The suffixes, in their order; those before `Cvs` mark pre-releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Suffix {
    Alpha,
    Beta,
    Pre,
    Rc,
    Cvs,
    Svn,
    Git,
    Hg,
    P,
}

const SUFFIXES: [(&str, Suffix); 9] = [
    ("alpha", Suffix::Alpha),
    ("beta", Suffix::Beta),
    ("pre", Suffix::Pre),
    ("rc", Suffix::Rc),
    ("cvs", Suffix::Cvs),
    ("svn", Suffix::Svn),
    ("git", Suffix::Git),
    ("hg", Suffix::Hg),
    ("p", Suffix::P),
];

impl Token {
    fn kind(&self) -> Kind {
        match self {
            Token::FirstNumber(_) => Kind::FirstNumber,
            Token::Number(_) => Kind::Number,
            Token::Letter(_) => Kind::Letter,
            Token::Suffix(_) => Kind::Suffix,
            Token::SuffixNumber(_) => Kind::SuffixNumber,
            Token::CommitHash(_) => Kind::CommitHash,
            Token::Release(_) => Kind::Release,
        }
    }

    fn is_pre_release(&self) -> bool {
        matches!(self, Token::Suffix(suffix) if *suffix < Suffix::Cvs)
    }
}

impl ApkVersion {
    /// Reads an Alpine version, or says what is wrong with it.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let (first, mut rest) = split_run(text.as_bytes(), |b| b.is_ascii_digit());
        if first.is_empty() {
            return Err("it does not start with a digit".to_owned());
        }
        let mut tokens = vec![Token::FirstNumber(owned(first))];
        while !rest.is_empty() {
            let at = text.len() - rest.len();
            let last = tokens.last().map_or(Kind::FirstNumber, Token::kind);
            let (token, remainder) =
                next_token(last, rest).map_err(|problem| format!("{problem} at byte {at}"))?;
            tokens.push(token);
            rest = remainder;
        }
        Ok(ApkVersion { tokens })
    }

    /// Orders two Alpine versions as `apk version` does.
    pub(super) fn compare(&self, other: &Self) -> Ordering {
        let mut ours = self.tokens.iter();
        let mut theirs = other.tokens.iter();
        loop {
            match (ours.next(), theirs.next()) {
                (None, None) => return Ordering::Equal,
                (Some(a), Some(b)) if a.kind() == b.kind() => {
                    let order = compare_tokens(a, b);
                    if order.is_ne() {
                        return order;
                    }
                }
                (a, b) => return compare_diverging(a, b),
            }
        }
    }
}

/// The token at the front of `rest` (not empty), which must be one allowed after a token
/// of kind `last`, and what follows it.
fn next_token(last: Kind, rest: &[u8]) -> Result<(Token, &[u8]), String> {
    let digits = |b: u8| b.is_ascii_digit();
    let Some((&first, after)) = rest.split_first() else {
        return Err("nothing".to_owned());
    };
    Ok(match first {
        b'a'..=b'z' if last <= Kind::Number => (Token::Letter(first), after),
        b'.' if last <= Kind::Number => match split_run(after, digits) {
            ([], _) => return Err("no digits after the '.'".to_owned()),
            (number, remainder) => (Token::Number(owned(number)), remainder),
        },
        b'0'..=b'9' if last == Kind::Suffix => {
            let (number, remainder) = split_run(rest, digits);
            (Token::SuffixNumber(owned(number)), remainder)
        }
        b'_' if last <= Kind::SuffixNumber => {
            let (name, remainder) = split_run(after, |b| b.is_ascii_lowercase());
            let suffix = SUFFIXES
                .iter()
                .find(|(known, _)| known.as_bytes() == name)
                .map(|&(_, suffix)| suffix)
                .ok_or_else(|| format!("unknown suffix {:?}", String::from_utf8_lossy(name)))?;
            (Token::Suffix(suffix), remainder)
        }
        b'~' if last < Kind::CommitHash => {
            match split_run(after, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                ([], _) => return Err("no lower-case hex digits after the '~'".to_owned()),
                (hash, remainder) => (Token::CommitHash(owned(hash)), remainder),
            }
        }
        b'-' if last < Kind::Release => {
            match after
                .strip_prefix(b"r")
                .map(|number| split_run(number, digits))
            {
                Some((number, remainder)) if !number.is_empty() => {
                    (Token::Release(owned(number)), remainder)
                }
                _ => return Err("a '-' not followed by r and digits".to_owned()),
            }
        }
        _ => return Err(format!("{:?} out of place", char::from(first))),
    })
}

/// Orders two versions at the first token where they differ in kind, or where one has
/// run out: a pre-release suffix is the smaller, otherwise the token further along the
/// grammar (the end furthest of all).
fn compare_diverging(a: Option<&Token>, b: Option<&Token>) -> Ordering {
    let kind = |token: Option<&Token>| token.map_or(Kind::End, Token::kind);
    if a.is_some_and(Token::is_pre_release) {
        Ordering::Less
    } else if b.is_some_and(Token::is_pre_release) {
        Ordering::Greater
    } else {
        kind(b).cmp(&kind(a))
    }
}

/// ASCII bytes (all the parser keeps) as a string.
fn owned(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Orders two tokens of the same kind.
fn compare_tokens(a: &Token, b: &Token) -> Ordering {
    match (a, b) {
        (Token::Number(a), Token::Number(b)) if a.starts_with('0') || b.starts_with('0') => {
            a.cmp(b)
        }
        (Token::FirstNumber(a), Token::FirstNumber(b))
        | (Token::Number(a), Token::Number(b))
        | (Token::SuffixNumber(a), Token::SuffixNumber(b))
        | (Token::Release(a), Token::Release(b)) => compare_numbers(a.as_bytes(), b.as_bytes()),
        (Token::Letter(a), Token::Letter(b)) => a.cmp(b),
        (Token::Suffix(a), Token::Suffix(b)) => a.cmp(b),
        (Token::CommitHash(a), Token::CommitHash(b)) => a.cmp(b),
        // Tokens of different kinds are never passed here.
        _ => Ordering::Equal,
    }
}
