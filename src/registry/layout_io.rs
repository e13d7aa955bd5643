//! The bridge between the registry's async work and the layout files of `transfer`,
//! which are read and written with blocking I/O: a source file streamed from a blocking
//! thread, and a sink driven by one blocking thread through a bounded queue of commands.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::blob::ByteStream;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::transfer::sink::LayoutSink;
use crate::transfer::source::{LayoutSource, SourceFile};

/// The size of the chunks read from a source file.
const CHUNK: usize = 1 << 20;

/// Chunks or commands queued between a blocking thread and the async side.
const QUEUED: usize = 4;

/// Runs blocking `work` off the async threads; its I/O error becomes [`ErrorKind::Storage`]
/// with `what` as context, or `kind` for data errors ([`io::ErrorKind::InvalidData`]).
pub(super) async fn blocking<T, F>(what: String, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(io_error(&what, e)),
        Err(e) => Err(Error::new(ErrorKind::Storage, format!("{what}: {e}"))),
    }
}

/// An I/O error while moving an image: a malformed file is [`ErrorKind::ArchiveInvalid`],
/// anything else [`ErrorKind::Storage`].
pub(super) fn io_error(what: &str, e: io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => ErrorKind::ArchiveInvalid,
        _ => ErrorKind::Storage,
    };
    Error::new(kind, format!("{what}: {e}")).with_source(e)
}

/// The bytes of `file`, read on a blocking thread. A short file (fewer bytes than its
/// size said) ends the stream with an error.
pub(super) fn file_stream(file: SourceFile, what: String) -> ByteStream {
    let (sender, receiver) = mpsc::channel::<Result<Bytes>>(QUEUED);
    tokio::task::spawn_blocking(move || {
        let (mut reader, size) = file;
        let mut read = 0u64;
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let got = match read_full(&mut reader, &mut chunk) {
                Ok(got) => got,
                Err(e) => {
                    let _ = sender.blocking_send(Err(io_error(&what, e)));
                    return;
                }
            };
            if got == 0 {
                if read < size {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("ended after {read} of {size} bytes"),
                    );
                    let _ = sender.blocking_send(Err(io_error(&what, e)));
                }
                return;
            }
            read += got as u64;
            chunk.truncate(got);
            if sender.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((chunk, receiver))
    })
    .boxed()
}

/// Fills `buf` as far as the reader goes; fewer bytes only at its end.
fn read_full(reader: &mut dyn io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(got) => filled += got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Opens `path` of `source` on a blocking thread.
pub(super) async fn open_source(
    source: &Arc<dyn LayoutSource>,
    path: &str,
) -> Result<Option<SourceFile>> {
    let (source, owned) = (source.clone(), path.to_owned());
    let what = format!("{} {path}", source.describe());
    blocking(what, move || source.open(&owned)).await
}

enum Command {
    Has(Digest, u64, oneshot::Sender<bool>),
    Begin(Digest, u64),
    Data(Bytes),
    End,
    ExistingIndex(oneshot::Sender<Option<Vec<u8>>>),
    Finish(Vec<u8>),
}

/// A [`LayoutSink`] on a blocking thread of its own. The first error it meets stops it;
/// every later call, and [`SinkThread::finish`], returns that error.
pub(super) struct SinkThread {
    commands: mpsc::Sender<Command>,
    thread: Option<tokio::task::JoinHandle<io::Result<()>>>,
    what: String,
}

impl SinkThread {
    pub(super) fn start(mut sink: Box<dyn LayoutSink>, what: String) -> Self {
        let (commands, mut queue) = mpsc::channel::<Command>(QUEUED);
        let thread = tokio::task::spawn_blocking(move || {
            while let Some(command) = queue.blocking_recv() {
                match command {
                    Command::Has(digest, size, reply) => {
                        let _ = reply.send(sink.has_blob(&digest, size)?);
                    }
                    Command::Begin(digest, size) => sink.begin_blob(&digest, size)?,
                    Command::Data(data) => sink.write(&data)?,
                    Command::End => sink.end_blob()?,
                    Command::ExistingIndex(reply) => {
                        let _ = reply.send(sink.existing_index()?);
                    }
                    Command::Finish(index) => sink.finish(&index)?,
                }
            }
            Ok(())
        });
        SinkThread {
            commands,
            thread: Some(thread),
            what,
        }
    }

    async fn send(&mut self, command: Command) -> Result<()> {
        if self.commands.send(command).await.is_err() {
            return Err(self.stopped().await);
        }
        Ok(())
    }

    /// The error that stopped the thread.
    async fn stopped(&mut self) -> Error {
        match self.thread.take() {
            Some(thread) => match thread.await {
                Ok(Err(e)) => io_error(&self.what, e),
                Ok(Ok(())) => Error::new(ErrorKind::Storage, format!("{}: closed", self.what)),
                Err(e) => Error::new(ErrorKind::Storage, format!("{}: {e}", self.what)),
            },
            None => Error::new(ErrorKind::Storage, format!("{}: stopped", self.what)),
        }
    }

    pub(super) async fn has_blob(&mut self, digest: &Digest, size: u64) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Has(digest.clone(), size, reply)).await?;
        match answer.await {
            Ok(has) => Ok(has),
            Err(_) => Err(self.stopped().await),
        }
    }

    pub(super) async fn existing_index(&mut self) -> Result<Option<Vec<u8>>> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::ExistingIndex(reply)).await?;
        match answer.await {
            Ok(index) => Ok(index),
            Err(_) => Err(self.stopped().await),
        }
    }

    /// Writes the blob `digest` of `size` bytes from `body`.
    pub(super) async fn write_blob(
        &mut self,
        digest: &Digest,
        size: u64,
        mut body: ByteStream,
    ) -> Result<()> {
        self.send(Command::Begin(digest.clone(), size)).await?;
        while let Some(chunk) = body.next().await {
            self.send(Command::Data(chunk?)).await?;
        }
        self.send(Command::End).await
    }

    /// Writes `index.json`, ends the layout and waits for the thread.
    pub(super) async fn finish(mut self, index: Vec<u8>) -> Result<()> {
        self.send(Command::Finish(index)).await?;
        let SinkThread {
            commands,
            mut thread,
            what,
        } = self;
        drop(commands);
        match thread.take() {
            Some(thread) => match thread.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(io_error(&what, e)),
                Err(e) => Err(Error::new(ErrorKind::Storage, format!("{what}: {e}"))),
            },
            None => Ok(()),
        }
    }
}
