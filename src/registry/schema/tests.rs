//! The layout against its limits and its documentation.

use std::sync::Arc;

use super::*;
use crate::meta::{Expect, MemoryMetaStore, MetaStore};

fn longest_repo() -> RepoName {
    // Components of the grammar's longest form: lowercase runs joined by '/'.
    let mut name = String::new();
    while name.len() + 10 <= MAX_REPO_NAME_LEN {
        if !name.is_empty() {
            name.push('/');
        }
        name.push_str("abcdefghi");
    }
    while name.len() < MAX_REPO_NAME_LEN {
        name.push('x');
    }
    name.parse().unwrap()
}

fn sha512(text: &str) -> Digest {
    Digest::of(Algorithm::Sha512, text.as_bytes())
}

#[test]
fn every_table_fits_the_key_limit_at_its_longest() {
    for (prefix, longest) in TABLES {
        assert!(
            longest <= MAX_KEY_LEN,
            "table {prefix} writes keys of up to {longest} bytes, over {MAX_KEY_LEN}"
        );
    }
}

#[test]
fn the_longest_keys_really_written_fit_and_parse_back() {
    let repo = longest_repo();
    assert_eq!(repo.as_str().len(), MAX_REPO_NAME_LEN);
    let (subject, item) = (sha512("subject"), sha512("item"));
    let tag: Tag = "t".repeat(MAX_TAG_LEN).parse().unwrap();
    let nested = Nested::new(&repo, &subject, &item);
    let key = REFERRERS.key(&nested);
    assert!(key.len() <= MAX_KEY_LEN, "{} bytes", key.len());
    assert_eq!(REFERRERS.parse(&key).unwrap(), nested);
    // The subject was hashed; the item is whole.
    assert!(key.contains("@~"), "{key}");
    assert!(key.ends_with(item.as_str()));
    let reverse = Nested::new(&repo, &subject, &tag);
    let key = TAGGED.key(&reverse);
    assert!(key.len() <= MAX_KEY_LEN, "{} bytes", key.len());
    assert_eq!(TAGGED.parse(&key).unwrap().item, tag);
    let in_repo = InRepo::new(&repo, &tag);
    let key = TAG_HISTORY.key(&in_repo);
    assert!(key.len() <= MAX_KEY_LEN);
    assert_eq!(TAG_HISTORY.parse(&key).unwrap(), in_repo);
}

#[test]
fn short_names_keep_their_subject_readable() {
    let repo: RepoName = "team/app".parse().unwrap();
    let subject = sha512("subject");
    let key = PARENTS.key(&Nested::new(&repo, &subject, &sha512("index")));
    assert!(
        key.starts_with(&format!("parent/team/app@{subject}/")),
        "{key}"
    );
}

#[test]
fn keys_of_another_table_or_malformed_keys_are_corrupt_not_panics() {
    for bad in [
        "tag/app",
        "tag/app@",
        "tag/@v1",
        "link/app@sha256:xyz",
        "manifest/app@v1",
        "tag/UPPER@v1",
    ] {
        let err = if bad.starts_with("tag/") {
            TAGS.parse(bad).map(drop).unwrap_err()
        } else {
            LINKS.parse(bad).map(drop).unwrap_err()
        };
        assert_eq!(err.kind(), ErrorKind::CorruptData, "{bad}");
    }
    let err = REFERRERS.parse("referrer/app@x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CorruptData);
}

#[test]
fn tables_do_not_list_each_other() {
    // A table's prefix must not be a prefix of another's, or listing one would return
    // the other's entries.
    let prefixes: Vec<&str> = TABLES.iter().map(|(p, _)| *p).collect();
    for a in &prefixes {
        for b in &prefixes {
            assert!(a == b || !b.starts_with(a), "{b} lists under {a}");
        }
    }
}

/// The prefixes `docs/storage-layout.md` names in its metadata table, up to the first `<`.
fn documented_prefixes() -> Vec<String> {
    let doc = include_str!("../../../docs/storage-layout.md");
    let section = doc
        .split("## Metadata")
        .nth(1)
        .expect("the layout document has a Metadata section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(|key| key.split('<').next().unwrap_or(key).to_owned())
        .collect()
}

#[test]
fn the_layout_document_names_every_table_and_no_other() {
    let documented = documented_prefixes();
    let tables: Vec<&str> = TABLES.iter().map(|(p, _)| *p).collect();
    for table in &tables {
        assert!(
            documented.iter().any(|d| d == table),
            "table {table} is not in docs/storage-layout.md (documented: {documented:?})"
        );
    }
    for doc in &documented {
        assert!(
            tables.contains(&doc.as_str()),
            "docs/storage-layout.md documents {doc}, which no table in schema.rs writes"
        );
    }
}

#[tokio::test]
async fn update_gives_up_under_endless_contention_with_a_retryable_conflict() {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMetaStore::new());
    let key: InRepo<Digest> = InRepo::new(&"app".parse().unwrap(), &sha512("x"));
    PULLS.create(meta.as_ref(), &key, &1).await.unwrap();
    let store_key = PULLS.key(&key);
    let mut calls = 0;
    let rival = meta.clone();
    let err = PULLS
        .update(meta.as_ref(), &key, |now| {
            calls += 1;
            // Another writer gets in between every read and write.
            let rival = rival.clone();
            let store_key = store_key.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(rival.put(&store_key, "7".into(), Expect::Any))
                    .unwrap();
            })
            .join()
            .unwrap();
            Ok(Change::Put(now.unwrap_or(0) + 1))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.is_retryable());
    assert_eq!(calls, table_attempts());
}

fn table_attempts() -> u32 {
    super::table::ATTEMPTS
}

#[tokio::test]
async fn update_creates_and_keeps() {
    let meta = MemoryMetaStore::new();
    let key: InRepo<Digest> = InRepo::new(&"app".parse().unwrap(), &sha512("x"));
    let created = PULLS
        .update(&meta, &key, |now| {
            assert_eq!(now, None);
            Ok(Change::Put(5))
        })
        .await
        .unwrap();
    assert_eq!(created, Some(5));
    let kept = PULLS
        .update(&meta, &key, |_| Ok(Change::Keep))
        .await
        .unwrap();
    assert_eq!(kept, Some(5));
    assert_eq!(PULLS.get(&meta, &key).await.unwrap().unwrap().0, 5);
}

#[tokio::test]
async fn update_deletes_durably_or_relaxed_and_not_what_is_absent() {
    let meta = MemoryMetaStore::new();
    for durability in [
        crate::meta::Durability::Durable,
        crate::meta::Durability::Relaxed,
    ] {
        let key: InRepo<Digest> = InRepo::new(&"app".parse().unwrap(), &sha512("y"));
        PULLS.put(&meta, &key, &7, Expect::Absent).await.unwrap();
        let removed = PULLS
            .update_with(&meta, &key, durability, |now| {
                assert_eq!(now, Some(7));
                Ok(Change::Delete)
            })
            .await
            .unwrap();
        assert_eq!(removed, None);
        assert!(PULLS.get(&meta, &key).await.unwrap().is_none());
        let nothing = PULLS
            .update_with(&meta, &key, durability, |now| {
                assert_eq!(now, None);
                Ok(Change::Delete)
            })
            .await
            .unwrap();
        assert_eq!(nothing, None);
    }
}

#[tokio::test]
async fn a_hashed_subject_still_lists_entries_written_under_the_old_rule() {
    let meta = MemoryMetaStore::new();
    // A name long enough that a sha512 subject is hashed now, short enough that the
    // whole key fitted before.
    let repo: RepoName = "a".repeat(200).parse().unwrap();
    let subject = sha512("subject");
    let child = Digest::of(Algorithm::Sha256, b"index");
    let old_key = format!("parent/{repo}@{subject}/{child}");
    assert!(old_key.len() <= MAX_KEY_LEN);
    meta.put(&old_key, bytes::Bytes::new(), Expect::Absent)
        .await
        .unwrap();
    let other = Digest::of(Algorithm::Sha256, b"other index");
    PARENTS
        .put(
            &meta,
            &Nested::new(&repo, &subject, &other),
            &Marker,
            Expect::Absent,
        )
        .await
        .unwrap();
    let listed = PARENTS
        .list_all(&meta, &Prefix::of_subject(&repo, &subject))
        .await
        .unwrap();
    let mut items: Vec<Digest> = listed.iter().map(|r| r.key.item.clone()).collect();
    items.sort();
    let mut want = vec![child, other];
    want.sort();
    assert_eq!(items, want);
    // A listed old entry is deleted under its own key.
    let old = listed
        .iter()
        .find(|r| PARENTS.key(&r.key) == old_key)
        .unwrap();
    PARENTS.delete(&meta, &old.key, Expect::Any).await.unwrap();
    assert!(meta.get(&old_key).await.unwrap().is_none());
}
