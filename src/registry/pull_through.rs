//! A pull-through cache, as ECR has it: rules that map a repository prefix to an
//! upstream registry. A pull under the prefix that misses here is fetched from upstream,
//! stored and served at once; later pulls are local.
//!
//! - **Manifests.** One held here by digest is served from here (it cannot change). A tag
//!   is served from here while upstream's last answer for it is younger than the rule's
//!   TTL (ECR's is 24 hours) and the tag still points where that answer said; otherwise
//!   upstream is asked what the tag names now. An image not held yet is served from
//!   upstream's bytes (checked against their digest) while a background import brings it
//!   in whole — blobs, then manifests children first, then the tag, as a push would — so
//!   nothing is visible here before everything it references is. An index brings every
//!   platform: the index cannot be stored before its children.
//! - **Blobs.** One not held is fetched once, however many requests miss it at the same
//!   time (`pull_through_fetch.rs`); each streams it as it arrives.
//! - **Upstream down** (unreachable, failing, refusing us): what is held here is served,
//!   however old. Upstream no longer naming a tag does not delete it here either.
//! - **Who may import.** Reading goes through the usual actions; bringing anything in from
//!   upstream also needs `ecr:BatchImportUpstreamImage` (checked by [`CallerRegistry`]).
//!   The rule itself is the consent to create repositories under its prefix, so the first
//!   pull needs no `ecr:CreateRepository`.
//!
//! [`CallerRegistry`]: super::CallerRegistry

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use super::pull_through_fetch::{BlobFetch, OnDrop};
use super::pull_through_records::UpstreamTagRecord;
use super::remote_copy::{CopyOptions, RemoteGraph};
use super::schema::{InRepo, UPSTREAM_TAGS};
use super::{ManifestInfo, Registry, StoredManifest};
use crate::blob::{BlobInfo, BlobRead};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Descriptor;
use crate::meta::Expect;
use crate::reference::{Reference, RepoName, Tag};
use crate::remote::{RemoteManifest, RemoteRegistry};

/// How long a tag is served without asking upstream again, unless a rule says otherwise
/// (ECR's figure).
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Blobs an import fetches at once.
const PARALLEL_BLOBS: usize = 2;

/// Repositories under a prefix, cached from an upstream registry.
#[derive(Debug, Clone)]
pub struct PullThroughRule {
    /// Repositories whose names start with this (`hub/`, ending in `/`).
    pub prefix: String,
    /// The registry they come from.
    pub upstream: Arc<RemoteRegistry>,
    /// Put in front of the rest of the name upstream: with `library/`, `hub/alpine` is
    /// `library/alpine` there; with nothing, `hub/library/alpine` is.
    pub upstream_prefix: String,
    /// How long a tag is served without asking upstream again.
    pub tag_ttl: Duration,
}

impl PullThroughRule {
    /// A rule for `prefix` with upstream names unchanged and the default TTL.
    pub fn new(prefix: &str, upstream: Arc<RemoteRegistry>) -> Self {
        PullThroughRule {
            prefix: prefix.to_owned(),
            upstream,
            upstream_prefix: String::new(),
            tag_ttl: DEFAULT_TAG_TTL,
        }
    }

    fn validate(&self) -> Result<()> {
        let invalid = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("pull-through prefix {:?}: {why}", self.prefix),
            )
        };
        let Some(stem) = self.prefix.strip_suffix('/') else {
            return Err(invalid("must end with /"));
        };
        stem.parse::<RepoName>()
            .map_err(|e| invalid(&format!("not a repository name and a /: {e}")))?;
        if !(self.upstream_prefix.is_empty() || self.upstream_prefix.ends_with('/')) {
            return Err(invalid("the upstream prefix must be empty or end with /"));
        }
        Ok(())
    }

    /// The name upstream of `repo` (which the rule covers).
    pub(super) fn upstream_name(&self, repo: &RepoName) -> String {
        let rest = &repo.as_str()[self.prefix.len()..];
        format!("{}{rest}", self.upstream_prefix)
    }
}

/// The rules of a registry's pull-through cache and where its fetches spool.
#[derive(Debug, Clone)]
pub struct PullThroughSettings {
    /// The rules; a repository takes the one with the longest matching prefix.
    pub rules: Vec<PullThroughRule>,
    /// Where blobs being fetched are spooled for the requests that follow them (unlinked
    /// files: nothing stays).
    pub spool_dir: PathBuf,
}

impl PullThroughSettings {
    /// `rules`, spooling in the system's temporary directory.
    pub fn new(rules: Vec<PullThroughRule>) -> Self {
        PullThroughSettings {
            rules,
            spool_dir: std::env::temp_dir(),
        }
    }
}

/// The settings and what runs now.
#[derive(Debug, Default)]
pub(super) struct PullThroughState {
    settings: RwLock<Option<Arc<PullThroughSettings>>>,
    pub(super) fetches: Mutex<HashMap<(RepoName, Digest), Arc<BlobFetch>>>,
    imports: Mutex<HashSet<(RepoName, Digest, Option<Tag>)>>,
    pub(super) idle: tokio::sync::Notify,
}

impl PullThroughState {
    fn busy(&self) -> bool {
        let fetching = self.fetches.lock().map(|f| !f.is_empty()).unwrap_or(false);
        let importing = self.imports.lock().map(|i| !i.is_empty()).unwrap_or(false);
        fetching || importing
    }
}

/// Whether a manifest reference can be answered from here without asking upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Yes.
    Fresh,
    /// Held, but upstream should be asked first (a tag past its TTL).
    Stale,
    /// Not held.
    Missing,
}

impl Registry {
    /// Sets the pull-through rules (replacing any before).
    pub fn set_pull_through(&self, settings: PullThroughSettings) -> Result<()> {
        for rule in &settings.rules {
            rule.validate()?;
        }
        let mut current = self
            .inner
            .pull_through
            .settings
            .write()
            .map_err(|_| Error::new(ErrorKind::Storage, "pull-through settings poisoned"))?;
        *current = Some(Arc::new(settings));
        Ok(())
    }

    /// The rule covering `repo`, if any.
    pub fn pull_through_rule(&self, repo: &RepoName) -> Option<PullThroughRule> {
        let settings = self.pull_through_settings()?;
        settings
            .rules
            .iter()
            .filter(|rule| repo.as_str().starts_with(&rule.prefix))
            .max_by_key(|rule| rule.prefix.len())
            .cloned()
    }

    pub(super) fn pull_through_settings(&self) -> Option<Arc<PullThroughSettings>> {
        self.inner.pull_through.settings.read().ok()?.clone()
    }

    /// Waits until no pull-through fetch or import runs in this process.
    pub async fn pull_through_settled(&self) {
        let state = &self.inner.pull_through;
        loop {
            let idle = state.idle.notified();
            if !state.busy() {
                return;
            }
            idle.await;
        }
    }

    /// [`Registry::get_manifest`], through the pull-through cache when a rule covers
    /// `repo`; `import` says whether what is missing may be brought from upstream.
    pub async fn get_manifest_through(
        &self,
        repo: &RepoName,
        reference: &Reference,
        import: bool,
    ) -> Result<StoredManifest> {
        let Some(rule) = self.pull_through_rule(repo) else {
            return self.get_manifest(repo, reference).await;
        };
        let held = self.held(&rule, repo, reference).await?;
        match (held, import) {
            (Held::Fresh, _) | (Held::Stale, false) => {
                return self.get_manifest(repo, reference).await;
            }
            // Only a caller who may import makes the cache ask upstream or write.
            (Held::Missing, false) => {
                return Err(Error::new(
                    ErrorKind::Denied,
                    format!(
                        "{reference} is not cached in {repo}, and bringing it from upstream needs ecr:BatchImportUpstreamImage"
                    ),
                ));
            }
            (Held::Stale | Held::Missing, true) => {}
        }
        let upstream_name = rule.upstream_name(repo);
        let asked_at_ms = self.inner.clock.now_millis();
        let asked = rule
            .upstream
            .manifest(&upstream_name, &reference.to_string())
            .await;
        match asked {
            Ok(Some(remote)) => {
                self.answer_from_upstream(&rule, repo, reference, remote, asked_at_ms)
                    .await
            }
            Ok(None) if held == Held::Stale => self.get_manifest(repo, reference).await,
            Ok(None) => Err(Error::new(
                ErrorKind::ManifestUnknown,
                format!(
                    "{reference} is neither in {repo} nor upstream in {}{upstream_name}",
                    rule.upstream.url()
                ),
            )),
            Err(e) if held == Held::Stale => {
                tracing::warn!(%repo, %reference, error = %e, "upstream unavailable: serving the cached manifest");
                self.get_manifest(repo, reference).await
            }
            Err(e) => Err(upstream_failure(&rule, &upstream_name, e)),
        }
    }

    /// [`Registry::stat_manifest`], through the pull-through cache.
    pub async fn stat_manifest_through(
        &self,
        repo: &RepoName,
        reference: &Reference,
        import: bool,
    ) -> Result<ManifestInfo> {
        if self.pull_through_rule(repo).is_none() {
            return self.stat_manifest(repo, reference).await;
        }
        let manifest = self.get_manifest_through(repo, reference, import).await?;
        Ok(ManifestInfo {
            digest: manifest.digest,
            media_type: manifest.media_type,
            size: manifest.raw.len() as u64,
        })
    }

    /// [`Registry::read_blob`], through the pull-through cache: a blob not held is
    /// fetched (once, however many ask) and streamed as it arrives.
    pub async fn read_blob_through(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<Range<u64>>,
        import: bool,
    ) -> Result<BlobRead> {
        let Some(rule) = self.pull_through_rule(repo) else {
            return self.read_blob(repo, digest, range).await;
        };
        if let Some(fetch) = self.running_fetch(repo, digest) {
            return fetch.read(range).await;
        }
        match self.read_blob(repo, digest, range.clone()).await {
            Err(e) if e.kind() == ErrorKind::BlobUnknown && import => {}
            other => return other,
        }
        self.blob_fetch(&rule, repo, digest)?.read(range).await
    }

    /// [`Registry::stat_blob`], through the pull-through cache: upstream's size for a
    /// blob not held (nothing is fetched), if `import` says the caller may bring it in
    /// (else a HEAD would promise what a GET then refuses).
    pub async fn stat_blob_through(
        &self,
        repo: &RepoName,
        digest: &Digest,
        import: bool,
    ) -> Result<BlobInfo> {
        let Some(rule) = self.pull_through_rule(repo) else {
            return self.stat_blob(repo, digest).await;
        };
        match self.stat_blob(repo, digest).await {
            Err(e) if e.kind() == ErrorKind::BlobUnknown && import => {}
            other => return other,
        }
        let upstream_name = rule.upstream_name(repo);
        let size = match self.running_fetch(repo, digest) {
            Some(fetch) => Some(fetch.size().await?),
            None => rule
                .upstream
                .blob_size(&upstream_name, digest)
                .await
                .map_err(|e| upstream_failure(&rule, &upstream_name, e))?,
        };
        size.map(|size| BlobInfo {
            digest: digest.clone(),
            size,
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::BlobUnknown,
                format!("blob {digest} is neither in {repo} nor upstream"),
            )
        })
    }

    /// Whether `reference` can be answered from here, and without asking upstream.
    async fn held(
        &self,
        rule: &PullThroughRule,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Held> {
        let tag = match reference {
            Reference::Digest(digest) => {
                let held = self.manifest_record(repo, digest).await?.is_some();
                return Ok(if held { Held::Fresh } else { Held::Missing });
            }
            Reference::Tag(tag) => tag,
        };
        let Some(target) = self.tag_target(repo, tag).await? else {
            return Ok(Held::Missing);
        };
        let checked = UPSTREAM_TAGS
            .get(self.meta(), &InRepo::new(repo, tag))
            .await?;
        let now = self.inner.clock.now_millis();
        let fresh = checked.is_some_and(|(record, _)| {
            record.digest == target
                && now.saturating_sub(record.checked_at_ms) < rule.tag_ttl.as_millis() as u64
        });
        Ok(if fresh { Held::Fresh } else { Held::Stale })
    }

    /// Answers with what upstream named (at `asked_at_ms`): from here if it is held
    /// (moving the tag to it), else upstream's bytes while an import brings the image in.
    async fn answer_from_upstream(
        &self,
        rule: &PullThroughRule,
        repo: &RepoName,
        reference: &Reference,
        remote: RemoteManifest,
        asked_at_ms: u64,
    ) -> Result<StoredManifest> {
        let tag = match reference {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        };
        if self.manifest_record(repo, &remote.digest).await?.is_some() {
            if let Some(tag) = tag {
                let answer = UpstreamTagRecord {
                    digest: remote.digest.clone(),
                    checked_at_ms: asked_at_ms,
                };
                self.settle_tag(repo, tag, answer).await?;
            }
            return self
                .get_manifest(repo, &Reference::Digest(remote.digest))
                .await;
        }
        let tag = tag.map(|tag| (tag.clone(), asked_at_ms));
        self.start_import(rule, repo, tag, remote.clone());
        Ok(StoredManifest {
            digest: remote.digest,
            media_type: remote.media_type,
            raw: remote.raw,
        })
    }

    /// Points `tag` at the manifest upstream named (held here) and notes the answer,
    /// unless an answer upstream gave later is noted already: a slow import of what a
    /// tag named before must not move it back.
    async fn settle_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        answer: UpstreamTagRecord,
    ) -> Result<()> {
        let key = InRepo::new(repo, tag);
        let noted = UPSTREAM_TAGS.get(self.meta(), &key).await?;
        let expect = match &noted {
            Some((newer, _)) if newer.checked_at_ms > answer.checked_at_ms => return Ok(()),
            Some((_, version)) => Expect::Version(*version),
            None => Expect::Absent,
        };
        if self.tag_target(repo, tag).await?.as_ref() != Some(&answer.digest) {
            self.tag_manifest(repo, tag, &answer.digest).await?;
        }
        match UPSTREAM_TAGS.put(self.meta(), &key, &answer, expect).await {
            // Another answer was noted meanwhile; the tag is where one of them put it,
            // and the next pull past the TTL asks again.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other.map(drop),
        }
    }

    /// Brings `top` and everything it references from upstream in the background, once
    /// per image and tag however many pulls ask; `tag` comes with the time upstream
    /// named `top` for it.
    fn start_import(
        &self,
        rule: &PullThroughRule,
        repo: &RepoName,
        tag: Option<(Tag, u64)>,
        top: RemoteManifest,
    ) {
        let key = (
            repo.clone(),
            top.digest.clone(),
            tag.as_ref().map(|(tag, _)| tag.clone()),
        );
        let Ok(mut imports) = self.inner.pull_through.imports.lock() else {
            return;
        };
        if !imports.insert(key.clone()) {
            return;
        }
        drop(imports);
        let registry = self.clone();
        let rule = rule.clone();
        let repo = repo.clone();
        let forget = {
            let registry = self.clone();
            OnDrop::new(Box::new(move || {
                let state = &registry.inner.pull_through;
                if let Ok(mut imports) = state.imports.lock() {
                    imports.remove(&key);
                }
                state.idle.notify_waiters();
            }))
        };
        tokio::spawn(async move {
            let _forget = forget;
            let digest = top.digest.clone();
            if let Err(e) = registry.import(&rule, &repo, tag, top).await {
                tracing::warn!(%repo, %digest, error = %e, "pull-through import failed");
            }
        });
    }

    /// Brings an image in: blobs, then manifests children first, then the tag.
    async fn import(
        &self,
        rule: &PullThroughRule,
        repo: &RepoName,
        tag: Option<(Tag, u64)>,
        top: RemoteManifest,
    ) -> Result<()> {
        self.ensure_cache_repository(repo).await?;
        let upstream_name = rule.upstream_name(repo);
        let digest = top.digest.clone();
        let mut graph = RemoteGraph::default();
        self.remote_graph(
            &rule.upstream,
            &upstream_name,
            top,
            &CopyOptions::default(),
            &mut graph,
            0,
        )
        .await?;
        // Owned per blob: the import runs in a spawned task, which must be `Send` for
        // every lifetime, and borrowing closures do not prove that.
        futures::stream::iter(graph.blobs.clone())
            .map(|blob| {
                let (registry, rule, repo) = (self.clone(), rule.clone(), repo.clone());
                async move { registry.cached_blob(&rule, &repo, &blob).await }
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        for manifest in graph.manifests {
            if self
                .manifest_record(repo, &manifest.digest)
                .await?
                .is_none()
            {
                self.store_remote_manifest(repo, manifest).await?;
            }
        }
        if let Some((tag, checked_at_ms)) = tag {
            let answer = UpstreamTagRecord {
                digest,
                checked_at_ms,
            };
            self.settle_tag(repo, &tag, answer).await?;
        }
        Ok(())
    }

    /// Makes sure `blob` is held in `repo`: joins its fetch, or starts one.
    async fn cached_blob(
        &self,
        rule: &PullThroughRule,
        repo: &RepoName,
        blob: &Descriptor,
    ) -> Result<()> {
        let fetch = match self.running_fetch(repo, &blob.digest) {
            Some(fetch) => fetch,
            None => match self.stat_blob(repo, &blob.digest).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::BlobUnknown => {
                    self.blob_fetch(rule, repo, &blob.digest)?
                }
                Err(e) => return Err(e),
            },
        };
        fetch.stored().await.map(drop)
    }
}

/// What upstream's failure means to a client of the cache: upstream refusing the cache's
/// credentials, or the request, is the registry's own failure, never the client's (a
/// 401 would make clients ask their user for a password that is not the problem).
pub(super) fn upstream_failure(rule: &PullThroughRule, upstream_name: &str, error: Error) -> Error {
    let context = format!("pull-through from {}{upstream_name}", rule.upstream.url());
    match error.kind() {
        ErrorKind::Unauthorized | ErrorKind::Denied | ErrorKind::InvalidArgument => {
            let retryable = error.is_retryable();
            let failure = Error::new(
                ErrorKind::Storage,
                format!("upstream refused the cache: {}", error.message()),
            )
            .context(context);
            if retryable {
                failure.retryable()
            } else {
                failure
            }
        }
        _ => error.context(context),
    }
}
