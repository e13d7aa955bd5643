//! [`S3Composer`]: staged parts joined inside S3 by a multipart upload of server-side
//! copies (`UploadPartCopy`).
//!
//! `object_store` has no ranged part copy, so the composer sends its own requests,
//! signed with [`crate::sigv4`] under the credentials of the `AmazonS3` store it
//! serves:
//!
//! 1. `POST <key>?uploads` starts the upload at the blob's key;
//! 2. one `PUT <key>?partNumber=N&uploadId=ID` per part of the [plan](super::plan):
//!    with `x-amz-copy-source` and `x-amz-copy-source-range` for a copied range, or
//!    with the bytes of gathered small objects (fetched by ranged `GET`s);
//! 3. `POST <key>?uploadId=ID` completes it, and the object appears whole. S3 may
//!    answer `200 OK` with an error in the body; the composer reads the body.
//!
//! Any failure aborts the upload (`DELETE <key>?uploadId=ID`), best effort, and so does
//! a compose dropped half way (its request cancelled): the abort is sent from a task of
//! its own. An upload abandoned by a crash is invisible, and takes space until the
//! bucket's lifecycle rule (`AbortIncompleteMultipartUpload`) removes it, as for the
//! store's own staged parts: set one on a registry's bucket.
//! [`S3Composer::incomplete_uploads`] lists those at a key.

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt, stream};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsCredentialProvider};
use object_store::path::Path;

use super::plan::{Piece, plan};
use super::s3_xml::{CopyResult, ListedUploads, S3Error, Started, parse, root_element};
use super::{Composer, StagedObject};
use crate::error::{Error, ErrorKind, Result};
use crate::sigv4;
use crate::sigv4::requests::{SigningKey, Unsigned, signed};

/// S3's smallest part (all but the last part of an upload).
pub const S3_MIN_PART: u64 = 5 << 20;
/// S3's largest part, and the largest source `CopyObject` (a rename) accepts.
pub const S3_MAX_COPY_PART: u64 = 5 << 30;
/// S3's most parts in one upload.
pub const S3_MAX_PARTS: usize = 10_000;
/// Parts copied or sent at once by one compose.
const PARTS_IN_FLIGHT: usize = 4;
/// Tries per request, and the pause before the first retry (doubled after each).
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// How long a connection may take to open, and a request to be answered: a server-side
/// copy of a 5 GiB range can take minutes.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

/// Credentials the composer signs with: the `AmazonS3` store's own
/// ([`AmazonS3::credentials`]), so both follow the same rotation.
pub type S3Credentials = AwsCredentialProvider;

/// Where the composer sends requests, and the part limits it plans with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ComposerConfig {
    /// The bucket's URL: `https://s3.<region>.amazonaws.com/<bucket>` (path style), or
    /// the virtual-hosted `https://<bucket>.s3.<region>.amazonaws.com`.
    pub bucket_endpoint: String,
    /// The bucket (copy sources name it).
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// The key prefix the blob store lives under (a `PrefixStore`'s), or empty.
    pub prefix: String,
    /// The smallest part but the last ([`S3_MIN_PART`]).
    pub min_part: u64,
    /// The largest copied part, and the largest single object a rename publishes
    /// ([`S3_MAX_COPY_PART`]; lower only to test).
    pub max_copy_part: u64,
}

impl S3ComposerConfig {
    /// The settings `builder` builds its store with, under `prefix`, and S3's limits.
    /// The bucket URL is made as `object_store` makes it (S3 Express zonal endpoints are
    /// not supported). Server-side encryption settings and requester-pays are refused:
    /// the composer's requests do not carry them, so its objects would not get the
    /// key the store's own writes get (and SSE-C copies would fail). Bucket default
    /// encryption applies to composed objects as to any other.
    pub fn from_builder(builder: &AmazonS3Builder, prefix: &str) -> Result<Self> {
        let get = |key| builder.get_config_value(&key);
        for name in [
            "aws_server_side_encryption",
            "aws_sse_kms_key_id",
            "aws_sse_customer_key_base64",
            "aws_request_payer",
        ] {
            let key: AmazonS3ConfigKey = name.parse().map_err(|e| {
                Error::new(
                    ErrorKind::Configuration,
                    format!("S3 composer: {name}: {e}"),
                )
            })?;
            if get(key).is_some_and(|v| !v.is_empty() && v != "false") {
                return Err(Error::new(
                    ErrorKind::Configuration,
                    format!(
                        "S3 composer: {name} is set, and the composer's requests do not carry it; use the bucket's default encryption instead"
                    ),
                ));
            }
        }
        let bucket = get(AmazonS3ConfigKey::Bucket)
            .ok_or_else(|| Error::new(ErrorKind::Configuration, "S3 composer: no bucket is set"))?;
        let region = get(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
        let virtual_hosted = get(AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let bucket_endpoint = match (get(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
            (Some(endpoint), true) => endpoint,
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        Ok(Self {
            bucket_endpoint,
            bucket,
            region,
            prefix: prefix.to_owned(),
            min_part: S3_MIN_PART,
            max_copy_part: S3_MAX_COPY_PART,
        })
    }
}

/// Joins staged parts inside S3 (see the module docs).
#[derive(Debug, Clone)]
pub struct S3Composer {
    client: reqwest::Client,
    config: S3ComposerConfig,
    credentials: S3Credentials,
    /// `scheme://host[:port]` of the bucket endpoint.
    origin: String,
    /// `host[:port]`, as signed.
    host: String,
    /// The endpoint's own path (`/<bucket>` in path style, else empty).
    endpoint_path: String,
    /// The prefix without slashes at its ends, or empty.
    prefix: String,
}

impl S3Composer {
    /// A composer for the store `s3` built from `builder`, with the blob store under
    /// `prefix` in it.
    pub fn for_store(builder: &AmazonS3Builder, s3: &AmazonS3, prefix: &str) -> Result<Self> {
        Self::new(
            S3ComposerConfig::from_builder(builder, prefix)?,
            s3.credentials().clone(),
        )
    }

    /// A composer sending requests as `config` says, signed with `credentials`.
    pub fn new(config: S3ComposerConfig, credentials: S3Credentials) -> Result<Self> {
        let bad = |why: String| Error::new(ErrorKind::Configuration, format!("S3 composer: {why}"));
        if config.min_part == 0 || config.max_copy_part < 2 * config.min_part {
            return Err(bad(format!(
                "parts of {}..{} bytes: the largest must be at least twice the smallest",
                config.min_part, config.max_copy_part
            )));
        }
        let url = reqwest::Url::parse(&config.bucket_endpoint)
            .map_err(|e| bad(format!("bucket endpoint {:?}: {e}", config.bucket_endpoint)))?;
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => return Err(bad(format!("{url} has no host"))),
        };
        // Keys are signed as sent; a prefix that would need escaping is refused
        // rather than signed one way and sent another.
        let prefix = config.prefix.trim_matches('/');
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        {
            return Err(bad(format!(
                "prefix {prefix:?} must be letters, digits, '-', '_', '.' and '/'"
            )));
        }
        let endpoint_path = url.path().trim_end_matches('/').to_owned();
        let prefix = prefix.to_owned();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            origin: format!("{}://{host}", url.scheme()),
            host,
            endpoint_path,
            prefix,
            config,
            credentials,
        })
    }

    /// The object key of `path` in the bucket.
    fn object_key(&self, path: &Path) -> String {
        match self.prefix.as_str() {
            "" => path.as_ref().to_owned(),
            prefix => format!("{prefix}/{path}"),
        }
    }

    /// Sends one signed request for the object `request.key`.
    async fn send(&self, request: &Request<'_>) -> Result<reqwest::Response> {
        let credential = self.credentials.get_credential().await.map_err(|e| {
            Error::new(
                ErrorKind::Storage,
                format!("S3 {}: no credentials: {e}", request.what),
            )
        })?;
        let payload = sigv4::payload_hash(&request.body);
        let mut headers: Vec<(&str, &str)> = vec![("x-amz-content-sha256", &payload)];
        headers.extend(request.headers.iter().map(|(n, v)| (*n, v.as_str())));
        let path = format!("{}/{}", self.endpoint_path, request.key);
        let unsigned = Unsigned {
            method: request.method.clone(),
            origin: &self.origin,
            host: &self.host,
            path: &path,
            query: &request.query,
            headers: &headers,
            payload_sha256: &payload,
        };
        let key = SigningKey {
            access_key_id: &credential.key_id,
            secret: &credential.secret_key,
            session_token: credential.token.as_deref(),
            region: &self.config.region,
            service: "s3",
        };
        signed(&self.client, unsigned, &key)
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Storage, format!("S3 {}: {e}", request.what)).retryable()
            })
    }

    /// Sends `request` until it succeeds or fails for good: S3 asks clients to retry
    /// `SlowDown` and server errors, and every request here may be sent again (a part
    /// sent twice is replaced; a second start leaves an unused upload to the bucket's
    /// lifecycle rule).
    async fn call(&self, request: Request<'_>) -> Result<(reqwest::header::HeaderMap, Bytes)> {
        let mut attempt = 1;
        loop {
            match self.call_once(&request).await {
                Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                    tokio::time::sleep(RETRY_PAUSE * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    /// Sends `request` once and reads its answer: the response headers and body of a
    /// success, or S3's error. Answers that may carry an error in a `200 OK` body (all
    /// but reads, whose bodies are blob bytes) are checked for one.
    async fn call_once(
        &self,
        request: &Request<'_>,
    ) -> Result<(reqwest::header::HeaderMap, Bytes)> {
        let what = &request.what;
        let response = self.send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::new(ErrorKind::Storage, format!("S3 {what}: {e}")).retryable())?;
        let text = std::str::from_utf8(&body).unwrap_or_default();
        let is_error = !status.is_success()
            || (request.method != reqwest::Method::GET
                && root_element(text).as_deref() == Some("Error"));
        if !is_error {
            return Ok((headers, body));
        }
        let answer: S3Error = quick_xml::de::from_str(text).unwrap_or_default();
        let transient = status.is_server_error()
            || status.as_u16() == 429
            || matches!(
                answer.code.as_deref(),
                Some("SlowDown" | "InternalError" | "ServiceUnavailable")
            );
        let error = Error::new(
            ErrorKind::Storage,
            format!(
                "S3 {what}: {status}: {} {}",
                answer.code.as_deref().unwrap_or("no error code"),
                answer.message.unwrap_or_default()
            ),
        );
        Err(if transient { error.retryable() } else { error })
    }

    async fn start(&self, target: &str) -> Result<String> {
        let (_, body) = self
            .call(Request::new(
                reqwest::Method::POST,
                target,
                "uploads",
                "start",
            ))
            .await?;
        let started: Started = parse(&body, "starting a multipart upload")?;
        Ok(started.upload_id)
    }

    /// Uploads part `number` (from 1) as `piece` says; its ETag.
    async fn put_piece(
        &self,
        target: &str,
        upload_id: &str,
        number: usize,
        piece: &Piece,
        sources: &[String],
    ) -> Result<String> {
        let query = format!(
            "partNumber={number}&uploadId={}",
            sigv4::uri_encode(upload_id, true)
        );
        let mut request = Request::new(reqwest::Method::PUT, target, &query, "part");
        match piece {
            Piece::Copy { source, range } => {
                let copy_source = format!("{}/{}", self.config.bucket, sources[*source]);
                request.headers = vec![
                    ("x-amz-copy-source", copy_source),
                    (
                        "x-amz-copy-source-range",
                        format!("bytes={}-{}", range.start, range.end - 1),
                    ),
                ];
                let (_, body) = self.call(request).await?;
                let copied: CopyResult = parse(&body, "copying a part")?;
                Ok(copied.etag)
            }
            Piece::Send(ranges) => {
                let mut bytes = BytesMut::with_capacity(piece.len() as usize);
                for (source, range) in ranges {
                    bytes.extend_from_slice(&self.fetch(&sources[*source], range).await?);
                }
                request.body = bytes.freeze();
                let (headers, _) = self.call(request).await?;
                headers
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Storage,
                            "S3 part upload answered without an ETag",
                        )
                    })
            }
        }
    }

    async fn fetch(&self, key: &str, range: &std::ops::Range<u64>) -> Result<Bytes> {
        let mut request = Request::new(reqwest::Method::GET, key, "", "read");
        request.headers = vec![("range", format!("bytes={}-{}", range.start, range.end - 1))];
        let (_, body) = self.call(request).await?;
        if body.len() as u64 != range.end - range.start {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "S3 read of {key}: {} bytes for a range of {}",
                    body.len(),
                    range.end - range.start
                ),
            ));
        }
        Ok(body)
    }

    async fn complete(&self, target: &str, upload_id: &str, etags: &[String]) -> Result<()> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                quick_xml::escape::escape(etag.as_str())
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let query = format!("uploadId={}", sigv4::uri_encode(upload_id, true));
        let mut request = Request::new(reqwest::Method::POST, target, &query, "complete");
        request.body = Bytes::from(xml);
        self.call(request).await.map(drop)
    }

    /// Whether the object `key` is there (a failure to tell counts as no).
    async fn exists(&self, key: &str) -> bool {
        let request = Request::new(reqwest::Method::HEAD, key, "", "look up");
        self.call(request).await.is_ok()
    }

    async fn abort(&self, target: &str, upload_id: &str) {
        let query = format!("uploadId={}", sigv4::uri_encode(upload_id, true));
        let request = Request::new(reqwest::Method::DELETE, target, &query, "abort");
        let _ = self.call(request).await;
    }

    /// The ids of multipart uploads started at `target` and neither completed nor
    /// aborted (the first 1000): what a compose that stopped half way leaves until the
    /// bucket's lifecycle rule removes it.
    pub async fn incomplete_uploads(&self, target: &Path) -> Result<Vec<String>> {
        let key = self.object_key(target);
        let query = format!("prefix={}&uploads", sigv4::uri_encode(&key, true));
        let request = Request::new(reqwest::Method::GET, "", &query, "list uploads");
        let (_, body) = self.call(request).await?;
        let listed: ListedUploads = parse(&body, "listing multipart uploads")?;
        Ok(listed
            .uploads
            .into_iter()
            .filter(|u| u.key == key)
            .map(|u| u.upload_id)
            .collect())
    }
}

/// A started upload that is aborted if its compose is dropped before it completes or
/// aborts (a client gone, a request cancelled): S3 would keep its parts, and bill them,
/// until the bucket's lifecycle rule removes them.
struct AbortOnDrop {
    armed: Option<(S3Composer, String, String)>,
}

impl AbortOnDrop {
    fn new(composer: &S3Composer, target: &str, upload_id: &str) -> Self {
        Self {
            armed: Some((composer.clone(), target.to_owned(), upload_id.to_owned())),
        }
    }

    /// The compose completed or aborted the upload itself.
    fn disarm(mut self) {
        self.armed = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some((composer, target, upload_id)) = self.armed.take() else {
            return;
        };
        // Dropped outside a runtime (at shutdown): nothing to send it with.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { composer.abort(&target, &upload_id).await });
        }
    }
}

#[async_trait::async_trait]
impl Composer for S3Composer {
    fn rename_limit(&self) -> u64 {
        self.config.max_copy_part
    }

    async fn compose(&self, parts: &[StagedObject], target: &Path) -> Result<()> {
        let lens: Vec<u64> = parts.iter().map(|p| p.len).collect();
        let pieces = plan(&lens, self.config.min_part, self.config.max_copy_part);
        if pieces.len() > S3_MAX_PARTS {
            return Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "composing {target}: {} parts, more than S3's {S3_MAX_PARTS}",
                    pieces.len()
                ),
            ));
        }
        let sources: Vec<String> = parts.iter().map(|p| self.object_key(&p.path)).collect();
        let target_key = self.object_key(target);
        let upload_id = self.start(&target_key).await?;
        let guard = AbortOnDrop::new(self, &target_key, &upload_id);
        let uploaded = async {
            // By index: a closure over borrowed pieces trips async_trait's lifetimes.
            let etags: Vec<String> = stream::iter(0..pieces.len())
                .map(|i| self.put_piece(&target_key, &upload_id, i + 1, &pieces[i], &sources))
                .buffered(PARTS_IN_FLIGHT)
                .try_collect()
                .await?;
            self.complete(&target_key, &upload_id, &etags).await
        }
        .await;
        guard.disarm();
        if let Err(e) = uploaded {
            // A complete that S3 carried out but whose answer was lost fails its retry
            // (the upload is gone): the object is there, whole, and that is success.
            if self.exists(&target_key).await {
                return Ok(());
            }
            self.abort(&target_key, &upload_id).await;
            return Err(e.context(format!("composing {target}")));
        }
        Ok(())
    }
}

/// One request to send.
struct Request<'a> {
    method: reqwest::Method,
    /// The object key, without the bucket.
    key: &'a str,
    query: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// What it does, for errors.
    what: String,
}

impl<'a> Request<'a> {
    fn new(method: reqwest::Method, key: &'a str, query: &str, what: &str) -> Self {
        Self {
            method,
            key,
            query: query.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            what: format!("{what} {key}"),
        }
    }
}
