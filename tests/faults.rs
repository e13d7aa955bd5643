//! Fault injection: uploads, manifest pushes, garbage collection and lifecycle apply
//! interrupted at every storage operation, then the invariants.

#[path = "common/mod.rs"]
mod common;

#[path = "faults/events.rs"]
mod events;
#[path = "faults/gc_and_lifecycle.rs"]
mod gc_and_lifecycle;
#[path = "faults/local.rs"]
mod local;
#[path = "faults/manifests.rs"]
mod manifests;
#[path = "faults/uploads.rs"]
mod uploads;
