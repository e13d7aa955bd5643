//! `import` and `export`: OCI layouts and archives in and out of the registry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lexopt::prelude::*;
use wharf::transfer::Progress;
use wharf::transfer::sink::{DirectorySink, LayoutSink, TarSink};
use wharf::transfer::source::{ArchiveSource, DirectorySource, LayoutSource};
use wharf::{ExportOptions, ImportOptions, Reference, RepoName, Tag};

use crate::{Context, Failure, parse};

/// Where images come from or go: `oci:PATH`, `oci-archive:PATH` or
/// `docker-archive:PATH`.
enum Location {
    Layout(PathBuf),
    Archive(PathBuf),
    Docker(PathBuf),
}

impl Location {
    fn parse(text: &str) -> Result<Self, Failure> {
        match text.split_once(':') {
            Some(("oci", path)) if !path.is_empty() => Ok(Location::Layout(path.into())),
            Some(("oci-archive", path)) if !path.is_empty() => Ok(Location::Archive(path.into())),
            Some(("docker-archive", path)) if !path.is_empty() => Ok(Location::Docker(path.into())),
            _ => Err(Failure::usage(format!(
                "{text:?} is not oci:PATH, oci-archive:PATH or docker-archive:PATH"
            ))),
        }
    }
}

/// Progress drawn as a bar of bytes on stderr.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    pub(crate) fn new(shown: bool, verb: &'static str) -> Arc<Self> {
        let bar = ProgressBar::with_draw_target(
            Some(0),
            if shown {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(verb);
        Arc::new(Bar(bar))
    }

    /// Takes the bar off the screen.
    pub(crate) fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn planned(&self, blobs: usize, bytes: u64) {
        self.0.set_length(bytes);
        self.0
            .set_message(format!("{} {blobs} blobs", self.0.message()));
    }

    fn advanced(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

pub(crate) async fn import(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut tags: Vec<Tag> = Vec::new();
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("tag") => tags.push(parse("tag", &parser.value()?.string()?)?),
            Value(value) => values.push(value.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let [repo, source] = values.as_slice() else {
        return Err(Failure::usage("import takes REPO SOURCE"));
    };
    let repo: RepoName = parse("repository", repo)?;
    let location = Location::parse(source)?;
    let docker = matches!(location, Location::Docker(_));
    let source: Arc<dyn LayoutSource> = match location {
        Location::Layout(path) => Arc::new(DirectorySource::new(path)),
        Location::Archive(path) | Location::Docker(path) => Arc::new(list_archive(path).await?),
    };
    let bar = Bar::new(context.progress, "importing");
    let started = Instant::now();
    let options = ImportOptions {
        tags,
        progress: bar.clone(),
    };
    let report = if docker {
        context
            .registry
            .import_docker_archive(&repo, source, &options)
            .await
    } else {
        context
            .registry
            .import_layout(&repo, source, &options)
            .await
    };
    bar.finish();
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    let images: Vec<serde_json::Value> = report
        .images
        .iter()
        .map(|(digest, tag)| serde_json::json!({"digest": digest.as_str(), "tag": tag.as_ref().map(Tag::as_str)}))
        .collect();
    context.print(
        serde_json::json!({
            "repository": repo.as_str(),
            "images": images,
            "manifests": report.manifests,
            "blobs": report.blobs,
            "blobs_present": report.blobs_present,
            "bytes": report.bytes,
            "seconds": seconds,
        }),
        || {
            let mut lines: Vec<String> = report
                .images
                .iter()
                .map(|(digest, tag)| match tag {
                    Some(tag) => format!("{repo}:{tag} {digest}"),
                    None => format!("{repo}@{digest}"),
                })
                .collect();
            lines.push(format!(
                "imported {} manifests, {} blobs ({} bytes; {} already present) in {seconds:.1}s",
                report.manifests, report.blobs, report.bytes, report.blobs_present
            ));
            lines.join("\n")
        },
    );
    Ok(())
}

pub(crate) async fn export(context: &Context, parser: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut to = None;
    let mut referrers = false;
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("to") => to = Some(Location::parse(&parser.value()?.string()?)?),
            Long("referrers") => referrers = true,
            Value(value) => values.push(value.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(to) = to else {
        return Err(Failure::usage("export needs --to DEST"));
    };
    let Some((repo, references)) = values.split_first() else {
        return Err(Failure::usage("export takes REPO REF..."));
    };
    if references.is_empty() {
        return Err(Failure::usage("export takes at least one tag or digest"));
    }
    let repo: RepoName = parse("repository", repo)?;
    let references = references
        .iter()
        .map(|r| parse::<Reference>("reference", r))
        .collect::<Result<Vec<_>, _>>()?;
    let docker = matches!(to, Location::Docker(_));
    let (sink, shown): (Box<dyn LayoutSink>, String) = match to {
        Location::Layout(path) => {
            let shown = path.display().to_string();
            let sink = DirectorySink::create(&path).map_err(|e| io_failure(&shown, e))?;
            (Box::new(sink), shown)
        }
        Location::Archive(path) | Location::Docker(path) => {
            let shown = path.display().to_string();
            let file = std::fs::File::create(&path).map_err(|e| io_failure(&shown, e))?;
            let out = std::io::BufWriter::with_capacity(1 << 20, file);
            let sink = if docker {
                TarSink::docker(out)
            } else {
                TarSink::new(out)
            };
            (Box::new(sink.map_err(|e| io_failure(&shown, e))?), shown)
        }
    };
    let bar = Bar::new(context.progress, "exporting");
    let started = Instant::now();
    let options = ExportOptions {
        referrers,
        progress: bar.clone(),
    };
    let report = if docker {
        context
            .registry
            .export_docker_archive(&repo, &references, sink, &options)
            .await
    } else {
        context
            .registry
            .export_layout(&repo, &references, sink, &options)
            .await
    };
    bar.finish();
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    context.print(
        serde_json::json!({
            "repository": repo.as_str(),
            "destination": shown,
            "entries": report.entries,
            "manifests": report.manifests,
            "blobs": report.blobs,
            "blobs_present": report.blobs_present,
            "bytes": report.bytes,
            "seconds": seconds,
        }),
        || {
            format!(
                "exported {} entries to {shown}: {} blobs ({} bytes; {} already there) in {seconds:.1}s",
                report.entries, report.blobs, report.bytes, report.blobs_present
            )
        },
    );
    Ok(())
}

/// Lists the tar at `path` on a blocking thread.
async fn list_archive(path: PathBuf) -> Result<ArchiveSource, Failure> {
    let what = path.display().to_string();
    let listed = tokio::task::spawn_blocking(move || ArchiveSource::open(path))
        .await
        .map_err(|e| io_failure(&what, std::io::Error::other(e)))?;
    listed.map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::InvalidData {
            wharf::ErrorKind::ArchiveInvalid
        } else {
            wharf::ErrorKind::Storage
        };
        Failure::from(wharf::Error::new(kind, format!("{what}: {e}")))
    })
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure::from(wharf::Error::new(
        wharf::ErrorKind::Storage,
        format!("{what}: {e}"),
    ))
}
