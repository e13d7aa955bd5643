//! The registry server with its key-encryption keys in KMS (moto's, beside its S3):
//! repositories with KMS keys of their own, a restart, a disabled key, and two replicas
//! on one bucket.

use crate::common;

use common::server::RegistryServer;

use super::ecr::{basic_api, boto3_with, have_boto3};

/// With `--kms-key-id`, blobs' data keys are wrapped by KMS (moto's, beside its S3), and
/// a repository created with `encryptionConfiguration: KMS` uses the key it names; both
/// read back, also after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn kms_keys_wrap_what_repositories_hold() {
    if !have_boto3() {
        return;
    }
    let Ok(endpoint) = std::env::var("WHARF_S3_ENDPOINT") else {
        assert!(std::env::var_os("CI").is_none(), "CI must run the KMS test");
        return;
    };
    let (default_key, repo_key) = (common::kms_key(&endpoint), common::kms_key(&endpoint));
    let dir = tempfile::tempdir().unwrap();
    let users = super::auth::users_file(dir.path());
    let args = vec![
        "--auth".to_owned(),
        users.display().to_string(),
        "--kms-key-id".into(),
        default_key.clone(),
        "--kms-endpoint".into(),
        endpoint.clone(),
    ];
    let server = RegistryServer::spawn(&dir.path().join("data"), args).expect("starts with KMS");
    let answer = boto3_with(
        &server,
        r#"
key = os.environ["REPO_KEY"]
made = alice.create_repository(repositoryName="team/kms",
    encryptionConfiguration={"encryptionType": "KMS", "kmsKey": key})["repository"]
assert made["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}, made
plain = alice.create_repository(repositoryName="team/default",
    encryptionConfiguration={"encryptionType": "KMS"})["repository"]
assert plain["encryptionConfiguration"] == {"encryptionType": "KMS"}, plain
data = alice.get_authorization_token()["authorizationData"][0]
print(json.dumps({"token": base64.b64decode(data["authorizationToken"]).decode().split(":", 1)[1]}))
"#,
        &[("REPO_KEY", repo_key.as_str())],
    );
    let token = answer["token"].as_str().unwrap().to_owned();
    let aws = basic_api(&server, "AWS", &token);
    let (one, two) = (
        b"wrapped under the repository's KMS key",
        b"under the default KMS key",
    );
    aws.push_blob("team/kms", one).await;
    aws.push_blob("team/default", two).await;
    aws.assert_blob("team/kms", one).await;
    // A restart has only KMS to unwrap with.
    let server = server.restart();
    let aws = basic_api(&server, "AWS", &token);
    aws.assert_blob("team/kms", one).await;
    aws.assert_blob("team/default", two).await;
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains(&format!("KMS key {default_key}"))),
        "{:?}",
        server.logs()
    );
    // The repository's key disabled: new blobs are refused, naming the key.
    common::disable_kms_key(&endpoint, &repo_key);
    let digest = common::http::digest_of(b"one blob too many");
    let refused = aws
        .send(
            reqwest::Method::POST,
            &format!("/v2/team/kms/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            common::http::body(b"one blob too many"),
        )
        .await;
    let error = refused.error(403, "DENIED");
    assert!(error.to_string().contains(&repo_key), "{error}");
}

/// Two registry processes on one bucket (blobs and metadata), each with the same KMS key
/// and no key file in common, read what the other wrote.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_share_a_bucket_through_kms() {
    let Some(s3) = common::server::s3_args() else {
        return;
    };
    let endpoint = std::env::var("WHARF_S3_ENDPOINT").unwrap();
    let key = common::kms_key(&endpoint);
    let replica = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let users = super::auth::users_file(dir.path());
        let mut args = s3.clone();
        args.extend([
            "--auth".to_owned(),
            users.display().to_string(),
            "--kms-key-id".into(),
            key.clone(),
            "--kms-endpoint".into(),
            endpoint.clone(),
        ]);
        let server = RegistryServer::spawn(&dir.path().join(name), args).expect("a replica starts");
        (server, dir)
    };
    let ((one, _a), (two, _b)) = (replica("one"), replica("two"));
    let data = b"written by one replica, read by the other";
    basic_api(&one, super::auth::ALICE.0, super::auth::ALICE.1)
        .push_blob("team/shared", data)
        .await;
    basic_api(&two, super::auth::ALICE.0, super::auth::ALICE.1)
        .assert_blob("team/shared", data)
        .await;
}
