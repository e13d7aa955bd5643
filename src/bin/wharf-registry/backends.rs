//! The backends the flags name: where blobs are kept (a local directory or an S3
//! bucket, each with the composer that publishes staged parts in place) and where
//! key-encryption keys come from with `--kms-key-id`.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use wharf::blob::Composer;
#[cfg(feature = "kms")]
use wharf::keys::DEFAULT_KEK;

use crate::config::{Keys, KmsConfig, S3Config};

/// Where blobs are kept, and the composer that publishes their staged parts in place.
pub(crate) type BlobObjects = (Arc<dyn ObjectStore>, Arc<dyn Composer>);

/// Blobs in the directory `dir`, created if need be.
pub(crate) fn local_store(dir: &Path) -> Result<BlobObjects, String> {
    wharf::blob::local_objects(dir).map_err(|e| e.to_string())
}

#[cfg(feature = "kms")]
pub(crate) fn kms_provider(kms: &KmsConfig, region: &str) -> Result<Keys, String> {
    let credentials = wharf::keys::AwsCredentials::from_env().map_err(|e| e.to_string())?;
    let provider = wharf::keys::AwsKmsKeyProvider::new(
        region,
        kms.endpoint.as_deref(),
        credentials,
        Some(&kms.key_id),
    )
    .map_err(|e| e.to_string())?;
    Ok(Keys {
        provider: Arc::new(provider),
        names: vec![DEFAULT_KEK.to_owned()],
        source: format!("--kms-key-id {}", kms.key_id),
    })
}

#[cfg(not(feature = "kms"))]
pub(crate) fn kms_provider(kms: &KmsConfig, _region: &str) -> Result<Keys, String> {
    Err(format!(
        "--kms-key-id {}: this build has no KMS support; run it with --features kms",
        kms.key_id
    ))
}

/// The bucket's store and composer.
#[cfg(feature = "s3")]
pub(crate) fn s3_store(s3: &S3Config) -> Result<BlobObjects, String> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_allow_http(s3.allow_http);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    builder = builder.with_region(s3.region.as_deref().unwrap_or("us-east-1"));
    let store = builder
        .clone()
        .build()
        .map_err(|e| format!("S3 bucket {}: {e}", s3.bucket))?;
    let composer = wharf::blob::S3Composer::for_store(&builder, &store, &s3.prefix)
        .map_err(|e| format!("S3 bucket {}: {e}", s3.bucket))?;
    let store: Arc<dyn ObjectStore> = if s3.prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(
            store,
            s3.prefix.as_str(),
        ))
    };
    Ok((store, Arc::new(composer)))
}

#[cfg(not(feature = "s3"))]
pub(crate) fn s3_store(s3: &S3Config) -> Result<BlobObjects, String> {
    Err(format!(
        "--s3-bucket {}: this build has no S3 support; run it with --features s3",
        s3.bucket
    ))
}
