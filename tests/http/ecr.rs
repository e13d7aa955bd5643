//! The ECR-compatible API of the registry server, driven by boto3 (the AWS SDK for
//! Python) with an endpoint override and by hand-signed requests: repositories created,
//! described page by page and deleted (refused while they hold images, unless forced);
//! repository policies set, read and deleted, and obeyed on `/v2/`; a login token from
//! `GetAuthorizationToken` pushing over `/v2/` as user `AWS`; every signature problem and
//! every malformed request refused with ECR's error.

use crate::common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use wharf::sigv4::{self, Signable};

use common::http::Api;
use common::server::RegistryServer;

use super::api::push_image;
use super::auth::{ALICE_KEY, BOB, BOB_KEY, start};

pub(super) fn have_boto3() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the ECR API tests: scripts/test installs boto3 (with moto)"
        );
        eprintln!("boto3 not found: skipping (pip install boto3)");
    }
    found
}

/// The helpers every script starts with: `ecr(key)` makes a client for the server, and
/// `error_of(call)` runs a call that must fail and returns ECR's error code.
const PRELUDE: &str = r#"
import base64, json, os, sys
import boto3, botocore.config
from botocore.exceptions import ClientError
URL = os.environ["WHARF_URL"]
def ecr(key_id, secret, region="us-east-1"):
    return boto3.client("ecr", endpoint_url=URL, region_name=region,
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 1}))
def error_of(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} did not fail")
alice = ecr(os.environ["ALICE_ID"], os.environ["ALICE_SECRET"])
bob = ecr(os.environ["BOB_ID"], os.environ["BOB_SECRET"])
"#;

/// Runs `script` after the prelude against `server`; returns what it printed last, as
/// JSON.
fn boto3(server: &RegistryServer, script: &str) -> Value {
    boto3_with(server, script, &[])
}

/// [`boto3`] with more environment variables for the script.
pub(super) fn boto3_with(server: &RegistryServer, script: &str, env: &[(&str, &str)]) -> Value {
    let output = Command::new("python3")
        .args(["-c", &format!("{PRELUDE}\n{script}")])
        .envs(env.iter().copied())
        .env("WHARF_URL", server.url())
        .env("ALICE_ID", ALICE_KEY.0)
        .env("ALICE_SECRET", ALICE_KEY.1)
        .env("BOB_ID", BOB_KEY.0)
        .env("BOB_SECRET", BOB_KEY.1)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the boto3 script failed:\n{}\n{stdout}\n{}",
        script,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or("null");
    serde_json::from_str(last).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_manages_repositories_policies_and_logins() {
    if !have_boto3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let host = server.host().to_owned();

    let answer = boto3(
        &server,
        &format!(
            r#"
HOST = "{host}"
made = alice.create_repository(repositoryName="team/app", imageTagMutability="IMMUTABLE",
    imageScanningConfiguration={{"scanOnPush": True}}, tags=[{{"Key": "team", "Value": "app"}}])
repo = made["repository"]
assert repo["repositoryName"] == "team/app", repo
assert repo["repositoryUri"] == HOST + "/team/app", repo
assert repo["repositoryArn"] == "arn:aws:ecr:us-east-1:123456789012:repository/team/app", repo
assert repo["registryId"] == "123456789012", repo
assert repo["imageTagMutability"] == "IMMUTABLE", repo
assert repo["imageScanningConfiguration"] == {{"scanOnPush": True}}, repo
assert error_of(alice.create_repository, repositoryName="team/app") == "RepositoryAlreadyExistsException"
assert error_of(alice.create_repository, repositoryName="Team/App") == "InvalidParameterException"
assert error_of(alice.create_repository, repositoryName="team/kms",
    encryptionConfiguration={{"encryptionType": "KMS"}}) == "InvalidParameterException"
# Described by name, and page by page (public/tools was seeded by the users file).
found = alice.describe_repositories(repositoryNames=["team/app"])["repositories"]
assert [r["imageTagMutability"] for r in found] == ["IMMUTABLE"], found
assert error_of(alice.describe_repositories, repositoryNames=["team/none"]) == "RepositoryNotFoundException"
for i in range(3):
    alice.create_repository(repositoryName=f"team/r{{i}}")
pages = alice.get_paginator("describe_repositories").paginate(PaginationConfig={{"PageSize": 2}})
names = [r["repositoryName"] for page in pages for r in page["repositories"]]
assert names == ["public/tools", "team/app", "team/r0", "team/r1", "team/r2"], names
# Tag mutability changes.
changed = alice.put_image_tag_mutability(repositoryName="team/r0", imageTagMutability="IMMUTABLE")
assert changed["imageTagMutability"] == "IMMUTABLE", changed
# bob may read, not create or set policies.
assert error_of(bob.create_repository, repositoryName="team/bob") == "AccessDeniedException"
assert error_of(bob.set_repository_policy, repositoryName="team/app", policyText="{{}}") == "AccessDeniedException"
# A policy that denies bob pulls from team/app.
policy = json.dumps({{"Version": "2012-10-17", "Statement": [{{"Sid": "NoBob", "Effect": "Deny",
    "Principal": {{"AWS": "arn:aws:iam::123456789012:user/bob"}}, "Action": "ecr:*"}}]}})
alice.set_repository_policy(repositoryName="team/app", policyText=policy)
assert alice.get_repository_policy(repositoryName="team/app")["policyText"] == policy
assert error_of(alice.set_repository_policy, repositoryName="team/app",
    policyText='{{"Statement": []}}') == "InvalidParameterException"
assert error_of(alice.get_repository_policy, repositoryName="team/r1") == "RepositoryPolicyNotFoundException"
# Signatures: a wrong secret, an unknown key, another region.
assert error_of(ecr(os.environ["ALICE_ID"], "not the secret").describe_repositories) == "InvalidSignatureException"
assert error_of(ecr("AKIAUNKNOWN000000000", "whatever-secret-0000").describe_repositories) == "UnrecognizedClientException"
assert error_of(ecr(os.environ["ALICE_ID"], os.environ["ALICE_SECRET"], "eu-west-1").describe_repositories) == "InvalidSignatureException"
# A login for /v2/: it needs ecr:GetAuthorizationToken on every resource.
assert error_of(bob.get_authorization_token) == "AccessDeniedException"
data = alice.get_authorization_token()["authorizationData"][0]
user, token = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
assert user == "AWS" and data["proxyEndpoint"] == "http://" + HOST, data
print(json.dumps({{"token": token}}))
"#
        ),
    );
    let token = answer["token"].as_str().expect("a login token").to_owned();

    // The login token pushes over /v2/ as alice; bob, denied by the policy, cannot read.
    let aws = basic_api(&server, "AWS", &token);
    let pushed = push_image(&aws, "team/app", "v1", 7).await;
    aws.get(&format!("/v2/team/app/manifests/{}", pushed.digest))
        .await
        .check(200);
    basic_api(&server, BOB.0, BOB.1)
        .get(&format!("/v2/team/app/manifests/{}", pushed.digest))
        .await
        .error(403, "DENIED");
    // The immutable tag does not move.
    let other = push_image(&aws, "team/app", "v2", 8).await;
    aws.send_manifest("team/app", "v1", common::http::body(&other.manifest))
        .await
        .error(409, "TAG_IMMUTABLE");
    // A login token is not a password for anyone else, and a tampered one is refused.
    basic_api(&server, "AWS", &format!("{token}x"))
        .get("/v2/")
        .await
        .error(401, "UNAUTHORIZED");

    // Images as ECR's image actions see them.
    boto3_with(
        &server,
        r#"
import hashlib
V1 = os.environ["V1_DIGEST"]
ids = alice.list_images(repositoryName="team/app")["imageIds"]
assert sorted(i["imageTag"] for i in ids) == ["v1", "v2"], ids
assert error_of(bob.list_images, repositoryName="team/app") == "AccessDeniedException"
details = alice.describe_images(repositoryName="team/app", imageIds=[{"imageTag": "v1"}])["imageDetails"]
assert [d["imageDigest"] for d in details] == [V1], details
assert details[0]["imageTags"] == ["v1"] and details[0]["imageSizeInBytes"] > 74000, details
assert details[0]["imageManifestMediaType"] == "application/vnd.oci.image.manifest.v1+json", details
assert error_of(alice.describe_images, repositoryName="team/app",
    imageIds=[{"imageTag": "nope"}]) == "ImageNotFoundException"
pages = alice.get_paginator("describe_images").paginate(repositoryName="team/app",
    PaginationConfig={"PageSize": 1})
assert sorted(d["imageDigest"] for p in pages for d in p["imageDetails"])[0:1], "paged"
got = alice.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}, {"imageTag": "gone"}],
    acceptedMediaTypes=["application/vnd.oci.image.manifest.v1+json"])
manifest = got["images"][0]["imageManifest"]
assert "sha256:" + hashlib.sha256(manifest.encode()).hexdigest() == V1, got
assert [f["failureCode"] for f in got["failures"]] == ["ImageNotFound"], got
refused = alice.batch_get_image(repositoryName="team/app", imageIds=[{"imageTag": "v1"}],
    acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json"])
assert refused["images"] == [] and refused["failures"][0]["failureCode"] == "ImageNotFound", refused
layers = [l["digest"] for l in json.loads(manifest)["layers"]]
check = alice.batch_check_layer_availability(repositoryName="team/app",
    layerDigests=layers + ["sha256:" + "0" * 64, "nonsense"])
assert [l["layerAvailability"] for l in check["layers"]] == ["AVAILABLE", "AVAILABLE"], check
assert sorted(f["failureCode"] for f in check["failures"]) == ["InvalidLayerDigest", "MissingLayerDigest"], check
# PutImage: the same manifest under another tag; into a repository without its layers, refused.
put = alice.put_image(repositoryName="team/app", imageManifest=manifest, imageTag="again")
assert put["image"]["imageId"]["imageDigest"] == V1, put
assert error_of(alice.put_image, repositoryName="team/r2", imageManifest=manifest,
    imageTag="copy") == "LayersNotFoundException"
assert error_of(alice.put_image, repositoryName="team/app", imageManifest="{}") == "InvalidParameterException"
# BatchDeleteImage: one tag that exists, one that does not.
gone = alice.batch_delete_image(repositoryName="team/app", imageIds=[{"imageTag": "v2"}, {"imageTag": "missing"}])
assert [i["imageTag"] for i in gone["imageIds"]] == ["v2"], gone
assert [f["failureCode"] for f in gone["failures"]] == ["ImageNotFound"], gone
assert sorted(i.get("imageTag", "") for i in alice.list_images(repositoryName="team/app",
    filter={"tagStatus": "TAGGED"})["imageIds"]) == ["again", "v1"]
# A layer uploaded in parts through the API, and downloaded by its URL alone.
import urllib.request
layer = os.urandom(300000)
digest = "sha256:" + hashlib.sha256(layer).hexdigest()
upload = alice.initiate_layer_upload(repositoryName="team/app")["uploadId"]
part = alice.upload_layer_part(repositoryName="team/app", uploadId=upload, partFirstByte=0,
    partLastByte=99999, layerPartBlob=layer[:100000])
assert part["lastByteReceived"] == 99999, part
assert error_of(alice.upload_layer_part, repositoryName="team/app", uploadId=upload,
    partFirstByte=200000, partLastByte=299999, layerPartBlob=layer[200000:]) == "InvalidLayerPartException"
alice.upload_layer_part(repositoryName="team/app", uploadId=upload, partFirstByte=100000,
    partLastByte=299999, layerPartBlob=layer[100000:])
done = alice.complete_layer_upload(repositoryName="team/app", uploadId=upload, layerDigests=[digest])
assert done["layerDigest"] == digest, done
# A digest that does not match ends the upload, keeping nothing.
wrong = alice.initiate_layer_upload(repositoryName="team/app")["uploadId"]
alice.upload_layer_part(repositoryName="team/app", uploadId=wrong, partFirstByte=0,
    partLastByte=2, layerPartBlob=b"abc")
assert error_of(alice.complete_layer_upload, repositoryName="team/app", uploadId=wrong,
    layerDigests=["sha256:" + "1" * 64]) == "InvalidLayerException"
assert error_of(alice.complete_layer_upload, repositoryName="team/app", uploadId=wrong,
    layerDigests=["sha256:" + hashlib.sha256(b"abc").hexdigest()]) == "UploadNotFoundException"
assert error_of(alice.upload_layer_part, repositoryName="team/app", uploadId="0" * 32,
    partFirstByte=0, partLastByte=0, layerPartBlob=b"x") == "UploadNotFoundException"
url = alice.get_download_url_for_layer(repositoryName="team/app", layerDigest=digest)["downloadUrl"]
assert urllib.request.urlopen(url).read() == layer
try:
    urllib.request.urlopen(url.replace("team/app", "team/r1"))
    raise AssertionError("a download URL works for its repository only")
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
assert error_of(alice.get_download_url_for_layer, repositoryName="team/app",
    layerDigest="sha256:" + "2" * 64) == "LayersNotFoundException"
# The repository's tags are immutable: v1 does not move to the image v2 named.
(untagged,) = [i["imageDigest"] for i in alice.list_images(repositoryName="team/app",
    filter={"tagStatus": "UNTAGGED"})["imageIds"]]
moved = alice.batch_get_image(repositoryName="team/app", imageIds=[{"imageDigest": untagged}])["images"][0]
assert error_of(alice.put_image, repositoryName="team/app", imageManifest=moved["imageManifest"],
    imageTag="v1") == "ImageTagAlreadyExistsException"
# Repository tags.
arn = "arn:aws:ecr:us-east-1:123456789012:repository/team/app"
alice.tag_resource(resourceArn=arn, tags=[{"Key": "owner", "Value": "alice"}])
tags = alice.list_tags_for_resource(resourceArn=arn)["tags"]
assert {t["Key"]: t["Value"] for t in tags} == {"team": "app", "owner": "alice"}, tags
alice.untag_resource(resourceArn=arn, tagKeys=["team"])
assert alice.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "owner", "Value": "alice"}]
assert error_of(alice.tag_resource, resourceArn="arn:aws:ecr:eu-west-1:123456789012:repository/team/app",
    tags=[{"Key": "a", "Value": "b"}]) == "InvalidParameterException"
# Lifecycle policies.
rules = json.dumps({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any",
    "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}}]})
alice.put_lifecycle_policy(repositoryName="team/app", lifecyclePolicyText=rules)
assert alice.get_lifecycle_policy(repositoryName="team/app")["lifecyclePolicyText"] == rules
# A preview of keeping one image: v1 (also tagged "again") is older than the image v2
# named, which lost its tag but stays.
keep_one = rules.replace('"countNumber": 5', '"countNumber": 1')
assert error_of(alice.get_lifecycle_policy_preview, repositoryName="team/app") == "LifecyclePolicyPreviewNotFoundException"
started = alice.start_lifecycle_policy_preview(repositoryName="team/app", lifecyclePolicyText=keep_one)
assert started["status"] == "IN_PROGRESS" and started["lifecyclePolicyText"] == keep_one, started
preview = alice.get_lifecycle_policy_preview(repositoryName="team/app")
assert preview["status"] == "COMPLETE", preview
results = preview["previewResults"]
assert [(r["imageDigest"], r["action"]["type"], r["appliedRulePriority"]) for r in results] == [(V1, "EXPIRE", 1)], results
assert sorted(results[0]["imageTags"]) == ["again", "v1"], results
assert preview["summary"]["expiringImageTotalCount"] == 1, preview
# Without a policy in the call, the attached one (keeping five) expires nothing.
alice.start_lifecycle_policy_preview(repositoryName="team/app")
assert alice.get_lifecycle_policy_preview(repositoryName="team/app")["previewResults"] == []
assert error_of(bob.start_lifecycle_policy_preview, repositoryName="team/app") == "AccessDeniedException"
bad_rules = rules.replace('"countNumber": 5', '"countNumber": 0')
assert error_of(alice.put_lifecycle_policy, repositoryName="team/app",
    lifecyclePolicyText=bad_rules) == "InvalidParameterException"
assert alice.delete_lifecycle_policy(repositoryName="team/app")["lifecyclePolicyText"] == rules
assert error_of(alice.get_lifecycle_policy, repositoryName="team/app") == "LifecyclePolicyNotFoundException"
"#,
        &[("V1_DIGEST", pushed.digest.as_str())],
    )
    .to_string();

    boto3(
        &server,
        r#"
assert error_of(alice.delete_repository, repositoryName="team/app") == "RepositoryNotEmptyException"
deleted = alice.delete_repository_policy(repositoryName="team/app")
assert "NoBob" in deleted["policyText"], deleted
assert error_of(alice.delete_repository_policy, repositoryName="team/app") == "RepositoryPolicyNotFoundException"
alice.delete_repository(repositoryName="team/app", force=True)
assert error_of(alice.describe_repositories, repositoryNames=["team/app"]) == "RepositoryNotFoundException"
assert error_of(alice.delete_repository, repositoryName="team/app") == "RepositoryNotFoundException"
"#,
    );
}

pub(super) fn basic_api(server: &RegistryServer, user: &str, password: &str) -> Api {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
    );
    Api::with_client(server, reqwest::Client::builder().default_headers(headers))
        .labelled(format!("as {user}"))
}

/// Sends an ECR API call signed with alice's key at `at`, with `content_type` and
/// `body`; the body signed may differ from the one sent (`signed_body`).
async fn call(
    server: &RegistryServer,
    target: &str,
    content_type: &str,
    signed_body: &[u8],
    body: Vec<u8>,
    at: SystemTime,
) -> (u16, Value) {
    call_at(
        &server.url(),
        server.host(),
        target,
        content_type,
        signed_body,
        body,
        at,
    )
    .await
    .unwrap()
}

/// [`call`] to the server at `url` (`host` as signed); a failed connection is the error.
async fn call_at(
    url: &str,
    host: &str,
    target: &str,
    content_type: &str,
    signed_body: &[u8],
    body: Vec<u8>,
    at: SystemTime,
) -> Result<(u16, Value), reqwest::Error> {
    let amz_date = chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let headers = [
        ("content-type", content_type),
        ("host", host),
        ("x-amz-date", amz_date.as_str()),
        ("x-amz-target", target),
    ];
    let payload = sigv4::payload_hash(signed_body);
    let request = Signable {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload_sha256: &payload,
    };
    let authorization = sigv4::sign(
        &request,
        ALICE_KEY.0,
        ALICE_KEY.1,
        "us-east-1",
        "ecr",
        &amz_date,
    );
    let mut builder = reqwest::Client::new().post(format!("{url}/"));
    for (name, value) in headers {
        if name != "host" {
            builder = builder.header(name, value);
        }
    }
    let response = builder
        .header("authorization", authorization)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
    ))
}

const DESCRIBE: &str = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories";
const CREATE: &str = "AmazonEC2ContainerRegistry_V20150921.CreateRepository";
const JSON: &str = "application/x-amz-json-1.1";

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_malformed_calls_get_ecr_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let now = SystemTime::now();
    let code = |answer: &Value| answer["__type"].as_str().unwrap_or_default().to_owned();

    // A call signed by hand, as the SDKs sign it, works.
    let (status, answer) = call(&server, DESCRIBE, JSON, b"{}", b"{}".to_vec(), now).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["repositories"],
        json!([{
            "repositoryArn": "arn:aws:ecr:us-east-1:123456789012:repository/public/tools",
            "registryId": "123456789012",
            "repositoryName": "public/tools",
            "repositoryUri": format!("{}/public/tools", server.host()),
            "createdAt": answer["repositories"][0]["createdAt"],
            "imageTagMutability": "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": false},
            "encryptionConfiguration": {"encryptionType": "AES256"},
        }])
    );

    // A clock 20 minutes off, and a body changed after signing.
    for skew in [
        now - Duration::from_secs(1200),
        now + Duration::from_secs(1200),
    ] {
        let (status, answer) = call(&server, DESCRIBE, JSON, b"{}", b"{}".to_vec(), skew).await;
        assert_eq!(
            (status, code(&answer)),
            (403, "InvalidSignatureException".into()),
            "{answer}"
        );
    }
    let (status, answer) = call(
        &server,
        CREATE,
        JSON,
        br#"{"repositoryName": "team/a"}"#,
        br#"{"repositoryName": "team/b"}"#.to_vec(),
        now,
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (403, "InvalidSignatureException".into()),
        "{answer}"
    );
    // No signature at all.
    let unsigned = reqwest::Client::new()
        .post(format!("{}/", server.url()))
        .header("content-type", JSON)
        .header("x-amz-target", DESCRIBE)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    assert_eq!(
        unsigned.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );

    // Malformed calls, well signed.
    let cases: [(&str, &str, &[u8], u16, &str); 6] = [
        (DESCRIBE, JSON, b"{not json", 400, "SerializationException"),
        (DESCRIBE, JSON, b"[1, 2]", 400, "SerializationException"),
        (
            DESCRIBE,
            "application/json",
            b"{}",
            400,
            "SerializationException",
        ),
        (
            "AmazonEC2ContainerRegistry_V20150921.FlyAway",
            JSON,
            b"{}",
            400,
            "UnknownOperationException",
        ),
        (CREATE, JSON, b"{}", 400, "InvalidParameterException"),
        (
            CREATE,
            JSON,
            br#"{"repositoryName": 7}"#,
            400,
            "InvalidParameterException",
        ),
    ];
    for (target, content_type, body, want_status, want_code) in cases {
        let (status, answer) = call(&server, target, content_type, body, body.to_vec(), now).await;
        assert_eq!(
            (status, code(&answer)),
            (want_status, want_code.into()),
            "{target} {body:?}: {answer}"
        );
    }
    let (_, answer) = call(&server, CREATE, JSON, b"{}", b"{}".to_vec(), now).await;
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("repositoryName"),
        "{answer}"
    );
    // A body over the limit is refused unread: an error, or the connection closed
    // while the client still sends; either way the server goes on serving. Without a
    // known access key the body is not even considered.
    let huge = vec![b' '; 11 << 20];
    let sent = tokio::spawn({
        let url = format!("{}/", server.url());
        let huge = huge.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", JSON)
                .header("x-amz-target", DESCRIBE)
                .body(huge)
                .send()
                .await
        }
    })
    .await
    .unwrap();
    if let Ok(response) = sent {
        assert_eq!(response.status().as_u16(), 403);
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "MissingAuthenticationTokenException"
        );
    }
    let signed = tokio::spawn({
        let url = server.url();
        let host = server.host().to_owned();
        async move {
            let (status, answer) = call_at(
                &url,
                &host,
                DESCRIBE,
                JSON,
                &huge,
                huge.clone(),
                SystemTime::now(),
            )
            .await?;
            Ok::<_, reqwest::Error>((status, answer))
        }
    })
    .await
    .unwrap();
    if let Ok((status, answer)) = signed {
        assert_eq!(
            (status, code(&answer)),
            (400, "InvalidParameterException".into()),
            "{answer}"
        );
    }
    let (status, _) = call(&server, DESCRIBE, JSON, b"{}", b"{}".to_vec(), now).await;
    assert_eq!(status, 200);
}
