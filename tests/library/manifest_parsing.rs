//! Manifest parsing against spec-derived vectors, and properties of the parser.

use bytes::Bytes;
use proptest::prelude::*;
use serde::Deserialize;
use wharf::{Algorithm, Digest, Manifest, ManifestMediaType};

#[derive(Deserialize)]
struct Case {
    file: String,
    expect: String,
    content_type: Option<String>,
    field: Option<String>,
}

fn vectors() -> Vec<(Case, Bytes)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let index = std::fs::read(dir.join("manifests.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_slice(&index).unwrap();
    cases
        .into_iter()
        .map(|c| {
            let raw = std::fs::read(dir.join("manifests").join(&c.file)).unwrap();
            (c, raw.into())
        })
        .collect()
}

#[test]
fn spec_vectors() {
    let cases = vectors();
    assert!(cases.len() > 30);
    for (case, raw) in cases {
        let parsed = Manifest::parse(raw.clone(), case.content_type.as_deref());
        match (case.expect.as_str(), parsed) {
            ("ok", Ok(manifest)) => {
                assert_eq!(manifest.raw(), &raw, "{}: bytes kept", case.file);
                assert_eq!(
                    manifest.digest(),
                    &Digest::of(Algorithm::Sha256, &raw),
                    "{}",
                    case.file
                );
            }
            ("ok", Err(e)) => panic!("{}: expected valid, got {e}", case.file),
            (code, Ok(_)) => panic!("{}: expected {code}, parsed", case.file),
            (code, Err(e)) => {
                assert_eq!(e.kind().code(), code, "{}: {e}", case.file);
                if let Some(field) = &case.field {
                    assert!(
                        e.message().contains(field.as_str()),
                        "{}: {e} should name {field}",
                        case.file
                    );
                }
            }
        }
    }
}

#[test]
fn parsed_views_of_the_vectors() {
    let get = |name: &str| {
        let (case, raw) = vectors().into_iter().find(|(c, _)| c.file == name).unwrap();
        Manifest::parse(raw, case.content_type.as_deref()).unwrap()
    };
    let image = get("oci-image.json");
    assert_eq!(image.media_type(), ManifestMediaType::OciManifest);
    assert_eq!(image.blobs().count(), 2);
    assert!(image.children().is_empty());
    assert_eq!(
        image.referrer_artifact_type(),
        Some("application/vnd.oci.image.config.v1+json")
    );

    let artifact = get("oci-artifact-empty-config.json");
    assert_eq!(
        artifact.artifact_type(),
        Some("application/vnd.example.sbom.v1")
    );
    assert_eq!(
        artifact.referrer_artifact_type(),
        Some("application/vnd.example.sbom.v1")
    );
    assert!(artifact.subject().is_some());

    let index = get("oci-index.json");
    assert!(index.media_type().is_index());
    assert_eq!(index.children().len(), 2);
    assert_eq!(
        index.children()[1]
            .platform
            .as_ref()
            .unwrap()
            .variant
            .as_deref(),
        Some("v8")
    );
    assert_eq!(index.blobs().count(), 0);

    let list = get("docker-manifest-list.json");
    let platform = list.children()[0].platform.clone().unwrap();
    assert_eq!(platform.os_version.as_deref(), Some("10.0.17763.1457"));
    assert_eq!(platform.os_features, ["win32k"]);

    assert_eq!(
        get("oci-image-no-media-type.json").media_type(),
        ManifestMediaType::OciManifest
    );
    assert_eq!(
        get("oci-index-no-media-type.json").media_type(),
        ManifestMediaType::OciIndex
    );
}

#[test]
fn size_limit_is_enforced_and_configurable() {
    let (case, raw) = vectors()
        .into_iter()
        .find(|(c, _)| c.file == "oci-image.json")
        .unwrap();
    let err = Manifest::parse_with_limit(raw.clone(), case.content_type.as_deref(), raw.len() - 1)
        .unwrap_err();
    assert_eq!(err.kind(), wharf::ErrorKind::ManifestInvalid);
    assert!(err.message().contains("limit"), "{err}");
    Manifest::parse_with_limit(raw.clone(), case.content_type.as_deref(), raw.len()).unwrap();
    let mut padded = raw.to_vec();
    padded.extend(std::iter::repeat_n(b' ', wharf::DEFAULT_MAX_MANIFEST_SIZE));
    let err = Manifest::parse(padded.into(), None).unwrap_err();
    assert!(err.message().contains("limit"), "{err}");
}

fn hex64() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 32)
        .prop_map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

prop_compose! {
    fn descriptor()(hex in hex64(), size in 0u64..(1 << 40), media in "[a-z0-9][a-z0-9.+-]{0,14}/[a-z0-9][a-z0-9.+-]{0,14}",
                    note in proptest::option::of("[ -~]{0,20}")) -> serde_json::Value {
        let mut d = serde_json::json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": size});
        if let Some(note) = note {
            d["annotations"] = serde_json::json!({"note": note});
        }
        d
    }
}

proptest! {
    #[test]
    fn the_parser_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400),
                               content_type in proptest::option::of("[a-z./+;= -]{0,60}")) {
        let _ = Manifest::parse(raw.into(), content_type.as_deref());
    }

    #[test]
    fn generated_manifests_keep_bytes_and_digest(config in descriptor(),
                                                  layers in proptest::collection::vec(descriptor(), 0..6),
                                                  pretty in any::<bool>()) {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": layers,
        });
        let raw = if pretty { serde_json::to_vec_pretty(&body) } else { serde_json::to_vec(&body) }.unwrap();
        let manifest = Manifest::parse(raw.clone().into(), None).unwrap();
        prop_assert_eq!(&manifest.raw()[..], &raw[..]);
        prop_assert_eq!(manifest.digest(), &Digest::of(Algorithm::Sha256, &raw));
        prop_assert_eq!(manifest.blobs().count(), layers.len() + 1);
    }
}
