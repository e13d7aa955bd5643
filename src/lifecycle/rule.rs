//! One rule of a lifecycle policy, read and validated as ECR validates it: every error
//! names the rule (its position and priority) and the field at fault.

use serde_json::{Map, Value};

use super::MIN_ARCHIVE_DAYS;
use super::policy::{
    CountType, MAX_PATTERN_WILDCARDS, Rule, RuleAction, StorageClass, TagStatus, invalid,
    only_fields,
};
use crate::error::{Error, Result};

/// Where an error in a rule points: its position in the policy and its priority.
struct RuleAt {
    index: usize,
    priority: u32,
}

impl RuleAt {
    fn name(&self) -> String {
        format!("rule {} (rulePriority {})", self.index, self.priority)
    }

    fn err(&self, field: &str, message: String) -> Error {
        invalid(format!("{}: {field}: {message}", self.name()))
    }
}

/// A rule's `tagPatternList` or `tagPrefixList`: absent, or a non-empty list.
type TagList = Option<Vec<String>>;

/// What a rule's `selection` picks.
struct Selection {
    tag_status: TagStatus,
    patterns: TagList,
    prefixes: TagList,
    storage_class: StorageClass,
    count_type: CountType,
    count_number: u32,
}

/// Reads one rule; errors are prefixed with the rule's position and priority.
pub(super) fn parse_rule(index: usize, value: &Value) -> Result<Rule> {
    let Some(rule) = value.as_object() else {
        return Err(invalid(format!("rule {index}: must be a JSON object")));
    };
    // Named by priority as soon as it is known.
    let at = RuleAt {
        index,
        priority: priority(index, rule)?,
    };
    only_fields(
        rule,
        &["rulePriority", "description", "selection", "action"],
        &at.name(),
    )?;
    let description = match rule.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(at.err("description", "must be a string".into())),
    };
    let selection = selection(&at, rule)?;
    let action = action(&at, rule)?;
    check_combination(&at, &selection, action)?;
    Ok(Rule {
        priority: at.priority,
        description,
        tag_status: selection.tag_status,
        tag_patterns: selection.patterns.unwrap_or_default(),
        tag_prefixes: selection.prefixes.unwrap_or_default(),
        storage_class: selection.storage_class,
        count_type: selection.count_type,
        count_number: selection.count_number,
        action,
    })
}

fn priority(index: usize, rule: &Map<String, Value>) -> Result<u32> {
    match rule.get("rulePriority") {
        None => Err(invalid(format!("rule {index}: rulePriority: required"))),
        Some(p) => match p.as_u64() {
            Some(p) if (1..=u64::from(i32::MAX as u32)).contains(&p) => Ok(p as u32),
            _ => Err(invalid(format!(
                "rule {index}: rulePriority: must be an integer of at least 1, not {p}"
            ))),
        },
    }
}

/// The `selection` object: which tags, which storage class, which count.
fn selection(at: &RuleAt, rule: &Map<String, Value>) -> Result<Selection> {
    let selection = rule
        .get("selection")
        .ok_or_else(|| at.err("selection", "required".into()))?
        .as_object()
        .ok_or_else(|| at.err("selection", "must be an object".into()))?;
    only_fields(
        selection,
        &[
            "tagStatus",
            "tagPatternList",
            "tagPrefixList",
            "storageClass",
            "countType",
            "countUnit",
            "countNumber",
        ],
        &format!("{}: selection", at.name()),
    )?;
    let (tag_status, patterns, prefixes) = tags(at, selection)?;
    let (storage_class, count_type, count_number) = count(at, selection)?;
    Ok(Selection {
        tag_status,
        patterns,
        prefixes,
        storage_class,
        count_type,
        count_number,
    })
}

/// A string field of `selection`, if present.
fn string<'a>(
    at: &RuleAt,
    selection: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>> {
    match selection.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(at.err(&format!("selection.{field}"), "must be a string".into())),
    }
}

/// `tagStatus` and its tag lists, which must agree.
fn tags(at: &RuleAt, selection: &Map<String, Value>) -> Result<(TagStatus, TagList, TagList)> {
    let string = |field: &str| string(at, selection, field);
    let tag_status = match string("tagStatus")? {
        Some("tagged") => TagStatus::Tagged,
        Some("untagged") => TagStatus::Untagged,
        Some("any") => TagStatus::Any,
        Some(other) => {
            return Err(at.err(
                "selection.tagStatus",
                format!("{other:?} is not one of \"tagged\", \"untagged\", \"any\""),
            ));
        }
        None => return Err(at.err("selection.tagStatus", "required".into())),
    };
    let list = |field: &str| -> Result<Option<Vec<String>>> {
        let Some(value) = selection.get(field) else {
            return Ok(None);
        };
        let name = format!("selection.{field}");
        let items = value
            .as_array()
            .ok_or_else(|| at.err(&name, "must be an array of strings".into()))?;
        if items.is_empty() {
            return Err(at.err(&name, "must not be empty".into()));
        }
        items
            .iter()
            .map(|item| match item.as_str() {
                Some("") => Err(at.err(&name, "entries must not be empty".into())),
                Some(s) => Ok(s.to_owned()),
                None => Err(at.err(&name, "must be an array of strings".into())),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    };
    let patterns = list("tagPatternList")?;
    let prefixes = list("tagPrefixList")?;
    match tag_status {
        TagStatus::Tagged if patterns.is_none() && prefixes.is_none() => {
            return Err(at.err(
                "selection.tagPatternList",
                "required with tagStatus \"tagged\" (or give tagPrefixList)".into(),
            ));
        }
        TagStatus::Tagged if patterns.is_some() && prefixes.is_some() => {
            return Err(at.err(
                "selection.tagPrefixList",
                "give either tagPatternList or tagPrefixList, not both".into(),
            ));
        }
        TagStatus::Untagged | TagStatus::Any => {
            for (field, given) in [
                ("tagPatternList", patterns.is_some()),
                ("tagPrefixList", prefixes.is_some()),
            ] {
                if given {
                    return Err(at.err(
                        &format!("selection.{field}"),
                        format!("not allowed with tagStatus \"{tag_status}\""),
                    ));
                }
            }
        }
        TagStatus::Tagged => {}
    }
    for pattern in patterns.iter().flatten() {
        let wildcards = pattern.matches('*').count();
        if wildcards > MAX_PATTERN_WILDCARDS {
            return Err(at.err(
                "selection.tagPatternList",
                format!(
                    "{pattern:?} has {wildcards} wildcards; at most {MAX_PATTERN_WILDCARDS} are allowed"
                ),
            ));
        }
    }
    Ok((tag_status, patterns, prefixes))
}

/// The storage class the rule looks at, and how it counts.
fn count(at: &RuleAt, selection: &Map<String, Value>) -> Result<(StorageClass, CountType, u32)> {
    let string = |field: &str| string(at, selection, field);
    let storage_class = match string("storageClass")? {
        None | Some("standard") => StorageClass::Standard,
        Some("archive") => StorageClass::Archive,
        Some(other) => {
            return Err(at.err(
                "selection.storageClass",
                format!("{other:?} is not one of \"standard\", \"archive\""),
            ));
        }
    };
    let count_type = match string("countType")? {
        Some("imageCountMoreThan") => CountType::ImageCountMoreThan,
        Some("sinceImagePushed") => CountType::SinceImagePushed,
        Some("sinceImagePulled") => CountType::SinceImagePulled,
        Some("sinceImageTransitioned") => CountType::SinceImageTransitioned,
        Some(other) => {
            return Err(at.err(
                "selection.countType",
                format!(
                    "{other:?} is not one of \"imageCountMoreThan\", \"sinceImagePushed\", \"sinceImagePulled\", \"sinceImageTransitioned\""
                ),
            ));
        }
        None => return Err(at.err("selection.countType", "required".into())),
    };
    match (count_type, string("countUnit")?) {
        (CountType::ImageCountMoreThan, Some(_)) => {
            return Err(at.err(
                "selection.countUnit",
                "not allowed with countType \"imageCountMoreThan\"".into(),
            ));
        }
        (CountType::ImageCountMoreThan, None) | (_, Some("days")) => {}
        (_, Some(other)) => {
            return Err(at.err(
                "selection.countUnit",
                format!("{other:?} is not a unit; the only unit is \"days\""),
            ));
        }
        (_, None) => {
            return Err(at.err(
                "selection.countUnit",
                "required (\"days\") with a countType since an event".into(),
            ));
        }
    }
    let count_number = match selection.get("countNumber") {
        None => return Err(at.err("selection.countNumber", "required".into())),
        Some(n) => match n.as_u64() {
            Some(n) if (1..=u64::from(i32::MAX as u32)).contains(&n) => n as u32,
            _ => {
                return Err(at.err(
                    "selection.countNumber",
                    format!("must be an integer of at least 1, not {n}"),
                ));
            }
        },
    };
    Ok((storage_class, count_type, count_number))
}

/// The `action` object.
fn action(at: &RuleAt, rule: &Map<String, Value>) -> Result<RuleAction> {
    let action = rule
        .get("action")
        .ok_or_else(|| at.err("action", "required".into()))?
        .as_object()
        .ok_or_else(|| at.err("action", "must be an object".into()))?;
    only_fields(
        action,
        &["type", "targetStorageClass"],
        &format!("{}: action", at.name()),
    )?;
    let target = match action.get("targetStorageClass") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(at.err("action.targetStorageClass", "must be a string".into())),
    };
    let action = match action.get("type").and_then(Value::as_str) {
        Some("expire") => {
            if target.is_some() {
                return Err(at.err(
                    "action.targetStorageClass",
                    "only allowed with action type \"transition\"".into(),
                ));
            }
            RuleAction::Expire
        }
        Some("transition") => match target {
            Some("archive") => RuleAction::Transition(StorageClass::Archive),
            Some(other) => {
                return Err(at.err(
                    "action.targetStorageClass",
                    format!("{other:?} is not a target; the only one is \"archive\""),
                ));
            }
            None => {
                return Err(at.err(
                    "action.targetStorageClass",
                    "required (\"archive\") with action type \"transition\"".into(),
                ));
            }
        },
        Some(other) => {
            return Err(at.err(
                "action.type",
                format!("{other:?} is not one of \"expire\", \"transition\""),
            ));
        }
        None => return Err(at.err("action.type", "required (a string)".into())),
    };
    Ok(action)
}

/// What each storage class and count type allow: standard images are expired or
/// archived (by pull age only archived); archived images are only expired, by the time
/// since they were archived, and no sooner than ECR's minimum.
fn check_combination(at: &RuleAt, selection: &Selection, action: RuleAction) -> Result<()> {
    let count_number = selection.count_number;
    match (selection.storage_class, selection.count_type, action) {
        (StorageClass::Archive, _, RuleAction::Transition(_)) => {
            return Err(at.err(
                "action.type",
                "images in the archive storage class can only be expired".into(),
            ));
        }
        (StorageClass::Archive, CountType::SinceImageTransitioned, _)
            if count_number < MIN_ARCHIVE_DAYS =>
        {
            return Err(at.err(
                "selection.countNumber",
                format!(
                    "{count_number} days is too soon: archived images stay at least {MIN_ARCHIVE_DAYS} days in the archive"
                ),
            ));
        }
        (StorageClass::Archive, CountType::SinceImageTransitioned, _) => {}
        (StorageClass::Archive, other, _) => {
            return Err(at.err(
                "selection.countType",
                format!(
                    "{:?} does not apply to archived images; use \"sinceImageTransitioned\"",
                    count_type_name(other)
                ),
            ));
        }
        (StorageClass::Standard, CountType::SinceImageTransitioned, _) => {
            return Err(at.err(
                "selection.countType",
                "\"sinceImageTransitioned\" needs selection.storageClass \"archive\"".into(),
            ));
        }
        (StorageClass::Standard, CountType::SinceImagePulled, RuleAction::Expire) => {
            return Err(at.err(
                "action.type",
                "a \"sinceImagePulled\" rule can only transition images to archive, not expire them".into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn count_type_name(count_type: CountType) -> &'static str {
    match count_type {
        CountType::ImageCountMoreThan => "imageCountMoreThan",
        CountType::SinceImagePushed => "sinceImagePushed",
        CountType::SinceImagePulled => "sinceImagePulled",
        CountType::SinceImageTransitioned => "sinceImageTransitioned",
    }
}
