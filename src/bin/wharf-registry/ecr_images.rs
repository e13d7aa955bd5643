//! The ECR API's image, layer, tagging and lifecycle actions: thin mappings onto the
//! registry as the caller sees it, in ECR's shapes (failures per image where ECR has
//! them).

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use wharf::{Digest, ErrorKind, ImageInfo, Reference, RepoName, Tag};

use crate::ecr::{ApiError, Call};
use crate::ecr_actions::{check_registry_id, epoch_seconds, repository_name, string};

/// Image ids a `ListImages` or `DescribeImages` page holds by default, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// One entry of an `imageIds` parameter.
pub(crate) struct ImageId {
    pub(crate) digest: Option<Digest>,
    pub(crate) tag: Option<Tag>,
    /// As given, for failures.
    json: Value,
}

fn image_ids(params: &Value) -> Result<Vec<Result<ImageId, Value>>, ApiError> {
    let ids = params
        .get("imageIds")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("imageIds", "is required: a list"))?;
    if ids.is_empty() || ids.len() > 100 {
        return Err(ApiError::invalid("imageIds", "must hold 1 to 100 ids"));
    }
    Ok(ids.iter().map(image_id).collect())
}

/// One `imageId` object, or ECR's failure entry for it.
pub(crate) fn image_id(id: &Value) -> Result<ImageId, Value> {
    let failure = |code: &str, reason: &str| json!({"imageId": id, "failureCode": code, "failureReason": reason});
    let digest = match id.get("imageDigest").and_then(Value::as_str) {
        Some(d) => Some(
            d.parse::<Digest>()
                .map_err(|_| failure("InvalidImageDigest", "not a digest"))?,
        ),
        None => None,
    };
    let tag = match id.get("imageTag").and_then(Value::as_str) {
        Some(t) => Some(
            t.parse::<Tag>()
                .map_err(|_| failure("InvalidImageTag", "not a tag"))?,
        ),
        None => None,
    };
    if digest.is_none() && tag.is_none() {
        return Err(failure(
            "MissingDigestAndTag",
            "give imageDigest or imageTag",
        ));
    }
    Ok(ImageId {
        digest,
        tag,
        json: id.clone(),
    })
}

fn not_found(id: &ImageId, reason: &str) -> Value {
    json!({"imageId": id.json, "failureCode": "ImageNotFound", "failureReason": reason})
}

/// The image `id` names in `repo` (by digest, or by tag), checking that a tag and a
/// digest given together agree.
pub(crate) async fn resolve(
    call: &Call<'_>,
    repo: &RepoName,
    id: &ImageId,
) -> Result<Digest, Value> {
    let registry = call.caller.registry();
    let by_tag = match &id.tag {
        Some(tag) => match registry.resolve_tag(repo, tag).await {
            Ok(digest) => Some(digest),
            Err(_) => return Err(not_found(id, "Requested image not found")),
        },
        None => None,
    };
    match (&id.digest, by_tag) {
        (Some(digest), Some(tagged)) if *digest != tagged => Err(json!({
            "imageId": id.json, "failureCode": "ImageTagDoesNotMatchDigest",
            "failureReason": "the tag names another image"})),
        (_, Some(tagged)) => Ok(tagged),
        (Some(digest), None) => Ok(digest.clone()),
        (None, None) => Err(not_found(id, "Requested image not found")),
    }
}

/// One entry of `imageIds`, parsed and resolved to its image in `repo`, or ECR's
/// failure for it.
async fn resolve_entry(
    call: &Call<'_>,
    repo: &RepoName,
    id: Result<ImageId, Value>,
) -> Result<(ImageId, Digest), Value> {
    let id = id?;
    let digest = resolve(call, repo, &id).await?;
    Ok((id, digest))
}

/// An `imageId`: the digest, and the tag when there is one.
pub(crate) fn image_id_json(digest: &Digest, tag: Option<&Tag>) -> Value {
    let mut id = json!({"imageDigest": digest.to_string()});
    if let Some(tag) = tag {
        id["imageTag"] = json!(tag.as_str());
    }
    id
}

fn page_size(params: &Value) -> Result<usize, ApiError> {
    match params.get("maxResults") {
        None | Some(Value::Null) => Ok(DEFAULT_PAGE),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_PAGE as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::invalid("maxResults", format!("must be 1 to {MAX_PAGE}"))),
    }
}

/// A page of `items` after the `nextToken` offset, and the token for the next page.
pub(crate) fn paged<T>(
    params: &Value,
    items: Vec<T>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let n = page_size(params)?;
    let start = match string(params, "nextToken")? {
        Some(token) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| ApiError::invalid("nextToken", "is not a token this registry gave"))?,
        None => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(n).collect();
    let next = (start + n < total)
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode((start + n).to_string()));
    Ok((page, next))
}

fn tag_status(params: &Value) -> Result<&str, ApiError> {
    let status = params
        .get("filter")
        .map(|f| string(f, "tagStatus"))
        .transpose()?
        .flatten()
        .unwrap_or("ANY");
    match status {
        "ANY" | "TAGGED" | "UNTAGGED" => Ok(status),
        other => Err(ApiError::invalid(
            "filter.tagStatus",
            format!("{other:?} is not TAGGED, UNTAGGED or ANY"),
        )),
    }
}

fn keep(image: &ImageInfo, status: &str) -> bool {
    match status {
        "TAGGED" => !image.tags.is_empty(),
        "UNTAGGED" => image.tags.is_empty(),
        _ => true,
    }
}

pub(crate) async fn list_images(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let status = tag_status(&call.params)?;
    let mut ids = Vec::new();
    for image in call.caller.list_images(&repo).await? {
        if !keep(&image, status) {
            continue;
        }
        if image.tags.is_empty() {
            ids.push(json!({"imageDigest": image.digest.to_string()}));
        }
        for tag in &image.tags {
            ids.push(json!({"imageDigest": image.digest.to_string(), "imageTag": tag.as_str()}));
        }
    }
    let (page, next) = paged(&call.params, ids)?;
    let mut answer = json!({"imageIds": page});
    if let Some(next) = next {
        answer["nextToken"] = json!(next);
    }
    Ok(answer)
}

fn image_detail(call: &Call<'_>, repo: &RepoName, image: &ImageInfo) -> Value {
    let mut detail = json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": repo.as_str(),
        "imageDigest": image.digest.to_string(),
        "imageSizeInBytes": image.size,
        "imagePushedAt": epoch_seconds(image.pushed_at),
        "imageManifestMediaType": image.media_type,
    });
    if !image.tags.is_empty() {
        detail["imageTags"] = image.tags.iter().map(|t| json!(t.as_str())).collect();
    }
    if let Some(pulled) = image.last_pulled_at {
        detail["lastRecordedPullTime"] = json!(epoch_seconds(pulled));
    }
    if let Some(artifact) = &image.artifact_type {
        detail["artifactMediaType"] = json!(artifact);
    }
    detail
}

pub(crate) async fn describe_images(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let images = call.caller.inventory(&repo).await?;
    if call.params.get("imageIds").is_some() {
        let mut details = Vec::new();
        for id in image_ids(&call.params)? {
            let id = id.map_err(|failure| {
                ApiError::invalid("imageIds", failure["failureReason"].clone())
            })?;
            let digest = resolve(&call, &repo, &id).await.map_err(|_| {
                ApiError::new(
                    "ImageNotFoundException",
                    format!("The image with imageId {} does not exist within the repository with name '{repo}'", id.json),
                )
            })?;
            let image = images.iter().find(|i| i.digest == digest).ok_or_else(|| {
                ApiError::new(
                    "ImageNotFoundException",
                    format!("no image {digest} in {repo}"),
                )
            })?;
            details.push(image_detail(&call, &repo, image));
        }
        crate::ecr_scans::add_scan_details(&call, &repo, &mut details).await;
        return Ok(json!({"imageDetails": details}));
    }
    let status = tag_status(&call.params)?;
    let details: Vec<Value> = images
        .iter()
        .filter(|i| keep(i, status))
        .map(|i| image_detail(&call, &repo, i))
        .collect();
    let (mut page, next) = paged(&call.params, details)?;
    crate::ecr_scans::add_scan_details(&call, &repo, &mut page).await;
    let mut answer = json!({"imageDetails": page});
    if let Some(next) = next {
        answer["nextToken"] = json!(next);
    }
    Ok(answer)
}

pub(crate) async fn batch_get_image(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let accepted: Option<Vec<String>> =
        match call.params.get("acceptedMediaTypes") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| {
                ApiError::invalid("acceptedMediaTypes", "must be a list of strings")
            })?),
        };
    let (mut images, mut failures) = (Vec::new(), Vec::new());
    for entry in image_ids(&call.params)? {
        let (id, digest) = match resolve_entry(&call, &repo, entry).await {
            Ok(found) => found,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        let stored = match call
            .caller
            .get_manifest(&repo, &Reference::Digest(digest))
            .await
        {
            Ok(stored) => stored,
            Err(e) if e.kind() == ErrorKind::ManifestUnknown => {
                failures.push(not_found(&id, "Requested image not found"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if accepted
            .as_ref()
            .is_some_and(|a| !a.contains(&stored.media_type))
        {
            failures.push(not_found(
                &id,
                &format!(
                    "the image is {}, not an accepted media type",
                    stored.media_type
                ),
            ));
            continue;
        }
        images.push(json!({
            "registryId": call.caller.registry().resource_account().account,
            "repositoryName": repo.as_str(),
            "imageId": image_id_json(&stored.digest, id.tag.as_ref()),
            "imageManifest": String::from_utf8_lossy(&stored.raw),
            "imageManifestMediaType": stored.media_type,
        }));
    }
    Ok(json!({"images": images, "failures": failures}))
}

pub(crate) async fn batch_delete_image(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let (mut deleted, mut failures) = (Vec::new(), Vec::new());
    for entry in image_ids(&call.params)? {
        let (id, digest) = match resolve_entry(&call, &repo, entry).await {
            Ok(found) => found,
            Err(failure) => {
                failures.push(failure);
                continue;
            }
        };
        // By tag: the tag goes (ECR deletes the image with its last tag); by digest:
        // the image and its tags.
        let result = match &id.tag {
            Some(tag) => call.caller.delete_tag(&repo, tag).await,
            None => call.caller.delete_manifest(&repo, &digest).await,
        };
        match result {
            Ok(()) => deleted.push(image_id_json(&digest, id.tag.as_ref())),
            Err(e) if e.kind() == ErrorKind::ManifestReferenced => failures.push(json!({
                "imageId": id.json, "failureCode": "ImageReferencedByManifestList",
                "failureReason": e.message()})),
            Err(e) if e.kind() == ErrorKind::ManifestUnknown => {
                failures.push(not_found(&id, "Requested image not found"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({"imageIds": deleted, "failures": failures}))
}

pub(crate) async fn put_image(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let manifest = string(&call.params, "imageManifest")?
        .ok_or_else(|| ApiError::invalid("imageManifest", "is required"))?;
    let media_type = string(&call.params, "imageManifestMediaType")?;
    let raw = Bytes::copy_from_slice(manifest.as_bytes());
    let tag = string(&call.params, "imageTag")?
        .map(|t| {
            t.parse::<Tag>()
                .map_err(|e: wharf::Error| ApiError::invalid("imageTag", e.message()))
        })
        .transpose()?;
    let reference = match (&tag, string(&call.params, "imageDigest")?) {
        (Some(tag), _) => Reference::Tag(tag.clone()),
        (None, Some(digest)) => Reference::Digest(
            digest
                .parse()
                .map_err(|e: wharf::Error| ApiError::invalid("imageDigest", e.message()))?,
        ),
        (None, None) => Reference::Digest(Digest::of(wharf::Algorithm::Sha256, &raw)),
    };
    let pushed = call
        .caller
        .push_manifest(&repo, &reference, raw, media_type)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::ManifestBlobUnknown => ApiError::new("LayersNotFoundException", e.message()),
            ErrorKind::ManifestInvalid | ErrorKind::DigestInvalid => {
                ApiError::invalid("imageManifest", e.message())
            }
            _ => e.into(),
        })?;
    Ok(json!({"image": {
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": repo.as_str(),
        "imageId": image_id_json(&pushed.digest, tag.as_ref()),
        "imageManifest": manifest,
        "imageManifestMediaType": pushed.media_type.as_str(),
    }}))
}

pub(crate) async fn batch_check_layer_availability(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let digests = call
        .params
        .get("layerDigests")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty() && d.len() <= 100)
        .ok_or_else(|| ApiError::invalid("layerDigests", "is required: 1 to 100 digests"))?;
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for value in digests {
        let text = value.as_str().unwrap_or_default();
        let Ok(digest) = text.parse::<Digest>() else {
            failures.push(
                json!({"layerDigest": value, "failureCode": "InvalidLayerDigest",
                "failureReason": "not a digest"}),
            );
            continue;
        };
        match call.caller.stat_blob(&repo, &digest).await {
            Ok(info) => layers.push(
                json!({"layerDigest": text, "layerAvailability": "AVAILABLE",
                "layerSize": info.size}),
            ),
            Err(e) if e.kind() == ErrorKind::BlobUnknown => failures.push(
                json!({"layerDigest": text, "failureCode": "MissingLayerDigest",
                    "failureReason": "the layer is not in the repository"}),
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(json!({"layers": layers, "failures": failures}))
}
