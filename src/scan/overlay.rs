//! The image's filesystem as its layers stack up, kept only for the paths that found
//! something, with OCI whiteouts applied.
//!
//! # Rules (OCI image spec, "Representing Changes")
//!
//! Layers apply base first. In layer `n`:
//! - `dir/.wh.name` deletes `dir/name`, and everything under it, from layers below `n`;
//! - `dir/.wh..wh..opq` makes `dir` opaque: everything under it from layers below `n`
//!   is gone (entries of layer `n` itself stay, in whatever order the tar lists them);
//! - any other non-directory entry at `p` replaces what lower layers had at `p`, and a
//!   directory below `p` with it;
//! - a directory entry at `p` replaces a lower non-directory at `p` and merges with a
//!   lower directory.
//!
//! Only the lower layers are touched while layer `n` is read; its own entries are kept
//! apart and laid on top when it ends, so the order of entries within a layer never
//! matters.

use std::collections::BTreeMap;
use std::ops::Bound;

/// The prefix that marks a whiteout file.
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// The name that marks a directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Something found at a path, in the layer with index `layer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed<T> {
    /// The index of the layer, base first.
    pub layer: usize,
    /// What was found.
    pub value: T,
}

/// The stack of layers seen so far, reduced to the paths that hold a `T`.
#[derive(Debug)]
pub struct Overlay<T> {
    lower: BTreeMap<String, Placed<T>>,
    current: BTreeMap<String, Placed<T>>,
    layer: usize,
}

impl<T> Default for Overlay<T> {
    fn default() -> Self {
        Overlay {
            lower: BTreeMap::new(),
            current: BTreeMap::new(),
            layer: 0,
        }
    }
}

impl<T: Clone> Overlay<T> {
    /// A new, empty overlay at the base layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one entry of the current layer: deletes what it hides below, and records
    /// `found` (when something was found at its path) for this layer.
    pub fn apply(&mut self, path: &str, is_dir: bool, found: Option<T>) {
        let (dir, name) = match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        if name == OPAQUE_MARKER {
            self.remove_below(dir, false);
            return;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let deleted = if dir.is_empty() {
                hidden.to_owned()
            } else {
                format!("{dir}/{hidden}")
            };
            self.remove_below(&deleted, true);
            return;
        }
        if is_dir {
            self.lower.remove(path);
        } else {
            self.remove_below(path, true);
        }
        if let Some(value) = found {
            self.current.insert(
                path.to_owned(),
                Placed {
                    layer: self.layer,
                    value,
                },
            );
        }
    }

    /// What the stack holds at `path`, looking at the current layer first.
    pub fn get(&self, path: &str) -> Option<&Placed<T>> {
        self.current.get(path).or_else(|| self.lower.get(path))
    }

    /// Ends the current layer: its entries lie on top of the lower ones.
    pub fn end_layer(&mut self) {
        let current = std::mem::take(&mut self.current);
        self.lower.extend(current);
        self.layer += 1;
    }

    /// How many paths hold something.
    pub fn len(&self) -> usize {
        self.lower.len() + self.current.len()
    }

    /// Whether no path holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything found, by path, once the last layer has ended.
    pub fn into_entries(mut self) -> BTreeMap<String, Placed<T>> {
        self.end_layer();
        self.lower
    }

    /// Removes from the lower layers everything under `dir/` (and `dir` itself when
    /// `itself`; the root when `dir` is empty).
    fn remove_below(&mut self, dir: &str, itself: bool) {
        if itself {
            self.lower.remove(dir);
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let doomed: Vec<String> = self
            .lower
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.lower.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(
        layers: &[&[(&str, bool, Option<&'static str>)]],
    ) -> Vec<(String, usize, &'static str)> {
        let mut overlay = Overlay::new();
        for layer in layers {
            for &(path, is_dir, found) in *layer {
                overlay.apply(path, is_dir, found);
            }
            overlay.end_layer();
        }
        overlay
            .into_entries()
            .into_iter()
            .map(|(p, placed)| (p, placed.layer, placed.value))
            .collect()
    }

    #[test]
    fn whiteout_deletes_a_lower_file_and_its_subtree() {
        let found = stack(&[
            &[
                ("var/lib/dpkg/status", false, Some("a")),
                ("opt/x/y", false, Some("b")),
            ],
            &[
                ("var/lib/dpkg/.wh.status", false, None),
                ("opt/.wh.x", false, None),
            ],
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn opaque_directory_hides_lower_entries_but_not_its_own() {
        let found = stack(&[
            &[
                ("usr/lib/a", false, Some("lower")),
                ("usr/libx", false, Some("sibling")),
            ],
            &[
                ("usr/lib/b", false, Some("upper")),
                ("usr/lib/.wh..wh..opq", false, None),
            ],
        ]);
        assert_eq!(
            found,
            vec![
                ("usr/lib/b".to_owned(), 1, "upper"),
                ("usr/libx".to_owned(), 0, "sibling"),
            ]
        );
    }

    #[test]
    fn replacement_wins_and_file_over_directory_hides_it() {
        let found = stack(&[
            &[
                ("etc/os-release", false, Some("old")),
                ("app/lib/pkg", false, Some("deep")),
            ],
            &[
                ("etc/os-release", false, Some("new")),
                ("app/lib", false, None),
            ],
        ]);
        assert_eq!(found, vec![("etc/os-release".to_owned(), 1, "new")]);
    }

    #[test]
    fn root_whiteout_and_untracked_replacement() {
        let found = stack(&[
            &[
                ("status", false, Some("x")),
                ("etc/os-release", false, Some("y")),
            ],
            &[(".wh.status", false, None), ("etc/os-release", false, None)],
        ]);
        assert!(found.is_empty(), "{found:?}");
    }
}
