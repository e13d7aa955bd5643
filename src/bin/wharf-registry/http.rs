//! Bodies in both directions, small header helpers, and the spec's error responses.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Request, StatusCode};
use wharf::{ByteStream, Error, ErrorKind};

/// A response body: empty, in memory, or streamed from storage.
pub(crate) type Body = UnsyncBoxBody<Bytes, Error>;
/// What every handler answers.
pub(crate) type Response = hyper::Response<Body>;
/// What handlers return.
pub(crate) type Handled = Result<Response, Failure>;
/// A request as handlers see it: its body ends with an error if it stalls.
pub(crate) type Req = Request<TimedBody>;

/// A request body that fails once it has sent nothing for a while, so a client that
/// stops sending mid-body cannot hold an upload (and a connection) forever. What
/// arrived before the stall is kept, as for a body that breaks off.
#[derive(Debug)]
pub(crate) struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed while the body is waited on; re-armed after every frame.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    pub(crate) fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|f| {
                    f.map_err(|e| {
                        Error::new(
                            ErrorKind::BlobUploadInvalid,
                            format!("reading the request body: {e}"),
                        )
                    })
                }))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Error::new(
                        ErrorKind::BlobUploadInvalid,
                        format!("the request body sent nothing for {timeout:?}"),
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A failed request, already as the spec's error response (boxed: the error path is
/// the rare one). Every [`wharf::Error`] converts with the status for its kind, so
/// handlers use `?` on library calls.
pub(crate) struct Failure(pub(crate) Box<Response>);

impl Failure {
    pub(crate) fn new(status: StatusCode, error: &Error) -> Self {
        if matches!(error.kind(), ErrorKind::Storage | ErrorKind::CorruptData) {
            crate::metrics::STORAGE_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Self(Box::new(error_response(status, error)))
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = StatusCode::from_u16(error.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, &error)
    }
}

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub(crate) const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body that streams `stream` as it is read, never holding more than a chunk.
pub(crate) fn streamed(stream: ByteStream) -> Body {
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// The request body as a stream of chunks, read only as fast as storage takes them.
pub(crate) fn request_stream(req: Req) -> ByteStream {
    body_stream(req.into_body())
}

/// A request body as a stream of chunks.
pub(crate) fn body_stream(body: TimedBody) -> ByteStream {
    BodyStream::new(body)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
        .boxed()
}

/// Request bodies a handler left unread are drained up to this many bytes: beyond, the
/// connection is closed instead.
const DRAIN_LIMIT: u64 = 4 << 20;

/// A request body shared between a library call, which may refuse it unread (a chunk at
/// the wrong offset), and the handler, which then drains the rest: hyper closes a
/// connection whose request body was not read to its end, and a client that reuses it
/// (most do) meets a closed connection on its next request.
#[derive(Clone)]
pub(crate) struct SharedBody(Arc<Mutex<ByteStream>>);

impl SharedBody {
    pub(crate) fn new(body: TimedBody) -> Self {
        Self(Arc::new(Mutex::new(body_stream(body))))
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .poll_next_unpin(cx)
    }

    /// The body as a stream, for a library call.
    pub(crate) fn stream(&self) -> ByteStream {
        let body = self.clone();
        futures::stream::poll_fn(move |cx| body.poll_next(cx)).boxed()
    }

    /// Reads what is left of the body (bounded by [`DRAIN_LIMIT`], and by the body's own
    /// stall timeout), so the connection can serve the client's next request.
    pub(crate) async fn drain(&self) {
        let mut left = DRAIN_LIMIT;
        while let Some(Ok(chunk)) = futures::future::poll_fn(|cx| self.poll_next(cx)).await {
            match left.checked_sub(chunk.len() as u64) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    }
}

/// One query parameter of `uri`, percent-decoded.
pub(crate) fn query_in(uri: &hyper::Uri, name: &str) -> Option<String> {
    values_of(uri, name).next()
}

/// Every value of the query parameter `name` in `uri`, percent-decoded, in order.
fn values_of<'a>(uri: &'a hyper::Uri, name: &'a str) -> impl Iterator<Item = String> + 'a {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(move |pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| percent_decode(value))
        })
}

/// A decimal count as the HTTP range grammars write it: digits only (no sign, no
/// spaces), within `u64`.
pub(crate) fn decimal(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The request body in memory, refusing more than `limit` bytes with 413.
pub(crate) async fn request_bytes(req: Req, limit: usize) -> Result<Bytes, Failure> {
    let too_large = || {
        let error = Error::new(
            ErrorKind::SizeInvalid,
            format!("the request body is larger than {limit} bytes"),
        );
        Failure::new(StatusCode::PAYLOAD_TOO_LARGE, &error)
    };
    if content_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = request_stream(req);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A header value as text, if present and readable.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// One query parameter, percent-decoded.
pub(crate) fn query_param(req: &Req, name: &str) -> Option<String> {
    query_in(req.uri(), name)
}

/// Every value of a repeated query parameter, percent-decoded, in order.
pub(crate) fn query_params(req: &Req, name: &str) -> Vec<String> {
    values_of(req.uri(), name).collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            // Two hex digits exactly (`from_str_radix` alone would take "+f").
            b'%' => text
                .get(i + 1..i + 3)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match (bytes[i], decoded) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value (tags and names are plain, but `last` may echo input).
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A response builder with the API version header every answer carries.
pub(crate) fn response(status: StatusCode) -> hyper::http::response::Builder {
    hyper::Response::builder()
        .status(status)
        .header(API_VERSION, HeaderValue::from_static("registry/2.0"))
}

/// Finishes a builder whose headers were all valid.
pub(crate) fn finish(builder: hyper::http::response::Builder, body: Body) -> Response {
    builder.body(body).unwrap_or_else(|e| {
        let error = Error::new(ErrorKind::Storage, format!("building a response: {e}"));
        error_response(StatusCode::INTERNAL_SERVER_ERROR, &error)
    })
}

/// 200 with a JSON body.
/// `response` (a 401) with the challenge that tells clients to send Basic credentials.
pub(crate) fn challenge(mut response: Response) -> Response {
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"wharf\""),
    );
    response
}

pub(crate) fn json_ok(body: impl Into<Bytes>) -> Response {
    let body = body.into();
    finish(
        response(StatusCode::OK)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len()),
        full(body),
    )
}

/// The `Range` header of an upload that has received `offset` bytes.
pub(crate) fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// The spec's error body, `{"errors":[{"code","message","detail"}]}`. An out-of-order
/// chunk (416) also says where the upload is.
pub(crate) fn error_response(status: StatusCode, error: &Error) -> Response {
    let kind = error.kind();
    let detail = match error.current_offset() {
        Some(offset) => serde_json::json!({ "offset": offset }),
        None => serde_json::Value::Null,
    };
    let body = serde_json::json!({
        "errors": [{ "code": kind.code(), "message": error.message(), "detail": detail }]
    });
    let body = Bytes::from(body.to_string());
    let mut builder = response(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len());
    if let Some(offset) = error.current_offset() {
        builder = builder.header("range", upload_range(offset));
    }
    builder.body(full(body)).expect("static headers are valid")
}

/// The same response with its body dropped, for `HEAD`; headers (and `Content-Length`)
/// stay.
pub(crate) fn without_body(response: Response) -> Response {
    let (parts, _) = response.into_parts();
    hyper::Response::from_parts(parts, empty())
}

/// 405 for a method the endpoint does not have, with the methods it has in `Allow`.
pub(crate) fn method_not_allowed(method: &hyper::Method, allow: &'static str) -> Failure {
    let error = Error::new(
        ErrorKind::Unsupported,
        format!("{method} is not supported on this endpoint (it allows {allow})"),
    );
    let mut failure = Failure::new(StatusCode::METHOD_NOT_ALLOWED, &error);
    failure
        .0
        .headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    failure
}
