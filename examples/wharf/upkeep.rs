//! Looking at and looking after a registry directory: `ls`, `stats`, `verify`, `gc`,
//! `lifecycle`, `rotate-key`.

use std::time::SystemTime;

use futures::StreamExt;
use lexopt::prelude::*;
use serde_json::json;
use wharf::{GcOptions, RepoName};

use crate::{Context, Failure, parse, positionals};

/// Repositories listed per page.
const PAGE: usize = 1000;

fn rfc3339(time: SystemTime) -> String {
    wharf::lifecycle::format_rfc3339(time)
}

async fn all_repositories(context: &Context) -> Result<Vec<RepoName>, Failure> {
    let mut names = Vec::new();
    loop {
        let page = context
            .registry
            .list_repositories(PAGE, names.last())
            .await?;
        let full = page.len() == PAGE;
        names.extend(page);
        if !full {
            return Ok(names);
        }
    }
}

pub(crate) async fn ls(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let values = positionals(parser)?;
    match values.as_slice() {
        [] => {
            let names = all_repositories(context).await?;
            let listed: Vec<&str> = names.iter().map(RepoName::as_str).collect();
            context.print(json!({"repositories": listed}), || listed.join("\n"));
        }
        [repo] => {
            let repo: RepoName = parse("repository", repo)?;
            let images = context.registry.inventory(&repo).await?;
            let rows: Vec<serde_json::Value> = images
                .iter()
                .map(|image| {
                    json!({
                        "digest": image.digest.as_str(),
                        "media_type": image.media_type,
                        "tags": image.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                        "size": image.size,
                        "pushed_at": rfc3339(image.pushed_at),
                        "last_pulled_at": image.last_pulled_at.map(rfc3339),
                        "subject": image.subject.as_ref().map(|d| d.as_str()),
                        "artifact_type": image.artifact_type,
                    })
                })
                .collect();
            context.print(json!({"repository": repo.as_str(), "images": rows}), || {
                images
                    .iter()
                    .map(|image| {
                        let tags: Vec<&str> = image.tags.iter().map(|t| t.as_str()).collect();
                        format!(
                            "{}\t{}\t{}\t{}",
                            image.digest,
                            if tags.is_empty() {
                                "-".to_owned()
                            } else {
                                tags.join(",")
                            },
                            image.size,
                            rfc3339(image.pushed_at)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        _ => return Err(Failure::usage("ls takes at most one repository")),
    }
    Ok(())
}

pub(crate) async fn stats(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let values = positionals(parser)?;
    let repo: Option<RepoName> = match values.as_slice() {
        [] => None,
        [repo] => Some(parse("repository", repo)?),
        _ => return Err(Failure::usage("stats takes at most one repository")),
    };
    let stats = context.registry.storage_stats(repo.as_ref()).await?;
    context.print(
        json!({
            "repository": repo.as_ref().map(RepoName::as_str),
            "blobs": stats.blobs,
            "logical_bytes": stats.logical_bytes,
            "stored_bytes": stats.stored_bytes,
            "saving": stats.saving(),
        }),
        || {
            format!(
                "{} blobs, {} bytes as pushed, {} stored ({} saved)",
                stats.blobs,
                stats.logical_bytes,
                stats.stored_bytes,
                stats.saving()
            )
        },
    );
    Ok(())
}

pub(crate) async fn verify(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    if !positionals(parser)?.is_empty() {
        return Err(Failure::usage("verify takes no arguments"));
    }
    let store = context.registry.blob_store().clone();
    let mut listing = store.list();
    let (mut checked, mut bytes) = (0u64, 0u64);
    let mut damaged = Vec::new();
    while let Some(info) = listing.next().await {
        let info = info?;
        checked += 1;
        // A full read checks the digest at its end; any failure on the way is damage.
        let outcome = match store.read(&info.digest, None).await {
            Ok(read) => {
                let mut stream = read.stream;
                let mut failure = None;
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(chunk) => bytes += chunk.len() as u64,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                failure
            }
            Err(e) => Some(e),
        };
        if let Some(error) = outcome {
            damaged.push((info.digest, error));
        }
    }
    let listed: Vec<serde_json::Value> = damaged
        .iter()
        .map(|(digest, e)| json!({"digest": digest.as_str(), "code": e.kind().code(), "message": e.message()}))
        .collect();
    context.print(
        json!({"checked": checked, "bytes": bytes, "damaged": listed}),
        || {
            let mut lines: Vec<String> = damaged
                .iter()
                .map(|(digest, e)| format!("DAMAGED {digest}: {e}"))
                .collect();
            lines.push(format!(
                "checked {checked} blobs ({bytes} bytes): {} damaged",
                damaged.len()
            ));
            lines.join("\n")
        },
    );
    if damaged.is_empty() {
        Ok(())
    } else {
        Err(Failure::damaged(format!(
            "{} of {checked} blobs are damaged (nothing was removed)",
            damaged.len()
        )))
    }
}

pub(crate) async fn gc(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut options = GcOptions::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("dry-run") => options.dry_run = true,
            other => return Err(other.unexpected().into()),
        }
    }
    let report = context.registry.collect_garbage(&options).await?;
    context.print(
        json!({
            "dry_run": report.dry_run,
            "examined": report.examined,
            "reclaimed_blobs": report.reclaimed_blobs,
            "reclaimed_logical_bytes": report.reclaimed_logical_bytes,
            "reclaimed_stored_bytes": report.reclaimed_stored_bytes,
            "deferred": report.deferred,
            "expired_uploads": report.expired_uploads,
        }),
        || {
            format!(
                "{}{} blobs reclaimed ({} bytes stored) of {} examined; {} deferred (grace period)",
                if report.dry_run { "dry run: " } else { "" },
                report.reclaimed_blobs,
                report.reclaimed_stored_bytes,
                report.examined,
                report.deferred
            )
        },
    );
    Ok(())
}

pub(crate) async fn lifecycle(
    context: &Context,
    parser: &mut lexopt::Parser,
) -> Result<(), Failure> {
    let values = positionals(parser)?;
    let [action, repo] = values.as_slice() else {
        return Err(Failure::usage("lifecycle takes preview|apply REPO"));
    };
    let repo: RepoName = parse("repository", repo)?;
    let now = SystemTime::now();
    match action.as_str() {
        "preview" => {
            let plan = context.registry.preview_lifecycle(&repo, now).await?;
            let (expired, transitioned, cascade) =
                (plan.expired(), plan.transitioned(), plan.cascade_expired());
            context.print(
                json!({"expired": expired, "transitioned": transitioned, "cascade_expired": cascade}),
                || {
                    let mut lines: Vec<String> =
                        expired.iter().map(|d| format!("expire {d}")).collect();
                    lines.extend(transitioned.iter().map(|d| format!("archive {d}")));
                    lines.extend(cascade.iter().map(|d| format!("expire {d} (with its subject)")));
                    lines.push(format!(
                        "{} to expire, {} to archive, {} referrers with them",
                        expired.len(),
                        transitioned.len(),
                        cascade.len()
                    ));
                    lines.join("\n")
                },
            );
        }
        "apply" => {
            let report = context.registry.apply_lifecycle(&repo, now).await?;
            let pairs = |list: &[(wharf::Digest, u32)]| -> Vec<serde_json::Value> {
                list.iter()
                    .map(|(d, rule)| json!({"digest": d.as_str(), "rule": rule}))
                    .collect()
            };
            let cascade: Vec<&str> = report.cascade_expired.iter().map(|d| d.as_str()).collect();
            context.print(
                json!({
                    "expired": pairs(&report.expired),
                    "transitioned": pairs(&report.transitioned),
                    "cascade_expired": cascade,
                }),
                || {
                    format!(
                        "expired {}, archived {}, {} referrers with them",
                        report.expired.len(),
                        report.transitioned.len(),
                        report.cascade_expired.len()
                    )
                },
            );
        }
        other => {
            return Err(Failure::usage(format!(
                "lifecycle {other:?}: preview or apply"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn rotate_key(
    context: &Context,
    parser: &mut lexopt::Parser,
) -> Result<(), Failure> {
    let values = positionals(parser)?;
    let [from, to] = values.as_slice() else {
        return Err(Failure::usage("rotate-key takes FROM TO"));
    };
    let rotated = context.registry.rotate_kek(from, to).await?;
    context.print(
        json!({"from": from, "to": to, "rewrapped": rotated.rewrapped, "total": rotated.total}),
        || {
            format!(
                "{} of {} data keys re-wrapped from {from} to {to}",
                rotated.rewrapped, rotated.total
            )
        },
    );
    Ok(())
}
