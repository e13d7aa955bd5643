//! `"replication"` in `--config`: rules that copy every push under some repository
//! prefixes to another registry, from the outbox, retried until it arrives (needs the
//! `remote` feature: `cargo run --release --features server,remote --bin wharf-registry`).
//!
//! ```json
//! "replication": [{"destination": "dr-site", "url": "https://dr.example",
//!                  "user": "replicator", "password_env": "DR_PASSWORD",
//!                  "repository_prefixes": ["prod/"], "deletes": false}]
//! ```

use std::sync::Arc;

use serde::Deserialize;
use wharf::{Registry, Subscriber};

/// One rule as the file writes it. (Without the `remote` feature a rule is refused at
/// start, its fields unread.)
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
#[serde(deny_unknown_fields)]
pub(crate) struct FileReplication {
    destination: String,
    url: String,
    user: Option<String>,
    /// The environment variable holding the password, so the file holds no secret.
    password_env: Option<String>,
    /// A PEM file of a CA to trust for the destination.
    ca_cert: Option<String>,
    #[serde(default)]
    repository_prefixes: Vec<String>,
    #[serde(default)]
    deletes: bool,
}

/// The subscribers that carry out `rules`.
#[cfg(feature = "remote")]
pub(crate) fn subscribers(
    registry: &Registry,
    rules: &[FileReplication],
) -> Result<Vec<Arc<dyn Subscriber>>, String> {
    use crate::remotes::RemoteFields;
    use wharf::ReplicationRule;

    let mut subscribers: Vec<Arc<dyn Subscriber>> = Vec::new();
    for rule in rules {
        let what = format!("replication to {:?}", rule.destination);
        let remote = RemoteFields {
            url: &rule.url,
            user: rule.user.as_deref(),
            password_env: rule.password_env.as_deref(),
            ca_cert: rule.ca_cert.as_deref(),
        }
        .connect(&what)?;
        let replicator = registry
            .replicator(ReplicationRule {
                destination: rule.destination.clone(),
                remote: Arc::new(remote),
                repository_prefixes: rule.repository_prefixes.clone(),
                replicate_deletes: rule.deletes,
            })
            .map_err(|e| format!("{what}: {}", e.message()))?;
        subscribers.push(replicator);
    }
    Ok(subscribers)
}

/// Without the `remote` feature there is no client to replicate with.
#[cfg(not(feature = "remote"))]
pub(crate) fn subscribers(
    _registry: &Registry,
    rules: &[FileReplication],
) -> Result<Vec<Arc<dyn Subscriber>>, String> {
    match rules.first() {
        None => Ok(Vec::new()),
        Some(rule) => Err(format!(
            "replication to {:?} needs the remote feature: cargo run --release --features server,remote --bin wharf-registry",
            rule.destination
        )),
    }
}
