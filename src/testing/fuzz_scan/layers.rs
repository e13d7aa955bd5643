//! Fuzz bodies for the layer walk: the tar reader, whiteouts and the analyzers together.

use std::io::Cursor;

use crate::scan::inventory::BuiltinAnalyzers;
use crate::scan::walk::{LayerInput, WalkLimits, walk};

/// Walks `data` as a plain tar layer, then as two stacked layers split at a point the
/// first byte picks: never a panic; every kept path is normalised (no leading `/`, no
/// `..` or empty segment) and the counts stay within the limits.
pub fn walk_layer(data: &[u8]) {
    let limits = WalkLimits {
        max_entries: 10_000,
        max_found: 1_000,
        ..WalkLimits::default()
    };
    let layer = |bytes: &[u8]| LayerInput {
        digest: "sha256:fuzz".to_owned(),
        media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
        bytes: Box::new(Cursor::new(bytes.to_vec())),
    };
    let cut = usize::from(data.first().copied().unwrap_or(0)) * 512 % (data.len().max(1));
    let stacks = [
        vec![layer(data)],
        vec![layer(&data[..cut]), layer(&data[cut..])],
    ];
    for layers in stacks {
        if let Ok(walked) = walk(layers, &BuiltinAnalyzers::default(), &limits) {
            assert!(walked.entries.len() <= limits.max_found);
            for path in walked.entries.keys() {
                assert!(!path.starts_with('/'), "{path}");
                assert!(
                    path.split('/')
                        .all(|p| !p.is_empty() && p != ".." && p != "."),
                    "{path}"
                );
            }
            // Resolution terminates, with or without a finding.
            for path in crate::scan::inventory::OS_RELEASE {
                let _ = walked.resolve(path);
            }
        }
    }
}
