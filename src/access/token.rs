//! Registry tokens: what a token endpoint hands a docker-style client after checking
//! its credentials, and what the client then sends on every request as `Bearer`.
//!
//! # Format
//!
//! A JSON Web Token (RFC 7519) in compact form, signed with HMAC-SHA256 (`HS256`,
//! RFC 7518 section 3.2): `base64url(header) "." base64url(claims) "." base64url(mac)`,
//! unpadded, where `mac` is HMAC-SHA256 under the signing key of the first two parts
//! as written.
//!
//! - header: `{"alg":"HS256","typ":"JWT","kid":"<key id>"}`;
//! - claims: `iss`, `sub` (the user name; empty for an anonymous caller), `aud` (the
//!   registry's service name), `iat`, `nbf`, `exp` (seconds since the epoch), `jti`
//!   (unique), and `access`: what the token grants, as the Docker token specification
//!   writes it, `[{"type": "repository", "name": "team/app", "actions": ["pull"]}]`.
//!
//! Verification takes nothing on trust: exactly three parts; the header must say
//! `HS256` (a token that names `none` or another algorithm is refused, never verified
//! another way) and a key id the [`Keyring`] holds; the MAC is compared in constant
//! time before the claims are read; then the audience, `nbf` and `exp` are checked
//! against the given time, with [`LEEWAY`] for clocks that differ.
//!
//! The grant becomes a session policy ([`session_policy`]) that narrows the holder's
//! own policies: a token never allows more than its user may, and never more than it
//! says.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::action::Action;
use super::policy::{Policy, PolicyKind};
use crate::error::{Error, ErrorKind, Result};

mod scope;

pub use self::scope::{Access, ScopeAction};

/// How far the verifier's clock may be behind the issuer's.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// A secret that signs and verifies tokens, with the id tokens name it by.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    id: String,
    secret: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key with the given id and secret. Ids are letters, digits, `-` and `_`.
    pub fn new(id: &str, secret: [u8; 32]) -> Result<Self> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("signing key id {id:?}: must be 1 to 64 letters, digits, '-' or '_'"),
            ));
        }
        Ok(Self {
            id: id.to_owned(),
            secret,
        })
    }

    /// A new random key named `id`.
    pub fn generate(id: &str) -> Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::new(ErrorKind::Storage, format!("no randomness for a key: {e}")))?;
        Self::new(id, secret)
    }

    /// The id tokens name the key by.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret, for storing the key.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    fn mac(&self, signed: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(signed);
        mac
    }
}

/// The keys tokens may be signed by: the newest signs, all verify (so a rotated-out key
/// keeps its tokens valid until they expire).
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl Keyring {
    /// A keyring of `keys`, the last the one that signs.
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self { keys }
    }

    /// The key that signs new tokens.
    pub fn signing(&self) -> Option<&SigningKey> {
        self.keys.last()
    }

    /// The key named `id`.
    pub fn get(&self, id: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.id == id)
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Who issued it.
    pub iss: String,
    /// The user it was issued to; empty for an anonymous caller.
    pub sub: String,
    /// The service it is for.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
    /// Not valid from, seconds since the epoch.
    pub exp: u64,
    /// A unique id.
    pub jti: String,
    /// What it grants.
    pub access: Vec<Access>,
}

impl Claims {
    /// Whether the token grants `action` on the resource `kind`/`name`.
    pub fn grants(&self, kind: &str, name: &str, action: ScopeAction) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == kind && a.name == name && a.actions.contains(&action))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON in the shapes above.
    #[error("token is malformed: {0}")]
    Malformed(String),
    /// The header names an algorithm other than HS256.
    #[error("token is signed with {0:?}; only HS256 is accepted")]
    Algorithm(String),
    /// No key of the keyring has the header's key id.
    #[error("token is signed by a key this registry does not hold")]
    UnknownKey,
    /// The MAC does not match: tampered, or signed by another key of the same name.
    #[error("token signature does not verify")]
    Signature,
    /// Issued for another service.
    #[error("token is for another service")]
    Audience,
    /// Not valid yet.
    #[error("token is not valid yet")]
    NotYetValid,
    /// Expired.
    #[error("token has expired")]
    Expired,
}

impl From<TokenError> for Error {
    fn from(error: TokenError) -> Self {
        Error::new(ErrorKind::Unauthorized, error.to_string())
    }
}

/// The compact JWT of `claims`, signed by `key`.
pub fn sign(claims: &Claims, key: &SigningKey) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
        kid: key.id.clone(),
    };
    let part = |value: Vec<u8>| URL_SAFE_NO_PAD.encode(value);
    let mut token = part(serde_json::to_vec(&header).expect("a header serializes"));
    token.push('.');
    token.push_str(&part(serde_json::to_vec(claims).expect("claims serialize")));
    let mac = key.mac(token.as_bytes()).finalize().into_bytes();
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(mac));
    token
}

/// The claims of `token` if one of `keys` signed it, it is for `audience`, and it is
/// valid at `now`.
pub fn verify(
    token: &str,
    keys: &Keyring,
    audience: &str,
    now: SystemTime,
) -> std::result::Result<Claims, TokenError> {
    let malformed = |why: &str| TokenError::Malformed(why.to_owned());
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("{what} is not base64url")))
    };
    let header: Header = serde_json::from_slice(&decode(header, "header")?)
        .map_err(|e| malformed(&format!("header: {e}")))?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let key = keys.get(&header.kid).ok_or(TokenError::UnknownKey)?;
    let signed = &token[..token.len() - mac.len() - 1];
    key.mac(signed.as_bytes())
        .verify_slice(&decode(mac, "signature")?)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(claims, "claims")?)
        .map_err(|e| malformed(&format!("claims: {e}")))?;
    if claims.aud != audience {
        return Err(TokenError::Audience);
    }
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if claims.nbf > now + LEEWAY.as_secs() {
        return Err(TokenError::NotYetValid);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The session policy that narrows a token's holder to what `access` grants, for
/// repositories in `region` and `account`: `pull`, `push` and `delete` on a repository
/// become the ECR actions a registry maps them to ([`ScopeAction::actions`]), and
/// `registry:catalog:*` becomes `ecr:DescribeRepositories` on every repository. An
/// empty grant allows nothing.
pub fn session_policy(access: &[Access], region: &str, account: &str) -> Result<Policy> {
    let mut statements = Vec::new();
    for item in access {
        let (actions, resource): (Vec<Action>, String) = match item.kind.as_str() {
            "repository" => (
                item.actions
                    .iter()
                    .flat_map(|a| a.actions().iter().copied())
                    .collect(),
                format!("arn:aws:ecr:{region}:{account}:repository/{}", item.name),
            ),
            "registry" if item.name == "catalog" => (
                vec![Action::DescribeRepositories],
                format!("arn:aws:ecr:{region}:{account}:repository/*"),
            ),
            _ => continue,
        };
        if actions.is_empty() {
            continue;
        }
        let names: Vec<&str> = actions.iter().map(|a| a.name()).collect();
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": names,
            "Resource": resource,
        }));
    }
    if statements.is_empty() {
        // A policy holds at least one statement: this one says that nothing is granted.
        statements.push(serde_json::json!({
            "Sid": "NothingGranted",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
        }));
    }
    let text = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
    // Built here from a verified grant, so IAM's length limit for session policies
    // written by hand does not apply: a token may name many repositories.
    Policy::parse_unbounded(&text.to_string(), PolicyKind::Session)
}
