//! Building an [`OsvDatabase`] from records.
//!
//! # Sources
//!
//! [`OsvDatabase::from_records`] takes `(source, bytes)` pairs and does no I/O.
//! [`OsvDatabase::from_dir`] walks a directory tree, in name order, without following
//! symbolic links, to at most [`MAX_DEPTH`] levels, and reads every `*.json` file as
//! one record and every `*.zip` file as an OSV export: each `*.json` entry of the
//! archive is a record (its source is `<archive>!<entry>`). Other files are ignored.
//! Records are read one at a time, so memory holds the advisories, not the files.
//!
//! A record, file or archive that cannot be read is skipped and reported in the
//! [`LoadReport`] with a [`SkipReason`]; it never fails the load. Only a `dir` that
//! cannot be listed at all is an [`OsvError`].
//!
//! # Duplicates and withdrawals
//!
//! When two records share an id (an export and a directory holding the same data), the
//! one with the later `modified` time is kept (RFC 3339 times in UTC compare as text),
//! and at equal times the one whose bytes hash higher, so the result does not depend
//! on the order sources are read in. A record with `withdrawn` set is kept out of the
//! database, and so is any older copy of it.
//!
//! # Fingerprint
//!
//! `sha256:` and the hex SHA-256 of `wharf-osv-v1\n` followed by the SHA-256 of each
//! loaded record's bytes, in id order. It covers exactly the records matched against,
//! independent of file names and order; the version tag changes when matching's
//! reading of the data does, so stored findings are matched again then too.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::OsvDatabase;
use super::record::{self, Advisory, MAX_RECORD_BYTES, RecordError};
use super::zip::{ZipArchive, ZipError};

/// The most advisories a database holds; records with new ids past it are skipped.
pub const MAX_RECORDS: usize = 2_000_000;

/// The most skipped sources a report lists; the rest are only counted.
pub const MAX_LISTED_SKIPS: usize = 1_000;

/// The deepest directory level read below the one given.
pub const MAX_DEPTH: usize = 16;

/// The most directory entries looked at in one load.
pub const MAX_FILES: usize = 4_000_000;

/// What the fingerprint hashes before the records: bumped when matching reads the
/// same data differently.
const FINGERPRINT_TAG: &[u8] = b"wharf-osv-v1\n";

/// What a load read, and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Advisories loaded.
    pub loaded: usize,
    /// Records left out because they are withdrawn.
    pub withdrawn: usize,
    /// Records left out because a newer record has the same id.
    pub duplicates: usize,
    /// Sources skipped, with why (at most [`MAX_LISTED_SKIPS`]).
    pub skipped: Vec<(String, SkipReason)>,
    /// Sources skipped beyond those listed.
    pub unlisted_skips: usize,
}

impl LoadReport {
    /// How many sources were skipped in all.
    pub fn skipped_count(&self) -> usize {
        self.skipped.len() + self.unlisted_skips
    }
}

/// Why a source was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The record is not a valid OSV record.
    Record(RecordError),
    /// The archive, or this entry of it, cannot be read.
    Zip(ZipError),
    /// The file cannot be read.
    Io(String),
    /// A symbolic link (links are not followed).
    Symlink,
    /// A directory deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The walk has looked at [`MAX_FILES`] entries.
    TooManyFiles,
    /// The database already holds [`MAX_RECORDS`] advisories.
    TooManyRecords,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Record(error) => error.fmt(f),
            SkipReason::Zip(error) => error.fmt(f),
            SkipReason::Io(reason) => write!(f, "cannot be read: {reason}"),
            SkipReason::Symlink => f.write_str("a symbolic link, not followed"),
            SkipReason::TooDeep => write!(f, "more than {MAX_DEPTH} directories deep"),
            SkipReason::TooManyFiles => write!(f, "past the first {MAX_FILES} directory entries"),
            SkipReason::TooManyRecords => write!(f, "past the first {MAX_RECORDS} advisories"),
        }
    }
}

/// Why a directory could not be loaded at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsvError {
    /// The directory.
    pub path: PathBuf,
    /// Why it cannot be listed.
    pub reason: String,
}

impl fmt::Display for OsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OSV data directory {}: {}",
            self.path.display(),
            self.reason
        )
    }
}

impl std::error::Error for OsvError {}

impl OsvDatabase {
    /// A database of the records given as `(source, JSON bytes)`; `source` names the
    /// record in the report.
    pub fn from_records(
        sources: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> (OsvDatabase, LoadReport) {
        let mut loader = Loader::default();
        for (source, bytes) in sources {
            loader.add(source, &bytes);
        }
        loader.finish()
    }

    /// A database of every record under `dir` (see the [module](self) documentation).
    pub fn from_dir(dir: &Path) -> Result<(OsvDatabase, LoadReport), OsvError> {
        let error = |reason: String| OsvError {
            path: dir.to_owned(),
            reason,
        };
        let top = list(dir).map_err(|e| error(e.to_string()))?;
        let mut loader = Loader::default();
        let mut seen = 0usize;
        // Directories still to read, with their depth, the next one last.
        let mut pending = vec![(top, 0usize)];
        while let Some((entries, depth)) = pending.pop() {
            let mut subdirectories = Vec::new();
            for path in entries {
                seen += 1;
                if seen > MAX_FILES {
                    loader.skip(path.display().to_string(), SkipReason::TooManyFiles);
                    return Ok(loader.finish());
                }
                let source = path.display().to_string();
                match fs::symlink_metadata(&path) {
                    Err(e) => loader.skip(source, SkipReason::Io(e.to_string())),
                    Ok(meta) if meta.file_type().is_symlink() => {
                        loader.skip(source, SkipReason::Symlink)
                    }
                    Ok(meta) if meta.is_dir() && depth >= MAX_DEPTH => {
                        loader.skip(source, SkipReason::TooDeep)
                    }
                    Ok(meta) if meta.is_dir() => match list(&path) {
                        Ok(listed) => subdirectories.push((listed, depth + 1)),
                        Err(e) => loader.skip(source, SkipReason::Io(e.to_string())),
                    },
                    Ok(_) if has_extension(&path, "json") => loader.add_file(&path),
                    Ok(_) if has_extension(&path, "zip") => loader.add_archive(&path),
                    Ok(_) => {}
                }
            }
            // Reversed, so the first subdirectory in name order is read next.
            pending.extend(subdirectories.into_iter().rev());
        }
        Ok(loader.finish())
    }
}

/// The entries of `dir`, sorted by name.
fn list(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|e| e == extension)
}

/// One record kept so far.
struct Kept {
    advisory: Advisory,
    withdrawn: bool,
    digest: [u8; 32],
}

/// Records read so far, and the report.
#[derive(Default)]
struct Loader {
    kept: HashMap<String, Kept>,
    report: LoadReport,
}

impl Loader {
    fn skip(&mut self, source: String, reason: SkipReason) {
        if self.report.skipped.len() < MAX_LISTED_SKIPS {
            self.report.skipped.push((source, reason));
        } else {
            self.report.unlisted_skips += 1;
        }
    }

    fn add(&mut self, source: String, bytes: &[u8]) {
        let parsed = match record::parse(bytes) {
            Ok(parsed) => parsed,
            Err(error) => return self.skip(source, SkipReason::Record(error)),
        };
        let candidate = Kept {
            withdrawn: parsed.withdrawn.is_some(),
            advisory: parsed.advisory,
            digest: Sha256::digest(bytes).into(),
        };
        let full = self.kept.len() >= MAX_RECORDS;
        match self.kept.get_mut(&candidate.advisory.id) {
            Some(existing) => {
                self.report.duplicates += 1;
                let newer = (&candidate.advisory.modified, candidate.digest)
                    > (&existing.advisory.modified, existing.digest);
                if newer {
                    *existing = candidate;
                }
            }
            None if full => self.skip(source, SkipReason::TooManyRecords),
            None => {
                self.kept.insert(candidate.advisory.id.clone(), candidate);
            }
        }
    }

    fn add_file(&mut self, path: &Path) {
        let source = path.display().to_string();
        let cap = MAX_RECORD_BYTES as u64;
        let read = File::open(path).and_then(|file| {
            let mut bytes = Vec::new();
            file.take(cap + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) if bytes.len() as u64 > cap => {
                let bytes = fs::metadata(path).map_or(bytes.len(), |m| {
                    usize::try_from(m.len()).unwrap_or(usize::MAX)
                });
                self.skip(source, SkipReason::Record(RecordError::TooLarge { bytes }));
            }
            Ok(bytes) => self.add(source, &bytes),
            Err(e) => self.skip(source, SkipReason::Io(e.to_string())),
        }
    }

    fn add_archive(&mut self, path: &Path) {
        let source = path.display().to_string();
        let opened = File::open(path)
            .map_err(ZipError::from)
            .and_then(|file| ZipArchive::open(std::io::BufReader::new(file)));
        let mut archive = match opened {
            Ok(archive) => archive,
            Err(error) => return self.skip(source, SkipReason::Zip(error)),
        };
        for index in 0..archive.entries().len() {
            let Some(entry) = archive.entries().get(index) else {
                break;
            };
            if entry.is_dir() || !entry.name.ends_with(".json") {
                continue;
            }
            let entry_source = format!("{source}!{}", entry.name);
            match archive.read(index) {
                Ok(bytes) => self.add(entry_source, &bytes),
                Err(error) => self.skip(entry_source, SkipReason::Zip(error)),
            }
        }
    }

    fn finish(self) -> (OsvDatabase, LoadReport) {
        let Loader { kept, mut report } = self;
        let mut loaded: Vec<Kept> = Vec::with_capacity(kept.len());
        for (_, record) in kept {
            if record.withdrawn {
                report.withdrawn += 1;
            } else {
                loaded.push(record);
            }
        }
        loaded.sort_by(|a, b| a.advisory.id.cmp(&b.advisory.id));
        let mut hash = Sha256::new();
        hash.update(FINGERPRINT_TAG);
        for record in &loaded {
            hash.update(record.digest);
        }
        let fingerprint = format!("sha256:{}", hex(&hash.finalize()));
        report.loaded = loaded.len();
        let advisories = loaded.into_iter().map(|record| record.advisory).collect();
        (OsvDatabase::new(advisories, fingerprint), report)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
