//! Registry tokens: the format pinned by a vector computed with another HMAC-SHA256
//! implementation (Python's `hmac`), every way a token can be wrong refused with its
//! own error, scopes parsed as clients send them, and a token's grant narrowing what
//! its holder may do through the caller view.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use wharf::access::token::{
    self, Access, Claims, Keyring, ScopeAction, SigningKey, TokenError, session_policy,
};
use wharf::access::{Context, Identity, Policy, Principal};
use wharf::{ErrorKind, MemoryMetaStore, Registry, RepositorySettings, ResourceAccount};

use crate::common::images::Image;
use crate::common::{repo, sha256};

/// HS256 over the header and claims below, with the key bytes 0, 1, ..., 31.
const VECTOR: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJpc3MiOiJ3aGFyZiIsInN1YiI6ImFsaWNlIiwiYXVkIjoicmVnaXN0cnkiLCJpYXQiOjE4MDAwMDAwMDAsIm5iZiI6MTgwMDAwMDAwMCwiZXhwIjoxODAwMDAwMzAwLCJqdGkiOiJqMSIsImFjY2VzcyI6W3sidHlwZSI6InJlcG9zaXRvcnkiLCJuYW1lIjoidGVhbS9hcHAiLCJhY3Rpb25zIjpbInB1bGwiLCJwdXNoIl19XX0.EVU7tIKGSAjJMwl4wc7ZCBQ6QSjB6aJkCUQSwfujDSQ";

fn key() -> SigningKey {
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = i as u8;
    }
    SigningKey::new("k1", secret).unwrap()
}

fn claims() -> Claims {
    Claims {
        iss: "wharf".into(),
        sub: "alice".into(),
        aud: "registry".into(),
        iat: 1_800_000_000,
        nbf: 1_800_000_000,
        exp: 1_800_000_300,
        jti: "j1".into(),
        access: vec![Access::parse("repository:team/app:push,pull").unwrap()],
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn signing_matches_the_vector_and_the_vector_verifies() {
    assert_eq!(token::sign(&claims(), &key()), VECTOR);
    let keys = Keyring::new(vec![key()]);
    let verified = token::verify(VECTOR, &keys, "registry", at(1_800_000_100)).unwrap();
    assert_eq!(verified, claims());
    assert!(verified.grants("repository", "team/app", ScopeAction::Push));
    assert!(!verified.grants("repository", "team/app", ScopeAction::Delete));
    assert!(!verified.grants("repository", "team/other", ScopeAction::Pull));
}

#[test]
fn every_changed_character_is_refused() {
    let keys = Keyring::new(vec![key()]);
    let now = at(1_800_000_100);
    for i in 0..VECTOR.len() {
        let mut bytes = VECTOR.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        // The last character of a base64url part carries spare bits: a change there
        // may decode to the same bytes, and then it is the same token.
        if let Ok(claims) = token::verify(&tampered, &keys, "registry", now) {
            assert_eq!(claims, self::claims(), "changed at {i}");
        }
    }
}

#[test]
fn each_kind_of_bad_token_gets_its_own_error() {
    let keys = Keyring::new(vec![key()]);
    let now = at(1_800_000_100);
    let verify = |token: &str, now| token::verify(token, &keys, "registry", now);
    // Time: expired at `exp`; not valid before `nbf` beyond the leeway.
    assert_eq!(verify(VECTOR, at(1_800_000_300)), Err(TokenError::Expired));
    assert_eq!(
        verify(VECTOR, at(1_799_999_000)),
        Err(TokenError::NotYetValid)
    );
    assert!(
        verify(VECTOR, at(1_799_999_990)).is_ok(),
        "within the leeway"
    );
    // Another service's token.
    assert_eq!(
        token::verify(VECTOR, &keys, "elsewhere", now),
        Err(TokenError::Audience)
    );
    // Another key of the same name, and a key the registry does not hold.
    let impostor = SigningKey::new("k1", [7; 32]).unwrap();
    let forged = token::sign(&claims(), &impostor);
    assert_eq!(verify(&forged, now), Err(TokenError::Signature));
    let stranger = SigningKey::new("k2", [0; 32]).unwrap();
    assert_eq!(
        verify(&token::sign(&claims(), &stranger), now),
        Err(TokenError::UnknownKey)
    );
    // `alg: none` with no signature, and another algorithm.
    let (_, rest) = VECTOR.split_once('.').unwrap();
    let (body, _) = rest.split_once('.').unwrap();
    let none = format!("{}.{body}.", b64(br#"{"alg":"none","kid":"k1"}"#));
    assert_eq!(
        verify(&none, now),
        Err(TokenError::Algorithm("none".into()))
    );
    let rs = format!("{}.{body}.AAAA", b64(br#"{"alg":"RS256","kid":"k1"}"#));
    assert_eq!(verify(&rs, now), Err(TokenError::Algorithm("RS256".into())));
    // Shapes.
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        VECTOR.replace('.', "..").as_str(),
    ] {
        assert!(
            matches!(verify(bad, now), Err(TokenError::Malformed(_))),
            "{bad:?}"
        );
    }
    // Claims that are not the token's shape, signed by the right key.
    let header = b64(br#"{"alg":"HS256","kid":"k1"}"#);
    let odd = b64(br#"{"sub":"alice"}"#);
    let unsigned = format!("{header}.{odd}");
    let signed = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key().secret()).unwrap();
        mac.update(unsigned.as_bytes());
        format!("{unsigned}.{}", b64(&mac.finalize().into_bytes()))
    };
    assert!(matches!(
        verify(&signed, now),
        Err(TokenError::Malformed(_))
    ));
    // Every refusal is Unauthorized to the registry.
    let error: wharf::Error = TokenError::Expired.into();
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
}

#[test]
fn the_newest_key_signs_and_every_key_verifies() {
    let old = key();
    let new = SigningKey::generate("k2").unwrap();
    let keys = Keyring::new(vec![old.clone(), new.clone()]);
    assert_eq!(keys.signing().unwrap().id(), "k2");
    let now = at(1_800_000_100);
    for signer in [&old, &new] {
        let t = token::sign(&claims(), signer);
        assert_eq!(token::verify(&t, &keys, "registry", now).unwrap(), claims());
    }
    assert!(SigningKey::new("bad id", [0; 32]).is_err());
    assert!(SigningKey::new("", [0; 32]).is_err());
    assert!(
        !format!("{old:?}").contains("[0, 1, 2"),
        "Debug hides the secret"
    );
}

#[test]
fn scopes_parse_as_clients_send_them() {
    let scopes = Access::parse_all(
        "repository:team/app:pull,push repository(plugin):x:pull registry:catalog:*",
    )
    .unwrap();
    assert_eq!(scopes.len(), 3);
    assert_eq!(scopes[0].to_string(), "repository:team/app:pull,push");
    assert_eq!(scopes[1].kind, "repository");
    assert_eq!(scopes[2].actions, vec![ScopeAction::All]);
    // Unknown actions are dropped, duplicates merged.
    let odd = Access::parse("repository:a:pull,fly,pull,").unwrap();
    assert_eq!(odd.actions, vec![ScopeAction::Pull]);
    for bad in [
        "repository",
        "repository:a",
        "repository:UPPER:pull",
        "repository::pull",
        "bucket:a:pull",
    ] {
        let error = Access::parse(bad).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad}");
        assert!(error.message().contains(bad), "{error}");
    }
}

const ACCOUNT: &str = "123456789012";

fn registry() -> Registry {
    Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .resource_account(ResourceAccount {
            region: "eu-west-1".into(),
            account: ACCOUNT.into(),
        })
        .build()
        .unwrap()
}

fn admin() -> Principal {
    let policy = Policy::identity(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}"#,
    )
    .unwrap();
    Principal::Identity(Identity::user(ACCOUNT, "admin").with_policy(policy))
}

fn session(scopes: &str) -> Arc<Policy> {
    let access = Access::parse_all(scopes).unwrap();
    Arc::new(session_policy(&access, "eu-west-1", ACCOUNT).unwrap())
}

#[tokio::test]
async fn a_token_narrows_its_holder_to_what_it_grants() {
    let registry = registry();
    let (app, other) = (repo("team/app"), repo("team/other"));
    let image = Image::seeded("narrow");
    let layer = image.layers[0].clone();
    let digest = sha256(&layer);
    for r in [&app, &other] {
        registry.push_blob(r, &digest, layer.clone()).await.unwrap();
    }
    let context = || Context::at(SystemTime::now());

    // Pull on one repository: that repository reads; writes and the other do not.
    let pull = registry.as_session(admin(), context(), session("repository:team/app:pull"));
    pull.stat_blob(&app, &digest).await.unwrap();
    let denied = pull.stat_blob(&other, &digest).await.unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Denied);
    let denied = pull
        .push_blob(&app, &sha256(b"x"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Denied);

    // Push grants the writes, and creating a repository on first push.
    let push = registry.as_session(admin(), context(), session("repository:team/new:pull,push"));
    push.push_blob(&repo("team/new"), &sha256(b"x"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(
        push.delete_repository(&repo("team/new"), true)
            .await
            .is_err()
    );

    // An empty grant allows nothing, not even what the holder's policies allow.
    let nothing = registry.as_session(admin(), context(), session(""));
    assert_eq!(
        nothing.stat_blob(&app, &digest).await.unwrap_err().kind(),
        ErrorKind::Denied
    );

    // A token never grants beyond the holder's own policies: an anonymous caller with
    // a pull grant reads a public repository, and nothing private.
    registry
        .create_repository(
            &repo("public/tools"),
            RepositorySettings {
                public: true,
                ..RepositorySettings::default()
            },
        )
        .await
        .unwrap();
    registry
        .push_blob(&repo("public/tools"), &digest, layer.clone())
        .await
        .unwrap();
    let anonymous = registry.as_session(
        Principal::Anonymous,
        context(),
        session("repository:public/tools:pull repository:team/app:pull"),
    );
    anonymous
        .stat_blob(&repo("public/tools"), &digest)
        .await
        .unwrap();
    assert_eq!(
        anonymous.stat_blob(&app, &digest).await.unwrap_err().kind(),
        ErrorKind::Unauthorized
    );

    // The catalog scope lists repositories; without it the catalog is empty.
    let catalog = registry.as_session(admin(), context(), session("registry:catalog:*"));
    assert_eq!(catalog.list_repositories(100, None).await.unwrap().len(), 4);
    assert!(pull.list_repositories(100, None).await.unwrap().is_empty());
}
