//! Peak memory growth of a 1 GiB blob put to the local filesystem.
//!
//! The body is generated on the fly in 1 MiB chunks, so the only memory that grows is
//! what wharf holds while streaming. Prints the growth of the peak resident set (VmHWM)
//! over the resident set before the put. `cargo bench --bench put_memory`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use wharf::{Algorithm, BlobStore, Digester, ObjectBlobStore};

const MIB: usize = 1 << 20;
const TOTAL: usize = 1024 * MIB;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/self/status"))
}

/// Chunk `i` of the generated body.
fn chunk(i: usize) -> Bytes {
    let mut state = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = vec![0u8; MIB];
    for word in out.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    out.into()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fs = LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_fsync(true);
    let store = ObjectBlobStore::new(Arc::new(fs));

    // First pass: the expected digest, through the same bounded chunks.
    let mut digester = Digester::new(Algorithm::Sha256);
    for i in 0..TOTAL / MIB {
        digester.update(&chunk(i));
    }
    let digest = digester.finish();

    let before = status_kib("VmRSS:");
    let start = Instant::now();
    rt.block_on(async {
        let mut writer = store.writer(Algorithm::Sha256).await.unwrap();
        for i in 0..TOTAL / MIB {
            writer.write(chunk(i)).await.unwrap();
        }
        writer.commit(&digest, Some(TOTAL as u64)).await.unwrap();
    });
    let elapsed = start.elapsed();
    let peak = status_kib("VmHWM:");
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "1 GiB put to the local filesystem: {:.2} s ({:.0} MiB/s); resident before {:.1} MiB, \
         peak {:.1} MiB, peak growth {growth_mib:.1} MiB (budget 64 MiB)",
        elapsed.as_secs_f64(),
        1024.0 / elapsed.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
}
