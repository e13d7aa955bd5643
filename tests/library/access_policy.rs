//! IAM policy documents: every element and operator accepted where IAM and ECR accept
//! it, and every malformed document refused with an error naming the statement, the
//! field and the reason.

use wharf::ErrorKind;
use wharf::access::{MAX_REPOSITORY_POLICY_LEN, Policy, PolicyKind};

/// A repository policy of one statement with these extra fields.
fn repository_statement(fields: &str) -> String {
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Sid": "S", "Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"{fields}}}]}}"#
    )
}

#[test]
fn every_element_and_operator_is_accepted() {
    let text = r#"{
      "Version": "2012-10-17",
      "Id": "everything",
      "Statement": [
        {"Sid": "One", "Effect": "Allow",
         "Principal": {"AWS": ["*", "123456789012", "arn:aws:iam::123456789012:root",
                               "arn:aws:iam::123456789012:user/alice",
                               "arn:aws:iam::123456789012:role/ci"],
                       "Service": "codebuild.amazonaws.com"},
         "Action": ["ecr:BatchGetImage", "ecr:Get*", "ecr:?utImage", "*"],
         "Resource": ["*", "arn:aws:ecr:*:123456789012:repository/${aws:username}/*"],
         "Condition": {
           "StringEquals": {"aws:username": "alice"},
           "StringNotEquals": {"aws:PrincipalTag/team": ["a", "b"]},
           "StringEqualsIgnoreCase": {"aws:username": "ALICE"},
           "StringNotEqualsIgnoreCase": {"aws:username": "bob"},
           "StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"},
           "StringNotLike": {"aws:PrincipalArn": "*:role/*"},
           "NumericEquals": {"aws:EpochTime": 1},
           "NumericNotEquals": {"aws:EpochTime": "2"},
           "NumericLessThan": {"aws:EpochTime": 3.5},
           "NumericLessThanEquals": {"aws:EpochTime": 4},
           "NumericGreaterThan": {"aws:EpochTime": 5},
           "NumericGreaterThanEquals": {"aws:EpochTime": 6},
           "DateEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
           "DateNotEquals": {"aws:CurrentTime": "2026-01-01"},
           "DateLessThan": {"aws:CurrentTime": "1767225600"},
           "DateLessThanEquals": {"aws:CurrentTime": "2026-01-01T00:00:00+02:00"},
           "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
           "DateGreaterThanEquals": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
           "Bool": {"aws:SecureTransport": true},
           "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]},
           "NotIpAddress": {"aws:SourceIp": "10.9.0.0/16"},
           "ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/alice"},
           "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"},
           "ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/bob"},
           "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"},
           "Null": {"aws:PrincipalTag/team": "false"},
           "StringEqualsIfExists": {"aws:PrincipalTag/team": "a"},
           "ForAnyValue:StringLike": {"aws:TagKeys": "team*"},
           "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}
         }},
        {"Effect": "Deny", "NotPrincipal": {"AWS": "123456789012"},
         "NotAction": "ecr:BatchGetImage", "NotResource": "arn:aws:ecr:*:*:repository/public/*"}
      ]}"#;
    let policy = Policy::repository(text).unwrap();
    assert_eq!(policy.kind(), PolicyKind::Repository);
    assert_eq!(policy.text(), text);
    // One statement given as an object, and the older version.
    Policy::identity(
        r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}"#,
    )
    .unwrap();
    // No version at all is the older one.
    Policy::identity(r#"{"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}"#)
        .unwrap();
}

/// Each malformed document, and what its error must name.
#[test]
fn malformed_documents_are_refused_naming_statement_field_and_reason() {
    let cases: Vec<(PolicyKind, String, &[&str])> = vec![
        (PolicyKind::Repository, "not json".into(), &["not valid JSON"]),
        (PolicyKind::Repository, "[]".into(), &["must be a JSON object"]),
        (
            PolicyKind::Repository,
            r#"{"Statement": [], "Statement": []}"#.into(),
            &["not valid JSON", "Statement"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Version": "2012-10-17", "Statement": [], "Extra": 1}"#.into(),
            &["unknown field", "Extra"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Version": "2011-01-01", "Statement": []}"#.into(),
            &["Version"],
        ),
        (PolicyKind::Repository, r#"{"Version": "2012-10-17"}"#.into(), &["Statement", "required"]),
        (
            PolicyKind::Repository,
            r#"{"Version": "2012-10-17", "Statement": []}"#.into(),
            &["at least one"],
        ),
        (PolicyKind::Repository, repository_statement(r#", "Effect": "Maybe""#), &["Effect"]),
        (
            PolicyKind::Repository,
            r#"{"Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage"}]}"#.into(),
            &["statement 0", "Principal", "required"],
        ),
        (
            PolicyKind::Identity,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:*", "Resource": "*"}]}"#.into(),
            &["statement 0", "Principal", "not allowed"],
        ),
        (
            PolicyKind::Identity,
            r#"{"Statement": [{"Effect": "Allow", "Action": "ecr:*"}]}"#.into(),
            &["statement 0", "Resource", "required"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Statement": [{"Sid": "A", "Effect": "Allow", "Principal": "*"}]}"#.into(),
            &["statement 0", "Sid \"A\"", "Action", "required"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "NotAction": "ecr:PutImage""#),
            &["Sid \"S\"", "Action", "NotAction", "both"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr PutImage"}]}"#.into(),
            &["Action", "not an action"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": []}]}"#.into(),
            &["Action", "empty"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "alice"}, "Action": "ecr:*"}]}"#.into(),
            &["Principal", "alice"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"Martian": "x"}, "Action": "ecr:*"}]}"#.into(),
            &["Principal", "Martian"],
        ),
        (PolicyKind::Repository, repository_statement(r#", "Resource": "repo/app""#), &["Resource", "not an ARN"]),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Resource": "arn:aws:ecr:*:*:repository/${aws:username""#),
            &["Resource", "never closes"],
        ),
        (PolicyKind::Repository, repository_statement(r#", "Color": "red""#), &["Color", "not a statement field"]),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"StringEqualz": {"aws:username": "a"}}"#),
            &["Sid \"S\"", "Condition", "StringEqualz", "not a condition operator"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"NumericEquals": {"aws:EpochTime": "many"}}"#),
            &["Condition", "NumericEquals", "not a number"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"DateLessThan": {"aws:CurrentTime": "yesterday"}}"#),
            &["Condition", "not a date"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/40"}}"#),
            &["Condition", "not an IP address"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"Bool": {"aws:SecureTransport": "maybe"}}"#),
            &["Condition", "true or false"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"StringEquals": {"username": "a"}}"#),
            &["Condition", "not a condition key"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"StringEquals": {"aws:username": []}}"#),
            &["Condition", "no values"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"StringEquals": {"aws:username": {"a": 1}}}"#),
            &["Condition", "string, number, boolean"],
        ),
        (
            PolicyKind::Repository,
            repository_statement(r#", "Condition": {"ForAnyValue:Null": {"aws:username": "true"}}"#),
            &["Condition", "Null"],
        ),
        (
            PolicyKind::Repository,
            r#"{"Statement": [
                {"Sid": "Same", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"},
                {"Sid": "Same", "Effect": "Deny", "Principal": "*", "Action": "ecr:*"}]}"#
                .into(),
            &["statement 1", "Sid", "Same", "earlier"],
        ),
    ];
    for (kind, text, wanted) in cases {
        let err = Policy::parse(&text, kind).expect_err(&text);
        assert_eq!(err.kind(), ErrorKind::PolicyInvalid, "{text}: {err}");
        for part in wanted {
            assert!(
                err.message().contains(part),
                "{text}\n{err}\nshould name {part:?}"
            );
        }
    }
}

#[test]
fn a_repository_policy_over_ecrs_limit_is_refused() {
    let sid = "x".repeat(MAX_REPOSITORY_POLICY_LEN);
    let text = format!(
        r#"{{"Statement": [{{"Sid": "{sid}", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"}}]}}"#
    );
    let err = Policy::repository(&text).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyInvalid);
    assert!(err.message().contains("over the limit of 10240"), "{err}");
    // Just under the limit is fine.
    let room = MAX_REPOSITORY_POLICY_LEN
        - r#"{"Statement": [{"Sid": "", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"}]}"#
            .len();
    let text = format!(
        r#"{{"Statement": [{{"Sid": "{}", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"}}]}}"#,
        "x".repeat(room)
    );
    Policy::repository(&text).unwrap();
}
