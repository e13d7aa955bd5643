//! The registry server with `--auth`: users with bcrypt passwords and IAM identity
//! policies, groups, a seeded public repository; Basic credentials on every request; a
//! Bearer challenge (naming the token endpoint) for anonymous callers; 401 for bad credentials with nothing said about
//! which part was wrong; 403 for what a user's policies do not allow; throttling after
//! repeated failures; the catalog filtered per user.

use crate::common;

use std::path::{Path, PathBuf};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::json;

use common::http::Api;
use common::server::RegistryServer;

pub(super) const ALICE: (&str, &str) = ("alice", "alice's long password");
pub(super) const BOB: (&str, &str) = ("bob", "bob's other password");
pub(super) const CAROL: (&str, &str) = ("carol", "carol's argon2 password");
/// Access keys (id, secret) for the ECR API.
pub(super) const ALICE_KEY: (&str, &str) =
    ("AKIAALICE00000000001", "alice/secret/key/0123456789abcdef");
pub(super) const BOB_KEY: (&str, &str) =
    ("AKIABOB0000000000002", "bob/secret/key/0123456789abcdef");

/// An argon2id hash of `password` in PHC form, with argon2's default costs.
fn argon2id(password: &str) -> String {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password_with_salt(password.as_bytes(), b"a salt for tests")
        .unwrap()
        .to_string()
}

/// A users file: alice may do anything under `team/` and `public/`; bob (bcrypt) and
/// carol (argon2id), through the `readers` group, may pull and list anything;
/// `public/tools` is public.
pub(super) fn users_file(dir: &Path) -> PathBuf {
    // The cheapest bcrypt cost keeps the tests fast; `$2y$` as htpasswd writes it.
    let hash = |password: &str| {
        bcrypt::hash(password, 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1)
    };
    let file = json!({
        "account": "123456789012",
        "users": [
            {"name": ALICE.0, "password": hash(ALICE.1),
             "access_keys": [{"id": ALICE_KEY.0, "secret": ALICE_KEY.1}], "policies": [{
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "ecr:*",
                               "Resource": ["arn:aws:ecr:*:123456789012:repository/team/*",
                                            "arn:aws:ecr:*:123456789012:repository/public/*"]},
                              {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken",
                               "Resource": "*"}]}]},
            {"name": BOB.0, "password": hash(BOB.1), "groups": ["readers"],
             "access_keys": [{"id": BOB_KEY.0, "secret": BOB_KEY.1}]},
            {"name": CAROL.0, "password": argon2id(CAROL.1), "groups": ["readers"]}
        ],
        "groups": [{"name": "readers", "policies": [{
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow",
                          "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                     "ecr:BatchCheckLayerAvailability", "ecr:ListImages"],
                          "Resource": "*"}}]}],
        "repositories": [{"name": "public/tools", "public": true}]
    });
    let path = dir.join("users.json");
    std::fs::write(&path, file.to_string()).unwrap();
    path
}

pub(super) fn start(dir: &Path) -> RegistryServer {
    let users = users_file(dir);
    RegistryServer::spawn(
        &dir.join("data"),
        vec!["--auth".into(), users.display().to_string()],
    )
    .expect("the server starts with a users file")
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

pub(super) fn as_user(server: &RegistryServer, user: &str, password: &str) -> Api {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&basic(user, password)).unwrap(),
    );
    Api::with_client(server, reqwest::Client::builder().default_headers(headers))
        .labelled(format!("as {user}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn users_push_and_pull_as_their_policies_say() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let anonymous = Api::new(&server).labelled("anonymous");
    let alice = as_user(&server, ALICE.0, ALICE.1);
    let bob = as_user(&server, BOB.0, BOB.1);

    // Clients probe /v2/ to learn how to log in.
    let probe = anonymous.get("/v2/").await;
    probe.error(401, "UNAUTHORIZED");
    probe.header_is(
        "www-authenticate",
        &format!(
            "Bearer realm=\"http://{}/token\",service=\"wharf-registry\"",
            server.host()
        ),
    );
    alice.get("/v2/").await.check(200);

    let digest = alice.push_blob("team/app", b"a layer of team/app").await;
    let blob = format!("/v2/team/app/blobs/{digest}");
    bob.get(&blob).await.check(200);
    let refused = bob.post("/v2/team/app/blobs/uploads/").await;
    let error = refused.error(403, "DENIED");
    assert!(
        error.to_string().contains("ecr:InitiateLayerUpload"),
        "{error}"
    );
    // Anonymous callers are asked to log in; bad credentials get the same answer.
    anonymous.get(&blob).await.error(401, "UNAUTHORIZED");
    let wrong = as_user(&server, ALICE.0, "not the password");
    let answer = wrong.get(&blob).await;
    answer.error(401, "UNAUTHORIZED");
    answer.header_is(
        "www-authenticate",
        &format!(
            "Bearer realm=\"http://{}/token\",service=\"wharf-registry\",scope=\"repository:team/app:pull\"",
            server.host()
        ),
    );
    let nobody = as_user(&server, "mallory", ALICE.1);
    nobody.get(&blob).await.error(401, "UNAUTHORIZED");
    // An argon2id password works as a bcrypt one does, and a wrong one does not.
    as_user(&server, CAROL.0, CAROL.1)
        .get(&blob)
        .await
        .check(200);
    as_user(&server, CAROL.0, BOB.1)
        .get(&blob)
        .await
        .error(401, "UNAUTHORIZED");

    // The seeded public repository: anyone pulls, only alice pushes.
    let public_digest = alice.push_blob("public/tools", b"public layer").await;
    anonymous
        .get(&format!("/v2/public/tools/blobs/{public_digest}"))
        .await
        .check(200);
    anonymous
        .post("/v2/public/tools/blobs/uploads/")
        .await
        .error(401, "UNAUTHORIZED");
    bob.post("/v2/public/tools/blobs/uploads/")
        .await
        .error(403, "DENIED");

    // Bob may not describe repositories: his catalog is empty; alice sees hers.
    let catalog = bob.get("/v2/_catalog").await.check(200).json();
    assert_eq!(catalog["repositories"], json!([]), "{catalog}");
    let catalog = alice.get("/v2/_catalog").await.check(200).json();
    assert_eq!(
        catalog["repositories"],
        json!(["public/tools", "team/app"]),
        "{catalog}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_from_one_address_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let wrong = as_user(&server, BOB.0, "guess");
    for _ in 0..10 {
        wrong.get("/v2/").await.error(401, "UNAUTHORIZED");
    }
    wrong.get("/v2/").await.error(429, "TOOMANYREQUESTS");
    // The address is throttled, whatever it sends now; anonymous probes still answer.
    as_user(&server, BOB.0, BOB.1)
        .get("/v2/")
        .await
        .error(429, "TOOMANYREQUESTS");
    Api::new(&server)
        .get("/v2/")
        .await
        .error(401, "UNAUTHORIZED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_file_with_a_bad_policy_or_hash_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    for (label, file) in [
        (
            "policy",
            json!({"users": [{"name": "a", "password": "$2y$04$abcdefghijklmnopqrstuuJ8aG1yV6hC3s6W3eZ1l6QIjVwZ1Z1Zq",
                              "policies": [{"Statement": {"Effect": "Allow", "Action": "ecr:*"}}]}]}),
        ),
        (
            "hash",
            json!({"users": [{"name": "a", "password": "plain text"}]}),
        ),
        (
            "group",
            json!({"users": [{"name": "a", "password": bcrypt::hash("p", 4).unwrap(), "groups": ["none"]}]}),
        ),
        (
            "short bcrypt",
            json!({"users": [{"name": "a", "password": "$2y$04$x"}]}),
        ),
        (
            "argon2i",
            json!({"users": [{"name": "a", "password": argon2id("p").replace("$argon2id$", "$argon2i$")}]}),
        ),
        (
            "argon2id costs",
            json!({"users": [{"name": "a", "password": argon2id("p").replace("m=19456", "m=4194304")}]}),
        ),
        ("field", json!({"users": [], "admins": []})),
        (
            "reserved",
            json!({"users": [{"name": "AWS", "password": bcrypt::hash("p", 4).unwrap()}]}),
        ),
    ] {
        let path = dir.path().join(format!("{label}.json"));
        std::fs::write(&path, file.to_string()).unwrap();
        let err = RegistryServer::spawn(
            &dir.path().join(label),
            vec!["--auth".into(), path.display().to_string()],
        )
        .err()
        .unwrap_or_else(|| panic!("a users file with a bad {label} is refused"));
        assert!(err.contains("--auth"), "{label}: {err}");
        let names = match label {
            "policy" => "Resource",
            "group" => "no group",
            "field" => "admins",
            "reserved" => "reserved for ECR login tokens",
            _ => "password",
        };
        assert!(err.contains(names), "{label}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_credentials_are_refused_and_many_users_are_served_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let digest = as_user(&server, ALICE.0, ALICE.1)
        .push_blob("team/app", b"shared layer")
        .await;
    let blob = format!("/v2/team/app/blobs/{digest}");
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let long = format!(
        "Basic {}",
        encode(&format!("{}:{}", ALICE.0, "x".repeat(64 << 10)))
    );
    for header in [
        "Basic".to_owned(),
        "Basic !!!not base64!!!".to_owned(),
        format!("Basic {}", encode("no colon here")),
        format!("Basic {}", encode(":")),
        format!("Bearer {}", encode("alice:token")),
        format!("Digest {}", encode(&format!("{}:{}", ALICE.0, ALICE.1))),
        long,
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&header).unwrap());
        let api = Api::with_client(&server, reqwest::Client::builder().default_headers(headers))
            .labelled("malformed");
        api.get(&blob).await.error(401, "UNAUTHORIZED");
    }
    // More clients at once than the server has blocking threads for bcrypt; each
    // logs in once and reads.
    let readers: Vec<_> = (0..24)
        .map(|i| {
            let api = as_user(&server, BOB.0, BOB.1).labelled(format!("reader {i}"));
            let blob = blob.clone();
            tokio::spawn(async move { api.get(&blob).await.check(200).body.len() })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), b"shared layer".len());
    }
}
