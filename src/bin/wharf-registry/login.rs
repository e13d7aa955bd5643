//! Who a request comes from, with `--auth`: Basic credentials, a Bearer token from
//! `GET /token`, or nobody (anonymous); the 401 challenge that tells a client how to
//! log in; and the token endpoint itself.
//!
//! A token is checked twice: here, that it grants the scope the request needs (else
//! 401 `insufficient_scope`, and the client fetches a token for that scope), and then by
//! the library, whose caller view is narrowed to the token's grant by a session policy
//! (a mount's source needs `pull` in the token too).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode};
use serde_json::json;
use wharf::access::token::{Access, ScopeAction};
use wharf::access::{Context, Principal};
use wharf::{CallerRegistry, Error, ErrorKind, Registry};

use crate::auth::{Auth, Refusal};
use crate::http::{self, Failure, Handled, Req, Response};
use crate::routes::Route;
use crate::tokens::{self, Tokens};

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// None at all: anonymous.
    None,
    /// A user's name and password.
    Basic,
    /// A token from `/token` (perhaps an anonymous one).
    Bearer,
}

/// Users, tokens and how the server is reached: what authentication needs.
#[derive(Debug)]
pub(crate) struct Login {
    pub(crate) auth: Arc<Auth>,
    pub(crate) tokens: Arc<Tokens>,
    /// Whether clients reach the server over TLS (`aws:SecureTransport`, the realm's
    /// scheme).
    pub(crate) tls: bool,
    /// The server's address, for the realm when a request's `Host` is unusable.
    pub(crate) listen: SocketAddr,
    /// The region of the ECR API's signatures and the repositories' ARNs.
    pub(crate) region: String,
    /// Whether KEKs are in KMS (`--kms-key-id`), so repositories may name KMS keys.
    pub(crate) kms: bool,
    /// The latest lifecycle preview of each repository (the ECR API's), in memory.
    pub(crate) previews:
        std::sync::Mutex<std::collections::HashMap<wharf::RepoName, serde_json::Value>>,
}

/// Lifecycle previews kept at most; beyond, the map starts again.
const MAX_PREVIEWS: usize = 1000;

impl Login {
    /// Keeps `preview` as `repo`'s latest.
    pub(crate) fn keep_preview(&self, repo: &wharf::RepoName, preview: serde_json::Value) {
        let mut previews = self.previews.lock().unwrap_or_else(|e| e.into_inner());
        if previews.len() >= MAX_PREVIEWS {
            previews.clear();
        }
        previews.insert(repo.clone(), preview);
    }

    /// `repo`'s latest preview.
    pub(crate) fn preview(&self, repo: &wharf::RepoName) -> Option<serde_json::Value> {
        let previews = self.previews.lock().unwrap_or_else(|e| e.into_inner());
        previews.get(repo).cloned()
    }

    /// The context of a request from `peer`: time, source address, transport.
    pub(crate) fn context(&self, peer: SocketAddr) -> Context {
        let mut context = Context::at(std::time::SystemTime::now());
        context.source_ip(peer.ip());
        context.secure_transport(self.tls);
        context
    }

    /// The registry as the request's caller sees it, and how the caller authenticated;
    /// `needed` is what a token must grant for the request ([`required_scope`]).
    pub(crate) async fn caller(
        &self,
        registry: &Registry,
        req: &Req,
        needed: Option<&(Access, ScopeAction)>,
        peer: SocketAddr,
    ) -> Result<(CallerRegistry, Credentials), Failure> {
        let context = self.context(peer);
        let authorization = http::header(req.headers(), "authorization");
        let bearer = authorization.and_then(|a| {
            let (scheme, token) = a.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
        // A download URL from the ECR API carries its token in the query, for blob
        // reads only.
        let blob_read = matches!(needed, Some((access, ScopeAction::Pull)) if access.kind == "repository")
            && req.uri().path().contains("/blobs/");
        let bearer = match (bearer, authorization) {
            (None, None) if blob_read => http::query_param(req, crate::ecr_layers::DOWNLOAD_PARAM),
            (bearer, _) => bearer,
        };
        let Some(bearer) = bearer else {
            let principal = self
                .principal(authorization, peer)
                .await
                .map_err(|refusal| Failure::from(refusal.error()))?;
            let credentials = match authorization {
                Some(_) => Credentials::Basic,
                None => Credentials::None,
            };
            return Ok((registry.as_caller(principal, context), credentials));
        };
        let verified = self
            .tokens
            .verify(&bearer)
            .map_err(|e| Failure::from(Error::from(e)))?;
        let principal = tokens::principal(&verified.claims, self.auth.user(&verified.claims.sub))
            .ok_or_else(|| {
            Failure::from(Error::new(
                ErrorKind::Unauthorized,
                "the token's user no longer exists",
            ))
        })?;
        if let Some((needed, action)) = needed
            && !verified.claims.grants(&needed.kind, &needed.name, *action)
        {
            return Err(self
                .beyond_token(registry, principal, context, needed, *action)
                .await);
        }
        Ok((
            registry.as_session(principal, context, verified.session.clone()),
            Credentials::Bearer,
        ))
    }

    /// The answer to a token that does not grant what a request needs: 401 (fetch a
    /// token for it) when the caller's policies would allow it, 403 when they would not
    /// (a new token would not help a known user).
    async fn beyond_token(
        &self,
        registry: &Registry,
        principal: Principal,
        context: Context,
        needed: &Access,
        action: ScopeAction,
    ) -> Failure {
        let known = matches!(principal, Principal::Identity(_));
        let caller = registry.as_caller(principal, context);
        let repo = (needed.kind == "repository")
            .then(|| needed.name.parse::<wharf::RepoName>().ok())
            .flatten();
        let refused = match &repo {
            Some(repo) => known && !tokens::may(&caller, action, repo).await,
            None => false,
        };
        if refused {
            Failure::from(Error::new(
                ErrorKind::Denied,
                format!("the caller's policies do not allow {needed}"),
            ))
        } else {
            Failure::from(Error::new(
                ErrorKind::Unauthorized,
                format!("the token does not grant {needed}"),
            ))
        }
    }

    /// The caller Basic credentials (or none) name: a user and password, or `AWS` and a
    /// login token from the ECR API's `GetAuthorizationToken`, which stands for the user
    /// who asked for it.
    pub(crate) async fn principal(
        &self,
        authorization: Option<&str>,
        peer: SocketAddr,
    ) -> Result<Principal, Refusal> {
        let Some(token) = authorization.and_then(ecr_login_token) else {
            return self.auth.principal(authorization, peer.ip()).await;
        };
        if self.auth.is_throttled(peer.ip()) {
            return Err(Refusal::Throttled);
        }
        let principal = self.tokens.verify(&token).ok().and_then(|verified| {
            let claims = &verified.claims;
            let login = claims
                .access
                .iter()
                .any(|a| a.kind == "registry" && a.name == tokens::LOGIN_GRANT);
            login.then(|| self.auth.user(&claims.sub)).flatten()
        });
        principal.ok_or_else(|| {
            self.auth.note_failure(peer.ip());
            Refusal::Unauthorized
        })
    }

    /// `response` (a 401) with the challenge for `route`: a Bearer realm at this
    /// server's `/token`, with the scope the request needs.
    pub(crate) fn challenge(
        &self,
        mut response: Response,
        req_host: Option<&str>,
        scope: Option<String>,
    ) -> Response {
        let realm = format!("{}://{}/token", self.scheme(), self.host(req_host));
        let mut value = format!("Bearer realm=\"{realm}\",service=\"{}\"", tokens::SERVICE);
        if let Some(scope) = scope {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        response
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The host clients use for this server: the request's `Host` if it is a plain host
    /// name or address (it ends up in a header), else the listening address.
    fn host(&self, host: Option<&str>) -> String {
        let plain = |h: &&str| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        };
        host.filter(plain)
            .map_or_else(|| self.listen.to_string(), str::to_owned)
    }

    /// `GET /token`: a token for the scopes asked, as far as the caller's policies
    /// allow. Wrong credentials are 401 (with a Basic challenge), like on `/v2/`.
    pub(crate) async fn token(&self, registry: &Registry, req: &Req, peer: SocketAddr) -> Handled {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(http::method_not_allowed(req.method(), "GET, HEAD"));
        }
        if let Some(service) = http::query_param(req, "service")
            && service != tokens::SERVICE
        {
            return Err(Failure::from(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "service {service:?} is not this registry ({})",
                    tokens::SERVICE
                ),
            )));
        }
        let authorization = http::header(req.headers(), "authorization");
        let principal = self
            .principal(authorization, peer)
            .await
            .map_err(|refusal| {
                let mut failure = Failure::from(refusal.error());
                if failure.0.status() == StatusCode::UNAUTHORIZED {
                    failure.0 = Box::new(http::challenge(*failure.0));
                }
                failure
            })?;
        let subject = match &principal {
            Principal::Anonymous => String::new(),
            Principal::Identity(identity) => identity.name.clone(),
        };
        let mut asked = Vec::new();
        for scope in http::query_params(req, "scope") {
            asked.extend(Access::parse_all(&scope)?);
        }
        let caller = registry.as_caller(principal, self.context(peer));
        let granted = tokens::grant(&caller, asked).await;
        let (token, expires_in) = self
            .tokens
            .issue(&subject, granted)
            .map_err(|e| Failure::from(Error::new(ErrorKind::Storage, e)))?;
        let issued_at = wharf::lifecycle::format_rfc3339(std::time::SystemTime::now());
        let body = json!({
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": issued_at,
        });
        Ok(http::json_ok(body.to_string()))
    }
}

/// The password of Basic credentials for the user `AWS`: an ECR login token.
fn ecr_login_token(authorization: &str) -> Option<String> {
    let (user, password) = crate::auth::basic_credentials(authorization)?;
    (user == "AWS").then_some(password)
}

/// What a request on `route` needs a token to grant: a resource and an action.
pub(crate) fn required_scope(route: &Route, method: &Method) -> Option<(Access, ScopeAction)> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let (name, action) = match route {
        Route::Base | Route::Token | Route::Api => return None,
        Route::Catalog => {
            let access = Access {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec![ScopeAction::All],
            };
            return Some((access, ScopeAction::All));
        }
        Route::Tags(repo) | Route::Referrers(repo, _) => (repo, ScopeAction::Pull),
        Route::Blob(repo, _) | Route::Manifest(repo, _) => match *method {
            Method::DELETE => (repo, ScopeAction::Delete),
            _ if read => (repo, ScopeAction::Pull),
            _ => (repo, ScopeAction::Push),
        },
        Route::UploadStart(repo) | Route::Upload(repo, _) => (repo, ScopeAction::Push),
    };
    // Pushing clients ask for pull too: they check what is there first.
    let actions = match action {
        ScopeAction::Push => vec![ScopeAction::Pull, ScopeAction::Push],
        other => vec![other],
    };
    let access = Access {
        kind: "repository".into(),
        name: name.to_string(),
        actions,
    };
    Some((access, action))
}
