//! Content digests (`sha256:…`, `sha512:…`) and a streaming digester whose state can be
//! saved and restored, so an interrupted upload resumes without re-reading its bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Sha256, Sha512};

use crate::error::{Error, ErrorKind, Result};

/// A digest algorithm wharf accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SHA-256, the registry default: 64 lowercase hex characters.
    Sha256,
    /// SHA-512: 128 lowercase hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used before the colon (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest, `algorithm:hex`.
///
/// Only `sha256` (64 lowercase hex) and `sha512` (128 lowercase hex) are accepted; anything
/// else is [`ErrorKind::DigestInvalid`]. The text form is canonical, so equal digests
/// compare equal as values and as strings.
///
/// ```
/// use wharf::{Algorithm, Digest};
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
///     .parse()?;
/// assert_eq!(d.algorithm(), Algorithm::Sha256);
/// assert_eq!(d, Digest::of(Algorithm::Sha256, b""));
/// assert!("sha256:E3B0".parse::<Digest>().is_err());
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    text: Box<str>,
}

impl Digest {
    /// The digest of `data` under `algorithm`, computed in one shot.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut digester = Digester::new(algorithm);
        digester.update(data);
        digester.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex-encoded value, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.as_str().len() + 1..]
    }

    /// The canonical text, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Self {
        let mut text = String::with_capacity(algorithm.as_str().len() + 1 + raw.len() * 2);
        text.push_str(algorithm.as_str());
        text.push(':');
        crate::hex::push(&mut text, raw);
        Self {
            algorithm,
            text: text.into(),
        }
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::DigestInvalid,
                format!("invalid digest {:?}: {why}", truncate_for_message(s)),
            )
        };
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected algorithm:hex"))?;
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm, expected sha256 or sha512")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid(&format!(
                "{algorithm} needs {} hex characters, found {}",
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("hex must be lowercase 0-9a-f"));
        }
        Ok(Self {
            algorithm,
            text: s.into(),
        })
    }
}

/// Cuts hostile input down to a size fit for an error message.
pub(crate) fn truncate_for_message(s: &str) -> &str {
    let mut end = s.len().min(160);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A streaming hash over a blob's bytes.
///
/// [`Digester::state`] captures the running hash as a small serializable value;
/// [`Digester::resume`] continues from it, so an upload interrupted after gigabytes needs
/// none of them re-read.
///
/// ```
/// use wharf::{Algorithm, Digest, Digester};
/// let mut d = Digester::new(Algorithm::Sha256);
/// d.update(b"hello ");
/// let saved = d.state();
/// let mut resumed = Digester::resume(&saved)?;
/// resumed.update(b"world");
/// assert_eq!(resumed.finish(), Digest::of(Algorithm::Sha256, b"hello world"));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Clone)]
pub struct Digester {
    inner: Inner,
    len: u64,
}

#[derive(Clone)]
enum Inner {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// The saved state of a [`Digester`]: algorithm, bytes hashed so far, and the hash's
/// internal state (a few hundred bytes at most).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigesterState {
    algorithm: Algorithm,
    len: u64,
    #[serde(with = "hex_bytes")]
    state: Vec<u8>,
}

impl DigesterState {
    /// Number of bytes hashed when the state was taken.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes had been hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        crate::hex::push(&mut text, bytes);
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        crate::hex::decode(&text).ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

impl Digester {
    /// A digester with nothing hashed yet.
    pub fn new(algorithm: Algorithm) -> Self {
        let inner = match algorithm {
            Algorithm::Sha256 => Inner::Sha256(Sha256::new()),
            Algorithm::Sha512 => Inner::Sha512(Sha512::new()),
        };
        Self { inner, len: 0 }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.inner {
            Inner::Sha256(h) => h.update(data),
            Inner::Sha512(h) => h.update(data),
        }
        self.len += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Sha256(_) => Algorithm::Sha256,
            Inner::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The digest of everything fed so far; the digester can keep going.
    pub fn peek(&self) -> Digest {
        self.clone().finish()
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        match self.inner {
            Inner::Sha256(h) => Digest::from_raw(Algorithm::Sha256, &h.finalize()),
            Inner::Sha512(h) => Digest::from_raw(Algorithm::Sha512, &h.finalize()),
        }
    }

    /// Captures the running state.
    pub fn state(&self) -> DigesterState {
        let state = match &self.inner {
            Inner::Sha256(h) => h.serialize().to_vec(),
            Inner::Sha512(h) => h.serialize().to_vec(),
        };
        DigesterState {
            algorithm: self.algorithm(),
            len: self.len,
            state,
        }
    }

    /// Continues from a captured state. A state that was damaged in storage is
    /// [`ErrorKind::CorruptData`].
    pub fn resume(saved: &DigesterState) -> Result<Self> {
        let corrupt = || {
            Error::new(
                ErrorKind::CorruptData,
                format!("saved {} hash state is damaged", saved.algorithm),
            )
        };
        let inner = match saved.algorithm {
            Algorithm::Sha256 => {
                let raw = SerializedState::<Sha256>::try_from(saved.state.as_slice())
                    .map_err(|_| corrupt())?;
                Inner::Sha256(Sha256::deserialize(&raw).map_err(|_| corrupt())?)
            }
            Algorithm::Sha512 => {
                let raw = SerializedState::<Sha512>::try_from(saved.state.as_slice())
                    .map_err(|_| corrupt())?;
                Inner::Sha512(Sha512::deserialize(&raw).map_err(|_| corrupt())?)
            }
        };
        Ok(Self {
            inner,
            len: saved.len,
        })
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::of(Algorithm::Sha256, b"").as_str(), EMPTY_SHA256);
        assert_eq!(
            Digest::of(Algorithm::Sha512, b"abc").hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:../../../../etc/passwd/../../../../../../../../../../../../../../..",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            let err = bad.parse::<Digest>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DigestInvalid, "{bad}");
        }
        assert_eq!(
            EMPTY_SHA256.parse::<Digest>().unwrap().as_str(),
            EMPTY_SHA256
        );
    }

    #[test]
    fn serde_round_trip() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY_SHA256}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }

    #[test]
    fn damaged_state_is_corrupt_data() {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(b"abc");
        let mut state = d.state();
        state.state.truncate(3);
        assert_eq!(
            Digester::resume(&state).unwrap_err().kind(),
            ErrorKind::CorruptData
        );
    }

    proptest! {
        #[test]
        fn any_chunking_with_save_and_restore_equals_one_shot(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..6),
            sha512 in any::<bool>(),
        ) {
            let algorithm = if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut digester = Digester::new(algorithm);
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                digester.update(&data[start..cut]);
                start = cut;
                // Round-trip the state through JSON, as an upload session does.
                let json = serde_json::to_string(&digester.state()).unwrap();
                digester = Digester::resume(&serde_json::from_str(&json).unwrap()).unwrap();
            }
            prop_assert_eq!(digester.len(), data.len() as u64);
            prop_assert_eq!(digester.finish(), Digest::of(algorithm, &data));
        }
    }
}
