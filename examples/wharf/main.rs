//! `wharf`: offline work on a registry directory (as `Registry::open_local` keeps it)
//! while no server holds it.
//!
//! ```text
//! wharf --root DIR [--json] [--quiet] COMMAND
//!   import REPO SOURCE [--tag TAG]...      SOURCE: oci:PATH | oci-archive:PATH | docker-archive:PATH
//!   export REPO REF... --to DEST [--referrers]
//!                                          DEST: as SOURCE; REF: tag or digest
//!   ls [REPO]                              repositories, or a repository's images
//!   stats [REPO]                           blobs and bytes, logical and stored
//!   verify                                 re-read every blob and check its digest
//!   gc [--dry-run]                         remove blobs nothing references
//!   lifecycle preview|apply REPO           the repository's lifecycle policy, now
//!   rotate-key FROM TO                     re-wrap data keys from one KEK to another
//!   copy FROM TO [--creds U:P] [--plain-http] [--ca-cert F] [--platform OS/ARCH] [--referrers]
//!                                          between docker://HOST/REPO:TAG and a local REPO[:TAG]
//!                                          (feature `remote`)
//! ```
//!
//! `--json` prints one JSON document per command (errors too, on stderr); otherwise
//! text, with progress bars on stderr for imports and exports (`--quiet` hides them).
//!
//! Exit status: 0 done; 1 the operation failed; 2 usage; 3 `verify` found damaged blobs;
//! 4 the registry directory is in use by another process (its message names it); 5 the
//! input was refused (a malformed layout or archive, a missing or corrupt blob in it).
//!
//! It is an example rather than a binary target so that the library's users build it
//! only when they ask for it (`cargo run --release --example wharf -- …`).

#[cfg(feature = "remote")]
mod copy;
mod moving;
mod upkeep;

use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::prelude::*;
use wharf::{Error, ErrorKind, Registry};

const USAGE: &str = "usage: wharf --root DIR [--json] [--quiet] COMMAND
  import REPO SOURCE [--tag TAG]...        SOURCE: oci:PATH | oci-archive:PATH | docker-archive:PATH
  export REPO REF... --to DEST [--referrers]
  ls [REPO]
  stats [REPO]
  verify
  gc [--dry-run]
  lifecycle preview|apply REPO
  rotate-key FROM TO
  copy FROM TO [--creds USER:PASSWORD] [--plain-http] [--ca-cert FILE] [--platform OS/ARCH] [--referrers]
                                      FROM/TO: docker://HOST/REPO[:TAG] and a local REPO[:TAG]";

/// Why the command stopped: the exit status and the message.
pub(crate) struct Failure {
    status: u8,
    code: &'static str,
    message: String,
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            status: 2,
            code: "USAGE",
            message: format!("{}\n{USAGE}", message.into()),
        }
    }

    pub(crate) fn damaged(message: impl Into<String>) -> Self {
        Failure {
            status: 3,
            code: "DAMAGED",
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = match error.kind() {
            ErrorKind::DatabaseInUse => 4,
            ErrorKind::ArchiveInvalid
            | ErrorKind::DigestInvalid
            | ErrorKind::BlobUnknown
            | ErrorKind::SizeInvalid
            | ErrorKind::ManifestInvalid => 5,
            _ => 1,
        };
        Failure {
            status,
            code: error.kind().code(),
            message: error.message().to_owned(),
        }
    }
}

impl From<lexopt::Error> for Failure {
    fn from(error: lexopt::Error) -> Self {
        Failure::usage(error.to_string())
    }
}

/// What every command is given.
pub(crate) struct Context {
    pub(crate) registry: Registry,
    /// Print JSON rather than text.
    pub(crate) json: bool,
    /// Draw progress bars.
    pub(crate) progress: bool,
}

impl Context {
    /// Prints a command's result: `json` with `--json`, else `text`.
    pub(crate) fn print(&self, json: serde_json::Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{json}");
        } else {
            let text = text();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

fn main() -> ExitCode {
    let mut json = false;
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            status: 1,
            code: "RUNTIME",
            message: e.to_string(),
        })
        .and_then(|runtime| runtime.block_on(run(&mut json)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json {
                let error = serde_json::json!({"error": {"code": failure.code, "message": failure.message}});
                eprintln!("{error}");
            } else {
                eprintln!("wharf: {}", failure.message);
            }
            ExitCode::from(failure.status)
        }
    }
}

async fn run(json: &mut bool) -> Result<(), Failure> {
    let mut parser = lexopt::Parser::from_env();
    let mut root: Option<PathBuf> = None;
    let mut quiet = false;
    let command = loop {
        match parser.next()? {
            Some(Long("root")) => root = Some(parser.value()?.into()),
            Some(Long("json")) => *json = true,
            Some(Long("quiet")) => quiet = true,
            Some(Long("help") | Short('h')) => {
                println!("{USAGE}");
                return Ok(());
            }
            Some(Value(command)) => break command.string()?,
            Some(other) => return Err(other.unexpected().into()),
            None => return Err(Failure::usage("no command given")),
        }
    };
    let root = root.ok_or_else(|| Failure::usage("--root DIR is required"))?;
    if !root.join("meta.redb").exists() && command != "import" {
        return Err(Failure {
            status: 1,
            code: "NAME_UNKNOWN",
            message: format!(
                "{} holds no registry (no meta.redb); `import` creates one",
                root.display()
            ),
        });
    }
    let context = Context {
        registry: Registry::open_local(&root)?,
        json: *json,
        progress: !quiet && !*json,
    };
    match command.as_str() {
        "import" => moving::import(&context, &mut parser).await,
        "export" => moving::export(&context, &mut parser).await,
        "ls" => upkeep::ls(&context, &mut parser).await,
        "stats" => upkeep::stats(&context, &mut parser).await,
        "verify" => upkeep::verify(&context, &mut parser).await,
        "gc" => upkeep::gc(&context, &mut parser).await,
        "lifecycle" => upkeep::lifecycle(&context, &mut parser).await,
        "rotate-key" => upkeep::rotate_key(&context, &mut parser).await,
        #[cfg(feature = "remote")]
        "copy" => copy::copy(&context, &mut parser).await,
        #[cfg(not(feature = "remote"))]
        "copy" => Err(Failure::usage(
            "copy needs the remote feature: cargo run --example wharf --features remote",
        )),
        other => Err(Failure::usage(format!("unknown command {other:?}"))),
    }
}

/// The positional arguments left, refusing flags.
pub(crate) fn positionals(parser: &mut lexopt::Parser) -> Result<Vec<String>, Failure> {
    let mut values = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Value(value) => values.push(value.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    Ok(values)
}

/// Parses `text` as `T`, naming `what` on failure.
pub(crate) fn parse<T: std::str::FromStr<Err = Error>>(
    what: &str,
    text: &str,
) -> Result<T, Failure> {
    text.parse()
        .map_err(|e: Error| Failure::usage(format!("{what} {text:?}: {}", e.message())))
}
