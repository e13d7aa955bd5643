//! [`LocalKeyProvider`]: key-encryption keys from a local key file or the environment.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{KekTable, KeyProvider, WrappedKey};
use crate::codec::DataKey;
use crate::error::{Error, ErrorKind, Result};

/// The KEK a new key file starts with.
pub const DEFAULT_KEK: &str = "default";

/// Prefix of the environment variables [`LocalKeyProvider::from_env`] reads.
pub const KEK_ENV_PREFIX: &str = "WHARF_KEK_";

/// Key-encryption keys on this machine: in a key file (JSON, owner-only permissions,
/// created with one fresh key named [`DEFAULT_KEK`] on first use), or in environment
/// variables `WHARF_KEK_<NAME>` of 64 hex digits.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use wharf::codec::DataKey;
/// use wharf::keys::{KeyProvider, LocalKeyProvider};
///
/// let dir = tempfile::tempdir().unwrap();
/// let provider = LocalKeyProvider::open(dir.path().join("keys.json"))?;
/// let key = DataKey::generate()?;
/// let wrapped = provider.wrap("default", &key, b"blob").await?;
/// // The file keeps the KEK: a new process unwraps what this one wrapped.
/// let again = LocalKeyProvider::open(dir.path().join("keys.json"))?;
/// assert_eq!(again.unwrap(&wrapped, b"blob").await?.expose(), key.expose());
/// # Ok::<(), wharf::Error>(()) }).unwrap();
/// ```
pub struct LocalKeyProvider {
    file: Option<PathBuf>,
    keks: KekTable,
}

impl std::fmt::Debug for LocalKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyProvider")
            .field("file", &self.file)
            .field("keks", &self.kek_names())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    /// KEK name to 64 hex digits.
    keys: BTreeMap<String, String>,
}

fn key_error(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Configuration,
        format!("key file {}: {why}", path.display()),
    )
}

/// A key as the key file and the environment hold it: 64 hex digits (either case).
fn parse_hex_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let text = Zeroizing::new(text.trim().to_ascii_lowercase());
    let mut key = Zeroizing::new([0u8; 32]);
    crate::hex::decode_into(&text, key.as_mut_slice())?;
    Some(key)
}

fn hex(key: &[u8; 32]) -> String {
    crate::hex::encode(key)
}

impl LocalKeyProvider {
    /// Opens the key file at `path`, creating it with one fresh KEK if it does not
    /// exist. A file that others may read is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let provider = Self {
            file: Some(path.clone()),
            keks: KekTable::default(),
        };
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(key_error(
                        &path,
                        format!(
                            "is readable by others (mode {mode:o}); make it owner-only (chmod 600)"
                        ),
                    ));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| key_error(&path, e))?;
                let file: KeyFile = serde_json::from_str(&text).map_err(|e| key_error(&path, e))?;
                let mut keks = provider.keks.write();
                for (name, value) in file.keys {
                    let key = parse_hex_key(&value).ok_or_else(|| {
                        key_error(&path, format!("key {name:?} is not 64 hex digits"))
                    })?;
                    keks.insert(name, key);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                provider.generate(DEFAULT_KEK)?;
            }
            Err(e) => return Err(key_error(&path, e)),
        }
        Ok(provider)
    }

    /// KEKs from the environment: `WHARF_KEK_TENANT_A=<64 hex digits>` is the KEK
    /// `tenant-a`.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// [`LocalKeyProvider::from_env`] over the given variables.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut keks = BTreeMap::new();
        for (name, value) in vars {
            let Some(kek) = name.strip_prefix(KEK_ENV_PREFIX) else {
                continue;
            };
            let key = parse_hex_key(&value).ok_or_else(|| {
                Error::new(
                    ErrorKind::Configuration,
                    format!("environment variable {name} must be 64 hex digits"),
                )
            })?;
            keks.insert(kek.to_ascii_lowercase().replace('_', "-"), key);
        }
        Ok(Self {
            file: None,
            keks: KekTable::new(keks),
        })
    }

    /// The names of the KEKs it has.
    pub fn kek_names(&self) -> Vec<String> {
        self.keks.names()
    }

    /// Adds a fresh random KEK named `name` (a rotation target) and saves the key file.
    /// Refused if the name is taken: a KEK in use must never be replaced.
    pub fn generate(&self, name: &str) -> Result<()> {
        let mut keks = self.keks.write();
        if keks.contains_key(name) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("key-encryption key {name:?} exists already"),
            ));
        }
        keks.insert(
            name.to_owned(),
            Zeroizing::new(*DataKey::generate()?.expose()),
        );
        if let Some(path) = &self.file {
            save(path, &keks)?;
        }
        Ok(())
    }
}

/// Writes the key file: a new owner-only file renamed over the old one.
fn save(path: &Path, keks: &BTreeMap<String, Zeroizing<[u8; 32]>>) -> Result<()> {
    let file = KeyFile {
        version: 1,
        keys: keks.iter().map(|(n, k)| (n.clone(), hex(k))).collect(),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&file).expect("serializes"));
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| key_error(&temp, e))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| key_error(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| key_error(path, e))
}

#[async_trait]
impl KeyProvider for LocalKeyProvider {
    async fn wrap(&self, kek: &str, key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
        self.keks.wrap(kek, key, context)
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        self.keks.unwrap(wrapped, context)
    }

    async fn fingerprint(&self, kek: &str) -> Result<String> {
        self.keks.fingerprint(kek)
    }
}
