//! Reading blobs from an [`ObjectBlobStore`](super::ObjectBlobStore): raw blobs streamed as stored, encoded
//! ones through their header and frame index (only the frames a range needs), staged
//! parts for joins, and the digest check that ends every full read.

use std::ops::Range;

use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt};

use super::encoded::{self, logical_stream};
use super::encoding::blob_name;
use super::objects::{Form, Objects};
use super::read_stream::byte_stream;
use super::sizes::Sizes;
use super::{AtRest, BlobInfo, BlobRead, StagedPart};
use crate::digest::{Digest, Digester};
use crate::error::{Error, ErrorKind, Result};

impl Objects {
    /// The bytes of one staged part, read in large chunks like any blob read.
    pub(super) async fn read_part(
        &self,
        staging: &Path,
        part: &StagedPart,
    ) -> Result<super::ByteStream> {
        let path = staging.clone().join(part.name.as_str());
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::storage(format!("reading {path}"), e))?;
        Ok(byte_stream(got, format!("reading {path}")))
    }

    pub(super) fn unknown(digest: &Digest) -> Error {
        Error::new(
            ErrorKind::BlobUnknown,
            format!("blob {digest} is not stored"),
        )
    }

    pub(super) fn range_invalid(digest: &Digest, range: &Range<u64>, size: u64) -> Error {
        Error::range_invalid(
            format!(
                "range {}-{} is outside blob {digest} of {size} bytes",
                range.start, range.end
            ),
            size,
        )
    }

    /// The encoding side of a new write under `at_rest`, staging into `staging_id`.
    /// Reads a blob stored as received; `None` when there is none.
    pub(super) async fn read_raw(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobRead>> {
        let path = self.object_path(digest, Form::Raw);
        let context = || format!("reading blob {digest}");
        let info = |size| BlobInfo {
            digest: digest.clone(),
            size,
        };
        match range {
            Some(range) if range.start >= range.end => {
                let Some(size) = self.head(digest, Form::Raw).await? else {
                    return Ok(None);
                };
                if range.start > range.end || range.end > size {
                    return Err(Self::range_invalid(digest, &range, size));
                }
                Ok(Some(BlobRead {
                    info: info(size),
                    range,
                    stream: stream::empty().boxed(),
                }))
            }
            Some(range) => {
                let options = GetOptions::new().with_range(Some(GetRange::Bounded(range.clone())));
                match self.store.get_opts(&path, options).await {
                    Ok(got) if got.range == range => Ok(Some(BlobRead {
                        info: info(got.meta.size),
                        range,
                        stream: byte_stream(got, context()),
                    })),
                    Ok(got) => Err(Self::range_invalid(digest, &range, got.meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => match self.head(digest, Form::Raw).await? {
                        None => Ok(None),
                        Some(size) if range.end > size => {
                            Err(Self::range_invalid(digest, &range, size))
                        }
                        Some(_) => Err(Error::storage(context(), e)),
                    },
                }
            }
            None => match self.store.get(&path).await {
                Ok(got) => {
                    let size = got.meta.size;
                    let inner = byte_stream(got, context());
                    Ok(Some(BlobRead {
                        info: info(size),
                        range: 0..size,
                        stream: verify_stream(inner, digest.clone()),
                    }))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(Error::storage(context(), e)),
            },
        }
    }

    /// Reads a blob in the at-rest format; `None` when there is none.
    pub(super) async fn read_encoded(
        &self,
        digest: &Digest,
        range: Option<Range<u64>>,
        at_rest: &AtRest,
    ) -> Result<Option<BlobRead>> {
        let path = self.object_path(digest, Form::Encoded);
        let Some(opened) =
            encoded::open(&self.store, &self.wraps, &path, digest, at_rest.read_keks()).await?
        else {
            return Ok(None);
        };
        let layout = opened.layout;
        let size = layout.logical_size();
        // The footer passed its check: what a later stat can trust.
        self.logical_sizes.remember(
            digest,
            Sizes {
                logical: size,
                stored: layout.stored_size(),
            },
        );
        let info = BlobInfo {
            digest: digest.clone(),
            size,
        };
        let want = match &range {
            Some(range) if range.start > range.end || range.end > size => {
                return Err(Self::range_invalid(digest, range, size));
            }
            Some(range) => range.clone(),
            None => 0..size,
        };
        if want.is_empty() {
            let stream = match range {
                Some(_) => stream::empty().boxed(),
                // An empty blob still has its one frame opened, so it is checked too.
                None => verify_stream(
                    logical_stream(
                        stream::once(async move { Ok(opened.whole.unwrap_or_default()) }).boxed(),
                        0,
                        layout.clone(),
                        0..1,
                        digest.clone(),
                    ),
                    digest.clone(),
                ),
            };
            return Ok(Some(BlobRead {
                info,
                range: want,
                stream,
            }));
        }
        let (_, covered) = layout.locate(want.clone());
        let stored = match opened.whole {
            Some(whole) => {
                let slice = whole.slice(covered.start as usize..covered.end as usize);
                stream::once(async move { Ok(slice) }).boxed()
            }
            None => {
                let options =
                    GetOptions::new().with_range(Some(GetRange::Bounded(covered.clone())));
                let got = self
                    .store
                    .get_opts(&path, options)
                    .await
                    .map_err(|e| Error::storage(format!("reading blob {digest}"), e))?;
                byte_stream(got, format!("reading blob {digest}"))
            }
        };
        // An encrypted object's frames are sealed under a data key whose wrap is bound
        // to this digest, and authenticate every byte, their order and the end, so a
        // full read of them needs no second hash. CRC-checked frames catch accidents,
        // and an object that names this digest cannot be another blob's under its
        // name: its checksums suffice too. An unnamed one (written before names) is
        // hashed.
        let checked = layout.header().encrypted() || layout.names(&blob_name(digest));
        let logical = logical_stream(stored, covered.start, layout, want.clone(), digest.clone());
        let stream = if range.is_none() && !checked {
            verify_stream(logical, digest.clone())
        } else {
            logical
        };
        Ok(Some(BlobRead {
            info,
            range: want,
            stream,
        }))
    }
}

/// Wraps a full read so the stream ends with an error if the bytes do not hash to
/// `digest`.
fn verify_stream(inner: super::ByteStream, digest: Digest) -> super::ByteStream {
    let hasher = Digester::new(digest.algorithm());
    stream::unfold(Some((inner, hasher, digest)), |state| async move {
        let (mut inner, mut hasher, digest) = state?;
        match inner.next().await {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                Some((Ok(chunk), Some((inner, hasher, digest))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => {
                let actual = hasher.finish();
                if actual == digest {
                    None
                } else {
                    Some((
                        Err(Error::new(
                            ErrorKind::CorruptData,
                            format!("stored blob {digest} is corrupt: its bytes hash to {actual}"),
                        )),
                        None,
                    ))
                }
            }
        }
    })
    .boxed()
}

/// Checks a written blob against what the caller expected.
pub(super) fn verify(
    expected: &Digest,
    actual: &Digest,
    size: u64,
    expected_size: Option<u64>,
) -> Result<()> {
    if expected != actual {
        return Err(Error::new(
            ErrorKind::DigestInvalid,
            format!("content digest {actual} does not match the expected {expected}"),
        ));
    }
    match expected_size {
        Some(want) if want != size => Err(Error::new(
            ErrorKind::SizeInvalid,
            format!("blob {expected}: received {size} bytes, expected {want}"),
        )),
        _ => Ok(()),
    }
}
