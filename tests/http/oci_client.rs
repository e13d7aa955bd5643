//! The registry server (`src/bin/wharf-registry`) driven by a real client library,
//! `oci-client`, against local and S3 storage: an image pushed by tag and pulled back byte
//! for byte; a two-platform image index pushed child manifests first and resolved; tags
//! listed whole and page by page (`n`, `last`); and artifacts found through the referrers
//! API, with the `OCI-Subject` and `OCI-Filters-Applied` headers checked over plain HTTP.

use crate::common;

use oci_client::client::{
    ClientConfig, ClientProtocol, Config, ImageData, ImageLayer, linux_amd64_resolver,
};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::{Value, json};
use wharf::{OCI_EMPTY, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST};

use common::server::{RegistryServer, Storage};
use common::{noise, seed_for, sha256};

const ANONYMOUS: RegistryAuth = RegistryAuth::Anonymous;
const SBOM: &str = "application/vnd.example.sbom";
const SIGNATURE: &str = "application/vnd.example.signature";

/// A plain-HTTP, anonymous client that picks linux/amd64 out of an index (whatever the
/// machine running the test).
fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        platform_resolver: Some(Box::new(linux_amd64_resolver)),
        ..Default::default()
    })
}

/// A repository on the server under test.
struct Repo {
    host: String,
    name: String,
}

impl Repo {
    fn new(server: &RegistryServer, name: &str) -> Self {
        Self {
            host: server.host().to_owned(),
            name: name.to_owned(),
        }
    }

    fn tag(&self, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), self.name.clone(), tag.to_owned())
    }

    fn digest(&self, digest: &str) -> Reference {
        Reference::with_digest(self.host.clone(), self.name.clone(), digest.to_owned())
    }

    /// A reference for blob calls, which use only its repository.
    fn blobs(&self) -> Reference {
        self.tag("latest")
    }

    /// `http://HOST/v2/NAME/{rest}`, for requests made without oci-client.
    fn url(&self, rest: &str) -> String {
        format!("http://{}/v2/{}/{rest}", self.host, self.name)
    }
}

/// The content of one platform image, generated fresh.
struct Image {
    arch: &'static str,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

impl Image {
    /// Noise layers of `layer_sizes` bytes and a config for `arch` over them (the layers
    /// count as uncompressed, so each diff_id is the layer's digest).
    fn generate(arch: &'static str, layer_sizes: &[usize]) -> Self {
        let layers: Vec<Vec<u8>> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| noise(size, seed_for(&format!("{arch} layer {i}"))))
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l).to_string()).collect();
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        Self {
            arch,
            config: serde_json::to_vec(&config).unwrap(),
            layers,
        }
    }

    fn layer_digests(&self) -> Vec<String> {
        self.layers.iter().map(|l| sha256(l).to_string()).collect()
    }

    fn oci_config(&self) -> Config {
        Config::oci_v1(self.config.clone(), None)
    }

    fn oci_layers(&self) -> Vec<ImageLayer> {
        self.layers
            .iter()
            .map(|l| ImageLayer::oci_v1(l.clone(), None))
            .collect()
    }

    /// Pushes the config and layers to `repo`; returns the image manifest listing them.
    async fn push_blobs(&self, client: &Client, repo: &Repo) -> Value {
        let config = push_blob(client, repo, IMAGE_CONFIG_MEDIA_TYPE, &self.config).await;
        let mut layers = Vec::new();
        for layer in &self.layers {
            layers.push(push_blob(client, repo, IMAGE_LAYER_MEDIA_TYPE, layer).await);
        }
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MANIFEST,
            "config": config,
            "layers": layers,
        })
    }

    /// Asserts that `pulled` (an `oci-client` pull) is this image, byte for byte.
    fn assert_pulled(&self, pulled: &ImageData) {
        let arch = self.arch;
        assert_eq!(pulled.config.data[..], self.config[..], "config of {arch}");
        let manifest = pulled.manifest.as_ref().expect("the pulled manifest");
        let listed: Vec<&str> = manifest.layers.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(listed, self.layer_digests(), "layers listed for {arch}");
        // oci-client downloads layers concurrently: match them by content, not position.
        assert_eq!(pulled.layers.len(), self.layers.len(), "layers of {arch}");
        for (i, want) in self.layers.iter().enumerate() {
            assert!(
                pulled.layers.iter().any(|got| got.data[..] == want[..]),
                "layer {i} of {arch} ({} bytes) did not come back intact",
                want.len()
            );
        }
        for layer in &pulled.layers {
            assert_eq!(layer.media_type, IMAGE_LAYER_MEDIA_TYPE);
        }
    }
}

/// Pushes `data` as a blob of `repo`; returns its descriptor as `media_type`.
async fn push_blob(client: &Client, repo: &Repo, media_type: &str, data: &[u8]) -> Value {
    let digest = sha256(data).to_string();
    client
        .push_blob(&repo.blobs(), data.to_vec(), &digest)
        .await
        .unwrap_or_else(|e| panic!("pushing blob {digest}: {e}"));
    json!({ "mediaType": media_type, "digest": digest, "size": data.len() })
}

/// The digest [`push_manifest`] pushes `manifest` under: the sha256 of its compact JSON.
fn digest_of(manifest: &Value) -> String {
    sha256(&serde_json::to_vec(manifest).unwrap()).to_string()
}

/// Pushes `manifest` as `reference`, with its `mediaType` as the content type; returns
/// the bytes pushed and their digest.
async fn push_manifest(
    client: &Client,
    reference: &Reference,
    manifest: &Value,
) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(manifest).unwrap();
    let digest = sha256(&body).to_string();
    let media_type = manifest["mediaType"].as_str().expect("a mediaType");
    let location = client
        .push_manifest_raw(reference, body.clone(), media_type.parse().unwrap())
        .await
        .unwrap_or_else(|e| panic!("pushing manifest {reference}: {e}"));
    assert!(
        location.ends_with(&format!("/manifests/{digest}")),
        "pushed {digest} as {reference}, Location {location}"
    );
    (body, digest)
}

/// The descriptor of a manifest pushed as `raw` under `digest`.
fn manifest_descriptor(raw: &[u8], digest: &str) -> Value {
    json!({ "mediaType": OCI_IMAGE_MANIFEST, "digest": digest, "size": raw.len() })
}

/// Pushes the blobs of an artifact of `artifact_type` about `subject`: an empty config
/// and one layer holding `payload`. Returns the artifact's manifest, not yet pushed.
async fn artifact(
    client: &Client,
    repo: &Repo,
    artifact_type: &str,
    subject: &Value,
    payload: &[u8],
) -> Value {
    let config = push_blob(client, repo, OCI_EMPTY, b"{}").await;
    let layer = push_blob(client, repo, "application/octet-stream", payload).await;
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MANIFEST,
        "artifactType": artifact_type,
        "config": config,
        "layers": [layer],
        "subject": subject,
    })
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn image_pushed_by_tag_pulls_back_byte_for_byte() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let client = client();
        let repo = Repo::new(&server, "client/image");
        // The first layer is over oci-client's 4 MiB chunk: it goes up in two PATCHes.
        let image = Image::generate("amd64", &[5 << 20, 300 << 10]);
        let reference = repo.tag("v1");

        let pushed = client
            .push(
                &reference,
                &image.oci_layers(),
                image.oci_config(),
                &ANONYMOUS,
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: push: {e}"));
        let digest = pushed.manifest_url.rsplit('/').next().unwrap().to_owned();
        assert!(digest.starts_with("sha256:"), "{}", pushed.manifest_url);

        let pulled = client
            .pull(&reference, &ANONYMOUS, vec![IMAGE_LAYER_MEDIA_TYPE])
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: pull: {e}"));
        assert_eq!(
            pulled.digest.as_deref(),
            Some(digest.as_str()),
            "{storage:?}"
        );
        image.assert_pulled(&pulled);

        let (raw, raw_digest) = client
            .pull_manifest_raw(&reference, &ANONYMOUS, &[OCI_IMAGE_MANIFEST])
            .await
            .unwrap();
        assert_eq!(raw_digest, digest, "{storage:?}");
        assert_eq!(sha256(&raw).to_string(), digest, "{storage:?}");
        let head_digest = client
            .fetch_manifest_digest(&reference, &ANONYMOUS)
            .await
            .unwrap();
        assert_eq!(head_digest, digest, "{storage:?}: HEAD");

        let by_digest = client
            .pull(
                &repo.digest(&digest),
                &ANONYMOUS,
                vec![IMAGE_LAYER_MEDIA_TYPE],
            )
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: pull by digest: {e}"));
        image.assert_pulled(&by_digest);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_index_pushed_children_first() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let client = client();
        let repo = Repo::new(&server, "client/multi");

        // Each platform image by digest, then the index over them by tag.
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let image = Image::generate(arch, &[200 << 10, 100 << 10]);
            let manifest = image.push_blobs(&client, &repo).await;
            let (raw, digest) =
                push_manifest(&client, &repo.digest(&digest_of(&manifest)), &manifest).await;
            let mut entry = manifest_descriptor(&raw, &digest);
            entry["platform"] = json!({ "architecture": arch, "os": "linux" });
            entries.push(entry);
            children.push((image, digest));
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX,
            "manifests": entries,
        });
        let (index_raw, index_digest) = push_manifest(&client, &repo.tag("v1"), &index).await;

        let (raw, digest) = client
            .pull_manifest_raw(&repo.tag("v1"), &ANONYMOUS, &[OCI_IMAGE_INDEX])
            .await
            .unwrap();
        assert_eq!(digest, index_digest, "{storage:?}");
        assert_eq!(raw[..], index_raw[..], "{storage:?}: the index as pushed");

        let (pulled, digest) = client
            .pull_manifest(&repo.tag("v1"), &ANONYMOUS)
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: pull the index: {e}"));
        assert_eq!(digest, index_digest, "{storage:?}");
        let pulled = match pulled {
            OciManifest::ImageIndex(index) => index,
            other => panic!("{storage:?}: v1 is not an index: {other}"),
        };
        assert_eq!(pulled.manifests.len(), children.len(), "{storage:?}");
        for (entry, (image, child_digest)) in pulled.manifests.iter().zip(&children) {
            assert_eq!(&entry.digest, child_digest, "{storage:?}");
            let platform = entry.platform.as_ref().expect("a platform");
            assert_eq!(platform.architecture.to_string(), image.arch, "{storage:?}");
            assert_eq!(platform.os.to_string(), "linux", "{storage:?}");

            let child = client
                .pull(
                    &repo.digest(child_digest),
                    &ANONYMOUS,
                    vec![IMAGE_LAYER_MEDIA_TYPE],
                )
                .await
                .unwrap_or_else(|e| panic!("{storage:?}: pull {}: {e}", image.arch));
            assert_eq!(child.digest.as_deref(), Some(child_digest.as_str()));
            image.assert_pulled(&child);
        }

        // Pulled by tag as an image, the index resolves to its linux/amd64 child.
        let (manifest, digest, list_digest) = client
            .pull_image_manifest_and_list_digest(&repo.tag("v1"), &ANONYMOUS)
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: resolve linux/amd64: {e}"));
        let (amd64, amd64_digest) = &children[0];
        assert_eq!(&digest, amd64_digest, "{storage:?}");
        assert_eq!(list_digest.as_deref(), Some(index_digest.as_str()));
        assert_eq!(manifest.layers.len(), amd64.layers.len(), "{storage:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_list_whole_and_in_pages() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let client = client();
        let repo = Repo::new(&server, "client/tags");
        let image = Image::generate("amd64", &[64 << 10]);
        let manifest = image.push_blobs(&client, &repo).await;
        // In lexical order, as the listing returns them.
        let tags = ["alpha", "beta", "delta", "epsilon", "gamma"];
        for tag in tags {
            push_manifest(&client, &repo.tag(tag), &manifest).await;
        }

        let all = client
            .list_tags(&repo.blobs(), &ANONYMOUS, None, None)
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: list tags: {e}"));
        assert_eq!(all.name, "client/tags", "{storage:?}");
        assert_eq!(all.tags, tags, "{storage:?}");

        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = client
                .list_tags(&repo.blobs(), &ANONYMOUS, Some(2), last.as_deref())
                .await
                .unwrap_or_else(|e| panic!("{storage:?}: list tags after {last:?}: {e}"));
            assert!(page.tags.len() <= 2, "{storage:?}: page of {:?}", page.tags);
            let full = page.tags.len() == 2;
            last = page.tags.last().cloned();
            if !page.tags.is_empty() {
                pages.push(page.tags);
            }
            if !full || pages.len() > tags.len() {
                break;
            }
        }
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1], "{storage:?}: pages {pages:?}");
        assert_eq!(pages.concat(), tags, "{storage:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_found_by_subject_and_filtered_by_type() {
    for storage in Storage::ALL {
        let Some(server) = RegistryServer::start(storage) else {
            continue;
        };
        let client = client();
        let http = reqwest::Client::new();
        let repo = Repo::new(&server, "client/referred");
        let image = Image::generate("amd64", &[64 << 10]);
        let manifest = image.push_blobs(&client, &repo).await;
        let (subject_raw, subject) = push_manifest(&client, &repo.tag("v1"), &manifest).await;
        let subject_descriptor = manifest_descriptor(&subject_raw, &subject);

        // An SBOM through oci-client.
        let sbom = artifact(&client, &repo, SBOM, &subject_descriptor, br#"{"sbom":1}"#).await;
        let (_, sbom_digest) = push_manifest(&client, &repo.digest(&digest_of(&sbom)), &sbom).await;

        // A signature over plain HTTP, to see the response headers.
        let signature = artifact(&client, &repo, SIGNATURE, &subject_descriptor, b"sig").await;
        let body = serde_json::to_vec(&signature).unwrap();
        let signature_digest = sha256(&body).to_string();
        let response = http
            .put(repo.url(&format!("manifests/{signature_digest}")))
            .header("content-type", OCI_IMAGE_MANIFEST)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{storage:?}");
        assert_eq!(
            header(&response, "oci-subject"),
            Some(subject.as_str()),
            "{storage:?}: OCI-Subject"
        );
        assert_eq!(
            header(&response, "docker-content-digest"),
            Some(signature_digest.as_str()),
            "{storage:?}"
        );

        // Both through oci-client's referrers call, then only the SBOM when filtered.
        let all = client
            .pull_referrers(&repo.digest(&subject), None)
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: referrers: {e}"));
        let mut found: Vec<(String, Option<String>)> = all
            .manifests
            .iter()
            .map(|m| (m.digest.clone(), m.artifact_type.clone()))
            .collect();
        found.sort();
        let mut expected = vec![
            (sbom_digest.clone(), Some(SBOM.to_owned())),
            (signature_digest.clone(), Some(SIGNATURE.to_owned())),
        ];
        expected.sort();
        assert_eq!(found, expected, "{storage:?}");

        let sboms = client
            .pull_referrers(&repo.digest(&subject), Some(SBOM))
            .await
            .unwrap_or_else(|e| panic!("{storage:?}: referrers of type {SBOM}: {e}"));
        let digests: Vec<&str> = sboms.manifests.iter().map(|m| m.digest.as_str()).collect();
        assert_eq!(digests, [sbom_digest.as_str()], "{storage:?}");

        // The filter over plain HTTP: only matching entries, and the header saying so.
        let response = http
            .get(repo.url(&format!("referrers/{subject}?artifactType={SBOM}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{storage:?}");
        assert_eq!(
            header(&response, "oci-filters-applied"),
            Some("artifactType"),
            "{storage:?}: OCI-Filters-Applied"
        );
        assert_eq!(header(&response, "content-type"), Some(OCI_IMAGE_INDEX));
        let index: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let entries = index["manifests"].as_array().expect("manifests");
        assert_eq!(entries.len(), 1, "{storage:?}: {index}");
        assert_eq!(entries[0]["digest"], sbom_digest.as_str(), "{storage:?}");
        assert_eq!(entries[0]["artifactType"], SBOM, "{storage:?}");
        assert_eq!(entries[0]["mediaType"], OCI_IMAGE_MANIFEST, "{storage:?}");

        let unfiltered = http
            .get(repo.url(&format!("referrers/{subject}")))
            .send()
            .await
            .unwrap();
        assert_eq!(unfiltered.status(), 200, "{storage:?}");
        assert_eq!(
            header(&unfiltered, "oci-filters-applied"),
            None,
            "{storage:?}"
        );
    }
}
