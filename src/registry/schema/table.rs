//! [`Table`]: typed, bounded access to one table of the metadata layout.

use std::marker::PhantomData;
use std::time::Duration;

use super::{Key, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Durability, Expect, MetaStore, Version, Write};

/// Attempts at a compare-and-swap under contention before giving up.
pub(crate) const ATTEMPTS: u32 = 64;

/// The first backoff after a lost race; it doubles up to [`MAX_BACKOFF`], and each wait is
/// drawn at random below it, so writers that collided spread out.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(50);
/// Tries of [`Retry::again_soon`] without a wait.
const PROMPT_ATTEMPTS: u32 = 8;

/// Entries per page of [`Table::list_all`].
const PAGE: usize = 1000;

/// One table: a key prefix, its key type `K` and its value type `V`.
pub(crate) struct Table<K, V> {
    prefix: &'static str,
    types: PhantomData<fn() -> (K, V)>,
}

/// What [`Table::update`] does with the value it was shown.
#[derive(Debug)]
pub(crate) enum Change<V> {
    /// Leave it as it is (no write).
    Keep,
    /// Store this value.
    Put(V),
    /// Remove the value (where there is none, nothing is written).
    Delete,
}

/// A listed entry.
#[derive(Debug, Clone)]
pub(crate) struct Row<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) version: Version,
}

/// An entry as [`Table::scan_page`] found it.
#[derive(Debug)]
pub(crate) struct ScannedRow<K, V> {
    pub(crate) store_key: String,
    pub(crate) key: Result<K>,
    pub(crate) value: Result<V>,
    pub(crate) version: Version,
}

/// Part of a table to list: the key text after the table's prefix starts with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub(crate) text: String,
    /// Where entries written under an older key rule sit, listed too by
    /// [`Table::list_all`].
    pub(crate) legacy: Option<String>,
}

impl Prefix {
    pub(crate) fn new(text: String) -> Self {
        Self { text, legacy: None }
    }

    /// The whole table.
    pub(crate) fn all() -> Self {
        Self::new(String::new())
    }
}

impl<K: Key, V: Value> Table<K, V> {
    pub(crate) const fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            types: PhantomData,
        }
    }

    /// The prefix every key of the table starts with.
    pub(crate) fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The longest key the table writes.
    pub(crate) const fn max_key_len(&self) -> usize {
        self.prefix.len() + K::MAX_LEN
    }

    pub(super) const fn describe(&self) -> (&'static str, usize) {
        (self.prefix, self.max_key_len())
    }

    /// The store key of `key`.
    pub(crate) fn key(&self, key: &K) -> String {
        let mut text = String::with_capacity(self.prefix.len() + 64);
        text.push_str(self.prefix);
        key.write(&mut text);
        text
    }

    /// The table key of a store key; [`ErrorKind::CorruptData`] if it is not one.
    pub(crate) fn parse(&self, key: &str) -> Result<K> {
        let rest = key.strip_prefix(self.prefix).ok_or_else(|| {
            Error::new(
                ErrorKind::CorruptData,
                format!("metadata key {key:?} is not in table {:?}", self.prefix),
            )
        })?;
        K::parse(rest)
    }

    /// The value at `key` with its version.
    pub(crate) async fn get(&self, meta: &dyn MetaStore, key: &K) -> Result<Option<(V, Version)>> {
        let key = self.key(key);
        match meta.get(&key).await? {
            Some(stored) => Ok(Some((V::decode(&stored.value, &key)?, stored.version))),
            None => Ok(None),
        }
    }

    /// Writes `value` at `key` if `expect` holds; the new version.
    pub(crate) async fn put(
        &self,
        meta: &dyn MetaStore,
        key: &K,
        value: &V,
        expect: Expect,
    ) -> Result<Version> {
        meta.put(&self.key(key), value.encode()?, expect).await
    }

    /// The batch write of `value` at `key` under `expect` (see [`MetaStore::batch`]).
    pub(crate) fn put_write(&self, key: &K, value: &V, expect: Expect) -> Result<Write> {
        Ok(Write::Put {
            key: self.key(key),
            value: value.encode()?,
            expect,
        })
    }

    /// The batch removal of `key` under `expect`.
    pub(crate) fn delete_write(&self, key: &K, expect: Expect) -> Write {
        Write::Delete {
            key: self.key(key),
            expect,
        }
    }

    /// Writes `value` at `key` if there is nothing; [`ErrorKind::Conflict`] if there is.
    pub(crate) async fn create(&self, meta: &dyn MetaStore, key: &K, value: &V) -> Result<Version> {
        self.put(meta, key, value, Expect::Absent).await
    }

    /// Removes `key` if `expect` holds.
    pub(crate) async fn delete(&self, meta: &dyn MetaStore, key: &K, expect: Expect) -> Result<()> {
        meta.delete(&self.key(key), expect).await
    }

    /// Applies `change` to the value at `key` by compare-and-swap: it sees the value as
    /// stored (or `None`) and says what to do; a lost race re-reads and asks again, at
    /// most [`ATTEMPTS`] times. Returns the value stored afterwards (`None` once removed).
    pub(crate) async fn update(
        &self,
        meta: &dyn MetaStore,
        key: &K,
        change: impl FnMut(Option<V>) -> Result<Change<V>>,
    ) -> Result<Option<V>>
    where
        V: Clone,
    {
        self.update_with(meta, key, Durability::Durable, change)
            .await
    }

    /// [`Table::update`], writing with `durability`.
    pub(crate) async fn update_with(
        &self,
        meta: &dyn MetaStore,
        key: &K,
        durability: Durability,
        mut change: impl FnMut(Option<V>) -> Result<Change<V>>,
    ) -> Result<Option<V>>
    where
        V: Clone,
    {
        let store_key = self.key(key);
        let mut retry = Retry::new(&store_key);
        loop {
            let current = match meta.get(&store_key).await? {
                Some(stored) => Some((V::decode(&stored.value, &store_key)?, stored.version)),
                None => None,
            };
            let (value, expect) = match current {
                Some((value, version)) => (Some(value), Expect::Version(version)),
                None => (None, Expect::Absent),
            };
            let next = match change(value.clone())? {
                Change::Keep => return Ok(value),
                Change::Delete if value.is_none() => return Ok(None),
                Change::Put(next) => Some(next),
                Change::Delete => None,
            };
            let write = match &next {
                Some(next) => Write::Put {
                    key: store_key.clone(),
                    value: next.encode()?,
                    expect,
                },
                None => Write::Delete {
                    key: store_key.clone(),
                    expect,
                },
            };
            let written = match (durability, write) {
                (Durability::Durable, Write::Put { key, value, expect }) => {
                    meta.put(&key, value, expect).await.map(drop)
                }
                (Durability::Durable, Write::Delete { key, expect }) => {
                    meta.delete(&key, expect).await
                }
                (_, write) => meta.batch(vec![write], durability).await.map(drop),
            };
            match written {
                Ok(()) => return Ok(next),
                Err(e) if e.kind() == ErrorKind::Conflict => retry.again(e).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Entries of `within`, after `after`, ascending, at most `limit`.
    pub(crate) async fn list(
        &self,
        meta: &dyn MetaStore,
        within: &Prefix,
        after: Option<&K>,
        limit: usize,
    ) -> Result<Vec<Row<K, V>>> {
        let after = after.map(|k| self.key(k));
        self.list_raw(meta, &within.text, after.as_deref(), limit)
            .await
    }

    /// Keys of `within`, after `after`, ascending, at most `limit`.
    pub(crate) async fn list_keys(
        &self,
        meta: &dyn MetaStore,
        within: &Prefix,
        after: Option<&K>,
        limit: usize,
    ) -> Result<Vec<K>> {
        let prefix = format!("{}{}", self.prefix, within.text);
        let after = after.map(|k| self.key(k));
        meta.list_keys(&prefix, after.as_deref(), limit)
            .await?
            .iter()
            .map(|k| self.parse(k))
            .collect()
    }

    /// The next page of `within` after `after`, moving `after` on; `None` at the end. For
    /// walks too long to hold in memory at once.
    pub(crate) async fn next_page(
        &self,
        meta: &dyn MetaStore,
        within: &Prefix,
        after: &mut Option<K>,
    ) -> Result<Option<Vec<Row<K, V>>>>
    where
        K: Clone,
    {
        let page = self.list(meta, within, after.as_ref(), PAGE).await?;
        match page.last() {
            Some(last) => {
                *after = Some(last.key.clone());
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }

    /// Every entry of `within` (and of its legacy prefix), page by page.
    pub(crate) async fn list_all(
        &self,
        meta: &dyn MetaStore,
        within: &Prefix,
    ) -> Result<Vec<Row<K, V>>> {
        let mut all = Vec::new();
        for text in std::iter::once(&within.text).chain(&within.legacy) {
            let mut after: Option<String> = None;
            loop {
                let page = self.list_raw(meta, text, after.as_deref(), PAGE).await?;
                let Some(last) = page.last() else { break };
                after = Some(self.key(&last.key));
                all.extend(page);
            }
        }
        Ok(all)
    }

    /// A page of `within` as stored, after the store key `after`, each key and value
    /// decoded on its own: for sweeps that must get past a damaged entry instead of
    /// stopping at it.
    pub(crate) async fn scan_page(
        &self,
        meta: &dyn MetaStore,
        within: &Prefix,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ScannedRow<K, V>>> {
        let prefix = format!("{}{}", self.prefix, within.text);
        let page = meta.list(&prefix, after, limit).await?;
        Ok(page
            .into_iter()
            .map(|entry| ScannedRow {
                key: self.parse(&entry.key),
                value: V::decode(&entry.value, &entry.key),
                version: entry.version,
                store_key: entry.key,
            })
            .collect())
    }

    /// Every entry of the table, as [`Table::scan_page`] finds them.
    pub(crate) async fn scan_all(&self, meta: &dyn MetaStore) -> Result<Vec<ScannedRow<K, V>>> {
        let mut all: Vec<ScannedRow<K, V>> = Vec::new();
        loop {
            let after = all.last().map(|row| row.store_key.as_str());
            let page = self.scan_page(meta, &Prefix::all(), after, PAGE).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Removes a scanned entry, by its key as stored, if it is still at the version seen.
    pub(crate) async fn delete_scanned(
        &self,
        meta: &dyn MetaStore,
        row: &ScannedRow<K, V>,
    ) -> Result<()> {
        meta.delete(&row.store_key, Expect::Version(row.version))
            .await
    }

    async fn list_raw(
        &self,
        meta: &dyn MetaStore,
        within: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Row<K, V>>> {
        let prefix = format!("{}{within}", self.prefix);
        meta.list(&prefix, after, limit)
            .await?
            .into_iter()
            .map(|entry| {
                Ok(Row {
                    key: self.parse(&entry.key)?,
                    value: V::decode(&entry.value, &entry.key)?,
                    version: entry.version,
                })
            })
            .collect()
    }
}

/// The bound on a compare-and-swap loop: [`ATTEMPTS`] tries with jittered exponential
/// backoff between them, then a retryable [`ErrorKind::Conflict`] naming the key.
#[derive(Debug)]
pub(crate) struct Retry<'a> {
    key: &'a str,
    attempt: u32,
}

impl<'a> Retry<'a> {
    pub(crate) fn new(key: &'a str) -> Self {
        Self { key, attempt: 0 }
    }

    /// After a lost race `lost`: waits and returns to try again, or gives up.
    pub(crate) async fn again(&mut self, lost: Error) -> Result<()> {
        self.count(lost)?;
        let ceiling = FIRST_BACKOFF
            .saturating_mul(1 << self.attempt.min(16))
            .min(MAX_BACKOFF);
        let jitter = getrandom::u64().unwrap_or(0) % (ceiling.as_micros() as u64 + 1);
        tokio::time::sleep(Duration::from_micros(jitter)).await;
        Ok(())
    }

    /// [`Retry::again`] for a race whose loss proves that the winner made progress (the
    /// key lost on was created by it, so the next try is at another key): the first
    /// [`PROMPT_ATTEMPTS`] go again at once, later ones wait as `again` does, so many
    /// writers at once still spread out.
    pub(crate) async fn again_soon(&mut self, lost: Error) -> Result<()> {
        if self.attempt + 1 < PROMPT_ATTEMPTS {
            return self.count(lost);
        }
        self.again(lost).await
    }

    /// Counts an attempt; gives up after [`ATTEMPTS`].
    fn count(&mut self, lost: Error) -> Result<()> {
        self.attempt += 1;
        if self.attempt >= ATTEMPTS {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{}: too many concurrent writers, gave up after {ATTEMPTS} attempts (last: {})",
                    self.key,
                    lost.message()
                ),
            )
            .retryable());
        }
        Ok(())
    }
}
