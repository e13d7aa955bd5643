//! The crate's modules depend one way, as `src/lib.rs` states: every `crate::<module>`
//! named in a module's files is in its own layer or below, and within a layer the
//! dependencies have no cycle. Read from the source text, so a new back edge fails here
//! before it tangles the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom, as `src/lib.rs` documents it. `testing` (the conformance suites) sits
/// beside the facade.
const LAYERS: &[&[&str]] = &[
    &["registry", "testing"],
    &[
        "upload",
        "lifecycle",
        "events",
        "access",
        "scan",
        "transfer",
        "remote",
    ],
    &["blob", "meta", "keys", "manifest"],
    &["codec", "reference", "digest", "sigv4"],
    &["util", "hex", "clock", "strict_json"],
    &["error"],
];

/// The top-level module a source file belongs to (`src/blob/writer.rs` -> `blob`).
fn module_of(path: &Path, src: &Path) -> String {
    let relative = path.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every lowercase name after `crate::` in `text`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn modules_depend_only_on_their_layer_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(layer, names)| names.iter().map(move |name| (*name, layer)))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file, &src);
        // `src/bin/` holds binaries (the server): users of the library, not part of it,
        // so `crate::` there names the binary's own modules.
        if module == "lib" || module == "bin" {
            continue;
        }
        assert!(
            layer_of.contains_key(module.as_str()),
            "module {module} ({}) is in no layer: add it to LAYERS here and to the layering in src/lib.rs",
            file.display()
        );
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_paths(&text) {
            assert!(
                layer_of.contains_key(used.as_str()),
                "{} names crate::{used}, which is not a module in a layer (name items through their module)",
                file.display()
            );
            if used != module {
                assert!(
                    layer_of[used.as_str()] >= layer_of[module.as_str()],
                    "{} ({module}) reaches up to {used}",
                    file.display()
                );
                edges.entry(module.clone()).or_default().insert(used);
            }
        }
    }
    // Within a layer, no cycle: follow every edge and never come back.
    fn reaches(
        edges: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        edges
            .get(from)
            .into_iter()
            .flatten()
            .any(|next| next == to || (seen.insert(next.clone()) && reaches(edges, next, to, seen)))
    }
    for (module, used) in &edges {
        for other in used {
            assert!(
                !reaches(&edges, other, module, &mut BTreeSet::new()),
                "a cycle: {module} uses {other}, which leads back to {module}"
            );
        }
    }
}
