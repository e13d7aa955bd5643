//! Offline lifecycle-policy tool: test an ECR lifecycle policy on an inventory before
//! applying it.
//!
//! ```text
//! lifecycle preview --policy POLICY.json --inventory INVENTORY.json [--now RFC3339]
//! lifecycle inventory --root DIR --repo NAME
//! lifecycle validate --policy POLICY.json
//! ```
//!
//! `preview` prints `{"expired", "transitioned", "cascade_expired", "decisions"}` as
//! JSON. `inventory` prints the live inventory of a repository in a registry directory
//! (as `Registry::open_local` keeps it) in the format `preview` reads, so a policy can be
//! tried on a copy of production. An invalid policy, like a usage error, exits with
//! status 2 and the message on stderr; other failures (unreadable files, a bad
//! inventory, a registry that cannot be opened) exit with status 1.

use std::process::ExitCode;
use std::time::SystemTime;

use wharf::{ErrorKind, LifecycleInventory, LifecyclePolicy, Registry, RepoName};

const USAGE: &str = "usage:
  lifecycle preview --policy POLICY.json --inventory INVENTORY.json [--now RFC3339]
  lifecycle inventory --root DIR --repo NAME
  lifecycle validate --policy POLICY.json";

/// A failure and the status to exit with.
struct Failure(u8, String);

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(Failure(status, message)) => {
            eprintln!("lifecycle: {message}");
            ExitCode::from(status)
        }
    }
}

/// `--name value` pairs after the command.
fn options(args: &[String], allowed: &[&str]) -> Result<Vec<(String, String)>, Failure> {
    let mut pairs = Vec::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let Some(name) = name.strip_prefix("--").filter(|n| allowed.contains(n)) else {
            return Err(Failure(2, format!("unexpected argument {name:?}\n{USAGE}")));
        };
        let value = it
            .next()
            .ok_or_else(|| Failure(2, format!("--{name} needs a value\n{USAGE}")))?;
        pairs.push((name.to_owned(), value.clone()));
    }
    Ok(pairs)
}

fn required<'a>(pairs: &'a [(String, String)], name: &str) -> Result<&'a str, Failure> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| Failure(2, format!("--{name} is required\n{USAGE}")))
}

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure(1, format!("reading {path}: {e}")))
}

fn load_policy(path: &str) -> Result<LifecyclePolicy, Failure> {
    LifecyclePolicy::parse(&read(path)?).map_err(|e| {
        let status = if e.kind() == ErrorKind::PolicyInvalid {
            2
        } else {
            1
        };
        Failure(status, format!("{path}: {}", e.message()))
    })
}

fn run(args: Vec<String>) -> Result<String, Failure> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure(2, USAGE.to_owned()));
    };
    match command.as_str() {
        "preview" => {
            let pairs = options(rest, &["policy", "inventory", "now"])?;
            let policy = load_policy(required(&pairs, "policy")?)?;
            let inventory_path = required(&pairs, "inventory")?;
            let inventory = LifecycleInventory::from_json(&read(inventory_path)?)
                .map_err(|e| Failure(1, format!("{inventory_path}: {}", e.message())))?;
            let now = match pairs.iter().find(|(n, _)| n == "now") {
                Some((_, text)) => {
                    wharf::lifecycle::parse_rfc3339(text).map_err(|e| Failure(2, e))?
                }
                None => SystemTime::now(),
            };
            let plan = wharf::lifecycle::plan(&policy, &inventory, now);
            Ok(serde_json::to_string_pretty(&plan.to_json()).expect("JSON values serialize"))
        }
        "validate" => {
            let pairs = options(rest, &["policy"])?;
            let policy = load_policy(required(&pairs, "policy")?)?;
            Ok(format!("valid: {} rules", policy.rules().len()))
        }
        "inventory" => {
            let pairs = options(rest, &["root", "repo"])?;
            let root = required(&pairs, "root")?;
            let repo: RepoName = required(&pairs, "repo")?
                .parse()
                .map_err(|e: wharf::Error| Failure(2, e.message().to_owned()))?;
            if !std::path::Path::new(root).join("meta.redb").exists() {
                return Err(Failure(
                    1,
                    format!("{root} holds no registry (no meta.redb)"),
                ));
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure(1, format!("starting the runtime: {e}")))?;
            let inventory = runtime
                .block_on(async {
                    let registry = Registry::open_local(root)?;
                    registry.lifecycle_inventory(&repo).await
                })
                .map_err(|e| Failure(1, e.to_string()))?;
            Ok(inventory.to_json())
        }
        other => Err(Failure(2, format!("unknown command {other:?}\n{USAGE}"))),
    }
}
