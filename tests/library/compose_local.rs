//! `LocalComposer`: staged files joined by the kernel into the published one.

use object_store::path::Path;
use wharf::ErrorKind;
use wharf::blob::{Composer, LocalComposer, StagedObject};

fn staged(path: &str, len: u64) -> StagedObject {
    StagedObject {
        path: Path::from(path),
        len,
    }
}

fn write(root: &std::path::Path, path: &str, bytes: &[u8]) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, bytes).unwrap();
}

/// Names in `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The target is the parts end to end, each only to its length (a part may hold bytes
/// past it, from a write that failed after a checkpoint); the parts stay, and no
/// temporary file is left.
#[tokio::test]
async fn parts_are_joined_to_their_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "uploads/u1/000000-a", b"hello, ");
    write(root, "uploads/u1/000001-b", b"composed world!!! and more");
    write(root, "uploads/u1/000002-c", &[7u8; 300_000]);
    let composer = LocalComposer::new(root);
    composer
        .compose(
            &[
                staged("uploads/u1/000000-a", 7),
                staged("uploads/u1/000001-b", 15),
                staged("uploads/u1/000002-c", 300_000),
            ],
            &Path::from("blobs/sha256/ab/abcdef"),
        )
        .await
        .unwrap();
    let joined = std::fs::read(root.join("blobs/sha256/ab/abcdef")).unwrap();
    assert_eq!(&joined[..22], b"hello, composed world!");
    assert_eq!(joined.len(), 22 + 300_000);
    assert!(joined[22..].iter().all(|b| *b == 7));
    assert_eq!(
        names(&root.join("uploads/u1")),
        ["000000-a", "000001-b", "000002-c"]
    );
}

/// A part shorter than its length fails the compose: nothing is published and the
/// temporary file is removed. So does a part that is missing.
#[tokio::test]
async fn a_short_or_missing_part_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "uploads/u2/000000-a", b"0123456789");
    write(root, "uploads/u2/000001-b", b"short");
    let composer = LocalComposer::new(root);
    let target = Path::from("blobs/sha256/cd/cdef");
    for second in [
        staged("uploads/u2/000001-b", 6),
        staged("uploads/u2/000002-x", 1),
    ] {
        let err = composer
            .compose(&[staged("uploads/u2/000000-a", 10), second], &target)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage);
        assert!(err.to_string().contains("composing"), "{err}");
        assert!(!root.join("blobs/sha256/cd/cdef").exists());
        assert_eq!(names(&root.join("uploads/u2")), ["000000-a", "000001-b"]);
    }
    let short = composer
        .compose(
            &[
                staged("uploads/u2/000000-a", 10),
                staged("uploads/u2/000001-b", 6),
            ],
            &target,
        )
        .await
        .unwrap_err();
    assert!(
        short.to_string().contains("holds 5 of its 6 bytes"),
        "{short}"
    );
}

/// Paths that would need escaping on disk, and empty part lists, are refused.
#[tokio::test]
async fn odd_paths_and_no_parts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let composer = LocalComposer::new(dir.path());
    let err = composer
        .compose(&[staged("uploads/a b/part", 1)], &Path::from("blobs/x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = composer
        .compose(&[], &Path::from("blobs/x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// A 6 GiB blob written in three checkpointed parts is joined on local disk and reads
/// back. Slow (12 GiB written): run by `scripts/large-blob-test`, not by `scripts/test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "12 GiB of disk writes: scripts/large-blob-test runs it"]
async fn six_gib_blob_is_joined_on_local_disk() {
    use wharf::{Algorithm, BlobStore, Digester, ObjectBlobStore};
    let dir = tempfile::tempdir().unwrap();
    let (local, composer) = wharf::blob::local_objects(dir.path()).unwrap();
    let store = ObjectBlobStore::new(local)
        .with_at_rest(wharf::AtRest::plain())
        .with_composer(composer);
    let size = 6u64 << 30;
    let chunk: bytes::Bytes = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut hasher = Digester::new(Algorithm::Sha256);
    let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
    for i in 0..size / chunk.len() as u64 {
        hasher.update(&chunk);
        writer.write(chunk.clone()).await.unwrap();
        if (i + 1) % 256 == 0 {
            writer.checkpoint().await.unwrap();
        }
    }
    let digest = hasher.finish();
    let started = std::time::Instant::now();
    writer.commit(&digest, Some(size)).await.unwrap();
    eprintln!("joined 6 GiB from three parts in {:?}", started.elapsed());
    assert_eq!(
        store.stat(&digest).await.unwrap().map(|i| i.size),
        Some(size)
    );
    let hex = digest.hex();
    let file = dir.path().join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
    assert_eq!(std::fs::metadata(file).unwrap().len(), size);
    let tail = store
        .read(&digest, Some(size - 100..size))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(tail, chunk.slice(chunk.len() - 100..));
}
