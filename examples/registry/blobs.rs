//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use std::ops::Range;

use hyper::body::Incoming;
use hyper::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use hyper::{Method, Request, StatusCode};
use wharf::{Digest, Error, ErrorKind, Registry, RepoName};

use crate::http::{
    DOCKER_CONTENT_DIGEST, Failure, Handled, empty, finish, header, method_not_allowed, response,
    streamed,
};

pub(crate) async fn handle(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    req: Request<Incoming>,
) -> Handled {
    match *req.method() {
        Method::HEAD => {
            let info = registry.stat_blob(repo, digest).await?;
            Ok(finish(
                blob_headers(StatusCode::OK, digest).header(CONTENT_LENGTH, info.size),
                empty(),
            ))
        }
        Method::GET => match header(req.headers(), RANGE.as_str()) {
            None => {
                let read = registry.read_blob(repo, digest, None).await?;
                Ok(finish(
                    blob_headers(StatusCode::OK, digest).header(CONTENT_LENGTH, read.info.size),
                    streamed(read.stream),
                ))
            }
            Some(range) => {
                let size = registry.stat_blob(repo, digest).await?.size;
                let range = byte_range(range, size)?;
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
        _ => Err(method_not_allowed(req.method())),
    }
}

fn blob_headers(status: StatusCode, digest: &Digest) -> hyper::http::response::Builder {
    response(status)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(DOCKER_CONTENT_DIGEST, digest.to_string())
        .header(ACCEPT_RANGES, "bytes")
}

/// The bytes a `Range: bytes=…` header asks of a blob of `size` bytes: `a-b`, `a-` or
/// the suffix `-n`. One range only; anything unsatisfiable is 416 with the size.
fn byte_range(header: &str, size: u64) -> Result<Range<u64>, Failure> {
    let unsatisfiable = || {
        let error = Error::new(
            ErrorKind::SizeInvalid,
            format!("range {header:?} is not satisfiable for a blob of {size} bytes"),
        );
        let mut failure = Failure::new(StatusCode::RANGE_NOT_SATISFIABLE, &error);
        let value = format!("bytes */{size}").parse().expect("ascii");
        failure.0.headers_mut().insert(CONTENT_RANGE, value);
        failure
    };
    let spec = header
        .trim()
        .strip_prefix("bytes=")
        .filter(|s| !s.contains(','))
        .ok_or_else(unsatisfiable)?;
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| unsatisfiable());
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        (true, false) => size.saturating_sub(number(end)?)..size,
        (false, true) => number(start)?..size,
        (false, false) => number(start)?..number(end)?.saturating_add(1).min(size),
        (true, true) => return Err(unsatisfiable()),
    };
    if range.start >= range.end {
        return Err(unsatisfiable());
    }
    Ok(range)
}
