//! AWS Signature Version 4: signing requests, and verifying requests signed by AWS
//! SDKs and the `aws` CLI (the ECR-compatible API takes them).
//!
//! # Format
//!
//! The `Authorization` header reads
//! `AWS4-HMAC-SHA256 Credential=<key id>/<yyyymmdd>/<region>/<service>/aws4_request,
//! SignedHeaders=<h1;h2;...>, Signature=<64 hex>`, and `X-Amz-Date` holds the time as
//! `yyyymmddThhmmssZ`. The signature is HMAC-SHA256, under a key derived by HMAC-SHA256
//! from `"AWS4" + secret` through the date, region, service and `aws4_request`, of
//!
//! ```text
//! AWS4-HMAC-SHA256 \n <X-Amz-Date> \n <date>/<region>/<service>/aws4_request \n
//! hex(sha256(canonical request))
//! ```
//!
//! where the canonical request is the method, the path URI-encoded again (so `%20`
//! becomes `%2520`, as every service but S3 signs it), the query parameters decoded,
//! re-encoded and sorted, each signed header as `name:value` (lowercase name, value with
//! runs of spaces made one and the ends trimmed) in name order, the signed header names,
//! and the hex SHA-256 of the body, one per line.
//!
//! Verification refuses, each with AWS's error: no `Authorization`; one that does not
//! parse; an unknown key id; a scope for another region or service, or whose date is not
//! the `X-Amz-Date` day; a time more than [`MAX_SKEW`] from now; `host` or `x-amz-date`
//! not signed; and a signature that does not match (compared in constant time).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

#[cfg(any(feature = "s3", feature = "kms"))]
pub(crate) mod requests;

/// How far a request's time may be from the verifier's clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A request as signed: what of it the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signable<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as sent, percent-encoded.
    pub path: &'a str,
    /// The query string as sent, without `?` (empty for none).
    pub query: &'a str,
    /// Header names (any case) and values.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body.
    pub payload_sha256: &'a str,
}

/// Why a request's signature is refused, with AWS's name for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header, or another scheme.
    #[error("missing authentication token: sign the request with AWS Signature Version 4")]
    Missing,
    /// An `Authorization` header or `X-Amz-Date` that does not parse.
    #[error("incomplete signature: {0}")]
    Incomplete(String),
    /// The access key id is not known.
    #[error("the security token included in the request is invalid (unknown access key id)")]
    UnknownKey,
    /// The credential's scope names another region or service, or another day.
    #[error("credential scope is wrong: {0}")]
    Scope(String),
    /// The request's time is too far from now.
    #[error("signature expired or not yet valid: {0}")]
    Skew(String),
    /// The signature does not match the request.
    #[error("the request signature we calculated does not match the signature you provided")]
    Mismatch,
}

impl SigV4Error {
    /// AWS's exception name for the error.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnknownKey => "UnrecognizedClientException",
            SigV4Error::Scope(_) | SigV4Error::Skew(_) | SigV4Error::Mismatch => {
                "InvalidSignatureException"
            }
        }
    }
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// `yyyymmdd`.
    pub date: String,
    /// The region signed for.
    pub region: String,
    /// The service signed for.
    pub service: String,
    /// The signed headers, lowercase, in order.
    pub signed_headers: Vec<String>,
    /// The signature, lowercase hex.
    pub signature: String,
}

impl Authorization {
    /// Parses an `Authorization` header value.
    pub fn parse(value: &str) -> Result<Self, SigV4Error> {
        let incomplete = |why: &str| SigV4Error::Incomplete(why.to_owned());
        let rest = value
            .strip_prefix(ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or(SigV4Error::Missing)?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| incomplete("a part is not key=value"))?;
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return Err(incomplete(&format!("unknown part {key:?}"))),
            };
            if slot.replace(val).is_some() {
                return Err(incomplete(&format!("{key} given twice")));
            }
        }
        let credential = credential.ok_or_else(|| incomplete("no Credential"))?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = parts[..] else {
            return Err(incomplete(
                "Credential must be <key id>/<date>/<region>/<service>/aws4_request",
            ));
        };
        if key.is_empty() || date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(incomplete("Credential has an empty key id or a bad date"));
        }
        let signed_headers: Vec<String> = signed
            .ok_or_else(|| incomplete("no SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect();
        let sorted = signed_headers.windows(2).all(|w| w[0] < w[1]);
        if !sorted
            || signed_headers
                .iter()
                .any(|h| h.is_empty() || h.to_lowercase() != *h)
        {
            return Err(incomplete("SignedHeaders must be lowercase names in order"));
        }
        let signature = signature.ok_or_else(|| incomplete("no Signature"))?;
        if signature.len() != 64
            || !signature
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(incomplete("Signature must be 64 lowercase hex digits"));
        }
        Ok(Self {
            access_key_id: key.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_headers,
            signature: signature.to_owned(),
        })
    }
}

/// The canonical request of `request` over the `signed` headers (lowercase, sorted).
pub fn canonical_request(request: &Signable<'_>, signed: &[String]) -> String {
    let mut text = String::new();
    text.push_str(request.method);
    text.push('\n');
    text.push_str(&uri_encode(request.path, false));
    text.push('\n');
    text.push_str(&canonical_query(request.query));
    text.push('\n');
    for name in signed {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let _ = writeln!(text, "{name}:{}", values.join(","));
    }
    text.push('\n');
    text.push_str(&signed.join(";"));
    text.push('\n');
    text.push_str(request.payload_sha256);
    text
}

/// The string the signature is an HMAC of.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        crate::hex::encode(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The key derived from `secret` for one day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

/// Signs `request` (every header in it, which must include `host` and `x-amz-date`
/// = `amz_date`): the `Authorization` header value.
pub fn sign(
    request: &Signable<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
) -> String {
    let mut signed: Vec<String> = request
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    signed.sort();
    signed.dedup();
    let date = &amz_date[..amz_date.len().min(8)];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = string_to_sign(amz_date, &scope, &canonical_request(request, &signed));
    let signature = crate::hex::encode(&hmac(
        &signing_key(secret, date, region, service),
        to_sign.as_bytes(),
    ));
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    )
}

/// Checks `request`, whose `Authorization` parsed as `authorization`, against the
/// caller's `secret`, for `region` and `service`, at `now`.
pub fn verify(
    request: &Signable<'_>,
    authorization: &Authorization,
    secret: &str,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<(), SigV4Error> {
    if authorization.region != region {
        return Err(SigV4Error::Scope(format!(
            "signed for region {:?}, this endpoint is {region:?}",
            authorization.region
        )));
    }
    if authorization.service != service {
        return Err(SigV4Error::Scope(format!(
            "signed for service {:?}, this endpoint is {service:?}",
            authorization.service
        )));
    }
    for required in ["host", "x-amz-date"] {
        if !authorization.signed_headers.iter().any(|h| h == required) {
            return Err(SigV4Error::Incomplete(format!("{required} must be signed")));
        }
    }
    let amz_date = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"))
        .map(|(_, v)| v.trim())
        .ok_or_else(|| SigV4Error::Incomplete("no X-Amz-Date header".into()))?;
    let at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            SigV4Error::Incomplete(format!("X-Amz-Date {amz_date:?} is not yyyymmddThhmmssZ"))
        })?
        .and_utc();
    if !amz_date.starts_with(&authorization.date) {
        return Err(SigV4Error::Scope(format!(
            "credential date {} is not the day of X-Amz-Date {amz_date}",
            authorization.date
        )));
    }
    let now = chrono::DateTime::<chrono::Utc>::from(now);
    let skew = (now - at).abs();
    if skew > chrono::Duration::from_std(MAX_SKEW).expect("15 minutes") {
        return Err(SigV4Error::Skew(format!(
            "request time {amz_date} is more than 15 minutes from the server's {}",
            now.format("%Y%m%dT%H%M%SZ")
        )));
    }
    let scope = format!("{}/{region}/{service}/aws4_request", authorization.date);
    let canonical = canonical_request(request, &authorization.signed_headers);
    let to_sign = string_to_sign(amz_date, &scope, &canonical);
    let key = signing_key(secret, &authorization.date, region, service);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(to_sign.as_bytes());
    let given = crate::hex::decode(&authorization.signature).ok_or(SigV4Error::Mismatch)?;
    mac.verify_slice(&given).map_err(|_| SigV4Error::Mismatch)
}

/// The hex SHA-256 of `body`, as `Signable::payload_sha256`.
pub fn payload_hash(body: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(body))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// URI-encodes as SigV4 does: unreserved characters stay, every other byte is `%XX`;
/// `/` stays too when `slash` is false (paths).
pub fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The query decoded, re-encoded and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(&decode(k), true), uri_encode(&decode(v), true))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = text
            .get(i + 1..i + 3)
            .filter(|h| bytes[i] == b'%' && h.bytes().all(|b| b.is_ascii_hexdigit()));
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
