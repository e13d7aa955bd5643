//! What runs beside the requests: event delivery to the webhooks, the scheduled jobs,
//! and the health endpoints that say whether the process and its stores answer.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf::events::format::Origin;
use wharf::{DispatchOptions, Dispatcher, Registry, Subscriber};

use crate::config::Config;
use crate::http::{self, Response};
use crate::scheduler::{self, JobCounts};
use crate::webhooks::{DeliveryCounts, Webhook};

/// The running background work.
pub(crate) struct Background {
    dispatcher: Option<Arc<Dispatcher>>,
    delivery: std::sync::Mutex<Option<JoinHandle<()>>>,
    jobs: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    pub(crate) deliveries: Arc<DeliveryCounts>,
    pub(crate) job_counts: Arc<JobCounts>,
}

impl Background {
    /// Starts delivery (when webhooks are configured) and the scheduled jobs.
    pub(crate) async fn start(
        registry: &Registry,
        config: &Config,
        host: &str,
    ) -> Result<Self, String> {
        // Unique per process: leases tell processes apart by it.
        let holder = format!(
            "{host}-{}-{:08x}",
            std::process::id(),
            getrandom::u32().unwrap_or_default()
        );
        let deliveries = Arc::new(DeliveryCounts::default());
        let account = registry.resource_account();
        let origin = Origin {
            account: account.account.clone(),
            region: account.region.clone(),
            source: format!("//{host}"),
            host: host.to_owned(),
        };
        let mut subscribers: Vec<Arc<dyn Subscriber>> = Vec::new();
        for hook in &config.operations.webhooks {
            subscribers.push(Arc::new(Webhook::new(
                hook,
                origin.clone(),
                deliveries.clone(),
            )?));
        }
        subscribers.extend(crate::replication::subscribers(
            registry,
            &config.operations.replication,
        )?);
        let (stop, stopped) = watch::channel(false);
        let (dispatcher, delivery) = if subscribers.is_empty() {
            (None, None)
        } else {
            let options = DispatchOptions {
                max_age: config.operations.max_event_age,
                holder: holder.clone(),
                ..DispatchOptions::default()
            };
            let dispatcher = Arc::new(
                registry
                    .dispatcher(subscribers, options)
                    .await
                    .map_err(|e| format!("starting event delivery: {e}"))?,
            );
            let running = dispatcher.clone();
            let mut stopped = stopped.clone();
            let task = tokio::spawn(async move {
                running
                    .run(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
            });
            (Some(dispatcher), Some(task))
        };
        let job_counts = Arc::new(JobCounts::default());
        let mut jobs = scheduler::start(
            registry,
            &config.operations.scheduler,
            config.upload_expiry,
            &holder,
            &job_counts,
        );
        jobs.push(tokio::spawn(crate::scanning::refresh(
            registry.clone(),
            config.operations.scanning.clone(),
            holder.clone(),
        )));
        Ok(Self {
            dispatcher,
            delivery: std::sync::Mutex::new(delivery),
            jobs,
            stop,
            deliveries,
            job_counts,
        })
    }

    /// The dispatcher, when webhooks are configured.
    pub(crate) fn dispatcher(&self) -> Option<&Arc<Dispatcher>> {
        self.dispatcher.as_ref()
    }

    /// Stops the jobs, and delivery after it gives its subscribers up.
    pub(crate) async fn stop(&self) {
        for job in &self.jobs {
            job.abort();
        }
        let _ = self.stop.send(true);
        let task = self
            .delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// `/healthz`: the process answers.
pub(crate) fn healthz() -> Response {
    http::finish(http::response(StatusCode::OK), http::full("ok\n"))
}

/// `/readyz`: the metadata store and the blob store answer a read.
pub(crate) async fn readyz(registry: &Registry) -> Response {
    let meta = registry.meta_store().get("event-head").await;
    let probe = wharf::Digest::of(wharf::Algorithm::Sha256, b"");
    let blobs = registry.blob_store().stat(&probe).await;
    match (meta, blobs) {
        (Ok(_), Ok(_)) => http::finish(http::response(StatusCode::OK), http::full("ready\n")),
        (meta, blobs) => {
            let mut why = String::new();
            if let Err(e) = meta {
                why.push_str(&format!("metadata store: {e}\n"));
            }
            if let Err(e) = blobs {
                why.push_str(&format!("blob store: {e}\n"));
            }
            http::finish(
                http::response(StatusCode::SERVICE_UNAVAILABLE),
                http::full(why),
            )
        }
    }
}
