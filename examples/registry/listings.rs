//! The listing endpoints: `tags/list`, `_catalog` (both paginated with `n`, `last` and
//! a `Link` to the next page) and `referrers/<digest>`.

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, LINK};
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use wharf::{Digest, Error, ErrorKind, OCI_IMAGE_INDEX, Registry, RepoName, Tag};

use crate::http::{
    Failure, Handled, OCI_FILTERS_APPLIED, finish, full, method_not_allowed, percent_encode,
    query_param, response,
};

/// The most entries one page holds, whatever `n` asks.
const MAX_PAGE: usize = 10_000;

/// `n` and `last` of a paginated listing; without `n`, everything.
struct Page {
    n: Option<usize>,
    last: Option<String>,
}

impl Page {
    fn of(req: &Request<Incoming>) -> Result<Self, Failure> {
        if req.method() != Method::GET {
            return Err(method_not_allowed(req.method()));
        }
        let n = match query_param(req, "n") {
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("n must be a count, not {n:?}"),
                )
            })?),
            None => None,
        };
        Ok(Self {
            n: n.map(|n| n.min(MAX_PAGE)),
            last: query_param(req, "last").filter(|l| !l.is_empty()),
        })
    }

    /// A 200 JSON answer, with a `Link` to the next page when this one is full.
    fn answer(&self, path: &str, body: serde_json::Value, items: &[String]) -> Handled {
        let body = body.to_string();
        let mut builder = response(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len());
        if let (Some(n), Some(last)) = (self.n, items.last())
            && items.len() == n
        {
            let next = format!("<{path}?n={n}&last={}>; rel=\"next\"", percent_encode(last));
            builder = builder.header(LINK, next);
        }
        Ok(finish(builder, full(body)))
    }
}

/// `GET /v2/<name>/tags/list`.
pub(crate) async fn tags(registry: &Registry, repo: &RepoName, req: &Request<Incoming>) -> Handled {
    let page = Page::of(req)?;
    let mut last: Option<Tag> = page.last.as_deref().map(str::parse).transpose()?;
    let mut tags: Vec<String> = Vec::new();
    loop {
        let want = page.n.map_or(MAX_PAGE, |n| n - tags.len());
        if want == 0 {
            break;
        }
        let batch = registry.list_tags(repo, want, last.as_ref()).await?;
        let done = batch.len() < want || page.n.is_some();
        last = batch.last().cloned();
        tags.extend(batch.iter().map(|t| t.to_string()));
        if done || last.is_none() {
            break;
        }
    }
    let body = json!({ "name": repo.as_str(), "tags": tags });
    page.answer(&format!("/v2/{repo}/tags/list"), body, &tags)
}

/// `GET /v2/_catalog`.
pub(crate) async fn catalog(registry: &Registry, req: &Request<Incoming>) -> Handled {
    let page = Page::of(req)?;
    let mut last: Option<RepoName> = page.last.as_deref().map(str::parse).transpose()?;
    let mut names: Vec<String> = Vec::new();
    loop {
        let want = page.n.map_or(MAX_PAGE, |n| n - names.len());
        if want == 0 {
            break;
        }
        let batch = registry.list_repositories(want, last.as_ref()).await?;
        let done = batch.len() < want || page.n.is_some();
        last = batch.last().cloned();
        names.extend(batch.iter().map(|r| r.to_string()));
        if done || last.is_none() {
            break;
        }
    }
    page.answer("/v2/_catalog", json!({ "repositories": names }), &names)
}

/// `GET /v2/<name>/referrers/<digest>`, optionally `?artifactType=`.
pub(crate) async fn referrers(
    registry: &Registry,
    repo: &RepoName,
    subject: &Digest,
    req: &Request<Incoming>,
) -> Handled {
    if req.method() != Method::GET {
        return Err(method_not_allowed(req.method()));
    }
    let artifact_type = query_param(req, "artifactType");
    let found = registry
        .referrers(repo, subject, artifact_type.as_deref())
        .await?;
    let mut builder = response(StatusCode::OK)
        .header(CONTENT_TYPE, OCI_IMAGE_INDEX)
        .header(CONTENT_LENGTH, found.index.len());
    if found.filtered {
        builder = builder.header(OCI_FILTERS_APPLIED, "artifactType");
    }
    Ok(finish(builder, full(found.index)))
}
