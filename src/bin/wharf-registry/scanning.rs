//! Image scanning in the example: the built-in scanner with OSV records from
//! `--vuln-db DIR`, scan on push for repositories that do not say otherwise
//! (`--scan-on-push`), and a job that reloads the records every `--vuln-db-refresh` and,
//! when they changed, matches every scanned image again from its stored SBOM (ECR's
//! continuous scanning), and scans images a stopped process left unscanned.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use wharf::{BuiltinScanner, Registry, Scanner};

use crate::config::duration;

/// How long an image stays eligible for re-matching after its last push or pull (ECR's
/// continuous-scanning duration, at its default).
const ELIGIBILITY: Duration = Duration::from_secs(30 * 86_400);

/// The scanning settings.
#[derive(Debug, Clone)]
pub(crate) struct ScanningConfig {
    /// A directory of OSV records (JSON files, or OSV's `all.zip` exports).
    pub(crate) vuln_db: Option<PathBuf>,
    /// Scan on push in repositories created without settings.
    pub(crate) scan_on_push: bool,
    /// How often the records are reloaded.
    pub(crate) refresh: Duration,
    /// The scanner, with the records loaded.
    pub(crate) scanner: Arc<BuiltinScanner>,
}

/// The `"scanning"` section of `--config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileScanning {
    vuln_db: Option<PathBuf>,
    scan_on_push: Option<bool>,
    refresh: Option<String>,
}

impl ScanningConfig {
    /// From the flags, over the `--config` file's section.
    pub(crate) fn from_flags(
        values: &impl Fn(&str) -> Vec<String>,
        file: FileScanning,
    ) -> Result<Self, String> {
        let refresh = match values("--vuln-db-refresh").pop() {
            Some(v) => duration("--vuln-db-refresh", &v)?,
            None => match file.refresh {
                Some(v) => duration("scanning.refresh in --config", &v)?,
                None => Duration::from_secs(3600),
            },
        };
        let vuln_db = values("--vuln-db")
            .pop()
            .map(PathBuf::from)
            .or(file.vuln_db);
        if let Some(dir) = &vuln_db
            && !dir.is_dir()
        {
            return Err(format!("--vuln-db {}: not a directory", dir.display()));
        }
        let scanner = Arc::new(BuiltinScanner::new());
        if let Some(dir) = &vuln_db {
            load(&scanner, dir)?;
        }
        Ok(Self {
            vuln_db,
            scan_on_push: !values("--scan-on-push").is_empty()
                || file.scan_on_push.unwrap_or(false),
            refresh,
            scanner,
        })
    }
}

fn load(scanner: &BuiltinScanner, dir: &std::path::Path) -> Result<(), String> {
    let report = scanner.load_database(dir).map_err(|e| e.to_string())?;
    tracing::info!(
        "vulnerability data: {} records from {} ({} skipped)",
        report.loaded,
        dir.display(),
        report.skipped.len()
    );
    for (source, reason) in report.skipped.iter().take(20) {
        tracing::warn!("skipped OSV record {source}: {reason}");
    }
    Ok(())
}

/// Reloads the records every `refresh`; when they changed, re-matches the scanned
/// images (one process at a time, under a lease), then scans what was left unscanned.
pub(crate) async fn refresh(registry: Registry, config: ScanningConfig, holder: String) {
    let scanner = config.scanner.clone();
    loop {
        tokio::time::sleep(config.refresh).await;
        let mut changed = false;
        if let Some(dir) = &config.vuln_db {
            let before = scanner.database();
            match load(&scanner, dir) {
                Ok(()) => changed = scanner.database() != before,
                Err(e) => tracing::warn!("reloading vulnerability data: {e}"),
            }
        }
        let lease = match registry
            .acquire_lease("scan-refresh", &holder, Duration::from_secs(600))
            .await
        {
            Ok(Some(lease)) => lease,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("scan refresh: {e}");
                continue;
            }
        };
        if changed {
            match registry.rematch_scans(Some(ELIGIBILITY)).await {
                Ok(report) => tracing::info!(
                    "re-matched {} scans ({} expired, {} rescanned)",
                    report.rematched,
                    report.expired,
                    report.rescanned
                ),
                Err(e) => tracing::warn!("re-matching scans: {e}"),
            }
        }
        if let Err(e) = registry.scan_unscanned().await {
            tracing::warn!("scanning unscanned images: {e}");
        }
        let _ = registry.release_lease(lease).await;
    }
}

/// The scanning flags, for `--help`.
pub(crate) const USAGE: &str = "
Scanning:
  --vuln-db DIR          OSV vulnerability records (JSON files or OSV's all.zip exports,
                         searched recursively) to match packages against
  --vuln-db-refresh DUR  reload them this often; scanned images are matched again from
                         their stored SBOMs when they changed (default 1h)
  --scan-on-push         scan images pushed to repositories created without settings
                         (ECR's imageScanningConfiguration.scanOnPush otherwise)
  Results are referrers of the image: a CycloneDX SBOM and the findings.
";
