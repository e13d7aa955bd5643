//! The operations of [`CallerRegistry`]: each authorizes its ECR action, then does what
//! the [`Registry`](super::Registry) method of the same name does.
//!
//! The mapping is ECR's: blob `HEAD` is `BatchCheckLayerAvailability`, blob reads
//! `GetDownloadUrlForLayer`, manifest reads `BatchGetImage`, upload steps
//! `InitiateLayerUpload` / `UploadLayerPart` / `CompleteLayerUpload`, pushes and tag
//! moves `PutImage`, deletes `BatchDeleteImage`, tag and referrer lists `ListImages`, the
//! catalog `DescribeRepositories` (only the repositories the caller may describe). A push
//! into a repository that does not exist also needs `CreateRepository`. A mount from a
//! repository the caller may not read fails as if the blob were not there, so the client
//! uploads instead and learns nothing about the source. In a repository a pull-through
//! rule covers (feature `remote`), reads go through the cache, and what misses is brought
//! in from upstream only if the caller may also `BatchImportUpstreamImage`.

use bytes::Bytes;

use super::access::CallerRegistry;
use super::{
    ManifestInfo, PushedManifest, Referrers, Repository, RepositorySettings, StoredManifest,
};
use crate::access::Action;
use crate::blob::{BlobInfo, BlobRead, ByteStream};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::meta::Version;
use crate::reference::{Reference, RepoName, Tag};
use crate::upload::{UploadId, UploadStatus};

/// The actions that finish an upload: `ecr:UploadLayerPart` first when a last chunk
/// comes with it.
fn finish_actions(last_chunk: bool) -> &'static [Action] {
    if last_chunk {
        &[Action::UploadLayerPart, Action::CompleteLayerUpload]
    } else {
        &[Action::CompleteLayerUpload]
    }
}

impl CallerRegistry {
    /// For a repository a pull-through rule covers, whether the caller may bring what
    /// is missing in from upstream (`ecr:BatchImportUpstreamImage`); `None` elsewhere.
    #[cfg(feature = "remote")]
    async fn pull_through_import(&self, repo: &RepoName) -> Result<Option<bool>> {
        if self.registry.pull_through_rule(repo).is_none() {
            return Ok(None);
        }
        self.may(Action::BatchImportUpstreamImage, repo)
            .await
            .map(Some)
    }

    /// [`Registry::stat_blob`](super::Registry::stat_blob) (`ecr:BatchCheckLayerAvailability`).
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobInfo> {
        self.authorize(Action::BatchCheckLayerAvailability, repo)
            .await?;
        #[cfg(feature = "remote")]
        if let Some(import) = self.pull_through_import(repo).await? {
            return self.registry.stat_blob_through(repo, digest, import).await;
        }
        self.registry.stat_blob(repo, digest).await
    }

    /// [`Registry::read_blob`](super::Registry::read_blob) (`ecr:GetDownloadUrlForLayer`).
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BlobRead> {
        self.authorize(Action::GetDownloadUrlForLayer, repo).await?;
        #[cfg(feature = "remote")]
        if let Some(import) = self.pull_through_import(repo).await? {
            return self
                .registry
                .read_blob_through(repo, digest, range, import)
                .await;
        }
        self.registry.read_blob(repo, digest, range).await
    }

    /// Authorizes the three steps of an upload at once (a monolithic upload).
    async fn authorize_upload(&self, repo: &RepoName) -> Result<()> {
        let steps = [
            Action::InitiateLayerUpload,
            Action::UploadLayerPart,
            Action::CompleteLayerUpload,
        ];
        self.authorize_push(&steps, repo).await
    }

    /// [`Registry::push_blob`](super::Registry::push_blob) (the three upload actions).
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        data: Bytes,
    ) -> Result<BlobInfo> {
        self.authorize_upload(repo).await?;
        self.registry.push_blob(repo, digest, data).await
    }

    /// [`Registry::push_blob_stream`](super::Registry::push_blob_stream) (the three upload
    /// actions).
    pub async fn push_blob_stream(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<BlobInfo> {
        self.authorize_upload(repo).await?;
        self.registry.push_blob_stream(repo, digest, body).await
    }

    /// [`Registry::start_upload`](super::Registry::start_upload) (`ecr:InitiateLayerUpload`).
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadStatus> {
        self.authorize_push(&[Action::InitiateLayerUpload], repo)
            .await?;
        self.registry.start_upload(repo).await
    }

    /// [`Registry::upload_status`](super::Registry::upload_status) (`ecr:UploadLayerPart`).
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<UploadStatus> {
        self.authorize(Action::UploadLayerPart, repo).await?;
        self.registry.upload_status(repo, id).await
    }

    /// [`Registry::append_upload`](super::Registry::append_upload) (`ecr:UploadLayerPart`).
    pub async fn append_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        offset: u64,
        data: Bytes,
    ) -> Result<UploadStatus> {
        self.authorize(Action::UploadLayerPart, repo).await?;
        self.registry.append_upload(repo, id, offset, data).await
    }

    /// [`Registry::append_upload_stream`](super::Registry::append_upload_stream)
    /// (`ecr:UploadLayerPart`).
    pub async fn append_upload_stream(
        &self,
        repo: &RepoName,
        id: &UploadId,
        offset: u64,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        self.authorize(Action::UploadLayerPart, repo).await?;
        self.registry
            .append_upload_stream(repo, id, offset, body)
            .await
    }

    /// [`Registry::finish_upload`](super::Registry::finish_upload)
    /// (`ecr:CompleteLayerUpload`, and `ecr:UploadLayerPart` for a last chunk).
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        last: Option<Bytes>,
    ) -> Result<BlobInfo> {
        let chunk = last.as_ref().is_some_and(|b| !b.is_empty());
        self.authorize_each(finish_actions(chunk), repo).await?;
        self.registry.finish_upload(repo, id, digest, last).await
    }

    /// [`Registry::finish_upload_stream_at`](super::Registry::finish_upload_stream_at)
    /// (`ecr:CompleteLayerUpload`, and `ecr:UploadLayerPart` for a last chunk).
    pub async fn finish_upload_stream_at(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        offset: Option<u64>,
        last_chunk: Option<ByteStream>,
    ) -> Result<BlobInfo> {
        self.authorize_each(finish_actions(last_chunk.is_some()), repo)
            .await?;
        self.registry
            .finish_upload_stream_at(repo, id, digest, offset, last_chunk)
            .await
    }

    /// [`Registry::cancel_upload`](super::Registry::cancel_upload) (`ecr:UploadLayerPart`).
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        self.authorize(Action::UploadLayerPart, repo).await?;
        self.registry.cancel_upload(repo, id).await
    }

    /// [`Registry::mount_blob`](super::Registry::mount_blob) (`ecr:InitiateLayerUpload` on
    /// `target`; reading `from` needs `ecr:GetDownloadUrlForLayer` there, and without it
    /// the mount fails as if the blob were not in `from`).
    pub async fn mount_blob(
        &self,
        target: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<BlobInfo> {
        self.authorize_push(&[Action::InitiateLayerUpload], target)
            .await?;
        if let Some(source) = from
            && !self.may(Action::GetDownloadUrlForLayer, source).await?
        {
            return Err(Error::new(
                ErrorKind::BlobUnknown,
                format!("blob {digest} is not in repository {source}"),
            ));
        }
        self.registry.mount_blob(target, digest, from).await
    }

    /// [`Registry::push_manifest`](super::Registry::push_manifest) (`ecr:PutImage`).
    pub async fn push_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        raw: Bytes,
        content_type: Option<&str>,
    ) -> Result<PushedManifest> {
        self.authorize_push(&[Action::PutImage], repo).await?;
        self.registry
            .push_manifest(repo, reference, raw, content_type)
            .await
    }

    /// [`Registry::tag_manifest`](super::Registry::tag_manifest) (`ecr:PutImage`).
    pub async fn tag_manifest(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<()> {
        self.authorize(Action::PutImage, repo).await?;
        self.registry.tag_manifest(repo, tag, digest).await
    }

    /// [`Registry::stat_manifest`](super::Registry::stat_manifest) (`ecr:BatchGetImage`).
    pub async fn stat_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        self.authorize(Action::BatchGetImage, repo).await?;
        #[cfg(feature = "remote")]
        if let Some(import) = self.pull_through_import(repo).await? {
            return self
                .registry
                .stat_manifest_through(repo, reference, import)
                .await;
        }
        self.registry.stat_manifest(repo, reference).await
    }

    /// [`Registry::get_manifest`](super::Registry::get_manifest) (`ecr:BatchGetImage`).
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        self.authorize(Action::BatchGetImage, repo).await?;
        #[cfg(feature = "remote")]
        if let Some(import) = self.pull_through_import(repo).await? {
            return self
                .registry
                .get_manifest_through(repo, reference, import)
                .await;
        }
        self.registry.get_manifest(repo, reference).await
    }

    /// [`Registry::delete_manifest`](super::Registry::delete_manifest)
    /// (`ecr:BatchDeleteImage`).
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.authorize(Action::BatchDeleteImage, repo).await?;
        self.registry.delete_manifest(repo, digest).await
    }

    /// [`Registry::unlink_blob`](super::Registry::unlink_blob) (`ecr:BatchDeleteImage`:
    /// ECR has no blob delete of its own).
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.authorize(Action::BatchDeleteImage, repo).await?;
        self.registry.unlink_blob(repo, digest).await
    }

    /// [`Registry::start_scan`](super::Registry::start_scan) (`ecr:StartImageScan`).
    pub async fn start_scan(&self, repo: &RepoName, digest: &Digest) -> Result<super::ImageScan> {
        self.authorize(Action::StartImageScan, repo).await?;
        self.registry.start_scan(repo, digest).await
    }

    /// [`Registry::scan_status`](super::Registry::scan_status) (`ecr:DescribeImages`, which
    /// reports it).
    pub async fn scan_status(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<super::ImageScan>> {
        self.authorize(Action::DescribeImages, repo).await?;
        self.registry.scan_status(repo, digest).await
    }

    /// [`Registry::scan_findings`](super::Registry::scan_findings)
    /// (`ecr:DescribeImageScanFindings`).
    pub async fn scan_findings(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<super::ScanFindings> {
        self.authorize(Action::DescribeImageScanFindings, repo)
            .await?;
        self.registry.scan_findings(repo, digest).await
    }

    /// [`Registry::tag_history`](super::Registry::tag_history) (`ecr:DescribeImages`).
    pub async fn tag_history(&self, repo: &RepoName, tag: &Tag) -> Result<Vec<super::TagMove>> {
        self.authorize(Action::DescribeImages, repo).await?;
        self.registry.tag_history(repo, tag).await
    }

    /// [`Registry::inventory`](super::Registry::inventory) (`ecr:DescribeImages`).
    pub async fn inventory(&self, repo: &RepoName) -> Result<Vec<super::ImageInfo>> {
        self.authorize(Action::DescribeImages, repo).await?;
        self.registry.inventory(repo).await
    }

    /// [`Registry::inventory`](super::Registry::inventory) for listing image ids
    /// (`ecr:ListImages`).
    pub async fn list_images(&self, repo: &RepoName) -> Result<Vec<super::ImageInfo>> {
        self.authorize(Action::ListImages, repo).await?;
        self.registry.inventory(repo).await
    }

    /// [`Registry::delete_tag`](super::Registry::delete_tag) (`ecr:BatchDeleteImage`).
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<()> {
        self.authorize(Action::BatchDeleteImage, repo).await?;
        self.registry.delete_tag(repo, tag).await
    }

    /// [`Registry::list_tags`](super::Registry::list_tags) (`ecr:ListImages`).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: usize,
        last: Option<&Tag>,
    ) -> Result<Vec<Tag>> {
        self.authorize(Action::ListImages, repo).await?;
        self.registry.list_tags(repo, n, last).await
    }

    /// [`Registry::referrers`](super::Registry::referrers) (`ecr:ListImages`).
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Referrers> {
        self.authorize(Action::ListImages, repo).await?;
        self.registry.referrers(repo, subject, artifact_type).await
    }

    /// [`Registry::list_repositories`](super::Registry::list_repositories), only the
    /// repositories the caller may describe (`ecr:DescribeRepositories`): `n` of them, or
    /// fewer when the catalog ends.
    pub async fn list_repositories(
        &self,
        n: usize,
        last: Option<&RepoName>,
    ) -> Result<Vec<RepoName>> {
        let mut visible = Vec::new();
        let mut after = last.cloned();
        while visible.len() < n {
            let page = self
                .registry
                .list_repositories(n.max(100), after.as_ref())
                .await?;
            let Some(end) = page.last().cloned() else {
                break;
            };
            for name in page {
                if visible.len() < n && self.may(Action::DescribeRepositories, &name).await? {
                    visible.push(name);
                }
            }
            after = Some(end);
        }
        Ok(visible)
    }

    /// [`Registry::create_repository`](super::Registry::create_repository)
    /// (`ecr:CreateRepository`).
    pub async fn create_repository(
        &self,
        name: &RepoName,
        settings: RepositorySettings,
    ) -> Result<Repository> {
        self.authorize(Action::CreateRepository, name).await?;
        self.registry.create_repository(name, settings).await
    }

    /// [`Registry::repository`](super::Registry::repository)
    /// (`ecr:DescribeRepositories`).
    pub async fn repository(&self, name: &RepoName) -> Result<Repository> {
        self.authorize(Action::DescribeRepositories, name).await?;
        self.registry.repository(name).await
    }

    /// [`Registry::update_repository`](super::Registry::update_repository): the settings
    /// a caller changes through the actions that change them (`ecr:PutImageTagMutability`
    /// for tag mutability, `ecr:PutImageScanningConfiguration` for scanning,
    /// `ecr:TagResource` for tags added or changed, `ecr:UntagResource` for tags
    /// removed; any other change, such as `public` or the at-rest
    /// settings, needs `ecr:SetRepositoryPolicy`, since it changes who may read; each
    /// asked only when that part changes).
    pub async fn update_repository(
        &self,
        name: &RepoName,
        settings: RepositorySettings,
    ) -> Result<Repository> {
        let current = self.registry.repository(name).await?.settings;
        let mut actions = Vec::new();
        if current.tag_mutability != settings.tag_mutability
            || current.mutability_exclusions != settings.mutability_exclusions
        {
            actions.push(Action::PutImageTagMutability);
        }
        if current.scan_on_push != settings.scan_on_push {
            actions.push(Action::PutImageScanningConfiguration);
        }
        let added = settings
            .labels
            .iter()
            .any(|(k, v)| current.labels.get(k) != Some(v));
        if added {
            actions.push(Action::TagResource);
        }
        if current
            .labels
            .keys()
            .any(|k| !settings.labels.contains_key(k))
        {
            actions.push(Action::UntagResource);
        }
        let rest = RepositorySettings {
            tag_mutability: current.tag_mutability,
            mutability_exclusions: current.mutability_exclusions.clone(),
            scan_on_push: current.scan_on_push,
            labels: current.labels.clone(),
            ..settings.clone()
        };
        if rest != current {
            actions.push(Action::SetRepositoryPolicy);
        }
        self.authorize_each(&actions, name).await?;
        self.registry.update_repository(name, settings).await
    }

    /// Authorizes `action` on `repo` and records it for audit, for a frontend that acts
    /// on state of its own (a lifecycle preview it keeps, say): the check every method
    /// here makes first.
    pub async fn authorize_action(&self, action: Action, repo: &RepoName) -> Result<()> {
        self.authorize(action, repo).await
    }

    /// A repository's tags, its [`RepositorySettings::labels`]
    /// (`ecr:ListTagsForResource`).
    pub async fn repository_tags(
        &self,
        name: &RepoName,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        self.authorize(Action::ListTagsForResource, name).await?;
        Ok(self.registry.repository(name).await?.settings.labels)
    }

    /// [`Registry::delete_repository`](super::Registry::delete_repository)
    /// (`ecr:DeleteRepository`).
    pub async fn delete_repository(&self, name: &RepoName, force: bool) -> Result<()> {
        self.authorize(Action::DeleteRepository, name).await?;
        self.registry.delete_repository(name, force).await
    }

    /// [`Registry::set_repository_policy`](super::Registry::set_repository_policy)
    /// (`ecr:SetRepositoryPolicy`).
    pub async fn set_repository_policy(
        &self,
        repo: &RepoName,
        text: &str,
        expected: Option<Option<Version>>,
    ) -> Result<Version> {
        self.authorize(Action::SetRepositoryPolicy, repo).await?;
        self.registry
            .set_repository_policy(repo, text, expected)
            .await
    }

    /// [`Registry::repository_policy`](super::Registry::repository_policy)
    /// (`ecr:GetRepositoryPolicy`).
    pub async fn repository_policy(
        &self,
        repo: &RepoName,
    ) -> Result<Option<(crate::access::Policy, Version)>> {
        self.authorize(Action::GetRepositoryPolicy, repo).await?;
        self.registry.repository_policy(repo).await
    }

    /// [`Registry::delete_repository_policy`](super::Registry::delete_repository_policy)
    /// (`ecr:DeleteRepositoryPolicy`).
    pub async fn delete_repository_policy(
        &self,
        repo: &RepoName,
        expected: Option<Version>,
    ) -> Result<()> {
        self.authorize(Action::DeleteRepositoryPolicy, repo).await?;
        self.registry.delete_repository_policy(repo, expected).await
    }

    /// [`Registry::lifecycle_policy`](super::Registry::lifecycle_policy)
    /// (`ecr:GetLifecyclePolicy`).
    pub async fn lifecycle_policy(
        &self,
        repo: &RepoName,
    ) -> Result<Option<crate::lifecycle::LifecyclePolicy>> {
        self.authorize(Action::GetLifecyclePolicy, repo).await?;
        self.registry.lifecycle_policy(repo).await
    }

    /// [`Registry::set_lifecycle_policy`](super::Registry::set_lifecycle_policy)
    /// (`ecr:PutLifecyclePolicy`, or `ecr:DeleteLifecyclePolicy` to remove it).
    pub async fn set_lifecycle_policy(&self, repo: &RepoName, policy: Option<&str>) -> Result<()> {
        let action = match policy {
            Some(_) => Action::PutLifecyclePolicy,
            None => Action::DeleteLifecyclePolicy,
        };
        self.authorize(action, repo).await?;
        self.registry.set_lifecycle_policy(repo, policy).await
    }
}
