//! The ECR API's actions, each a thin mapping onto the registry as the caller sees it:
//! read the parameters (an error names the field), call, answer in ECR's shapes.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Value, json};
use wharf::access::Action;
use wharf::access::token::Access;
use wharf::access::token::ScopeAction;
use wharf::{ErrorKind, RepoName, Repository, RepositorySettings, TagMutability};

use crate::ecr::{ApiError, Call};

/// The prefix of KEK names that name a KMS key (`wharf::keys::KMS_KEK_PREFIX`, which
/// exists only in builds with KMS).
const KMS_KEK_PREFIX: &str = "kms.";
use crate::tokens;
use crate::{ecr_images, ecr_layers, ecr_lifecycle, ecr_scans};

/// Repositories a `DescribeRepositories` page holds by default, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Runs `action`.
pub(crate) async fn dispatch(action: &str, call: Call<'_>) -> Result<Value, ApiError> {
    match action {
        "CreateRepository" => create_repository(call).await,
        "DescribeRepositories" => describe_repositories(call).await,
        "DeleteRepository" => delete_repository(call).await,
        "PutImageTagMutability" => put_image_tag_mutability(call).await,
        "SetRepositoryPolicy" => set_repository_policy(call).await,
        "GetRepositoryPolicy" => get_repository_policy(call).await,
        "DeleteRepositoryPolicy" => delete_repository_policy(call).await,
        "GetAuthorizationToken" => get_authorization_token(call).await,
        "ListImages" => ecr_images::list_images(call).await,
        "DescribeImages" => ecr_images::describe_images(call).await,
        "BatchGetImage" => ecr_images::batch_get_image(call).await,
        "BatchDeleteImage" => ecr_images::batch_delete_image(call).await,
        "PutImage" => ecr_images::put_image(call).await,
        "BatchCheckLayerAvailability" => ecr_images::batch_check_layer_availability(call).await,
        "InitiateLayerUpload" => ecr_layers::initiate_layer_upload(call).await,
        "UploadLayerPart" => ecr_layers::upload_layer_part(call).await,
        "CompleteLayerUpload" => ecr_layers::complete_layer_upload(call).await,
        "GetDownloadUrlForLayer" => ecr_layers::get_download_url_for_layer(call).await,
        "TagResource" => tag_resource(call).await,
        "UntagResource" => untag_resource(call).await,
        "ListTagsForResource" => list_tags_for_resource(call).await,
        "PutLifecyclePolicy" => ecr_lifecycle::put_lifecycle_policy(call).await,
        "GetLifecyclePolicy" => ecr_lifecycle::get_lifecycle_policy(call).await,
        "DeleteLifecyclePolicy" => ecr_lifecycle::delete_lifecycle_policy(call).await,
        "StartLifecyclePolicyPreview" => ecr_lifecycle::start_lifecycle_policy_preview(call).await,
        "GetLifecyclePolicyPreview" => ecr_lifecycle::get_lifecycle_policy_preview(call).await,
        "PutImageScanningConfiguration" => ecr_scans::put_image_scanning_configuration(call).await,
        "StartImageScan" => ecr_scans::start_image_scan(call).await,
        "DescribeImageScanFindings" => ecr_scans::describe_image_scan_findings(call).await,
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("{other} is not an action this registry implements"),
        )),
    }
}

pub(crate) fn string<'v>(params: &'v Value, field: &str) -> Result<Option<&'v str>, ApiError> {
    match params.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::invalid(
            field,
            format!("must be a string, not {other}"),
        )),
    }
}

fn boolean(params: &Value, field: &str) -> Result<Option<bool>, ApiError> {
    match params.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(
            field,
            format!("must be true or false, not {other}"),
        )),
    }
}

pub(crate) fn repository_name(params: &Value) -> Result<RepoName, ApiError> {
    string(params, "repositoryName")?
        .ok_or_else(|| ApiError::invalid("repositoryName", "is required"))?
        .parse()
        .map_err(|e: wharf::Error| ApiError::invalid("repositoryName", e.message()))
}

/// `registryId`, when given, must be this registry's account.
pub(crate) fn check_registry_id(call: &Call<'_>) -> Result<(), ApiError> {
    let account = &call.caller.registry().resource_account().account;
    match string(&call.params, "registryId")? {
        Some(id) if id != account => Err(ApiError::invalid(
            "registryId",
            format!("{id:?} is not this registry's account ({account})"),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The key id a `kmsKey` names: an id, or a key ARN (`arn:aws:kms:...:key/<id>`).
/// Aliases are refused: a repository's KEK name holds the id, which an alias can be
/// moved away from.
fn kms_key_id(key: &str) -> Result<&str, ApiError> {
    let id = match key.strip_prefix("arn:") {
        Some(_) => key.rsplit_once(":key/").map_or("", |(_, id)| id),
        None => key,
    };
    let valid = !id.is_empty()
        && id.len() <= 100
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(id)
    } else {
        Err(ApiError::invalid(
            "encryptionConfiguration.kmsKey",
            format!("{key:?}: name the KMS key by its id or key ARN"),
        ))
    }
}

/// What `encryptionConfiguration` says of a repository's settings.
fn encryption_json(call: &Call<'_>, settings: &RepositorySettings) -> Value {
    match settings.encryption_key.as_deref() {
        Some(kek) if kek.starts_with(KMS_KEK_PREFIX) => {
            json!({"encryptionType": "KMS", "kmsKey": &kek[KMS_KEK_PREFIX.len()..]})
        }
        None if call.login.kms && settings.encrypted == Some(true) => {
            json!({"encryptionType": "KMS"})
        }
        _ => json!({"encryptionType": "AES256"}),
    }
}

/// `imageTagMutabilityExclusionFilters` onto `value`, when `settings` has any.
fn add_exclusion_filters(value: &mut Value, settings: &RepositorySettings) {
    if !settings.mutability_exclusions.is_empty() {
        value["imageTagMutabilityExclusionFilters"] = settings
            .mutability_exclusions
            .iter()
            .map(|f| json!({"filterType": "WILDCARD", "filter": f}))
            .collect();
    }
}

/// A repository in ECR's shape.
fn repository_json(call: &Call<'_>, repository: &Repository) -> Value {
    let registry = call.caller.registry();
    let settings = &repository.settings;
    let mut value = json!({
        "repositoryArn": registry.repository_arn(&repository.name).to_string(),
        "registryId": registry.resource_account().account,
        "repositoryName": repository.name.as_str(),
        "repositoryUri": format!("{}/{}", call.host, repository.name),
        "createdAt": epoch_seconds(repository.created_at),
        "imageTagMutability": serde_json::to_value(settings.tag_mutability).unwrap_or_default(),
        "imageScanningConfiguration": {"scanOnPush": settings.scan_on_push},
        "encryptionConfiguration": encryption_json(call, settings),
    });
    add_exclusion_filters(&mut value, settings);
    value
}

/// `imageTagMutability` and its exclusion filters, onto `settings`.
fn read_mutability(params: &Value, settings: &mut RepositorySettings) -> Result<(), ApiError> {
    if let Some(mode) = string(params, "imageTagMutability")? {
        settings.tag_mutability = serde_json::from_value::<TagMutability>(json!(mode))
            .map_err(|_| {
                ApiError::invalid(
                    "imageTagMutability",
                    format!("{mode:?} is not MUTABLE, IMMUTABLE, MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION"),
                )
            })?;
    }
    if let Some(filters) = params.get("imageTagMutabilityExclusionFilters") {
        let filters = filters.as_array().ok_or_else(|| {
            ApiError::invalid("imageTagMutabilityExclusionFilters", "must be a list")
        })?;
        settings.mutability_exclusions = filters
            .iter()
            .map(|f| match (f.get("filterType"), f.get("filter")) {
                (Some(Value::String(t)), Some(Value::String(filter))) if t == "WILDCARD" => {
                    Ok(filter.clone())
                }
                _ => Err(ApiError::invalid(
                    "imageTagMutabilityExclusionFilters",
                    "each filter is {\"filterType\": \"WILDCARD\", \"filter\": \"...\"}",
                )),
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

async fn create_repository(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let params = &call.params;
    let name = repository_name(params)?;
    let mut settings = RepositorySettings::default();
    read_mutability(params, &mut settings)?;
    if let Some(scanning) = params.get("imageScanningConfiguration") {
        settings.scan_on_push = boolean(scanning, "scanOnPush")?.unwrap_or(false);
    } else {
        settings.scan_on_push = call.caller.registry().scan_on_push_by_default();
    }
    if let Some(encryption) = params.get("encryptionConfiguration") {
        match string(encryption, "encryptionType")? {
            Some("AES256") | None => {}
            Some("KMS") if call.login.kms => {
                // Without a key, the registry's default KMS key (ECR: aws/ecr).
                if let Some(key) = string(encryption, "kmsKey")? {
                    settings.encryption_key = Some(format!("{KMS_KEK_PREFIX}{}", kms_key_id(key)?));
                }
                settings.encrypted = Some(true);
            }
            Some("KMS") => {
                return Err(ApiError::invalid(
                    "encryptionConfiguration.encryptionType",
                    "KMS needs the registry started with --kms-key-id: use AES256 (the registry's own key)",
                ));
            }
            Some(other) => {
                return Err(ApiError::invalid(
                    "encryptionConfiguration.encryptionType",
                    format!("{other:?} is not AES256 or KMS"),
                ));
            }
        }
    }
    if let Some(tags) = params.get("tags") {
        settings.labels = read_tags(tags)?;
    }
    let created = call
        .caller
        .create_repository(&name, settings)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::Conflict => ApiError::new(
                "RepositoryAlreadyExistsException",
                format!("The repository with name '{name}' already exists in the registry"),
            ),
            _ => e.into(),
        })?;
    Ok(json!({"repository": repository_json(&call, &created)}))
}

/// ECR's tags (`[{"Key": ..., "Value": ...}]`) as repository labels.
fn read_tags(tags: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let list = tags
        .as_array()
        .ok_or_else(|| ApiError::invalid("tags", "must be a list"))?;
    list.iter()
        .map(|tag| match (tag.get("Key"), tag.get("Value")) {
            (Some(Value::String(k)), Some(Value::String(v)))
                if !k.is_empty() && k.len() <= 128 && v.len() <= 256 =>
            {
                Ok((k.clone(), v.clone()))
            }
            _ => Err(ApiError::invalid(
                "tags",
                "each tag is {\"Key\": 1 to 128 characters, \"Value\": up to 256}",
            )),
        })
        .collect()
}

async fn describe_repositories(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let params = &call.params;
    if let Some(names) = params.get("repositoryNames") {
        let names = names
            .as_array()
            .ok_or_else(|| ApiError::invalid("repositoryNames", "must be a list"))?;
        let mut repositories = Vec::new();
        for name in names {
            let name: RepoName = name
                .as_str()
                .ok_or_else(|| ApiError::invalid("repositoryNames", "must hold strings"))?
                .parse()
                .map_err(|e: wharf::Error| ApiError::invalid("repositoryNames", e.message()))?;
            let repository = call.caller.repository(&name).await?;
            repositories.push(repository_json(&call, &repository));
        }
        return Ok(json!({"repositories": repositories}));
    }
    let n = match params.get("maxResults") {
        None | Some(Value::Null) => DEFAULT_PAGE,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_PAGE as u64).contains(n))
            .ok_or_else(|| ApiError::invalid("maxResults", format!("must be 1 to {MAX_PAGE}")))?
            as usize,
    };
    let after = match string(params, "nextToken")? {
        Some(token) => Some(decode_next(token)?),
        None => None,
    };
    let names = call.caller.list_repositories(n, after.as_ref()).await?;
    let mut repositories = Vec::new();
    for name in &names {
        match call.caller.repository(name).await {
            Ok(repository) => repositories.push(repository_json(&call, &repository)),
            // Deleted since it was listed.
            Err(e) if e.kind() == ErrorKind::NameUnknown => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut answer = json!({"repositories": repositories});
    if names.len() == n
        && let Some(last) = names.last()
    {
        answer["nextToken"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_str()));
    }
    Ok(answer)
}

fn decode_next(token: &str) -> Result<RepoName, ApiError> {
    let bad = || ApiError::invalid("nextToken", "is not a token this registry gave");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    String::from_utf8(bytes)
        .ok()
        .and_then(|name| name.parse().ok())
        .ok_or_else(bad)
}

async fn delete_repository(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let force = boolean(&call.params, "force")?.unwrap_or(false);
    let repository = call.caller.registry().repository(&name).await?;
    call.caller.delete_repository(&name, force).await?;
    Ok(json!({"repository": repository_json(&call, &repository)}))
}

async fn put_image_tag_mutability(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    if string(&call.params, "imageTagMutability")?.is_none() {
        return Err(ApiError::invalid("imageTagMutability", "is required"));
    }
    let mut settings = call.caller.registry().repository(&name).await?.settings;
    read_mutability(&call.params, &mut settings)?;
    if call
        .params
        .get("imageTagMutabilityExclusionFilters")
        .is_none()
    {
        settings.mutability_exclusions.clear();
    }
    let updated = call.caller.update_repository(&name, settings).await?;
    let mut answer = json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": name.as_str(),
        "imageTagMutability": serde_json::to_value(updated.settings.tag_mutability).unwrap_or_default(),
    });
    add_exclusion_filters(&mut answer, &updated.settings);
    Ok(answer)
}

fn policy_answer(call: &Call<'_>, name: &RepoName, text: &str) -> Value {
    json!({
        "registryId": call.caller.registry().resource_account().account,
        "repositoryName": name.as_str(),
        "policyText": text,
    })
}

fn no_policy(name: &RepoName) -> ApiError {
    ApiError::new(
        "RepositoryPolicyNotFoundException",
        format!("Repository policy does not exist for the repository with name '{name}'"),
    )
}

async fn set_repository_policy(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let text = string(&call.params, "policyText")?
        .ok_or_else(|| ApiError::invalid("policyText", "is required"))?;
    call.caller
        .set_repository_policy(&name, text, None)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::PolicyInvalid => ApiError::invalid("policyText", e.message()),
            _ => e.into(),
        })?;
    Ok(policy_answer(&call, &name, text))
}

async fn get_repository_policy(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    match call.caller.repository_policy(&name).await? {
        Some((policy, _)) => Ok(policy_answer(&call, &name, policy.text())),
        None => Err(no_policy(&name)),
    }
}

async fn delete_repository_policy(call: Call<'_>) -> Result<Value, ApiError> {
    check_registry_id(&call)?;
    let name = repository_name(&call.params)?;
    let Some((policy, version)) = call.caller.repository_policy(&name).await? else {
        return Err(no_policy(&name));
    };
    call.caller
        .delete_repository_policy(&name, Some(version))
        .await?;
    Ok(policy_answer(&call, &name, policy.text()))
}

/// A login token for `/v2/` (Basic credentials, user `AWS`), valid twelve hours, that
/// stands for the user who asked.
async fn get_authorization_token(call: Call<'_>) -> Result<Value, ApiError> {
    call.caller
        .authorize_registry(Action::GetAuthorizationToken)
        .await?;
    let login = Access {
        kind: "registry".into(),
        name: tokens::LOGIN_GRANT.into(),
        actions: vec![ScopeAction::All],
    };
    let (token, ttl) = call
        .login
        .tokens
        .issue_for(&call.user, vec![login], tokens::LOGIN_TTL)
        .map_err(|e| ApiError::new("ServerException", e))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{token}"));
    let expires = SystemTime::now() + std::time::Duration::from_secs(ttl);
    let scheme = if call.login.tls { "https" } else { "http" };
    Ok(json!({"authorizationData": [{
        "authorizationToken": encoded,
        "expiresAt": epoch_seconds(expires),
        "proxyEndpoint": format!("{scheme}://{}", call.host),
    }]}))
}

/// The repository a resource ARN names, in this registry's region and account.
fn arn_repository(call: &Call<'_>) -> Result<RepoName, ApiError> {
    let arn = string(&call.params, "resourceArn")?
        .ok_or_else(|| ApiError::invalid("resourceArn", "is required"))?;
    let account = call.caller.registry().resource_account();
    let prefix = format!(
        "arn:aws:ecr:{}:{}:repository/",
        account.region, account.account
    );
    arn.strip_prefix(&prefix)
        .and_then(|name| name.parse().ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "resourceArn",
                format!("{arn:?} is not a repository of this registry ({prefix}<name>)"),
            )
        })
}

async fn tag_resource(call: Call<'_>) -> Result<Value, ApiError> {
    let name = arn_repository(&call)?;
    let tags = read_tags(
        call.params
            .get("tags")
            .ok_or_else(|| ApiError::invalid("tags", "is required"))?,
    )?;
    let mut settings = call.caller.registry().repository(&name).await?.settings;
    settings.labels.extend(tags);
    if settings.labels.len() > 50 {
        return Err(ApiError::invalid(
            "tags",
            "a repository has at most 50 tags",
        ));
    }
    call.caller.update_repository(&name, settings).await?;
    Ok(json!({}))
}

async fn untag_resource(call: Call<'_>) -> Result<Value, ApiError> {
    let name = arn_repository(&call)?;
    let keys: Vec<String> = call
        .params
        .get("tagKeys")
        .and_then(|k| serde_json::from_value(k.clone()).ok())
        .ok_or_else(|| ApiError::invalid("tagKeys", "is required: a list of strings"))?;
    let mut settings = call.caller.registry().repository(&name).await?.settings;
    for key in &keys {
        settings.labels.remove(key);
    }
    call.caller.update_repository(&name, settings).await?;
    Ok(json!({}))
}

async fn list_tags_for_resource(call: Call<'_>) -> Result<Value, ApiError> {
    let name = arn_repository(&call)?;
    let tags = call.caller.repository_tags(&name).await?;
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json!({"tags": tags}))
}
