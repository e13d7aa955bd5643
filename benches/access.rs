//! Authorizing one request against an identity policy and a 20-statement repository
//! policy with conditions (target: under 5 µs), and checking a Bearer token. Same-run baseline: sha256 of a 1 KiB
//! request head, about what reading one request's headers costs a server. `cargo bench
//! --bench access`.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use wharf::access::token::{self, Access, Claims, Keyring, SigningKey, session_policy};
use wharf::access::{Action, Arn, Context, Identity, Policy, Principal, Request, evaluate};

fn repository_policy() -> Policy {
    let mut statements = Vec::new();
    for i in 0..20 {
        let statement = match i % 4 {
            0 => format!(
                r#"{{"Sid": "Team{i}", "Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::123456789012:user/user{i}"}}, "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}}"#
            ),
            1 => format!(
                r#"{{"Sid": "Net{i}", "Effect": "Allow", "Principal": "*", "Action": "ecr:Get*", "Condition": {{"IpAddress": {{"aws:SourceIp": "10.{i}.0.0/16"}}}}}}"#
            ),
            2 => format!(
                r#"{{"Sid": "Deny{i}", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchDeleteImage", "Condition": {{"StringNotEquals": {{"aws:PrincipalTag/role": "admin{i}"}}}}}}"#
            ),
            _ => format!(
                r#"{{"Sid": "Ci{i}", "Effect": "Allow", "Principal": {{"AWS": "123456789012"}}, "Action": ["ecr:PutImage", "ecr:*Upload*"], "Condition": {{"StringLike": {{"aws:PrincipalArn": "arn:aws:iam::*:role/ci-{i}-*"}}, "Bool": {{"aws:SecureTransport": "true"}}}}}}"#
            ),
        };
        statements.push(statement);
    }
    Policy::repository(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    ))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let repository = repository_policy();
    let identity = Policy::identity(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], "Resource": "arn:aws:ecr:*:123456789012:repository/team/*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}"#,
    )
    .unwrap();
    let principal = Principal::Identity(
        Identity::user("123456789012", "alice")
            .with_tag("role", "dev")
            .with_policy(identity),
    );
    let resource = Arn::repository("us-east-1", "123456789012", "team/app");
    let mut context = Context::at(SystemTime::now());
    context.source_ip("10.3.4.5".parse().unwrap());
    context.secure_transport(true);
    let request = Request {
        principal: &principal,
        action: Action::BatchGetImage,
        resource: &resource,
        context: &context,
    };
    assert!(evaluate(&request, Some(&repository)).allowed());
    let mut group = c.benchmark_group("access");
    group.bench_function(
        "authorize (identity + 20-statement repository policy)",
        |b| b.iter(|| black_box(evaluate(black_box(&request), Some(&repository)))),
    );
    // A request with a Bearer token: verify it, then build the session policy its
    // grant stands for (what the example server does per request).
    let key = SigningKey::new("bench", [7; 32]).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        iss: "wharf-registry".into(),
        sub: "alice".into(),
        aud: "wharf-registry".into(),
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: "0123456789abcdef0123456789abcdef".into(),
        access: Access::parse_all("repository:team/app:pull,push repository:team/base:pull")
            .unwrap(),
    };
    let bearer = token::sign(&claims, &key);
    let keys = Keyring::new(vec![key]);
    group.bench_function("verify a token and build its session policy", |b| {
        b.iter(|| {
            let claims = token::verify(
                black_box(&bearer),
                &keys,
                "wharf-registry",
                SystemTime::now(),
            )
            .unwrap();
            black_box(session_policy(&claims.access, "us-east-1", "123456789012").unwrap())
        })
    });
    let head = vec![b'h'; 1024];
    group.bench_function("baseline: sha256 of a 1 KiB request head", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&head))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
