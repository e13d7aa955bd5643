//! KEK identities recorded for the store, so replicas never mix up keys.
//!
//! `kek/<name>` holds the fingerprint of the key material first used under that name
//! ([`KeyProvider::fingerprint`](crate::keys::KeyProvider::fingerprint)). A registry whose
//! provider holds other key material under a recorded name is refused, at start
//! ([`Registry::check_keys`]) and before it encrypts or reads with that KEK, instead of
//! writing blobs its replicas cannot read and reporting theirs as corrupt.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::{Change, KEKS, KekName};
use crate::error::{Error, ErrorKind, Result};

/// The record of the key first used under a KEK name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct KekRecord {
    fingerprint: String,
    recorded_at_ms: u64,
}

/// KEK names this process has checked (each is checked once).
#[derive(Debug, Default)]
pub(super) struct CheckedKeks(Mutex<HashSet<String>>);

impl CheckedKeks {
    fn contains(&self, kek: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(kek)
    }

    fn insert(&self, kek: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kek.to_owned());
    }
}

impl Registry {
    /// Checks that the key provider's KEKs named `keks` are the keys this store knows
    /// under those names, recording the ones it has not seen: call at start, with every
    /// KEK the provider holds. Another key under a recorded name is
    /// [`ErrorKind::Configuration`], naming the KEK and both fingerprints. KEKs the provider
    /// does not have are skipped.
    pub async fn check_keys<'a>(&self, keks: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for kek in keks {
            self.check_key(kek).await?;
        }
        Ok(())
    }

    /// [`Registry::check_keys`] for one KEK, once per process.
    pub(super) async fn check_key(&self, kek: &str) -> Result<()> {
        let Some(provider) = &self.inner.keys else {
            return Ok(());
        };
        if self.inner.checked_keks.contains(kek) {
            return Ok(());
        }
        let fingerprint = match provider.fingerprint(kek).await {
            Ok(fingerprint) => fingerprint,
            // Not held here: reads and writes under it fail on their own, naming it.
            Err(e) if e.kind() == ErrorKind::Denied => return Ok(()),
            Err(e) => return Err(e),
        };
        let record = KekRecord {
            fingerprint: fingerprint.clone(),
            recorded_at_ms: self.now_millis(),
        };
        // The first process to use the name records its key; the others compare.
        let recorded = KEKS
            .update(self.meta(), &KekName(kek.to_owned()), |stored| {
                Ok(match stored {
                    Some(_) => Change::Keep,
                    None => Change::Put(record.clone()),
                })
            })
            .await?
            .map(|stored| stored.fingerprint)
            .unwrap_or_default();
        if recorded != fingerprint {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!(
                    "key-encryption key {kek:?} of this key provider has fingerprint {fingerprint}, but this store's {kek:?} is the key with fingerprint {recorded}: it is another key under the same name (a replica with another key file?); give every replica the same keys"
                ),
            ));
        }
        self.inner.checked_keks.insert(kek);
        Ok(())
    }
}
