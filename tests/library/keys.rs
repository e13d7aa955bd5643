//! Key providers: every shipped provider runs the `testing::key_provider` conformance
//! suite (wrap and unwrap, context binding, missing KEKs, no key material shown,
//! fingerprints); fingerprints tell keys apart, not names; the key file's permissions and
//! persistence, the environment, and the cache's bound.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use wharf::ErrorKind;
use wharf::codec::DataKey;
use wharf::keys::{CachingKeyProvider, KeyProvider, LocalKeyProvider, MemoryKeyProvider};

/// The contract every provider keeps, for `kek` which it has.
async fn contract(provider: &dyn KeyProvider, kek: &str) {
    wharf::testing::key_provider::all(provider, kek).await;
}

#[tokio::test]
async fn memory_provider_keeps_the_contract_and_revokes() {
    let provider = MemoryKeyProvider::default();
    provider.generate("tenant-a").unwrap();
    contract(&provider, "tenant-a").await;
    let key = DataKey::generate().unwrap();
    let wrapped = provider.wrap("tenant-a", &key, b"x").await.unwrap();
    provider.remove("tenant-a");
    assert_eq!(
        provider.unwrap(&wrapped, b"x").await.unwrap_err().kind(),
        ErrorKind::Denied
    );
}

#[tokio::test]
async fn fingerprints_tell_keys_apart_not_names() {
    let (one, two, three) = (
        MemoryKeyProvider::default(),
        MemoryKeyProvider::default(),
        MemoryKeyProvider::default(),
    );
    one.insert("default", [7; 32]);
    two.insert("default", [7; 32]);
    two.insert("renamed", [7; 32]);
    three.insert("default", [8; 32]);
    // The same key is the same fingerprint wherever it is loaded, under any name.
    assert_eq!(fp(&one, "default").await, fp(&two, "default").await);
    assert_eq!(fp(&one, "default").await, fp(&two, "renamed").await);
    // Another key under the same name is not.
    assert_ne!(fp(&one, "default").await, fp(&three, "default").await);
    // Through the cache too.
    let three = Arc::new(three);
    let cached = CachingKeyProvider::new(three.clone(), 4);
    assert_eq!(
        fp(&cached, "default").await,
        fp(three.as_ref(), "default").await
    );
}

async fn fp(provider: &dyn KeyProvider, kek: &str) -> String {
    provider.fingerprint(kek).await.unwrap()
}

#[tokio::test]
async fn the_key_file_is_owner_only_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let provider = LocalKeyProvider::open(&path).unwrap();
    contract(&provider, "default").await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    provider.generate("next").unwrap();
    assert_eq!(
        provider.generate("next").unwrap_err().kind(),
        ErrorKind::Conflict,
        "a KEK is never replaced"
    );
    let key = DataKey::generate().unwrap();
    let wrapped = provider.wrap("next", &key, b"blob").await.unwrap();
    let reopened = LocalKeyProvider::open(&path).unwrap();
    assert_eq!(reopened.kek_names(), ["default", "next"]);
    assert_eq!(
        reopened.unwrap(&wrapped, b"blob").await.unwrap().expose(),
        key.expose()
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = LocalKeyProvider::open(&path).unwrap_err();
    assert!(err.message().contains("readable by others"), "{err}");

    std::fs::write(
        dir.path().join("bad.json"),
        "{\"version\":1,\"keys\":{\"a\":\"xyz\"}}",
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("bad.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let err = LocalKeyProvider::open(dir.path().join("bad.json")).unwrap_err();
    assert!(err.message().contains("64 hex digits"), "{err}");
}

#[tokio::test]
async fn keys_can_come_from_the_environment() {
    let provider = LocalKeyProvider::from_vars([
        ("WHARF_KEK_TENANT_A".to_owned(), "11".repeat(32)),
        ("PATH".to_owned(), "/usr/bin".to_owned()),
    ])
    .unwrap();
    assert_eq!(provider.kek_names(), ["tenant-a"]);
    contract(&provider, "tenant-a").await;
    let err =
        LocalKeyProvider::from_vars([("WHARF_KEK_X".to_owned(), "short".to_owned())]).unwrap_err();
    assert!(err.message().contains("WHARF_KEK_X"), "{err}");
    assert!(
        !err.message().contains("short"),
        "the value is not echoed: {err}"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_and_serves_repeats() {
    let inner = Arc::new(MemoryKeyProvider::default());
    inner.generate("k").unwrap();
    let cache = CachingKeyProvider::new(inner.clone(), 2);
    contract(&cache, "k").await;
    let mut wraps = Vec::new();
    for i in 0..3u8 {
        let key = DataKey::generate().unwrap();
        wraps.push((inner.wrap("k", &key, &[i]).await.unwrap(), key));
    }
    for (i, (wrapped, key)) in wraps.iter().enumerate() {
        let got = cache.unwrap(wrapped, &[i as u8]).await.unwrap();
        assert_eq!(got.expose(), key.expose());
    }
    assert_eq!(cache.len(), 2);
    // The newest is served from the cache even after the KEK is gone, until cleared.
    inner.remove("k");
    cache.unwrap(&wraps[2].0, &[2]).await.unwrap();
    assert_eq!(
        cache.unwrap(&wraps[0].0, &[0]).await.unwrap_err().kind(),
        ErrorKind::Denied,
        "the oldest was evicted"
    );
    cache.clear();
    assert!(cache.is_empty());
    assert!(cache.unwrap(&wraps[2].0, &[2]).await.is_err());
}
