//! Docker registry token authentication: `GET /token` checks the caller's credentials
//! (Basic, or none for anonymous), grants the requested scope as far as the caller's
//! policies allow, and answers with a short-lived signed token (`wharf::access::token`)
//! that the client sends back as `Bearer`.
//!
//! Signing keys live in `DIR/token-keys/`, one file per key named by its id (the
//! second it was made, and random digits), holding the secret in hex. The newest key
//! signs; a key signs for [`ROTATE_EVERY`] and is then replaced, and removed once the
//! tokens it signed have expired (a replica may sign with it until its next rotation
//! check). Replicas that share `DIR` share the keys; one that
//! meets a key id it does not know reads the directory again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use wharf::access::token::{
    self, Access, Claims, Keyring, ScopeAction, SigningKey, TokenError, session_policy,
};
use wharf::access::{Action, Policy, Principal};
use wharf::{CallerRegistry, RepoName, ResourceAccount};

/// How long a key signs before a new one takes over.
pub(crate) const ROTATE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How often the server checks whether the signing key is due for rotation.
pub(crate) const ROTATION_CHECK: Duration = Duration::from_secs(3600);
/// The `service` of the challenge, and every token's audience.
pub(crate) const SERVICE: &str = "wharf-registry";
/// How long a login token from the ECR API's `GetAuthorizationToken` is valid (ECR's
/// twelve hours).
pub(crate) const LOGIN_TTL: Duration = Duration::from_secs(12 * 3600);
/// What a login token grants: to be the user it names, with no scope narrowing.
pub(crate) const LOGIN_GRANT: &str = "login";
/// The most often an unknown key id makes the server read the key directory.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Verified tokens remembered, at most, before expired ones are dropped (and then all,
/// if none had expired).
const REMEMBERED: usize = 10_000;

/// A token that verified, and the session policy its grant stands for: verifying and
/// building the policy cost about 8 µs (`benches/access.rs`), a lookup far less, and a
/// client sends one token on many requests.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: Claims,
    pub(crate) session: Arc<Policy>,
}

/// The signing keys, the tokens' lifetime, and the tokens verified lately.
#[derive(Debug)]
pub(crate) struct Tokens {
    dir: PathBuf,
    ttl: Duration,
    /// Region and account of the repository ARNs in session policies.
    region: String,
    account: String,
    keys: RwLock<Keyring>,
    reloaded: Mutex<Instant>,
    verified: Mutex<HashMap<String, Arc<Verified>>>,
}

impl Tokens {
    /// Opens (or creates) the key directory under `root` and makes sure a current key
    /// signs.
    pub(crate) fn open(
        root: &Path,
        ttl: Duration,
        account: &ResourceAccount,
    ) -> Result<Self, String> {
        let dir = root.join("token-keys");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let tokens = Self {
            dir,
            ttl,
            region: account.region.clone(),
            account: account.account.clone(),
            keys: RwLock::new(Keyring::default()),
            reloaded: Mutex::new(Instant::now()),
            verified: Mutex::new(HashMap::new()),
        };
        tokens.rotate()?;
        Ok(tokens)
    }

    /// Adds a key when the newest is due for rotation (or there is none), removes the
    /// keys no unexpired token can name, and reloads the keyring.
    pub(crate) fn rotate(&self) -> Result<(), String> {
        let now = unix_now();
        let keys = self.read_keys()?;
        let due = keys
            .last()
            .is_none_or(|(made, _)| now.saturating_sub(*made) >= ROTATE_EVERY.as_secs());
        if due {
            self.write_key(now)?;
        }
        // A key stops signing when its successor is made, in every replica within a
        // rotation check; its tokens live `ttl` (login tokens twelve hours) longer.
        let retired_after = ROTATION_CHECK + self.ttl.max(LOGIN_TTL) + token::LEEWAY;
        let keys = self.read_keys()?;
        for pair in keys.windows(2) {
            let ((_, key), (successor_made, _)) = (&pair[0], &pair[1]);
            if now.saturating_sub(*successor_made) > retired_after.as_secs() {
                let _ = std::fs::remove_file(self.dir.join(format!("{}.key", key.id())));
            }
        }
        self.reload()
    }

    fn reload(&self) -> Result<(), String> {
        let keys = self.read_keys()?.into_iter().map(|(_, key)| key).collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Keyring::new(keys);
        Ok(())
    }

    /// The keys in the directory, oldest first, with the second each was made.
    fn read_keys(&self) -> Result<Vec<(u64, SigningKey)>, String> {
        let context = |e: std::io::Error| format!("{}: {e}", self.dir.display());
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(context)? {
            let path = entry.map_err(context)?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let made = id
                .split_once('-')
                .and_then(|(secs, _)| secs.parse::<u64>().ok());
            let text = std::fs::read_to_string(&path).map_err(context)?;
            let (Some(made), Some(secret)) = (made, hex32(text.trim())) else {
                return Err(format!(
                    "{}: not a token key (a name <seconds>-<digits>.key holding 64 hex digits)",
                    path.display()
                ));
            };
            let key = SigningKey::new(id, secret).map_err(|e| e.to_string())?;
            keys.push((made, key));
        }
        keys.sort_by(|a, b| (a.0, a.1.id()).cmp(&(b.0, b.1.id())));
        Ok(keys)
    }

    /// Writes a new key made at `now`: to a temporary file first, so a crash leaves no
    /// half-written key, readable by the owner only.
    fn write_key(&self, now: u64) -> Result<(), String> {
        let mut suffix = [0u8; 4];
        getrandom::fill(&mut suffix).map_err(|e| e.to_string())?;
        let id = format!("{now}-{}", hex(&suffix));
        let key = SigningKey::generate(&id).map_err(|e| e.to_string())?;
        let path = self.dir.join(format!("{id}.key"));
        let temporary = self.dir.join(format!(".{id}.tmp"));
        let context = |e: std::io::Error| format!("{}: {e}", path.display());
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)
                .map_err(context)?;
            writeln!(file, "{}", hex(key.secret())).map_err(context)?;
            file.sync_all().map_err(context)?;
        }
        std::fs::rename(&temporary, &path).map_err(context)?;
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(context)
    }

    /// A token for `subject` (empty for anonymous) granting `access`, and its lifetime
    /// in seconds.
    pub(crate) fn issue(
        &self,
        subject: &str,
        access: Vec<Access>,
    ) -> Result<(String, u64), String> {
        self.issue_for(subject, access, self.ttl)
    }

    /// A token as [`Tokens::issue`] makes, valid for `ttl`.
    pub(crate) fn issue_for(
        &self,
        subject: &str,
        access: Vec<Access>,
        ttl: Duration,
    ) -> Result<(String, u64), String> {
        let now = unix_now();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| e.to_string())?;
        let claims = Claims {
            iss: SERVICE.into(),
            sub: subject.into(),
            aud: SERVICE.into(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            jti: hex(&jti),
            access,
        };
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.signing().ok_or("no token signing key")?;
        Ok((token::sign(&claims, key), ttl.as_secs()))
    }

    /// A token this registry signed, unexpired, with its session policy.
    pub(crate) fn verify(&self, bearer: &str) -> Result<Arc<Verified>, TokenError> {
        let now = unix_now();
        if let Some(hit) = self.lock_verified().get(bearer)
            && now < hit.claims.exp
        {
            return Ok(hit.clone());
        }
        let claims = self.verify_signature(bearer)?;
        let session = session_policy(&claims.access, &self.region, &self.account)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        let verified = Arc::new(Verified {
            claims,
            session: Arc::new(session),
        });
        let mut cache = self.lock_verified();
        if cache.len() >= REMEMBERED {
            cache.retain(|_, v| now < v.claims.exp);
            if cache.len() >= REMEMBERED {
                cache.clear();
            }
        }
        cache.insert(bearer.to_owned(), verified.clone());
        Ok(verified)
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Verified>>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claims of a token one of the keys signed, for this service, unexpired.
    fn verify_signature(&self, bearer: &str) -> Result<Claims, TokenError> {
        let check = || {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            token::verify(bearer, &keys, SERVICE, SystemTime::now())
        };
        match check() {
            // Another replica may have rotated: read the directory (not too often).
            Err(TokenError::UnknownKey) if self.may_reload() => {
                let _ = self.reload();
                check()
            }
            other => other,
        }
    }

    fn may_reload(&self) -> bool {
        let mut last = self.reloaded.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < RELOAD_AT_MOST_EVERY {
            return false;
        }
        *last = Instant::now();
        true
    }
}

/// What of `asked` the caller may have: each action granted only if the caller's
/// policies allow the ECR action that defines it (`pull`: `ecr:BatchGetImage`, `push`:
/// `ecr:PutImage`, `delete`: `ecr:BatchDeleteImage`); `*` stands for all three. The
/// catalog is granted to whoever asks: it lists only what the caller may describe.
pub(crate) async fn grant(caller: &CallerRegistry, asked: Vec<Access>) -> Vec<Access> {
    let mut granted = Vec::new();
    for mut access in asked {
        if access.kind == "repository" {
            let Ok(repo) = access.name.parse::<RepoName>() else {
                continue;
            };
            let mut actions = Vec::new();
            for (action, defining) in [
                (ScopeAction::Pull, Action::BatchGetImage),
                (ScopeAction::Push, Action::PutImage),
                (ScopeAction::Delete, Action::BatchDeleteImage),
            ] {
                let asked =
                    access.actions.contains(&action) || access.actions.contains(&ScopeAction::All);
                if asked && caller.may(defining, &repo).await.unwrap_or(false) {
                    actions.push(action);
                }
            }
            access.actions = actions;
        } else if !(access.kind == "registry" && access.name == "catalog") {
            continue;
        }
        if !access.actions.is_empty() {
            granted.push(access);
        }
    }
    granted
}

/// Whether the caller's policies allow the ECR action that defines `action` on `repo`.
pub(crate) async fn may(caller: &CallerRegistry, action: ScopeAction, repo: &RepoName) -> bool {
    let defining = match action {
        ScopeAction::Pull => Action::BatchGetImage,
        ScopeAction::Push => Action::PutImage,
        ScopeAction::Delete => Action::BatchDeleteImage,
        ScopeAction::All => return false,
    };
    caller.may(defining, repo).await.unwrap_or(false)
}

/// The principal a verified token stands for: its user as the users file has it now
/// (`None` if the user is gone), or anonymous.
pub(crate) fn principal(claims: &Claims, user: Option<Principal>) -> Option<Principal> {
    match (claims.sub.is_empty(), user) {
        (true, _) => Some(Principal::Anonymous),
        (false, user) => user,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
