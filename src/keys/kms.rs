//! [`AwsKmsKeyProvider`]: data keys wrapped by AWS KMS (feature `kms`). Each wrap is a
//! KMS `Encrypt` of the data key under a KMS key, with the blob's context as the
//! encryption context, so KMS itself refuses to decrypt it for another blob; unwrapping
//! is a `Decrypt`. Requests are signed with [`crate::sigv4`].
//!
//! KEK names: [`DEFAULT_KEK`] is the key given as the default (`--kms-key-id`: an id,
//! alias or ARN), and `kms.<key id>` names any KMS key by its id, as an ECR repository's
//! `encryptionConfiguration` does (KEK names become parts of object paths, so an alias
//! or ARN, with its `/` and `:`, is named by the key id it stands for). A key's fingerprint is its ARN, so
//! replicas pointing the same name at different keys are told apart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{DEFAULT_KEK, KeyProvider, WrappedKey};
use crate::codec::DataKey;
use crate::error::{Error, ErrorKind, Result};
use crate::sigv4;
use crate::sigv4::requests::{SigningKey, Unsigned, signed};

/// The prefix of KEK names that name a KMS key directly.
pub const KMS_KEK_PREFIX: &str = "kms.";

/// Credentials for signing KMS requests.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Self {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            _ => Err(Error::new(
                ErrorKind::Configuration,
                "KMS needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )),
        }
    }
}

/// Wraps data keys with AWS KMS (or a KMS-compatible endpoint).
#[derive(Debug)]
pub struct AwsKmsKeyProvider {
    client: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    credentials: AwsCredentials,
    default_key: Option<String>,
    /// When each KEK was last seen enabled (KMS encrypts under a disabled key in some
    /// emulators, and a clear refusal beats a blob nobody can read later).
    checked: Mutex<HashMap<String, Instant>>,
}

/// How long a KEK seen enabled is trusted to still be.
const CHECKED_FOR: Duration = Duration::from_secs(60);

impl AwsKmsKeyProvider {
    /// A provider for KMS in `region` (at `endpoint`, or AWS's own), whose
    /// [`DEFAULT_KEK`] is `default_key` (an id, alias or ARN) if given.
    pub fn new(
        region: &str,
        endpoint: Option<&str>,
        credentials: AwsCredentials,
        default_key: Option<&str>,
    ) -> Result<Self> {
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
        let host = reqwest::Url::parse(&endpoint)
            .ok()
            .and_then(|url| {
                let host = url.host_str()?.to_owned();
                Some(match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Configuration,
                    format!("KMS endpoint {endpoint:?} is not a URL"),
                )
            })?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Error::new(ErrorKind::Configuration, format!("KMS client: {e}")))?;
        Ok(Self {
            client,
            endpoint,
            host,
            region: region.to_owned(),
            credentials,
            default_key: default_key.map(str::to_owned),
            checked: Mutex::new(HashMap::new()),
        })
    }

    /// The KMS key `kek` names.
    fn key_of(&self, kek: &str) -> Result<String> {
        if let Some(key) = kek.strip_prefix(KMS_KEK_PREFIX).filter(|k| !k.is_empty()) {
            return Ok(key.to_owned());
        }
        match (&self.default_key, kek == DEFAULT_KEK) {
            (Some(key), true) => Ok(key.clone()),
            _ => Err(Error::new(
                ErrorKind::Denied,
                format!(
                    "key-encryption key {kek:?} is not available from KMS (name keys kms.<key id>)"
                ),
            )),
        }
    }

    /// Calls KMS `action` with `body`; KMS's errors mapped to wharf's, naming `key`.
    async fn call(&self, action: &str, body: &str, key: &str) -> Result<Value> {
        let target = format!("TrentService.{action}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let payload = sigv4::payload_hash(body.as_bytes());
        let unsigned = Unsigned {
            method: reqwest::Method::POST,
            origin: &self.endpoint,
            host: &self.host,
            path: "/",
            query: "",
            headers: &headers,
            payload_sha256: &payload,
        };
        let signing = SigningKey {
            access_key_id: &self.credentials.access_key_id,
            secret: &self.credentials.secret_access_key,
            session_token: self.credentials.session_token.as_deref(),
            region: &self.region,
            service: "kms",
        };
        let response = signed(&self.client, unsigned, &signing)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Storage, format!("KMS {action} on {key}: {e}")).retryable()
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            Error::new(ErrorKind::Storage, format!("KMS {action} on {key}: {e}")).retryable()
        })?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let code = answer["__type"]
            .as_str()
            .or_else(|| answer["code"].as_str())
            .unwrap_or("unknown error");
        let code = code.rsplit('#').next().unwrap_or(code);
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .unwrap_or_default();
        let kind = match code {
            "InvalidCiphertextException" | "IncorrectKeyException" => ErrorKind::CorruptData,
            "DisabledException"
            | "NotFoundException"
            | "AccessDeniedException"
            | "KMSInvalidStateException"
            | "InvalidKeyUsageException" => ErrorKind::Denied,
            "ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException" => {
                ErrorKind::Storage
            }
            _ if status.is_server_error() => ErrorKind::Storage,
            _ => ErrorKind::Denied,
        };
        let error = Error::new(
            kind,
            format!("KMS {action} on key {key}: {code}: {message}"),
        );
        Err(if kind == ErrorKind::Storage {
            error.retryable()
        } else {
            error
        })
    }
}

/// The encryption context a wrap is bound to.
fn encryption_context(context: &[u8]) -> Value {
    json!({"wharf:context": crate::hex::encode(context)})
}

fn field<'a>(answer: &'a Value, name: &str, action: &str) -> Result<&'a str> {
    answer[name].as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::Storage,
            format!("KMS {action} answered without {name}"),
        )
    })
}

#[async_trait]
impl KeyProvider for AwsKmsKeyProvider {
    async fn wrap(&self, kek: &str, key: &DataKey, context: &[u8]) -> Result<WrappedKey> {
        let key_id = self.key_of(kek)?;
        let fresh = self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kek)
            .is_some_and(|at| at.elapsed() < CHECKED_FOR);
        if !fresh {
            // Denied, naming the key, if it is disabled or gone.
            self.fingerprint(kek).await?;
            self.checked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(kek.to_owned(), Instant::now());
        }
        // The body holds the key: built in a buffer that is zeroed when dropped.
        let plaintext = Zeroizing::new(STANDARD.encode(key.expose()));
        let body = Zeroizing::new(format!(
            r#"{{"KeyId":{},"Plaintext":"{}","EncryptionContext":{}}}"#,
            json!(key_id),
            plaintext.as_str(),
            encryption_context(context)
        ));
        let answer = self.call("Encrypt", &body, &key_id).await?;
        let blob = STANDARD
            .decode(field(&answer, "CiphertextBlob", "Encrypt")?)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Storage,
                    "KMS Encrypt: CiphertextBlob is not base64",
                )
            })?;
        Ok(WrappedKey {
            kek: kek.to_owned(),
            bytes: blob,
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey> {
        let key_id = self.key_of(&wrapped.kek)?;
        let body = json!({
            "KeyId": key_id,
            "CiphertextBlob": STANDARD.encode(&wrapped.bytes),
            "EncryptionContext": encryption_context(context),
        });
        let answer = match self.call("Decrypt", &body.to_string(), &key_id).await {
            Ok(answer) => answer,
            // A damaged wrap can name another key, which KMS then refuses as denied:
            // if the key itself is usable, the wrap is what is wrong.
            Err(e)
                if e.kind() == ErrorKind::Denied
                    && self.fingerprint(&wrapped.kek).await.is_ok() =>
            {
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "the wrapped data key does not decrypt under KMS key {key_id}, which is usable: it is damaged ({})",
                        e.message()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        let plain = Zeroizing::new(
            STANDARD
                .decode(field(&answer, "Plaintext", "Decrypt")?)
                .map_err(|_| {
                    Error::new(
                        ErrorKind::CorruptData,
                        "KMS Decrypt: Plaintext is not base64",
                    )
                })?,
        );
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| {
            Error::new(
                ErrorKind::CorruptData,
                format!(
                    "KMS Decrypt gave {} bytes, not a 32-byte data key",
                    plain.len()
                ),
            )
        })?;
        Ok(DataKey::from_bytes(bytes))
    }

    async fn fingerprint(&self, kek: &str) -> Result<String> {
        let key_id = self.key_of(kek)?;
        let answer = self
            .call(
                "DescribeKey",
                &json!({"KeyId": key_id}).to_string(),
                &key_id,
            )
            .await?;
        let metadata = &answer["KeyMetadata"];
        if metadata["Enabled"] == json!(false) {
            return Err(Error::new(
                ErrorKind::Denied,
                format!("KMS key {key_id} is disabled"),
            ));
        }
        Ok(field(metadata, "Arn", "DescribeKey")?.to_owned())
    }
}
