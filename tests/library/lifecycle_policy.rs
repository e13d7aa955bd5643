//! Lifecycle policy validation: every rule ECR rejects is rejected, with a message that
//! names the rule and the field; valid policies from the ECR documentation parse.

use serde_json::{Value, json};
use wharf::{CountType, ErrorKind, LifecyclePolicy, RuleAction, StorageClass, TagStatus};

fn rule(priority: u32, selection: Value, action: Value) -> Value {
    json!({"rulePriority": priority, "selection": selection, "action": action})
}

fn expire() -> Value {
    json!({"type": "expire"})
}

fn parse(rules: Vec<Value>) -> wharf::Result<LifecyclePolicy> {
    LifecyclePolicy::parse(&json!({ "rules": rules }).to_string())
}

/// Asserts the policy is refused as PolicyInvalid, naming every fragment.
fn refused(rules: Vec<Value>, fragments: &[&str]) {
    let err = parse(rules.clone()).expect_err(&format!("accepted {rules:?}"));
    assert_eq!(err.kind(), ErrorKind::PolicyInvalid, "{err}");
    for fragment in fragments {
        assert!(
            err.message().contains(fragment),
            "message {:?} lacks {fragment:?}",
            err.message()
        );
    }
}

fn untagged_days(priority: u32, days: u32) -> Value {
    rule(
        priority,
        json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days}),
        expire(),
    )
}

#[test]
fn documented_policies_parse() {
    let policy = parse(vec![
        rule(
            1,
            json!({"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        ),
        rule(
            2,
            json!({"tagStatus": "tagged", "tagPrefixList": ["beta"], "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        ),
        untagged_days(3, 14),
        rule(
            4,
            json!({"tagStatus": "tagged", "tagPatternList": ["release-*"], "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90}),
            json!({"type": "transition", "targetStorageClass": "archive"}),
        ),
        rule(
            5,
            json!({"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365}),
            expire(),
        ),
        rule(
            10,
            json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 100}),
            expire(),
        ),
    ])
    .unwrap();
    let rules = policy.rules();
    assert_eq!(rules.len(), 6);
    assert_eq!(rules[0].tag_status, TagStatus::Tagged);
    assert_eq!(rules[1].tag_prefixes, ["beta"]);
    assert_eq!(rules[2].count_type, CountType::SinceImagePushed);
    assert_eq!(
        rules[3].action,
        RuleAction::Transition(StorageClass::Archive)
    );
    assert_eq!(rules[4].storage_class, StorageClass::Archive);
    assert_eq!(rules[5].priority, 10);
}

#[test]
fn rules_run_by_priority_not_by_position() {
    let policy = parse(vec![
        rule(
            7,
            json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}),
            expire(),
        ),
        untagged_days(2, 1),
    ])
    .unwrap();
    let order: Vec<u32> = policy.rules().iter().map(|r| r.priority).collect();
    assert_eq!(order, [2, 7]);
}

#[test]
fn document_shape_is_checked() {
    for (text, fragment) in [
        ("", "not a JSON document"),
        ("[]", "JSON object"),
        ("{}", "rules: required"),
        (r#"{"rules": {}}"#, "rules: must be an array"),
        (r#"{"rules": []}"#, "at least one rule"),
        (r#"{"rules": [1]}"#, "rule 1: must be a JSON object"),
        (r#"{"rules": [], "extra": 1}"#, "unknown field \"extra\""),
        (
            r#"{"rules": [{"rulePriority": 1, "rulePriority": 2}]}"#,
            "duplicate",
        ),
    ] {
        let err = LifecyclePolicy::parse(text).expect_err(text);
        assert_eq!(err.kind(), ErrorKind::PolicyInvalid);
        assert!(
            err.message().contains(fragment),
            "{text}: {:?} lacks {fragment:?}",
            err.message()
        );
    }
}

#[test]
fn priorities_must_be_present_positive_and_unique() {
    refused(
        vec![json!({"selection": {}, "action": expire()})],
        &["rule 1", "rulePriority: required"],
    );
    for bad in [json!(0), json!(-1), json!(1.5), json!("1")] {
        refused(
            vec![json!({"rulePriority": bad, "selection": {}, "action": expire()})],
            &["rule 1", "rulePriority", "at least 1"],
        );
    }
    refused(
        vec![untagged_days(3, 1), untagged_days(3, 2)],
        &[
            "rule 2 (rulePriority 3)",
            "rulePriority",
            "already used by rule 1",
        ],
    );
}

#[test]
fn tag_status_and_lists_must_agree() {
    refused(
        vec![rule(
            1,
            json!({"countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["rule 1 (rulePriority 1)", "selection.tagStatus", "required"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "some", "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["selection.tagStatus", "\"some\""],
    );
    // Tagged without a list.
    refused(
        vec![rule(
            4,
            json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &[
            "rule 1 (rulePriority 4)",
            "selection.tagPatternList",
            "required",
        ],
    );
    // Untagged (or any) with a list.
    for (status, list) in [
        ("untagged", "tagPrefixList"),
        ("untagged", "tagPatternList"),
        ("any", "tagPrefixList"),
        ("any", "tagPatternList"),
    ] {
        refused(
            vec![rule(
                1,
                json!({"tagStatus": status, list: ["v"], "countType": "imageCountMoreThan", "countNumber": 1}),
                expire(),
            )],
            &[&format!("selection.{list}"), "not allowed", status],
        );
    }
    // Both lists.
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "tagged", "tagPatternList": ["a*"], "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["not both"],
    );
    // Empty lists and empty entries.
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "tagged", "tagPatternList": [], "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["selection.tagPatternList", "must not be empty"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "tagged", "tagPrefixList": [""], "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["selection.tagPrefixList", "entries must not be empty"],
    );
}

#[test]
fn patterns_have_at_most_four_wildcards() {
    parse(vec![rule(
        1,
        json!({"tagStatus": "tagged", "tagPatternList": ["*test*1*2*3", "test*1*2*3*"], "countType": "imageCountMoreThan", "countNumber": 1}),
        expire(),
    )])
    .unwrap();
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "tagged", "tagPatternList": ["test*1*2*3*4*5*6"], "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["selection.tagPatternList", "6 wildcards", "at most 4"],
    );
}

#[test]
fn an_any_rule_must_come_last() {
    refused(
        vec![
            rule(
                1,
                json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}),
                expire(),
            ),
            untagged_days(2, 1),
        ],
        &[
            "rule 1 (rulePriority 1)",
            "tagStatus",
            "\"any\"",
            "highest rulePriority",
            "rule 2",
        ],
    );
    // Last among the rules of its storage class is enough.
    parse(vec![
        rule(
            1,
            json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}),
            expire(),
        ),
        rule(
            2,
            json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90}),
            expire(),
        ),
    ])
    .unwrap();
}

#[test]
fn count_unit_and_number_follow_the_count_type() {
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countNumber": 1}),
            expire(),
        )],
        &["selection.countType", "required"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "imageCountLessThan", "countNumber": 1}),
            expire(),
        )],
        &["selection.countType", "imageCountLessThan"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countUnit": "days", "countNumber": 1}),
            expire(),
        )],
        &["selection.countUnit", "not allowed", "imageCountMoreThan"],
    );
    for count_type in ["sinceImagePushed", "sinceImagePulled"] {
        refused(
            vec![rule(
                1,
                json!({"tagStatus": "untagged", "countType": count_type, "countNumber": 1}),
                expire(),
            )],
            &["selection.countUnit", "required"],
        );
        refused(
            vec![rule(
                1,
                json!({"tagStatus": "untagged", "countType": count_type, "countUnit": "hours", "countNumber": 1}),
                expire(),
            )],
            &["selection.countUnit", "\"hours\""],
        );
    }
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "imageCountMoreThan"}),
            expire(),
        )],
        &["selection.countNumber", "required"],
    );
    for bad in [json!(0), json!(-3), json!(2.5), json!("5")] {
        refused(
            vec![rule(
                1,
                json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": bad}),
                expire(),
            )],
            &["selection.countNumber", "at least 1"],
        );
    }
}

#[test]
fn actions_and_storage_classes_are_checked() {
    let selection =
        json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1});
    refused(
        vec![json!({"rulePriority": 1, "selection": selection})],
        &["rule 1 (rulePriority 1)", "action", "required"],
    );
    refused(
        vec![rule(1, selection.clone(), json!({"type": "delete"}))],
        &["action.type", "\"delete\""],
    );
    refused(
        vec![rule(1, selection.clone(), json!({}))],
        &["action.type", "required"],
    );
    refused(
        vec![rule(1, selection.clone(), json!({"type": "transition"}))],
        &["action.targetStorageClass", "required"],
    );
    refused(
        vec![rule(
            1,
            selection.clone(),
            json!({"type": "transition", "targetStorageClass": "glacier"}),
        )],
        &["action.targetStorageClass", "\"glacier\""],
    );
    refused(
        vec![rule(
            1,
            selection.clone(),
            json!({"type": "expire", "targetStorageClass": "archive"}),
        )],
        &["action.targetStorageClass", "only allowed"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "storageClass": "cold", "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &["selection.storageClass", "\"cold\""],
    );
    // Archived images can only be expired, and age from their transition.
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "imageCountMoreThan", "countNumber": 1}),
            json!({"type": "transition", "targetStorageClass": "archive"}),
        )],
        &["action.type", "only be expired"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}),
            expire(),
        )],
        &["selection.countType", "sinceImageTransitioned"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 1}),
            expire(),
        )],
        &["selection.countType", "storageClass \"archive\""],
    );
    // ECR keeps archived images 90 days at least, and says so when the policy is put.
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 89}),
            expire(),
        )],
        &["rule 1", "selection.countNumber", "89 days", "90 days"],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )],
        &[
            "selection.countType",
            "imageCountMoreThan",
            "sinceImageTransitioned",
        ],
    );
    // Pull age archives; it does not expire.
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30}),
            expire(),
        )],
        &["action.type", "sinceImagePulled", "only transition"],
    );
}

#[test]
fn rules_of_a_storage_class_select_different_images() {
    refused(
        vec![untagged_days(1, 1), untagged_days(2, 5)],
        &[
            "rule 2 (rulePriority 2)",
            "selection.tagStatus",
            "only one rule per storage class",
            "rule 1",
        ],
    );
    let tagged = |priority, list: Value| {
        rule(
            priority,
            json!({"tagStatus": "tagged", "tagPrefixList": list, "countType": "imageCountMoreThan", "countNumber": 1}),
            expire(),
        )
    };
    refused(
        vec![tagged(1, json!(["a", "b"])), tagged(2, json!(["b", "a"]))],
        &[
            "rule 2 (rulePriority 2)",
            "selection.tagPrefixList",
            "different tag lists",
        ],
    );
    parse(vec![tagged(1, json!(["a"])), tagged(2, json!(["a", "b"]))]).unwrap();
    // One untagged rule per class: standard and archive each may have one.
    parse(vec![
        untagged_days(1, 1),
        rule(
            2,
            json!({"tagStatus": "untagged", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 90}),
            expire(),
        ),
    ])
    .unwrap();
    let too_many: Vec<Value> = (1..=51)
        .map(|i| tagged(i, json!([format!("p{i}")])))
        .collect();
    refused(too_many, &["rules", "51 rules", "at most 50"]);
}

#[test]
fn unknown_fields_are_refused_where_they_are() {
    refused(
        vec![
            json!({"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}, "action": expire(), "enabled": true}),
        ],
        &["rule 1 (rulePriority 1)", "unknown field \"enabled\""],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1, "tagRegex": "x"}),
            expire(),
        )],
        &[
            "rule 1 (rulePriority 1): selection",
            "unknown field \"tagRegex\"",
        ],
    );
    refused(
        vec![rule(
            1,
            json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}),
            json!({"type": "expire", "after": 3}),
        )],
        &["action", "unknown field \"after\""],
    );
}

#[test]
fn the_second_rule_is_named_in_its_errors() {
    refused(
        vec![
            untagged_days(1, 1),
            rule(
                9,
                json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}),
                expire(),
            ),
        ],
        &["rule 2 (rulePriority 9)"],
    );
}
