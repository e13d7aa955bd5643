//! The registry seen by a caller: every operation authorized with ECR's action, private
//! and public repositories, repository policies kept by compare-and-swap, mounts that
//! leak nothing, a filtered catalog, and an audit event for every refusal and change.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use wharf::access::{Context, Identity, Policy, Principal};
use wharf::{
    ErrorKind, Event, MemoryEventSink, MemoryMetaStore, Reference, Registry, RepoName,
    RepositorySettings, ResourceAccount,
};

use crate::common::images::Image;
use crate::common::{repo, sha256};

const ACCOUNT: &str = "123456789012";

fn registry() -> (Registry, Arc<MemoryEventSink>) {
    let events = Arc::new(MemoryEventSink::default());
    let registry = Registry::builder()
        .object_store(Arc::new(object_store::memory::InMemory::new()))
        .meta_store(Arc::new(MemoryMetaStore::new()))
        .event_sink(events.clone())
        .resource_account(ResourceAccount {
            region: "eu-west-1".into(),
            account: ACCOUNT.into(),
        })
        .build()
        .unwrap();
    (registry, events)
}

fn user(name: &str, statements: &str) -> Principal {
    let policy = Policy::identity(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#
    ))
    .unwrap();
    Principal::Identity(Identity::user(ACCOUNT, name).with_policy(policy))
}

fn context() -> Context {
    Context::at(SystemTime::now())
}

const PUSHER: &str = r#"{"Effect": "Allow", "Action": "ecr:*", "Resource": "arn:aws:ecr:eu-west-1:123456789012:repository/team/*"}"#;
const READER: &str = r#"{"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:ListImages", "ecr:DescribeRepositories"], "Resource": "*"}"#;

#[tokio::test]
async fn pushers_push_readers_read_and_anonymous_callers_are_asked_to_log_in() {
    let (registry, _) = registry();
    let r = repo("team/app");
    let pusher = registry.as_caller(user("alice", PUSHER), context());
    let image = Image::seeded("one");
    let layer = image.layers[0].clone();
    pusher
        .push_blob(&r, &sha256(&layer), layer.clone())
        .await
        .unwrap();
    pusher
        .push_blob(&r, &sha256(&image.config), image.config.clone())
        .await
        .unwrap();
    let tag = Reference::Tag("v1".parse().unwrap());
    pusher
        .push_manifest(&r, &tag, image.manifest(), None)
        .await
        .unwrap();

    let reader = registry.as_caller(user("bob", READER), context());
    assert_eq!(
        reader.get_manifest(&r, &tag).await.unwrap().raw,
        image.manifest()
    );
    assert_eq!(
        reader
            .read_blob(&r, &sha256(&layer), None)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        layer
    );
    let err = reader
        .push_blob(&r, &sha256(b"x"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(err.message().contains("ecr:InitiateLayerUpload"), "{err}");
    let err = reader
        .delete_manifest(&r, &sha256(&image.manifest()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);

    let anonymous = registry.as_caller(Principal::Anonymous, context());
    let err = anonymous.get_manifest(&r, &tag).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    // Nothing was pushed by the refused calls.
    assert!(registry.stat_blob(&r, &sha256(b"x")).await.is_err());
}

#[tokio::test]
async fn a_public_repository_lets_anyone_pull_and_no_one_push() {
    let (registry, _) = registry();
    let r = repo("public/tools");
    registry
        .create_repository(
            &r,
            RepositorySettings {
                public: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let image = Image::seeded("tool");
    let tag = Reference::Tag("latest".parse().unwrap());
    image.push(&registry, &r, &tag).await.unwrap();
    let anonymous = registry.as_caller(Principal::Anonymous, context());
    anonymous.get_manifest(&r, &tag).await.unwrap();
    anonymous.list_tags(&r, 10, None).await.unwrap();
    let err = anonymous
        .push_manifest(&r, &tag, image.manifest(), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    // A repository policy's explicit deny still beats the public switch.
    registry
        .set_repository_policy(
            &r,
            r#"{"Version": "2012-10-17", "Statement": [{"Sid": "NoPulls", "Effect": "Deny", "Principal": "*", "Action": "ecr:BatchGetImage"}]}"#,
            None,
        )
        .await
        .unwrap();
    assert!(anonymous.get_manifest(&r, &tag).await.is_err());
}

#[tokio::test]
async fn a_repository_deny_overrides_an_identity_allow_and_is_audited() {
    let (registry, events) = registry();
    let r = repo("team/app");
    registry
        .create_repository(&r, Default::default())
        .await
        .unwrap();
    registry
        .set_repository_policy(
            &r,
            r#"{"Version": "2012-10-17", "Statement": [{"Sid": "NoDeletes", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"}, "Action": "ecr:BatchDeleteImage"}]}"#,
            None,
        )
        .await
        .unwrap();
    let alice = registry.as_caller(user("alice", PUSHER), context());
    let image = Image::seeded("x");
    image
        .push(&registry, &r, &Reference::Tag("v1".parse().unwrap()))
        .await
        .unwrap();
    let err = alice
        .delete_tag(&r, &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    alice.list_tags(&r, 10, None).await.unwrap();
    alice
        .tag_manifest(&r, &"v2".parse().unwrap(), &sha256(&image.manifest()))
        .await
        .unwrap();
    let audit: Vec<Event> = events
        .take()
        .into_iter()
        .filter(|e| matches!(e, Event::Access { .. }))
        .collect();
    // The refusal and the tag move are recorded; the read is not.
    assert_eq!(audit.len(), 2, "{audit:?}");
    match &audit[0] {
        Event::Access {
            principal,
            action,
            resource,
            allowed,
            statement,
        } => {
            assert_eq!(principal, "arn:aws:iam::123456789012:user/alice");
            assert_eq!(action, "ecr:BatchDeleteImage");
            assert_eq!(
                resource,
                "arn:aws:ecr:eu-west-1:123456789012:repository/team/app"
            );
            assert!(!allowed);
            assert_eq!(
                statement.as_deref(),
                Some("repository policy statement 0 (Sid \"NoDeletes\")")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &audit[1],
        Event::Access {
            action,
            allowed: true,
            ..
        } if action == "ecr:PutImage"
    ));
}

#[tokio::test]
async fn a_source_address_condition_decides_by_where_the_call_comes_from() {
    let (registry, _) = registry();
    let r = repo("team/app");
    let image = Image::seeded("y");
    let tag = Reference::Tag("v1".parse().unwrap());
    image.push(&registry, &r, &tag).await.unwrap();
    let office = user(
        "carol",
        r#"{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}"#,
    );
    let mut inside = context();
    inside.source_ip("192.0.2.10".parse().unwrap());
    let mut outside = context();
    outside.source_ip("203.0.113.5".parse().unwrap());
    registry
        .as_caller(office.clone(), inside)
        .get_manifest(&r, &tag)
        .await
        .unwrap();
    let err = registry
        .as_caller(office, outside)
        .get_manifest(&r, &tag)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
}

#[tokio::test]
async fn a_mount_from_an_unreadable_repository_fails_like_a_missing_blob() {
    let (registry, _) = registry();
    let secret = repo("secret/app");
    let data = Bytes::from_static(b"secret layer");
    registry
        .push_blob(&secret, &sha256(&data), data.clone())
        .await
        .unwrap();
    let alice = registry.as_caller(user("alice", PUSHER), context());
    let target = repo("team/app");
    let err = alice
        .mount_blob(&target, &sha256(&data), Some(&secret))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlobUnknown);
    // The same answer as for a blob that is not there at all.
    let missing = alice
        .mount_blob(&target, &sha256(b"nothing"), Some(&secret))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::BlobUnknown);
    assert!(registry.stat_blob(&target, &sha256(&data)).await.is_err());
    // From a repository the caller reads, the mount goes through.
    let own = repo("team/base");
    registry
        .push_blob(&own, &sha256(&data), data.clone())
        .await
        .unwrap();
    alice
        .mount_blob(&target, &sha256(&data), Some(&own))
        .await
        .unwrap();
    assert_eq!(
        registry
            .stat_blob(&target, &sha256(&data))
            .await
            .unwrap()
            .size,
        data.len() as u64
    );
}

#[tokio::test]
async fn the_catalog_lists_only_what_the_caller_may_describe() {
    let (registry, _) = registry();
    for name in ["team/a", "team/b", "other/c", "other/d", "team/e"] {
        registry
            .create_repository(&repo(name), Default::default())
            .await
            .unwrap();
    }
    let alice = registry.as_caller(
        user("alice", r#"{"Effect": "Allow", "Action": "ecr:DescribeRepositories", "Resource": "arn:aws:ecr:*:*:repository/team/*"}"#),
        context(),
    );
    let all = alice.list_repositories(100, None).await.unwrap();
    let names: Vec<&str> = all.iter().map(RepoName::as_str).collect();
    assert_eq!(names, ["team/a", "team/b", "team/e"]);
    let first = alice.list_repositories(2, None).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = alice.list_repositories(2, first.last()).await.unwrap();
    assert_eq!(rest, vec![repo("team/e")]);
}

#[tokio::test]
async fn pushing_into_a_new_repository_needs_create_repository() {
    let (registry, _) = registry();
    let no_create = registry.as_caller(
        user(
            "dave",
            r#"{"Effect": "Allow", "NotAction": "ecr:CreateRepository", "Resource": "*"}"#,
        ),
        context(),
    );
    let err = no_create.start_upload(&repo("new/app")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    assert!(err.message().contains("ecr:CreateRepository"), "{err}");
    assert_eq!(
        registry
            .repository(&repo("new/app"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NameUnknown
    );
    registry
        .create_repository(&repo("new/app"), Default::default())
        .await
        .unwrap();
    no_create.start_upload(&repo("new/app")).await.unwrap();
}

#[tokio::test]
async fn repository_tags_are_condition_keys() {
    let (registry, _) = registry();
    let tagged = |team: &str| RepositorySettings {
        labels: [("team".to_owned(), team.to_owned())].into(),
        ..RepositorySettings::default()
    };
    for (name, team) in [("pay/api", "payments"), ("web/site", "web")] {
        registry
            .create_repository(&repo(name), tagged(team))
            .await
            .unwrap();
    }
    registry
        .create_repository(&repo("untagged"), RepositorySettings::default())
        .await
        .unwrap();
    // Members of a team read the repositories tagged with their team, by either key.
    let statement = |key: &str| {
        format!(
            r#"{{"Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*",
                "Condition": {{"StringEquals": {{"{key}/team": "${{aws:PrincipalTag/team}}"}}}}}}"#
        )
    };
    for key in ["ecr:ResourceTag", "aws:ResourceTag"] {
        let policy = Policy::identity(&format!(
            r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
            statement(key)
        ))
        .unwrap();
        let member = Principal::Identity(
            Identity::user(ACCOUNT, "pat")
                .with_tag("team", "payments")
                .with_policy(policy),
        );
        let pat = registry.as_caller(member, context());
        pat.list_tags(&repo("pay/api"), 10, None).await.unwrap();
        for other in ["web/site", "untagged"] {
            let denied = pat.list_tags(&repo(other), 10, None).await.unwrap_err();
            assert_eq!(denied.kind(), ErrorKind::Denied, "{key} {other}");
        }
    }
}

#[tokio::test]
async fn repository_policies_are_validated_and_changed_by_compare_and_swap() {
    let (registry, _) = registry();
    let r = repo("team/app");
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]}"#;
    // No repository, no policy.
    assert_eq!(
        registry
            .set_repository_policy(&r, policy, None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NameUnknown
    );
    registry
        .create_repository(&r, Default::default())
        .await
        .unwrap();
    let err = registry
        .set_repository_policy(
            &r,
            r#"{"Statement": [{"Effect": "Allow", "Action": "ecr:*"}]}"#,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyInvalid);
    assert!(registry.repository_policy(&r).await.unwrap().is_none());
    let first = registry
        .set_repository_policy(&r, policy, Some(None))
        .await
        .unwrap();
    let again = registry
        .set_repository_policy(&r, policy, Some(None))
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);
    let second = registry
        .set_repository_policy(&r, policy, Some(Some(first)))
        .await
        .unwrap();
    let stale = registry
        .set_repository_policy(&r, policy, Some(Some(first)))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let (stored, version) = registry.repository_policy(&r).await.unwrap().unwrap();
    assert_eq!((stored.text(), version), (policy, second));
    // Callers need the policy actions for all of this.
    let reader = registry.as_caller(user("bob", READER), context());
    assert_eq!(
        reader.repository_policy(&r).await.unwrap_err().kind(),
        ErrorKind::Denied
    );
    registry
        .delete_repository_policy(&r, Some(second))
        .await
        .unwrap();
    assert!(registry.repository_policy(&r).await.unwrap().is_none());
    // A repository's policy goes with it.
    registry
        .set_repository_policy(&r, policy, None)
        .await
        .unwrap();
    registry.delete_repository(&r, true).await.unwrap();
    registry
        .create_repository(&r, Default::default())
        .await
        .unwrap();
    assert!(registry.repository_policy(&r).await.unwrap().is_none());
}

#[tokio::test]
async fn every_remaining_operation_is_checked_too() {
    let (registry, _) = registry();
    let r = repo("team/app");
    let image = Image::seeded("z");
    let tag: wharf::Tag = "v1".parse().unwrap();
    image
        .push(&registry, &r, &Reference::Tag(tag.clone()))
        .await
        .unwrap();
    let nobody = registry.as_caller(
        user(
            "eve",
            r#"{"Effect": "Deny", "Action": "*", "Resource": "*"}"#,
        ),
        context(),
    );
    let denied = |result: wharf::Result<()>| {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Denied);
    };
    denied(nobody.unlink_blob(&r, &sha256(&image.config)).await);
    denied(nobody.tag_history(&r, &tag).await.map(drop));
    denied(nobody.inventory(&r).await.map(drop));
    denied(nobody.lifecycle_policy(&r).await.map(drop));
    denied(nobody.set_lifecycle_policy(&r, None).await);
    denied(
        nobody
            .stat_manifest(&r, &Reference::Tag(tag.clone()))
            .await
            .map(drop),
    );
    denied(
        nobody
            .referrers(&r, &sha256(&image.manifest()), None)
            .await
            .map(drop),
    );
    denied(nobody.delete_repository(&r, true).await);
    denied(
        nobody
            .create_repository(&repo("team/new"), Default::default())
            .await
            .map(drop),
    );
    let upload = registry.start_upload(&r).await.unwrap();
    denied(nobody.upload_status(&r, &upload.id).await.map(drop));
    denied(
        nobody
            .append_upload(&r, &upload.id, 0, Bytes::from_static(b"x"))
            .await
            .map(drop),
    );
    denied(
        nobody
            .finish_upload_stream_at(&r, &upload.id, &sha256(b""), None, None)
            .await
            .map(drop),
    );
    denied(nobody.cancel_upload(&r, &upload.id).await);
    // Nothing moved.
    assert_eq!(
        registry.upload_status(&r, &upload.id).await.unwrap().offset,
        0
    );
    assert!(registry.stat_blob(&r, &sha256(&image.config)).await.is_ok());
    assert_eq!(
        registry.resolve_tag(&r, &tag).await.unwrap(),
        sha256(&image.manifest())
    );
}

#[tokio::test]
async fn policy_changes_apply_at_once_here_and_within_the_cache_time_elsewhere() {
    // Two registries on one store, as two processes would be.
    let meta = Arc::new(MemoryMetaStore::new());
    let blobs: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let open = |ttl: Duration| {
        Registry::builder()
            .object_store(blobs.clone())
            .meta_store(meta.clone())
            .resource_account(ResourceAccount {
                region: "eu-west-1".into(),
                account: ACCOUNT.into(),
            })
            .access_cache_ttl(ttl)
            .build()
            .unwrap()
    };
    let here = open(Duration::from_secs(3600));
    let elsewhere = open(Duration::ZERO);
    let r = repo("team/app");
    here.create_repository(&r, RepositorySettings::default())
        .await
        .unwrap();
    let deny = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:ListImages"}]}"#;
    let reader = || user("rita", READER);
    let rita = here.as_caller(reader(), context());
    rita.list_tags(&r, 10, None).await.unwrap();

    // Through the same registry: the next request sees it, and sees it go.
    here.set_repository_policy(&r, deny, None).await.unwrap();
    assert_eq!(
        rita.list_tags(&r, 10, None).await.unwrap_err().kind(),
        ErrorKind::Denied
    );
    here.delete_repository_policy(&r, None).await.unwrap();
    rita.list_tags(&r, 10, None).await.unwrap();
    // Settings too: a repository made public is pulled anonymously at once.
    let anonymous = here.as_caller(Principal::Anonymous, context());
    assert!(anonymous.list_tags(&r, 10, None).await.is_err());
    let public = RepositorySettings {
        public: true,
        ..RepositorySettings::default()
    };
    here.update_repository(&r, public).await.unwrap();
    anonymous.list_tags(&r, 10, None).await.unwrap();

    // Through another registry: one that keeps nothing sees it at once; the one with
    // an hour's cache still decides on what it read.
    elsewhere
        .set_repository_policy(&r, deny, None)
        .await
        .unwrap();
    let rita_elsewhere = elsewhere.as_caller(reader(), context());
    assert_eq!(
        rita_elsewhere
            .list_tags(&r, 10, None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Denied
    );
    rita.list_tags(&r, 10, None).await.unwrap();
    // A registry that keeps entries for 10 ms sees the change once they go stale.
    let brief = open(Duration::from_millis(10));
    let rita_brief = brief.as_caller(reader(), context());
    elsewhere.delete_repository_policy(&r, None).await.unwrap();
    rita_brief.list_tags(&r, 10, None).await.unwrap();
    elsewhere
        .set_repository_policy(&r, deny, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        rita_brief.list_tags(&r, 10, None).await.unwrap_err().kind(),
        ErrorKind::Denied
    );
}
