//! The ECR lifecycle-policy document: parsed from JSON and validated as ECR validates it.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::lifecycle::MIN_ARCHIVE_DAYS;

/// Most `*` wildcards ECR allows in one tag pattern.
pub const MAX_PATTERN_WILDCARDS: usize = 4;

/// Most rules ECR allows in one policy.
pub const MAX_RULES: usize = 50;

/// Whether two tagged rules select by the same tag list (compared as sets).
fn same_tag_list(a: &Rule, b: &Rule) -> bool {
    fn set(list: &[String]) -> std::collections::BTreeSet<&str> {
        list.iter().map(String::as_str).collect()
    }
    set(&a.tag_patterns) == set(&b.tag_patterns) && set(&a.tag_prefixes) == set(&b.tag_prefixes)
}

/// Which images a rule looks at, by their tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStatus {
    /// Images with at least one tag matching the rule's pattern or prefix list.
    Tagged,
    /// Images without tags.
    Untagged,
    /// All images.
    Any,
}

/// How a rule decides which of the images it selects to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountType {
    /// Keep the newest `countNumber` (by push time; by archive time for archived images),
    /// act on the rest.
    ImageCountMoreThan,
    /// Act on images pushed more than `countNumber` days ago.
    SinceImagePushed,
    /// Act on images last pulled more than `countNumber` days ago (never pulled: pushed).
    SinceImagePulled,
    /// Act on archived images transitioned more than `countNumber` days ago.
    SinceImageTransitioned,
}

/// ECR's storage classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum StorageClass {
    /// Pullable.
    #[default]
    Standard,
    /// Kept in colder storage; listed, but not pullable until restored.
    Archive,
}

impl StorageClass {
    /// The policy spelling: `standard` or `archive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Archive => "archive",
        }
    }
}

/// What a rule does to the images it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Delete them.
    Expire,
    /// Move them to another storage class (only `archive`).
    Transition(StorageClass),
}

/// One rule of a [`LifecyclePolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `rulePriority`: lower runs first; unique in the policy.
    pub priority: u32,
    /// `description`.
    pub description: Option<String>,
    /// `selection.tagStatus`.
    pub tag_status: TagStatus,
    /// `selection.tagPatternList`: every pattern must match one of an image's tags.
    pub tag_patterns: Vec<String>,
    /// `selection.tagPrefixList`: every prefix must start one of an image's tags.
    pub tag_prefixes: Vec<String>,
    /// `selection.storageClass`: the class of the images the rule looks at.
    pub storage_class: StorageClass,
    /// `selection.countType`.
    pub count_type: CountType,
    /// `selection.countNumber`: images to keep, or days.
    pub count_number: u32,
    /// `action`.
    pub action: RuleAction,
}

impl Rule {
    /// Whether the rule's tag requirements select an image with `tags`.
    pub fn matches_tags<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        self.tag_filter().matches(tags)
    }

    /// The rule's tag requirements, with the patterns split once for many images.
    pub(crate) fn tag_filter(&self) -> TagFilter<'_> {
        TagFilter {
            status: self.tag_status,
            patterns: self
                .tag_patterns
                .iter()
                .map(|p| p.split('*').collect())
                .collect(),
            prefixes: &self.tag_prefixes,
        }
    }
}

/// A rule's tag requirements, ready to test many images.
pub(crate) struct TagFilter<'r> {
    status: TagStatus,
    /// Each pattern cut at its `*`s.
    patterns: Vec<Vec<&'r str>>,
    prefixes: &'r [String],
}

impl TagFilter<'_> {
    pub(crate) fn matches<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        match self.status {
            TagStatus::Any => true,
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Tagged => {
                !tags.is_empty()
                    && self
                        .patterns
                        .iter()
                        .all(|p| tags.iter().any(|t| parts_match(p, t.as_ref())))
                    && self
                        .prefixes
                        .iter()
                        .all(|p| tags.iter().any(|t| t.as_ref().starts_with(p.as_str())))
            }
        }
    }
}

/// An ECR lifecycle policy, validated.
///
/// ```
/// use wharf::LifecyclePolicy;
///
/// let policy = LifecyclePolicy::parse(r#"{"rules": [{
///     "rulePriority": 1,
///     "description": "keep the last 10 release images",
///     "selection": {"tagStatus": "tagged", "tagPatternList": ["release-*"],
///                   "countType": "imageCountMoreThan", "countNumber": 10},
///     "action": {"type": "expire"}
/// }]}"#)?;
/// assert_eq!(policy.rules()[0].count_number, 10);
///
/// let err = LifecyclePolicy::parse(r#"{"rules": [{
///     "rulePriority": 1,
///     "selection": {"tagStatus": "untagged", "tagPrefixList": ["v"],
///                   "countType": "imageCountMoreThan", "countNumber": 1},
///     "action": {"type": "expire"}
/// }]}"#).unwrap_err();
/// assert!(err.to_string().contains("rule 1 (rulePriority 1): selection.tagPrefixList"));
/// # Ok::<(), wharf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// Sorted by priority.
    rules: Vec<Rule>,
}

impl LifecyclePolicy {
    /// Parses and validates a policy document; [`ErrorKind::PolicyInvalid`] names the rule
    /// (its position and priority) and the field at fault.
    pub fn parse(text: &str) -> Result<Self> {
        let document: Value = crate::manifest::strict_json::parse(text.as_bytes())
            .map_err(|e| invalid(format!("not a JSON document: {e}")))?;
        let document = document
            .as_object()
            .ok_or_else(|| invalid("the policy must be a JSON object with \"rules\""))?;
        only_fields(document, &["rules"], "the policy")?;
        let rules = document
            .get("rules")
            .ok_or_else(|| invalid("rules: required"))?
            .as_array()
            .ok_or_else(|| invalid("rules: must be an array"))?;
        if rules.is_empty() {
            return Err(invalid("rules: at least one rule is required"));
        }
        if rules.len() > MAX_RULES {
            return Err(invalid(format!(
                "rules: {} rules, at most {MAX_RULES} are allowed",
                rules.len()
            )));
        }
        let mut parsed = Vec::with_capacity(rules.len());
        let mut by_priority: BTreeMap<u32, usize> = BTreeMap::new();
        for (index, rule) in rules.iter().enumerate() {
            let rule = parse_rule(index + 1, rule)?;
            if let Some(first) = by_priority.insert(rule.priority, index + 1) {
                return Err(invalid(format!(
                    "rule {} (rulePriority {}): rulePriority: {} is already used by rule {first}; priorities must be unique",
                    index + 1,
                    rule.priority,
                    rule.priority
                )));
            }
            parsed.push((index + 1, rule));
        }
        // Per storage class: one rule for untagged images, and no two rules with the same
        // tag list.
        for (index, rule) in &parsed {
            let earlier = parsed.iter().take_while(|(i, _)| i < index);
            for (other, before) in earlier.filter(|(_, r)| r.storage_class == rule.storage_class) {
                let clash = match (rule.tag_status, before.tag_status) {
                    (TagStatus::Untagged, TagStatus::Untagged) => Some((
                        "selection.tagStatus",
                        "only one rule per storage class may select untagged images",
                    )),
                    (TagStatus::Tagged, TagStatus::Tagged) if same_tag_list(rule, before) => {
                        Some((
                            if rule.tag_patterns.is_empty() {
                                "selection.tagPrefixList"
                            } else {
                                "selection.tagPatternList"
                            },
                            "the rules of a storage class must select different tag lists",
                        ))
                    }
                    _ => None,
                };
                if let Some((field, why)) = clash {
                    return Err(invalid(format!(
                        "rule {index} (rulePriority {}): {field}: {why}, and rule {other} (rulePriority {}) already does",
                        rule.priority, before.priority
                    )));
                }
            }
        }
        // An `any` rule must come last among the rules of its storage class.
        for (index, rule) in &parsed {
            if rule.tag_status != TagStatus::Any {
                continue;
            }
            if let Some((other, later)) = parsed
                .iter()
                .find(|(_, r)| r.storage_class == rule.storage_class && r.priority > rule.priority)
            {
                return Err(invalid(format!(
                    "rule {index} (rulePriority {}): selection.tagStatus: a rule with tagStatus \"any\" must have the highest rulePriority among {} rules, but rule {other} has rulePriority {}",
                    rule.priority,
                    rule.storage_class.as_str(),
                    later.priority
                )));
            }
        }
        let mut rules: Vec<Rule> = parsed.into_iter().map(|(_, r)| r).collect();
        rules.sort_by_key(|r| r.priority);
        Ok(Self { rules })
    }

    /// The rules, lowest priority number (first to run) first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl fmt::Display for TagStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tagged => "tagged",
            Self::Untagged => "untagged",
            Self::Any => "any",
        })
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::PolicyInvalid, message)
}

fn only_fields(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<()> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!(
            "{what}: unknown field {unknown:?} (allowed: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Reads one rule; errors are prefixed with the rule's position and priority.
fn parse_rule(index: usize, value: &Value) -> Result<Rule> {
    let Some(rule) = value.as_object() else {
        return Err(invalid(format!("rule {index}: must be a JSON object")));
    };
    // Named by priority as soon as it is known.
    let priority = match rule.get("rulePriority") {
        None => {
            return Err(invalid(format!("rule {index}: rulePriority: required")));
        }
        Some(p) => match p.as_u64() {
            Some(p) if (1..=u64::from(i32::MAX as u32)).contains(&p) => p as u32,
            _ => {
                return Err(invalid(format!(
                    "rule {index}: rulePriority: must be an integer of at least 1, not {p}"
                )));
            }
        },
    };
    let at = |field: &str, message: String| {
        invalid(format!(
            "rule {index} (rulePriority {priority}): {field}: {message}"
        ))
    };
    only_fields(
        rule,
        &["rulePriority", "description", "selection", "action"],
        &format!("rule {index} (rulePriority {priority})"),
    )?;
    let description = match rule.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(at("description", "must be a string".into())),
    };
    let selection = rule
        .get("selection")
        .ok_or_else(|| at("selection", "required".into()))?
        .as_object()
        .ok_or_else(|| at("selection", "must be an object".into()))?;
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
        &format!("rule {index} (rulePriority {priority}): selection"),
    )?;
    let string = |field: &str| -> Result<Option<&str>> {
        match selection.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(at(&format!("selection.{field}"), "must be a string".into())),
        }
    };
    let tag_status = match string("tagStatus")? {
        Some("tagged") => TagStatus::Tagged,
        Some("untagged") => TagStatus::Untagged,
        Some("any") => TagStatus::Any,
        Some(other) => {
            return Err(at(
                "selection.tagStatus",
                format!("{other:?} is not one of \"tagged\", \"untagged\", \"any\""),
            ));
        }
        None => return Err(at("selection.tagStatus", "required".into())),
    };
    let list = |field: &str| -> Result<Option<Vec<String>>> {
        let Some(value) = selection.get(field) else {
            return Ok(None);
        };
        let name = format!("selection.{field}");
        let items = value
            .as_array()
            .ok_or_else(|| at(&name, "must be an array of strings".into()))?;
        if items.is_empty() {
            return Err(at(&name, "must not be empty".into()));
        }
        items
            .iter()
            .map(|item| match item.as_str() {
                Some("") => Err(at(&name, "entries must not be empty".into())),
                Some(s) => Ok(s.to_owned()),
                None => Err(at(&name, "must be an array of strings".into())),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    };
    let patterns = list("tagPatternList")?;
    let prefixes = list("tagPrefixList")?;
    match tag_status {
        TagStatus::Tagged if patterns.is_none() && prefixes.is_none() => {
            return Err(at(
                "selection.tagPatternList",
                "required with tagStatus \"tagged\" (or give tagPrefixList)".into(),
            ));
        }
        TagStatus::Tagged if patterns.is_some() && prefixes.is_some() => {
            return Err(at(
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
                    return Err(at(
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
            return Err(at(
                "selection.tagPatternList",
                format!(
                    "{pattern:?} has {wildcards} wildcards; at most {MAX_PATTERN_WILDCARDS} are allowed"
                ),
            ));
        }
    }
    let storage_class = match string("storageClass")? {
        None | Some("standard") => StorageClass::Standard,
        Some("archive") => StorageClass::Archive,
        Some(other) => {
            return Err(at(
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
            return Err(at(
                "selection.countType",
                format!(
                    "{other:?} is not one of \"imageCountMoreThan\", \"sinceImagePushed\", \"sinceImagePulled\", \"sinceImageTransitioned\""
                ),
            ));
        }
        None => return Err(at("selection.countType", "required".into())),
    };
    match (count_type, string("countUnit")?) {
        (CountType::ImageCountMoreThan, Some(_)) => {
            return Err(at(
                "selection.countUnit",
                "not allowed with countType \"imageCountMoreThan\"".into(),
            ));
        }
        (CountType::ImageCountMoreThan, None) | (_, Some("days")) => {}
        (_, Some(other)) => {
            return Err(at(
                "selection.countUnit",
                format!("{other:?} is not a unit; the only unit is \"days\""),
            ));
        }
        (_, None) => {
            return Err(at(
                "selection.countUnit",
                "required (\"days\") with a countType since an event".into(),
            ));
        }
    }
    let count_number = match selection.get("countNumber") {
        None => return Err(at("selection.countNumber", "required".into())),
        Some(n) => match n.as_u64() {
            Some(n) if (1..=u64::from(i32::MAX as u32)).contains(&n) => n as u32,
            _ => {
                return Err(at(
                    "selection.countNumber",
                    format!("must be an integer of at least 1, not {n}"),
                ));
            }
        },
    };
    let action = rule
        .get("action")
        .ok_or_else(|| at("action", "required".into()))?
        .as_object()
        .ok_or_else(|| at("action", "must be an object".into()))?;
    only_fields(
        action,
        &["type", "targetStorageClass"],
        &format!("rule {index} (rulePriority {priority}): action"),
    )?;
    let target = match action.get("targetStorageClass") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(at("action.targetStorageClass", "must be a string".into())),
    };
    let action = match action.get("type").and_then(Value::as_str) {
        Some("expire") => {
            if target.is_some() {
                return Err(at(
                    "action.targetStorageClass",
                    "only allowed with action type \"transition\"".into(),
                ));
            }
            RuleAction::Expire
        }
        Some("transition") => match target {
            Some("archive") => RuleAction::Transition(StorageClass::Archive),
            Some(other) => {
                return Err(at(
                    "action.targetStorageClass",
                    format!("{other:?} is not a target; the only one is \"archive\""),
                ));
            }
            None => {
                return Err(at(
                    "action.targetStorageClass",
                    "required (\"archive\") with action type \"transition\"".into(),
                ));
            }
        },
        Some(other) => {
            return Err(at(
                "action.type",
                format!("{other:?} is not one of \"expire\", \"transition\""),
            ));
        }
        None => return Err(at("action.type", "required (a string)".into())),
    };
    // What each storage class and count type allow: standard images are expired or
    // archived (by pull age only archived); archived images are only expired, by the
    // time since they were archived.
    match (storage_class, count_type, action) {
        (StorageClass::Archive, _, RuleAction::Transition(_)) => {
            return Err(at(
                "action.type",
                "images in the archive storage class can only be expired".into(),
            ));
        }
        (StorageClass::Archive, CountType::SinceImageTransitioned, _)
            if count_number < MIN_ARCHIVE_DAYS =>
        {
            return Err(at(
                "selection.countNumber",
                format!(
                    "{count_number} days is too soon: archived images stay at least {MIN_ARCHIVE_DAYS} days in the archive"
                ),
            ));
        }
        (StorageClass::Archive, CountType::SinceImageTransitioned, _) => {}
        (StorageClass::Archive, other, _) => {
            return Err(at(
                "selection.countType",
                format!(
                    "{:?} does not apply to archived images; use \"sinceImageTransitioned\"",
                    count_type_name(other)
                ),
            ));
        }
        (StorageClass::Standard, CountType::SinceImageTransitioned, _) => {
            return Err(at(
                "selection.countType",
                "\"sinceImageTransitioned\" needs selection.storageClass \"archive\"".into(),
            ));
        }
        (StorageClass::Standard, CountType::SinceImagePulled, RuleAction::Expire) => {
            return Err(at(
                "action.type",
                "a \"sinceImagePulled\" rule can only transition images to archive, not expire them".into(),
            ));
        }
        _ => {}
    }
    Ok(Rule {
        priority,
        description,
        tag_status,
        tag_patterns: patterns.unwrap_or_default(),
        tag_prefixes: prefixes.unwrap_or_default(),
        storage_class,
        count_type,
        count_number,
        action,
    })
}

fn count_type_name(count_type: CountType) -> &'static str {
    match count_type {
        CountType::ImageCountMoreThan => "imageCountMoreThan",
        CountType::SinceImagePushed => "sinceImagePushed",
        CountType::SinceImagePulled => "sinceImagePulled",
        CountType::SinceImageTransitioned => "sinceImageTransitioned",
    }
}

/// `*` matches any run of characters (also none); the pattern is anchored at both ends,
/// as in ECR tag patterns and tag-mutability exclusions.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    parts_match(&pattern.split('*').collect::<Vec<_>>(), text)
}

/// [`wildcard_match`] with the pattern already cut at its `*`s.
fn parts_match(parts: &[&str], text: &str) -> bool {
    let Some((first, rest_parts)) = parts.split_first() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest_parts.split_last() else {
        // No `*`: the whole text must equal the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}
