//! Docker token authentication in the registry server: the Bearer challenge names the
//! token endpoint and the scope a request needs; `/token` grants the scope asked as far
//! as the caller's policies allow; tokens are refused when expired, tampered with,
//! signed by another key, or for another scope; a mount needs `pull` on its source in
//! the token; signing keys rotate under `--root`.

use crate::common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use wharf::access::token::{self, Access, Claims, SigningKey};

use common::http::{Api, Reply, digest_of};
use common::server::RegistryServer;

use super::auth::{ALICE, BOB, start, users_file};

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Asks `/token` for `scopes`, as `user` or anonymously.
async fn ask(server: &RegistryServer, user: Option<(&str, &str)>, scopes: &[&str]) -> Reply {
    let api = Api::new(server).labelled("token client");
    let query: Vec<String> = scopes
        .iter()
        .map(|s| format!("scope={}", s.replace(':', "%3A").replace(',', "%2C")))
        .chain(["service=wharf-registry".to_owned()])
        .collect();
    let authorization = user.map(|(name, password)| basic(name, password));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    api.send(
        reqwest::Method::GET,
        &format!("/token?{}", query.join("&")),
        &headers,
        None,
    )
    .await
}

/// A token for `scopes` and the access it grants.
async fn token_for(
    server: &RegistryServer,
    user: Option<(&str, &str)>,
    scopes: &[&str],
) -> (String, Vec<Access>) {
    let answer = ask(server, user, scopes).await.check(200).json();
    let token = answer["token"].as_str().unwrap().to_owned();
    assert_eq!(answer["access_token"], answer["token"]);
    assert_eq!(answer["expires_in"], 300);
    let claims = token.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    let access = serde_json::from_value(claims["access"].clone()).unwrap();
    (token, access)
}

fn bearer(server: &RegistryServer, token: &str, label: &str) -> Api {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    Api::with_client(server, reqwest::Client::builder().default_headers(headers)).labelled(label)
}

fn scopes(access: &[Access]) -> Vec<String> {
    access.iter().map(ToString::to_string).collect()
}

fn challenge(server: &RegistryServer, scope: &str) -> String {
    format!(
        "Bearer realm=\"http://{}/token\",service=\"wharf-registry\",scope=\"{scope}\"",
        server.host()
    )
}

/// The keys the server signs with, from `DIR/token-keys/`.
fn server_keys(root: &Path) -> Vec<SigningKey> {
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(root.join("token-keys")).unwrap() {
        let path = entry.unwrap().path();
        let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&text.trim()[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        keys.push(SigningKey::new(&id, bytes.try_into().unwrap()).unwrap());
    }
    keys
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, scope: &str, exp: u64) -> Claims {
    Claims {
        iss: "wharf-registry".into(),
        sub: sub.into(),
        aud: "wharf-registry".into(),
        iat: now() - 10,
        nbf: now() - 10,
        exp,
        jti: "test".into(),
        access: Access::parse_all(scope).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_grant_what_policies_allow_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());

    // A pull without credentials is challenged with the scope it needs.
    let anonymous = Api::new(&server).labelled("anonymous");
    let refused = anonymous.get("/v2/team/app/tags/list").await;
    refused.error(401, "UNAUTHORIZED");
    refused.header_is(
        "www-authenticate",
        &challenge(&server, "repository:team/app:pull"),
    );
    let refused = anonymous.post("/v2/team/app/blobs/uploads/").await;
    refused.header_is(
        "www-authenticate",
        &challenge(&server, "repository:team/app:pull,push"),
    );

    // alice gets what she asks for, and pushes and pulls with it.
    let (token, granted) = token_for(
        &server,
        Some(ALICE),
        &["repository:team/app:pull,push", "registry:catalog:*"],
    )
    .await;
    assert_eq!(
        scopes(&granted),
        ["repository:team/app:pull,push", "registry:catalog:*"]
    );
    let alice = bearer(&server, &token, "alice's token");
    alice.get("/v2/").await.check(200);
    let digest = alice.push_blob("team/app", b"pushed with a token").await;
    alice
        .get(&format!("/v2/team/app/blobs/{digest}"))
        .await
        .check(200);
    let catalog = alice.get("/v2/_catalog").await.check(200).json();
    assert_eq!(catalog["repositories"][0], "public/tools", "{catalog}");

    // The token is for team/app: another repository needs another token, even one her
    // policies allow, and so does deleting.
    let other = alice.get("/v2/team/other/tags/list").await;
    other.error(401, "UNAUTHORIZED");
    other.header_is(
        "www-authenticate",
        &challenge(&server, "repository:team/other:pull"),
    );
    let delete = alice.delete(&format!("/v2/team/app/blobs/{digest}")).await;
    delete.header_is(
        "www-authenticate",
        &challenge(&server, "repository:team/app:delete"),
    );

    // bob may only read: asking for push gets pull alone, and pushing with it is
    // refused: 403, since no token would let him.
    let (token, granted) = token_for(
        &server,
        Some(BOB),
        &["repository:team/app:pull,push,delete"],
    )
    .await;
    assert_eq!(scopes(&granted), ["repository:team/app:pull"]);
    let bob = bearer(&server, &token, "bob's token");
    bob.head(&format!("/v2/team/app/blobs/{digest}"))
        .await
        .check(200);
    bob.post("/v2/team/app/blobs/uploads/")
        .await
        .error(403, "DENIED");
    // `*` means everything bob may have.
    let (_, granted) = token_for(&server, Some(BOB), &["repository:team/app:*"]).await;
    assert_eq!(scopes(&granted), ["repository:team/app:pull"]);

    // Anonymous callers get tokens too: pull on the public repository, nothing on a
    // private one.
    let (token, granted) = token_for(
        &server,
        None,
        &[
            "repository:public/tools:pull,push",
            "repository:team/app:pull",
        ],
    )
    .await;
    assert_eq!(scopes(&granted), ["repository:public/tools:pull"]);
    let anonymous = bearer(&server, &token, "anonymous token");
    anonymous.get("/v2/public/tools/tags/list").await.check(200);
    anonymous
        .get(&format!("/v2/team/app/blobs/{digest}"))
        .await
        .error(401, "UNAUTHORIZED");

    // Bad credentials at /token: 401 with a Basic challenge, nothing said about why.
    let wrong = ask(
        &server,
        Some((ALICE.0, "wrong")),
        &["repository:team/app:pull"],
    )
    .await;
    wrong.error(401, "UNAUTHORIZED");
    wrong.header_is("www-authenticate", "Basic realm=\"wharf\"");
    // A malformed scope or another service is a bad request.
    ask(&server, Some(ALICE), &["repository:Team:pull"])
        .await
        .error(400, "INVALID_ARGUMENT");
    let api = Api::new(&server);
    api.get("/token?service=elsewhere")
        .await
        .error(400, "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tampered_foreign_and_vanished_users_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (token, _) = token_for(&server, Some(ALICE), &["repository:team/app:pull,push"]).await;
    let digest = bearer(&server, &token, "alice")
        .push_blob("team/app", b"a blob")
        .await;
    let blob = format!("/v2/team/app/blobs/{digest}");
    bearer(&server, &token, "alice").get(&blob).await.check(200);

    let keys = server_keys(&dir.path().join("data"));
    assert_eq!(keys.len(), 1, "one signing key at first start");
    let key = &keys[0];
    let refused = |token: String, why: &'static str| {
        let server = &server;
        let blob = blob.clone();
        async move {
            let answer = bearer(server, &token, why).get(&blob).await;
            let error = answer.error(401, "UNAUTHORIZED");
            answer.header_is(
                "www-authenticate",
                &challenge(server, "repository:team/app:pull"),
            );
            error
        }
    };
    // A token the server's own key signed, but expired.
    let expired = token::sign(&claims("alice", "repository:team/app:pull", now() - 1), key);
    let error = refused(expired, "expired").await;
    assert!(error.to_string().contains("expired"), "{error}");
    // A valid token with one character of its signature or claims changed.
    let mut tampered = token.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    refused(String::from_utf8(tampered).unwrap(), "tampered signature").await;
    let (head, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let bigger = claims("alice", "repository:team/app:pull,push,delete", now() + 300);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&bigger).unwrap());
    refused(format!("{head}.{body}.{signature}"), "claims swapped").await;
    // Signed by another key under the server's key id, and by an unknown key.
    let impostor = SigningKey::new(key.id(), [9; 32]).unwrap();
    let valid = claims("alice", "repository:team/app:pull", now() + 300);
    refused(token::sign(&valid, &impostor), "other key").await;
    let stranger = SigningKey::new("1-stranger", [9; 32]).unwrap();
    refused(token::sign(&valid, &stranger), "unknown key").await;
    // For a user the file does not have.
    let ghost = claims("mallory", "repository:team/app:pull", now() + 300);
    refused(token::sign(&ghost, key), "unknown user").await;
    // Not a token at all.
    for garbage in ["x", "a.b.c", "....", &"A".repeat(8 << 10)] {
        refused(garbage.to_owned(), "garbage").await;
    }
    // The real one still works, and a well-signed one for bob reads.
    bearer(&server, &token, "alice").get(&blob).await.check(200);
    bearer(
        &server,
        &token::sign(&claims("bob", "repository:team/app:pull", now() + 300), key),
        "bob",
    )
    .get(&blob)
    .await
    .check(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mount_needs_pull_on_its_source_in_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (token, _) = token_for(&server, Some(ALICE), &["repository:team/a:pull,push"]).await;
    let digest = bearer(&server, &token, "alice")
        .push_blob("team/a", b"shared layer")
        .await;
    let mount = format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/a");
    // Push on team/b alone: the mount falls back to an upload, as if the blob were
    // not there.
    let (only_b, _) = token_for(&server, Some(ALICE), &["repository:team/b:pull,push"]).await;
    bearer(&server, &only_b, "b only")
        .post(&mount)
        .await
        .check(202);
    // With pull on team/a too, as clients ask when they mount: mounted.
    let (both, _) = token_for(
        &server,
        Some(ALICE),
        &["repository:team/b:pull,push", "repository:team/a:pull"],
    )
    .await;
    bearer(&server, &both, "both").post(&mount).await.check(201);
    assert_eq!(digest, digest_of(b"shared layer"));
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_rotate_and_old_ones_retire() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let keys = root.join("token-keys");
    std::fs::create_dir_all(&keys).unwrap();
    // A key made 23 hours ago still signs; one made three days ago is retired.
    let recent = SigningKey::new(&format!("{}-recent", now() - 23 * 3600), [1; 32]).unwrap();
    let ancient = SigningKey::new(&format!("{}-ancient", now() - 72 * 3600), [2; 32]).unwrap();
    for key in [&recent, &ancient] {
        let hex: String = key.secret().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(keys.join(format!("{}.key", key.id())), hex).unwrap();
    }
    let server = start_at(dir.path(), &root);
    let held: Vec<String> = server_keys(&root)
        .iter()
        .map(|k| k.id().to_owned())
        .collect();
    assert_eq!(
        held,
        [recent.id()],
        "the ancient key is removed, no new one yet"
    );
    let (token, _) = token_for(&server, Some(ALICE), &["repository:team/app:pull"]).await;
    let header = token.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    assert!(String::from_utf8(header).unwrap().contains(recent.id()));
    let valid = claims("alice", "repository:team/app:pull", now() + 300);
    let ancient_token = token::sign(&valid, &ancient);
    bearer(&server, &ancient_token, "ancient")
        .get("/v2/team/app/tags/list")
        .await
        .error(401, "UNAUTHORIZED");
    drop(server);

    // Once the newest key is a day old, a restart adds a new one that signs; the old
    // one still verifies the tokens it signed.
    let old = SigningKey::new(&format!("{}-old", now() - 25 * 3600), [3; 32]).unwrap();
    std::fs::remove_file(keys.join(format!("{}.key", recent.id()))).unwrap();
    let hex: String = old.secret().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(keys.join(format!("{}.key", old.id())), hex).unwrap();
    let server = start_at(dir.path(), &root);
    let held = server_keys(&root);
    assert_eq!(held.len(), 2, "{held:?}");
    let (token, _) = token_for(&server, Some(ALICE), &["repository:team/app:pull"]).await;
    assert!(!token.is_empty());
    let old_token = token::sign(&valid, &old);
    bearer(&server, &old_token, "old key")
        .get("/v2/team/app/tags/list")
        .await
        .error(404, "NAME_UNKNOWN");
    // A key file that is not a key stops the server with its name.
    std::fs::write(keys.join("99-bad.key"), "not hex").unwrap();
    drop(server);
    let users = users_file(dir.path());
    let error = RegistryServer::spawn(&root, vec!["--auth".into(), users.display().to_string()])
        .err()
        .expect("a bad key file stops the server");
    assert!(error.contains("99-bad.key"), "{error}");
}

fn start_at(dir: &Path, root: &Path) -> RegistryServer {
    let users = users_file(dir);
    RegistryServer::spawn(root, vec!["--auth".into(), users.display().to_string()])
        .expect("the server starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn many_clients_fetch_tokens_and_use_them_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (token, _) = token_for(&server, Some(ALICE), &["repository:team/app:pull,push"]).await;
    let digest = bearer(&server, &token, "alice")
        .push_blob("team/app", b"shared")
        .await;
    // More clients than the blocking pool has threads, each with its own connection.
    let clients = (0..48).map(|i| {
        let server = &server;
        let digest = digest.clone();
        async move {
            let user = if i % 2 == 0 { ALICE } else { BOB };
            let (token, granted) =
                token_for(server, Some(user), &["repository:team/app:pull"]).await;
            assert_eq!(scopes(&granted), ["repository:team/app:pull"]);
            bearer(server, &token, "client")
                .get(&format!("/v2/team/app/blobs/{digest}"))
                .await
                .check(200);
        }
    });
    common::http::within(
        Duration::from_secs(120),
        "48 clients logging in",
        futures::future::join_all(clients),
    )
    .await;
}
