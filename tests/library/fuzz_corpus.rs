//! Replays every kept fuzz input on the stable toolchain.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "fuzz input {} fails", path.display());
        count += 1;
    }
    assert!(count > 0, "no corpus for {target}");
}

#[test]
fn parse_digest_corpus() {
    replay("parse_digest", wharf::testing::fuzz::parse_digest);
}

#[test]
fn parse_names_corpus() {
    replay("parse_names", wharf::testing::fuzz::parse_names);
}

#[test]
fn parse_manifest_corpus() {
    replay("parse_manifest", wharf::testing::fuzz::parse_manifest);
}

#[test]
fn decode_object_corpus() {
    replay("decode_object", wharf::testing::fuzz::decode_object);
}

#[test]
fn parse_policy_corpus() {
    replay("parse_policy", wharf::testing::fuzz::parse_policy);
}
