//! Background jobs: garbage collection step by step at a set pace, each repository's
//! lifecycle policy once per interval, and upload expiry. With several processes on one
//! store, each job runs under a lease in metadata (`Registry::acquire_lease`), renewed
//! between steps, so one process runs it at a time and another takes over when the
//! holder dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use wharf::{GcCursor, GcOptions, Lease, Registry};

use crate::operations::SchedulerConfig;

/// How long a job's lease lasts without renewal: a dead holder's job waits this long.
const LEASE: Duration = Duration::from_secs(60);

/// What the jobs did, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct JobCounts {
    pub(crate) gc_passes: AtomicU64,
    pub(crate) gc_examined: AtomicU64,
    pub(crate) gc_reclaimed_blobs: AtomicU64,
    pub(crate) gc_reclaimed_bytes: AtomicU64,
    pub(crate) lifecycle_repositories: AtomicU64,
    pub(crate) lifecycle_expired: AtomicU64,
    pub(crate) lifecycle_transitioned: AtomicU64,
    pub(crate) uploads_expired: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// Starts the jobs; abort the handles to stop them.
pub(crate) fn start(
    registry: &Registry,
    config: &SchedulerConfig,
    upload_expiry: Duration,
    holder: &str,
    counts: &Arc<JobCounts>,
) -> Vec<JoinHandle<()>> {
    let job = |name: &'static str| Job {
        registry: registry.clone(),
        holder: holder.to_owned(),
        counts: counts.clone(),
        name,
    };
    let expiry_every = (upload_expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    vec![
        tokio::spawn(job("gc").collect_garbage(config.gc_interval, config.gc_pace)),
        tokio::spawn(
            job("lifecycle").apply_lifecycle(config.lifecycle_interval, config.lifecycle_now),
        ),
        tokio::spawn(job("upload-expiry").expire_uploads(expiry_every)),
    ]
}

struct Job {
    registry: Registry,
    holder: String,
    counts: Arc<JobCounts>,
    name: &'static str,
}

impl Job {
    async fn lease(&self) -> Option<Lease> {
        match self
            .registry
            .acquire_lease(self.name, &self.holder, LEASE)
            .await
        {
            Ok(lease) => lease,
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Renews the lease between steps; `false` if it was lost and the job must stop.
    async fn renew(&self, lease: &mut Lease) -> bool {
        match self.registry.renew_lease(lease, LEASE).await {
            Ok(held) => held,
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    async fn release(&self, lease: Lease) {
        if let Err(e) = self.registry.release_lease(lease).await {
            self.failed(&e);
        }
    }

    fn failed(&self, error: &wharf::Error) {
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{}: {error}", self.name);
    }

    /// One pass of garbage collection per `interval`, a step per `pace`.
    async fn collect_garbage(self, interval: Duration, pace: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let Some(mut lease) = self.lease().await else {
                continue;
            };
            let options = GcOptions::default();
            let mut cursor: Option<GcCursor> = None;
            loop {
                match self.registry.gc_step(&options, cursor.as_ref()).await {
                    Ok((report, next)) => {
                        let c = &self.counts;
                        c.gc_examined.fetch_add(report.examined, Ordering::Relaxed);
                        c.gc_reclaimed_blobs
                            .fetch_add(report.reclaimed_blobs, Ordering::Relaxed);
                        c.gc_reclaimed_bytes
                            .fetch_add(report.reclaimed_stored_bytes, Ordering::Relaxed);
                        cursor = next;
                    }
                    Err(e) => {
                        self.failed(&e);
                        break;
                    }
                }
                if cursor.is_none() {
                    self.counts.gc_passes.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                if !self.renew(&mut lease).await {
                    break;
                }
                tokio::time::sleep(pace).await;
            }
            self.release(lease).await;
        }
    }

    /// Each repository's lifecycle policy once per `interval` (at start too with `now`),
    /// as ECR evaluates them within a day.
    async fn apply_lifecycle(self, interval: Duration, now: bool) {
        if !now {
            tokio::time::sleep(interval).await;
        }
        loop {
            if let Some(mut lease) = self.lease().await {
                self.lifecycle_pass(&mut lease).await;
                self.release(lease).await;
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn lifecycle_pass(&self, lease: &mut Lease) {
        let mut last = None;
        loop {
            let page = match self.registry.list_repositories(100, last.as_ref()).await {
                Ok(page) => page,
                Err(e) => return self.failed(&e),
            };
            let Some(end) = page.last().cloned() else {
                return;
            };
            for repo in page {
                match self.registry.lifecycle_policy(&repo).await {
                    Ok(Some(_)) => {}
                    Ok(None) => continue,
                    Err(e) => {
                        self.failed(&e);
                        continue;
                    }
                }
                match self
                    .registry
                    .apply_lifecycle(&repo, SystemTime::now())
                    .await
                {
                    Ok(report) => {
                        let c = &self.counts;
                        c.lifecycle_repositories.fetch_add(1, Ordering::Relaxed);
                        let expired = report.expired.len() + report.cascade_expired.len();
                        c.lifecycle_expired
                            .fetch_add(expired as u64, Ordering::Relaxed);
                        c.lifecycle_transitioned
                            .fetch_add(report.transitioned.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => self.failed(&e),
                }
                if !self.renew(lease).await {
                    return;
                }
            }
            last = Some(end);
        }
    }

    /// Expires abandoned upload sessions every `every`.
    async fn expire_uploads(self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let Some(lease) = self.lease().await else {
                continue;
            };
            match self.registry.expire_uploads().await {
                Ok(report) => {
                    let n = report.sessions + report.orphaned_staging;
                    self.counts
                        .uploads_expired
                        .fetch_add(n as u64, Ordering::Relaxed);
                    if n > 0 {
                        tracing::info!(
                            "expired {} abandoned uploads and {} orphaned staging areas",
                            report.sessions,
                            report.orphaned_staging
                        );
                    }
                }
                Err(e) => self.failed(&e),
            }
            self.release(lease).await;
        }
    }
}
