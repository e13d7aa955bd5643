//! The [`KeyProvider`] conformance suite: one check per point of the trait's contract.
//! Each check takes a provider that holds `kek` and lacks the KEK named
//! [`MISSING_KEK`].

use crate::codec::DataKey;
use crate::error::ErrorKind;
use crate::keys::{KeyProvider, WrappedKey};

/// A KEK name the provider under test must not have.
pub const MISSING_KEK: &str = "conformance-no-such-kek";

/// Runs every check against `provider`, which holds `kek`.
pub async fn all(provider: &dyn KeyProvider, kek: &str) {
    wraps_unwrap_to_the_key(provider, kek).await;
    wraps_are_bound_and_tamper_evident(provider, kek).await;
    missing_keks_are_denied_by_name(provider, kek).await;
    no_key_material_is_shown(provider, kek).await;
    fingerprints_name_the_key(provider, kek).await;
}

fn context() -> Vec<u8> {
    format!("sha256:{}", crate::util::random_id()).into_bytes()
}

/// Contract 1.
pub async fn wraps_unwrap_to_the_key(provider: &dyn KeyProvider, kek: &str) {
    let key = DataKey::generate().unwrap();
    let context = context();
    let wrapped = provider.wrap(kek, &key, &context).await.unwrap();
    assert_eq!(wrapped.kek, kek, "1: a wrap names its KEK");
    let back = provider.unwrap(&wrapped, &context).await.unwrap();
    assert_eq!(back.expose(), key.expose(), "1: unwrap gives the key back");
    let again = provider.wrap(kek, &key, &context).await.unwrap();
    let back = provider.unwrap(&again, &context).await.unwrap();
    assert_eq!(back.expose(), key.expose(), "1: every wrap unwraps");
}

/// Contract 2.
pub async fn wraps_are_bound_and_tamper_evident(provider: &dyn KeyProvider, kek: &str) {
    let key = DataKey::generate().unwrap();
    let context = context();
    let wrapped = provider.wrap(kek, &key, &context).await.unwrap();
    let err = provider
        .unwrap(&wrapped, &self::context())
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::CorruptData,
        "2: another context does not unwrap: {err}"
    );
    for at in [0, wrapped.bytes.len() / 2, wrapped.bytes.len() - 1] {
        let mut damaged = wrapped.clone();
        damaged.bytes[at] ^= 1;
        let err = provider.unwrap(&damaged, &context).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::CorruptData,
            "2: a wrap changed at byte {at} does not unwrap: {err}"
        );
    }
    let mut short = wrapped.clone();
    short.bytes.pop();
    let err = provider.unwrap(&short, &context).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::CorruptData,
        "2: a cut wrap does not unwrap"
    );
}

/// Contract 3.
pub async fn missing_keks_are_denied_by_name(provider: &dyn KeyProvider, kek: &str) {
    let key = DataKey::generate().unwrap();
    let context = context();
    let err = provider
        .wrap(MISSING_KEK, &key, &context)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "3: wrapping under a missing KEK"
    );
    assert!(
        err.message().contains(MISSING_KEK),
        "3: the error names the KEK: {err}"
    );
    let wrapped = provider.wrap(kek, &key, &context).await.unwrap();
    let elsewhere = WrappedKey {
        kek: MISSING_KEK.into(),
        bytes: wrapped.bytes,
    };
    let err = provider.unwrap(&elsewhere, &context).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "3: unwrapping under a missing KEK"
    );
    assert!(
        err.message().contains(MISSING_KEK),
        "3: the error names the KEK: {err}"
    );
}

/// Contract 4.
pub async fn no_key_material_is_shown(provider: &dyn KeyProvider, kek: &str) {
    let key = DataKey::generate().unwrap();
    let context = context();
    let wrapped = provider.wrap(kek, &key, &context).await.unwrap();
    let mut damaged = wrapped.clone();
    damaged.bytes[0] ^= 1;
    let failures = [
        provider.unwrap(&damaged, &context).await.unwrap_err(),
        provider
            .wrap(MISSING_KEK, &key, &context)
            .await
            .unwrap_err(),
        provider.fingerprint(MISSING_KEK).await.unwrap_err(),
    ];
    let secret = crate::hex::encode(key.expose());
    let mut shown = vec![
        format!("{provider:?}"),
        format!("{wrapped:?}"),
        format!("{key:?}"),
        provider.fingerprint(kek).await.unwrap(),
    ];
    shown.extend(failures.iter().map(|e| format!("{e} {e:?}")));
    for text in shown {
        assert!(
            !text.contains(&secret[..16]),
            "4: no key material in {text:?}"
        );
    }
}

/// Contract 5.
pub async fn fingerprints_name_the_key(provider: &dyn KeyProvider, kek: &str) {
    let fingerprint = provider.fingerprint(kek).await.unwrap();
    assert!(
        !fingerprint.is_empty() && fingerprint.len() <= 255,
        "5: a fingerprint is short: {fingerprint:?}"
    );
    assert!(
        fingerprint.bytes().all(|b| b.is_ascii_graphic()),
        "5: a fingerprint is printable: {fingerprint:?}"
    );
    assert_eq!(
        provider.fingerprint(kek).await.unwrap(),
        fingerprint,
        "5: the same key, the same fingerprint"
    );
    let err = provider.fingerprint(MISSING_KEK).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Denied,
        "5: a missing KEK has no fingerprint"
    );
}
