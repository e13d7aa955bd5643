//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (a session, a monolithic push, or a
//! cross-repository mount) and `PATCH`, `PUT`, `GET`, `DELETE` on a session.

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, LOCATION, RANGE};
use hyper::{Method, Request, StatusCode};
use wharf::{Digest, Error, ErrorKind, Registry, RepoName, UploadId, UploadStatus};

use crate::http::{
    DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, Failure, Handled, Response, empty, finish,
    has_no_body, header, method_not_allowed, query_param, request_stream, response, upload_range,
};
use crate::routes::{blob_path, upload_path};

/// `POST /v2/<name>/blobs/uploads/`.
pub(crate) async fn start(registry: &Registry, repo: &RepoName, req: Request<Incoming>) -> Handled {
    if req.method() != Method::POST {
        return Err(method_not_allowed(req.method()));
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
            .push_blob(repo, &digest, request_stream(req))
            .await?;
        return Ok(created(repo, &digest));
    }
    let status = registry.start_upload(repo).await?;
    Ok(session(StatusCode::ACCEPTED, &status))
}

/// `PATCH`, `PUT`, `GET` and `DELETE /v2/<name>/blobs/uploads/<id>`.
pub(crate) async fn handle(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
    req: Request<Incoming>,
) -> Handled {
    match *req.method() {
        Method::PATCH => {
            let offset = match header(req.headers(), "content-range") {
                Some(range) => range_start(range)?,
                // Streamed without a range: the chunk continues where the upload is.
                None => registry.upload_status(repo, id).await?.offset,
            };
            let status = registry
                .append_upload_stream(repo, id, offset, request_stream(req))
                .await
                .map_err(|e| out_of_order(e, repo, id))?;
            Ok(session(StatusCode::ACCEPTED, &status))
        }
        Method::PUT => {
            let digest: Digest = query_param(&req, "digest")
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::DigestInvalid,
                        "closing an upload needs ?digest=<digest>",
                    )
                })?
                .parse()?;
            let last_chunk = (!has_no_body(&req)).then(|| request_stream(req));
            registry
                .finish_upload_stream(repo, id, &digest, last_chunk)
                .await
                .map_err(|e| out_of_order(e, repo, id))?;
            Ok(created(repo, &digest))
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
        _ => Err(method_not_allowed(req.method())),
    }
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

/// The first byte of a chunk's `Content-Range: <start>-<end>`.
fn range_start(range: &str) -> Result<u64, Failure> {
    let range = range.trim().trim_start_matches("bytes").trim_start();
    range
        .split_once('-')
        .and_then(|(start, _)| start.trim().parse().ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::BlobUploadInvalid,
                format!("Content-Range {range:?} is not <start>-<end>"),
            )
            .into()
        })
}

/// A chunk at the wrong offset is 416 with the session's `Location` and current `Range`
/// (set from the error), so the client can carry on from there.
fn out_of_order(error: Error, repo: &RepoName, id: &UploadId) -> Failure {
    let is_range = error.kind() == ErrorKind::RangeInvalid;
    let mut failure = Failure::from(error);
    if is_range {
        let location = upload_path(repo, id).parse().expect("a valid path");
        failure.0.headers_mut().insert(LOCATION, location);
    }
    failure
}
