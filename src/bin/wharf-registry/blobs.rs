//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use std::ops::Range;

use hyper::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE,
};
use hyper::{Method, StatusCode};
use wharf::{CallerRegistry, Digest, Error, ErrorKind, RepoName};

use crate::http::{
    DOCKER_CONTENT_DIGEST, Failure, Handled, Req, decimal, empty, finish, header,
    method_not_allowed, response, streamed,
};

pub(crate) async fn handle(
    registry: &CallerRegistry,
    repo: &RepoName,
    digest: &Digest,
    req: Req,
) -> Handled {
    match *req.method() {
        Method::HEAD => {
            let info = registry.stat_blob(repo, digest).await?;
            Ok(finish(
                blob_headers(StatusCode::OK, digest).header(CONTENT_LENGTH, info.size),
                empty(),
            ))
        }
        Method::GET => match wanted_range(&req, digest) {
            None => {
                let read = registry.read_blob(repo, digest, None).await?;
                Ok(finish(
                    blob_headers(StatusCode::OK, digest).header(CONTENT_LENGTH, read.info.size),
                    streamed(read.stream),
                ))
            }
            Some(wanted) => {
                let size = registry.stat_blob(repo, digest).await?.size;
                let range = wanted
                    .within(size)
                    .ok_or_else(|| unsatisfiable(&wanted, size))?;
                let (first, last) = (range.start, range.end - 1);
                let read = registry.read_blob(repo, digest, Some(range)).await?;
                Ok(finish(
                    blob_headers(StatusCode::PARTIAL_CONTENT, digest)
                        .header(CONTENT_LENGTH, last + 1 - first)
                        .header(CONTENT_RANGE, format!("bytes {first}-{last}/{size}")),
                    streamed(read.stream),
                ))
            }
        },
        Method::DELETE => {
            registry.unlink_blob(repo, digest).await?;
            Ok(finish(response(StatusCode::ACCEPTED), empty()))
        }
        _ => Err(method_not_allowed(req.method(), "GET, HEAD, DELETE")),
    }
}

/// A blob's entity tag: its digest, which names its bytes exactly (a strong validator).
fn etag(digest: &Digest) -> String {
    format!("\"{digest}\"")
}

fn blob_headers(status: StatusCode, digest: &Digest) -> hyper::http::response::Builder {
    response(status)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(ETAG, etag(digest))
        .header(ACCEPT_RANGES, "bytes")
}

/// One byte range as a `Range: bytes=` header asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    /// `first-last` or `first-` (`last` absent).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl Wanted {
    /// The bytes of a blob of `size` this asks for; `None` if none exist.
    fn within(self, size: u64) -> Option<Range<u64>> {
        let range = match self {
            Self::From { first, last } => {
                let end = last.map_or(size, |l| l.saturating_add(1)).min(size);
                // An inverted range has no bytes, not the ones after `end`.
                if last.is_some_and(|l| l < first) {
                    return None;
                }
                first..end
            }
            Self::Suffix(n) => size.saturating_sub(n)..size,
        };
        (range.start < range.end).then_some(range)
    }
}

/// The range a `GET` should serve, per RFC 9110: `None` (the whole blob) when there is
/// no `Range`, when it is malformed, names another unit or several ranges (which a server
/// may ignore), or when an `If-Range` does not match the blob's entity tag. A well-formed
/// range that ends before it starts is kept, to be refused as unsatisfiable.
fn wanted_range(req: &Req, digest: &Digest) -> Option<Wanted> {
    let value = header(req.headers(), RANGE.as_str())?;
    if let Some(validator) = req.headers().get(IF_RANGE) {
        // Only a strong entity tag can match; a date never does (no Last-Modified).
        if validator.as_bytes() != etag(digest).as_bytes() {
            return None;
        }
    }
    parse_range(value)
}

fn parse_range(value: &str) -> Option<Wanted> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    match (first.trim(), last.trim()) {
        ("", suffix) => decimal(suffix).map(Wanted::Suffix),
        (first, "") => decimal(first).map(|first| Wanted::From { first, last: None }),
        // `last` before `first` is well formed but invalid: unsatisfiable (416).
        (first, last) => Some(Wanted::From {
            first: decimal(first)?,
            last: Some(decimal(last)?),
        }),
    }
}

/// 416 for a well-formed range with no bytes in the blob, with the blob's size.
fn unsatisfiable(wanted: &Wanted, size: u64) -> Failure {
    let error = Error::new(
        ErrorKind::SizeInvalid,
        format!("range {wanted:?} is not satisfiable for a blob of {size} bytes"),
    );
    let mut failure = Failure::new(StatusCode::RANGE_NOT_SATISFIABLE, &error);
    let value = format!("bytes */{size}").parse().expect("ascii");
    failure.0.headers_mut().insert(CONTENT_RANGE, value);
    failure
}
