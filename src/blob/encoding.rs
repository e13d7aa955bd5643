//! The encoding side of a write into an [`ObjectBlobStore`](super::ObjectBlobStore): the
//! [`FrameEncoder`] that turns logical bytes into the at-rest format, its data key, and
//! the logical bytes a checkpoint saved beside the staged parts (the *tail*).
//!
//! Full frames are sealed on blocking threads, one batch at a time while the next fills,
//! so hashing, filling and sealing overlap.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::objects::Objects;
use super::wraps::check_kek_name;
use super::{AtRest, EncodingState, StagedPart, WriterState};
use crate::codec::{
    DataKey, EncoderSnapshot, FrameEncoder, HEADER_LEN, Header, NAME_LEN, SealedFrames,
    open_with_random_nonce, seal_with_random_nonce,
};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::WrappedKey;

/// What a wrap of a staging area's data key is bound to.
pub(super) fn staging_context(staging_id: &str) -> Vec<u8> {
    [b"wharf staging ".as_slice(), staging_id.as_bytes()].concat()
}

/// The largest blob whose encoding is finished on the caller's thread: sealing (and
/// compressing) that little costs less than handing it to a blocking thread and back.
const INLINE_SEAL_LIMIT: u64 = 16 * 1024;

/// What a named object's footer holds for `digest` (see the codec's format): the first
/// bytes of its hash.
pub(super) fn blob_name(digest: &Digest) -> [u8; NAME_LEN] {
    crate::hex::decode_array(&digest.hex()[..2 * NAME_LEN]).expect("a digest's hex is hex")
}

/// What sealed held bytes are bound to: the staging area and the object's name.
fn tail_aad(staging_id: &str, name: &str) -> Vec<u8> {
    [
        b"wharf tail ".as_slice(),
        staging_id.as_bytes(),
        b"/",
        name.as_bytes(),
    ]
    .concat()
}

/// Where the encoder of a write stands.
#[derive(Debug)]
enum EncoderState {
    /// Ready for bytes.
    Ready(Box<FrameEncoder>),
    /// A resumed write, rebuilt from its snapshot and saved tail when bytes come: a
    /// commit of a blob stored meanwhile needs neither.
    Resumable(EncoderSnapshot),
    /// The saved tail was gone at resume: the staging area was cleaned up after the blob
    /// was published by an earlier attempt whose end was not recorded. Bytes are still
    /// hashed, so a commit finds the stored blob; nothing can be stored.
    Lost,
    /// Lent to a blocking task that failed: the write fails from here on.
    Broken,
}

/// The encoding side of one write.
#[derive(Debug)]
pub(super) struct Encoding {
    pub(super) header: Header,
    /// The KEK the blob is wrapped under (and a deduplicated blob must become readable
    /// through); `None` when it is not encrypted.
    pub(super) kek: Option<String>,
    pub(super) key: Option<DataKey>,
    /// The data key wrapped for the staging area (checkpoints carry it, never the key).
    wrapped: Option<WrappedKey>,
    state: EncoderState,
    /// The held bytes saved by the last checkpoint, and their digest.
    tail: Option<(StagedPart, Digest)>,
    /// The batch of frames being sealed on blocking threads.
    sealing: Option<tokio::task::JoinHandle<SealedFrames>>,
}

fn task_failed(e: tokio::task::JoinError) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("encoding a blob: task failed: {e}"),
    )
}

fn inconsistent(state: &WriterState, why: &str) -> Error {
    Error::new(
        ErrorKind::CorruptData,
        format!(
            "writer state for staging area {:?} is inconsistent: {why}",
            state.staging_id
        ),
    )
}

impl Encoding {
    /// A new write under `at_rest` staging into `staging_id`: a fresh data key (wrapped
    /// for the staging area) when it encrypts, and a random salt.
    pub(super) async fn start(
        objects: &Objects,
        staging_id: &str,
        at_rest: &AtRest,
    ) -> Result<Self> {
        let (key, wrapped) = match &at_rest.encryption {
            Some(kek) => {
                check_kek_name(kek)?;
                let key = DataKey::generate()?;
                let wrapped = objects
                    .wraps
                    .provider()?
                    .wrap(kek, &key, &staging_context(staging_id))
                    .await?;
                (Some(key), Some(wrapped))
            }
            None => (None, None),
        };
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| {
            Error::new(ErrorKind::Storage, format!("no randomness for a salt: {e}"))
        })?;
        // An unencrypted object names its blob, so full reads can trust its checksums.
        let encoder = match &key {
            Some(key) => {
                FrameEncoder::new(objects.frame_size, at_rest.compression, Some(key), salt)?
            }
            None => FrameEncoder::new_named(objects.frame_size, at_rest.compression, salt)?,
        };
        Ok(Self {
            header: Header::decode(&encoder.header())?,
            kek: at_rest.encryption.clone(),
            key,
            wrapped,
            state: EncoderState::Ready(Box::new(encoder)),
            tail: None,
            sealing: None,
        })
    }

    /// The encoding of a write resumed from `state`, checked against its parts.
    pub(super) async fn resume(
        objects: &Objects,
        state: &WriterState,
        encoding: &EncodingState,
    ) -> Result<Self> {
        let snapshot = encoding.snapshot()?;
        let header = snapshot.header;
        let key = match (header.encrypted(), encoding.wrapped_key()) {
            (false, _) => None,
            (true, Some(wrapped)) => Some(
                objects
                    .wraps
                    .provider()?
                    .unwrap(wrapped, &staging_context(&state.staging_id))
                    .await?,
            ),
            (true, None) => return Err(inconsistent(state, "no wrapped data key")),
        };
        let held_len = encoding.tail().map_or(0, |(t, _)| t.len);
        let frames: u64 = snapshot.frame_lens.iter().map(|&l| u64::from(l)).sum();
        let stored = if snapshot.frame_lens.is_empty() {
            0
        } else {
            HEADER_LEN as u64 + frames
        };
        let staged: u64 = state.parts.iter().map(|p| p.len).sum();
        let logical = (snapshot.frame_lens.len() as u64)
            .checked_mul(header.frame_size())
            .and_then(|framed| framed.checked_add(held_len));
        if staged != stored || logical != Some(state.len()) || held_len > header.frame_size() {
            return Err(inconsistent(state, "its frames do not add up"));
        }
        Ok(Self {
            header,
            kek: encoding.wrapped_key().map(|w| w.kek.clone()),
            key,
            wrapped: encoding.wrapped_key().cloned(),
            state: EncoderState::Resumable(snapshot),
            tail: encoding.tail().map(|(t, d)| (t.clone(), d.clone())),
            sealing: None,
        })
    }

    /// The state a session records before any byte arrives.
    pub(super) fn initial_state(&self) -> Result<EncodingState> {
        Ok(EncodingState::new(
            &self.ready()?.snapshot(),
            self.wrapped.clone(),
            None,
        ))
    }

    /// Logical bytes per frame.
    pub(super) fn frame_size(&self) -> usize {
        self.header.frame_size() as usize
    }

    /// The encoder, if it can take bytes.
    fn ready(&self) -> Result<&FrameEncoder> {
        match &self.state {
            EncoderState::Ready(encoder) => Ok(encoder),
            other => Err(Self::unusable(other)),
        }
    }

    fn unusable(state: &EncoderState) -> Error {
        match state {
            EncoderState::Lost => Error::new(
                ErrorKind::BlobUploadInvalid,
                "the upload's staged bytes are gone and its blob is not stored: start the upload again",
            ),
            _ => Error::new(
                ErrorKind::Storage,
                "the blob's encoder was lost to an earlier failure",
            ),
        }
    }

    /// Takes the encoder out to work with; [`Encoding::put_back`] returns it. Left
    /// [`EncoderState::Broken`] if the work fails.
    fn take(&mut self) -> Result<Box<FrameEncoder>> {
        match std::mem::replace(&mut self.state, EncoderState::Broken) {
            EncoderState::Ready(encoder) => Ok(encoder),
            other => {
                let err = Self::unusable(&other);
                self.state = other;
                Err(err)
            }
        }
    }

    fn put_back(&mut self, encoder: Box<FrameEncoder>) {
        self.state = EncoderState::Ready(encoder);
    }

    /// Rebuilds a resumed write's encoder, reading back the bytes it held from the
    /// staging area `staging` (of `staging_id`).
    pub(super) async fn make_ready(
        &mut self,
        objects: &Objects,
        staging: &Path,
        staging_id: &str,
    ) -> Result<()> {
        if !matches!(self.state, EncoderState::Resumable(_)) {
            return Ok(());
        }
        let held = match &self.tail {
            Some((tail, digest)) => {
                let path = staging.clone().join(tail.name.as_str());
                let read = |e| Error::storage(format!("reading {path}"), e);
                let stored = match objects.store.get(&path).await {
                    Ok(got) => got.bytes().await.map_err(read)?,
                    Err(object_store::Error::NotFound { .. }) => {
                        self.state = EncoderState::Lost;
                        return Ok(());
                    }
                    Err(e) => return Err(read(e)),
                };
                let held = match &self.key {
                    Some(key) => {
                        open_with_random_nonce(key, &tail_aad(staging_id, &tail.name), &stored)?
                    }
                    None => stored.to_vec(),
                };
                if held.len() as u64 != tail.len || Digest::of(digest.algorithm(), &held) != *digest
                {
                    return Err(Error::new(
                        ErrorKind::CorruptData,
                        format!("{path} does not hold the bytes the checkpoint saved"),
                    ));
                }
                held
            }
            None => Vec::new(),
        };
        let EncoderState::Resumable(snapshot) =
            std::mem::replace(&mut self.state, EncoderState::Broken)
        else {
            unreachable!("checked above");
        };
        let encoder = FrameEncoder::resume(snapshot, self.key.as_ref(), held)?;
        self.put_back(Box::new(encoder));
        Ok(())
    }

    /// Encodes `data`; returns the frames sealed so far, in order.
    pub(super) async fn push(&mut self, data: Bytes) -> Result<Vec<Vec<u8>>> {
        if matches!(self.state, EncoderState::Lost) {
            return Ok(Vec::new());
        }
        let mut encoder = self.take()?;
        encoder.fill(&data);
        let mut out = Vec::new();
        while let Some(job) = encoder.take_job(false) {
            if let Some(sealing) = self.sealing.take() {
                // After a failed sealing task the encoder has frames it will never get
                // back: it stays broken.
                out.extend(encoder.accept(sealing.await.map_err(task_failed)?));
            }
            self.sealing = Some(tokio::task::spawn_blocking(move || job.run()));
        }
        self.put_back(encoder);
        Ok(out)
    }

    /// Waits for the batch being sealed; returns its frames.
    async fn drain(&mut self) -> Result<Vec<Vec<u8>>> {
        let Some(sealing) = self.sealing.take() else {
            return Ok(Vec::new());
        };
        let mut encoder = self.take()?;
        let sealed = sealing.await.map_err(task_failed)?;
        let out = encoder.accept(sealed);
        self.put_back(encoder);
        Ok(out)
    }

    /// Seals every full frame (a checkpoint); returns all frames sealed since the last
    /// call, in order.
    pub(super) async fn flush(&mut self) -> Result<Vec<Vec<u8>>> {
        let mut out = self.drain().await?;
        let mut encoder = self.take()?;
        let (encoder, sealed) = tokio::task::spawn_blocking(move || {
            let sealed = encoder.flush_frames();
            (encoder, sealed)
        })
        .await
        .map_err(task_failed)?;
        self.put_back(encoder);
        out.extend(sealed);
        Ok(out)
    }

    /// Seals everything left, the last frame and the index naming `digest` (the hash of
    /// every logical byte written): stored bytes in order.
    pub(super) async fn finish(&mut self, digest: &Digest) -> Result<Vec<Vec<u8>>> {
        let mut out = self.drain().await?;
        let encoder = self.take()?;
        let name = blob_name(digest);
        if encoder.logical_len() <= INLINE_SEAL_LIMIT {
            out.push(encoder.finish_named(name));
            return Ok(out);
        }
        out.push(
            tokio::task::spawn_blocking(move || (*encoder).finish_named(name))
                .await
                .map_err(task_failed)?,
        );
        Ok(out)
    }

    /// Saves the logical bytes the encoder still holds into the staging area, replacing
    /// the last such save; returns the state a checkpoint records.
    pub(super) async fn save_tail(
        &mut self,
        objects: &Objects,
        staging: &Path,
        staging_id: &str,
    ) -> Result<EncodingState> {
        let encoder = self.ready()?;
        let held = encoder.held();
        let snapshot = encoder.snapshot();
        let mut tail = None;
        if !held.is_empty() {
            // A fresh name each time: the state that names an earlier tail may be the
            // last one recorded, and a concurrent resume of the same state writes its own.
            // Earlier tails go with the staging area.
            let name = format!(
                "tail-{:010}-{}",
                snapshot.frame_lens.len(),
                crate::util::random_id()
            );
            let digest = Digest::of(crate::digest::Algorithm::Sha256, held);
            let stored = match &self.key {
                Some(key) => seal_with_random_nonce(key, &tail_aad(staging_id, &name), held)?,
                None => held.to_vec(),
            };
            let path = staging.clone().join(name.as_str());
            objects
                .store
                .put(&path, PutPayload::from(stored))
                .await
                .map_err(|e| Error::storage(format!("writing {path}"), e))?;
            let part = StagedPart {
                name,
                len: held.len() as u64,
            };
            tail = Some((part, digest));
        }
        self.tail = tail;
        Ok(EncodingState::new(
            &snapshot,
            self.wrapped.clone(),
            self.tail.clone(),
        ))
    }
}
