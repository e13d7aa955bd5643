//! AWS Signature Version 4, pinned by vectors computed with botocore (the AWS SDK for
//! Python, an independent implementation): canonical requests, strings to sign and
//! signatures; then every way verification refuses a request, each with AWS's error.

use std::time::{Duration, SystemTime};

use wharf::sigv4::{self, Authorization, SigV4Error, Signable};

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20150830T123600Z";
const ECR_BODY: &[u8] = br#"{"maxResults": 10}"#;

fn ecr_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Content-Type", "application/x-amz-json-1.1"),
        ("Host", "api.ecr.us-east-1.amazonaws.com"),
        ("X-Amz-Date", AMZ_DATE),
        (
            "X-Amz-Target",
            "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        ),
    ]
}

fn signed(names: &str) -> Vec<String> {
    names.split(';').map(str::to_owned).collect()
}

/// 12:40 on the vectors' day: four minutes after they were signed.
fn soon() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_400)
}

#[test]
fn an_ecr_call_signs_as_botocore_signs_it() {
    let headers = ecr_headers();
    let payload = sigv4::payload_hash(ECR_BODY);
    let request = Signable {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload_sha256: &payload,
    };
    let names = signed("content-type;host;x-amz-date;x-amz-target");
    let canonical = sigv4::canonical_request(&request, &names);
    assert_eq!(
        canonical,
        "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:api.ecr.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-target:AmazonEC2ContainerRegistry_V20150921.DescribeRepositories\n\ncontent-type;host;x-amz-date;x-amz-target\nf25de1706a650264c1de625e357f269543bd26ef04e5b5b00ae7d579a9082254"
    );
    let to_sign =
        sigv4::string_to_sign(AMZ_DATE, "20150830/us-east-1/ecr/aws4_request", &canonical);
    assert_eq!(
        to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/ecr/aws4_request\nfe03de1b960d585e0de54aa0bf850623db4f45517b157453f12436ffc121f5ee"
    );
    let header = sigv4::sign(&request, KEY_ID, SECRET, "us-east-1", "ecr", AMZ_DATE);
    assert_eq!(
        header,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ecr/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0bf7859f2d4f9d4f08a5ea58fe0a319e1d542a3b27a7c1f60b03438e79af6ac5"
    );
    let parsed = Authorization::parse(&header).unwrap();
    assert_eq!(parsed.access_key_id, KEY_ID);
    sigv4::verify(&request, &parsed, SECRET, "us-east-1", "ecr", soon()).unwrap();
}

#[test]
fn paths_queries_and_header_spaces_are_canonical() {
    let headers = [
        ("Host", "example.amazonaws.com"),
        ("My-Header1", "  value1   two  "),
        ("X-Amz-Date", AMZ_DATE),
    ];
    let payload = sigv4::payload_hash(b"");
    let request = Signable {
        method: "GET",
        path: "/a%20b/c",
        query: "Param2=value2&Param1=value%201&Param1=a",
        headers: &headers,
        payload_sha256: &payload,
    };
    let canonical = sigv4::canonical_request(&request, &signed("host;my-header1;x-amz-date"));
    assert_eq!(
        canonical,
        "GET\n/a%2520b/c\nParam1=a&Param1=value%201&Param2=value2\nhost:example.amazonaws.com\nmy-header1:value1 two\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let header = sigv4::sign(&request, KEY_ID, SECRET, "us-east-1", "service", AMZ_DATE);
    assert!(
        header.ends_with(
            "Signature=17298fb262e2af6960e3b04a9d0a55e2c358a737347bdf9dc82cc26d47b275ad"
        ),
        "{header}"
    );
}

#[test]
fn each_bad_request_is_refused_with_its_own_error() {
    let headers = ecr_headers();
    let payload = sigv4::payload_hash(ECR_BODY);
    let request = Signable {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload_sha256: &payload,
    };
    let good = Authorization::parse(&sigv4::sign(
        &request,
        KEY_ID,
        SECRET,
        "us-east-1",
        "ecr",
        AMZ_DATE,
    ))
    .unwrap();
    let verify = |request: &Signable<'_>, auth: &Authorization, secret: &str, now| {
        sigv4::verify(request, auth, secret, "us-east-1", "ecr", now)
    };
    // The wrong secret, and a body changed after signing.
    assert_eq!(
        verify(&request, &good, "not the secret", soon()),
        Err(SigV4Error::Mismatch)
    );
    let tampered = sigv4::payload_hash(br#"{"maxResults": 11}"#);
    let changed = Signable {
        payload_sha256: &tampered,
        ..request
    };
    assert_eq!(
        verify(&changed, &good, SECRET, soon()),
        Err(SigV4Error::Mismatch)
    );
    // A clock 20 minutes off either way; 14 minutes is fine.
    for minutes in [20i64, -20] {
        let now =
            SystemTime::UNIX_EPOCH + Duration::from_secs((1_440_938_160 + minutes * 60) as u64);
        let refused = verify(&request, &good, SECRET, now).unwrap_err();
        assert!(matches!(refused, SigV4Error::Skew(_)), "{refused:?}");
        assert_eq!(refused.code(), "InvalidSignatureException");
    }
    let fourteen = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160 + 14 * 60);
    verify(&request, &good, SECRET, fourteen).unwrap();
    // Signed for another region or service.
    for (region, service) in [("eu-west-1", "ecr"), ("us-east-1", "s3")] {
        let other = Authorization::parse(&sigv4::sign(
            &request, KEY_ID, SECRET, region, service, AMZ_DATE,
        ))
        .unwrap();
        let refused = verify(&request, &other, SECRET, soon()).unwrap_err();
        assert!(matches!(refused, SigV4Error::Scope(_)), "{refused:?}");
    }
    // Host and date must be signed.
    let unsigned_host = Authorization {
        signed_headers: signed("content-type;x-amz-date;x-amz-target"),
        ..good.clone()
    };
    assert!(matches!(
        verify(&request, &unsigned_host, SECRET, soon()),
        Err(SigV4Error::Incomplete(_))
    ));
    // Headers that do not parse.
    assert_eq!(Authorization::parse("Basic abc"), Err(SigV4Error::Missing));
    for bad in [
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ecr, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=0bf7859f2d4f9d4f08a5ea58fe0a319e1d542a3b27a7c1f60b03438e79af6ac5",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ecr/aws4_request, SignedHeaders=x-amz-date;host, Signature=0bf7859f2d4f9d4f08a5ea58fe0a319e1d542a3b27a7c1f60b03438e79af6ac5",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/ecr/aws4_request, SignedHeaders=host;x-amz-date, Signature=XYZ",
        "AWS4-HMAC-SHA256 Credential=a/20150830/r/s/aws4_request, Credential=b/20150830/r/s/aws4_request",
    ] {
        let refused = Authorization::parse(bad).unwrap_err();
        assert_eq!(refused.code(), "IncompleteSignatureException", "{bad}");
    }
}
