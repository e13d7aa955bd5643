//! `/metrics`: counters and histograms in the Prometheus text format (version 0.0.4),
//! kept in memory for the life of the process.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::StatusCode;
use hyper::header::CONTENT_TYPE;
use wharf::Registry;

use crate::background::Background;
use crate::http::{self, Response};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Storage and metadata failures answered to clients (counted where errors become
/// responses).
pub(crate) static STORAGE_ERRORS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Default)]
struct Latency {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Requests {
    /// (endpoint, method, status) -> requests.
    by_status: BTreeMap<(&'static str, String, u16), u64>,
    latency: BTreeMap<&'static str, Latency>,
}

/// What the server counts.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<Requests>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn record(
        &self,
        endpoint: &'static str,
        method: &str,
        status: StatusCode,
        took: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests
            .by_status
            .entry((endpoint, method.to_owned(), status.as_u16()))
            .or_default() += 1;
        let latency = requests.latency.entry(endpoint).or_default();
        let seconds = took.as_secs_f64();
        for (bucket, bound) in latency.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        latency.count += 1;
        latency.sum += seconds;
    }

    /// The exposition.
    pub(crate) async fn render(&self, registry: &Registry, background: &Background) -> Response {
        let mut out = String::new();
        self.render_requests(&mut out);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "wharf_http_request_bytes_total",
            "Request body bytes received (by Content-Length).",
            self.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "wharf_http_response_bytes_total",
            "Response body bytes sent (by Content-Length).",
            self.bytes_out.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "wharf_uploads_open",
            "Upload writers held open between chunks.",
            registry.open_uploads() as u64,
        );
        counter(
            &mut out,
            "wharf_storage_errors_total",
            "Requests that failed on the blob or metadata store.",
            STORAGE_ERRORS.load(Ordering::Relaxed),
        );
        let jobs = &background.job_counts;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "wharf_gc_passes_total",
            "Garbage-collection passes finished.",
            load(&jobs.gc_passes),
        );
        counter(
            &mut out,
            "wharf_gc_examined_total",
            "Blobs garbage collection examined.",
            load(&jobs.gc_examined),
        );
        counter(
            &mut out,
            "wharf_gc_reclaimed_blobs_total",
            "Blobs garbage collection removed.",
            load(&jobs.gc_reclaimed_blobs),
        );
        counter(
            &mut out,
            "wharf_gc_reclaimed_bytes_total",
            "Stored bytes garbage collection removed.",
            load(&jobs.gc_reclaimed_bytes),
        );
        counter(
            &mut out,
            "wharf_lifecycle_repositories_total",
            "Lifecycle policy applications.",
            load(&jobs.lifecycle_repositories),
        );
        counter(
            &mut out,
            "wharf_lifecycle_expired_images_total",
            "Images lifecycle policies expired.",
            load(&jobs.lifecycle_expired),
        );
        counter(
            &mut out,
            "wharf_lifecycle_transitioned_images_total",
            "Images lifecycle policies archived.",
            load(&jobs.lifecycle_transitioned),
        );
        counter(
            &mut out,
            "wharf_uploads_expired_total",
            "Abandoned uploads and staging areas removed.",
            load(&jobs.uploads_expired),
        );
        counter(
            &mut out,
            "wharf_job_errors_total",
            "Background job failures.",
            load(&jobs.errors),
        );
        let deliveries = &background.deliveries;
        counter(
            &mut out,
            "wharf_event_delivery_attempts_total",
            "Webhook requests made.",
            load(&deliveries.attempts),
        );
        counter(
            &mut out,
            "wharf_event_delivery_failures_total",
            "Webhook requests refused or failed.",
            load(&deliveries.failures),
        );
        if let Some(dispatcher) = background.dispatcher() {
            let _ = writeln!(
                out,
                "# HELP wharf_outbox_backlog Events a webhook has still to receive.\n# TYPE wharf_outbox_backlog gauge"
            );
            match dispatcher.backlog().await {
                Ok(backlog) => {
                    for (name, depth) in backlog {
                        let _ =
                            writeln!(out, "wharf_outbox_backlog{{subscriber=\"{name}\"}} {depth}");
                    }
                }
                Err(e) => tracing::warn!("/metrics: reading the outbox backlog: {e}"),
            }
        }
        let builder = http::response(StatusCode::OK)
            .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
        http::finish(builder, http::full(out))
    }

    fn render_requests(&self, out: &mut String) {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP wharf_http_requests_total Requests answered, by endpoint, method and status.\n# TYPE wharf_http_requests_total counter"
        );
        let mut denials = 0;
        for ((endpoint, method, status), n) in &requests.by_status {
            let _ = writeln!(
                out,
                "wharf_http_requests_total{{endpoint=\"{endpoint}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
            if *status == 403 {
                denials += n;
            }
        }
        let _ = writeln!(
            out,
            "# HELP wharf_authorization_denials_total Requests refused by authorization (403).\n# TYPE wharf_authorization_denials_total counter\nwharf_authorization_denials_total {denials}"
        );
        let _ = writeln!(
            out,
            "# HELP wharf_http_request_duration_seconds Time to answer a request (to its response headers), by endpoint.\n# TYPE wharf_http_request_duration_seconds histogram"
        );
        for (endpoint, latency) in &requests.latency {
            for (bound, n) in BUCKETS.iter().zip(latency.buckets) {
                let _ = writeln!(
                    out,
                    "wharf_http_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "wharf_http_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "wharf_http_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {}",
                latency.sum
            );
            let _ = writeln!(
                out,
                "wharf_http_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {}",
                latency.count
            );
        }
    }
}
