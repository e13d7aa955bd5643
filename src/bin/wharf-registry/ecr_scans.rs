//! The ECR API's scanning actions: `PutImageScanningConfiguration`, `StartImageScan`,
//! `DescribeImageScanFindings`, and the scan status `DescribeImages` reports, in ECR's
//! shapes.

use serde_json::{Value, json};
use wharf::scan::Finding;
use wharf::{Digest, ImageScan, RepoName, Tag};

use crate::ecr::{ApiError, Call};
use crate::ecr_actions::{check_registry_id, epoch_seconds, repository_name};
use crate::ecr_images::{ImageId, image_id, image_id_json, paged, resolve};

/// `imageScanStatus`: the status, with the reason as its description.
pub(crate) fn status_json(scan: &ImageScan) -> Value {
    let description = match (&scan.reason, scan.status) {
        (Some(reason), _) => reason.clone(),
        (None, wharf::ScanStatus::Complete) => "The scan was completed successfully.".to_owned(),
        (None, wharf::ScanStatus::InProgress) => "The scan is in progress.".to_owned(),
        (None, status) => status.to_string(),
    };
    json!({"status": scan.status.as_str(), "description": description})
}

/// `imageScanFindingsSummary`, as `DescribeImages` lists it.
pub(crate) fn summary_json(scan: &ImageScan) -> Value {
    let mut summary = json!({"findingSeverityCounts": scan.counts.as_map()});
    if let Some(done) = scan.completed_at {
        summary["imageScanCompletedAt"] = json!(epoch_seconds(done));
        summary["vulnerabilitySourceUpdatedAt"] = json!(epoch_seconds(done));
    }
    summary
}

/// Adds the scan status and summary to `DescribeImages` details that have a scan.
pub(crate) async fn add_scan_details(call: &Call<'_>, repo: &RepoName, details: &mut [Value]) {
    for detail in details {
        let Some(digest) = detail["imageDigest"]
            .as_str()
            .and_then(|d| d.parse::<Digest>().ok())
        else {
            continue;
        };
        if let Ok(Some(scan)) = call.caller.scan_status(repo, &digest).await {
            detail["imageScanStatus"] = status_json(&scan);
            if scan.status == wharf::ScanStatus::Complete {
                detail["imageScanFindingsSummary"] = summary_json(&scan);
            }
        }
    }
}

/// The `imageId` parameter, resolved in `repo`.
async fn resolve_image(call: &Call<'_>, repo: &RepoName) -> Result<(ImageId, Digest), ApiError> {
    let given = call
        .params
        .get("imageId")
        .ok_or_else(|| ApiError::invalid("imageId", "is required"))?;
    let id =
        image_id(given).map_err(|f| ApiError::invalid("imageId", f["failureReason"].clone()))?;
    let digest = resolve(call, repo, &id).await.map_err(|_| {
        ApiError::new(
            "ImageNotFoundException",
            format!("The image with imageId {given} does not exist within the repository with name '{repo}'"),
        )
    })?;
    Ok((id, digest))
}

fn image_id_of(digest: &Digest, id: &ImageId) -> Value {
    image_id_json(digest, id.tag.as_ref().map(|t: &Tag| t))
}

pub(crate) async fn put_image_scanning_configuration(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let scan_on_push = call
        .params
        .get("imageScanningConfiguration")
        .and_then(|c| c.get("scanOnPush"))
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            ApiError::invalid(
                "imageScanningConfiguration",
                "needs scanOnPush: true or false",
            )
        })?;
    let mut settings = call.caller.registry().repository(&name).await?.settings;
    settings.scan_on_push = scan_on_push;
    let updated = call.caller.update_repository(&name, settings).await?;
    Ok(json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": name.as_str(),
        "imageScanningConfiguration": {"scanOnPush": updated.settings.scan_on_push},
    }))
}

pub(crate) async fn start_image_scan(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let (id, digest) = resolve_image(&call, &repo).await?;
    let scan = call.caller.start_scan(&repo, &digest).await?;
    Ok(json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": repo.as_str(),
        "imageId": image_id_of(&digest, &id),
        "imageScanStatus": status_json(&scan),
    }))
}

/// One finding in ECR's shape.
fn finding_json(finding: &Finding) -> Value {
    let attributes: Vec<Value> = finding
        .attributes()
        .into_iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    json!({
        "name": finding.name,
        "description": finding.description,
        "uri": finding.uri,
        "severity": finding.severity.as_str(),
        "attributes": attributes,
    })
}

pub(crate) async fn describe_image_scan_findings(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let repo = repository_name(&call.params)?;
    let (id, digest) = resolve_image(&call, &repo).await?;
    let found = call.caller.scan_findings(&repo, &digest).await?;
    let findings: Vec<Value> = found.findings.iter().map(finding_json).collect();
    let (page, next) = paged(&call.params, findings)?;
    let mut scan_findings = summary_json(&found.scan);
    scan_findings["findings"] = json!(page);
    let mut answer = json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": repo.as_str(),
        "imageId": image_id_of(&digest, &id),
        "imageScanStatus": status_json(&found.scan),
        "imageScanFindings": scan_findings,
    });
    if let Some(next) = next {
        answer["nextToken"] = json!(next);
    }
    Ok(answer)
}
