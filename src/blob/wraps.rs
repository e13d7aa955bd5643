//! Wrapped data keys beside encrypted objects.
//!
//! Each encrypted object has a random salt in its header. Its data key is wrapped once per
//! key-encryption key (KEK) that may read it, each wrap a small object at
//! `keys/<algorithm>/<first two hex>/<hex>/<salt hex>/<kek>`. Keeping wraps apart from
//! the data makes rotation cheap (a wrap is rewritten, the data never is) and lets one
//! copy of a blob serve repositories with different KEKs. Naming wraps by salt ties each
//! to one written object: when two writers publish the same blob at once, whichever
//! object wins finds its own wraps.
//!
//! A wrap object is `WKW1`, the length of the KEK's fingerprint (one byte), the
//! fingerprint, then the provider's wrapped bytes. The fingerprint tells a KEK of the
//! same name but other key material (a replica with another key file) from a damaged
//! wrap. Wraps written before fingerprints are the provider's bytes alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::codec::DataKey;
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::{KeyProvider, WrappedKey};

const KEYS: &str = "keys";
/// Wraps rewritten at once during a rotation.
const ROTATION_CONCURRENCY: usize = 8;

/// How far a rotation has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotationProgress {
    /// Wraps moved to the new KEK in this run.
    pub rewrapped: u64,
    /// Wraps under the old KEK this run found to move.
    pub total: u64,
}

/// The wrapped keys of one blob store.
#[derive(Clone)]
pub(crate) struct Wraps {
    store: Arc<dyn ObjectStore>,
    provider: Option<Arc<dyn KeyProvider>>,
}

impl std::fmt::Debug for Wraps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wraps")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Whether `name` can be a KEK's name: it becomes part of object paths.
pub(crate) fn check_kek_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "key-encryption key name {name:?} is not 1 to 128 letters, digits, '-', '_' or '.'"
            ),
        ))
    }
}

/// What a wrap of `digest`'s object with `salt` is bound to.
fn context(digest: &Digest, salt: &[u8; 16]) -> Vec<u8> {
    [digest.as_str().as_bytes(), &[0], salt].concat()
}

/// Starts a wrap object that records its KEK's fingerprint.
const WRAP_MAGIC: &[u8; 4] = b"WKW1";

/// A wrap object: the fingerprint of its KEK, then the provider's bytes.
fn encode_wrap(fingerprint: &str, wrapped: &[u8]) -> Vec<u8> {
    let fingerprint = fingerprint.as_bytes();
    [
        WRAP_MAGIC.as_slice(),
        &[fingerprint.len() as u8],
        fingerprint,
        wrapped,
    ]
    .concat()
}

/// The fingerprint a wrap object records (none for one written before fingerprints),
/// and the provider's bytes.
fn decode_wrap(raw: &[u8]) -> (Option<String>, &[u8]) {
    if let Some(rest) = raw.strip_prefix(WRAP_MAGIC.as_slice())
        && let Some((&len, rest)) = rest.split_first()
        && let Some(fingerprint) = rest.get(..len as usize)
        && let Ok(fingerprint) = std::str::from_utf8(fingerprint)
        && fingerprint.bytes().all(|b| b.is_ascii_graphic())
    {
        return (Some(fingerprint.to_owned()), &rest[len as usize..]);
    }
    (None, raw)
}

fn hex(bytes: &[u8]) -> String {
    crate::hex::encode(bytes)
}

impl Wraps {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, provider: Option<Arc<dyn KeyProvider>>) -> Self {
        Self { store, provider }
    }

    pub(crate) fn provider(&self) -> Result<&Arc<dyn KeyProvider>> {
        self.provider.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Denied,
                "the blob store has no key provider: encrypted blobs cannot be written or read",
            )
        })
    }

    fn prefix(digest: &Digest) -> Path {
        let hex = digest.hex();
        Path::from_iter([KEYS, digest.algorithm().as_str(), &hex[..2], hex])
    }

    fn path(digest: &Digest, salt: &[u8; 16], kek: &str) -> Path {
        Self::prefix(digest).join(hex(salt)).join(kek)
    }

    /// Wraps `key` under `kek` for `digest`'s object with `salt`, and stores the wrap.
    pub(crate) async fn store(
        &self,
        digest: &Digest,
        salt: &[u8; 16],
        key: &DataKey,
        kek: &str,
    ) -> Result<()> {
        check_kek_name(kek)?;
        let provider = self.provider()?;
        let wrapped = provider.wrap(kek, key, &context(digest, salt)).await?;
        let fingerprint = provider.fingerprint(kek).await?;
        // A wrap whose fingerprint could not be read back would make the blob unreadable.
        if fingerprint.is_empty()
            || fingerprint.len() > 255
            || !fingerprint.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::new(
                ErrorKind::Configuration,
                format!(
                    "the key provider's fingerprint of {kek:?} is not 1 to 255 printable characters"
                ),
            ));
        }
        let path = Self::path(digest, salt, kek);
        self.store
            .put(
                &path,
                PutPayload::from(encode_wrap(&fingerprint, &wrapped.bytes)),
            )
            .await
            .map_err(|e| Error::storage(format!("storing the data key of {digest}"), e))?;
        Ok(())
    }

    /// The wrap under `kek`, and the fingerprint of the KEK it was made with.
    async fn fetch(
        &self,
        digest: &Digest,
        salt: &[u8; 16],
        kek: &str,
    ) -> Result<Option<(WrappedKey, Option<String>)>> {
        if check_kek_name(kek).is_err() {
            return Ok(None);
        }
        let path = Self::path(digest, salt, kek);
        match self.store.get(&path).await {
            Ok(got) => {
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| Error::storage(format!("reading the data key of {digest}"), e))?;
                let (fingerprint, wrapped) = decode_wrap(&bytes);
                let wrapped = WrappedKey {
                    kek: kek.to_owned(),
                    bytes: wrapped.to_vec(),
                };
                Ok(Some((wrapped, fingerprint)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(
                format!("reading the data key of {digest}"),
                e,
            )),
        }
    }

    /// The data key of `digest`'s object with `salt`, through the first of `keks` that
    /// has a wrap. `Denied` when none has (the reader's keys do not cover this blob) or
    /// when the provider no longer has the KEK.
    pub(crate) async fn open<'a>(
        &self,
        digest: &Digest,
        salt: &[u8; 16],
        keks: impl IntoIterator<Item = &'a str>,
    ) -> Result<DataKey> {
        let provider = self.provider()?;
        let mut tried = Vec::new();
        let mut failed = None;
        for kek in keks {
            if let Some((wrapped, fingerprint)) = self.fetch(digest, salt, kek).await? {
                // A revoked KEK, another key under the same name, or a damaged wrap:
                // another KEK may still open it.
                let opened = match fingerprint {
                    Some(fingerprint) => {
                        match Self::same_key(provider.as_ref(), digest, kek, &fingerprint).await {
                            Ok(()) => provider.unwrap(&wrapped, &context(digest, salt)).await,
                            Err(e) => Err(e),
                        }
                    }
                    None => provider.unwrap(&wrapped, &context(digest, salt)).await,
                };
                match opened {
                    Ok(key) => return Ok(key),
                    Err(e) => failed = Some(e),
                }
                continue;
            }
            tried.push(kek.to_owned());
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if self.keks(digest, salt).await?.is_empty() {
            // No key at all for this object: its header is not the one written.
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!("stored blob {digest} is corrupt: no data key was stored for its header"),
            ));
        }
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "blob {digest} is encrypted and its data key is not wrapped under {}",
                if tried.is_empty() {
                    "any key this reader may use".to_owned()
                } else {
                    format!("{tried:?}")
                }
            ),
        ))
    }

    /// Checks that the provider's `kek` is the key a wrap was made with: another key
    /// under the same name is `Denied`, naming the KEK and both fingerprints.
    async fn same_key(
        provider: &dyn KeyProvider,
        digest: &Digest,
        kek: &str,
        wrapped_with: &str,
    ) -> Result<()> {
        let have = provider.fingerprint(kek).await?;
        if have == wrapped_with {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Denied,
            format!(
                "blob {digest} was encrypted under key-encryption key {kek:?} with fingerprint {wrapped_with}, but this key provider's {kek:?} has fingerprint {have}: it is another key under the same name"
            ),
        ))
    }

    /// The KEKs `digest`'s object with `salt` has wraps under.
    async fn keks(&self, digest: &Digest, salt: &[u8; 16]) -> Result<Vec<String>> {
        let prefix = Self::prefix(digest).join(hex(salt));
        self.store
            .list(Some(&prefix))
            .map_err(|e| Error::storage(format!("listing the data keys of {digest}"), e))
            .try_filter_map(|meta| async move { Ok(meta.location.filename().map(str::to_owned)) })
            .try_collect()
            .await
    }

    /// Makes sure `kek` can read `digest`'s object with `salt`: a repository with its own
    /// KEK now shares a blob another stored. The data key is unwrapped through any KEK
    /// that has a wrap and wrapped again under `kek`.
    pub(crate) async fn grant(&self, digest: &Digest, salt: &[u8; 16], kek: &str) -> Result<()> {
        check_kek_name(kek)?;
        if self.fetch(digest, salt, kek).await?.is_some() {
            return Ok(());
        }
        let holders = self.keks(digest, salt).await?;
        let key = self
            .open(digest, salt, holders.iter().map(String::as_str))
            .await?;
        self.store(digest, salt, &key, kek).await
    }

    /// After publishing `digest` with the object whose salt is `winner` (its own, or a
    /// concurrent writer's that replaced it), gives that object a wrap under every KEK
    /// that wrapped any object of `digest`: each writer stores its wrap before its object
    /// appears, so whichever object wins, the last to check sees every KEK. Wraps of
    /// losing objects stay (a writer still in flight may yet win with them).
    pub(crate) async fn reconcile(&self, digest: &Digest, winner: &[u8; 16]) -> Result<()> {
        let winner_hex = hex(winner);
        let mut have = Vec::new();
        let mut wanted = Vec::new();
        let listed: Vec<Path> = self
            .store
            .list(Some(&Self::prefix(digest)))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| Error::storage(format!("listing the data keys of {digest}"), e))?;
        for path in listed {
            let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_owned()).collect();
            let [.., salt, kek] = parts.as_slice() else {
                continue;
            };
            if *salt == winner_hex {
                have.push(kek.clone());
            } else if !wanted.contains(kek) {
                wanted.push(kek.clone());
            }
        }
        wanted.retain(|kek| !have.contains(kek));
        if wanted.is_empty() {
            return Ok(());
        }
        let key = self
            .open(digest, winner, have.iter().map(String::as_str))
            .await?;
        for kek in wanted {
            self.store(digest, winner, &key, &kek).await?;
        }
        Ok(())
    }

    /// Removes every wrap of `digest`.
    pub(crate) async fn remove_all(&self, digest: &Digest) -> Result<()> {
        delete_prefix(&self.store, &Self::prefix(digest))
            .await
            .map_err(|e| Error::storage(format!("removing the data keys of {digest}"), e))
    }

    /// Moves every wrap under `from` to `to`: the new wrap is stored before the old one is
    /// removed, so a blob is readable through one of them at every moment, and a run cut
    /// short is finished by running again (what is left under `from` is what is left to do).
    pub(crate) async fn rotate(
        &self,
        from: &str,
        to: &str,
        progress: &(dyn Fn(RotationProgress) + Send + Sync),
    ) -> Result<RotationProgress> {
        check_kek_name(from)?;
        check_kek_name(to)?;
        let provider = self.provider()?.clone();
        let todo: Vec<Path> = self
            .store
            .list(Some(&Path::from(KEYS)))
            .map_err(|e| Error::storage("listing data keys", e))
            .try_filter_map(|meta| async move {
                Ok((meta.location.filename() == Some(from)).then_some(meta.location))
            })
            .try_collect()
            .await?;
        let total = todo.len() as u64;
        let done = AtomicU64::new(0);
        progress(RotationProgress {
            rewrapped: 0,
            total,
        });
        stream::iter(todo)
            .map(|path| {
                let provider = provider.clone();
                let done = &done;
                async move {
                    if self.rewrap(&*provider, &path, from, to).await? {
                        let rewrapped = done.fetch_add(1, Ordering::Relaxed) + 1;
                        progress(RotationProgress { rewrapped, total });
                    }
                    Ok::<_, Error>(())
                }
            })
            .buffer_unordered(ROTATION_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(RotationProgress {
            rewrapped: done.load(Ordering::Relaxed),
            total,
        })
    }

    /// Moves the wrap at `path` (under `from`) to `to`; false if it was gone already.
    async fn rewrap(
        &self,
        provider: &dyn KeyProvider,
        path: &Path,
        from: &str,
        to: &str,
    ) -> Result<bool> {
        let parts: Vec<_> = path.parts().map(|p| p.as_ref().to_owned()).collect();
        let [_, algorithm, _, hex_digest, salt_hex, _] = parts.as_slice() else {
            return Ok(false);
        };
        let (Ok(digest), Some(salt)) = (
            format!("{algorithm}:{hex_digest}").parse::<Digest>(),
            parse_salt(salt_hex),
        ) else {
            return Ok(false);
        };
        let Some((wrapped, fingerprint)) = self.fetch(&digest, &salt, from).await? else {
            return Ok(false);
        };
        if let Some(fingerprint) = fingerprint {
            Self::same_key(provider, &digest, from, &fingerprint).await?;
        }
        let key = provider.unwrap(&wrapped, &context(&digest, &salt)).await?;
        self.store(&digest, &salt, &key, to).await?;
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(Error::storage(
                format!("removing the old data key of {digest}"),
                e,
            )),
        }
    }
}

fn parse_salt(hex: &str) -> Option<[u8; 16]> {
    crate::hex::decode_array(hex)
}

/// Deletes every object under `prefix`; what is already gone counts as deleted.
pub(super) async fn delete_prefix(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
) -> object_store::Result<()> {
    let locations = store.list(Some(prefix)).map_ok(|m| m.location).boxed();
    store
        .delete_stream(locations)
        .try_for_each(|_| async { Ok(()) })
        .await
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(e),
        })
}
