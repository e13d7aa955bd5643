//! The planner: which images a policy expires, transitions or keeps, and why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::inventory::{LifecycleImage, LifecycleInventory};
use super::policy::{CountType, LifecyclePolicy, Rule, RuleAction, StorageClass};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What happens to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It stays as it is.
    Keep,
    /// A rule expires it.
    Expire,
    /// A rule moves it to another storage class.
    Transition(StorageClass),
    /// It is a referrer (signature, SBOM, …) of an expired image and goes with it.
    CascadeExpire,
}

impl Outcome {
    /// The JSON spelling: `keep`, `expire`, `transition`, `cascade_expire`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Expire => "expire",
            Self::Transition(_) => "transition",
            Self::CascadeExpire => "cascade_expire",
        }
    }
}

/// The planner's verdict on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The image's id.
    pub id: String,
    /// What happens to it.
    pub outcome: Outcome,
    /// The priority of the rule that decided (for a kept image: the first rule whose tag
    /// requirements selected it, which shields it from later rules), if any.
    pub rule: Option<u32>,
    /// Why, in words.
    pub reason: String,
}

/// A policy's verdict on an inventory: one [`Decision`] per image, sorted by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every image's decision, sorted by id.
    pub decisions: Vec<Decision>,
}

impl Plan {
    fn ids(&self, pick: impl Fn(Outcome) -> bool) -> Vec<&str> {
        self.decisions
            .iter()
            .filter(|d| pick(d.outcome))
            .map(|d| d.id.as_str())
            .collect()
    }

    /// Images a rule expires, sorted.
    pub fn expired(&self) -> Vec<&str> {
        self.ids(|o| o == Outcome::Expire)
    }

    /// Images a rule moves to another storage class, sorted.
    pub fn transitioned(&self) -> Vec<&str> {
        self.ids(|o| matches!(o, Outcome::Transition(_)))
    }

    /// Referrers expired because their subject is, sorted.
    pub fn cascade_expired(&self) -> Vec<&str> {
        self.ids(|o| o == Outcome::CascadeExpire)
    }

    /// The decision on `id`.
    pub fn decision(&self, id: &str) -> Option<&Decision> {
        self.decisions
            .binary_search_by(|d| d.id.as_str().cmp(id))
            .ok()
            .map(|at| &self.decisions[at])
    }

    /// `{"expired": [ids], "transitioned": [ids], "cascade_expired": [ids],
    /// "decisions": [{"id", "action", "rule", "storage_class"?, "reason"}]}`.
    pub fn to_json(&self) -> Value {
        let decisions: Vec<Value> = self
            .decisions
            .iter()
            .map(|d| {
                let mut entry = json!({
                    "id": d.id,
                    "action": d.outcome.as_str(),
                    "rule": d.rule,
                    "reason": d.reason,
                });
                if let Outcome::Transition(class) = d.outcome {
                    entry["storage_class"] = json!(class.as_str());
                }
                entry
            })
            .collect();
        json!({
            "expired": self.expired(),
            "transitioned": self.transitioned(),
            "cascade_expired": self.cascade_expired(),
            "decisions": decisions,
        })
    }
}

/// Evaluates `policy` over `inventory` at time `now`. Pure and deterministic.
///
/// ECR's rules, in order: rules run by priority; a rule selects the images of its
/// storage class whose tags meet its requirements, and acts on those its count
/// criterion picks; an image selected by a rule is shielded from every later rule
/// (even when the earlier rule acted on nothing), yet still counts toward a later rule's
/// "keep N"; each image gets at most one action. Then: children of an image index stay
/// while the index stays (standard and not expired), and referrers of an expired image
/// go with it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use wharf::{LifecycleImage, LifecycleInventory, LifecyclePolicy, plan};
///
/// let policy = LifecyclePolicy::parse(r#"{"rules": [{"rulePriority": 1,
///     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
///                   "countUnit": "days", "countNumber": 14},
///     "action": {"type": "expire"}}]}"#)?;
/// let day = Duration::from_secs(86_400);
/// let now = UNIX_EPOCH + 100 * day;
/// let inventory = LifecycleInventory { images: vec![
///     LifecycleImage::new("old", &[], now - 20 * day),
///     LifecycleImage::new("new", &[], now - 3 * day),
///     LifecycleImage::new("tagged", &["v1"], now - 90 * day),
/// ]};
/// assert_eq!(plan(&policy, &inventory, now).expired(), ["old"]);
/// # Ok::<(), wharf::Error>(())
/// ```
pub fn plan(policy: &LifecyclePolicy, inventory: &LifecycleInventory, now: SystemTime) -> Plan {
    let images: BTreeMap<&str, &LifecycleImage> = inventory
        .images
        .iter()
        .map(|i| (i.id.as_str(), i))
        .collect();
    // Per image: the first rule that selected it, and the rule that acted on it.
    let mut shield: HashMap<&str, u32> = HashMap::new();
    let mut acted: HashMap<&str, (&Rule, String)> = HashMap::new();
    for rule in policy.rules() {
        let selected: Vec<&LifecycleImage> = images
            .values()
            .copied()
            .filter(|i| i.storage_class == rule.storage_class && rule.matches_tags(&i.tags))
            .collect();
        for (image, why) in hits(rule, selected.clone(), now) {
            if !shield.contains_key(image.id.as_str()) {
                acted.entry(image.id.as_str()).or_insert((rule, why));
            }
        }
        for image in selected {
            shield.entry(image.id.as_str()).or_insert(rule.priority);
        }
    }

    let expired_by_rule: BTreeSet<&str> = acted
        .iter()
        .filter(|(_, (rule, _))| rule.action == RuleAction::Expire)
        .map(|(id, _)| *id)
        .collect();
    let transitioned_by_rule: BTreeSet<&str> = acted
        .iter()
        .filter(|(_, (rule, _))| matches!(rule.action, RuleAction::Transition(_)))
        .map(|(id, _)| *id)
        .collect();
    let parents = parents_of(&images);
    let referrers = referrers_of(&images);

    // Pinned: an image an index that stays standard still lists. Grows until the expired
    // set (rule decisions plus cascades, minus pinned) is consistent with it.
    let mut pinned: BTreeMap<&str, &str> = BTreeMap::new();
    let (expired, cascaded) = loop {
        let expired: BTreeSet<&str> = expired_by_rule
            .iter()
            .copied()
            .filter(|id| !pinned.contains_key(id))
            .collect();
        let cascaded = cascade(&expired, &referrers, &pinned);
        let gone = |id: &str| expired.contains(id) || cascaded.contains_key(id);
        let stays_standard = |id: &str| {
            !gone(id)
                && !transitioned_by_rule.contains(id)
                && images[id].storage_class == StorageClass::Standard
        };
        let mut newly = Vec::new();
        for id in expired
            .iter()
            .chain(cascaded.keys())
            .chain(transitioned_by_rule.iter())
        {
            if pinned.contains_key(id) {
                continue;
            }
            let keeper = parents.get(id).and_then(|ps| {
                ps.iter()
                    .find(|p| {
                        if transitioned_by_rule.contains(id) {
                            stays_standard(p)
                        } else {
                            !gone(p)
                        }
                    })
                    .copied()
            });
            if let Some(parent) = keeper {
                newly.push((*id, parent));
            }
        }
        if newly.is_empty() {
            break (expired, cascaded);
        }
        pinned.extend(newly);
    };

    let decisions = images
        .values()
        .map(|image| {
            let id = image.id.as_str();
            let (outcome, rule, reason) = if let Some(parent) = pinned.get(id) {
                let rule = acted.get(id).map(|(r, _)| r.priority);
                (
                    Outcome::Keep,
                    rule,
                    format!("listed by index {parent}, which stays: kept while it does"),
                )
            } else if expired.contains(id) {
                let (rule, why) = &acted[id];
                (Outcome::Expire, Some(rule.priority), why.clone())
            } else if let Some(subject) = cascaded.get(id) {
                (
                    Outcome::CascadeExpire,
                    None,
                    format!("refers to {subject}, which expires"),
                )
            } else if let Some((rule, why)) = acted.get(id) {
                let RuleAction::Transition(class) = rule.action else {
                    unreachable!("expiries are handled above")
                };
                (Outcome::Transition(class), Some(rule.priority), why.clone())
            } else if let Some(priority) = shield.get(id) {
                (
                    Outcome::Keep,
                    Some(*priority),
                    format!(
                        "selected by rule {priority} but within its limit; later rules do not apply"
                    ),
                )
            } else {
                (Outcome::Keep, None, "no rule selects it".to_owned())
            };
            Decision {
                id: id.to_owned(),
                outcome,
                rule,
                reason,
            }
        })
        .collect();
    Plan { decisions }
}

/// The images among `selected` that `rule`'s count criterion picks, with the reason.
fn hits<'a>(
    rule: &Rule,
    mut selected: Vec<&'a LifecycleImage>,
    now: SystemTime,
) -> Vec<(&'a LifecycleImage, String)> {
    let n = rule.count_number;
    let age_days = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let older = |image: &'a LifecycleImage, at: SystemTime, event: &str| {
        let age = age_days(at);
        (age > DAY * n).then(|| {
            (
                image,
                format!(
                    "rule {}: {event} {} days ago, more than {n}",
                    rule.priority,
                    age.as_secs() / DAY.as_secs()
                ),
            )
        })
    };
    match rule.count_type {
        CountType::ImageCountMoreThan => {
            // Newest first; archived images by when they were archived.
            let key = |i: &LifecycleImage| match rule.storage_class {
                StorageClass::Archive => i.archived_at.unwrap_or(i.pushed_at),
                StorageClass::Standard => i.pushed_at,
            };
            selected.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.id.cmp(&b.id)));
            let total = selected.len();
            selected
                .into_iter()
                .enumerate()
                .skip(n as usize)
                .map(|(rank, image)| {
                    (
                        image,
                        format!(
                            "rule {}: number {} of {total} selected images, newest first; it keeps {n}",
                            rule.priority,
                            rank + 1
                        ),
                    )
                })
                .collect()
        }
        CountType::SinceImagePushed => selected
            .into_iter()
            .filter_map(|i| older(i, i.pushed_at, "pushed"))
            .collect(),
        CountType::SinceImagePulled => selected
            .into_iter()
            .filter_map(|i| match i.last_pulled_at {
                Some(at) => older(i, at, "last pulled"),
                None => older(i, i.pushed_at, "never pulled; pushed"),
            })
            .collect(),
        CountType::SinceImageTransitioned => selected
            .into_iter()
            .filter_map(|i| older(i, i.archived_at.unwrap_or(i.pushed_at), "archived"))
            .collect(),
    }
}

/// For each image, the indexes in the inventory that list it.
fn parents_of<'a>(
    images: &BTreeMap<&'a str, &'a LifecycleImage>,
) -> HashMap<&'a str, Vec<&'a str>> {
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for image in images.values() {
        for child in &image.children {
            if let Some((child, _)) = images.get_key_value(child.as_str()) {
                parents.entry(child).or_default().push(image.id.as_str());
            }
        }
    }
    parents
}

/// For each image, the inventory's images whose subject it is.
fn referrers_of<'a>(
    images: &BTreeMap<&'a str, &'a LifecycleImage>,
) -> HashMap<&'a str, Vec<&'a str>> {
    let mut referrers: HashMap<&str, Vec<&str>> = HashMap::new();
    for image in images.values() {
        if let Some((subject, _)) = image
            .subject
            .as_deref()
            .and_then(|s| images.get_key_value(s))
        {
            referrers
                .entry(subject)
                .or_default()
                .push(image.id.as_str());
        }
    }
    referrers
}

/// Referrers of `expired` images, transitively (a signature of an SBOM of an image),
/// each with the subject it goes with; pinned images neither go nor pass it on.
fn cascade<'a>(
    expired: &BTreeSet<&'a str>,
    referrers: &HashMap<&'a str, Vec<&'a str>>,
    pinned: &BTreeMap<&'a str, &'a str>,
) -> BTreeMap<&'a str, &'a str> {
    let mut cascaded: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue: Vec<&str> = expired.iter().copied().collect();
    while let Some(subject) = queue.pop() {
        for referrer in referrers.get(subject).into_iter().flatten() {
            if expired.contains(referrer)
                || pinned.contains_key(referrer)
                || cascaded.contains_key(referrer)
            {
                continue;
            }
            cascaded.insert(referrer, subject);
            queue.push(referrer);
        }
    }
    cascaded
}
