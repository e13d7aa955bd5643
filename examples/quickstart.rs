//! Pushes a blob into a registry on a local directory, by a monolithic push and by a
//! resumable chunked upload, reads it back whole and by range, then pushes and pulls an
//! image manifest by tag, and prints each step.
//!
//! ```text
//! cargo run --release --example quickstart [-- DIR]
//! ```
//!
//! `DIR` defaults to `./wharf-data`; run it twice to see deduplication at work.

use bytes::Bytes;
use futures::StreamExt;
use wharf::{Algorithm, Digest, Reference, Registry, RepoName};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "wharf-data".into());
    let registry = Registry::open_local(&dir)?;
    println!(
        "registry on {dir} (blobs in {dir}/blobs, encrypted under keys in {dir}/keys.json; metadata in {dir}/meta.redb)"
    );

    let repo: RepoName = "quickstart/hello".parse()?;
    let layer: Bytes = (0..3_000_000u32)
        .flat_map(|i| i.to_le_bytes())
        .collect::<Vec<u8>>()
        .into();
    let digest = Digest::of(Algorithm::Sha256, &layer);

    let info = registry.push_blob(&repo, &digest, layer.clone()).await?;
    println!("pushed {} ({} bytes) into {repo}", info.digest, info.size);

    // The same bytes by chunked upload into a second repository: stored once.
    let other: RepoName = "quickstart/copy".parse()?;
    let upload = registry.start_upload(&other).await?;
    let mid = layer.len() / 2;
    let status = registry
        .append_upload(&other, &upload.id, 0, layer.slice(..mid))
        .await?;
    println!(
        "upload {} into {other}: {} bytes received",
        upload.id, status.offset
    );
    registry
        .finish_upload(&other, &upload.id, &digest, Some(layer.slice(mid..)))
        .await?;
    println!(
        "finished upload {}: {digest} linked into {other}",
        upload.id
    );

    let whole = registry
        .read_blob(&repo, &digest, None)
        .await?
        .bytes()
        .await?;
    assert_eq!(whole, layer);
    println!("read back {} bytes, digest verified", whole.len());
    let range = registry
        .read_blob(&other, &digest, Some(1000..1016))
        .await?;
    println!(
        "bytes 1000..1016 through {other}: {:02x?}",
        &range.bytes().await?[..]
    );

    // An image: a config blob and a manifest listing it and the layer, tagged `latest`.
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let config_digest = Digest::of(Algorithm::Sha256, &config);
    registry
        .push_blob(&repo, &config_digest, config.clone())
        .await?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{}}}]}}"#,
        wharf::OCI_IMAGE_MANIFEST,
        config.len(),
        layer.len(),
    );
    let latest = Reference::Tag("latest".parse()?);
    let pushed = registry
        .push_manifest(&repo, &latest, Bytes::from(manifest), None)
        .await?;
    println!("pushed manifest {} as {repo}:latest", pushed.digest);
    let pulled = registry.get_manifest(&repo, &latest).await?;
    println!(
        "pulled {repo}:latest: {} ({} bytes, {})",
        pulled.digest,
        pulled.raw.len(),
        pulled.media_type
    );
    println!(
        "tags of {repo}: {:?}",
        registry.list_tags(&repo, 100, None).await?
    );

    let stored: Vec<_> = registry.blob_store().list().collect().await;
    println!("blob store holds {} blob(s)", stored.len());
    let stats = registry.storage_stats(Some(&repo)).await?;
    println!(
        "{repo} takes {} bytes stored for {} logical bytes (compression saved {})",
        stats.stored_bytes,
        stats.logical_bytes,
        stats.saving()
    );
    Ok(())
}
