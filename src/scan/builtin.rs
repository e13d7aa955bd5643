//! The built-in scanner: one walk over the layers on a blocking thread, fed by the blob
//! streams through bounded channels, then OSV matching of what it found.

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::inventory::{BuiltinAnalyzers, Found, OS_RELEASE};
use super::osv::{LoadReport, OsvDatabase};
use super::walk::{self, LayerInput, Node, WalkError, WalkLimits, Walked};
use super::{
    Finding, Inventory, LayerReader, LocatedPackage, ScanOutcome, ScanReport, ScanTarget, Scanner,
};
use crate::error::{Error, ErrorKind, Result};

/// Config media types of images (anything else is an artifact, not scanned).
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Chunks of a layer in flight between its blob stream and the walk.
const CHANNEL_DEPTH: usize = 4;

/// Bounds on one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanLimits {
    /// Bounds on the walk: expansion, entries, symlink hops.
    pub walk: WalkLimits,
    /// The analyzers' caps.
    pub analyzers: BuiltinAnalyzers,
}

/// The built-in [`Scanner`]: package inventory from the layers, matched against OSV
/// records that can be swapped while it runs.
#[derive(Debug, Default)]
pub struct BuiltinScanner {
    limits: ScanLimits,
    database: RwLock<Option<Arc<OsvDatabase>>>,
}

impl BuiltinScanner {
    /// A scanner with the default limits and no vulnerability data (inventory only).
    pub fn new() -> Self {
        Self::default()
    }

    /// A scanner with `limits`.
    pub fn with_limits(limits: ScanLimits) -> Self {
        BuiltinScanner {
            limits,
            database: RwLock::new(None),
        }
    }

    /// Uses `database` for matching from now on (scans under way finish with the data
    /// they started with).
    pub fn set_database(&self, database: OsvDatabase) {
        let mut slot = self.database.write().unwrap_or_else(|e| e.into_inner());
        *slot = Some(Arc::new(database));
    }

    /// Loads OSV records from `dir` (JSON files and OSV's zip exports, recursively) and
    /// uses them from now on; what could not be read is in the report.
    pub fn load_database(&self, dir: &Path) -> Result<LoadReport> {
        let (database, report) = OsvDatabase::from_dir(dir).map_err(|e| {
            Error::new(
                ErrorKind::Configuration,
                format!("loading vulnerability data from {}: {e}", dir.display()),
            )
        })?;
        self.set_database(database);
        Ok(report)
    }

    fn current_database(&self) -> Option<Arc<OsvDatabase>> {
        self.database
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The findings for `inventory`, with notes on what could not be matched.
    fn findings(
        &self,
        database: Option<&OsvDatabase>,
        inventory: &Inventory,
    ) -> (Vec<Finding>, Vec<String>) {
        let Some(database) = database else {
            return (Vec::new(), vec!["no vulnerability data loaded".to_owned()]);
        };
        let report = database.match_inventory(
            inventory.os.as_ref(),
            inventory.packages.iter().map(|p| &p.package),
        );
        let notes = report.notes();
        (report.findings, notes)
    }
}

#[async_trait]
impl Scanner for BuiltinScanner {
    async fn scan(&self, target: &ScanTarget, layers: &dyn LayerReader) -> ScanOutcome {
        if !IMAGE_CONFIGS.contains(&target.config.media_type.as_str()) {
            return ScanOutcome::Unsupported(format!(
                "config media type {} is not an image config: an artifact, not an image",
                target.config.media_type
            ));
        }
        let database = self.current_database();
        let walked = match self.walk(target, layers).await {
            Ok(walked) => walked,
            Err(WalkError::Unsupported(reason)) => return ScanOutcome::Unsupported(reason),
            Err(WalkError::Failed(reason)) => return ScanOutcome::Failed(reason),
        };
        let (inventory, mut notes, unsupported) = match collect(target, walked) {
            Ok(collected) => collected,
            Err(WalkError::Unsupported(reason)) => return ScanOutcome::Unsupported(reason),
            Err(WalkError::Failed(reason)) => return ScanOutcome::Failed(reason),
        };
        let has_os_packages = inventory.packages.iter().any(|p| p.package.kind.is_os());
        if let Some(reason) = unsupported.first()
            && !has_os_packages
        {
            return ScanOutcome::Unsupported(reason.clone());
        }
        notes.extend(unsupported);
        let (findings, matching_notes) = self.findings(database.as_deref(), &inventory);
        notes.extend(matching_notes);
        ScanOutcome::Complete(ScanReport {
            inventory,
            findings,
            database: database.map(|d| d.fingerprint().to_owned()),
            notes,
        })
    }

    fn database(&self) -> Option<String> {
        self.current_database().map(|d| d.fingerprint().to_owned())
    }

    fn rematch(&self, inventory: &Inventory) -> Option<Vec<Finding>> {
        let database = self.current_database();
        Some(self.findings(database.as_deref(), inventory).0)
    }
}

impl BuiltinScanner {
    /// Walks the layers on a blocking thread while this task feeds it their bytes.
    async fn walk(
        &self,
        target: &ScanTarget,
        layers: &dyn LayerReader,
    ) -> std::result::Result<Walked<Found>, WalkError> {
        let mut senders = Vec::new();
        let mut inputs = Vec::new();
        for layer in &target.layers {
            let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
            senders.push(tx);
            inputs.push(LayerInput {
                digest: layer.digest.to_string(),
                media_type: layer.media_type.clone(),
                bytes: Box::new(ChannelReader {
                    rx,
                    current: Bytes::new(),
                }),
            });
        }
        // Unsupported media types end the scan before any byte is read.
        for layer in &target.layers {
            if super::decompress::LayerCompression::of_media_type(&layer.media_type).is_none() {
                return Err(WalkError::Unsupported(format!(
                    "layer {} has media type {}, which is not a filesystem layer",
                    layer.digest, layer.media_type
                )));
            }
        }
        let limits = self.limits;
        let walking = tokio::task::spawn_blocking(move || {
            walk::walk(inputs, &limits.analyzers, &limits.walk)
        });
        'layers: for (layer, tx) in target.layers.iter().zip(senders) {
            let mut stream = match layers.open(&layer.digest).await {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    break;
                }
            };
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                // A closed channel means the walk stopped; its result says why.
                if tx.send(chunk.map_err(|e| e.to_string())).await.is_err() || failed {
                    break 'layers;
                }
            }
        }
        walking
            .await
            .map_err(|e| WalkError::Failed(format!("the layer walk stopped: {e}")))?
    }
}

/// The inventory a walk found, its notes, and the reasons it met unsupported databases.
fn collect(
    target: &ScanTarget,
    mut walked: Walked<Found>,
) -> std::result::Result<(Inventory, Vec<String>, Vec<String>), WalkError> {
    let mut os = None;
    for path in OS_RELEASE {
        if let Some(placed) = walked.resolve(path)?
            && let Node::Found(Found::Os(release)) = &placed.value
        {
            os = Some(release.clone());
            break;
        }
    }
    let mut notes = std::mem::take(&mut walked.notes);
    let mut unsupported = Vec::new();
    let mut packages = Vec::new();
    // Consumed, not cloned: an inventory can be tens of thousands of packages.
    for (path, placed) in std::mem::take(&mut walked.entries) {
        let layer = target
            .layers
            .get(placed.layer)
            .map(|l| l.digest.to_string());
        match placed.value {
            Node::Found(Found::Packages(found)) => {
                packages.extend(found.into_iter().map(|package| LocatedPackage {
                    package,
                    layer: layer.clone(),
                }));
            }
            Node::Found(Found::Unreadable(e)) => notes.push(format!("{path}: {e}")),
            Node::Found(Found::Unsupported(reason)) => unsupported.push(reason),
            Node::Found(Found::Os(_)) | Node::Link(_) => {}
        }
    }
    packages.sort_by(|a, b| a.package.cmp(&b.package));
    Ok((Inventory { os, packages }, notes, unsupported))
}

/// A layer's bytes as they arrive from its blob stream.
struct ChannelReader {
    rx: mpsc::Receiver<std::result::Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(reason)) => return Err(io::Error::other(reason)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
