//! Turning an `object_store` get into a stream of large chunks.
//!
//! `object_store` streams local files in 8 KiB reads, each on the blocking pool: that
//! caps a local read far below the disk. A file payload is read here in 1 MiB chunks,
//! one chunk ahead of the consumer so reading overlaps with hashing; remote payloads
//! stream as the backend delivers them.

use bytes::Bytes;
use futures::stream::{StreamExt, TryStreamExt};
use object_store::GetResult;

use super::ByteStream;
use crate::error::Error;

/// The bytes of `got` as a stream; `context` names the read in errors.
pub(crate) fn byte_stream(got: GetResult, context: String) -> ByteStream {
    #[cfg(unix)]
    if let object_store::GetResultPayload::File(file, path) = got.payload {
        return local::file_stream(file, path, got.range, context);
    }
    got.into_stream()
        .map_err(move |e| Error::storage(&context, e))
        .boxed()
}

#[cfg(unix)]
mod local {
    use std::ops::Range;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::stream::{self, StreamExt};

    use super::ByteStream;
    use crate::error::{Error, ErrorKind};

    /// Bytes per read of a local file.
    const CHUNK: u64 = 1 << 20;
    /// Chunks read ahead of the consumer.
    const READ_AHEAD: usize = 2;

    pub(super) fn file_stream(
        file: std::fs::File,
        path: PathBuf,
        range: Range<u64>,
        context: String,
    ) -> ByteStream {
        let file = Arc::new(file);
        let end = range.end;
        stream::iter((range.start..end).step_by(CHUNK as usize))
            .map(move |at| {
                let (file, path, context) = (file.clone(), path.clone(), context.clone());
                let len = (end - at).min(CHUNK) as usize;
                async move {
                    let read = tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; len];
                        file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
                    })
                    .await;
                    match read {
                        Ok(Ok(chunk)) => Ok(chunk),
                        Ok(Err(e)) => {
                            // A file shorter than its listing says was truncated at rest.
                            let kind = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                ErrorKind::CorruptData
                            } else {
                                ErrorKind::Storage
                            };
                            let message = format!("{context}: reading {}: {e}", path.display());
                            Err(Error::new(kind, message).with_source(e))
                        }
                        Err(e) => Err(Error::new(
                            ErrorKind::Storage,
                            format!("{context}: read task failed: {e}"),
                        )),
                    }
                }
            })
            .buffered(READ_AHEAD)
            .boxed()
    }
}

/// Collects a stream of chunks into one buffer (one copy at most).
pub(crate) fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => chunks.concat().into(),
    }
}
