//! An OCI Distribution v1.1 registry over HTTP, built on wharf.
//!
//! ```text
//! cargo run --release --features server --bin wharf-registry [-- --root DIR --listen ADDR ...]
//! ```
//!
//! By default it serves `127.0.0.1:5000` from `./wharf-data`: blobs on the local
//! filesystem, compressed and encrypted under a key file in that directory, metadata in an
//! embedded database. `--help` lists the flags for S3 storage and the at-rest switches.
//!
//! The files, in reading order:
//! - `config.rs`: flags and environment, and the registry they build;
//! - `routes.rs`: which endpoint a request path names;
//! - `http.rs`: bodies, headers and the spec's error responses;
//! - `blobs.rs`, `uploads.rs`, `manifests.rs`, `listings.rs`: the endpoints;
//! - with `--auth`: `auth.rs` (the users file, passwords), `login.rs` (who a request
//!   comes from: Basic, Bearer, anonymous; the challenge), `tokens.rs` (`/token`, the
//!   signing keys);
//! - `ecr.rs` (the ECR-compatible API: endpoint, signatures, errors) with
//!   `ecr_actions.rs`, `ecr_images.rs`, `ecr_layers.rs` and `ecr_lifecycle.rs` (its
//!   actions);
//! - `connections.rs` (the connection cap, timeouts), `tls.rs` (HTTPS).

mod auth;
mod backends;
mod background;
mod blobs;
mod config;
mod connections;
mod ecr;
mod ecr_actions;
mod ecr_images;
mod ecr_layers;
mod ecr_lifecycle;
mod ecr_scans;
mod http;
mod listings;
mod login;
mod manifests;
mod metrics;
mod operations;
mod pull_through;
mod remotes;
mod replication;
mod routes;
mod scanning;
mod scheduler;
mod tls;
mod tokens;
mod uploads;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use wharf::{CallerRegistry, Error, ErrorKind, Registry};

use crate::http::Failure;
use crate::login::{Credentials, Login};

use crate::config::Config;
use crate::connections::{AcceptBackoff, Admission, Connections, Limits, Ticket};
use crate::http::Response;
use crate::routes::Route;

/// How long requests still running at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// mimalloc rather than glibc's allocator: glibc gave each 1 MiB read buffer back to the
/// kernel and faulted it in again, which cost a large GET a fifth of its CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{}{}{}", config::USAGE, operations::USAGE, scanning::USAGE);
            return;
        }
        Err(message) => {
            eprintln!("wharf registry: {message}\n(see --help)");
            std::process::exit(2);
        }
    };
    init_log(config.operations.log_json);
    // One worker answers requests with the least CPU (no hand-offs between workers:
    // measured 25-30% less per request on two cores); hashing, sealing and file I/O
    // run on the blocking pool, which uses every core.
    let mut runtime = match config.workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    // A bounded blocking pool also bounds the allocator arenas that keep freed memory.
    let runtime = runtime
        .max_blocking_threads(config.blocking_threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(message) = runtime.block_on(run(config)) {
        eprintln!("wharf registry: {message}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> Result<(), String> {
    let (registry, login) = config.open().await?;
    pull_through::install(&registry, &config.operations.pull_through)?;
    if login.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(
            "wharf registry: warning: listening on {} without --auth: anyone who reaches it may push and delete",
            config.listen
        );
    }
    let app = App {
        registry,
        login,
        metrics: Arc::default(),
        background: None,
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("{}", config.describe());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("wharf registry listening on {scheme}://{addr}");

    let background =
        Arc::new(background::Background::start(&app.registry, &config, &addr.to_string()).await?);
    let app = App {
        background: Some(background.clone()),
        ..app
    };
    let rotation = app
        .login
        .as_ref()
        .map(|login| tokio::spawn(rotate_token_keys(login.clone())));
    let limits = config.limits;
    let connections = Arc::new(Connections::default());
    let mut backoff = AcceptBackoff::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of descriptors (EMFILE, ENFILE): an idle connection gives
                        // one back. Other failures (a client that gave up) only wait.
                        if matches!(e.raw_os_error(), Some(23 | 24)) {
                            connections.shed_one();
                        }
                        backoff.failed(&e).await;
                        continue;
                    }
                };
                backoff.reset();
                match connections.admit(limits.max_connections) {
                    Admission::Serve(ticket) => {
                        tokio::spawn(accept(app.clone(), stream, peer, ticket, limits, tls.clone()));
                    }
                    // A plain 503 means nothing to a TLS client: it is only closed.
                    Admission::Refuse if tls.is_some() => drop(stream),
                    Admission::Refuse => {
                        tokio::spawn(connections::refuse(stream));
                    }
                }
            }
            signal = &mut stop => {
                tracing::info!("{signal}: finishing requests in flight, then stopping");
                break;
            }
        }
    }
    drop(listener);
    background.stop().await;
    if let Some(rotation) = rotation {
        rotation.abort();
    }
    connections.close_all();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.drained())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}: stopping anyway");
    }
    // Open upload sessions checkpoint, so clients resume them after a restart.
    app.registry
        .flush_uploads()
        .await
        .map_err(|e| format!("checkpointing open uploads: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// The registry and, with `--auth`, who may use it.
#[derive(Clone)]
struct App {
    registry: Registry,
    login: Option<Arc<Login>>,
    metrics: Arc<metrics::Metrics>,
    background: Option<Arc<background::Background>>,
}

impl App {
    /// Answers a request on `route`: as a trusted caller without `--auth`; otherwise as
    /// the caller its credentials name (or anonymous), with a challenge on every 401.
    async fn answer(&self, route: Route, req: http::Req, peer: SocketAddr) -> Response {
        let Some(login) = &self.login else {
            return dispatch(&self.registry.as_trusted(), route, req, Credentials::Basic).await;
        };
        if let Route::Token = route {
            let answer = login.token(&self.registry, &req, peer).await;
            return answer.unwrap_or_else(|failure| *failure.0);
        }
        if let Route::Api = route {
            return ecr::handle(login, &self.registry, req, peer).await;
        }
        let needed = login::required_scope(&route, req.method());
        let host = req.headers().get(hyper::header::HOST).cloned();
        let response = match login
            .caller(&self.registry, &req, needed.as_ref(), peer)
            .await
        {
            Ok((caller, credentials)) => dispatch(&caller, route, req, credentials).await,
            Err(failure) => *failure.0,
        };
        if response.status() == hyper::StatusCode::UNAUTHORIZED {
            let host = host.as_ref().and_then(|h| h.to_str().ok());
            let scope = needed.map(|(access, _)| access.to_string());
            login.challenge(response, host, scope)
        } else {
            response
        }
    }
}

/// Serves an accepted connection, after the TLS handshake with `--tls-cert`: a client
/// gets as long for the handshake as for a request's headers.
async fn accept(
    app: App,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        return serve_connection(app, stream, peer, ticket, limits).await;
    };
    match tokio::time::timeout(limits.idle_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(app, stream, peer, ticket, limits).await,
        Ok(Err(e)) => tracing::info!("{peer}: TLS handshake failed: {e}"),
        Err(_) => tracing::info!(
            "{peer}: no TLS handshake within {:?}: connection closed",
            limits.idle_timeout
        ),
    }
}

/// Serves one connection until the client hangs up, a timeout ends it, or it is asked
/// to close (at the connection cap, or at shutdown) after what it has in flight.
async fn serve_connection(
    app: App,
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    ticket: Ticket,
    limits: Limits,
) {
    let ticket = Arc::new(ticket);
    let requests = ticket.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let in_flight = requests.request();
        let ticket = requests.clone();
        async move {
            let req = req.map(|body| http::TimedBody::new(body, limits.body_timeout));
            let response = serve(&app, req, peer).await;
            // The request counts as in flight until its response body is sent, and the
            // sending must keep moving.
            ticket.sending();
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                body.map_frame(move |frame| {
                    let _ = &in_flight;
                    ticket.progress();
                    frame
                })
                .boxed_unsync()
            }))
        }
    });
    let mut conn = std::pin::pin!(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .serve_connection(TokioIo::new(stream), service)
    );
    // Clients that hang up, time out or speak TLS to a plain port end here; the request
    // log already has what matters.
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ticket.closing() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = ticket.stalled(limits.body_timeout) => {}
            }
        }
        // A client that stops reading its response gives its connection up.
        () = ticket.stalled(limits.body_timeout) => {
            tracing::info!("{peer}: response stalled for {:?}: connection closed", limits.body_timeout);
        }
    }
}

/// Answers one request and logs it.
async fn serve(app: &App, req: http::Req, peer: SocketAddr) -> Response {
    use tracing::Instrument;
    let id = next_request_id();
    let span = tracing::info_span!("request", id = %id);
    let mut response = answer_logged(app, req, peer, &id).instrument(span).await;
    if let Ok(value) = hyper::header::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn answer_logged(app: &App, req: http::Req, peer: SocketAddr, id: &str) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let bytes_in = http::content_length(req.headers()).unwrap_or(0);
    let (endpoint, response) = match uri.path() {
        "/healthz" => ("healthz", background::healthz()),
        "/readyz" => ("readyz", background::readyz(&app.registry).await),
        "/metrics" => match &app.background {
            Some(background) => (
                "metrics",
                app.metrics.render(&app.registry, background).await,
            ),
            None => ("metrics", background::healthz()),
        },
        path => match Route::parse(path) {
            Ok(route) => (route.label(), app.answer(route, req, peer).await),
            Err(failure) => ("unknown", *failure.0),
        },
    };
    let response = if method == Method::HEAD {
        http::without_body(response)
    } else {
        response
    };
    // A download URL's token is a credential: not for the log.
    let logged = match uri.query() {
        Some(query) if query.contains(ecr_layers::DOWNLOAD_PARAM) => {
            format!("{}?{}=(token)", uri.path(), ecr_layers::DOWNLOAD_PARAM)
        }
        _ => uri.to_string(),
    };
    let took = started.elapsed();
    let bytes_out = match method {
        Method::HEAD => 0,
        _ => http::content_length(response.headers()).unwrap_or(0),
    };
    app.metrics.record(
        endpoint,
        method.as_str(),
        response.status(),
        took,
        bytes_in,
        bytes_out,
    );
    // Logged outside the request's span, so the line starts with the request.
    let line = format!(
        "{method} {logged} {} {:.3}ms {peer} id={id}",
        response.status().as_u16(),
        took.as_secs_f64() * 1e3
    );
    tracing::info!(parent: None, "{line}");
    response
}

async fn dispatch(
    registry: &CallerRegistry,
    route: Route,
    req: http::Req,
    credentials: Credentials,
) -> Response {
    let result = match route {
        // With --auth, a caller without credentials is asked for some here: clients
        // probe `/v2/` to learn how to log in.
        Route::Base if credentials == Credentials::None => Err(Failure::from(Error::new(
            ErrorKind::Unauthorized,
            "log in to use this registry",
        ))),
        Route::Base => match *req.method() {
            Method::GET | Method::HEAD => Ok(http::json_ok(b"{}".as_slice())),
            _ => Err(http::method_not_allowed(req.method(), "GET, HEAD")),
        },
        // Without --auth there is no token endpoint, and no ECR API (no access keys).
        Route::Token | Route::Api => Err(Failure::new(
            hyper::StatusCode::NOT_FOUND,
            &Error::new(
                ErrorKind::Unsupported,
                "no token endpoint or ECR API: the registry runs without --auth",
            ),
        )),
        Route::Catalog => listings::catalog(registry, &req).await,
        Route::Tags(repo) => listings::tags(registry, &repo, &req).await,
        Route::Referrers(repo, subject) => {
            listings::referrers(registry, &repo, &subject, &req).await
        }
        Route::Blob(repo, digest) => blobs::handle(registry, &repo, &digest, req).await,
        Route::UploadStart(repo) => uploads::start(registry, &repo, req).await,
        Route::Upload(repo, id) => uploads::handle(registry, &repo, &id, req).await,
        Route::Manifest(repo, reference) => {
            manifests::handle(registry, &repo, &reference, req).await
        }
    };
    result.unwrap_or_else(|failure| *failure.0)
}

/// Rotates the token signing keys when they are due.
async fn rotate_token_keys(login: Arc<Login>) {
    loop {
        tokio::time::sleep(tokens::ROTATION_CHECK).await;
        if let Err(e) = login.tokens.rotate() {
            tracing::warn!("rotating token keys: {e}");
        }
    }
}

/// Logs through tracing: plain lines without time or level (the supervisor stamps them),
/// or JSON objects with both.
fn init_log(json: bool) {
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_target(false);
    if json {
        log.json().with_current_span(true).init();
    } else {
        log.without_time().with_level(false).init();
    }
}

/// A request's id: unique in this process, in its log lines and its `X-Request-Id`.
fn next_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!(
        "{:08x}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Resolves on SIGINT or SIGTERM, naming the signal.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
