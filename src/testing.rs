//! Conformance suites and test doubles, behind the `testing` feature.
//!
//! Every implementation of a wharf trait runs the suite for that trait:
//! [`meta_store::all`] for a [`MetaStore`](crate::MetaStore), [`blob_store::all`] for a
//! [`BlobStore`](crate::BlobStore), [`key_provider::all`] for a
//! [`KeyProvider`](crate::keys::KeyProvider). The suites check the points of the trait's
//! `# Contract` section, panic with a message naming the point that failed, and keep
//! their data under fresh random keys so they can run against a shared bucket.
//!
//! [`ManualClock`] is a [`Clock`](crate::Clock) that moves only when told to.
//!
//! [`FaultyStore`] wraps an `ObjectStore` and fails one operation, or every operation
//! from one on ("a crash"), to prove that no failure leaves a partial blob visible;
//! [`FaultyMeta`] does the same to a [`MetaStore`](crate::MetaStore).

pub mod blob_store;
mod clock;
mod fault_plan;
mod faulty_meta;
mod faulty_store;
pub mod fuzz;
mod fuzz_scan;
pub mod key_provider;
pub mod meta_store;

pub use self::clock::ManualClock;
pub use self::fault_plan::FaultMode;
pub use self::faulty_meta::FaultyMeta;
pub use self::faulty_store::FaultyStore;
