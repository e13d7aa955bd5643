//! Hashing beside the write path: once a blob outgrows a small inline budget, its bytes
//! are hashed on a blocking thread while the writing task goes on sending parts to
//! storage, so a put costs about the larger of the two instead of their sum.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::digest::{Algorithm, Digester};
use crate::error::{Error, ErrorKind, Result};

/// Bytes hashed inline before hashing moves to its own thread: below this, starting a
/// thread costs more than it saves.
const INLINE_LIMIT: u64 = 1 << 20;
/// Chunks queued for the hashing thread; bounds how far writing runs ahead of hashing.
const QUEUE: usize = 16;

/// A [`Digester`] that hashes inline at first and on a blocking thread beyond
/// [`INLINE_LIMIT`], in order either way.
#[derive(Debug)]
pub(crate) struct PipelinedDigester {
    stage: Stage,
    len: u64,
    algorithm: Algorithm,
}

#[derive(Debug)]
enum Stage {
    Inline(Box<Digester>),
    Background {
        queue: mpsc::Sender<Bytes>,
        worker: JoinHandle<Box<Digester>>,
    },
    /// Only while switching stages, or after the worker failed.
    Broken,
}

impl PipelinedDigester {
    pub(crate) fn new(digester: Digester) -> Self {
        Self {
            len: digester.len(),
            algorithm: digester.algorithm(),
            stage: Stage::Inline(Box::new(digester)),
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
        if let Stage::Inline(digester) = &mut self.stage {
            if self.len <= INLINE_LIMIT {
                digester.update(data);
                return Ok(());
            }
            let Stage::Inline(mut digester) = std::mem::replace(&mut self.stage, Stage::Broken)
            else {
                unreachable!("matched above")
            };
            let (queue, mut chunks) = mpsc::channel::<Bytes>(QUEUE);
            let worker = tokio::task::spawn_blocking(move || {
                while let Some(chunk) = chunks.blocking_recv() {
                    digester.update(&chunk);
                }
                digester
            });
            self.stage = Stage::Background { queue, worker };
        }
        match &self.stage {
            Stage::Background { queue, .. } => {
                if queue.send(data.clone()).await.is_err() {
                    self.stage = Stage::Broken;
                    return Err(worker_failed());
                }
                Ok(())
            }
            _ => Err(worker_failed()),
        }
    }

    /// Waits until every byte fed so far is hashed and returns the digester.
    pub(crate) async fn settle(&mut self) -> Result<&Digester> {
        if let Stage::Background { .. } = self.stage {
            let Stage::Background { queue, worker } =
                std::mem::replace(&mut self.stage, Stage::Broken)
            else {
                unreachable!("matched above")
            };
            drop(queue);
            let digester = worker.await.map_err(|_| worker_failed())?;
            self.stage = Stage::Inline(digester);
        }
        match &self.stage {
            Stage::Inline(digester) => Ok(digester),
            _ => Err(worker_failed()),
        }
    }
}

fn worker_failed() -> Error {
    Error::new(
        ErrorKind::Storage,
        "the hashing thread of a blob write failed",
    )
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
