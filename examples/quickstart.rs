//! Pushes a blob into a registry on a local directory, by a monolithic push and by a
//! resumable chunked upload, then reads it back whole and by range, and prints each step.
//!
//! ```text
//! cargo run --release --example quickstart [-- DIR]
//! ```
//!
//! `DIR` defaults to `./wharf-data`; run it twice to see deduplication at work.

use bytes::Bytes;
use futures::StreamExt;
use wharf::{Algorithm, Digest, Registry, RepoName};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "wharf-data".into());
    let registry = Registry::open_local(&dir)?;
    println!("registry on {dir} (blobs in {dir}/blobs, metadata in {dir}/meta.redb)");

    let repo: RepoName = "quickstart/hello".parse()?;
    let layer: Bytes = (0..3_000_000u32)
        .flat_map(|i| i.to_le_bytes())
        .collect::<Vec<u8>>()
        .into();
    let digest = Digest::of(Algorithm::Sha256, &layer);

    let info = registry
        .push_blob_bytes(&repo, &digest, layer.clone())
        .await?;
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

    let stored: Vec<_> = registry.blob_store().list().collect().await;
    println!("blob store holds {} blob(s)", stored.len());
    Ok(())
}
