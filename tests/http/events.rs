//! Webhooks from the registry server: every change arrives once, in order, signed, in
//! the webhook's format; a receiver that is down gets everything once it is back, also
//! after the registry was killed between a push and its delivery. And `/metrics`,
//! `/healthz`, `/readyz`.

use crate::common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use wharf::events::webhook::{DEFAULT_TOLERANCE, SIGNATURE_HEADER, verify};

use super::api::push_image;
use common::http::Api;
use common::server::{RegistryServer, Storage};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    signature: Option<String>,
    content_type: String,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver: keeps what it accepts; answers 503 while `down`.
#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    down: AtomicBool,
    refused: AtomicU64,
}

impl Receiver {
    async fn start() -> (Arc<Self>, SocketAddr) {
        let receiver = Arc::new(Self::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let receiver = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| receiver.clone().answer(req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (receiver, addr)
    }

    async fn answer(
        self: Arc<Self>,
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let received = Received {
            path: req.uri().path().to_owned(),
            signature: header(SIGNATURE_HEADER),
            content_type: header("content-type").unwrap_or_default(),
            body: Bytes::new(),
        };
        let body = req.into_body().collect().await.unwrap().to_bytes();
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let mut response = Response::new(Full::new(Bytes::from_static(b"down")));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(response);
        }
        self.got.lock().unwrap().push(Received { body, ..received });
        Ok(Response::new(Full::new(Bytes::new())))
    }

    fn at(&self, path: &str) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` got `n` requests (or fails the test after a minute).
    async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.at(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path} got {} of {n} events: {:?}",
                got.len(),
                got.iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checks each body's signature under `secret`, and that a wrong secret fails.
fn check_signed(got: &[Received], secret: &[u8]) {
    for r in got {
        let signature = r.signature.as_deref().expect("signed");
        verify(secret, signature, &r.body, now_secs(), DEFAULT_TOLERANCE)
            .unwrap_or_else(|e| panic!("{}: {e}", r.path));
        assert!(verify(b"wrong", signature, &r.body, now_secs(), DEFAULT_TOLERANCE).is_err());
    }
}

fn cloud_event_types(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| {
            r.json()["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("dev.wharf.")
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_every_change_once_in_order_signed_in_their_format() {
    let (receiver, addr) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ops.json");
    let ecr_hook = serde_json::json!({"webhooks": [{
        "name": "ecr-pipeline", "url": format!("http://{addr}/ecr"), "secret": "ecr-secret",
        "format": "ecr", "filter": {"repositories": ["team/*"]}, "timeout": "5s"}]});
    std::fs::write(&config, ecr_hook.to_string()).unwrap();
    let ce_url = format!("http://{addr}/ce");
    let server = RegistryServer::start_with(
        Storage::Local,
        &[
            "--webhook",
            &ce_url,
            "--webhook-secret",
            "ce-secret",
            "--webhook-format",
            "cloudevents",
            "--config",
            config.to_str().unwrap(),
        ],
    )
    .unwrap();
    let api = Api::new(&server);

    let first = push_image(&api, "team/app", "v1", 1).await;
    let second = push_image(&api, "team/app", "v1", 2).await;
    api.delete(&format!("/v2/team/app/manifests/{}", first.digest))
        .await
        .check(202);
    api.delete("/v2/team/app/manifests/v1").await.check(202);
    push_image(&api, "other/app", "v1", 3).await;

    let expected = [
        "repository_created",
        "blob_pushed",
        "blob_pushed",
        "blob_pushed",
        "manifest_pushed",
        "blob_pushed",
        "blob_pushed",
        "blob_pushed",
        "manifest_pushed",
        "manifest_deleted",
        "tag_deleted",
        "repository_created",
        "blob_pushed",
        "blob_pushed",
        "blob_pushed",
        "manifest_pushed",
    ];
    let got = receiver.wait_for("/ce", expected.len()).await;
    assert_eq!(cloud_event_types(&got), expected);
    check_signed(&got, b"ce-secret");
    for r in &got {
        assert_eq!(r.content_type, "application/cloudevents+json");
        let event = r.json();
        assert_eq!(event["specversion"], "1.0");
    }
    let pushed: Vec<Value> = got
        .iter()
        .map(Received::json)
        .filter(|e| e["type"] == "dev.wharf.manifest_pushed")
        .collect();
    assert_eq!(pushed[0]["data"]["digest"], first.digest);
    assert_eq!(pushed[1]["data"]["digest"], second.digest);
    assert_eq!(pushed[1]["data"]["previous"], first.digest);
    assert_eq!(pushed[1]["subject"], "team/app:v1");
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "each event once");

    // The ECR webhook: only image actions, only under team/.
    let ecr = receiver.wait_for("/ecr", 4).await;
    check_signed(&ecr, b"ecr-secret");
    let actions: Vec<(String, String, Option<String>)> = ecr
        .iter()
        .map(|r| {
            let e = r.json();
            assert_eq!(e["source"], "aws.ecr");
            assert_eq!(e["detail-type"], "ECR Image Action");
            let d = &e["detail"];
            assert_eq!(d["repository-name"], "team/app");
            (
                d["action-type"].as_str().unwrap().to_owned(),
                d["image-digest"].as_str().unwrap().to_owned(),
                d["image-tag"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let tag = Some("v1".to_owned());
    assert_eq!(
        actions,
        [
            ("PUSH".into(), first.digest.clone(), tag.clone()),
            ("PUSH".into(), second.digest.clone(), tag.clone()),
            ("DELETE".into(), first.digest.clone(), None),
            ("DELETE".into(), second.digest.clone(), tag),
        ]
    );
    // Nothing more arrives: no duplicates.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.at("/ecr").len(), 4);
    assert_eq!(receiver.at("/ce").len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_gets_everything_once_back_even_after_the_registry_was_killed() {
    let (receiver, addr) = Receiver::start().await;
    receiver.down.store(true, Ordering::SeqCst);
    let url = format!("http://{addr}/hook");
    let server = RegistryServer::start_with(
        Storage::Local,
        &["--webhook", &url, "--webhook-format", "cloudevents"],
    )
    .unwrap();
    let api = Api::new(&server);
    push_image(&api, "down/app", "v1", 7).await;
    // Refused and retried while down.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.refused.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "no retry while the receiver was down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The registry dies (no shutdown work at all) with every event undelivered, and
    // comes back.
    let server = server.kill_and_restart();
    let api = Api::new(&server);
    api.delete("/v2/down/app/manifests/v1").await.check(202);
    receiver.down.store(false, Ordering::SeqCst);
    let expected = [
        "repository_created",
        "blob_pushed",
        "blob_pushed",
        "blob_pushed",
        "manifest_pushed",
        "tag_deleted",
    ];
    let got = receiver.wait_for("/hook", expected.len()).await;
    assert_eq!(cloud_event_types(&got), expected);
    assert!(
        got.iter().all(|r| r.signature.is_none()),
        "no secret, no signature"
    );
}

/// `promtool check metrics` on `text`, when promtool is installed (CI installs it).
fn promtool_check(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CI").is_none(), "CI installs promtool");
        eprintln!("promtool is not installed: /metrics checked by the test alone");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `name` (with its labels as written) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_requests_made_and_pass_promtool() {
    let (_receiver, addr) = Receiver::start().await;
    let url = format!("http://{addr}/hook");
    let server = RegistryServer::start_with(Storage::Local, &["--webhook", &url]).unwrap();
    let api = Api::new(&server);
    api.get("/healthz").await.check(200);
    api.get("/readyz").await.check(200);
    push_image(&api, "metrics/app", "v1", 11).await;
    push_image(&api, "metrics/app", "v2", 12).await;
    api.get("/v2/metrics/app/manifests/v1").await.check(200);
    api.get("/v2/metrics/app/manifests/nope").await.check(404);
    let text = String::from_utf8(api.get("/metrics").await.check(200).body.to_vec()).unwrap();
    promtool_check(&text);
    let count = |labels: &str| sample(&text, &format!("wharf_http_requests_total{{{labels}}}"));
    assert_eq!(
        count(r#"endpoint="manifest",method="PUT",status="201""#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        count(r#"endpoint="manifest",method="GET",status="200""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"endpoint="manifest",method="GET",status="404""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"endpoint="healthz",method="GET",status="200""#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"wharf_http_request_duration_seconds_count{endpoint="manifest"}"#
        ),
        Some(4.0)
    );
    // Six blobs of 4 KiB + 70 000 bytes + a small config each went in.
    let bytes_in = sample(&text, "wharf_http_request_bytes_total").unwrap();
    assert!(bytes_in > 2.0 * 74_096.0, "{bytes_in}");
    assert!(sample(&text, "wharf_event_delivery_attempts_total").is_some());
    assert!(
        text.contains("wharf_outbox_backlog{subscriber=\"webhook-"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "wharf_authorization_denials_total"),
        Some(0.0)
    );
}
