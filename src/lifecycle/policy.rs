//! The ECR lifecycle-policy document: parsed from JSON and validated as ECR validates it.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

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
        let document: Value = crate::strict_json::parse(text.as_bytes())
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
            let rule = super::rule::parse_rule(index + 1, rule)?;
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

pub(super) fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::PolicyInvalid, message)
}

pub(super) fn only_fields(object: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<()> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!(
            "{what}: unknown field {unknown:?} (allowed: {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
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
