//! The ECR API's layer actions: an upload in parts carried in the JSON body (base64),
//! and `GetDownloadUrlForLayer`, a short-lived URL to the blob endpoint that needs no
//! other credentials (as ECR hands out a presigned S3 URL).

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use wharf::access::token::{Access, ScopeAction};
use wharf::{Digest, ErrorKind, UploadId};

use crate::ecr::{ApiError, Call};
use crate::ecr_actions::{check_registry_id, repository_name, string};

/// The part size `InitiateLayerUpload` suggests (ECR's is 10 MiB too); parts of any size
/// are taken, in order.
const PART_SIZE: u64 = 10 << 20;
/// How long a download URL works.
pub(crate) const DOWNLOAD_TTL: Duration = Duration::from_secs(600);
/// The query parameter of a download URL that carries its token.
pub(crate) const DOWNLOAD_PARAM: &str = "wharf-download";

fn upload_id(params: &Value) -> Result<UploadId, ApiError> {
    string(params, "uploadId")?
        .ok_or_else(|| ApiError::invalid("uploadId", "is required"))?
        .parse()
        .map_err(|e: wharf::Error| ApiError::invalid("uploadId", e.message()))
}

fn no_upload(e: wharf::Error) -> ApiError {
    match e.kind() {
        ErrorKind::BlobUploadUnknown => ApiError::new("UploadNotFoundException", e.message()),
        _ => e.into(),
    }
}

pub(crate) async fn initiate_layer_upload(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let upload = call.caller.start_upload(&repo).await?;
    Ok(json!({"uploadId": upload.id.to_string(), "partSize": PART_SIZE}))
}

pub(crate) async fn upload_layer_part(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let id = upload_id(&call.params)?;
    let byte = |field: &str| {
        call.params
            .get(field)
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::invalid(field, "is required: a byte offset"))
    };
    let (first, last) = (byte("partFirstByte")?, byte("partLastByte")?);
    let blob = string(&call.params, "layerPartBlob")?
        .ok_or_else(|| ApiError::invalid("layerPartBlob", "is required"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| ApiError::invalid("layerPartBlob", "is not base64"))?;
    if last < first || last - first + 1 != data.len() as u64 {
        return Err(ApiError::new(
            "InvalidLayerPartException",
            format!(
                "partFirstByte {first} to partLastByte {last} is not the {} bytes sent",
                data.len()
            ),
        ));
    }
    let status = call
        .caller
        .append_upload(&repo, &id, first, Bytes::from(data))
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::RangeInvalid => ApiError::new("InvalidLayerPartException", e.message()),
            _ => no_upload(e),
        })?;
    Ok(json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": repo.as_str(),
        "uploadId": id.to_string(),
        "lastByteReceived": status.offset.saturating_sub(1),
    }))
}

pub(crate) async fn complete_layer_upload(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let id = upload_id(&call.params)?;
    let digests: Vec<String> = call
        .params
        .get("layerDigests")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .filter(|d: &Vec<String>| d.len() == 1)
        .ok_or_else(|| ApiError::invalid("layerDigests", "is required: one digest"))?;
    let digest: Digest = digests[0]
        .parse()
        .map_err(|e: wharf::Error| ApiError::invalid("layerDigests", e.message()))?;
    let info = call
        .caller
        .finish_upload(&repo, &id, &digest, None)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::DigestInvalid | ErrorKind::SizeInvalid => {
                ApiError::new("InvalidLayerException", e.message())
            }
            ErrorKind::BlobUploadInvalid => ApiError::new("EmptyUploadException", e.message()),
            _ => no_upload(e),
        })?;
    Ok(json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": repo.as_str(),
        "uploadId": id.to_string(),
        "layerDigest": info.digest.to_string(),
    }))
}

pub(crate) async fn get_download_url_for_layer(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let digest: Digest = string(&call.params, "layerDigest")?
        .ok_or_else(|| ApiError::invalid("layerDigest", "is required"))?
        .parse()
        .map_err(|e: wharf::Error| ApiError::invalid("layerDigest", e.message()))?;
    call.caller
        .stat_blob(&repo, &digest)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::BlobUnknown => ApiError::new("LayersNotFoundException", e.message()),
            _ => e.into(),
        })?;
    // A token that grants pull on this repository only, in the URL.
    let pull = Access {
        kind: "repository".into(),
        name: repo.to_string(),
        actions: vec![ScopeAction::Pull],
    };
    let (token, _) = call
        .login
        .tokens
        .issue_for(&call.user, vec![pull], DOWNLOAD_TTL)
        .map_err(|e| ApiError::new("ServerException", e))?;
    let scheme = if call.login.tls { "https" } else { "http" };
    Ok(json!({
        "downloadUrl": format!("{scheme}://{}/v2/{repo}/blobs/{digest}?{DOWNLOAD_PARAM}={token}", call.host),
        "layerDigest": digest.to_string(),
    }))
}
