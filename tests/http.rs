//! The registry server (`src/bin/wharf-registry`) as a process, driven by plain HTTP and by
//! real clients (oci-client, skopeo, podman): protocol, limits, hostile clients.

#[path = "common/mod.rs"]
mod common;

#[path = "http/api.rs"]
mod api;
#[path = "http/api_manifests.rs"]
mod api_manifests;
#[path = "http/auth.rs"]
mod auth;
#[path = "http/cli.rs"]
mod cli;
#[path = "http/ecr.rs"]
mod ecr;
#[path = "http/ecr_cli.rs"]
mod ecr_cli;
#[path = "http/ecr_kms.rs"]
mod ecr_kms;
#[path = "http/events.rs"]
mod events;
#[path = "http/killed.rs"]
mod killed;
#[path = "http/limits.rs"]
mod limits;
#[path = "http/oci_client.rs"]
mod oci_client;
#[path = "http/podman.rs"]
mod podman;
#[path = "http/protocol.rs"]
mod protocol;
#[cfg(feature = "remote")]
#[path = "http/pull_through.rs"]
mod pull_through;
#[cfg(feature = "remote")]
#[path = "http/remote_copy.rs"]
mod remote_copy;
#[cfg(feature = "remote")]
#[path = "http/replication.rs"]
mod replication;
#[path = "http/scanning.rs"]
mod scanning;
#[path = "http/server.rs"]
mod server;
#[path = "http/skopeo.rs"]
mod skopeo;
#[path = "http/tls.rs"]
mod tls;
#[path = "http/tokens.rs"]
mod tokens;
