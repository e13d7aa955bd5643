//! Signed requests to AWS services over `reqwest`: what the KMS key provider and the S3
//! composer send. The request is signed with `host`, `x-amz-date`, the session token if
//! there is one, and the caller's headers.

use super::{Signable, sign};

/// Who signs a request, for which region and service.
pub(crate) struct SigningKey<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) session_token: Option<&'a str>,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

/// A request to sign.
pub(crate) struct Unsigned<'a> {
    pub(crate) method: reqwest::Method,
    /// `scheme://host[:port]`.
    pub(crate) origin: &'a str,
    /// `host[:port]`, as signed.
    pub(crate) host: &'a str,
    /// The path as sent, percent-encoded.
    pub(crate) path: &'a str,
    /// The query as sent, without `?` (empty for none).
    pub(crate) query: &'a str,
    /// Headers to send and sign besides those this module adds.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body the caller sends with it.
    pub(crate) payload_sha256: &'a str,
}

/// `request` on `client`, signed with `key` now, ready for its body.
pub(crate) fn signed(
    client: &reqwest::Client,
    request: Unsigned<'_>,
    key: &SigningKey<'_>,
) -> reqwest::RequestBuilder {
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut headers = vec![("host", request.host), ("x-amz-date", amz_date.as_str())];
    if let Some(token) = key.session_token {
        headers.push(("x-amz-security-token", token));
    }
    headers.extend_from_slice(request.headers);
    let authorization = sign(
        &Signable {
            method: request.method.as_str(),
            path: request.path,
            query: request.query,
            headers: &headers,
            payload_sha256: request.payload_sha256,
        },
        key.access_key_id,
        key.secret,
        key.region,
        key.service,
        &amz_date,
    );
    let mut url = format!("{}{}", request.origin, request.path);
    if !request.query.is_empty() {
        url.push('?');
        url.push_str(request.query);
    }
    let mut builder = client.request(request.method, url);
    // `reqwest` writes `host` from the URL.
    for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
        builder = builder.header(*name, *value);
    }
    builder.header("authorization", authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request as built verifies with the verifier the ECR API uses: every header
    /// sent (and `host`, from the URL) is what was signed.
    #[test]
    fn a_signed_request_verifies_as_sent() {
        let client = reqwest::Client::new();
        let payload = super::super::payload_hash(b"{}");
        let unsigned = Unsigned {
            method: reqwest::Method::POST,
            origin: "http://127.0.0.1:5077",
            host: "127.0.0.1:5077",
            path: "/bucket/a%20key",
            query: "uploads",
            headers: &[("x-amz-target", "TrentService.Encrypt")],
            payload_sha256: &payload,
        };
        let key = SigningKey {
            access_key_id: "AKIDEXAMPLE",
            secret: "secret",
            session_token: Some("token"),
            region: "eu-west-1",
            service: "kms",
        };
        let request = signed(&client, unsigned, &key).build().unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:5077/bucket/a%20key?uploads"
        );
        let sent = request.headers();
        let header = |name: &str| sent[name].to_str().unwrap().to_owned();
        let authorization = super::super::Authorization::parse(&header("authorization")).unwrap();
        assert_eq!(
            authorization.signed_headers,
            ["host", "x-amz-date", "x-amz-security-token", "x-amz-target"]
        );
        let (date, token, target) = (
            header("x-amz-date"),
            header("x-amz-security-token"),
            header("x-amz-target"),
        );
        let headers = [
            ("host", "127.0.0.1:5077"),
            ("x-amz-date", date.as_str()),
            ("x-amz-security-token", token.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let as_received = Signable {
            method: "POST",
            path: request.url().path(),
            query: request.url().query().unwrap_or_default(),
            headers: &headers,
            payload_sha256: &payload,
        };
        super::super::verify(
            &as_received,
            &authorization,
            "secret",
            "eu-west-1",
            "kms",
            std::time::SystemTime::now(),
        )
        .unwrap();
        assert!(
            super::super::verify(
                &as_received,
                &authorization,
                "another secret",
                "eu-west-1",
                "kms",
                std::time::SystemTime::now(),
            )
            .is_err()
        );
    }
}
