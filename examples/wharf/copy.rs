//! `copy`: images between the registry directory and a remote registry (built with the
//! `remote` feature).
//!
//! ```text
//! wharf copy docker://HOST/REPO:TAG LOCAL_REPO     pull (the tag is kept)
//! wharf copy LOCAL_REPO:TAG docker://HOST/REPO      push (the tag is kept)
//!   [--creds USER:PASSWORD] [--plain-http] [--ca-cert FILE] [--platform OS/ARCH] [--referrers]
//! ```
//!
//! Credentials may come from `WHARF_REMOTE_CREDS` instead, to keep them off the command
//! line.

use std::time::Instant;

use lexopt::prelude::*;
use wharf::remote::{Credentials, RemoteRegistry};
use wharf::{CopyOptions, Platform, Reference, RepoName};

use crate::moving::Bar;
use crate::{Context, Failure, parse};

/// A remote image: `docker://HOST/REPO:TAG` or `docker://HOST/REPO@DIGEST`.
struct RemoteRef {
    host: String,
    repo: String,
    reference: Option<Reference>,
}

fn remote_ref(text: &str) -> Option<Result<RemoteRef, Failure>> {
    let rest = text.strip_prefix("docker://")?;
    let Some((host, path)) = rest.split_once('/') else {
        return Some(Err(Failure::usage(format!("{text:?} has no repository"))));
    };
    let (repo, reference) = split_reference(path);
    Some(
        match reference
            .map(|r| parse::<Reference>("reference", r))
            .transpose()
        {
            Ok(reference) => Ok(RemoteRef {
                host: host.to_owned(),
                repo: repo.to_owned(),
                reference,
            }),
            Err(e) => Err(e),
        },
    )
}

/// `repo:tag`, `repo@digest` or `repo`, split.
fn split_reference(path: &str) -> (&str, Option<&str>) {
    if let Some((repo, digest)) = path.split_once('@') {
        return (repo, Some(digest));
    }
    match path.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (path, None),
    }
}

pub(crate) async fn copy(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut creds = std::env::var("WHARF_REMOTE_CREDS").ok();
    let mut plain_http = false;
    let mut ca = None;
    let mut platform = None;
    let mut referrers = false;
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("creds") => creds = Some(parser.value()?.string()?),
            Long("plain-http") => plain_http = true,
            Long("ca-cert") => ca = Some(parser.value()?.string()?),
            Long("platform") => platform = Some(parser.value()?.string()?),
            Long("referrers") => referrers = true,
            Value(value) => values.push(value.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let [from, to] = values.as_slice() else {
        return Err(Failure::usage("copy takes FROM TO"));
    };
    let credentials = match creds {
        Some(pair) => {
            let (user, password) = pair
                .split_once(':')
                .ok_or_else(|| Failure::usage("--creds is USER:PASSWORD"))?;
            Some(Credentials {
                user: user.to_owned(),
                password: password.to_owned(),
            })
        }
        None => None,
    };
    let ca_pem = match ca {
        Some(path) => Some(
            std::fs::read(&path).map_err(|e| Failure::usage(format!("--ca-cert {path}: {e}")))?,
        ),
        None => None,
    };
    let platform = match platform {
        Some(text) => {
            let (os, architecture) = text
                .split_once('/')
                .ok_or_else(|| Failure::usage("--platform is OS/ARCH, such as linux/arm64"))?;
            let (architecture, variant) = match architecture.split_once('/') {
                Some((a, v)) => (a, Some(v.to_owned())),
                None => (architecture, None),
            };
            Some(Platform {
                architecture: architecture.to_owned(),
                os: os.to_owned(),
                os_version: None,
                os_features: Vec::new(),
                variant,
                features: Vec::new(),
            })
        }
        None => None,
    };
    let remote_for = |host: &str| {
        let scheme = if plain_http { "http" } else { "https" };
        RemoteRegistry::new(
            &format!("{scheme}://{host}"),
            credentials.clone(),
            ca_pem.as_deref(),
        )
    };
    let bar = Bar::new(context.progress, "copying");
    let options = CopyOptions {
        platform,
        referrers,
        progress: bar.clone(),
    };
    let started = Instant::now();
    let (report, direction) = match (remote_ref(from), remote_ref(to)) {
        (Some(source), None) => {
            let source = source?;
            let reference = source
                .reference
                .ok_or_else(|| Failure::usage(format!("{from:?} names no tag or digest")))?;
            let repo: RepoName = parse("repository", to)?;
            let remote = remote_for(&source.host)?;
            let report = context
                .registry
                .pull_remote(&remote, &source.repo, &reference, &repo, &options)
                .await;
            (report, format!("{from} -> {repo}"))
        }
        (None, Some(target)) => {
            let target = target?;
            let (repo, reference) = split_reference(from);
            let reference = reference
                .ok_or_else(|| Failure::usage(format!("{from:?} names no tag or digest")))?;
            let repo: RepoName = parse("repository", repo)?;
            let reference: Reference = parse("reference", reference)?;
            if target.reference.as_ref().is_some_and(|r| r != &reference) {
                return Err(Failure::usage(
                    "a push keeps the source's tag: name none on the destination",
                ));
            }
            let remote = remote_for(&target.host)?;
            let report = context
                .registry
                .push_remote(&repo, &reference, &remote, &target.repo, &options)
                .await;
            (report, format!("{repo}:{reference} -> {to}"))
        }
        _ => {
            return Err(Failure::usage(
                "copy goes between docker://HOST/REPO[:TAG] and a local REPO[:TAG]; use import and export for layouts",
            ));
        }
    };
    bar.finish();
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    context.print(
        serde_json::json!({
            "digest": report.digest.as_str(),
            "manifests": report.manifests,
            "blobs": report.blobs,
            "blobs_present": report.blobs_present,
            "bytes": report.bytes,
            "seconds": seconds,
        }),
        || {
            format!(
                "{direction} {}: {} manifests, {} blobs ({} bytes; {} already there) in {seconds:.1}s",
                report.digest, report.manifests, report.blobs, report.bytes, report.blobs_present
            )
        },
    );
    Ok(())
}
