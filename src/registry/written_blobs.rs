//! Blobs that wharf writes itself (SBOMs, for one) and that may be too large to build in
//! memory first: a writer on a blocking thread streams them into an upload session,
//! hashing as it goes, so the digest is known when the upload is finished.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::Registry;
use crate::blob::{BlobInfo, ByteStream};
use crate::digest::{Algorithm, Digest, Digester};
use crate::error::{Error, ErrorKind, Result};
use crate::reference::RepoName;

/// The size of the chunks handed from the writer to the upload.
const CHUNK: usize = 1 << 20;

/// Chunks in flight between the writer and the upload: with the one being filled and the
/// one being written, memory holds at most four.
const CHUNKS_IN_FLIGHT: usize = 2;

impl Registry {
    /// Pushes into `repo` the blob `body` streams, whose digest (sha256) is learnt as it
    /// passes: for content that arrives without one, such as the layers of a `docker
    /// save` archive. If `body` fails, the upload is cancelled and nothing is published.
    pub(crate) async fn push_unnamed_blob(
        &self,
        repo: &RepoName,
        body: ByteStream,
    ) -> Result<BlobInfo> {
        let upload = self.start_upload(repo).await?;
        let digester = Arc::new(Mutex::new(Digester::new(Algorithm::Sha256)));
        let hashing = digester.clone();
        let hashed = body.inspect(move |chunk| {
            if let (Ok(chunk), Ok(mut digester)) = (chunk, hashing.lock()) {
                digester.update(chunk);
            }
        });
        if let Err(e) = self
            .append_upload_stream(repo, &upload.id, 0, hashed.boxed())
            .await
        {
            let _ = self.cancel_upload(repo, &upload.id).await;
            return Err(e);
        }
        let digest = match digester.lock() {
            Ok(digester) => digester.peek(),
            Err(_) => {
                let _ = self.cancel_upload(repo, &upload.id).await;
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("hashing a blob for {repo} failed"),
                ));
            }
        };
        self.finish_upload(repo, &upload.id, &digest, None).await
    }

    /// Pushes into `repo` the blob that `write` writes, streamed through an upload session
    /// from a blocking thread. Memory stays at a few MiB whatever the blob's size. If
    /// `write` fails, the upload is cancelled and nothing is published.
    pub(crate) async fn push_written_blob<F>(&self, repo: &RepoName, write: F) -> Result<BlobInfo>
    where
        F: FnOnce(&mut dyn io::Write) -> io::Result<()> + Send + 'static,
    {
        let upload = self.start_upload(repo).await?;
        let (sender, receiver) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        let writer = tokio::task::spawn_blocking(move || {
            let mut sink = ChunkSink {
                sender,
                chunk: Vec::with_capacity(CHUNK),
                digester: Digester::new(Algorithm::Sha256),
            };
            write(&mut sink)?;
            sink.send_chunk()?;
            Ok::<Digest, io::Error>(sink.digester.finish())
        });
        let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((Ok(chunk), receiver))
        })
        .boxed();
        let appended = self.append_upload_stream(repo, &upload.id, 0, chunks).await;
        // The writer ends either way: when the upload stops reading, its sends fail.
        let written = match writer.await {
            Ok(Ok(digest)) => Ok(digest),
            Ok(Err(e)) => Err(Error::new(
                ErrorKind::Storage,
                format!("writing a blob into {repo}: {e}"),
            )),
            Err(e) => Err(Error::new(
                ErrorKind::Storage,
                format!("the writer of a blob into {repo} stopped: {e}"),
            )),
        };
        let digest = match appended.and(written) {
            Ok(digest) => digest,
            Err(e) => {
                // The error above is what the caller needs; a failed cancel leaves a
                // session that upload expiry removes.
                let _ = self.cancel_upload(repo, &upload.id).await;
                return Err(e);
            }
        };
        self.finish_upload(repo, &upload.id, &digest, None).await
    }
}

/// The writer's end: fills a chunk, hashes it and hands it to the upload when full.
struct ChunkSink {
    sender: mpsc::Sender<Bytes>,
    chunk: Vec<u8>,
    digester: Digester,
}

impl ChunkSink {
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.digester.update(&chunk);
        self.sender
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl io::Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.chunk.len();
        let taken = data.len().min(room);
        self.chunk.extend_from_slice(&data[..taken]);
        if self.chunk.len() == CHUNK {
            self.send_chunk()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RepositorySettings;

    async fn registry() -> (Registry, RepoName) {
        let registry = Registry::in_memory();
        let repo: RepoName = "scan/written".parse().unwrap();
        registry
            .create_repository(&repo, RepositorySettings::default())
            .await
            .unwrap();
        (registry, repo)
    }

    /// Bytes that differ from chunk to chunk, so a lost or repeated chunk changes the digest.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_of_several_chunks_arrives_whole_under_its_digest() {
        let (registry, repo) = registry().await;
        let expected = pattern(3 * CHUNK + 12_345);
        let data = expected.clone();
        let info = registry
            .push_written_blob(&repo, move |out| {
                // Written in odd-sized pieces, as serializers do.
                for piece in data.chunks(4093) {
                    out.write_all(piece)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(info.digest, Digest::of(Algorithm::Sha256, &expected));
        assert_eq!(info.size, expected.len() as u64);
        let read = registry.read_blob(&repo, &info.digest, None).await.unwrap();
        assert_eq!(read.bytes().await.unwrap(), expected);
        assert_eq!(registry.open_uploads(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_writer_publishes_nothing_and_leaves_no_session() {
        let (registry, repo) = registry().await;
        let written = pattern(2 * CHUNK);
        let digest = Digest::of(Algorithm::Sha256, &written);
        let error = registry
            .push_written_blob(&repo, move |out| {
                out.write_all(&written)?;
                Err(io::Error::other("the serializer gave up"))
            })
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Storage);
        assert!(
            error.to_string().contains("the serializer gave up"),
            "{error}"
        );
        let missing = registry.stat_blob(&repo, &digest).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::BlobUnknown);
        assert_eq!(registry.open_uploads(), 0);
        // The session was cancelled, not left behind for expiry.
        let expired = registry
            .expire_uploads_older_than(std::time::Duration::ZERO)
            .await
            .unwrap();
        assert_eq!((expired.sessions, expired.orphaned_staging), (0, 0));
    }
}
