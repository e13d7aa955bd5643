//! Envelope encryption: a [`KeyProvider`] wraps and unwraps blobs' data keys under named
//! key-encryption keys (KEKs). It is the hook for a KMS, Vault or an HSM; wharf ships a
//! local provider ([`LocalKeyProvider`]: a key file or the environment), a memory one
//! for tests ([`MemoryKeyProvider`]), a bounded cache of unwrapped keys
//! ([`CachingKeyProvider`]), and, with feature `kms`, AWS KMS (`AwsKmsKeyProvider`).
//!
//! A wrapped key is bound to a context (the blob's digest), so a wrap copied onto another
//! blob does not unwrap. Data keys are zeroed when dropped and never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{RwLock, RwLockWriteGuard};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::DataKey;
use crate::error::{Error, ErrorKind, Result};

mod cache;
#[cfg(feature = "kms")]
mod kms;
mod local;
mod memory;

pub use self::cache::CachingKeyProvider;
#[cfg(feature = "kms")]
pub use self::kms::{AwsCredentials, AwsKmsKeyProvider, KMS_KEK_PREFIX};
pub use self::local::{DEFAULT_KEK, KEK_ENV_PREFIX, LocalKeyProvider};
pub use self::memory::MemoryKeyProvider;

/// A data key wrapped under the key-encryption key `kek`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The name of the key-encryption key.
    pub kek: String,
    /// The provider's wrapping of the data key.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek", &self.kek)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Wraps and unwraps data keys under named key-encryption keys.
///
/// # Contract
///
/// Checked point by point by `wharf::testing::key_provider::all` (feature `testing`),
/// which every implementation runs.
///
/// 1. `unwrap(wrap(kek, key, context), context)` gives `key` back.
/// 2. Unwrapping with another context, or a damaged wrap, is `CorruptData`.
/// 3. Unwrapping under a KEK the provider does not have (never had, or removed) is
///    `Denied`, naming the KEK; so is wrapping under one.
/// 4. Neither errors nor `Debug` output contain key material.
/// 5. `fingerprint(kek)` names the KEK's key material without revealing it: the same
///    wherever the same key is loaded, different for another key under the same name
///    (replicas with different key files are told apart, not taken for corruption);
///    `Denied` for a KEK the provider does not have.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// Wraps `key` under `kek`, bound to `context`.
    async fn wrap(&self, kek: &str, key: &DataKey, context: &[u8]) -> Result<WrappedKey>;

    /// Unwraps a key wrapped for `context`.
    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey>;

    /// The identity of `kek`'s key material (a key check value, a KMS key id): short,
    /// printable, and safe to store and show.
    async fn fingerprint(&self, kek: &str) -> Result<String>;
}

/// The named KEKs of a shipped provider, and wrapping with them: AES-256-GCM under the
/// KEK, a random nonce, the KEK's name and the context as associated data.
#[derive(Default)]
pub(crate) struct KekTable(RwLock<BTreeMap<String, Zeroizing<[u8; 32]>>>);

impl KekTable {
    pub(crate) fn new(keks: BTreeMap<String, Zeroizing<[u8; 32]>>) -> Self {
        Self(RwLock::new(keks))
    }

    /// The table, to change it (and, for a key file, to save it while no one else can).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Zeroizing<[u8; 32]>>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The KEKs' names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn get(&self, name: &str) -> Result<Zeroizing<[u8; 32]>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| unknown_kek(name))
    }

    pub(crate) fn wrap(&self, kek: &str, key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
        seal_key(kek, &*self.get(kek)?, key, context)
    }

    pub(crate) fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        open_key(&*self.get(&wrapped.kek)?, wrapped, context)
    }

    /// A key check value: the first 8 bytes of SHA-256 over a label and the key, in hex.
    /// One-way, so it tells keys apart without saying anything about them.
    pub(crate) fn fingerprint(&self, kek: &str) -> Result<String> {
        use sha2::Digest as _;
        let key = self.get(kek)?;
        let hash = sha2::Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(key.as_slice())
            .finalize();
        Ok(crate::hex::encode(&hash[..8]))
    }
}

const FINGERPRINT_LABEL: &[u8] = b"wharf kek fingerprint v1\0";

/// Length of a wrap made by [`seal_key`]: nonce, encrypted key, tag.
const WRAPPED_LEN: usize = 12 + 32 + 16;
const WRAP_LABEL: &[u8] = b"wharf key wrap v1";

fn wrap_aad(kek: &str, context: &[u8]) -> Vec<u8> {
    [WRAP_LABEL, &[0], kek.as_bytes(), &[0], context].concat()
}

/// Wraps `key` with the KEK bytes `kek_key` (AES-256-GCM, random nonce, the KEK's name
/// and `context` as associated data): the scheme of the shipped providers.
fn seal_key(kek: &str, kek_key: &[u8; 32], key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| {
        Error::new(
            ErrorKind::Storage,
            format!("no randomness for a nonce: {e}"),
        )
    })?;
    let mut sealed = key.expose().to_vec();
    let tag = Aes256Gcm::new(kek_key.into())
        .encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from(nonce),
            &wrap_aad(kek, context),
            sealed.as_mut_slice().into(),
        )
        .expect("sealing 32 bytes");
    let mut bytes = Vec::with_capacity(WRAPPED_LEN);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    bytes.extend_from_slice(&tag);
    Ok(WrappedKey {
        kek: kek.to_owned(),
        bytes,
    })
}

/// Unwraps what [`seal_key`] made.
fn open_key(kek_key: &[u8; 32], wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
    let damaged = || {
        Error::new(
            ErrorKind::CorruptData,
            format!(
                "data key wrapped under {:?} does not unwrap: damaged, or wrapped for another blob",
                wrapped.kek
            ),
        )
    };
    if wrapped.bytes.len() != WRAPPED_LEN {
        return Err(damaged());
    }
    let (nonce, rest) = wrapped.bytes.split_at(12);
    let (sealed, tag) = rest.split_at(32);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(sealed);
    Aes256Gcm::new(kek_key.into())
        .decrypt_inout_detached(
            &Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| damaged())?,
            &wrap_aad(&wrapped.kek, context),
            key.as_mut_slice().into(),
            &Tag::<Aes256Gcm>::try_from(tag).map_err(|_| damaged())?,
        )
        .map_err(|_| damaged())?;
    Ok(DataKey::from_bytes(*key))
}

fn unknown_kek(kek: &str) -> Error {
    Error::new(
        ErrorKind::Denied,
        format!("key-encryption key {kek:?} is not available from this key provider"),
    )
}
