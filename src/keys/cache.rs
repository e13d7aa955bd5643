//! [`CachingKeyProvider`]: a bounded cache of unwrapped data keys in front of a provider.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{KeyProvider, WrappedKey};
use crate::codec::DataKey;
use crate::error::Result;

/// Keeps up to `capacity` unwrapped data keys, so reading a blob again does not ask the
/// provider (a KMS call) again. The oldest entry goes first. Entries are keyed by the
/// wrap and its context, so a removed KEK stops working here only when its entries age
/// out: call [`CachingKeyProvider::clear`] after revoking one.
pub struct CachingKeyProvider {
    inner: Arc<dyn KeyProvider>,
    capacity: usize,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<(WrappedKey, Vec<u8>), DataKey>,
    order: VecDeque<(WrappedKey, Vec<u8>)>,
}

impl std::fmt::Debug for CachingKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKeyProvider")
            .field("inner", &self.inner)
            .field("capacity", &self.capacity)
            .field("cached", &self.len())
            .finish()
    }
}

impl CachingKeyProvider {
    /// Caches up to `capacity` keys unwrapped by `inner`.
    pub fn new(inner: Arc<dyn KeyProvider>, capacity: usize) -> Self {
        Self {
            inner,
            capacity,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached key.
    pub fn clear(&self) {
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Cache::default();
    }
}

#[async_trait]
impl KeyProvider for CachingKeyProvider {
    async fn wrap(&self, kek: &str, key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
        self.inner.wrap(kek, key, context).await
    }

    async fn fingerprint(&self, kek: &str) -> Result<String> {
        self.inner.fingerprint(kek).await
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        let entry = (wrapped.clone(), context.to_vec());
        if let Some(key) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys
            .get(&entry)
        {
            return Ok(key.clone());
        }
        let key = self.inner.unwrap(wrapped, context).await?;
        if self.capacity > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.keys.insert(entry.clone(), key.clone()).is_none() {
                cache.order.push_back(entry);
            }
            while cache.keys.len() > self.capacity {
                match cache.order.pop_front() {
                    Some(oldest) => {
                        cache.keys.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        Ok(key)
    }
}
