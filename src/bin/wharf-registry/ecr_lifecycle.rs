//! The ECR API's lifecycle actions: policies put, read and deleted, and previews of what
//! a policy would do.

use std::time::SystemTime;

use serde_json::{Value, json};
use wharf::access::Action;
use wharf::lifecycle::{self, LifecyclePolicy, Outcome};
use wharf::{ErrorKind, RepoName};

use crate::ecr::{ApiError, Call};
use crate::ecr_actions::{check_registry_id, epoch_seconds, repository_name, string};
use crate::ecr_images;

fn lifecycle_answer(call: &Call<'_>, name: &RepoName, text: &str) -> Value {
    json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
    })
}

fn no_lifecycle_policy(name: &RepoName) -> ApiError {
    ApiError::new(
        "LifecyclePolicyNotFoundException",
        format!("Lifecycle policy does not exist for the repository with name '{name}'"),
    )
}

pub(crate) async fn put_lifecycle_policy(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let text = string(&call.params, "lifecyclePolicyText")?
        .ok_or_else(|| ApiError::invalid("lifecyclePolicyText", "is required"))?;
    call.caller
        .set_lifecycle_policy(&name, Some(text))
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::PolicyInvalid => ApiError::invalid("lifecyclePolicyText", e.message()),
            _ => e.into(),
        })?;
    Ok(lifecycle_answer(&call, &name, text))
}

/// The attached lifecycle policy's text, after `ecr:GetLifecyclePolicy` is checked.
async fn lifecycle_text(call: &Call<'_>, name: &RepoName) -> Result<String, ApiError> {
    if call.caller.lifecycle_policy(name).await?.is_none() {
        return Err(no_lifecycle_policy(name));
    }
    let settings = call.caller.registry().repository(name).await?.settings;
    settings
        .lifecycle_policy
        .ok_or_else(|| no_lifecycle_policy(name))
}

pub(crate) async fn get_lifecycle_policy(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let text = lifecycle_text(&call, &name).await?;
    Ok(lifecycle_answer(&call, &name, &text))
}

pub(crate) async fn delete_lifecycle_policy(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let text = lifecycle_text(&call, &name).await?;
    call.caller.set_lifecycle_policy(&name, None).await?;
    Ok(lifecycle_answer(&call, &name, &text))
}

/// `StartLifecyclePolicyPreview`: what the given policy (or the attached one) would do
/// now, worked out at once and kept in memory for `GetLifecyclePolicyPreview` (a preview
/// is a what-if, so a restart may forget it, as ECR's expire).
pub(crate) async fn start_lifecycle_policy_preview(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    call.caller
        .authorize_action(Action::StartLifecyclePolicyPreview, &name)
        .await?;
    let registry = call.caller.registry();
    let text = match string(&call.params, "lifecyclePolicyText")? {
        Some(text) => text.to_owned(),
        None => registry
            .repository(&name)
            .await?
            .settings
            .lifecycle_policy
            .ok_or_else(|| no_lifecycle_policy(&name))?,
    };
    let policy = LifecyclePolicy::parse(&text)
        .map_err(|e| ApiError::invalid("lifecyclePolicyText", e.message()))?;
    let inventory = registry.lifecycle_inventory(&name).await?;
    let plan = lifecycle::plan(&policy, &inventory, SystemTime::now());
    let mut results = Vec::new();
    let mut expiring = 0;
    for decision in &plan.decisions {
        let action = match decision.outcome {
            Outcome::Keep => continue,
            Outcome::Expire | Outcome::CascadeExpire => {
                expiring += 1;
                json!({"type": "EXPIRE"})
            }
            Outcome::Transition(class) => {
                json!({"type": "TRANSITION", "targetStorageClass": class.as_str().to_uppercase()})
            }
        };
        let image = inventory.images.iter().find(|i| i.id == decision.id);
        let mut result = json!({"imageDigest": decision.id, "action": action});
        if let Some(image) = image {
            result["imageTags"] = json!(image.tags);
            result["imagePushedAt"] = json!(epoch_seconds(image.pushed_at));
        }
        if let Some(rule) = decision.rule {
            result["appliedRulePriority"] = json!(rule);
        }
        results.push(result);
    }
    let preview = json!({
        "registryId": registry.resource_account().account,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": "COMPLETE",
        "previewResults": results,
        "summary": {"expiringImageTotalCount": expiring},
    });
    call.login.keep_preview(&name, preview);
    Ok(json!({
        "registryId": registry.resource_account().account,
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

pub(crate) async fn get_lifecycle_policy_preview(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    call.caller
        .authorize_action(Action::GetLifecyclePolicyPreview, &name)
        .await?;
    let mut preview = call.login.preview(&name).ok_or_else(|| {
        ApiError::new(
            "LifecyclePolicyPreviewNotFoundException",
            format!("There is no preview for the repository with name '{name}': start one"),
        )
    })?;
    let results = preview["previewResults"].take();
    let results: Vec<Value> = serde_json::from_value(results).unwrap_or_default();
    let (page, next) = ecr_images::paged(&call.params, results)?;
    preview["previewResults"] = json!(page);
    if let Some(next) = next {
        preview["nextToken"] = json!(next);
    }
    Ok(preview)
}
