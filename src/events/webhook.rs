//! Webhook signatures and filters: what a webhook receiver needs to trust a body and what
//! a sender needs to choose which events go where. Pure: the HTTP request is the caller's.
//!
//! # Signature
//!
//! A webhook has a secret shared with its receiver. Each request carries
//!
//! ```text
//! Wharf-Signature: t=<unix seconds>,v1=<64 hex digits>
//! ```
//!
//! where the hex digits are HMAC-SHA256, keyed by the secret, of the ASCII timestamp, a
//! `.`, and the exact body bytes. The timestamp is signed so a captured request cannot be
//! replayed later: a receiver refuses one older (or newer) than its tolerance
//! ([`DEFAULT_TOLERANCE`]). Several `v1=` entries may appear while a secret is being
//! rotated; one that matches suffices.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::Event;
use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::wildcard_match;

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Wharf-Signature";

/// The request header that carries the event's id (also inside the body), so a
/// receiver can drop a duplicate before parsing.
pub const EVENT_ID_HEADER: &str = "Wharf-Event-Id";

/// How far a signature's timestamp may be from the receiver's clock: five minutes.
pub const DEFAULT_TOLERANCE: u64 = 300;

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", crate::hex::encode(&tag))
}

fn refused(why: impl Into<String>) -> Error {
    Error::new(ErrorKind::Denied, why.into())
}

/// Checks a [`SIGNATURE_HEADER`] value against `body` at `now` (Unix seconds): the
/// timestamp within `tolerance` seconds of `now`, and a `v1` MAC that matches (compared
/// in constant time). Each failure is [`ErrorKind::Denied`] saying which.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance: u64) -> Result<()> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                let parsed = t
                    .parse::<u64>()
                    .map_err(|_| refused(format!("signature timestamp {t:?} is not a number")))?;
                timestamp = Some(parsed);
            }
            Some(("v1", hex)) => tags.push(
                crate::hex::decode(hex).ok_or_else(|| refused("signature v1 is not hex digits"))?,
            ),
            // Other schemes a later sender may add are ignored.
            Some(_) => {}
            None => return Err(refused(format!("signature part {part:?} is not key=value"))),
        }
    }
    let timestamp = timestamp.ok_or_else(|| refused("signature has no timestamp t="))?;
    if timestamp.abs_diff(now) > tolerance {
        return Err(refused(format!(
            "signature timestamp {timestamp} is more than {tolerance} s from now ({now})"
        )));
    }
    if tags.is_empty() {
        return Err(refused("signature has no v1= MAC"));
    }
    let expected = mac(secret, timestamp, body);
    if tags
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(refused("signature does not match the body"))
    }
}

/// Which events a webhook receives: every list that is not empty must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// Event types ([`Event::kind`]) to send; empty: all.
    pub events: Vec<String>,
    /// Repository name patterns (`*` matches any run of characters); empty: all. Events
    /// of no repository (a reclaimed blob) pass only an empty list.
    pub repositories: Vec<String>,
    /// Tag patterns; empty: all. Events without a tag pass only an empty list.
    pub tags: Vec<String>,
}

impl Filter {
    /// Refuses an unknown event type, naming it and the known ones.
    pub fn validate(&self) -> Result<()> {
        for kind in &self.events {
            if !Event::KINDS.contains(&kind.as_str()) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "unknown event type {kind:?} in a webhook filter (known: {})",
                        Event::KINDS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        let kind_ok = self.events.is_empty() || self.events.iter().any(|k| k == event.kind());
        let repo_ok = self.repositories.is_empty()
            || event.repo().is_some_and(|r| {
                self.repositories
                    .iter()
                    .any(|p| wildcard_match(p, r.as_str()))
            });
        let tag_ok = self.tags.is_empty()
            || event
                .tag()
                .is_some_and(|t| self.tags.iter().any(|p| wildcard_match(p, t.as_str())));
        kind_ok && repo_ok && tag_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test";

    #[test]
    fn a_signature_verifies_within_tolerance_and_nowhere_else() {
        let header = sign(SECRET, 1_700_000_000, b"{}");
        verify(SECRET, &header, b"{}", 1_700_000_100, DEFAULT_TOLERANCE).unwrap();
        for (secret, body, now) in [
            (&b"other"[..], &b"{}"[..], 1_700_000_000),
            (SECRET, b"{ }", 1_700_000_000),
            (SECRET, b"{}", 1_700_000_301),
            (SECRET, b"{}", 1_699_999_699),
        ] {
            let refused = verify(secret, &header, body, now, DEFAULT_TOLERANCE).unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::Denied);
        }
        for header in [
            "",
            "t=x,v1=00",
            "v1=00",
            "t=1700000000",
            "t=1700000000,v1=zz",
            "junk",
        ] {
            assert!(
                verify(SECRET, header, b"{}", 1_700_000_000, 300).is_err(),
                "{header}"
            );
        }
    }

    #[test]
    fn a_filter_needs_every_nonempty_list_to_match() {
        let pushed = Event::TagDeleted {
            repo: "team/app".parse().unwrap(),
            tag: "v1.2".parse().unwrap(),
            digest: crate::digest::Digest::of(crate::digest::Algorithm::Sha256, b"x"),
            rule: None,
        };
        assert!(Filter::default().matches(&pushed));
        let filter = Filter {
            events: vec!["tag_deleted".into()],
            repositories: vec!["team/*".into()],
            tags: vec!["v1.*".into()],
        };
        assert!(filter.matches(&pushed));
        let other_repo = Filter {
            repositories: vec!["other/*".into()],
            ..filter.clone()
        };
        assert!(!other_repo.matches(&pushed));
        let other_kind = Filter {
            events: vec!["manifest_pushed".into()],
            ..filter
        };
        assert!(!other_kind.matches(&pushed));
        assert!(
            Filter {
                events: vec!["pushed".into()],
                ..Filter::default()
            }
            .validate()
            .is_err()
        );
    }
}
