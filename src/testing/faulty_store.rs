//! An `ObjectStore` wrapper that injects failures at a chosen operation.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

use super::fault_plan::{FaultMode, FaultPlan};

/// Wraps an `ObjectStore` and fails operation number `fail_at` (counting from 0) and,
/// in [`FaultMode::Crash`], everything after it. Every call that reaches the backend
/// counts: puts, each multipart part and completion, gets, heads, lists, deletes, copies
/// and renames. A failed operation does nothing.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use object_store::{ObjectStoreExt, memory::InMemory, path::Path};
/// use wharf::testing::{FaultMode, FaultyStore};
///
/// let store = FaultyStore::new(Arc::new(InMemory::new()));
/// store.arm(1, FaultMode::Crash);
/// assert!(store.put(&Path::from("a"), "x".into()).await.is_ok()); // operation 0
/// assert!(store.put(&Path::from("b"), "x".into()).await.is_err()); // 1: the crash
/// assert!(store.get(&Path::from("a")).await.is_err()); // dead from here on
/// # });
/// ```
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    plan: Arc<FaultPlan>,
    /// Every successful get: the object and the byte range it returned.
    gets: std::sync::Mutex<Vec<(Path, Range<u64>)>>,
}

impl FaultyStore {
    /// Wraps `inner`, with no fault armed.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            state: Arc::new(State {
                plan: Arc::default(),
                gets: Default::default(),
            }),
        }
    }

    /// Arms a fault at operation `fail_at`, counting from the operations done so far
    /// reset to zero.
    pub fn arm(&self, fail_at: usize, mode: FaultMode) {
        self.state.plan.arm(fail_at, mode);
    }

    /// Disarms: every operation succeeds again (the "restarted process").
    pub fn disarm(&self) {
        self.state.plan.disarm();
    }

    /// Operations counted since the last [`FaultyStore::arm`] (or creation).
    pub fn operations(&self) -> usize {
        self.state.plan.operations()
    }

    /// Whether an armed fault has fired.
    pub fn fired(&self) -> bool {
        self.state.plan.fired()
    }

    /// Takes the record of successful gets so far (object and byte range returned), to
    /// prove how much a read fetched.
    pub fn take_gets(&self) -> Vec<(Path, Range<u64>)> {
        std::mem::take(&mut *self.state.gets.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The plan its operations count in, for a [`FaultyMeta`](super::FaultyMeta) to
    /// share.
    pub(super) fn plan(&self) -> Arc<FaultPlan> {
        self.state.plan.clone()
    }

    fn check(&self, what: &str) -> object_store::Result<()> {
        self.state.check(what)
    }
}

impl State {
    fn check(&self, what: &str) -> object_store::Result<()> {
        if let Some(n) = self.plan.strike() {
            return Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: format!("injected fault at operation {n} ({what})").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    state: Arc<State>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match self.state.check("put_part") {
            Ok(()) => self.inner.put_part(data),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.state.check("complete")?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.state.check("abort")?;
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check("put")?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check("put_multipart")?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            state: self.state.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check("get")?;
        let got = self.inner.get_opts(location, options).await?;
        self.state
            .gets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((location.clone(), got.range.clone()));
        Ok(got)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check("get_ranges")?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let state = self.state.clone();
        let checked = locations
            .map(move |l| {
                state.check("delete")?;
                l
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check("list") {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check("list") {
            Ok(()) => self.inner.list_with_offset(prefix, offset),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check("list")?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check("copy")?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.check("rename")?;
        self.inner.rename_opts(from, to, options).await
    }
}
