//! Descriptors in pushed manifests: index entries and subjects must match what is
//! stored, and every descriptor is checked (media type, digest, size, URLs, embedded
//! data) before any blob is looked up.

use crate::common;

use bytes::Bytes;
use common::{repo, sha256, tag};
use serde_json::json;
use wharf::{ErrorKind, Registry};

use super::manifest_push::{blob, image, pushed_image};

#[tokio::test]
async fn index_and_subject_descriptors_must_match_what_is_stored() {
    let registry = Registry::in_memory();
    let r = repo("multi");
    let (child, raw_child) = pushed_image(&registry, &r, "amd64").await;
    let index = |media_type: &str, size: usize| -> Bytes {
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX,
            "manifests": [{"mediaType": media_type, "digest": child.to_string(), "size": size}]}),
        )
        .unwrap()
        .into()
    };
    for (media_type, size, named) in [
        (wharf::OCI_IMAGE_MANIFEST, raw_child.len() + 1, "size"),
        (
            wharf::DOCKER_MANIFEST_V2,
            raw_child.len(),
            wharf::DOCKER_MANIFEST_V2,
        ),
    ] {
        let err = registry
            .push_manifest(&r, &tag("bad"), index(media_type, size), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
        assert!(
            err.message().contains("manifests") && err.message().contains(named),
            "{err}"
        );
    }
    registry
        .push_manifest(
            &r,
            &tag("good"),
            index(wharf::OCI_IMAGE_MANIFEST, raw_child.len()),
            None,
        )
        .await
        .unwrap();

    // A subject that is stored must be described as it is.
    let config = blob(&registry, &r, b"{}", wharf::OCI_EMPTY).await;
    let referrer = |size: usize| -> Bytes {
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_MANIFEST,
            "artifactType": "application/vnd.example.sig", "config": config, "layers": [],
            "subject": {"mediaType": wharf::OCI_IMAGE_MANIFEST, "digest": child.to_string(), "size": size}}))
        .unwrap()
        .into()
    };
    let err = registry
        .push_manifest(&r, &tag("sig"), referrer(raw_child.len() - 1), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
    assert!(err.message().contains("subject"), "{err}");
    registry
        .push_manifest(&r, &tag("sig"), referrer(raw_child.len()), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn descriptors_are_validated_before_any_blob_is_looked_up() {
    let registry = Registry::in_memory();
    let r = repo("strict");
    // None of these blobs exists: each push fails on the descriptor, naming its field,
    // and never reaches a blob lookup (which would say MANIFEST_BLOB_UNKNOWN).
    let data = "e30="; // base64 of "{}"
    let empty = sha256(b"{}").to_string();
    let layer = |extra: serde_json::Value| {
        let mut layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(b"layer").to_string(), "size": 5});
        layer
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        layer
    };
    let config = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": empty.clone(), "size": 2});
    let cases = [
        (
            layer(json!({"mediaType": "application"})),
            "layers[0].mediaType",
        ),
        (
            layer(json!({"mediaType": "application/vnd.x; charset=utf-8"})),
            "layers[0].mediaType",
        ),
        (layer(json!({"mediaType": ""})), "layers[0].mediaType"),
        (
            layer(json!({"artifactType": "not a type"})),
            "layers[0].artifactType",
        ),
        (
            layer(json!({"urls": ["https://example.com/ok", "no scheme"]})),
            "layers[0].urls[1]",
        ),
        (
            layer(json!({"urls": ["http://example.com/%zz"]})),
            "layers[0].urls[0]",
        ),
        (layer(json!({"data": "e30"})), "layers[0].data"),
        (layer(json!({"data": "e3-="})), "layers[0].data"),
        (layer(json!({"data": 5})), "layers[0].data"),
        // Well-formed, but not what size and digest say.
        (layer(json!({"data": data})), "layers[0].data"),
    ];
    for (layer, field) in cases {
        let raw = image(&config, std::slice::from_ref(&layer));
        let err = registry
            .push_manifest(&r, &tag("v1"), raw, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{layer}: {err}");
        assert!(
            err.message().contains(field),
            "{layer}: {err} lacks {field}"
        );
    }
    // An index entry needs a media type.
    let index = Bytes::from(
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": wharf::OCI_IMAGE_INDEX,
            "manifests": [{"mediaType": "", "digest": empty.clone(), "size": 2}]}),
        )
        .unwrap(),
    );
    let err = registry
        .push_manifest(&r, &tag("v1"), index, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestInvalid, "{err}");
    assert!(err.message().contains("manifests[0].mediaType"), "{err}");

    // Embedded data that matches its descriptor is fine: the push goes on to the blobs.
    let config = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": empty, "size": 2, "data": data});
    let err = registry
        .push_manifest(&r, &tag("v1"), image(&config, &[]), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ManifestBlobUnknown, "{err}");
}
