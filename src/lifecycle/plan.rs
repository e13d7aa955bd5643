//! The planner: which images a policy expires, transitions or keeps, and why.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::inventory::{LifecycleImage, LifecycleInventory};
use super::policy::{CountType, LifecyclePolicy, Rule, RuleAction, StorageClass};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The least time ECR keeps an image in the archive storage class before a lifecycle
/// rule may expire it.
pub const MIN_ARCHIVE_DAYS: u32 = 90;

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
    /// Why; its `Display` says it in words.
    pub reason: Reason,
}

/// Why the planner decided as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No rule's tag requirements select the image.
    NoRule,
    /// A rule selected it but did not act on it; later rules cannot.
    Shielded {
        /// That rule's priority.
        rule: u32,
    },
    /// A keep-N rule: the image is number `rank` (from 1) of `total`, newest first.
    Rank {
        /// The rule's priority.
        rule: u32,
        /// Its place, newest first, from 1.
        rank: usize,
        /// How many images the rule selected.
        total: usize,
        /// How many the rule keeps.
        keeps: u32,
    },
    /// An age rule: the event happened `days` whole days ago, more than `limit`.
    Age {
        /// The rule's priority.
        rule: u32,
        /// "pushed", "last pulled", "never pulled; pushed" or "archived".
        event: &'static str,
        /// Whole days since.
        days: u64,
        /// The rule's `countNumber`.
        limit: u32,
    },
    /// An index that stays lists the image.
    ListedBy {
        /// The index.
        index: String,
    },
    /// The image refers to one that expires.
    SubjectExpires {
        /// That image.
        subject: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoRule => f.write_str("no rule selects it"),
            Self::Shielded { rule } => write!(
                f,
                "selected by rule {rule}, which does not act on it; later rules do not apply"
            ),
            Self::Rank {
                rule,
                rank,
                total,
                keeps,
            } => write!(
                f,
                "rule {rule}: number {rank} of {total} selected images, newest first; it keeps {keeps}"
            ),
            Self::Age {
                rule,
                event,
                days,
                limit,
            } => write!(f, "rule {rule}: {event} {days} days ago, more than {limit}"),
            Self::ListedBy { index } => {
                write!(
                    f,
                    "listed by index {index}, which stays: kept while it does"
                )
            }
            Self::SubjectExpires { subject } => write!(f, "refers to {subject}, which expires"),
        }
    }
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
                    "reason": d.reason.to_string(),
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
/// "keep N"; each image gets at most one action. Then: children of an image index are
/// not expired while the index is not, nor archived while the index stays standard;
/// referrers of an expired image go with it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use wharf::lifecycle::plan;
/// use wharf::{LifecycleImage, LifecycleInventory, LifecyclePolicy};
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
    let images = Images::new(inventory);
    let ruled = run_rules(policy, &images, now);
    let settled = settle(&images, &ruled);
    let decisions = (0..images.by_id.len())
        .map(|at| decide(at, &images, &ruled, &settled))
        .collect();
    Plan { decisions }
}

/// What the rules decided, per image (by position in `Images::by_id`).
struct Ruled<'p> {
    /// The first rule that selected the image.
    shield: Vec<Option<u32>>,
    /// The rule that acted on it, with the reason.
    acted: Vec<Option<(&'p Rule, Why)>>,
}

impl Ruled<'_> {
    fn acted_with(&self, at: usize, action: impl Fn(RuleAction) -> bool) -> bool {
        self.acted[at].is_some_and(|(rule, _)| action(rule.action))
    }
}

/// Runs the rules by priority: each selects by storage class and tags, acts on what its
/// count criterion picks among images no earlier rule selected, and shields what it
/// selected from later rules.
fn run_rules<'p>(policy: &'p LifecyclePolicy, images: &Images<'_>, now: SystemTime) -> Ruled<'p> {
    let n = images.by_id.len();
    let mut ruled = Ruled {
        shield: vec![None; n],
        acted: vec![None; n],
    };
    // One pass over the images (each image's tags read once, while in cache): which
    // rules' tag requirements select it.
    let rules = policy.rules();
    let filters: Vec<_> = rules.iter().map(Rule::tag_filter).collect();
    let mut matched: Vec<bool> = Vec::with_capacity(n * rules.len());
    for image in &images.by_id {
        matched.extend(rules.iter().zip(&filters).map(|(rule, filter)| {
            image.storage_class == rule.storage_class && filter.matches(&image.tags)
        }));
    }
    let mut selected: Vec<usize> = Vec::new();
    for (k, rule) in rules.iter().enumerate() {
        let order = match (rule.count_type, rule.storage_class) {
            (CountType::ImageCountMoreThan, StorageClass::Standard) => images.newest_pushed(),
            (CountType::ImageCountMoreThan, StorageClass::Archive) => images.newest_archived(),
            _ => images.ids(),
        };
        selected.clear();
        selected.extend(
            order
                .iter()
                .copied()
                .filter(|&at| matched[at * rules.len() + k]),
        );
        let total = selected.len();
        for (rank, &at) in selected.iter().enumerate() {
            if ruled.shield[at].is_none()
                && ruled.acted[at].is_none()
                && let Some(why) = hit(rule, images.get(at), rank, total, now)
            {
                ruled.acted[at] = Some((rule, why));
            }
        }
        for &at in &selected {
            ruled.shield[at].get_or_insert(rule.priority);
        }
    }
    ruled
}

/// The rules' decisions after indexes and referrers have their say.
struct Settled {
    /// Kept because an index that stays still lists it (with that index).
    pinned: Vec<Option<usize>>,
    /// Expired by a rule and not pinned.
    expired: Vec<bool>,
    /// Expiring with its subject (the subject).
    cascaded: Vec<Option<usize>>,
}

/// Pins images that an index which stays still lists, growing the pinned set until the
/// expired set (rule decisions plus cascades, minus pinned) agrees with it.
fn settle(images: &Images<'_>, ruled: &Ruled<'_>) -> Settled {
    let n = images.by_id.len();
    let expired_by_rule: Vec<bool> = (0..n)
        .map(|at| ruled.acted_with(at, |action| action == RuleAction::Expire))
        .collect();
    let transitioned_by_rule: Vec<bool> = (0..n)
        .map(|at| ruled.acted_with(at, |action| matches!(action, RuleAction::Transition(_))))
        .collect();
    let parents = images.parents();
    let referrers = images.referrers();
    let mut pinned: Vec<Option<usize>> = vec![None; n];
    loop {
        let expired: Vec<bool> = (0..n)
            .map(|at| expired_by_rule[at] && pinned[at].is_none())
            .collect();
        let cascaded = cascade(&expired, &referrers, &pinned);
        let gone = |at: usize| expired[at] || cascaded[at].is_some();
        let stays_standard = |at: usize| {
            !gone(at)
                && !transitioned_by_rule[at]
                && images.get(at).storage_class == StorageClass::Standard
        };
        let mut newly = Vec::new();
        for &at in parents.keys() {
            if pinned[at].is_some() || !(gone(at) || transitioned_by_rule[at]) {
                continue;
            }
            let keeper = parents[&at].iter().copied().find(|&p| {
                if transitioned_by_rule[at] && !gone(at) {
                    stays_standard(p)
                } else {
                    !gone(p)
                }
            });
            if let Some(parent) = keeper {
                newly.push((at, parent));
            }
        }
        if newly.is_empty() {
            return Settled {
                pinned,
                expired,
                cascaded,
            };
        }
        for (at, parent) in newly {
            pinned[at] = Some(parent);
        }
    }
}

/// The decision on the image at `at`, with the rule and the reason.
fn decide(at: usize, images: &Images<'_>, ruled: &Ruled<'_>, settled: &Settled) -> Decision {
    let id = images.get(at).id.clone();
    let (outcome, rule, reason) = if let Some(parent) = settled.pinned[at] {
        let index = images.get(parent).id.clone();
        let rule = ruled.acted[at].map(|(r, _)| r.priority);
        (Outcome::Keep, rule, Reason::ListedBy { index })
    } else if settled.expired[at] {
        let (rule, why) = ruled.acted[at].expect("expired by a rule");
        (Outcome::Expire, Some(rule.priority), why.reason(rule))
    } else if let Some(subject) = settled.cascaded[at] {
        let subject = images.get(subject).id.clone();
        (
            Outcome::CascadeExpire,
            None,
            Reason::SubjectExpires { subject },
        )
    } else if let Some((rule, why)) = ruled.acted[at] {
        let RuleAction::Transition(class) = rule.action else {
            unreachable!("expiries are handled above")
        };
        (
            Outcome::Transition(class),
            Some(rule.priority),
            why.reason(rule),
        )
    } else if let Some(rule) = ruled.shield[at] {
        (Outcome::Keep, Some(rule), Reason::Shielded { rule })
    } else {
        (Outcome::Keep, None, Reason::NoRule)
    };
    Decision {
        id,
        outcome,
        rule,
        reason,
    }
}

/// Why a rule acts on an image, kept small until the reason is written out.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// Number `rank` (from 0) of `total` selected images, newest first.
    Rank { rank: usize, total: usize },
    /// The event happened `days` whole days ago.
    Age { days: u64, event: &'static str },
}

impl Why {
    fn reason(self, rule: &Rule) -> Reason {
        match self {
            Why::Rank { rank, total } => Reason::Rank {
                rule: rule.priority,
                rank: rank + 1,
                total,
                keeps: rule.count_number,
            },
            Why::Age { days, event } => Reason::Age {
                rule: rule.priority,
                event,
                days,
                limit: rule.count_number,
            },
        }
    }
}

/// Whether `rule`'s count criterion picks `image`, number `rank` of the `total` it
/// selected in the order the count type uses.
fn hit(
    rule: &Rule,
    image: &LifecycleImage,
    rank: usize,
    total: usize,
    now: SystemTime,
) -> Option<Why> {
    let n = rule.count_number;
    let older = |at: SystemTime, event: &'static str| {
        let age = now.duration_since(at).unwrap_or_default();
        // An image exactly n days old is kept.
        (age > DAY * n).then(|| Why::Age {
            days: age.as_secs() / DAY.as_secs(),
            event,
        })
    };
    match rule.count_type {
        CountType::ImageCountMoreThan => (rank >= n as usize).then_some(Why::Rank { rank, total }),
        CountType::SinceImagePushed => older(image.pushed_at, "pushed"),
        CountType::SinceImagePulled => match image.last_pulled_at {
            Some(at) => older(at, "last pulled"),
            None => older(image.pushed_at, "never pulled; pushed"),
        },
        CountType::SinceImageTransitioned => {
            // ECR keeps archived images at least 90 days whatever the rule says.
            let age = now
                .duration_since(image.archived_at.unwrap_or(image.pushed_at))
                .unwrap_or_default();
            (age > DAY * n.max(MIN_ARCHIVE_DAYS)).then(|| Why::Age {
                days: age.as_secs() / DAY.as_secs(),
                event: "archived",
            })
        }
    }
}

/// The inventory's images by position, in the orders the rules need.
struct Images<'a> {
    /// Sorted by id.
    by_id: Vec<&'a LifecycleImage>,
    ids: Vec<usize>,
    newest_pushed: Vec<usize>,
    newest_archived: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Images<'a> {
    fn new(inventory: &'a LifecycleInventory) -> Self {
        let mut by_id: Vec<&LifecycleImage> = inventory.images.iter().collect();
        // A registry's inventory comes sorted already.
        if !by_id.is_sorted_by(|a, b| a.id < b.id) {
            by_id.sort_by(|a, b| a.id.cmp(&b.id));
            by_id.dedup_by(|a, b| a.id == b.id);
        }
        let ids: Vec<usize> = (0..by_id.len()).collect();
        Self {
            newest_pushed: newest_first(by_id.iter().map(|i| i.pushed_at)),
            by_id,
            ids,
            newest_archived: std::cell::OnceCell::new(),
        }
    }

    fn get(&self, at: usize) -> &'a LifecycleImage {
        self.by_id[at]
    }

    fn ids(&self) -> &[usize] {
        &self.ids
    }

    fn newest_pushed(&self) -> &[usize] {
        &self.newest_pushed
    }

    fn newest_archived(&self) -> &[usize] {
        self.newest_archived.get_or_init(|| {
            newest_first(
                self.by_id
                    .iter()
                    .map(|i| i.archived_at.unwrap_or(i.pushed_at)),
            )
        })
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.by_id.binary_search_by(|i| i.id.as_str().cmp(id)).ok()
    }

    /// For each image, the indexes in the inventory that list it.
    fn parents(&self) -> HashMap<usize, Vec<usize>> {
        let mut parents: HashMap<usize, Vec<usize>> = HashMap::new();
        for (at, image) in self.by_id.iter().enumerate() {
            for child in &image.children {
                if let Some(child) = self.position(child) {
                    parents.entry(child).or_default().push(at);
                }
            }
        }
        parents
    }

    /// For each image, the images whose subject it is.
    fn referrers(&self) -> HashMap<usize, Vec<usize>> {
        let mut referrers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (at, image) in self.by_id.iter().enumerate() {
            if let Some(subject) = image.subject.as_deref().and_then(|s| self.position(s)) {
                referrers.entry(subject).or_default().push(at);
            }
        }
        referrers
    }
}

/// Positions ordered by `times`, newest first; ties go to the smaller position (id), so
/// the order is deterministic.
fn newest_first(times: impl Iterator<Item = SystemTime>) -> Vec<usize> {
    let mut keyed: Vec<(SystemTime, usize)> = times.enumerate().map(|(at, t)| (t, at)).collect();
    keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, at)| at).collect()
}

/// Referrers of `expired` images, transitively (a signature of an SBOM of an image),
/// each with the subject it goes with; pinned images neither go nor pass it on.
fn cascade(
    expired: &[bool],
    referrers: &HashMap<usize, Vec<usize>>,
    pinned: &[Option<usize>],
) -> Vec<Option<usize>> {
    let mut cascaded: Vec<Option<usize>> = vec![None; expired.len()];
    let mut queue: Vec<usize> = (0..expired.len()).filter(|&at| expired[at]).collect();
    while let Some(subject) = queue.pop() {
        for &referrer in referrers.get(&subject).into_iter().flatten() {
            if expired[referrer] || pinned[referrer].is_some() || cascaded[referrer].is_some() {
                continue;
            }
            cascaded[referrer] = Some(subject);
            queue.push(referrer);
        }
    }
    cascaded
}
