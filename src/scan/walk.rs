//! Walks an image's layers once, base first, and keeps what the analyzers find.
//!
//! Each layer is decompressed as a stream ([`Expanded`]) and read as tar ([`TarReader`]);
//! every entry is offered to the [`Analyzers`], which want a few paths (package
//! databases, `os-release`, metadata files, binaries that start with a magic number).
//! A wanted file's bytes are read into one reused buffer, up to the analyzer's cap, and
//! analyzed at once; only the result is kept, in an [`Overlay`] that applies whiteouts.
//! So memory holds one wanted file at a time plus the results, whatever the layer sizes.
//!
//! Hostile layers end the walk with [`WalkError::Failed`] and a reason: a tar that is
//! truncated or corrupt, a name that climbs out of the root, a decompression bomb, too
//! many entries, a symlink loop on a path an analyzer needs. A layer that is not a
//! filesystem at all ends it with [`WalkError::Unsupported`].

use std::collections::BTreeMap;
use std::io::Read;

use super::decompress::{Expanded, ExpansionLimits, LayerCompression};
use super::overlay::{Overlay, Placed};
use super::tar::{EntryKind, TarReader};

/// Bounds on one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// What a layer may decompress to.
    pub expansion: ExpansionLimits,
    /// The most tar entries one layer may hold.
    pub max_entries: u64,
    /// The most paths with a finding kept across the image.
    pub max_found: usize,
    /// The most symlinks followed to resolve one path.
    pub max_symlink_hops: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            expansion: ExpansionLimits::default(),
            max_entries: 4_000_000,
            max_found: 1_000_000,
            max_symlink_hops: 40,
        }
    }
}

/// What an analyzer wants of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The most bytes read; a larger file is skipped with a note.
    pub cap: usize,
    /// Bytes the file must start with to be read at all (a binary's magic number);
    /// only that many are read of files that do not.
    pub magic: Option<&'static [u8]>,
}

/// The analyzers a walk offers files to.
pub trait Analyzers {
    /// What an analysis yields; kept per path.
    type Found: Clone;

    /// Whether the regular file at `path` (normalised, no leading `/`) is wanted.
    fn wants(&self, path: &str, mode: u32, size: u64) -> Option<Wanted>;

    /// Whether a symlink at `path` is kept, to be resolved at the end ([`Walked::resolve`]).
    fn follows(&self, path: &str) -> bool;

    /// Analyzes a wanted file's bytes.
    fn analyze(&self, path: &str, data: &[u8]) -> Self::Found;
}

/// What a path holds once the layers are stacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node<F> {
    /// An analyzer's result for the file there.
    Found(F),
    /// A symlink, with its target as written.
    Link(String),
}

/// Why a walk stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError {
    /// The image cannot be scanned by design (a layer that is not a filesystem).
    Unsupported(String),
    /// The image's content is malformed, hostile, or could not be read.
    Failed(String),
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Unsupported(reason) | WalkError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// One layer to walk: its identity, media type and compressed bytes.
pub struct LayerInput {
    /// The layer's digest, for notes and errors.
    pub digest: String,
    /// The layer's media type.
    pub media_type: String,
    /// The compressed bytes, read once.
    pub bytes: Box<dyn Read + Send>,
}

impl std::fmt::Debug for LayerInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerInput")
            .field("digest", &self.digest)
            .field("media_type", &self.media_type)
            .finish_non_exhaustive()
    }
}

/// The most notes kept; later ones are counted.
const MAX_NOTES: usize = 100;

/// The outcome of a walk.
#[derive(Debug)]
pub struct Walked<F> {
    /// What each path holds, with the layer it came from.
    pub entries: BTreeMap<String, Placed<Node<F>>>,
    /// Files skipped and why (over a cap), at most 100.
    pub notes: Vec<String>,
    /// Uncompressed bytes read across the layers.
    pub bytes: u64,
    hops: usize,
}

impl<F> Walked<F> {
    /// The result at `path`, following symlinks kept there (relative targets resolve
    /// against the link's directory, absolute ones against the root). `Ok(None)` when
    /// nothing was found; an error for a loop or a chain longer than the hop limit.
    pub fn resolve(&self, path: &str) -> Result<Option<&Placed<Node<F>>>, WalkError> {
        let mut at = path.to_owned();
        for _ in 0..=self.hops {
            match self.entries.get(&at) {
                Some(Placed {
                    value: Node::Link(target),
                    ..
                }) => {
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        let dir = at.rfind('/').map_or("", |i| &at[..i]);
                        format!("{dir}/{target}")
                    };
                    // `..` above the root stays at the root, as the kernel resolves it.
                    at = clamp_to_root(&joined);
                }
                other => return Ok(other),
            }
        }
        Err(WalkError::Failed(format!(
            "symlink loop (or a chain over {} links) at {path}",
            self.hops
        )))
    }

    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }
}

fn clamp_to_root(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Walks `layers` base first and returns what the analyzers found.
pub fn walk<A: Analyzers>(
    layers: impl IntoIterator<Item = LayerInput>,
    analyzers: &A,
    limits: &WalkLimits,
) -> Result<Walked<A::Found>, WalkError> {
    let mut overlay = Overlay::new();
    let mut walked = Walked {
        entries: BTreeMap::new(),
        notes: Vec::new(),
        bytes: 0,
        hops: limits.max_symlink_hops,
    };
    let mut buffer = Vec::new();
    for layer in layers {
        let compression = LayerCompression::of_media_type(&layer.media_type).ok_or_else(|| {
            WalkError::Unsupported(format!(
                "layer {} has media type {}, which is not a filesystem layer",
                layer.digest, layer.media_type
            ))
        })?;
        let failed =
            |reason: String| WalkError::Failed(format!("layer {}: {reason}", layer.digest));
        let expanded = Expanded::new(layer.bytes, compression, limits.expansion)
            .map_err(|e| failed(e.to_string()))?;
        let mut tar = TarReader::new(expanded);
        walk_layer(
            &mut tar,
            analyzers,
            limits,
            &mut overlay,
            &mut walked,
            &mut buffer,
        )
        .map_err(failed)?;
        // Read what follows the end-of-archive marker, so the blob's own end (and the
        // digest check the store makes there) is reached.
        let mut rest = tar.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| failed(e.to_string()))?;
        walked.bytes += rest.produced();
        overlay.end_layer();
    }
    walked.entries = overlay.into_entries();
    Ok(walked)
}

fn walk_layer<A: Analyzers, R: Read>(
    tar: &mut TarReader<R>,
    analyzers: &A,
    limits: &WalkLimits,
    overlay: &mut Overlay<Node<A::Found>>,
    walked: &mut Walked<A::Found>,
    buffer: &mut Vec<u8>,
) -> Result<(), String> {
    let mut entries: u64 = 0;
    while let Some(entry) = tar.next_entry().map_err(|e| e.to_string())? {
        entries += 1;
        if entries > limits.max_entries {
            return Err(format!("more than {} entries", limits.max_entries));
        }
        let found = match entry.kind {
            EntryKind::Directory => {
                overlay.apply(&entry.path, true, None);
                continue;
            }
            EntryKind::Symlink => analyzers
                .follows(&entry.path)
                .then(|| Node::Link(entry.link.clone().unwrap_or_default())),
            EntryKind::Hardlink => match (analyzers.wants(&entry.path, entry.mode, 0), &entry.link)
            {
                (Some(_), Some(target)) => overlay.get(target).map(|p| p.value.clone()),
                _ => None,
            },
            EntryKind::File => match analyzers.wants(&entry.path, entry.mode, entry.size) {
                Some(wanted) => read_wanted(
                    tar,
                    analyzers,
                    &entry.path,
                    entry.size,
                    wanted,
                    walked,
                    buffer,
                )?,
                None => None,
            },
            EntryKind::Other => None,
        };
        overlay.apply(&entry.path, false, found);
        if overlay.len() > limits.max_found {
            return Err(format!(
                "more than {} files with findings",
                limits.max_found
            ));
        }
    }
    Ok(())
}

fn read_wanted<A: Analyzers, R: Read>(
    tar: &mut TarReader<R>,
    analyzers: &A,
    path: &str,
    size: u64,
    wanted: Wanted,
    walked: &mut Walked<A::Found>,
    buffer: &mut Vec<u8>,
) -> Result<Option<Node<A::Found>>, String> {
    if let Some(magic) = wanted.magic {
        if size < magic.len() as u64 {
            return Ok(None);
        }
        let mut head = vec![0u8; magic.len()];
        let mut filled = 0;
        while filled < head.len() {
            let got = tar
                .read_body_chunk(&mut head[filled..])
                .map_err(|e| e.to_string())?;
            if got == 0 {
                return Ok(None);
            }
            filled += got;
        }
        if head != magic {
            return Ok(None);
        }
        if size > wanted.cap as u64 {
            walked.note(format!(
                "{path}: {size} bytes, over the {} byte cap; not read",
                wanted.cap
            ));
            return Ok(None);
        }
        buffer.clear();
        buffer.extend_from_slice(&head);
        tar.read_body(buffer, wanted.cap)
            .map_err(|e| e.to_string())?;
    } else {
        if size > wanted.cap as u64 {
            walked.note(format!(
                "{path}: {size} bytes, over the {} byte cap; not read",
                wanted.cap
            ));
            return Ok(None);
        }
        buffer.clear();
        tar.read_body(buffer, wanted.cap)
            .map_err(|e| e.to_string())?;
    }
    let found = analyzers.analyze(path, buffer);
    // A large database's bytes are not kept for the rest of the walk.
    if buffer.capacity() > LARGE_BUFFER {
        *buffer = Vec::new();
    }
    Ok(Some(Node::Found(found)))
}

/// A read buffer larger than this is freed after use rather than reused.
const LARGE_BUFFER: usize = 4 << 20;
