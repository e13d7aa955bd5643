//! Blobs at rest, per repository: how new blobs are stored, which KEKs read them, KEK
//! rotation, and what storage the repositories take.
//!
//! A repository's [`AtRest`] comes from the registry's default and the repository's
//! settings (`encrypted`, `compressed`, `encryption_key`). Rotating a KEK records a
//! *redirect* from the old name to the new one in the metadata store before any data key
//! is re-wrapped: from then on new blobs are wrapped under the new KEK, and reads try the
//! new KEK and then the old, so every blob stays readable while the rotation runs, after
//! it is interrupted, and after it finishes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::{KEK_REDIRECTS, KekName, LINKS, Prefix};
use crate::blob::{AtRest, RotationProgress, check_kek_name};
use crate::codec::Compression;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Expect;
use crate::reference::RepoName;

/// How long a process trusts its copy of the redirects before reading them again: the
/// longest another process may go on wrapping new blobs under a KEK being rotated away
/// (a rotation's last pass picks those up when it runs again).
const REDIRECTS_TTL: Duration = Duration::from_secs(10);
/// Longest chain of rotations followed.
const MAX_REDIRECTS: usize = 16;

/// A rotation's record: the KEK now used instead of the one named in the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RedirectRecord {
    to: String,
    started_at_ms: u64,
    #[serde(default)]
    finished_at_ms: Option<u64>,
}

/// This process's copy of the redirects.
#[derive(Debug, Default)]
pub(super) struct KekRedirects(Mutex<Option<(Instant, BTreeMap<String, String>)>>);

/// Storage a repository, or the whole registry, takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageStats {
    /// Distinct blobs.
    pub blobs: u64,
    /// Their sizes as clients see them.
    pub logical_bytes: u64,
    /// The bytes stored for them.
    pub stored_bytes: u64,
}

impl StorageStats {
    /// Bytes saved by compression (negative: the format's overhead on content that
    /// does not compress).
    pub fn saving(&self) -> i64 {
        self.logical_bytes as i64 - self.stored_bytes as i64
    }
}

impl Registry {
    /// How `repo`'s new blobs are stored and which KEKs read its blobs.
    pub(crate) async fn at_rest_for(&self, repo: &RepoName) -> Result<AtRest> {
        let settings = match self.repository(repo).await {
            Ok(repository) => repository.settings,
            // Gone meanwhile (a collection reading what it left): the defaults.
            Err(e) if e.kind() == ErrorKind::NameUnknown => Default::default(),
            Err(e) => return Err(e),
        };
        let default = &self.inner.at_rest;
        let mut at_rest = default.clone();
        if let Some(compressed) = settings.compressed {
            at_rest.compression = match (compressed, default.compression) {
                (false, _) => Compression::Off,
                (true, Compression::Off) => Compression::default(),
                (true, level) => level,
            };
        }
        let kek = settings
            .encryption_key
            .clone()
            .or_else(|| default.encryption.clone())
            .unwrap_or_else(|| crate::keys::DEFAULT_KEK.to_owned());
        let encrypted = settings
            .encrypted
            .unwrap_or(settings.encryption_key.is_some() || default.encryption.is_some());
        // Reads use the repository's KEK even while new blobs go unencrypted: blobs
        // written under an earlier setting stay readable.
        let mut chain = self.resolve_kek(&kek).await?;
        for kek in &chain {
            self.check_key(kek).await?;
        }
        let current = chain.remove(0);
        at_rest.also_read_with = chain;
        if encrypted {
            at_rest.encryption = Some(current);
        } else {
            at_rest.encryption = None;
            at_rest.also_read_with.insert(0, current);
        }
        Ok(at_rest)
    }

    /// Stores a small blob of `repo` (a manifest) as the repository stores blobs.
    pub(crate) async fn put_bytes_in(
        &self,
        repo: &RepoName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<()> {
        let at_rest = self.at_rest_for(repo).await?;
        let mut writer = self
            .inner
            .blobs
            .writer_with(digest.algorithm(), &at_rest)
            .await?;
        let size = data.len() as u64;
        writer.write(data).await?;
        writer.commit(digest, Some(size)).await?;
        // A copy another repository stored, or a rotation since the write began.
        self.inner
            .blobs
            .grant(digest, &self.at_rest_for(repo).await?)
            .await
    }

    /// Reads a small blob of `repo` (a manifest) whole, through the repository's KEKs.
    pub(crate) async fn get_bytes_in(&self, repo: &RepoName, digest: &Digest) -> Result<Bytes> {
        let at_rest = self.at_rest_for(repo).await?;
        self.inner
            .blobs
            .read_with(digest, None, &at_rest)
            .await?
            .bytes()
            .await
    }

    /// `kek` and what rotations replaced it with: the KEK in use first, then the older
    /// names back to `kek`.
    async fn resolve_kek(&self, kek: &str) -> Result<Vec<String>> {
        let redirects = self.kek_redirects().await?;
        let mut chain = vec![kek.to_owned()];
        while let Some(next) = redirects.get(chain.last().expect("never empty")) {
            if chain.contains(next) || chain.len() > MAX_REDIRECTS {
                break;
            }
            chain.push(next.clone());
        }
        chain.reverse();
        Ok(chain)
    }

    async fn kek_redirects(&self) -> Result<BTreeMap<String, String>> {
        {
            let cached = self
                .inner
                .kek_redirects
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((at, redirects)) = cached.as_ref()
                && at.elapsed() < REDIRECTS_TTL
            {
                return Ok(redirects.clone());
            }
        }
        self.reload_kek_redirects().await
    }

    async fn reload_kek_redirects(&self) -> Result<BTreeMap<String, String>> {
        let mut redirects = BTreeMap::new();
        for row in KEK_REDIRECTS.list_all(self.meta(), &Prefix::all()).await? {
            redirects.insert(row.key.0, row.value.to);
        }
        *self
            .inner
            .kek_redirects
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), redirects.clone()));
        Ok(redirects)
    }

    /// [`Registry::rotate_kek_with`] without progress reports.
    pub async fn rotate_kek(&self, from: &str, to: &str) -> Result<RotationProgress> {
        self.rotate_kek_with(from, to, &|_| {}).await
    }

    /// Rotates the KEK `from` to `to`: repositories and defaults naming `from` use `to`
    /// from now on, and every data key wrapped under `from` is wrapped again under `to`.
    /// No blob is rewritten. Blobs stay readable through `from` and `to` while it runs;
    /// interrupted (a crash, a storage error), it is finished by calling it again.
    /// `progress` hears how many wraps are done out of how many were found.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use wharf::keys::MemoryKeyProvider;
    /// use wharf::{Algorithm, Digest, Registry, object_store::memory::InMemory};
    ///
    /// let keys = Arc::new(MemoryKeyProvider::default());
    /// keys.generate("default")?;
    /// let registry = Registry::builder()
    ///     .object_store(Arc::new(InMemory::new()))
    ///     .meta_store(Arc::new(wharf::MemoryMetaStore::new()))
    ///     .key_provider(keys.clone())
    ///     .build()?;
    /// let repo = "app".parse()?;
    /// let layer = bytes::Bytes::from_static(b"layer");
    /// let digest = Digest::of(Algorithm::Sha256, &layer);
    /// registry.push_blob(&repo, &digest, layer.clone()).await?;
    ///
    /// keys.generate("2026-11")?;
    /// let done = registry.rotate_kek("default", "2026-11").await?;
    /// assert_eq!((done.rewrapped, done.total), (1, 1));
    /// keys.remove("default");
    /// assert_eq!(registry.read_blob(&repo, &digest, None).await?.bytes().await?, layer);
    /// # Ok::<(), wharf::Error>(()) }).unwrap();
    /// ```
    pub async fn rotate_kek_with(
        &self,
        from: &str,
        to: &str,
        progress: &(dyn Fn(RotationProgress) + Send + Sync),
    ) -> Result<RotationProgress> {
        check_kek_name(from)?;
        check_kek_name(to)?;
        if from == to {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("rotating key-encryption key {from:?} to itself"),
            ));
        }
        if self.resolve_kek(to).await?.len() > 1 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("key-encryption key {to:?} was itself rotated away"),
            ));
        }
        let key = KekName(from.to_owned());
        let existing = KEK_REDIRECTS.get(self.meta(), &key).await?;
        let started_at_ms = match existing {
            Some((record, _)) => {
                if record.to != to {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "key-encryption key {from:?} is being rotated to {:?}, not {to:?}",
                            record.to
                        ),
                    ));
                }
                record.started_at_ms
            }
            None => self.now_millis(),
        };
        let record = RedirectRecord {
            to: to.to_owned(),
            started_at_ms,
            finished_at_ms: None,
        };
        KEK_REDIRECTS
            .put(self.meta(), &key, &record, Expect::Any)
            .await?;
        self.reload_kek_redirects().await?;
        let done = self.inner.blobs.rotate_kek(from, to, progress).await?;
        let record = RedirectRecord {
            finished_at_ms: Some(self.now_millis()),
            ..record
        };
        KEK_REDIRECTS
            .put(self.meta(), &key, &record, Expect::Any)
            .await?;
        Ok(done)
    }

    /// The storage `repo`'s blobs take (shared blobs count in full in each repository
    /// that links them), or, without a repository, the whole registry's (each blob once).
    pub async fn storage_stats(&self, repo: Option<&RepoName>) -> Result<StorageStats> {
        let within = match repo {
            Some(repo) => Prefix::in_repo(repo),
            None => Prefix::all(),
        };
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut stats = StorageStats::default();
        let mut after = None;
        while let Some(page) = LINKS.next_page(self.meta(), &within, &mut after).await? {
            for row in page {
                let digest = row.key.item;
                if !seen.insert(digest.clone()) {
                    continue;
                }
                if let Some(footprint) = self.inner.blobs.footprint(&digest).await? {
                    stats.blobs += 1;
                    stats.logical_bytes += footprint.logical;
                    stats.stored_bytes += footprint.stored;
                }
            }
        }
        Ok(stats)
    }
}
