//! Which endpoint a request path names.
//!
//! Repository names contain slashes, so a path is read from its end: the last segments
//! say the endpoint, everything before them is the name.

use hyper::StatusCode;
use wharf::{Digest, Error, ErrorKind, RepoName, UploadId};

use crate::http::Failure;

/// An endpoint of the distribution spec, with its parsed path parameters.
#[derive(Debug)]
pub(crate) enum Route {
    /// `/v2/`
    Base,
    /// `/token`: the token endpoint (with `--auth`).
    Token,
    /// `/`: the ECR-compatible API (with `--auth`).
    Api,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, UploadId),
    /// `/v2/<name>/manifests/<reference>`, the reference as written: a malformed one is
    /// unknown to a read and invalid to a push, so the handler parses it.
    Manifest(RepoName, String),
}

fn not_found(path: &str) -> Failure {
    let error = Error::new(
        ErrorKind::Unsupported,
        format!("{path} is not an endpoint of the distribution API"),
    );
    Failure::new(StatusCode::NOT_FOUND, &error)
}

impl Route {
    /// The endpoint's name in metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Token => "token",
            Self::Api => "ecr_api",
            Self::Catalog => "catalog",
            Self::Tags(..) => "tags",
            Self::Referrers(..) => "referrers",
            Self::Blob(..) => "blob",
            Self::UploadStart(..) => "upload_start",
            Self::Upload(..) => "upload",
            Self::Manifest(..) => "manifest",
        }
    }

    /// The endpoint `path` names; parameters that break the spec's grammar are errors
    /// of their own kind (`NAME_INVALID`, `DIGEST_INVALID`, `TAG_INVALID`).
    pub(crate) fn parse(path: &str) -> Result<Self, Failure> {
        if path == "/token" {
            return Ok(Self::Token);
        }
        if path == "/" {
            return Ok(Self::Api);
        }
        let rest = path
            .strip_prefix("/v2/")
            .or_else(|| (path == "/v2").then_some(""))
            .ok_or_else(|| not_found(path))?;
        if rest.is_empty() {
            return Ok(Self::Base);
        }
        if rest == "_catalog" {
            return Ok(Self::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads/") {
            return Ok(Self::UploadStart(name.parse()?));
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads") {
            return Ok(Self::UploadStart(name.parse()?));
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(Self::Tags(name.parse()?));
        }
        let (head, last) = rest.rsplit_once('/').ok_or_else(|| not_found(path))?;
        let (name, kind) = head.rsplit_once('/').ok_or_else(|| not_found(path))?;
        match kind {
            "blobs" => Ok(Self::Blob(name.parse()?, last.parse()?)),
            "manifests" => Ok(Self::Manifest(name.parse()?, last.to_owned())),
            "referrers" => Ok(Self::Referrers(name.parse()?, last.parse()?)),
            "uploads" => match name.strip_suffix("/blobs") {
                Some(name) => Ok(Self::Upload(name.parse()?, last.parse()?)),
                None => Err(not_found(path)),
            },
            _ => Err(not_found(path)),
        }
    }
}

/// The path of a blob, as a `Location`.
pub(crate) fn blob_path(repo: &RepoName, digest: &Digest) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

/// The path of an upload session, as a `Location`.
pub(crate) fn upload_path(repo: &RepoName, id: &UploadId) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

/// The path of a manifest, as a `Location`.
pub(crate) fn manifest_path(repo: &RepoName, digest: &Digest) -> String {
    format!("/v2/{repo}/manifests/{digest}")
}
