//! Leases in metadata: one process at a time runs a background job (garbage collection,
//! lifecycle, delivery to one subscriber) when several share a store.
//!
//! A lease is the record `lease/<job>`: its holder, when it runs out, and a fencing
//! token. Taking a free or expired lease, and renewing one's own, are compare-and-swaps on
//! that record, so of two processes racing for it one wins. The token grows every time
//! the lease changes hands: work stamped with it can tell a late write from a holder that
//! lost the lease while it paused. A holder that stops renewing loses the lease when it
//! runs out; nothing else is needed when a process dies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::{LEASES, SubscriberName};
use crate::error::{ErrorKind, Result};
use crate::meta::{Expect, Version};

/// The record `lease/<job>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    holder: String,
    until_ms: u64,
    fence: u64,
}

/// A lease held by this process on a job.
#[derive(Debug, Clone)]
pub struct Lease {
    job: SubscriberName,
    holder: String,
    version: Version,
    until_ms: u64,
    fence: u64,
}

impl Lease {
    /// The fencing token: larger for every new holder of the job's lease.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// When the lease runs out unless renewed, in milliseconds since the Unix epoch.
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }
}

impl Registry {
    /// Takes the lease on `job` for `holder` (a name unique to this process) for `ttl`,
    /// or renews it if `holder` has it. `None` while another holder's lease runs.
    ///
    /// `job` is 1 to 64 of `a-z 0-9 . _ -`.
    pub async fn acquire_lease(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let job = SubscriberName::new(job)?;
        let now = self.now_millis();
        let current = LEASES.get(self.meta(), &job).await?;
        let (fence, expect) = match &current {
            Some((record, _)) if record.holder != holder && record.until_ms > now => {
                return Ok(None);
            }
            Some((record, version)) if record.holder == holder => {
                (record.fence, Expect::Version(*version))
            }
            Some((record, version)) => (record.fence + 1, Expect::Version(*version)),
            None => (1, Expect::Absent),
        };
        let record = LeaseRecord {
            holder: holder.to_owned(),
            until_ms: now + ttl.as_millis() as u64,
            fence,
        };
        match LEASES.put(self.meta(), &job, &record, expect).await {
            Ok(version) => Ok(Some(Lease {
                job,
                holder: record.holder,
                version,
                until_ms: record.until_ms,
                fence,
            })),
            // Another process took or renewed it meanwhile.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Extends a held lease by `ttl` from now; `false` if it was lost (it ran out and
    /// another process took it), in which case the job must stop.
    pub async fn renew_lease(&self, lease: &mut Lease, ttl: Duration) -> Result<bool> {
        let until_ms = self.now_millis() + ttl.as_millis() as u64;
        match self.rewrite_lease(lease, until_ms).await? {
            Some(version) => {
                lease.version = version;
                lease.until_ms = until_ms;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Writes a held lease with a new end, by compare-and-swap on the version its holder
    /// last wrote; `None` if another process changed it since.
    async fn rewrite_lease(&self, lease: &Lease, until_ms: u64) -> Result<Option<Version>> {
        let record = LeaseRecord {
            holder: lease.holder.clone(),
            until_ms,
            fence: lease.fence,
        };
        match LEASES
            .put(
                self.meta(),
                &lease.job,
                &record,
                Expect::Version(lease.version),
            )
            .await
        {
            Ok(version) => Ok(Some(version)),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives a lease up early, so another process need not wait for it to run out.
    pub async fn release_lease(&self, lease: Lease) -> Result<()> {
        self.rewrite_lease(&lease, 0).await.map(drop)
    }
}
