//! Turning an `object_store` get into a stream of large chunks.
//!
//! `object_store` streams local files in 8 KiB reads, each on the blocking pool: that
//! caps a local read far below the disk. A file payload is read here in 1 MiB chunks
//! instead; remote payloads stream as the backend delivers them.

use std::io::{Read, Seek, SeekFrom};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::{GetResult, GetResultPayload};

use super::ByteStream;
use crate::error::{Error, ErrorKind};

/// Bytes per read of a local file.
const FILE_CHUNK: u64 = 1 << 20;

/// The bytes of `got` as a stream; `context` names the read in errors.
pub(crate) fn byte_stream(got: GetResult, context: String) -> ByteStream {
    let range = got.range.clone();
    match got.payload {
        GetResultPayload::File(file, path) => {
            let state = Some((file, range.start, false));
            stream::unfold(state, move |state| {
                let context = context.clone();
                let path = path.clone();
                let end = range.end;
                async move {
                    let (mut file, at, positioned) = state?;
                    if at >= end {
                        return None;
                    }
                    let want = (end - at).min(FILE_CHUNK) as usize;
                    let read = tokio::task::spawn_blocking(move || {
                        if !positioned {
                            file.seek(SeekFrom::Start(at))?;
                        }
                        let mut buf = BytesMut::zeroed(want);
                        file.read_exact(&mut buf)?;
                        Ok::<_, std::io::Error>((file, buf.freeze()))
                    })
                    .await;
                    match read {
                        Ok(Ok((file, chunk))) => {
                            let next = at + chunk.len() as u64;
                            Some((Ok(chunk), Some((file, next, true))))
                        }
                        Ok(Err(e)) => {
                            // A file shorter than its listing says was truncated at rest.
                            let kind = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                                ErrorKind::CorruptData
                            } else {
                                ErrorKind::Storage
                            };
                            let message = format!("{context}: reading {}: {e}", path.display());
                            Some((Err(Error::new(kind, message).with_source(e)), None))
                        }
                        Err(e) => Some((
                            Err(Error::new(
                                ErrorKind::Storage,
                                format!("{context}: read task failed: {e}"),
                            )),
                            None,
                        )),
                    }
                }
            })
            .boxed()
        }
        GetResultPayload::Stream(inner) => {
            inner.map_err(move |e| Error::storage(&context, e)).boxed()
        }
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
