//! Webhooks: a [`Subscriber`] that POSTs each event, rendered in the webhook's format and
//! signed with its secret, and counts what it did for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use wharf::events::format::{Format, Origin};
use wharf::events::webhook::{self, EVENT_ID_HEADER, Filter, SIGNATURE_HEADER};
use wharf::{Error, ErrorKind, Event, EventRecord, Subscriber};

use crate::operations::WebhookConfig;

/// Delivery attempts and refusals, over every webhook.
#[derive(Debug, Default)]
pub(crate) struct DeliveryCounts {
    pub(crate) attempts: AtomicU64,
    pub(crate) failures: AtomicU64,
}

/// One webhook.
#[derive(Debug)]
pub(crate) struct Webhook {
    name: String,
    url: String,
    secret: Option<Vec<u8>>,
    format: Format,
    filter: Filter,
    origin: Origin,
    client: reqwest::Client,
    counts: Arc<DeliveryCounts>,
}

impl Webhook {
    pub(crate) fn new(
        config: &WebhookConfig,
        origin: Origin,
        counts: Arc<DeliveryCounts>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("webhook {}: {e}", config.url))?;
        Ok(Self {
            name: config.name.clone(),
            url: config.url.clone(),
            secret: config.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            format: config.format,
            filter: config.filter.clone(),
            origin,
            client,
            counts,
        })
    }
}

fn refused(message: String) -> Error {
    Error::new(ErrorKind::Storage, message)
}

#[async_trait]
impl Subscriber for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event: &Event) -> bool {
        self.filter.matches(event) && self.format.carries(event)
    }

    async fn deliver(&self, record: &EventRecord) -> wharf::Result<()> {
        let Some(body) = self.format.render(record, &self.origin) else {
            return Ok(());
        };
        let body = serde_json::to_vec(&body).expect("JSON values serialize");
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, self.format.content_type())
            .header(EVENT_ID_HEADER, record.id.as_str());
        if let Some(secret) = &self.secret {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request.header(SIGNATURE_HEADER, webhook::sign(secret, now, &body));
        }
        self.counts.attempts.fetch_add(1, Ordering::Relaxed);
        let outcome = match request.body(body).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(refused(format!(
                "POST {} answered {}",
                self.url,
                response.status()
            ))),
            Err(e) => Err(refused(format!("POST {}: {e}", self.url))),
        };
        if outcome.is_err() {
            self.counts.failures.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}
