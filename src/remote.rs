//! A client for other OCI registries (the distribution API over HTTP or HTTPS), for
//! copying images between them and wharf (feature `remote`).
//!
//! # Authentication
//!
//! Requests go out bare, or with what the registry asked for last time. A `401` names
//! the scheme in `WWW-Authenticate`:
//! - `Basic`: the credentials go on every request after it.
//! - `Bearer realm=…,service=…,scope=…` (Docker's token protocol, which Docker Hub,
//!   ECR's Docker endpoint, Distribution with token auth and wharf's own server speak):
//!   the client asks the realm for a token for that scope, with the credentials as
//!   Basic if it has any (anonymously otherwise), keeps it per scope, and retries once.
//!
//! A request whose body is a stream cannot be sent twice, so uploads first open their
//! session with a bodiless `POST` that settles authentication.
//!
//! # Trust
//!
//! Nothing read from a remote is trusted: manifests are checked against the digest they
//! were asked by (and parsed before use), blobs are verified as the registry stores them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};

use self::challenge::{Scheme, parse_challenge};
use crate::blob::ByteStream;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{Descriptor, Manifest, OCI_IMAGE_INDEX};

mod challenge;

/// The largest manifest or token answer read from a remote.
const MAX_DOCUMENT: usize = 4 << 20;

/// Manifest types asked for, most wanted first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A user name and password (or token, as ECR's `AWS` user takes).
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A blob as a remote serves it.
pub struct RemoteBlob {
    /// The size the remote announced (`Content-Length`), if it did.
    pub size: Option<u64>,
    /// The bytes, not yet verified.
    pub body: ByteStream,
}

impl std::fmt::Debug for RemoteBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBlob")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A remote registry.
pub struct RemoteRegistry {
    base: Url,
    client: reqwest::Client,
    credentials: Option<Credentials>,
    scheme: Mutex<Scheme>,
    /// Tokens by scope (`repository:team/app:pull`).
    tokens: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistry")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// What a remote holds under a manifest reference.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    /// The manifest's bytes, checked against its digest.
    pub raw: Bytes,
    /// Its digest.
    pub digest: Digest,
    /// Its media type, as the remote served it.
    pub media_type: String,
}

impl RemoteRegistry {
    /// A client for the registry at `url` (`https://registry.example`, or `http://` for a
    /// plain one), logging in with `credentials` when asked. `ca_pem` adds a certificate
    /// authority to trust beside the system's (PEM).
    pub fn new(url: &str, credentials: Option<Credentials>, ca_pem: Option<&[u8]>) -> Result<Self> {
        let invalid = |why: String| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("remote registry {url:?}: {why}"),
            )
        };
        let base = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid("not an http(s) URL with a host".to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            // A redirect may send blob reads to storage elsewhere; credentials are not
            // forwarded across hosts by reqwest.
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(pem) = ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| invalid(format!("CA certificate: {e}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        Ok(RemoteRegistry {
            base,
            client,
            credentials,
            scheme: Mutex::new(Scheme::None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The registry's address, for messages.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    fn url_of(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("{path}: {e}")))
    }

    /// The `Authorization` for a request needing `scope`, as far as known.
    fn authorization(&self, scope: &str) -> Option<String> {
        let scheme = self.scheme.lock().ok()?.clone();
        match scheme {
            Scheme::None => None,
            Scheme::Basic => self.credentials.as_ref().map(basic),
            Scheme::Bearer { .. } => self
                .tokens
                .lock()
                .ok()?
                .get(scope)
                .map(|t| format!("Bearer {t}")),
        }
    }

    /// Sends a bodiless request, logging in once if the remote asks.
    async fn send(
        &self,
        method: Method,
        url: Url,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut retried = false;
        loop {
            let mut request = self.client.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(auth) = self.authorization(scope) {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(&url, e))?;
            if response.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(response);
            }
            retried = true;
            self.log_in(&response, scope).await?;
        }
    }

    /// Answers a `401`: learns the scheme and, for `Bearer`, fetches a token.
    async fn log_in(&self, response: &reqwest::Response, scope: &str) -> Result<()> {
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let scheme = parse_challenge(&challenge).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "{} refused the request without a usable challenge ({challenge:?})",
                    self.base
                ),
            )
        })?;
        if let Ok(mut current) = self.scheme.lock() {
            *current = scheme.clone();
        }
        let Scheme::Bearer { realm, service } = scheme else {
            return if self.credentials.is_some() {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!("{} needs credentials", self.base),
                ))
            };
        };
        let mut url = Url::parse(&realm).map_err(|e| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("token realm {realm:?}: {e}"),
            )
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = self.client.get(url.clone());
        if let Some(credentials) = &self.credentials {
            request = request.header(AUTHORIZATION, basic(credentials));
        }
        let answer = request
            .send()
            .await
            .map_err(|e| self.unreachable(&url, e))?;
        if !answer.status().is_success() {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!("{realm} refused a token for {scope}: {}", answer.status()),
            ));
        }
        let body = read_capped(answer, MAX_DOCUMENT).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("{realm} answered no token: {e}"),
            )
        })?;
        let token = parsed.token.or(parsed.access_token).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("{realm} answered no token"),
            )
        })?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_owned(), token);
        }
        Ok(())
    }

    fn unreachable(&self, url: &Url, e: reqwest::Error) -> Error {
        Error::new(ErrorKind::Storage, format!("{url}: {e}"))
            .with_source(e)
            .retryable()
    }

    /// The manifest `reference` (a tag or digest) of `repo`, or `None` if there is none.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<RemoteManifest>> {
        let url = self.url_of(&format!("v2/{repo}/manifests/{reference}"))?;
        let response = self
            .send(
                Method::GET,
                url.clone(),
                &pull_scope(repo),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.check(response, &url).await?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let raw = read_capped(response, MAX_DOCUMENT).await?;
        let parsed = Manifest::parse(raw.clone(), media_type.as_deref())
            .map_err(|e| e.context(format!("{url}")))?;
        let digest = match reference.parse::<Digest>() {
            Ok(asked) => {
                let actual = parsed.digest_with(asked.algorithm());
                if actual != asked {
                    return Err(Error::new(
                        ErrorKind::DigestInvalid,
                        format!("{url} served a manifest with digest {actual}"),
                    ));
                }
                asked
            }
            Err(_) => parsed.digest().clone(),
        };
        Ok(Some(RemoteManifest {
            raw,
            digest,
            media_type: parsed.media_type().as_str().to_owned(),
        }))
    }

    /// The manifest `reference` of `repo`; [`ErrorKind::ManifestUnknown`] naming it if
    /// the remote has none.
    pub async fn required_manifest(&self, repo: &str, reference: &str) -> Result<RemoteManifest> {
        self.manifest(repo, reference).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::ManifestUnknown,
                format!("{}{repo} has no manifest {reference}", self.base),
            )
        })
    }

    /// Whether `repo` holds the blob `digest`.
    pub async fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.blob_size(repo, digest).await?.is_some())
    }

    /// The size of the blob `digest` of `repo` (`HEAD`), or `None` if it has none.
    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url_of(&format!("v2/{repo}/blobs/{digest}"))?;
        let response = self
            .send(Method::HEAD, url.clone(), &pull_scope(repo), None)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.check(response, &url).await?;
        let size = content_length(&response).ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                format!("{url} answered HEAD without a Content-Length"),
            )
        })?;
        Ok(Some(size))
    }

    /// The bytes of the blob `digest` of `repo`, streamed (the caller verifies them),
    /// with the size the remote announced.
    pub async fn blob(&self, repo: &str, digest: &Digest) -> Result<RemoteBlob> {
        let url = self.url_of(&format!("v2/{repo}/blobs/{digest}"))?;
        let response = self
            .send(Method::GET, url.clone(), &pull_scope(repo), None)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::new(
                ErrorKind::BlobUnknown,
                format!("{url}: the remote has no such blob"),
            ));
        }
        let response = self.check(response, &url).await?;
        let size = content_length(&response);
        let body = response
            .bytes_stream()
            .map_err(move |e| {
                Error::new(ErrorKind::Storage, format!("reading {url}: {e}")).retryable()
            })
            .boxed();
        Ok(RemoteBlob { size, body })
    }

    /// The referrers of `digest` in `repo`; none when the remote lacks the referrers API.
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Vec<Descriptor>> {
        let url = self.url_of(&format!("v2/{repo}/referrers/{digest}"))?;
        let response = self
            .send(
                Method::GET,
                url.clone(),
                &pull_scope(repo),
                Some(OCI_IMAGE_INDEX),
            )
            .await?;
        if matches!(
            response.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(Vec::new());
        }
        let response = self.check(response, &url).await?;
        let raw = read_capped(response, MAX_DOCUMENT).await?;
        let index =
            Manifest::parse(raw, Some(OCI_IMAGE_INDEX)).map_err(|e| e.context(format!("{url}")))?;
        Ok(index.children().to_vec())
    }

    /// Uploads the blob `digest` of `size` bytes from `body` into `repo`: a session opened
    /// by `POST`, then the bytes in one `PUT`.
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        body: ByteStream,
    ) -> Result<()> {
        let start = self.url_of(&format!("v2/{repo}/blobs/uploads/"))?;
        let scope = push_scope(repo);
        let opened = self.send(Method::POST, start.clone(), &scope, None).await?;
        let opened = self.check(opened, &start).await?;
        let location = opened
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::BlobUploadInvalid,
                    format!("{start}: no Location"),
                )
            })?;
        let mut url = self.url_of(location)?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut request = self
            .client
            .put(url.clone())
            .header(CONTENT_LENGTH, size)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(body));
        if let Some(auth) = self.authorization(&scope) {
            request = request.header(AUTHORIZATION, auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unreachable(&url, e))?;
        self.check(response, &url).await.map(|_| ())
    }

    /// Pushes a manifest under `reference` (a tag or its digest).
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        raw: Bytes,
        media_type: &str,
    ) -> Result<()> {
        let url = self.url_of(&format!("v2/{repo}/manifests/{reference}"))?;
        let scope = push_scope(repo);
        let mut retried = false;
        loop {
            let mut request = self
                .client
                .put(url.clone())
                .header(CONTENT_TYPE, media_type)
                .body(raw.clone());
            if let Some(auth) = self.authorization(&scope) {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.unreachable(&url, e))?;
            if response.status() == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.log_in(&response, &scope).await?;
                continue;
            }
            return self.check(response, &url).await.map(|_| ());
        }
    }

    /// Deletes the manifest `digest` of `repo`; one already gone is not an error.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<()> {
        let url = self.url_of(&format!("v2/{repo}/manifests/{digest}"))?;
        let scope = format!("repository:{repo}:delete");
        let response = self.send(Method::DELETE, url.clone(), &scope, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.check(response, &url).await.map(|_| ())
    }

    /// The response if it succeeded, else an error with the remote's code and message.
    async fn check(&self, response: reqwest::Response, url: &Url) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_capped(response, 64 * 1024).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let kind = match status {
            StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
            StatusCode::FORBIDDEN => ErrorKind::Denied,
            StatusCode::NOT_FOUND => ErrorKind::NameUnknown,
            StatusCode::TOO_MANY_REQUESTS => ErrorKind::TooManyRequests,
            s if s.is_server_error() => ErrorKind::Storage,
            _ => ErrorKind::InvalidArgument,
        };
        let error = Error::new(kind, format!("{url}: {status}: {}", text.trim()));
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(error.retryable())
        } else {
            Err(error)
        }
    }
}

fn basic(credentials: &Credentials) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", credentials.user, credentials.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// The body's length as the response announces it.
fn content_length(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// Reads a response body of at most `cap` bytes.
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Bytes> {
    let url = response.url().clone();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Error::new(ErrorKind::Storage, format!("reading {url}: {e}")).retryable()
        })?;
        if body.len() + chunk.len() > cap {
            return Err(Error::new(
                ErrorKind::SizeInvalid,
                format!("{url} answered more than {cap} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
