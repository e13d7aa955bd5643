//! `"pull_through"` in `--config`: repositories under a prefix cached from an upstream
//! registry, as ECR's pull-through cache rules have it (needs the `remote` feature:
//! `cargo run --release --features server,remote --bin wharf-registry`).
//!
//! ```json
//! "pull_through": [{"prefix": "hub/", "url": "https://registry-1.docker.io",
//!                   "upstream_prefix": "", "tag_ttl": "24h",
//!                   "user": "me", "password_env": "HUB_TOKEN"}]
//! ```
//!
//! `docker pull localhost:5000/hub/library/alpine:3.20` then fetches
//! `library/alpine:3.20` upstream the first time and serves it from here after that.

use serde::Deserialize;
use wharf::Registry;

/// One rule as the file writes it. (Without the `remote` feature a rule is refused at
/// start, its fields unread.)
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(feature = "remote"), allow(dead_code))]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePullThrough {
    /// Repositories whose names start with this (ending in `/`).
    prefix: String,
    url: String,
    /// Put in front of the rest of the name upstream.
    #[serde(default)]
    upstream_prefix: String,
    /// How long a tag is served without asking upstream (default 24h).
    tag_ttl: Option<String>,
    user: Option<String>,
    /// The environment variable holding the password, so the file holds no secret.
    password_env: Option<String>,
    /// A PEM file of a CA to trust for the upstream.
    ca_cert: Option<String>,
}

/// Gives `registry` the rules (none: nothing to do).
#[cfg(feature = "remote")]
pub(crate) fn install(registry: &Registry, rules: &[FilePullThrough]) -> Result<(), String> {
    use std::sync::Arc;

    use crate::remotes::RemoteFields;
    use wharf::{DEFAULT_TAG_TTL, PullThroughRule, PullThroughSettings};

    if rules.is_empty() {
        return Ok(());
    }
    let mut built = Vec::new();
    for rule in rules {
        let what = format!("pull-through rule {:?}", rule.prefix);
        let upstream = RemoteFields {
            url: &rule.url,
            user: rule.user.as_deref(),
            password_env: rule.password_env.as_deref(),
            ca_cert: rule.ca_cert.as_deref(),
        }
        .connect(&what)?;
        let tag_ttl = match &rule.tag_ttl {
            Some(text) => crate::config::duration(&format!("{what}: tag_ttl"), text)?,
            None => DEFAULT_TAG_TTL,
        };
        built.push(PullThroughRule {
            prefix: rule.prefix.clone(),
            upstream: Arc::new(upstream),
            upstream_prefix: rule.upstream_prefix.clone(),
            tag_ttl,
        });
    }
    registry
        .set_pull_through(PullThroughSettings::new(built))
        .map_err(|e| e.message().to_owned())
}

/// Without the `remote` feature there is no client to fetch with.
#[cfg(not(feature = "remote"))]
pub(crate) fn install(_registry: &Registry, rules: &[FilePullThrough]) -> Result<(), String> {
    match rules.first() {
        None => Ok(()),
        Some(rule) => Err(format!(
            "pull-through rule {:?} needs the remote feature: cargo run --release --features server,remote --bin wharf-registry",
            rule.prefix
        )),
    }
}
