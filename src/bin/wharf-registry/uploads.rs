//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (a session, a monolithic push, or a
//! cross-repository mount) and `PATCH`, `PUT`, `GET`, `DELETE` on a session.

use futures::StreamExt;
use hyper::header::{CONTENT_LENGTH, LOCATION, RANGE};
use hyper::{Method, StatusCode};
use wharf::{
    ByteStream, CallerRegistry, Digest, Error, ErrorKind, RepoName, UploadId, UploadStatus,
};

use crate::http::{
    DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, Failure, Handled, Req, Response, SharedBody,
    content_length, decimal, empty, finish, header, method_not_allowed, query_in, query_param,
    request_stream, response, upload_range,
};
use crate::routes::{blob_path, upload_path};

/// `POST /v2/<name>/blobs/uploads/`.
pub(crate) async fn start(registry: &CallerRegistry, repo: &RepoName, req: Req) -> Handled {
    if req.method() != Method::POST {
        return Err(method_not_allowed(req.method(), "POST"));
    }
    if let Some(mount) = query_param(&req, "mount") {
        let digest: Digest = mount.parse()?;
        let from = query_param(&req, "from").and_then(|f| f.parse::<RepoName>().ok());
        match registry.mount_blob(repo, &digest, from.as_ref()).await {
            Ok(_) => return Ok(created(repo, &digest)),
            // Not mountable from there: the client uploads instead.
            Err(e) if matches!(e.kind(), ErrorKind::BlobUnknown | ErrorKind::Denied) => {}
            Err(e) => return Err(e.into()),
        }
    } else if let Some(digest) = query_param(&req, "digest") {
        let digest: Digest = digest.parse()?;
        registry
            .push_blob_stream(repo, &digest, request_stream(req))
            .await?;
        return Ok(created(repo, &digest));
    }
    let status = registry.start_upload(repo).await?;
    Ok(session(StatusCode::ACCEPTED, &status))
}

/// `PATCH`, `PUT`, `GET` and `DELETE /v2/<name>/blobs/uploads/<id>`.
pub(crate) async fn handle(
    registry: &CallerRegistry,
    repo: &RepoName,
    id: &UploadId,
    req: Req,
) -> Handled {
    match *req.method() {
        Method::PATCH | Method::PUT => {
            let (parts, body) = req.into_parts();
            let empty = hyper::body::Body::size_hint(&body).exact() == Some(0);
            let body = SharedBody::new(body);
            let answered = chunk(registry, repo, id, &parts, empty, &body).await;
            // Refused unread (at the wrong offset, say): read the rest, so the client's
            // next request on this connection finds it open.
            if answered.is_err() {
                body.drain().await;
            }
            answered
        }
        Method::GET => {
            let status = registry.upload_status(repo, id).await?;
            Ok(session(StatusCode::NO_CONTENT, &status))
        }
        Method::DELETE => {
            registry.cancel_upload(repo, id).await?;
            Ok(finish(
                response(StatusCode::NO_CONTENT).header(CONTENT_LENGTH, 0),
                empty(),
            ))
        }
        _ => Err(method_not_allowed(req.method(), "GET, PATCH, PUT, DELETE")),
    }
}

/// A chunk (`PATCH`) or the closing `PUT`, with its body in `body`.
async fn chunk(
    registry: &CallerRegistry,
    repo: &RepoName,
    id: &UploadId,
    parts: &hyper::http::request::Parts,
    empty: bool,
    body: &SharedBody,
) -> Handled {
    let declared = match header(&parts.headers, "content-range").map(chunk_range) {
        Some(Ok(range)) => Some(range),
        Some(Err(e)) => return Err(refused(e, registry, repo, id).await),
        None => None,
    };
    if parts.method == Method::PATCH {
        let offset = match &declared {
            Some(range) => range.start,
            // Streamed without a range: the chunk continues where the upload is.
            None => registry.upload_status(repo, id).await?.offset,
        };
        let body = match checked_body(&parts.headers, body.stream(), declared) {
            Ok(body) => body,
            Err(e) => return Err(refused(e, registry, repo, id).await),
        };
        let status = registry
            .append_upload_stream(repo, id, offset, body)
            .await
            .map_err(|e| with_location(e, repo, id))?;
        return Ok(session(StatusCode::ACCEPTED, &status));
    }
    let digest: Digest = query_in(&parts.uri, "digest")
        .ok_or_else(|| {
            Error::new(
                ErrorKind::DigestInvalid,
                "closing an upload needs ?digest=<digest>",
            )
        })?
        .parse()?;
    let offset = declared.as_ref().map(|r| r.start);
    let last_chunk = if empty && declared.is_none() {
        None
    } else {
        match checked_body(&parts.headers, body.stream(), declared) {
            Ok(body) => Some(body),
            Err(e) => return Err(refused(e, registry, repo, id).await),
        }
    };
    registry
        .finish_upload_stream_at(repo, id, &digest, offset, last_chunk)
        .await
        .map_err(|e| with_location(e, repo, id))?;
    Ok(created(repo, &digest))
}

/// Where a session is: its `Location` and the bytes received.
fn session(code: StatusCode, status: &UploadStatus) -> Response {
    finish(
        response(code)
            .header(LOCATION, upload_path(&status.repo, &status.id))
            .header(RANGE, upload_range(status.offset))
            .header(DOCKER_UPLOAD_UUID, status.id.as_str())
            .header(CONTENT_LENGTH, 0),
        empty(),
    )
}

/// 201 for a blob now in `repo`.
fn created(repo: &RepoName, digest: &Digest) -> Response {
    finish(
        response(StatusCode::CREATED)
            .header(LOCATION, blob_path(repo, digest))
            .header(DOCKER_CONTENT_DIGEST, digest.to_string())
            .header(CONTENT_LENGTH, 0),
        empty(),
    )
}

/// The bytes a chunk's `Content-Range: <start>-<end>` declares (both inclusive, as the
/// spec's `^[0-9]+-[0-9]+$` has it). Anything else, and an end before the start, is
/// [`ErrorKind::RangeInvalid`] (416).
fn chunk_range(value: &str) -> Result<std::ops::Range<u64>, Error> {
    let invalid = |why: &str| {
        Error::new(
            ErrorKind::RangeInvalid,
            format!("Content-Range {value:?} {why}"),
        )
    };
    let (start, end) = value
        .split_once('-')
        .and_then(|(a, b)| Some((decimal(a)?, decimal(b)?)))
        .ok_or_else(|| invalid("is not <start>-<end> in decimal"))?;
    if end < start {
        return Err(invalid("ends before it starts"));
    }
    let end = end
        .checked_add(1)
        .ok_or_else(|| invalid("ends past the largest offset"))?;
    Ok(start..end)
}

/// The request body, held to the length its `Content-Range` declares: a `Content-Length`
/// that disagrees is refused before anything is written; a streamed body that turns out
/// longer or shorter fails at that point, keeping the bytes received within the range.
fn checked_body(
    headers: &hyper::HeaderMap,
    body: ByteStream,
    declared: Option<std::ops::Range<u64>>,
) -> Result<ByteStream, Error> {
    let Some(range) = declared else {
        return Ok(body);
    };
    let expected = range.end - range.start;
    if let Some(length) = content_length(headers)
        && length != expected
    {
        return Err(Error::new(
            ErrorKind::RangeInvalid,
            format!(
                "Content-Range {}-{} declares {expected} bytes, Content-Length {length}",
                range.start,
                range.end - 1
            ),
        ));
    }
    let limited = Limited {
        body,
        left: expected,
        expected,
        failure: None,
    };
    Ok(futures::stream::unfold(Some(limited), |state| async move {
        let mut limited = state?;
        if let Some(failure) = limited.failure.take() {
            return Some((Err(failure), None));
        }
        match limited.body.next().await {
            Some(Ok(chunk)) if chunk.len() as u64 > limited.left => {
                let within = chunk.slice(..limited.left as usize);
                limited.left = 0;
                limited.failure = Some(Error::new(
                    ErrorKind::RangeInvalid,
                    format!(
                        "the body is longer than the {} bytes its Content-Range declares",
                        limited.expected
                    ),
                ));
                Some((Ok(within), Some(limited)))
            }
            Some(Ok(chunk)) => {
                limited.left -= chunk.len() as u64;
                Some((Ok(chunk), Some(limited)))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None if limited.left > 0 => {
                let short = Error::new(
                    ErrorKind::RangeInvalid,
                    format!(
                        "the body ended {} bytes short of the {} its Content-Range declares",
                        limited.left, limited.expected
                    ),
                );
                Some((Err(short), None))
            }
            None => None,
        }
    })
    .boxed())
}

/// A request body being held to its declared length.
struct Limited {
    body: ByteStream,
    left: u64,
    expected: u64,
    /// The error to end with after the last bytes within the range.
    failure: Option<Error>,
}

/// A chunk refused before any byte was written: 416 with where the upload stands (or
/// the session's own error, if it is gone).
async fn refused(
    error: Error,
    registry: &CallerRegistry,
    repo: &RepoName,
    id: &UploadId,
) -> Failure {
    let error = match registry.upload_status(repo, id).await {
        Ok(status) => error.with_offset(status.offset),
        Err(gone) => gone,
    };
    with_location(error, repo, id)
}

/// A failed chunk answers with the session's `Location`, and with its `Range` when the
/// error says where the upload stands (a chunk at the wrong offset, or one that broke
/// off after some bytes were kept), so the client can carry on from there.
fn with_location(error: Error, repo: &RepoName, id: &UploadId) -> Failure {
    let located = error.kind() == ErrorKind::RangeInvalid || error.current_offset().is_some();
    let mut failure = Failure::from(error);
    if located {
        let location = upload_path(repo, id).parse().expect("a valid path");
        failure.0.headers_mut().insert(LOCATION, location);
    }
    failure
}
