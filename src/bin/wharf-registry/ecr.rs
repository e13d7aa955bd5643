//! The ECR-compatible API: `POST /` with `X-Amz-Target:
//! AmazonEC2ContainerRegistry_V20150921.<Action>` and a JSON body, signed with AWS
//! Signature Version 4 by an access key from the users file, so the `aws` CLI and the
//! AWS SDKs manage the registry with an endpoint override. Each action is a thin mapping
//! onto the registry as the caller sees it (`ecr_actions.rs`); errors are AWS JSON errors
//! with ECR's exception names, mapped in one place here.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Value, json};
use wharf::sigv4::{self, Authorization, SigV4Error, Signable};
use wharf::{CallerRegistry, ErrorKind, Registry};

use crate::http::{self, Req, Response};
use crate::login::Login;

/// The target prefix of every ECR action.
const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// The content type AWS JSON 1.1 requests and answers carry.
const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// The largest request body taken (a `PutImage` carries a manifest of at most 4 MiB,
/// escaped in JSON).
const MAX_BODY: usize = 10 << 20;

/// An AWS JSON error: HTTP status, ECR's exception name, a message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        let status = match code {
            "ServerException" => StatusCode::INTERNAL_SERVER_ERROR,
            "ThrottlingException" => StatusCode::TOO_MANY_REQUESTS,
            "MissingAuthenticationTokenException" | "InvalidSignatureException" => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `InvalidParameterException` naming the field.
    pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new("InvalidParameterException", format!("{field}: {why}"))
    }
}

impl From<wharf::Error> for ApiError {
    fn from(error: wharf::Error) -> Self {
        let code = match error.kind() {
            ErrorKind::NameUnknown => "RepositoryNotFoundException",
            ErrorKind::ManifestUnknown => "ImageNotFoundException",
            ErrorKind::BlobUnknown | ErrorKind::ManifestBlobUnknown => "LayersNotFoundException",
            ErrorKind::TagImmutable => "ImageTagAlreadyExistsException",
            ErrorKind::RepositoryNotEmpty => "RepositoryNotEmptyException",
            ErrorKind::ScanNotFound => "ScanNotFoundException",
            ErrorKind::Denied | ErrorKind::Unauthorized => "AccessDeniedException",
            ErrorKind::TooManyRequests => "ThrottlingException",
            ErrorKind::NameInvalid
            | ErrorKind::TagInvalid
            | ErrorKind::DigestInvalid
            | ErrorKind::ManifestInvalid
            | ErrorKind::PolicyInvalid
            | ErrorKind::InvalidArgument
            | ErrorKind::PaginationInvalid
            | ErrorKind::SizeInvalid => "InvalidParameterException",
            _ => "ServerException",
        };
        Self::new(code, error.message())
    }
}

impl From<SigV4Error> for ApiError {
    fn from(error: SigV4Error) -> Self {
        Self::new(error.code(), error.to_string())
    }
}

fn error_response(error: &ApiError) -> Response {
    let body = json!({"__type": error.code, "message": error.message}).to_string();
    http::finish(
        hyper::Response::builder()
            .status(error.status)
            .header(CONTENT_TYPE, AMZ_JSON)
            .header(CONTENT_LENGTH, body.len())
            .header("x-amzn-errortype", error.code),
        http::full(body),
    )
}

fn ok_response(body: Value) -> Response {
    let body = body.to_string();
    http::finish(
        hyper::Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, AMZ_JSON)
            .header(CONTENT_LENGTH, body.len()),
        http::full(body),
    )
}

/// What an action gets: the registry as the caller sees it, the request's parameters,
/// and what it needs to describe the registry to the caller.
pub(crate) struct Call<'a> {
    pub(crate) caller: CallerRegistry,
    pub(crate) params: Value,
    pub(crate) login: &'a Login,
    /// The user the access key belongs to.
    pub(crate) user: String,
    /// The host clients reach the registry by, for repository URIs.
    pub(crate) host: String,
}

/// Answers one API request.
pub(crate) async fn handle(
    login: &Login,
    registry: &Registry,
    req: Req,
    peer: SocketAddr,
) -> Response {
    match answer(login, registry, req, peer).await {
        Ok(body) => ok_response(body),
        Err(error) => error_response(&error),
    }
}

async fn answer(
    login: &Login,
    registry: &Registry,
    req: Req,
    peer: SocketAddr,
) -> Result<Value, ApiError> {
    if req.method() != hyper::Method::POST {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!("{} /: the ECR API takes POST", req.method()),
        ));
    }
    let action = http::header(req.headers(), "x-amz-target")
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .ok_or_else(|| {
            ApiError::new(
                "UnknownOperationException",
                format!("X-Amz-Target must be {TARGET_PREFIX}<Action>"),
            )
        })?
        .to_owned();
    let content_type = http::header(req.headers(), "content-type").unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some(AMZ_JSON) {
        return Err(ApiError::new(
            "SerializationException",
            format!("Content-Type must be {AMZ_JSON}, not {content_type:?}"),
        ));
    }
    let host = http::header(req.headers(), "host")
        .unwrap_or_default()
        .to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let (path, query) = (
        req.uri().path().to_owned(),
        req.uri().query().unwrap_or("").to_owned(),
    );
    let claimed = identify(login, &headers, peer)?;
    let body = http::request_bytes(req, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            "InvalidParameterException",
            format!("the request body is over {MAX_BODY} bytes, or broke off"),
        )
    })?;
    let (principal, user) = authenticate(login, claimed, &headers, &path, &query, &body, peer)?;
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                "SerializationException",
                format!("the body is not JSON: {e}"),
            )
        })?
    };
    if !params.is_object() {
        return Err(ApiError::new(
            "SerializationException",
            "the body must be a JSON object",
        ));
    }
    let call = Call {
        caller: registry.as_caller(principal, login.context(peer)),
        params,
        login,
        user,
        host,
    };
    crate::ecr_actions::dispatch(&action, call).await
}

/// The access key a request says it is signed with: checked before the body is read,
/// so a caller without a known key cannot make the server take in a large body.
struct Claimed {
    authorization: Authorization,
    secret: String,
    principal: wharf::access::Principal,
}

fn identify(
    login: &Login,
    headers: &[(String, String)],
    peer: SocketAddr,
) -> Result<Claimed, ApiError> {
    let auth = &login.auth;
    if auth.is_throttled(peer.ip()) {
        return Err(ApiError::new(
            "ThrottlingException",
            "too many failed requests from this address: wait a minute",
        ));
    }
    let value = headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str())
        .ok_or(SigV4Error::Missing)?;
    let authorization = Authorization::parse(value)?;
    let Some((secret, principal)) = auth.access_key(&authorization.access_key_id) else {
        auth.note_failure(peer.ip());
        return Err(SigV4Error::UnknownKey.into());
    };
    Ok(Claimed {
        authorization,
        secret: secret.to_owned(),
        principal,
    })
}

/// Checks the signature of a request whose key was [`identify`]-ed, now that its body
/// is here: the caller and its user name.
fn authenticate(
    login: &Login,
    claimed: Claimed,
    headers: &[(String, String)],
    path: &str,
    query: &str,
    body: &Bytes,
    peer: SocketAddr,
) -> Result<(wharf::access::Principal, String), ApiError> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let payload = sigv4::payload_hash(body);
    let request = Signable {
        method: "POST",
        path,
        query,
        headers: &pairs,
        payload_sha256: &payload,
    };
    sigv4::verify(
        &request,
        &claimed.authorization,
        &claimed.secret,
        &login.region,
        "ecr",
        std::time::SystemTime::now(),
    )
    .map_err(|e| {
        login.auth.note_failure(peer.ip());
        ApiError::from(e)
    })?;
    let user = claimed
        .principal
        .identity()
        .map(|identity| identity.name.clone())
        .unwrap_or_default();
    Ok((claimed.principal, user))
}
