//! The library through its public API: the registry facade, repositories, manifests and
//! tags, lifecycle, garbage collection, blobs at rest, the codec, and every plug-in's
//! conformance suite. One test binary (each former file is a module), so the suite links
//! once.

#[path = "common/mod.rs"]
mod common;

#[path = "library/access_evaluation.rs"]
mod access_evaluation;
#[path = "library/access_policy.rs"]
mod access_policy;
#[path = "library/access_registry.rs"]
mod access_registry;
#[path = "library/access_token.rs"]
mod access_token;
#[path = "library/at_rest.rs"]
mod at_rest;
#[path = "library/at_rest_rotation.rs"]
mod at_rest_rotation;
#[path = "library/codec.rs"]
mod codec;
#[path = "library/codec_vectors.rs"]
mod codec_vectors;
#[path = "library/compose_local.rs"]
mod compose_local;
#[path = "library/concurrent_uploads.rs"]
mod concurrent_uploads;
#[path = "library/conformance.rs"]
mod conformance;
#[path = "library/events.rs"]
mod events;
#[path = "library/events_delivery.rs"]
mod events_delivery;
#[path = "library/fuzz_corpus.rs"]
mod fuzz_corpus;
#[path = "library/gc.rs"]
mod gc;
#[path = "library/gc_push_deadline.rs"]
mod gc_push_deadline;
#[path = "library/inventory.rs"]
mod inventory;
#[path = "library/keys.rs"]
mod keys;
#[path = "library/layering.rs"]
mod layering;
#[path = "library/lifecycle.rs"]
mod lifecycle;
#[path = "library/lifecycle_plan.rs"]
mod lifecycle_plan;
#[path = "library/lifecycle_policy.rs"]
mod lifecycle_policy;
#[path = "library/local_objects.rs"]
mod local_objects;
#[path = "library/manifest_descriptors.rs"]
mod manifest_descriptors;
#[path = "library/manifest_parsing.rs"]
mod manifest_parsing;
#[path = "library/manifest_push.rs"]
mod manifest_push;
#[path = "library/meta_model.rs"]
mod meta_model;
#[path = "library/meta_requests.rs"]
mod meta_requests;
#[path = "library/redb_readers.rs"]
mod redb_readers;
#[path = "library/referrer_lists.rs"]
mod referrer_lists;
#[path = "library/registry.rs"]
mod registry;
#[path = "library/repositories.rs"]
mod repositories;
#[path = "library/scan_binaries.rs"]
mod scan_binaries;
#[path = "library/scan_inventory.rs"]
mod scan_inventory;
#[path = "library/scan_osv.rs"]
mod scan_osv;
#[path = "library/scan_osv_load.rs"]
mod scan_osv_load;
#[path = "library/scan_registry.rs"]
mod scan_registry;
#[path = "library/scan_rpm.rs"]
mod scan_rpm;
#[path = "library/scan_rpm_bdb.rs"]
mod scan_rpm_bdb;
#[path = "library/scan_sbom.rs"]
mod scan_sbom;
#[path = "library/scan_sqlite.rs"]
mod scan_sqlite;
#[path = "library/scan_versions.rs"]
mod scan_versions;
#[path = "library/sigv4.rs"]
mod sigv4;
#[path = "library/small_objects.rs"]
mod small_objects;
#[path = "library/synced_commits.rs"]
mod synced_commits;
#[path = "library/tags_and_referrers.rs"]
mod tags_and_referrers;
#[path = "library/tamper.rs"]
mod tamper;
#[path = "library/transfer_docker.rs"]
mod transfer_docker;
#[path = "library/transfer_layout.rs"]
mod transfer_layout;
#[path = "library/transfer_tools.rs"]
mod transfer_tools;
#[path = "library/wraps_durable_first.rs"]
mod wraps_durable_first;
