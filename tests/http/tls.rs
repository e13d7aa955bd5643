//! The registry server over TLS (`--tls-cert`, `--tls-key`), with `--auth`: a
//! throwaway CA and server certificate made with `openssl` at test time; the token realm
//! is `https`; oci-client and skopeo log in, push and pull as their users' policies say;
//! many clients at once; plain HTTP, a silent client and a mismatched key pair.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use oci_client::client::{
    Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer,
    linux_amd64_resolver,
};
use oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::http::Api;
use common::server::RegistryServer;
use common::{noise, seed_for};

use super::auth::{ALICE, BOB, users_file};
use super::skopeo::{Layout, describe, have_skopeo, run_skopeo};

/// A CA and a certificate it signed for 127.0.0.1, as PEM files in a directory.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=wharf test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(d, &csr);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        // skopeo and podman read a directory of CA certificates (`*.crt`).
        std::fs::create_dir(d.join("certs.d")).unwrap();
        std::fs::copy(d.join("ca.crt"), d.join("certs.d/ca.crt")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.crt")).unwrap()
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.crt").display().to_string(),
            "--tls-key".into(),
            self.path("server.key").display().to_string(),
        ]
    }

    fn reqwest(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(&self.ca_pem()).unwrap();
        reqwest::Client::builder().add_root_certificate(ca)
    }

    fn oci_client(&self) -> Client {
        Client::new(ClientConfig {
            protocol: ClientProtocol::Https,
            extra_root_certificates: vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: self.ca_pem(),
            }],
            platform_resolver: Some(Box::new(linux_amd64_resolver)),
            ..Default::default()
        })
    }
}

fn start(dir: &Path, pki: &Pki, extra: &[&str]) -> RegistryServer {
    let users = users_file(dir);
    let mut args = vec!["--auth".into(), users.display().to_string()];
    args.extend(pki.flags());
    args.extend(extra.iter().map(|s| s.to_string()));
    RegistryServer::spawn(&dir.join("data"), args).expect("the TLS server starts")
}

fn basic(user: (&str, &str)) -> RegistryAuth {
    RegistryAuth::Basic(user.0.to_owned(), user.1.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_log_in_push_and_pull_over_tls() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &pki, &[]);
    assert!(server.url().starts_with("https://"), "{}", server.url());

    // The challenge sends clients to the token endpoint over https.
    let anonymous = Api::with_client(&server, pki.reqwest()).labelled("anonymous over TLS");
    let probe = anonymous.get("/v2/").await;
    probe.error(401, "UNAUTHORIZED");
    probe.header_is(
        "www-authenticate",
        &format!(
            "Bearer realm=\"https://{}/token\",service=\"wharf-registry\"",
            server.host()
        ),
    );

    // oci-client follows it with alice's password, pushes, and bob pulls back. (A
    // client keeps the first credentials it is given for a registry: one per user.)
    let client = pki.oci_client();
    let bobs = pki.oci_client();
    let layers: Vec<Vec<u8>> = (0..2)
        .map(|i| noise(300 << 10, seed_for(&format!("tls layer {i}"))))
        .collect();
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}});
    let image = |repo: &str| Reference::with_tag(server.host().into(), repo.into(), "v1".into());
    let push = |client: &Client, reference: Reference, auth: RegistryAuth| {
        let client = client.clone();
        let layers: Vec<ImageLayer> = layers
            .iter()
            .map(|l| ImageLayer::oci_v1(l.clone(), None))
            .collect();
        let config = Config::oci_v1(serde_json::to_vec(&config).unwrap(), None);
        async move { client.push(&reference, &layers, config, &auth, None).await }
    };
    push(&client, image("team/app"), basic(ALICE))
        .await
        .expect("alice pushes");
    let pulled = bobs
        .pull(
            &image("team/app"),
            &basic(BOB),
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await
        .expect("bob pulls");
    for layer in &layers {
        assert!(pulled.layers.iter().any(|got| got.data[..] == layer[..]));
    }
    let refused = push(&bobs, image("team/bob"), basic(BOB)).await;
    assert!(
        refused.is_err(),
        "a reader cannot push: {:#?}",
        server.logs()
    );
    // Anonymous: the public repository pulls, a private one does not.
    push(&client, image("public/tools"), basic(ALICE))
        .await
        .expect("alice pushes");
    let anonymous_client = pki.oci_client();
    anonymous_client
        .pull(
            &image("public/tools"),
            &RegistryAuth::Anonymous,
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await
        .expect("anyone pulls a public repository");
    assert!(
        anonymous_client
            .pull(
                &image("team/app"),
                &RegistryAuth::Anonymous,
                vec![IMAGE_LAYER_MEDIA_TYPE]
            )
            .await
            .is_err(),
        "a private repository is not pulled anonymously"
    );
    // The token endpoint was used over TLS.
    assert!(server.logs().iter().any(|l| l.starts_with("GET /token?")));

    // skopeo with the CA directory and credentials, both ways.
    if have_skopeo() {
        let layout = Layout::write();
        let certs = pki.path("certs.d").display().to_string();
        let dest = format!("docker://{}/team/skopeo:v1", server.host());
        let alice = format!("{}:{}", ALICE.0, ALICE.1);
        let args = [
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            &alice,
            &layout.reference(),
            &dest,
        ];
        let output = run_skopeo(&args);
        assert!(output.status.success(), "{}", describe(&args, &output));
        let pulled = tempfile::tempdir().unwrap();
        let target = format!("oci:{}:v1", pulled.path().display());
        let bob = format!("{}:{}", BOB.0, BOB.1);
        let args = [
            "copy",
            "--all",
            "--preserve-digests",
            "--src-cert-dir",
            &certs,
            "--src-creds",
            &bob,
            &dest,
            &target,
        ];
        let output = run_skopeo(&args);
        assert!(output.status.success(), "{}", describe(&args, &output));
        layout.assert_copied_to(pulled.path());
        // Without the CA, skopeo refuses the server's certificate.
        let args = ["inspect", "--raw", "--creds", &bob, &dest];
        let output = run_skopeo(&args);
        assert!(!output.status.success(), "{}", describe(&args, &output));
    }

    // Many clients at once, each with its own TLS connection.
    let clients = (0..40).map(|i| {
        let server = &server;
        let pki = &pki;
        async move {
            let (name, password) = if i % 2 == 0 { ALICE } else { BOB };
            let api = Api::with_client(server, pki.reqwest().pool_max_idle_per_host(0))
                .labelled(format!("client {i}"));
            let reply = api
                .send(
                    reqwest::Method::GET,
                    "/v2/team/app/tags/list",
                    &[("authorization", &basic_header(name, password))],
                    None,
                )
                .await;
            reply.check(200);
        }
    });
    common::http::within(
        Duration::from_secs(120),
        "40 TLS clients",
        futures::future::join_all(clients),
    )
    .await;
}

fn basic_header(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_silent_clients_and_bad_key_pairs_are_refused() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &pki, &["--idle-timeout", "2s"]);
    let addr = server.host().to_owned();

    // Plain HTTP on the TLS port gets no HTTP answer, and the server goes on serving.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // A client that connects and never starts the handshake is dropped.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut byte))
        .await
        .expect("the server closes a connection that never shakes hands");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    Api::with_client(&server, pki.reqwest())
        .get("/v2/")
        .await
        .error(401, "UNAUTHORIZED");
    drop(server);

    // A key that is not the certificate's stops the server at start, and so does a
    // certificate file with no certificate, and a missing key.
    let other = Pki::new();
    let users = users_file(dir.path());
    for (label, cert, key, says) in [
        (
            "mismatched",
            pki.path("server.crt"),
            other.path("server.key"),
            "usable pair",
        ),
        (
            "no certificate",
            pki.path("server.ext"),
            pki.path("server.key"),
            "--tls-cert",
        ),
        (
            "missing key",
            pki.path("server.crt"),
            pki.path("absent.key"),
            "--tls-key",
        ),
    ] {
        let args = vec![
            "--auth".into(),
            users.display().to_string(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ];
        let error = RegistryServer::spawn(&dir.path().join(label), args)
            .err()
            .unwrap_or_else(|| panic!("{label}: the server must not start"));
        assert!(error.contains(says), "{label}: {error}");
    }
}
