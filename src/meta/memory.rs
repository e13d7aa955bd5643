//! The in-memory metadata store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Durability, Entry, Expect, MetaStore, Version, Versioned, Write, check_batch, check_key,
    conflict, expectation_holds,
};
use crate::error::Result;

/// A [`MetaStore`] in process memory: for tests and throwaway registries.
///
/// ```
/// # tokio_test_block_on(async {
/// use wharf::{Expect, MemoryMetaStore, MetaStore};
/// let store = MemoryMetaStore::new();
/// let v1 = store.put("k", "a".into(), Expect::Absent).await?;
/// assert!(store.put("k", "b".into(), Expect::Absent).await.is_err());
/// store.put("k", "b".into(), Expect::Version(v1)).await?;
/// assert_eq!(store.get("k").await?.unwrap().value, "b");
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryMetaStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Versioned>,
    // One counter for all keys: versions never repeat, even across delete and re-create.
    last_version: u64,
}

impl MemoryMetaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated (an operation
        // checks everything before it changes anything), so the data is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl MetaStore for MemoryMetaStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        check_key(key)?;
        Ok(self.state().entries.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<Version> {
        check_key(key)?;
        let mut state = self.state();
        let current = state.entries.get(key).map(|v| v.version);
        if !expectation_holds(expect, current) {
            return Err(conflict(key, expect, current));
        }
        state.last_version += 1;
        let version = Version(state.last_version);
        state
            .entries
            .insert(key.to_owned(), Versioned { version, value });
        Ok(version)
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<()> {
        check_key(key)?;
        let mut state = self.state();
        let current = state.entries.get(key).map(|v| v.version);
        if !expectation_holds(expect, current) {
            return Err(conflict(key, expect, current));
        }
        state.entries.remove(key);
        Ok(())
    }

    fn atomic_batches(&self) -> bool {
        true
    }

    /// Memory survives no crash: both durabilities are the same here.
    async fn batch(
        &self,
        writes: Vec<Write>,
        _durability: Durability,
    ) -> Result<Vec<Option<Version>>> {
        check_batch(&writes)?;
        let mut state = self.state();
        // Every expectation first (keys are distinct, so no write affects another's
        // check), then every change: a failed batch changes nothing.
        for write in &writes {
            let current = state.entries.get(write.key()).map(|v| v.version);
            if !expectation_holds(write.expect(), current) {
                return Err(conflict(write.key(), write.expect(), current));
            }
        }
        let mut versions = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                Write::Put { key, value, .. } => {
                    state.last_version += 1;
                    let version = Version(state.last_version);
                    state.entries.insert(key, Versioned { version, value });
                    versions.push(Some(version));
                }
                Write::Delete { key, .. } => {
                    state.entries.remove(&key);
                    versions.push(None);
                }
            }
        }
        Ok(versions)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let state = self.state();
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        Ok(state
            .entries
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(key, v)| Entry {
                key: key.clone(),
                version: v.version,
                value: v.value.clone(),
            })
            .collect())
    }
}
