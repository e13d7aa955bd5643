//! `--auth FILE`: who may do what.
//!
//! The file names users (a password hash, bcrypt as `htpasswd -B` writes it or argon2id
//! in PHC form; groups; IAM identity policies), groups (policies every member gets) and repositories to
//! seed at start (`public`, and a repository policy). Every request is made as the user
//! its Basic credentials name, or anonymously without credentials; wharf's access
//! control decides each operation. Wrong credentials are 401 with nothing said about
//! which part was wrong, and an address that keeps failing is throttled (429).
//!
//! ```json
//! {"users": [{"name": "ci", "password": "$2y$05$...", "groups": ["pushers"]}],
//!  "groups": [{"name": "pushers", "policies": [{"Version": "2012-10-17", "Statement":
//!     {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}]}],
//!  "repositories": [{"name": "public/tools", "public": true}]}
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wharf::access::{Identity, Policy, Principal};
use wharf::{Error, ErrorKind, Registry, RepoName, RepositorySettings};

/// The account of the users' and repositories' ARNs unless the file names one.
pub(crate) const DEFAULT_ACCOUNT: &str = "000000000000";

/// How long a checked password is trusted without running bcrypt again.
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Failed logins from one address within [`FAILURE_WINDOW`] before it is throttled.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Remembered checks and failing addresses, each, before the oldest are dropped.
const REMEMBERED: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    account: Option<String>,
    users: Vec<UserEntry>,
    #[serde(default)]
    groups: Vec<GroupEntry>,
    #[serde(default)]
    repositories: Vec<RepositoryEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    policies: Vec<Value>,
    /// AWS access keys for the ECR-compatible API (Signature Version 4).
    #[serde(default)]
    access_keys: Vec<AccessKeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessKeyEntry {
    id: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    name: String,
    #[serde(default)]
    policies: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryEntry {
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    policy: Option<Value>,
}

struct User {
    hash: String,
    identity: Identity,
}

/// The users, and what the server remembers of recent logins.
pub(crate) struct Auth {
    pub(crate) account: String,
    users: HashMap<String, User>,
    /// Access key id to (secret, user name).
    access_keys: HashMap<String, (String, String)>,
    repositories: Vec<RepositoryEntry>,
    /// `(user, sha256 of the password)` checked by bcrypt, and when.
    verified: Mutex<HashMap<(String, [u8; 32]), Instant>>,
    /// Failed logins per address: the first in the window, and how many.
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// Why a request gets no caller.
pub(crate) enum Refusal {
    /// Bad or unusable credentials: 401.
    Unauthorized,
    /// Too many failures from the address: 429.
    Throttled,
}

impl Refusal {
    pub(crate) fn error(&self) -> Error {
        match self {
            Refusal::Unauthorized => Error::new(
                ErrorKind::Unauthorized,
                "authentication failed: check the user name and password",
            ),
            Refusal::Throttled => Error::new(
                ErrorKind::TooManyRequests,
                "too many failed logins from this address: wait a minute",
            ),
        }
    }
}

impl Auth {
    /// Reads and checks the users file: every hash bcrypt or argon2id, every policy
    /// valid, every group a user names defined.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let context = |why: String| format!("--auth {}: {why}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| context(e.to_string()))?;
        let file: File = serde_json::from_str(&text).map_err(|e| context(e.to_string()))?;
        let account = file.account.unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
        if account.len() != 12 || !account.bytes().all(|c| c.is_ascii_digit()) {
            return Err(context(format!("account {account:?} is not 12 digits")));
        }
        let policy = |value: &Value, whose: &str| {
            Policy::identity(&value.to_string())
                .map(Arc::new)
                .map_err(|e| context(format!("{whose}: {e}")))
        };
        let mut groups: HashMap<String, Vec<Arc<Policy>>> = HashMap::new();
        for group in &file.groups {
            let policies = group
                .policies
                .iter()
                .map(|p| policy(p, &format!("group {}", group.name)))
                .collect::<Result<Vec<_>, _>>()?;
            groups.insert(group.name.clone(), policies);
        }
        let mut users = HashMap::new();
        let mut access_keys = HashMap::new();
        for entry in file.users {
            let whose = format!("user {}", entry.name);
            if entry.name == "AWS" {
                return Err(context(
                    "user AWS: the name is reserved for ECR login tokens (GetAuthorizationToken)"
                        .into(),
                ));
            }
            check_hash(&entry.password).map_err(|why| context(format!("{whose}: {why}")))?;
            let mut identity = Identity::user(&account, &entry.name);
            for p in &entry.policies {
                identity.policies.push(policy(p, &whose)?);
            }
            for group in &entry.groups {
                let policies = groups
                    .get(group)
                    .ok_or_else(|| context(format!("{whose}: no group {group:?}")))?;
                identity.policies.extend(policies.iter().cloned());
            }
            identity.groups = entry.groups;
            for key in entry.access_keys {
                let valid_id = (16..=128).contains(&key.id.len())
                    && key.id.bytes().all(|b| b.is_ascii_alphanumeric());
                if !valid_id || key.secret.len() < 16 {
                    return Err(context(format!(
                        "{whose}: an access key needs an id of 16 to 128 letters and digits and a secret of at least 16 characters"
                    )));
                }
                if access_keys
                    .insert(key.id.clone(), (key.secret, entry.name.clone()))
                    .is_some()
                {
                    return Err(context(format!("access key {} is listed twice", key.id)));
                }
            }
            users.insert(
                entry.name,
                User {
                    hash: entry.password,
                    identity,
                },
            );
        }
        for repository in &file.repositories {
            repository
                .name
                .parse::<RepoName>()
                .map_err(|e| context(e.to_string()))?;
            if let Some(p) = &repository.policy {
                Policy::repository(&p.to_string())
                    .map_err(|e| context(format!("repository {}: {e}", repository.name)))?;
            }
        }
        Ok(Self {
            account,
            users,
            access_keys,
            repositories: file.repositories,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Creates the file's repositories (or sets their `public` switch) and their policies.
    pub(crate) async fn seed(&self, registry: &Registry) -> Result<(), String> {
        for entry in &self.repositories {
            let name: RepoName = entry.name.parse().map_err(|e: Error| e.to_string())?;
            let settings = match registry.repository(&name).await {
                Ok(repository) => repository.settings,
                Err(e) if e.kind() == ErrorKind::NameUnknown => RepositorySettings::default(),
                Err(e) => return Err(e.to_string()),
            };
            let settings = RepositorySettings {
                public: entry.public,
                ..settings
            };
            match registry.create_repository(&name, settings.clone()).await {
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    registry
                        .update_repository(&name, settings)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                other => {
                    other.map_err(|e| e.to_string())?;
                }
            }
            if let Some(policy) = &entry.policy {
                registry
                    .set_repository_policy(&name, &policy.to_string(), None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// The caller a request's `Authorization` header names: anonymous without one.
    pub(crate) async fn principal(
        &self,
        authorization: Option<&str>,
        peer: IpAddr,
    ) -> Result<Principal, Refusal> {
        let Some(authorization) = authorization else {
            return Ok(Principal::Anonymous);
        };
        if self.throttled(peer) {
            return Err(Refusal::Throttled);
        }
        match self.check(authorization).await {
            Some(identity) => Ok(Principal::Identity(identity)),
            None => {
                self.failed(peer);
                Err(Refusal::Unauthorized)
            }
        }
    }

    /// The secret of access key `id` and the user it belongs to.
    pub(crate) fn access_key(&self, id: &str) -> Option<(&str, Principal)> {
        let (secret, user) = self.access_keys.get(id)?;
        Some((secret, self.user(user)?))
    }

    /// Whether `peer` failed too often lately.
    pub(crate) fn is_throttled(&self, peer: IpAddr) -> bool {
        self.throttled(peer)
    }

    /// Counts a failed authentication from `peer`.
    pub(crate) fn note_failure(&self, peer: IpAddr) {
        self.failed(peer)
    }

    /// The user named `name`, as the file has it now.
    pub(crate) fn user(&self, name: &str) -> Option<Principal> {
        let user = self.users.get(name)?;
        Some(Principal::Identity(user.identity.clone()))
    }

    /// The identity of good Basic credentials.
    async fn check(&self, authorization: &str) -> Option<Identity> {
        let (name, password) = basic_credentials(authorization)?;
        let (name, password) = (name.as_str(), password.as_str());
        let user = self.users.get(name)?;
        let key = (name.to_owned(), Sha256::digest(password.as_bytes()).into());
        let fresh = |at: &Instant| at.elapsed() < VERIFIED_FOR;
        if self.lock_verified().get(&key).is_some_and(fresh) {
            return Some(user.identity.clone());
        }
        let (hash, password) = (user.hash.clone(), password.to_owned());
        // Password hashes are slow on purpose: off the request threads.
        let good = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .ok()?;
        if !good {
            return None;
        }
        let mut verified = self.lock_verified();
        if verified.len() >= REMEMBERED {
            verified.retain(|_, at| fresh(at));
        }
        verified.insert(key, Instant::now());
        Some(user.identity.clone())
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashMap<(String, [u8; 32]), Instant>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn throttled(&self, peer: IpAddr) -> bool {
        self.lock_failures()
            .get(&peer)
            .is_some_and(|(since, count)| {
                since.elapsed() < FAILURE_WINDOW && *count >= MAX_FAILURES
            })
    }

    fn failed(&self, peer: IpAddr) {
        let mut failures = self.lock_failures();
        if failures.len() >= REMEMBERED {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(peer).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// The user name and password of a `Basic` `Authorization` header.
pub(crate) fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, encoded) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// Largest argon2 memory cost accepted, in KiB: one check must not take a server's
/// memory (OWASP suggests 19 MiB to 46 MiB).
const MAX_ARGON2_MEMORY_KIB: u64 = 1 << 20;
/// Largest argon2 time cost accepted.
const MAX_ARGON2_PASSES: u64 = 16;

/// Whether `hash` is one the server can check: bcrypt (`$2a$`, `$2b$`, `$2y$`) or
/// argon2id in PHC form within sane costs.
fn check_hash(hash: &str) -> Result<(), String> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        return hash
            .parse::<bcrypt::HashParts>()
            .map(|_| ())
            .map_err(|e| format!("password: not a bcrypt hash: {e}"));
    }
    if hash.starts_with("$argon2id$") {
        let parsed = argon2::PasswordHash::new(hash)
            .map_err(|e| format!("password: not an argon2id PHC string: {e}"))?;
        let cost = |name: &str| {
            parsed
                .params
                .iter()
                .find(|(key, _)| key.as_str() == name)
                .and_then(|(_, value)| value.as_str().parse::<u64>().ok())
        };
        match (cost("m"), cost("t")) {
            (Some(m), Some(t)) if m <= MAX_ARGON2_MEMORY_KIB && t <= MAX_ARGON2_PASSES => {
                return Ok(());
            }
            _ => {
                return Err(format!(
                    "password: argon2id costs must be at most m={MAX_ARGON2_MEMORY_KIB} and t={MAX_ARGON2_PASSES}"
                ));
            }
        }
    }
    Err("password must be a bcrypt hash ($2b$ or $2y$, as htpasswd -B writes) or an argon2id PHC string ($argon2id$...)".into())
}

/// Whether `password` matches `hash` (checked by [`check_hash`] at load).
fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2id$") {
        use argon2::PasswordVerifier;
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}
