//! Flags and environment, checked up front, and the registry they describe.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wharf::codec::Compression;
use wharf::keys::{DEFAULT_KEK, KeyProvider, LocalKeyProvider};
use wharf::object_store::ObjectStore;
use wharf::{
    AtRest, MetaStore, ObjectBlobStore, RedbMetaStore, Registry, ResourceAccount, SmallObjects,
};

use crate::auth::Auth;
use crate::backends;
use crate::connections::Limits;
use crate::login::Login;
use crate::tokens::Tokens;

pub(crate) const USAGE: &str = "\
An OCI Distribution v1.1 registry on wharf.

usage: registry [FLAGS]

  --root DIR             local data: blobs, metadata database, key file
                         (default ./wharf-data)                      [WHARF_REGISTRY_ROOT]
  --listen ADDR          address to serve on (default 127.0.0.1:5000) [WHARF_REGISTRY_LISTEN]
  --compression on|off   zstd-compress new blobs where it helps (default on)
                                                                     [WHARF_REGISTRY_COMPRESSION]
  --encryption on|off    encrypt new blobs under the key file DIR/keys.json (default on)
                                                                     [WHARF_REGISTRY_ENCRYPTION]
  --framing on|off       with compression and encryption off: keep new blobs in frames
                         with checksums, which full reads check instead of hashing the
                         blob again (default on; off: exactly as received)
                                                                     [WHARF_REGISTRY_FRAMING]
  --workers N            threads answering requests (default 1: hashing, sealing and
                         disk I/O run on a pool of their own that uses every core)
                                                                     [WHARF_REGISTRY_WORKERS]
  --upload-expiry DUR    drop upload sessions idle this long: 90s, 30m, 24h, 7d
                         (default 24h)                               [WHARF_REGISTRY_UPLOAD_EXPIRY]
  --blocking-threads N   threads for hashing, sealing and disk I/O (default 8)
                                                                     [WHARF_REGISTRY_BLOCKING_THREADS]
  --auth FILE            users (bcrypt or argon2id passwords, groups, IAM identity
                         policies) and repositories to seed (public, policy); every
                         request is then authorized (a token from /token, Basic
                         credentials, or anonymous). Without it whoever reaches the
                         server may do anything.                     [WHARF_REGISTRY_AUTH]
  --tls-cert FILE        serve HTTPS with this PEM certificate chain (server first)
                                                                     [WHARF_REGISTRY_TLS_CERT]
  --tls-key FILE         and this PEM private key (PKCS#8, PKCS#1 or SEC1)
                                                                     [WHARF_REGISTRY_TLS_KEY]
  --region NAME          the region of repository ARNs and of the ECR API's request
                         signatures (default us-east-1)              [WHARF_REGISTRY_REGION]
  --kms-key-id KEY       keep the key-encryption keys in AWS KMS (builds with --features
                         kms): KEY (id, alias or ARN) wraps blobs' data keys instead of
                         DIR/keys.json, so replicas share it; repositories may name
                         other KMS keys                              [WHARF_REGISTRY_KMS_KEY_ID]
  --kms-endpoint URL     a KMS-compatible endpoint                   [AWS_ENDPOINT_URL_KMS]
  --token-ttl DUR        how long a token from /token is valid (default 5m); its
                         signing keys are DIR/token-keys/, rotated daily
                                                                     [WHARF_REGISTRY_TOKEN_TTL]

Connections:
  --max-connections N    open connections at most; at the cap a new one closes the
                         longest-idle one, or gets 503 if all are busy (default 1024)
                                                                     [WHARF_REGISTRY_MAX_CONNECTIONS]
  --idle-timeout DUR     close a connection that takes this long to send a request's
                         headers, idle keep-alive ones too (default 60s)
                                                                     [WHARF_REGISTRY_IDLE_TIMEOUT]
  --body-timeout DUR     end a request whose body sends nothing this long (an upload
                         keeps what arrived), and close a connection whose client
                         stops reading its response as long (default 60s)
                                                                     [WHARF_REGISTRY_BODY_TIMEOUT]

Blobs in S3 or an S3-compatible store instead of DIR (builds with --features s3):
  --s3-bucket NAME       the bucket                                  [WHARF_REGISTRY_S3_BUCKET]
  --s3-prefix PREFIX     key prefix inside the bucket                [WHARF_REGISTRY_S3_PREFIX]
  --s3-endpoint URL      endpoint of an S3-compatible server         [AWS_ENDPOINT_URL]
  --s3-region REGION     region (default us-east-1)                  [AWS_REGION]
  --s3-allow-http        allow a plain-HTTP endpoint (local servers) [AWS_ALLOW_HTTP]
  Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
  --metadata embedded|s3 metadata in DIR/meta.redb (default), or in the bucket through
                         conditional writes (checked at start)       [WHARF_REGISTRY_METADATA]

  --help                 this text
";

/// How long a token from `/token` is valid by default (Distribution's default too).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// Threads for hashing, sealing and file I/O: enough for every core and for requests
/// waiting on a disk sync.
const DEFAULT_BLOCKING_THREADS: usize = 8;

/// Connections open at once by default: well under the usual descriptor limit.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How long a client may send nothing, waiting for headers or mid-body.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes per staged part of a blob written to the local filesystem.
const LOCAL_PART_SIZE: usize = 1 << 20;

/// Where metadata lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metadata {
    /// `DIR/meta.redb`.
    Embedded,
    /// The S3 bucket, through conditional writes.
    S3,
}

/// The S3 bucket for blobs (and metadata, with `--metadata s3`).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub(crate) struct S3Config {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) allow_http: bool,
}

/// Everything the server was asked for, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) root: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) compression: bool,
    pub(crate) encryption: bool,
    pub(crate) framing: bool,
    pub(crate) upload_expiry: Duration,
    pub(crate) workers: usize,
    pub(crate) blocking_threads: usize,
    pub(crate) limits: Limits,
    pub(crate) s3: Option<S3Config>,
    pub(crate) metadata: Metadata,
    pub(crate) auth: Option<PathBuf>,
    pub(crate) token_ttl: Duration,
    /// `--tls-cert` and `--tls-key`: PEM files.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    /// The region of repository ARNs and of the ECR API's signatures.
    pub(crate) region: String,
    /// `--kms-key-id`: KEKs in AWS KMS instead of the key file.
    pub(crate) kms: Option<KmsConfig>,
    /// Webhooks and background jobs.
    pub(crate) operations: crate::operations::Operations,
}

/// The key provider, the KEK names it holds, and where they come from (for errors).
pub(crate) struct Keys {
    pub(crate) provider: Arc<dyn KeyProvider>,
    pub(crate) names: Vec<String>,
    pub(crate) source: String,
}

/// The KMS key the default KEK is, and the KMS endpoint.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "kms"), allow(dead_code))]
pub(crate) struct KmsConfig {
    pub(crate) key_id: String,
    pub(crate) endpoint: Option<String>,
}

/// One setting's raw text: the flag's value if given, else the environment variable's.
fn setting(flags: &[(String, String)], flag: &str, env: &str) -> Option<(String, String)> {
    flags
        .iter()
        .rev()
        .find(|(name, _)| name == flag)
        .map(|(name, value)| (name.clone(), value.clone()))
        .or_else(|| std::env::var(env).ok().map(|v| (env.to_owned(), v)))
}

fn switch(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{name} must be on or off, not {value:?}")),
    }
}

/// `90s`, `30m`, `24h`, `7d`, or plain seconds.
pub(crate) fn duration(name: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("{name} must be a duration such as 90s, 30m, 24h or 7d, not {value:?}");
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(format!("{name} must be longer than zero"));
    }
    Ok(Duration::from_secs(seconds))
}

const VALUE_FLAGS: &[&str] = &[
    "--root",
    "--listen",
    "--compression",
    "--encryption",
    "--framing",
    "--upload-expiry",
    "--workers",
    "--blocking-threads",
    "--max-connections",
    "--idle-timeout",
    "--body-timeout",
    "--s3-bucket",
    "--s3-prefix",
    "--s3-endpoint",
    "--s3-region",
    "--metadata",
    "--auth",
    "--token-ttl",
    "--tls-cert",
    "--tls-key",
    "--region",
    "--kms-key-id",
    "--kms-endpoint",
    "--config",
    "--webhook",
    "--webhook-secret",
    "--webhook-format",
    "--max-event-age",
    "--gc-interval",
    "--gc-pace",
    "--lifecycle-interval",
    "--log-format",
    "--vuln-db",
    "--vuln-db-refresh",
];

impl Config {
    /// Parses the command line (without the program name), with the environment as
    /// defaults; `Ok(None)` for `--help`.
    pub(crate) fn from_args(
        args: impl IntoIterator<Item = String>,
    ) -> Result<Option<Self>, String> {
        let mut flags: Vec<(String, String)> = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Ok(None);
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), None),
            };
            if name == "--lifecycle-now" || name == "--scan-on-push" {
                flags.push((name, "on".into()));
            } else if name == "--s3-allow-http" {
                flags.push((name, inline.unwrap_or_else(|| "on".into())));
            } else if VALUE_FLAGS.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
                };
                flags.push((name, value));
            } else {
                return Err(format!("unknown argument {arg:?}"));
            }
        }
        let get = |flag: &str, env: &str| setting(&flags, flag, env);
        let operations = crate::operations::Operations::from_flags(|flag| {
            let given = flags.iter().filter(|(name, _)| name == flag);
            given.map(|(_, value)| value.clone()).collect()
        })?;

        let root = get("--root", "WHARF_REGISTRY_ROOT")
            .map(|(_, v)| PathBuf::from(v))
            .unwrap_or_else(|| PathBuf::from("wharf-data"));
        let listen = match get("--listen", "WHARF_REGISTRY_LISTEN") {
            Some((name, v)) => v.parse().map_err(|_| {
                format!("{name} must be an address such as 127.0.0.1:5000, not {v:?}")
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 5000)),
        };
        let on = |flag: &str, env: &str| match get(flag, env) {
            Some((name, v)) => switch(&name, &v),
            None => Ok(true),
        };
        let compression = on("--compression", "WHARF_REGISTRY_COMPRESSION")?;
        let encryption = on("--encryption", "WHARF_REGISTRY_ENCRYPTION")?;
        let framing = on("--framing", "WHARF_REGISTRY_FRAMING")?;
        let upload_expiry = match get("--upload-expiry", "WHARF_REGISTRY_UPLOAD_EXPIRY") {
            Some((name, v)) => duration(&name, &v)?,
            None => wharf::DEFAULT_UPLOAD_EXPIRY,
        };
        let count = |flag: &str, env: &str, max: usize, default: usize| match get(flag, env) {
            Some((name, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{name} must be a count from 1 to {max}, not {v:?}")),
            None => Ok(default),
        };
        let workers = count("--workers", "WHARF_REGISTRY_WORKERS", 1024, 1)?;
        let blocking_threads = count(
            "--blocking-threads",
            "WHARF_REGISTRY_BLOCKING_THREADS",
            1024,
            DEFAULT_BLOCKING_THREADS,
        )?;
        let timeout = |flag: &str, env: &str| match get(flag, env) {
            Some((name, v)) => duration(&name, &v),
            None => Ok(DEFAULT_TIMEOUT),
        };
        let limits = Limits {
            max_connections: count(
                "--max-connections",
                "WHARF_REGISTRY_MAX_CONNECTIONS",
                1 << 20,
                DEFAULT_MAX_CONNECTIONS,
            )?,
            idle_timeout: timeout("--idle-timeout", "WHARF_REGISTRY_IDLE_TIMEOUT")?,
            body_timeout: timeout("--body-timeout", "WHARF_REGISTRY_BODY_TIMEOUT")?,
        };
        let metadata = match get("--metadata", "WHARF_REGISTRY_METADATA") {
            None => Metadata::Embedded,
            Some((_, v)) if v == "embedded" => Metadata::Embedded,
            Some((_, v)) if v == "s3" => Metadata::S3,
            Some((name, v)) => return Err(format!("{name} must be embedded or s3, not {v:?}")),
        };
        let s3 = match get("--s3-bucket", "WHARF_REGISTRY_S3_BUCKET") {
            Some((_, bucket)) if !bucket.is_empty() => Some(S3Config {
                bucket,
                prefix: get("--s3-prefix", "WHARF_REGISTRY_S3_PREFIX")
                    .map(|(_, v)| v.trim_matches('/').to_owned())
                    .unwrap_or_default(),
                endpoint: get("--s3-endpoint", "AWS_ENDPOINT_URL").map(|(_, v)| v),
                region: get("--s3-region", "AWS_REGION").map(|(_, v)| v),
                allow_http: match get("--s3-allow-http", "AWS_ALLOW_HTTP") {
                    Some((name, v)) => switch(&name, &v)?,
                    None => false,
                },
            }),
            _ => None,
        };
        if s3.is_none() {
            for flag in [
                "--s3-prefix",
                "--s3-endpoint",
                "--s3-region",
                "--s3-allow-http",
            ] {
                if flags.iter().any(|(name, _)| name == flag) {
                    return Err(format!("{flag} needs --s3-bucket"));
                }
            }
            if metadata == Metadata::S3 {
                return Err("--metadata s3 needs --s3-bucket".into());
            }
        }
        let auth = get("--auth", "WHARF_REGISTRY_AUTH").map(|(_, v)| PathBuf::from(v));
        let token_ttl = match get("--token-ttl", "WHARF_REGISTRY_TOKEN_TTL") {
            Some((name, v)) => duration(&name, &v)?,
            None => DEFAULT_TOKEN_TTL,
        };
        let tls = match (
            get("--tls-cert", "WHARF_REGISTRY_TLS_CERT"),
            get("--tls-key", "WHARF_REGISTRY_TLS_KEY"),
        ) {
            (Some((_, cert)), Some((_, key))) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        let region = get("--region", "WHARF_REGISTRY_REGION")
            .map(|(_, v)| v)
            .unwrap_or_else(|| "us-east-1".to_owned());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "--region must be a region name such as us-east-1, not {region:?}"
            ));
        }
        let kms = match get("--kms-key-id", "WHARF_REGISTRY_KMS_KEY_ID") {
            Some((_, key_id)) if !key_id.is_empty() => Some(KmsConfig {
                key_id,
                endpoint: get("--kms-endpoint", "AWS_ENDPOINT_URL_KMS").map(|(_, v)| v),
            }),
            _ if flags.iter().any(|(name, _)| name == "--kms-endpoint") => {
                return Err("--kms-endpoint needs --kms-key-id".into());
            }
            _ => None,
        };
        Ok(Some(Self {
            operations,
            auth,
            token_ttl,
            tls,
            region,
            kms,
            root,
            listen,
            compression,
            encryption,
            framing,
            upload_expiry,
            workers,
            blocking_threads,
            limits,
            s3,
            metadata,
        }))
    }

    /// One line saying where data goes.
    pub(crate) fn describe(&self) -> String {
        let root = self.root.display();
        let blobs = match &self.s3 {
            Some(s3) => format!("blobs in s3://{}/{}", s3.bucket, s3.prefix),
            None => format!("blobs in {root}/blobs"),
        };
        let meta = match self.metadata {
            Metadata::Embedded => format!("metadata in {root}/meta.redb"),
            Metadata::S3 => "metadata in the bucket".to_owned(),
        };
        let keys = match &self.kms {
            Some(kms) => format!("KMS key {}", kms.key_id),
            None => format!("{root}/keys.json"),
        };
        let at_rest = match (self.compression, self.encryption, self.framing) {
            (true, true, _) => format!("compressed and encrypted under {keys}"),
            (false, true, _) => format!("encrypted under {keys}"),
            (true, false, _) => "compressed".to_owned(),
            (false, false, true) => "in checksummed frames".to_owned(),
            (false, false, false) => "stored as received".to_owned(),
        };
        format!("{blobs} ({at_rest}), {meta}")
    }

    /// The key provider, the KEK names it holds, and where they come from: KMS with
    /// `--kms-key-id`, else the key file (opened even with encryption off, so blobs
    /// written while it was on stay readable).
    fn key_provider(&self) -> Result<Keys, String> {
        let Some(kms) = &self.kms else {
            let path = self.root.join("keys.json");
            let keys = LocalKeyProvider::open(&path).map_err(|e| e.to_string())?;
            let names = keys.kek_names();
            return Ok(Keys {
                provider: Arc::new(keys),
                names,
                source: path.display().to_string(),
            });
        };
        backends::kms_provider(kms, &self.region)
    }

    /// Opens the stores and builds the registry; errors name what is wrong.
    pub(crate) async fn open(&self) -> Result<(Registry, Option<Arc<Login>>), String> {
        let auth = match &self.auth {
            Some(path) => Some(Arc::new(Auth::load(path)?)),
            None => None,
        };
        std::fs::create_dir_all(&self.root)
            .map_err(|e| format!("cannot create --root {}: {e}", self.root.display()))?;
        let (blobs, composer) = match &self.s3 {
            Some(s3) => backends::s3_store(s3)?,
            None => backends::local_store(&self.root.join("blobs"))?,
        };
        let meta: Arc<dyn MetaStore> = match self.metadata {
            Metadata::Embedded => Arc::new(
                RedbMetaStore::open(self.root.join("meta.redb")).map_err(|e| e.to_string())?,
            ),
            Metadata::S3 => Arc::new(
                wharf::ObjectMetaStore::connect(blobs.clone(), "meta")
                    .await
                    .map_err(|e| format!("--metadata s3: {e}"))?,
            ),
        };
        // On a local disk, small blobs and data-key wraps are kept in the metadata
        // database: their durable publish is then the link's commit, not syncs of a
        // file and its directory.
        let (blobs, composer): (Arc<dyn ObjectStore>, _) = match (&self.s3, self.metadata) {
            (None, Metadata::Embedded) => {
                let objects = SmallObjects::new(blobs, meta.clone());
                let composer = objects.composer(composer);
                (Arc::new(objects), composer)
            }
            _ => (blobs, composer),
        };
        let Keys {
            provider: keys,
            names,
            source: keys_at,
        } = self.key_provider()?;
        let mut at_rest = if self.framing {
            AtRest::uncompressed()
        } else {
            AtRest::plain()
        };
        if self.compression {
            at_rest.compression = Compression::default();
        }
        if self.encryption {
            at_rest.encryption = Some(DEFAULT_KEK.to_owned());
        }
        // S3 parts must be at least 5 MiB; a local file takes small ones, which keeps a
        // large upload's memory small.
        let part_size = match self.s3 {
            Some(_) => wharf::blob::DEFAULT_PART_SIZE,
            None => LOCAL_PART_SIZE,
        };
        let blob_store = ObjectBlobStore::new(blobs)
            .with_at_rest(at_rest.clone())
            .with_key_provider(keys.clone())
            .with_part_size(part_size)
            .with_composer(composer);
        let registry = Registry::builder()
            .blob_store(Arc::new(blob_store))
            .meta_store(meta)
            .key_provider(keys)
            .at_rest(at_rest)
            .upload_expiry(self.upload_expiry)
            .scanner(self.operations.scanning.scanner.clone())
            .scan_on_push_by_default(self.operations.scanning.scan_on_push)
            .resource_account(ResourceAccount {
                region: self.region.clone(),
                account: auth
                    .as_ref()
                    .map_or(crate::auth::DEFAULT_ACCOUNT, |a| a.account.as_str())
                    .to_owned(),
            })
            .build()
            .map_err(|e| e.to_string())?;
        // Replicas on one store must hold the same keys under the same names.
        registry
            .check_keys(names.iter().map(String::as_str))
            .await
            .map_err(|e| format!("{keys_at}: {e}"))?;
        let login = match auth {
            Some(auth) => {
                auth.seed(&registry).await?;
                let tokens = Tokens::open(&self.root, self.token_ttl, registry.resource_account())?;
                Some(Arc::new(Login {
                    auth,
                    tokens: Arc::new(tokens),
                    tls: self.tls.is_some(),
                    listen: self.listen,
                    region: self.region.clone(),
                    previews: Default::default(),
                    kms: self.kms.is_some(),
                }))
            }
            None => None,
        };
        Ok((registry, login))
    }
}
