//! One-time moves of what older stores kept in another layout. The first caller that
//! needs the new layout moves the old entries, then marks the store (a `Singleton`
//! record); every later caller, in any process, trusts the mark, read once per process.
//! The mark is written only after the move, so a move cut short runs again.

use std::sync::atomic::{AtomicBool, Ordering};

use super::Registry;
use super::schema::{Singleton, Table, Value};
use crate::error::Result;
use crate::meta::Expect;

impl Registry {
    /// Runs `migrate` unless the store's `mark` says it is done (`is_done`), then writes
    /// `done`; `known` remembers in this process that the store is marked. `migrate` is
    /// not started when it is not needed.
    pub(super) async fn ensure_layout<R: Value>(
        &self,
        known: &AtomicBool,
        mark: &Table<Singleton, R>,
        done: R,
        is_done: impl Fn(&R) -> bool,
        migrate: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        if known.load(Ordering::Acquire) {
            return Ok(());
        }
        let marked = mark
            .get(self.meta(), &Singleton)
            .await?
            .is_some_and(|(layout, _)| is_done(&layout));
        if !marked {
            migrate.await?;
            mark.put(self.meta(), &Singleton, &done, Expect::Any)
                .await?;
        }
        known.store(true, Ordering::Release);
        Ok(())
    }
}
