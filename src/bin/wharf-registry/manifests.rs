//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, StatusCode};
use wharf::{
    CallerRegistry, DEFAULT_MAX_MANIFEST_SIZE, Error, ErrorKind, Reference, RepoName, Tag,
};

use crate::http::{
    DOCKER_CONTENT_DIGEST, Handled, OCI_SUBJECT, OCI_TAG, Req, empty, finish, full, header,
    method_not_allowed, query_params, request_bytes, response,
};
use crate::routes::manifest_path;

pub(crate) async fn handle(
    registry: &CallerRegistry,
    repo: &RepoName,
    reference: &str,
    req: Req,
) -> Handled {
    let reference = match reference.parse::<Reference>() {
        Ok(reference) => reference,
        // Nothing can be stored under a malformed reference: unknown to a read, invalid
        // to a push.
        Err(e) if req.method() == Method::PUT => return Err(e.into()),
        Err(_) => {
            let error = Error::new(
                ErrorKind::ManifestUnknown,
                format!(
                    "{reference:?} is neither a tag nor a digest: no manifest in {repo} has it"
                ),
            );
            return Err(error.into());
        }
    };
    let reference = &reference;
    match *req.method() {
        Method::HEAD => {
            let info = registry.stat_manifest(repo, reference).await?;
            Ok(finish(
                response(StatusCode::OK)
                    .header(CONTENT_TYPE, info.media_type)
                    .header(CONTENT_LENGTH, info.size)
                    .header(DOCKER_CONTENT_DIGEST, info.digest.to_string()),
                empty(),
            ))
        }
        Method::GET => {
            let manifest = registry.get_manifest(repo, reference).await?;
            Ok(finish(
                response(StatusCode::OK)
                    .header(CONTENT_TYPE, manifest.media_type)
                    .header(CONTENT_LENGTH, manifest.raw.len())
                    .header(DOCKER_CONTENT_DIGEST, manifest.digest.to_string()),
                full(manifest.raw),
            ))
        }
        Method::PUT => {
            let content_type = header(req.headers(), CONTENT_TYPE.as_str()).map(str::to_owned);
            // `?tag=` (one or more) tags a push by digest, so any digest can be tagged.
            let tags = query_params(&req, "tag")
                .iter()
                .map(|t| t.parse::<Tag>())
                .collect::<Result<Vec<_>, _>>()?;
            let raw = request_bytes(req, DEFAULT_MAX_MANIFEST_SIZE).await?;
            let pushed = registry
                .push_manifest(repo, reference, raw, content_type.as_deref())
                .await?;
            for tag in &tags {
                registry.tag_manifest(repo, tag, &pushed.digest).await?;
            }
            let mut builder = response(StatusCode::CREATED)
                .header(LOCATION, manifest_path(repo, &pushed.digest))
                .header(DOCKER_CONTENT_DIGEST, pushed.digest.to_string())
                .header(CONTENT_LENGTH, 0);
            for tag in &tags {
                builder = builder.header(OCI_TAG, tag.as_str());
            }
            if let Some(subject) = &pushed.subject {
                builder = builder.header(OCI_SUBJECT, subject.to_string());
            }
            Ok(finish(builder, empty()))
        }
        Method::DELETE => {
            match reference {
                Reference::Digest(digest) => registry.delete_manifest(repo, digest).await?,
                Reference::Tag(tag) => registry.delete_tag(repo, tag).await?,
            }
            Ok(finish(response(StatusCode::ACCEPTED), empty()))
        }
        _ => Err(method_not_allowed(req.method(), "GET, HEAD, PUT, DELETE")),
    }
}
