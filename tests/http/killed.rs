//! A registry killed (SIGKILL: no shutdown work at all) while clients push keeps every
//! push it acknowledged, and a push it had not acknowledged is there whole or not at all.
//! On local disk small blobs and wraps wait in memory for the commit of the link or
//! record that names them; this is where a mistake in that order would show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf::OCI_IMAGE_MANIFEST;

use crate::common::http::{Api, descriptor, digest_of};
use crate::common::server::{RegistryServer, Storage};

/// Clients pushing at once: more than the server has threads.
const CLIENTS: usize = 8;
/// Pushes acknowledged before the kill.
const BEFORE_KILL: usize = 60;

/// Image `n` of client `client`: a config, a layer (every fourth too large to be kept in
/// the metadata store) and the manifest listing them.
struct Image {
    repo: String,
    tag: String,
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(client: usize, n: usize) -> Self {
        let config =
            format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":\"{client}-{n}\"}}");
        let len = if n % 4 == 3 { 40_000 } else { 1_500 };
        let layer = crate::common::noise(len, (client as u64) << 32 | n as u64);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config.as_bytes()),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
        });
        Self {
            repo: format!("killed/c{client}"),
            tag: format!("v{n}"),
            config: config.into_bytes(),
            layer,
            manifest: manifest.to_string().into_bytes(),
        }
    }

    /// Pushes the blobs whole, then the manifest by tag; whether every request was
    /// acknowledged.
    async fn push(&self, api: &Api) -> bool {
        for blob in [&self.config, &self.layer] {
            let target = format!(
                "/v2/{}/blobs/uploads/?digest={}",
                self.repo,
                digest_of(blob)
            );
            let sent = api
                .client()
                .post(api.url(&target))
                .body(blob.clone())
                .send();
            if !matches!(sent.await, Ok(reply) if reply.status() == 201) {
                return false;
            }
        }
        let target = format!("/v2/{}/manifests/{}", self.repo, self.tag);
        let sent = api
            .client()
            .put(api.url(&target))
            .header("content-type", OCI_IMAGE_MANIFEST)
            .body(self.manifest.clone())
            .send();
        matches!(sent.await, Ok(reply) if reply.status() == 201)
    }

    /// What the registry serves of the image: `Some(true)` all of it, exactly;
    /// `Some(false)` none of it by its tag; `None` (after asserting nothing served is
    /// damaged) anything between.
    async fn served(&self, api: &Api) -> Option<bool> {
        let tagged = api
            .get(&format!("/v2/{}/manifests/{}", self.repo, self.tag))
            .await;
        let mut whole = true;
        for blob in [&self.config, &self.layer] {
            let got = api
                .get(&format!("/v2/{}/blobs/{}", self.repo, digest_of(blob)))
                .await;
            match got.status {
                200 => assert!(got.body[..] == blob[..], "{}: damaged", got.request),
                404 => whole = false,
                other => panic!("{}: status {other}", got.request),
            }
        }
        match tagged.status {
            200 => {
                assert!(
                    tagged.body[..] == self.manifest[..],
                    "{}: another manifest",
                    tagged.request
                );
                assert!(whole, "{}: tagged, but a blob is missing", tagged.request);
                Some(true)
            }
            404 => (!whole).then_some(false),
            other => panic!("{}: status {other}", tagged.request),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_registry_keeps_every_push_it_acknowledged() {
    let server = RegistryServer::start_with(Storage::Local, &[]).unwrap();
    let api = Api::new(&server);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (api, acknowledged, stop) = (api.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let image = Image::new(client, n);
                    if !image.push(&api).await {
                        return Some(image);
                    }
                    acknowledged.lock().unwrap().push(image);
                    n += 1;
                }
                // The push under way at the kill, if any, is the next one.
                Some(Image::new(client, n))
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "pushes too slow to reach the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Mid-push: each client has a request in flight or about to be.
    stop.store(true, Ordering::SeqCst);
    let server = server.kill_and_restart();
    let mut in_flight = Vec::new();
    for client in clients {
        in_flight.extend(client.await.unwrap());
    }

    let api = Api::new(&server);
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(acknowledged.len() >= BEFORE_KILL);
    for image in &acknowledged {
        assert_eq!(
            image.served(&api).await,
            Some(true),
            "{}:{} was acknowledged",
            image.repo,
            image.tag
        );
    }
    for image in &in_flight {
        image.served(&api).await;
    }
    // The store goes on: the pushes cut short go through now.
    for image in &in_flight {
        assert!(
            image.push(&api).await,
            "{}:{} pushed again",
            image.repo,
            image.tag
        );
        assert_eq!(image.served(&api).await, Some(true));
    }
}
