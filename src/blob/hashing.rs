//! Hashing beside the write path: once a blob outgrows a small inline budget, its bytes
//! are hashed in batches on the blocking pool while the writing task goes on sending
//! parts to storage, so a put costs about the larger of the two instead of their sum.
//!
//! Each batch is one bounded job: a blocking thread hashes bytes it already holds and
//! returns. No blocking thread ever waits for bytes still to come from the network: with
//! a long-lived hashing thread per open upload, as many open uploads as the pool has
//! threads parked every thread, and the writes those threads waited for could never run.

use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::digest::{Algorithm, Digester};
use crate::error::{Error, ErrorKind, Result};

/// Bytes hashed inline before hashing moves to the blocking pool: below this, a hand-off
/// costs more than it saves.
const INLINE_LIMIT: u64 = 1 << 20;
/// Bytes collected before a batch goes to the blocking pool. With one batch hashing and
/// one filling, this bounds how far writing runs ahead of hashing.
const BATCH: usize = 1 << 20;

/// A [`Digester`] that hashes inline at first and in background batches beyond
/// [`INLINE_LIMIT`], in order either way.
#[derive(Debug)]
pub(crate) struct PipelinedDigester {
    digester: Hashing,
    /// Bytes not yet handed to the digester, in order.
    batch: Vec<Bytes>,
    batch_len: usize,
    len: u64,
    algorithm: Algorithm,
}

/// Where the digester is.
#[derive(Debug)]
enum Hashing {
    /// On hand: nothing is being hashed.
    Idle(Box<Digester>),
    /// On a blocking thread, hashing one batch; the thread hands it back when done.
    Busy(JoinHandle<Box<Digester>>),
    /// Lost with a failed hashing job; the write cannot finish.
    Lost,
}

impl PipelinedDigester {
    pub(crate) fn new(digester: Digester) -> Self {
        Self {
            len: digester.len(),
            algorithm: digester.algorithm(),
            digester: Hashing::Idle(Box::new(digester)),
            batch: Vec::new(),
            batch_len: 0,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) async fn update(&mut self, data: &Bytes) -> Result<()> {
        self.len += data.len() as u64;
        if self.len <= INLINE_LIMIT
            && self.batch.is_empty()
            && let Hashing::Idle(digester) = &mut self.digester
        {
            digester.update(data);
            return Ok(());
        }
        self.batch.push(data.clone());
        self.batch_len += data.len();
        if self.batch_len >= BATCH {
            self.hash_batch().await?;
        }
        Ok(())
    }

    /// Hands the collected batch to a blocking thread, once the previous batch is done.
    async fn hash_batch(&mut self) -> Result<()> {
        let mut digester = self.take().await?;
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        self.digester = Hashing::Busy(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                digester.update(chunk);
            }
            digester
        }));
        Ok(())
    }

    /// The digester, once the batch it is hashing (if any) is done.
    async fn take(&mut self) -> Result<Box<Digester>> {
        match std::mem::replace(&mut self.digester, Hashing::Lost) {
            Hashing::Idle(digester) => Ok(digester),
            Hashing::Busy(job) => job.await.map_err(|_| worker_failed()),
            Hashing::Lost => Err(worker_failed()),
        }
    }

    /// Waits until every byte fed so far is hashed and returns the digester.
    pub(crate) async fn settle(&mut self) -> Result<&Digester> {
        if !self.batch.is_empty() {
            self.hash_batch().await?;
        }
        let digester = self.take().await?;
        self.digester = Hashing::Idle(digester);
        match &self.digester {
            Hashing::Idle(digester) => Ok(digester),
            _ => unreachable!("set just above"),
        }
    }
}

fn worker_failed() -> Error {
    Error::new(ErrorKind::Storage, "a hashing job of a blob write failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn equals_one_shot_across_the_switch_and_settles() {
        let data: Bytes = (0..3 * INLINE_LIMIT as usize)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<_>>()
            .into();
        let mut hashing = PipelinedDigester::new(Digester::new(Algorithm::Sha256));
        for piece in data.chunks(100_003) {
            hashing
                .update(&Bytes::copy_from_slice(piece))
                .await
                .unwrap();
            if hashing.len() > 2 * INLINE_LIMIT && hashing.len() < 2 * INLINE_LIMIT + 100_003 {
                // A checkpoint midway, after which hashing moves to a thread again.
                assert_eq!(hashing.settle().await.unwrap().len(), hashing.len());
            }
        }
        let digest = hashing.settle().await.unwrap().peek();
        assert_eq!(digest, Digest::of(Algorithm::Sha256, &data));
        assert_eq!(hashing.len(), data.len() as u64);
    }
}
