//! [`FaultyMeta`]: a [`MetaStore`] that fails one operation, or every one from one on.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::fault_plan::{FaultMode, FaultPlan};
use crate::error::{Error, ErrorKind, Result};
use crate::meta::{Durability, Entry, Expect, MetaStore, Version, Versioned, Write};

/// Wraps a [`MetaStore`] and fails operation number `fail_at` (counting from 0) and, in
/// [`FaultMode::Crash`], everything after it. Every call counts once: gets, puts,
/// deletes, listings and each batch (whole: a failed batch writes none of it, as an
/// atomic store's would). A failed operation does nothing. Batches keep the wrapped
/// store's atomicity, so a fault sweep over a `MemoryMetaStore` exercises the registry's
/// atomic-batch paths, and one over an `ObjectMetaStore` its ordered ones.
///
/// It also keeps what relaxed batches overwrote since the last durable write, so that
/// [`FaultyMeta::restart_after_crash`] can take them back as a crash may (contract
/// point 10), and [`FaultyMeta::sharing`] counts its operations with a
/// [`FaultyStore`](super::FaultyStore)'s, so one sweep crashes both at every step.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use wharf::testing::{FaultMode, FaultyMeta};
/// use wharf::{Expect, MemoryMetaStore, MetaStore};
///
/// let meta = FaultyMeta::new(Arc::new(MemoryMetaStore::new()));
/// meta.arm(1, FaultMode::FailOnce);
/// assert!(meta.put("a", "x".into(), Expect::Any).await.is_ok()); // operation 0
/// assert!(meta.put("b", "x".into(), Expect::Any).await.is_err()); // 1: fails
/// assert!(meta.get("b").await.unwrap().is_none()); // and wrote nothing
/// # });
/// ```
#[derive(Clone)]
pub struct FaultyMeta {
    inner: Arc<dyn MetaStore>,
    plan: Arc<FaultPlan>,
    /// Held across each write and its record, so the record's order is the writes'.
    relaxed: Arc<tokio::sync::Mutex<Overwritten>>,
}

/// The keys relaxed batches wrote since the last durable write, in order, with what each
/// held before (`None`: absent).
type Overwritten = Vec<(String, Option<Bytes>)>;

impl fmt::Debug for FaultyMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyMeta")
            .field("inner", &self.inner)
            .field("plan", &self.plan)
            .finish()
    }
}

impl FaultyMeta {
    /// Wraps `inner`, with no fault armed.
    pub fn new(inner: Arc<dyn MetaStore>) -> Self {
        Self {
            inner,
            plan: Arc::default(),
            relaxed: Arc::default(),
        }
    }

    /// Wraps `inner`, counting operations with `store`: arming either arms both, and
    /// the armed operation is the n-th of the two together.
    pub fn sharing(inner: Arc<dyn MetaStore>, store: &super::FaultyStore) -> Self {
        Self {
            plan: store.plan(),
            ..Self::new(inner)
        }
    }

    /// The restarted process after a crash: takes back, newest first, every relaxed
    /// batch no durable write has come after (as contract point 10 lets a store lose
    /// them), then disarms. The values come back under new versions, where a real
    /// crash would leave the old ones; a restarted registry reads versions afresh.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use wharf::testing::FaultyMeta;
    /// use wharf::{Durability, Expect, MemoryMetaStore, MetaStore, Write};
    ///
    /// let meta = FaultyMeta::new(Arc::new(MemoryMetaStore::new()));
    /// let relaxed = |key: &str| {
    ///     let put = Write::Put { key: key.into(), value: "x".into(), expect: Expect::Absent };
    ///     vec![put]
    /// };
    /// meta.batch(relaxed("carried"), Durability::Relaxed).await.unwrap();
    /// meta.put("durable", "y".into(), Expect::Absent).await.unwrap();
    /// meta.batch(relaxed("lost"), Durability::Relaxed).await.unwrap();
    /// meta.restart_after_crash().await.unwrap();
    /// assert!(meta.get("carried").await.unwrap().is_some());
    /// assert!(meta.get("lost").await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn restart_after_crash(&self) -> Result<()> {
        let lost = std::mem::take(&mut *self.relaxed.lock().await);
        for (key, before) in lost.into_iter().rev() {
            match before {
                Some(value) => drop(self.inner.put(&key, value, Expect::Any).await?),
                None => self.inner.delete(&key, Expect::Any).await?,
            }
        }
        self.disarm();
        Ok(())
    }

    /// Runs a durable write; once it succeeds, every relaxed batch before it is durable
    /// too.
    async fn durably<T>(&self, write: impl Future<Output = Result<T>>) -> Result<T> {
        let mut relaxed = self.relaxed.lock().await;
        let done = write.await?;
        relaxed.clear();
        Ok(done)
    }

    /// Arms a fault at operation `fail_at`, counting from zero again.
    pub fn arm(&self, fail_at: usize, mode: FaultMode) {
        self.plan.arm(fail_at, mode);
    }

    /// Disarms: every operation succeeds again (the "restarted process").
    pub fn disarm(&self) {
        self.plan.disarm();
    }

    /// Operations counted since the last [`FaultyMeta::arm`] (or creation).
    pub fn operations(&self) -> usize {
        self.plan.operations()
    }

    /// Whether an armed fault has fired.
    pub fn fired(&self) -> bool {
        self.plan.fired()
    }

    fn check(&self, what: &str) -> Result<()> {
        if let Some(n) = self.plan.strike() {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("injected metadata fault at operation {n} ({what})"),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl MetaStore for FaultyMeta {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.check("get")?;
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: Bytes, expect: Expect) -> Result<Version> {
        self.check("put")?;
        self.durably(self.inner.put(key, value, expect)).await
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<()> {
        self.check("delete")?;
        self.durably(self.inner.delete(key, expect)).await
    }

    fn atomic_batches(&self) -> bool {
        self.inner.atomic_batches()
    }

    async fn batch(
        &self,
        writes: Vec<Write>,
        durability: Durability,
    ) -> Result<Vec<Option<Version>>> {
        self.check("batch")?;
        if durability == Durability::Durable {
            return self.durably(self.inner.batch(writes, durability)).await;
        }
        let mut relaxed = self.relaxed.lock().await;
        let mut before = Vec::with_capacity(writes.len());
        for write in &writes {
            let held = self.inner.get(write.key()).await?;
            before.push((write.key().to_owned(), held.map(|v| v.value)));
        }
        let versions = self.inner.batch(writes, durability).await?;
        relaxed.extend(before);
        Ok(versions)
    }

    async fn sync(&self) -> Result<()> {
        self.check("sync")?;
        self.durably(self.inner.sync()).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        self.check("list")?;
        self.inner.list(prefix, start_after, limit).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.check("list")?;
        self.inner.list_keys(prefix, start_after, limit).await
    }
}
