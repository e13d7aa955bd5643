//! The lifecycle planner: worked cases in the style of the ECR documentation's examples,
//! and properties over random policies and inventories.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{Value, json};
use wharf::lifecycle::plan;
use wharf::{
    LifecycleImage, LifecycleInventory, LifecyclePolicy, Outcome, Plan, StorageClass, TagStatus,
};

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> SystemTime {
    UNIX_EPOCH + 20_000 * DAY
}

fn image(id: &str, tags: &[&str], days_ago: u64) -> LifecycleImage {
    LifecycleImage::new(id, tags, now() - DAY * days_ago as u32)
}

fn policy(rules: Value) -> LifecyclePolicy {
    LifecyclePolicy::parse(&json!({ "rules": rules }).to_string()).unwrap()
}

fn run(rules: Value, images: Vec<LifecycleImage>) -> Plan {
    plan(&policy(rules), &LifecycleInventory { images }, now())
}

#[test]
fn untagged_images_older_than_fourteen_days_expire() {
    let plan = run(
        json!([{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}}]),
        vec![
            image("a", &[], 20),
            image("b", &[], 14),
            image("c", &[], 3),
            image("d", &["latest"], 30),
        ],
    );
    // Exactly 14 days old is not older than 14 days.
    assert_eq!(plan.expired(), ["a"]);
    assert_eq!(plan.decision("d").unwrap().rule, None);
}

#[test]
fn keep_one_untagged_image() {
    let plan = run(
        json!([{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]),
        vec![
            image("a", &[], 3),
            image("b", &[], 2),
            image("c", &[], 1),
            image("t", &["v1"], 9),
        ],
    );
    assert_eq!(plan.expired(), ["a", "b"]);
}

#[test]
fn a_higher_priority_rule_shields_the_images_it_selects() {
    // Rule 1 keeps the newest prod image; rule 2 the newest beta image. Image B (prod and
    // beta) is selected by rule 1 and kept by it: rule 2 cannot expire it, though B is
    // not its newest beta image. A counts toward rule 2's limit though rule 1 expired it.
    let plan = run(
        json!([
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["prod"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
        ]),
        vec![
            image("A", &["beta-1", "prod-1"], 10),
            image("B", &["beta-2", "prod-2"], 9),
            image("C", &["beta-3"], 8),
        ],
    );
    assert_eq!(plan.expired(), ["A"]);
    assert_eq!(plan.decision("A").unwrap().rule, Some(1));
    assert_eq!(
        (
            plan.decision("B").unwrap().outcome,
            plan.decision("B").unwrap().rule
        ),
        (Outcome::Keep, Some(1))
    );
    assert_eq!(plan.decision("C").unwrap().outcome, Outcome::Keep);
}

#[test]
fn patterns_must_all_match_and_wildcards_are_anchored() {
    let plan = run(
        json!([{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*", "*-eu"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}}]),
        vec![
            image("both", &["prod", "v1-eu"], 5),
            image("prod-only", &["prod-1"], 5),
            image("eu-only", &["x-eu"], 5),
            image("one-tag-both", &["prod-eu"], 5),
            image("not-anchored", &["preprod", "a-eu-1"], 5),
        ],
    );
    assert_eq!(plan.expired(), ["both", "one-tag-both"]);
}

#[test]
fn an_any_rule_last_catches_what_is_left() {
    let plan = run(
        json!([
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["release-*"], "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}
        ]),
        vec![
            image("release-old", &["release-1"], 400),
            image("dev-old", &["dev"], 60),
            image("untagged-old", &[], 45),
            image("dev-new", &["dev-2"], 2),
        ],
    );
    // The old release is within rule 1's five; rule 2 may not touch it.
    assert_eq!(plan.expired(), ["dev-old", "untagged-old"]);
}

#[test]
fn pull_times_fall_back_to_push_times() {
    let mut pulled = image("pulled-recently", &["a"], 100);
    pulled.last_pulled_at = Some(now() - 2 * DAY);
    let mut stale = image("pulled-long-ago", &["b"], 100);
    stale.last_pulled_at = Some(now() - 40 * DAY);
    let plan = run(
        json!([{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30}, "action": {"type": "transition", "targetStorageClass": "archive"}}]),
        vec![
            pulled,
            stale,
            image("never-pulled-old", &[], 31),
            image("never-pulled-new", &[], 29),
        ],
    );
    assert_eq!(plan.transitioned(), ["never-pulled-old", "pulled-long-ago"]);
}

#[test]
fn transitions_and_archive_expiry() {
    let mut archived_long_ago = image("archived-long-ago", &["v1"], 500);
    archived_long_ago.storage_class = StorageClass::Archive;
    archived_long_ago.archived_at = Some(now() - 100 * DAY);
    let mut archived_recently = image("archived-recently", &["v2"], 500);
    archived_recently.storage_class = StorageClass::Archive;
    archived_recently.archived_at = Some(now() - 10 * DAY);
    // Not yet 90 days in the archive.
    let mut archived_sixty = image("archived-60-days", &["v5"], 500);
    archived_sixty.storage_class = StorageClass::Archive;
    archived_sixty.archived_at = Some(now() - 60 * DAY);
    let plan = run(
        json!([
            {"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 90}, "action": {"type": "transition", "targetStorageClass": "archive"}},
            {"rulePriority": 2, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90}, "action": {"type": "expire"}}
        ]),
        vec![
            image("old", &["v3"], 100),
            image("new", &["v4"], 10),
            archived_long_ago,
            archived_recently,
            archived_sixty,
        ],
    );
    assert_eq!(plan.transitioned(), ["old"]);
    assert_eq!(plan.expired(), ["archived-long-ago"]);
    assert_eq!(
        plan.decision("old").unwrap().outcome,
        Outcome::Transition(StorageClass::Archive)
    );
}

#[test]
fn index_children_are_protected_and_referrers_cascade() {
    let mut index = image("index", &["latest"], 50);
    index.children = vec!["amd64".into(), "arm64".into()];
    let mut signature = image("sig", &["sig-old"], 40);
    signature.subject = Some("old".into());
    let mut sbom_signature = image("sbom-sig", &[], 1);
    sbom_signature.subject = Some("sig".into());
    let plan = run(
        json!([
            {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
            {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}
        ]),
        vec![
            index,
            image("amd64", &[], 50),
            image("arm64", &[], 50),
            image("old", &["v1"], 30),
            image("new", &["v2"], 1),
            signature,
            sbom_signature,
        ],
    );
    assert_eq!(plan.expired(), ["old"]);
    // Transitively: the signature's own signature goes too.
    assert_eq!(plan.cascade_expired(), ["sbom-sig", "sig"]);
    let child = plan.decision("amd64").unwrap();
    assert_eq!(child.outcome, Outcome::Keep);
    assert!(
        child.reason.to_string().contains("index"),
        "{}",
        child.reason
    );
    let json = plan.to_json();
    assert_eq!(json["expired"], json!(["old"]));
    assert_eq!(json["cascade_expired"], json!(["sbom-sig", "sig"]));
    assert_eq!(json["decisions"].as_array().unwrap().len(), 7);
}

#[test]
fn children_of_an_expiring_index_may_go_with_it() {
    let mut index = image("index", &[], 50);
    index.children = vec!["child".into()];
    let plan = run(
        json!([{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}}]),
        vec![index, image("child", &[], 50)],
    );
    assert_eq!(plan.expired(), ["child", "index"]);
}

// ---- properties ----

const TAGS: &[&str] = &[
    "prod", "prod-1", "beta", "beta-2", "v1", "v2-eu", "latest", "dev-x",
];
const PATTERNS: &[&str] = &["prod*", "*-eu", "v*", "latest", "*", "beta*", "*1"];
const PREFIXES: &[&str] = &["prod", "beta", "v", "dev"];

fn arb_image(id: usize, total: usize) -> impl Strategy<Value = LifecycleImage> {
    (
        proptest::collection::btree_set(0..TAGS.len(), 0..3),
        0u64..400,
        proptest::option::of(0u64..400),
        proptest::bool::weighted(0.15),
        0u64..200,
        proptest::option::of(0..total.max(1)),
        proptest::collection::vec(0..total.max(1), 0..3),
    )
        .prop_map(
            move |(tags, pushed, pulled, archived, archived_days, subject, children)| {
                let mut image = LifecycleImage::new(
                    format!("i{id:02}"),
                    &tags.iter().map(|&t| TAGS[t]).collect::<Vec<_>>(),
                    now() - DAY * pushed as u32 - Duration::from_secs(id as u64),
                );
                image.last_pulled_at = pulled.map(|d| now() - DAY * d as u32);
                if archived {
                    image.storage_class = StorageClass::Archive;
                    image.archived_at = Some(now() - DAY * archived_days as u32);
                }
                image.subject = subject.filter(|&s| s != id).map(|s| format!("i{s:02}"));
                // Index children are older images, so no cycles.
                image.children = children
                    .into_iter()
                    .filter(|&c| c < id)
                    .map(|c| format!("i{c:02}"))
                    .collect();
                image
            },
        )
}

fn arb_inventory() -> impl Strategy<Value = LifecycleInventory> {
    (0usize..30).prop_flat_map(|n| {
        (0..n)
            .map(|id| arb_image(id, n))
            .collect::<Vec<_>>()
            .prop_map(|images| LifecycleInventory { images })
    })
}

fn arb_rule(priority: u32, last: bool) -> impl Strategy<Value = Value> {
    (
        0..if last { 3 } else { 2 },
        0..PATTERNS.len(),
        0..PREFIXES.len(),
        proptest::bool::ANY,
        0..3usize,
        1u32..6,
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            move |(
                status,
                pattern,
                prefix,
                use_prefix,
                count,
                number,
                archive_class,
                transition,
            )| {
                let mut selection = json!({});
                match status {
                    0 => {
                        selection["tagStatus"] = json!("tagged");
                        if use_prefix {
                            selection["tagPrefixList"] = json!([PREFIXES[prefix]]);
                        } else {
                            selection["tagPatternList"] = json!([PATTERNS[pattern]]);
                        }
                    }
                    1 => selection["tagStatus"] = json!("untagged"),
                    _ => selection["tagStatus"] = json!("any"),
                }
                let action = if archive_class {
                    selection["storageClass"] = json!("archive");
                    selection["countType"] = json!("sinceImageTransitioned");
                    selection["countUnit"] = json!("days");
                    json!({"type": "expire"})
                } else {
                    match count {
                        0 => selection["countType"] = json!("imageCountMoreThan"),
                        1 => {
                            selection["countType"] = json!("sinceImagePushed");
                            selection["countUnit"] = json!("days");
                        }
                        _ => {
                            selection["countType"] = json!("sinceImagePulled");
                            selection["countUnit"] = json!("days");
                        }
                    }
                    // Pull age only ever archives.
                    if transition || count == 2 {
                        json!({"type": "transition", "targetStorageClass": "archive"})
                    } else {
                        json!({"type": "expire"})
                    }
                };
                let by_count = count == 0 && !archive_class;
                // Archive expiry is at least ECR's 90 days.
                let days = if archive_class {
                    number * 40 + 50
                } else {
                    number * 40
                };
                selection["countNumber"] = json!(if by_count { number } else { days });
                json!({"rulePriority": priority, "selection": selection, "action": action})
            },
        )
}

fn arb_policy() -> impl Strategy<Value = LifecyclePolicy> {
    (1usize..5)
        .prop_flat_map(|n| {
            (0..n)
                .map(|i| arb_rule(i as u32 * 3 + 1, i + 1 == n))
                .collect::<Vec<_>>()
        })
        .prop_filter_map("ECR would refuse it", |rules| {
            LifecyclePolicy::parse(&json!({ "rules": rules }).to_string()).ok()
        })
}

fn selects(rule: &wharf::Rule, image: &LifecycleImage) -> bool {
    image.storage_class == rule.storage_class && rule.matches_tags(&image.tags)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn planner_invariants(policy in arb_policy(), inventory in arb_inventory()) {
        let plan = plan(&policy, &inventory, now());
        let image = |id: &str| inventory.images.iter().find(|i| i.id == id).unwrap();
        // One decision per image, sorted by id.
        prop_assert_eq!(plan.decisions.len(), inventory.images.len());
        prop_assert!(plan.decisions.windows(2).all(|w| w[0].id < w[1].id));

        for decision in &plan.decisions {
            let Some(priority) = decision.rule else { continue };
            if !matches!(decision.outcome, Outcome::Expire | Outcome::Transition(_)) {
                continue;
            }
            let rule = policy.rules().iter().find(|r| r.priority == priority).unwrap();
            let target = image(&decision.id);
            // Never acted on by a rule when a higher-priority rule selected it.
            for earlier in policy.rules().iter().filter(|r| r.priority < priority) {
                prop_assert!(!selects(earlier, target),
                    "{} acted on by rule {} though rule {} selects it", decision.id, priority, earlier.priority);
            }
            // The deciding rule selects it; untagged rules touch only untagged images.
            prop_assert!(selects(rule, target));
            if rule.tag_status == TagStatus::Untagged {
                prop_assert!(target.tags.is_empty());
            }
        }

        // Keep-N rules leave their N newest selected images alone.
        for rule in policy.rules().iter().filter(|r| r.count_type == wharf::CountType::ImageCountMoreThan) {
            let key = |i: &LifecycleImage| match rule.storage_class {
                StorageClass::Archive => i.archived_at.unwrap_or(i.pushed_at),
                StorageClass::Standard => i.pushed_at,
            };
            let mut selected: Vec<&LifecycleImage> =
                inventory.images.iter().filter(|i| selects(rule, i)).collect();
            selected.sort_by(|a, b| key(b).cmp(&key(a)).then(a.id.cmp(&b.id)));
            for kept in selected.iter().take(rule.count_number as usize) {
                let decision = plan.decision(&kept.id).unwrap();
                prop_assert!(!(decision.rule == Some(rule.priority)
                    && matches!(decision.outcome, Outcome::Expire | Outcome::Transition(_))),
                    "rule {} acted on {}, one of its {} newest", rule.priority, kept.id, rule.count_number);
            }
        }

        let gone = |id: &str| matches!(plan.decision(id).map(|d| d.outcome),
            Some(Outcome::Expire | Outcome::CascadeExpire));
        for img in &inventory.images {
            // Children of an index that stays are not expired.
            if !gone(&img.id) {
                for child in &img.children {
                    prop_assert!(!gone(child), "{} expired while index {} stays", child, img.id);
                }
            }
            // Referrers of an expired image go with it.
            if let Some(subject) = &img.subject
                && gone(subject)
                && !img.id.eq(subject)
            {
                let listed_by_staying_index = inventory.images.iter()
                    .any(|p| p.children.contains(&img.id) && !gone(&p.id));
                prop_assert!(gone(&img.id) || listed_by_staying_index,
                    "{} stays though its subject {} expires", img.id, subject);
            }
        }
        for id in plan.cascade_expired() {
            let subject = image(id).subject.clone().unwrap();
            prop_assert!(gone(&subject));
        }

        // Deterministic, whatever the order of the inventory.
        let mut reversed = inventory.clone();
        reversed.images.reverse();
        prop_assert_eq!(wharf::lifecycle::plan(&policy, &reversed, now()), plan);
    }
}

/// The multi-rule examples of the ECR documentation, with their documented outcomes.
#[test]
fn documented_examples() {
    // (policy rules, images as (id, tags, age in hours), expected expired)
    type Image = (&'static str, &'static [&'static str], u64);
    let cases: Vec<(Value, Vec<Image>, Vec<&str>)> = vec![
        // Multiple rules, example A: B is shielded by rule 1.
        (
            json!([
                {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
                {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["beta*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
            ]),
            vec![
                ("A", &["beta-1", "prod-1"], 240),
                ("B", &["beta-2", "prod-2"], 216),
                ("C", &["beta-3"], 192),
            ],
            vec!["A"],
        ),
        // Example B: the same repository, priorities swapped.
        (
            json!([
                {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["beta*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
                {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
            ]),
            vec![
                ("A", &["beta-1", "prod-1"], 240),
                ("B", &["beta-2", "prod-2"], 216),
                ("C", &["beta-3"], 192),
            ],
            vec!["A", "B"],
        ),
        // Multiple patterns are ANDed.
        (
            json!([{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["alpha*", "beta*"], "countType": "sinceImagePushed", "countNumber": 5, "countUnit": "days"}, "action": {"type": "expire"}}]),
            vec![
                ("A", &["alpha-1"], 288),
                ("B", &["beta-1"], 264),
                ("C", &["alpha-2", "beta-2"], 240),
                ("D", &["alpha-3"], 96),
                ("E", &["beta-3"], 72),
                ("F", &["alpha-4", "beta-4"], 48),
            ],
            vec!["C"],
        ),
        // Tags are not exclusive.
        (
            json!([{"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["alpha*", "beta*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]),
            vec![
                ("A", &["alpha-1", "beta-1", "gamma-1"], 240),
                ("B", &["alpha-2", "beta-2"], 216),
                ("C", &["alpha-3", "beta-3", "gamma-2"], 192),
            ],
            vec!["A", "B"],
        ),
        // All images, example A.
        (
            json!([{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]),
            vec![
                ("A", &["alpha-1"], 96),
                ("B", &["beta-1"], 72),
                ("C", &[], 48),
                ("D", &["alpha-2"], 24),
            ],
            vec!["A", "B", "C"],
        ),
        // All images, example B: E, exactly a day old and newer than D, is kept.
        (
            json!([
                {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["alpha*"], "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
                {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}, "action": {"type": "expire"}},
                {"rulePriority": 3, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
            ]),
            vec![
                ("A", &["alpha-1", "beta-1"], 96),
                ("B", &[], 72),
                ("C", &["alpha-2"], 48),
                ("D", &["git-hash"], 25),
                ("E", &[], 24),
            ],
            vec!["A", "B", "D"],
        ),
    ];
    for (number, (rules, images, expected)) in cases.into_iter().enumerate() {
        let images = images
            .into_iter()
            .map(|(id, tags, hours)| {
                LifecycleImage::new(id, tags, now() - Duration::from_secs(hours * 3600))
            })
            .collect();
        assert_eq!(
            run(rules, images).expired(),
            expected,
            "example {}",
            number + 1
        );
    }
}

/// The ECR evaluation written as plainly as possible, with no index or referrer rules:
/// for each rule, the images of its storage class its tags select, and of those the ones
/// its count criterion picks; then, by priority, each picked image gets the rule's action
/// unless an earlier rule acted on it or selected it.
fn reference_plan(
    policy: &LifecyclePolicy,
    images: &[LifecycleImage],
    now: SystemTime,
) -> (Vec<String>, Vec<String>) {
    let day = DAY.as_secs();
    let days_since = |t: SystemTime| now.duration_since(t).unwrap_or_default().as_secs();
    let mut acted: Vec<(String, bool)> = Vec::new();
    let mut selected_before: Vec<&str> = Vec::new();
    for rule in policy.rules() {
        let mut selected: Vec<&LifecycleImage> = images
            .iter()
            .filter(|i| i.storage_class == rule.storage_class && rule.matches_tags(&i.tags))
            .collect();
        let n = u64::from(rule.count_number);
        let picked: Vec<&LifecycleImage> = match rule.count_type {
            wharf::CountType::ImageCountMoreThan => {
                selected.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.id.cmp(&b.id)));
                selected.iter().skip(n as usize).copied().collect()
            }
            wharf::CountType::SinceImagePushed => selected
                .iter()
                .filter(|i| days_since(i.pushed_at) > n * day)
                .copied()
                .collect(),
            wharf::CountType::SinceImagePulled => selected
                .iter()
                .filter(|i| days_since(i.last_pulled_at.unwrap_or(i.pushed_at)) > n * day)
                .copied()
                .collect(),
            wharf::CountType::SinceImageTransitioned => selected
                .iter()
                .filter(|i| {
                    days_since(i.archived_at.unwrap_or(i.pushed_at))
                        > n.max(u64::from(wharf::MIN_ARCHIVE_DAYS)) * day
                })
                .copied()
                .collect(),
        };
        for image in picked {
            let taken = acted.iter().any(|(id, _)| id == &image.id)
                || selected_before.contains(&image.id.as_str());
            if !taken {
                let expire = matches!(rule.action, wharf::RuleAction::Expire);
                acted.push((image.id.clone(), expire));
            }
        }
        selected_before.extend(selected.iter().map(|i| i.id.as_str()));
    }
    let mut expired: Vec<String> = acted.iter().filter(|a| a.1).map(|a| a.0.clone()).collect();
    let mut transitioned: Vec<String> =
        acted.iter().filter(|a| !a.1).map(|a| a.0.clone()).collect();
    expired.sort();
    transitioned.sort();
    (expired, transitioned)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Without indexes and referrers, the planner decides exactly what the plain
    /// reading of ECR's rules decides.
    #[test]
    fn planner_matches_the_plain_reading(policy in arb_policy(), inventory in arb_inventory()) {
        let mut plain = inventory.clone();
        for image in &mut plain.images {
            image.children.clear();
            image.subject = None;
        }
        let plan = plan(&policy, &plain, now());
        let (expired, transitioned) = reference_plan(&policy, &plain.images, now());
        prop_assert_eq!(plan.expired(), expired);
        prop_assert_eq!(plan.transitioned(), transitioned);
        prop_assert!(plan.cascade_expired().is_empty());
    }
}
