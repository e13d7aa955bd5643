//! The listing endpoints: `tags/list`, `_catalog` (both paginated with `n`, `last` and
//! a `Link` to the next page) and `referrers/<digest>`.

use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, LINK};
use hyper::{Method, StatusCode};
use serde_json::json;
use wharf::{CallerRegistry, Digest, Error, ErrorKind, OCI_IMAGE_INDEX, RepoName, Tag};

use crate::http::{
    Failure, Handled, OCI_FILTERS_APPLIED, Req, finish, full, method_not_allowed, percent_encode,
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
    fn of(req: &Req) -> Result<Self, Failure> {
        if req.method() != Method::GET {
            return Err(method_not_allowed(req.method(), "GET"));
        }
        let n = match query_param(req, "n") {
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                Error::new(
                    ErrorKind::PaginationInvalid,
                    format!("n must be a count from 0, not {n:?}"),
                )
            })?),
            None => None,
        };
        Ok(Self {
            n: n.map(|n| n.min(MAX_PAGE)),
            last: query_param(req, "last").filter(|l| !l.is_empty()),
        })
    }

    /// A 200 JSON answer, with a `Link` to the next page when more entries follow.
    fn answer(&self, path: &str, body: serde_json::Value, items: &[String], more: bool) -> Handled {
        let body = body.to_string();
        let mut builder = response(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len());
        if let (Some(n), Some(last), true) = (self.n, items.last(), more) {
            let next = format!("<{path}?n={n}&last={}>; rel=\"next\"", percent_encode(last));
            builder = builder.header(LINK, next);
        }
        Ok(finish(builder, full(body)))
    }

    /// Collects one page from `fetch(want, after)`, which returns at most `want` entries
    /// in order: with `n`, one call for `n + 1` (the extra one only says that more
    /// follow); without, batches until the listing ends. The first call always runs, so
    /// an unknown repository is an error even for `n=0`.
    async fn collect<T: Clone, F, Fut>(
        &self,
        mut after: Option<T>,
        fetch: F,
    ) -> Result<(Vec<T>, bool), Failure>
    where
        F: Fn(usize, Option<T>) -> Fut,
        Fut: std::future::Future<Output = wharf::Result<Vec<T>>>,
    {
        if let Some(n) = self.n {
            let mut items = fetch(n + 1, after).await?;
            let more = items.len() > n;
            items.truncate(n);
            return Ok((items, more && n > 0));
        }
        let mut items = Vec::new();
        loop {
            let batch = fetch(MAX_PAGE, after.clone()).await?;
            let done = batch.len() < MAX_PAGE;
            after = batch.last().cloned().or(after);
            items.extend(batch);
            if done {
                return Ok((items, false));
            }
        }
    }
}

/// `GET /v2/<name>/tags/list`.
pub(crate) async fn tags(registry: &CallerRegistry, repo: &RepoName, req: &Req) -> Handled {
    let page = Page::of(req)?;
    let last: Option<Tag> = page.last.as_deref().map(str::parse).transpose()?;
    let (tags, more) = page
        .collect(last, |n, after| async move {
            registry.list_tags(repo, n, after.as_ref()).await
        })
        .await?;
    let tags: Vec<String> = tags.iter().map(Tag::to_string).collect();
    let body = json!({ "name": repo.as_str(), "tags": tags });
    page.answer(&format!("/v2/{repo}/tags/list"), body, &tags, more)
}

/// `GET /v2/_catalog`.
pub(crate) async fn catalog(registry: &CallerRegistry, req: &Req) -> Handled {
    let page = Page::of(req)?;
    let last: Option<RepoName> = page.last.as_deref().map(str::parse).transpose()?;
    let (names, more) = page
        .collect(last, |n, after| async move {
            registry.list_repositories(n, after.as_ref()).await
        })
        .await?;
    let names: Vec<String> = names.iter().map(RepoName::to_string).collect();
    page.answer(
        "/v2/_catalog",
        json!({ "repositories": names }),
        &names,
        more,
    )
}

/// `GET /v2/<name>/referrers/<digest>`, optionally `?artifactType=`.
pub(crate) async fn referrers(
    registry: &CallerRegistry,
    repo: &RepoName,
    subject: &Digest,
    req: &Req,
) -> Handled {
    if req.method() != Method::GET {
        return Err(method_not_allowed(req.method(), "GET"));
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
