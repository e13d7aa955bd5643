//! `--config FILE` and the operations flags: webhooks and the background jobs.
//!
//! The file is JSON:
//!
//! ```json
//! {
//!   "webhooks": [{
//!     "name": "ci", "url": "https://ci.example/hook", "secret": "…",
//!     "format": "ecr", "timeout": "10s",
//!     "filter": {"events": ["manifest_pushed"], "repositories": ["team/*"], "tags": ["v*"]}
//!   }],
//!   "events": {"max_age": "24h"},
//!   "scheduler": {"gc_interval": "1h", "gc_pace": "1s", "lifecycle_interval": "24h"},
//!   "scanning": {"vuln_db": "/var/lib/osv", "scan_on_push": true, "refresh": "1h"},
//!   "replication": […], "pull_through": […]
//! }
//! ```
//!
//! `--webhook URL` (repeatable), `--webhook-secret`, `--webhook-format` and the scheduler
//! flags add to or override it. A webhook without a name is named after its URL, so its
//! delivery cursor survives a restart and a reordering. `replication.rs` and
//! `pull_through.rs` show their rules.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use wharf::events::format::Format;
use wharf::events::webhook::Filter;

use crate::config::duration;

/// How long a webhook request may take by default.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One webhook, checked.
#[derive(Debug, Clone)]
pub(crate) struct WebhookConfig {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) secret: Option<String>,
    pub(crate) format: Format,
    pub(crate) filter: Filter,
    pub(crate) timeout: Duration,
}

/// The background jobs' pace.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerConfig {
    /// Time between garbage-collection passes.
    pub(crate) gc_interval: Duration,
    /// Time between the steps of one pass.
    pub(crate) gc_pace: Duration,
    /// Time between applications of each repository's lifecycle policy.
    pub(crate) lifecycle_interval: Duration,
    /// Apply lifecycle policies at start instead of one interval later.
    pub(crate) lifecycle_now: bool,
}

/// Webhooks, event delivery, the scheduler and the log.
#[derive(Debug, Clone)]
pub(crate) struct Operations {
    /// `--log-format json`: one JSON object per line, with time, level and spans.
    pub(crate) log_json: bool,
    pub(crate) webhooks: Vec<WebhookConfig>,
    /// An event a webhook keeps refusing goes to its dead letters after this long.
    pub(crate) max_event_age: Duration,
    pub(crate) scheduler: SchedulerConfig,
    /// The scanner and its vulnerability data.
    pub(crate) scanning: crate::scanning::ScanningConfig,
    /// Replication rules, started with the event dispatcher.
    pub(crate) replication: Vec<crate::replication::FileReplication>,
    /// Pull-through cache rules.
    pub(crate) pull_through: Vec<crate::pull_through::FilePullThrough>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    webhooks: Vec<FileWebhook>,
    #[serde(default)]
    events: FileEvents,
    #[serde(default)]
    scheduler: FileScheduler,
    #[serde(default)]
    scanning: crate::scanning::FileScanning,
    #[serde(default)]
    replication: Vec<crate::replication::FileReplication>,
    #[serde(default)]
    pull_through: Vec<crate::pull_through::FilePullThrough>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebhook {
    name: Option<String>,
    url: String,
    secret: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    filter: Filter,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvents {
    max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduler {
    gc_interval: Option<String>,
    gc_pace: Option<String>,
    lifecycle_interval: Option<String>,
}

/// The name a webhook without one gets: stable for its URL.
fn name_for(url: &str) -> String {
    let digest = wharf::Digest::of(wharf::Algorithm::Sha256, url.as_bytes());
    format!("webhook-{}", &digest.hex()[..12])
}

fn check_url(what: &str, url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "{what} must be an http:// or https:// URL, not {url:?}"
        ))
    }
}

impl Operations {
    /// From `--config` (if given) and the flags; `values(flag)` is every value a flag was
    /// given, in order.
    pub(crate) fn from_flags(values: impl Fn(&str) -> Vec<String>) -> Result<Self, String> {
        let last = |flag: &str| values(flag).pop();
        let file = match last("--config") {
            Some(path) => load(Path::new(&path))?,
            None => File::default(),
        };
        let mut webhooks = Vec::new();
        for (i, hook) in file.webhooks.into_iter().enumerate() {
            let what = format!("webhook {} in --config", i + 1);
            check_url(&what, &hook.url)?;
            hook.filter
                .validate()
                .map_err(|e| format!("{what}: {}", e.message()))?;
            webhooks.push(WebhookConfig {
                name: hook.name.unwrap_or_else(|| name_for(&hook.url)),
                format: match hook.format {
                    Some(f) => f
                        .parse()
                        .map_err(|e: wharf::Error| format!("{what}: {}", e.message()))?,
                    None => Format::default(),
                },
                timeout: match hook.timeout {
                    Some(t) => duration(&format!("{what} timeout"), &t)?,
                    None => DEFAULT_WEBHOOK_TIMEOUT,
                },
                url: hook.url,
                secret: hook.secret,
                filter: hook.filter,
            });
        }
        let secret = last("--webhook-secret");
        let format = match last("--webhook-format") {
            Some(f) => f
                .parse()
                .map_err(|e: wharf::Error| format!("--webhook-format: {}", e.message()))?,
            None => Format::default(),
        };
        for url in values("--webhook") {
            check_url("--webhook", &url)?;
            webhooks.push(WebhookConfig {
                name: name_for(&url),
                url,
                secret: secret.clone(),
                format,
                filter: Filter::default(),
                timeout: DEFAULT_WEBHOOK_TIMEOUT,
            });
        }
        let mut names: Vec<&str> = webhooks.iter().map(|w| w.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "two webhooks are named {:?} (the same URL twice?)",
                twice[0]
            ));
        }
        let pick = |flag: &str, from_file: Option<String>, default: Duration| match last(flag)
            .map(|v| (flag.to_owned(), v))
            .or(from_file.map(|v| (format!("{flag} in --config"), v)))
        {
            Some((name, v)) => duration(&name, &v),
            None => Ok(default),
        };
        let log_json = match last("--log-format").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(format!("--log-format must be text or json, not {other:?}")),
        };
        let scanning = crate::scanning::ScanningConfig::from_flags(&values, file.scanning)?;
        Ok(Self {
            scanning,
            replication: file.replication,
            pull_through: file.pull_through,
            log_json,
            webhooks,
            max_event_age: pick(
                "--max-event-age",
                file.events.max_age,
                Duration::from_secs(86_400),
            )?,
            scheduler: SchedulerConfig {
                gc_interval: pick(
                    "--gc-interval",
                    file.scheduler.gc_interval,
                    Duration::from_secs(3600),
                )?,
                gc_pace: pick("--gc-pace", file.scheduler.gc_pace, Duration::from_secs(1))?,
                lifecycle_interval: pick(
                    "--lifecycle-interval",
                    file.scheduler.lifecycle_interval,
                    Duration::from_secs(86_400),
                )?,
                lifecycle_now: !values("--lifecycle-now").is_empty(),
            },
        })
    }
}

fn load(path: &Path) -> Result<File, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

/// The operations flags, for `--help`.
pub(crate) const USAGE: &str = "
Events and background jobs:
  --webhook URL          POST every change's event to URL (repeatable); delivered at
                         least once, in commit order, retried with backoff, kept in the
                         metadata store across restarts
  --webhook-secret S     sign webhook bodies: Wharf-Signature: t=<unix>,v1=<hex of
                         HMAC-SHA256(S, \"<t>.<body>\")>
  --webhook-format F     ecr (EventBridge, default), cloudevents or distribution
  --max-event-age DUR    an event a webhook refuses this long goes to its dead letters
                         (default 24h)
  --config FILE          JSON: webhooks with names, secrets, formats, filters and
                         timeouts; event and scheduler settings (see the README)
  --gc-interval DUR      time between garbage-collection passes (default 1h)
  --gc-pace DUR          time between the steps of a pass (default 1s)
  --lifecycle-interval DUR  apply each repository's lifecycle policy this often
                         (default 24h)
  --lifecycle-now        and once at start
  With several processes on one store, a lease in metadata lets one run each job.
  --log-format F         text (default: one line per request, ending in its id; lines
                         logged while answering it start request{id=…}) or json
";
