//! IAM's evaluation rules, worked case by case: explicit deny beats any allow, `Not`
//! elements, wildcards, each condition operator with its qualifiers and `IfExists`,
//! missing keys and variables; and properties over random statements: a Deny never
//! grants, an Allow never takes access away, order never matters.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use wharf::access::{
    Action, Arn, Basis, Context, Identity, Policy, PolicySource, Principal, Request, evaluate,
};

const ACCOUNT: &str = "123456789012";

fn repo(name: &str) -> Arn {
    Arn::repository("us-east-1", ACCOUNT, name)
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn identity_policy(statements: &str) -> Policy {
    Policy::identity(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#
    ))
    .unwrap()
}

fn repository_policy(statements: &str) -> Policy {
    Policy::repository(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#
    ))
    .unwrap()
}

fn user(name: &str, policies: &[&str]) -> Principal {
    let mut identity = Identity::user(ACCOUNT, name).with_tag("team", "platform");
    for statements in policies {
        identity = identity.with_policy(identity_policy(statements));
    }
    Principal::Identity(identity)
}

fn decide(
    principal: &Principal,
    action: Action,
    resource: &Arn,
    context: &Context,
    repository: Option<&Policy>,
) -> wharf::access::Decision {
    evaluate(
        &Request {
            principal,
            action,
            resource,
            context,
        },
        repository,
    )
}

fn allowed(
    principal: &Principal,
    action: Action,
    resource: &Arn,
    repository: Option<&Policy>,
) -> bool {
    decide(principal, action, resource, &Context::at(now()), repository).allowed()
}

const PULL_ALL: &str = r#"{"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "*"}"#;

#[test]
fn nothing_allows_by_default() {
    let alice = user("alice", &[]);
    let decision = decide(
        &alice,
        Action::BatchGetImage,
        &repo("app"),
        &Context::at(now()),
        None,
    );
    assert_eq!(decision.basis, Basis::NoAllow);
    assert!(!allowed(
        &Principal::Anonymous,
        Action::BatchGetImage,
        &repo("app"),
        None
    ));
}

#[test]
fn an_identity_allow_grants_and_names_its_statement() {
    let alice = user(
        "alice",
        &[r#"{"Sid": "Pull", "Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}"#],
    );
    let decision = decide(
        &alice,
        Action::BatchGetImage,
        &repo("app"),
        &Context::at(now()),
        None,
    );
    match decision.basis {
        Basis::Allowed(found) => {
            assert_eq!(found.source, PolicySource::Identity(0));
            assert_eq!(found.sid.as_deref(), Some("Pull"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!allowed(&alice, Action::PutImage, &repo("app"), None));
}

#[test]
fn an_explicit_deny_beats_every_allow_wherever_it_is() {
    let alice = user("alice", &[PULL_ALL]);
    let deny = repository_policy(
        r#"{"Sid": "NoAlice", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"}, "Action": "ecr:*"}"#,
    );
    let decision = decide(
        &alice,
        Action::BatchGetImage,
        &repo("app"),
        &Context::at(now()),
        Some(&deny),
    );
    match decision.basis {
        Basis::ExplicitDeny(found) => {
            assert_eq!(found.source, PolicySource::Repository);
            assert_eq!(found.sid.as_deref(), Some("NoAlice"));
        }
        other => panic!("{other:?}"),
    }
    // A deny in an identity policy beats the repository's allow.
    let bob = user(
        "bob",
        &[r#"{"Effect": "Deny", "Action": "ecr:PutImage", "Resource": "*"}"#],
    );
    let open = repository_policy(r#"{"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}"#);
    assert!(!allowed(&bob, Action::PutImage, &repo("app"), Some(&open)));
    assert!(allowed(
        &bob,
        Action::BatchGetImage,
        &repo("app"),
        Some(&open)
    ));
}

#[test]
fn anonymous_callers_need_a_public_statement() {
    let public = repository_policy(
        r#"{"Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}"#,
    );
    let aws_star = repository_policy(
        r#"{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "ecr:BatchGetImage"}"#,
    );
    let account = repository_policy(
        r#"{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "ecr:BatchGetImage"}"#,
    );
    let anyone = Principal::Anonymous;
    assert!(allowed(
        &anyone,
        Action::BatchGetImage,
        &repo("app"),
        Some(&public)
    ));
    assert!(!allowed(
        &anyone,
        Action::PutImage,
        &repo("app"),
        Some(&public)
    ));
    assert!(allowed(
        &anyone,
        Action::BatchGetImage,
        &repo("app"),
        Some(&aws_star)
    ));
    assert!(!allowed(
        &anyone,
        Action::BatchGetImage,
        &repo("app"),
        Some(&account)
    ));
    // The account's principals get in through the account.
    assert!(allowed(
        &user("carol", &[]),
        Action::BatchGetImage,
        &repo("app"),
        Some(&account)
    ));
    let other = Principal::Identity(Identity::user("999999999999", "mallory"));
    assert!(!allowed(
        &other,
        Action::BatchGetImage,
        &repo("app"),
        Some(&account)
    ));
}

#[test]
fn not_principal_not_action_and_not_resource_invert_their_lists() {
    let policy = repository_policy(
        r#"{"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::123456789012:user/mallory"}, "NotAction": "ecr:BatchDeleteImage"}"#,
    );
    assert!(allowed(
        &user("alice", &[]),
        Action::PutImage,
        &repo("app"),
        Some(&policy)
    ));
    assert!(!allowed(
        &user("alice", &[]),
        Action::BatchDeleteImage,
        &repo("app"),
        Some(&policy)
    ));
    assert!(!allowed(
        &user("mallory", &[]),
        Action::PutImage,
        &repo("app"),
        Some(&policy)
    ));
    // Anonymous is not in the list, so NotPrincipal includes it.
    assert!(allowed(
        &Principal::Anonymous,
        Action::PutImage,
        &repo("app"),
        Some(&policy)
    ));
    let alice = user(
        "alice",
        &[
            r#"{"Effect": "Allow", "Action": "ecr:*", "NotResource": "arn:aws:ecr:*:*:repository/prod/*"}"#,
        ],
    );
    assert!(allowed(&alice, Action::PutImage, &repo("dev/app"), None));
    assert!(!allowed(&alice, Action::PutImage, &repo("prod/app"), None));
}

#[test]
fn actions_match_with_wildcards_ignoring_case_and_resources_with_wildcards() {
    let alice = user(
        "alice",
        &[
            r#"{"Effect": "Allow", "Action": ["ECR:get*", "ecr:Batch?etImage"], "Resource": "arn:aws:ecr:us-east-?:123456789012:repository/team/*"}"#,
        ],
    );
    assert!(allowed(
        &alice,
        Action::GetDownloadUrlForLayer,
        &repo("team/app"),
        None
    ));
    assert!(allowed(
        &alice,
        Action::BatchGetImage,
        &repo("team/app"),
        None
    ));
    assert!(!allowed(
        &alice,
        Action::BatchDeleteImage,
        &repo("team/app"),
        None
    ));
    assert!(!allowed(
        &alice,
        Action::BatchGetImage,
        &repo("other/app"),
        None
    ));
    assert!(!allowed(
        &alice,
        Action::BatchGetImage,
        &Arn::repository("eu-west-1", ACCOUNT, "team/app"),
        None
    ));
}

#[test]
fn policy_variables_stand_for_the_callers_values() {
    let policy = r#"{"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:*:*:repository/home/${aws:username}/*"}"#;
    let alice = user("alice", &[policy]);
    assert!(allowed(
        &alice,
        Action::PutImage,
        &repo("home/alice/app"),
        None
    ));
    assert!(!allowed(
        &alice,
        Action::PutImage,
        &repo("home/bob/app"),
        None
    ));
    // In the older version the text is literal.
    let literal = Policy::identity(
        r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:*:*:repository/home/${aws:username}/*"}}"#,
    )
    .unwrap();
    let alice = Principal::Identity(Identity::user(ACCOUNT, "alice").with_policy(literal));
    assert!(!allowed(
        &alice,
        Action::PutImage,
        &repo("home/alice/app"),
        None
    ));
    // A role has no aws:username: the resource matches nothing.
    let role =
        Principal::Identity(Identity::role(ACCOUNT, "ci").with_policy(identity_policy(policy)));
    assert!(!allowed(
        &role,
        Action::PutImage,
        &repo("home/ci/app"),
        None
    ));
}

/// `Condition` blocks against contexts: (condition, context keys, allowed).
#[test]
fn condition_operators_qualifiers_and_missing_keys() {
    let ip = |text: &str| {
        let mut c = Context::at(now());
        c.source_ip(text.parse::<IpAddr>().unwrap());
        c
    };
    let none = Context::at(now());
    let tags = |values: &[&str]| {
        let mut c = Context::at(now());
        c.set_all(
            "aws:TagKeys",
            values.iter().map(|v| v.to_string()).collect(),
        );
        c
    };
    let secure = |on: bool| {
        let mut c = Context::at(now());
        c.secure_transport(on);
        c
    };
    let cases: Vec<(&str, Context, bool)> = vec![
        (
            r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            ip("10.1.2.3"),
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            ip("192.168.0.1"),
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": ["192.168.0.0/16", "10.0.0.0/8"]}}"#,
            ip("10.0.0.1"),
            true,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": ["192.168.0.0/16", "10.0.0.0/8"]}}"#,
            ip("10.0.0.1"),
            false,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            ip("8.8.8.8"),
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            ip("2001:db8::1"),
            true,
        ),
        // A missing key fails a condition, holds a negated one and an IfExists one.
        (
            r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            ip("8.8.8.8"),
            false,
        ),
        (r#"{"Null": {"aws:SourceIp": "true"}}"#, none.clone(), true),
        (
            r#"{"Null": {"aws:SourceIp": "true"}}"#,
            ip("8.8.8.8"),
            false,
        ),
        (
            r#"{"Null": {"aws:SourceIp": "false"}}"#,
            ip("8.8.8.8"),
            true,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
            secure(true),
            true,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": true}}"#,
            secure(false),
            false,
        ),
        (
            r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"StringEquals": {"aws:username": "alice"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringEquals": {"aws:username": "Alice"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringNotEquals": {"aws:username": ["bob", "carol"]}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringNotEquals": {"aws:username": ["bob", "alice"]}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/al*"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringNotLike": {"aws:PrincipalArn": "*:role/*"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringEquals": {"aws:PrincipalTag/team": "platform"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringEquals": {"aws:PrincipalTag/team": "${aws:PrincipalTag/team}"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringEquals": {"aws:PrincipalTag/team": "${aws:PrincipalTag/missing}"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"StringEquals": {"aws:PrincipalTag/team": "${aws:PrincipalTag/missing, 'platform'}"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"StringEquals": {"aws:PrincipalType": "User"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/alice"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"NumericLessThan": {"aws:EpochTime": 1780000001}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"NumericLessThan": {"aws:EpochTime": 1780000000}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"NumericLessThanEquals": {"aws:EpochTime": 1780000000}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"NumericGreaterThan": {"aws:EpochTime": "1779999999.5"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals": {"aws:EpochTime": 1780000001}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"NumericEquals": {"aws:EpochTime": 1780000000}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"NumericNotEquals": {"aws:EpochTime": 1780000000}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "2026-12-31T00:00:00Z"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2026-12-31"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "1780000000"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"DateEquals": {"aws:CurrentTime": "2026-05-28T20:26:40Z"}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"DateNotEquals": {"aws:CurrentTime": "2026-05-28T20:26:40Z"}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"DateLessThanEquals": {"aws:EpochTime": "2026-05-28T20:26:40Z"}}"#,
            none.clone(),
            true,
        ),
        // Set qualifiers over a multivalued key.
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}"#,
            tags(&["team", "env"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}"#,
            tags(&["team", "owner"]),
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}"#,
            none.clone(),
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["owner"]}}"#,
            tags(&["team", "owner"]),
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["owner"]}}"#,
            tags(&["team"]),
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["owner"]}}"#,
            none.clone(),
            false,
        ),
        (
            r#"{"ForAllValues:StringNotLike": {"aws:TagKeys": ["secret*"]}}"#,
            tags(&["team", "env"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringNotLike": {"aws:TagKeys": ["secret*"]}}"#,
            tags(&["team", "secret-x"]),
            false,
        ),
        // Operators and keys all hold together.
        (
            r#"{"StringEquals": {"aws:username": "alice", "aws:PrincipalType": "User"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            ip("10.0.0.1"),
            true,
        ),
        (
            r#"{"StringEquals": {"aws:username": "alice", "aws:PrincipalType": "Role"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            ip("10.0.0.1"),
            false,
        ),
    ];
    for (condition, context, want) in cases {
        let alice = user(
            "alice",
            &[&format!(
                r#"{{"Effect": "Allow", "Action": "ecr:*", "Resource": "*", "Condition": {condition}}}"#
            )],
        );
        let got = decide(&alice, Action::BatchGetImage, &repo("app"), &context, None).allowed();
        assert_eq!(got, want, "{condition} with {context:?}");
    }
}

#[test]
fn a_source_address_condition_in_a_repository_policy() {
    let policy = repository_policy(
        r#"{"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage", "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}"#,
    );
    let mut inside = Context::at(now());
    inside.source_ip("192.0.2.9".parse().unwrap());
    let mut outside = Context::at(now());
    outside.source_ip("198.51.100.1".parse().unwrap());
    let anyone = Principal::Anonymous;
    assert!(
        decide(
            &anyone,
            Action::BatchGetImage,
            &repo("app"),
            &inside,
            Some(&policy)
        )
        .allowed()
    );
    assert!(
        !decide(
            &anyone,
            Action::BatchGetImage,
            &repo("app"),
            &outside,
            Some(&policy)
        )
        .allowed()
    );
}

// ---- properties over random statements ----

fn statement() -> impl Strategy<Value = String> {
    let effect = prop::sample::select(vec!["Allow", "Deny"]);
    let action = prop::sample::select(vec![
        "\"ecr:*\"",
        "\"ecr:BatchGetImage\"",
        "\"ecr:PutImage\"",
        "\"ecr:Get*\"",
        "[\"ecr:PutImage\", \"ecr:BatchDeleteImage\"]",
        "\"*\"",
    ]);
    let not_action = any::<bool>();
    let resource = prop::sample::select(vec![
        "*",
        "arn:aws:ecr:*:123456789012:repository/team/*",
        "arn:aws:ecr:*:*:repository/app",
        "arn:aws:ecr:us-east-1:123456789012:repository/*/app",
    ]);
    let condition = prop::sample::select(vec![
        "",
        r#", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
        r#", "Condition": {"StringEquals": {"aws:username": "alice"}}"#,
        r#", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.9.0.0/16"}}"#,
        r#", "Condition": {"Bool": {"aws:SecureTransport": "true"}}"#,
    ]);
    (effect, action, not_action, resource, condition).prop_map(|(e, a, not, r, c)| {
        let action = if not { "NotAction" } else { "Action" };
        format!(r#"{{"Effect": "{e}", "{action}": {a}, "Resource": "{r}"{c}}}"#)
    })
}

fn requests() -> Vec<(Action, Arn, Context)> {
    let mut out = Vec::new();
    for action in [
        Action::BatchGetImage,
        Action::PutImage,
        Action::BatchDeleteImage,
        Action::GetDownloadUrlForLayer,
    ] {
        for name in ["team/app", "app", "x/app"] {
            for source in ["10.1.1.1", "10.9.0.1", "8.8.8.8"] {
                let mut context = Context::at(now());
                context.source_ip(source.parse().unwrap());
                context.secure_transport(source != "8.8.8.8");
                out.push((action, repo(name), context));
            }
        }
    }
    out
}

fn access(statements: &[String]) -> Vec<bool> {
    let principal = if statements.is_empty() {
        user("alice", &[])
    } else {
        user("alice", &[&statements.join(",")])
    };
    requests()
        .iter()
        .map(|(action, resource, context)| {
            decide(&principal, *action, resource, context, None).allowed()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn adding_a_deny_never_grants(statements in prop::collection::vec(statement(), 0..6), extra in statement()) {
        let before = access(&statements);
        let mut more = statements.clone();
        more.push(extra.replace("\"Allow\"", "\"Deny\""));
        let after = access(&more);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(!a || *b, "a Deny granted access");
        }
    }

    #[test]
    fn adding_an_allow_never_removes_access(statements in prop::collection::vec(statement(), 0..6), extra in statement()) {
        let before = access(&statements);
        let mut more = statements.clone();
        more.push(extra.replace("\"Deny\"", "\"Allow\""));
        let after = access(&more);
        for (b, a) in before.iter().zip(&after) {
            prop_assert!(*a || !b, "an Allow took access away");
        }
    }

    #[test]
    fn statement_order_never_matters(statements in prop::collection::vec(statement(), 1..7)) {
        let mut reversed = statements.clone();
        reversed.reverse();
        prop_assert_eq!(access(&statements), access(&reversed));
    }
}
