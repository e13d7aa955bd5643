//! [`MemoryKeyProvider`]: key-encryption keys held in memory, for tests.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::{KekTable, KeyProvider, WrappedKey};
use crate::codec::DataKey;
use crate::error::Result;

/// Key-encryption keys in memory. KEKs can be added and removed while it is in use, to
/// test rotation and revocation.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wharf::codec::DataKey;
/// use wharf::keys::{KeyProvider, MemoryKeyProvider};
///
/// let provider = MemoryKeyProvider::default();
/// provider.generate("tenant-a")?;
/// let key = DataKey::generate()?;
/// let wrapped = provider.wrap("tenant-a", &key, b"sha256:...").await?;
/// assert_eq!(provider.unwrap(&wrapped, b"sha256:...").await?.expose(), key.expose());
/// provider.remove("tenant-a");
/// assert!(provider.unwrap(&wrapped, b"sha256:...").await.is_err());
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
#[derive(Default)]
pub struct MemoryKeyProvider {
    keks: KekTable,
}

impl std::fmt::Debug for MemoryKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryKeyProvider")
            .field("keks", &self.keks.names())
            .finish()
    }
}

impl MemoryKeyProvider {
    /// Adds a fresh random KEK named `name` (replacing one of that name).
    pub fn generate(&self, name: &str) -> Result<()> {
        self.insert(name, *DataKey::generate()?.expose());
        Ok(())
    }

    /// Adds the KEK `name` with the given bytes.
    pub fn insert(&self, name: &str, key: [u8; 32]) {
        self.keks
            .write()
            .insert(name.to_owned(), Zeroizing::new(key));
    }

    /// Removes the KEK `name`: what was wrapped under it no longer unwraps.
    pub fn remove(&self, name: &str) {
        self.keks.write().remove(name);
    }
}

#[async_trait]
impl KeyProvider for MemoryKeyProvider {
    async fn wrap(&self, kek: &str, key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
        self.keks.wrap(kek, key, context)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        self.keks.unwrap(wrapped, context)
    }

    async fn fingerprint(&self, kek: &str) -> Result<String> {
        self.keks.fingerprint(kek)
    }
}
