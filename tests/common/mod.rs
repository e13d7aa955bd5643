//! Shared test setup: the S3-compatible server that `scripts/test` starts, the registry
//! example as a process and a plain HTTP client for it, and small helpers.
#![allow(dead_code)]

pub(crate) mod http;
pub(crate) mod images;
pub(crate) mod layers;
pub(crate) mod server;

/// Evaluates `expression` with `kms`, a boto3 KMS client for the S3 test server (moto
/// serves KMS too), and `arg`; returns what it prints.
fn kms(endpoint: &str, expression: &str, arg: &str) -> String {
    let script = format!(
        "import boto3, sys\nkms = boto3.client('kms', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\nprint({expression})"
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &script, endpoint, arg])
        .output()
        .expect("run python3 with boto3");
    assert!(
        output.status.success(),
        "KMS {expression}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A new KMS key on the S3 test server, and its id.
pub(crate) fn kms_key(endpoint: &str) -> String {
    kms(endpoint, "kms.create_key()['KeyMetadata']['KeyId']", "")
}

/// Disables the KMS key `key` on the S3 test server.
pub(crate) fn disable_kms_key(endpoint: &str, key: &str) {
    kms(endpoint, "kms.disable_key(KeyId=sys.argv[2])", key);
}

#[cfg(feature = "s3")]
/// The S3 store named by `WHARF_S3_ENDPOINT` and `WHARF_S3_BUCKET`, each call under a fresh
/// prefix. `None` when the variables are unset; under CI that is a failure, not a skip.
pub(crate) fn s3_store() -> Option<std::sync::Arc<dyn object_store::ObjectStore>> {
    Some(s3_bucket()?.store)
}

/// The test bucket's parts: the store under a fresh prefix, and what an
/// `S3Composer` for it is made from.
#[cfg(feature = "s3")]
pub(crate) struct S3Bucket {
    pub(crate) store: std::sync::Arc<dyn object_store::ObjectStore>,
    pub(crate) builder: object_store::aws::AmazonS3Builder,
    pub(crate) s3: object_store::aws::AmazonS3,
    pub(crate) prefix: String,
}

/// As [`s3_store`], with the parts an `S3Composer` needs.
#[cfg(feature = "s3")]
pub(crate) fn s3_bucket() -> Option<S3Bucket> {
    let Ok(endpoint) = std::env::var("WHARF_S3_ENDPOINT") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the S3 tests: start the server with scripts/test"
        );
        eprintln!("WHARF_S3_ENDPOINT unset: skipping S3 (run scripts/test to include it)");
        return None;
    };
    let bucket = std::env::var("WHARF_S3_BUCKET").unwrap_or_else(|_| "wharf-test".into());
    // Fixed test credentials, unless a run against a server that checks signatures
    // names real ones.
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "test".into());
    let builder = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(var("WHARF_S3_ACCESS_KEY_ID"))
        .with_secret_access_key(var("WHARF_S3_SECRET_ACCESS_KEY"));
    let s3 = builder.clone().build().expect("S3 store configuration");
    let prefix = format!(
        "run-{}",
        std::process::id() as u64 * 1_000_000 + fastrand_u32() as u64
    );
    let store = std::sync::Arc::new(object_store::prefix::PrefixStore::new(
        s3.clone(),
        prefix.as_str(),
    ));
    Some(S3Bucket {
        store,
        builder,
        s3,
        prefix,
    })
}

#[cfg(feature = "s3")]
fn fastrand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(7)
}

/// A repository name from a literal.
pub(crate) fn repo(name: &str) -> wharf::RepoName {
    name.parse().unwrap()
}

/// A tag reference from a literal.
pub(crate) fn tag(name: &str) -> wharf::Reference {
    wharf::Reference::Tag(name.parse().unwrap())
}

/// The sha256 digest of `data`.
pub(crate) fn sha256(data: &[u8]) -> wharf::Digest {
    wharf::Digest::of(wharf::Algorithm::Sha256, data)
}

/// An in-memory registry whose collections may remove garbage at once: no grace period,
/// so no protection for pushes in flight (tests that push during a collection set one).
pub(crate) fn registry_without_grace() -> wharf::Registry {
    wharf::Registry::builder()
        .object_store(std::sync::Arc::new(object_store::memory::InMemory::new()))
        .meta_store(std::sync::Arc::new(wharf::MemoryMetaStore::new()))
        .gc_grace(std::time::Duration::ZERO)
        .build()
        .unwrap()
}

/// A registry builder with blobs and metadata (an `ObjectMetaStore`) both in `store`.
pub(crate) async fn builder_over(
    store: std::sync::Arc<dyn object_store::ObjectStore>,
) -> wharf::RegistryBuilder {
    let meta = wharf::ObjectMetaStore::connect(store.clone(), "meta")
        .await
        .unwrap();
    wharf::Registry::builder()
        .object_store(store)
        .meta_store(std::sync::Arc::new(meta))
}

/// `len` bytes of xorshift noise (nothing for zstd to find), the same for the same `seed`.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; len.next_multiple_of(8)];
    for word in out.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A seed that differs between labels and between runs.
pub(crate) fn seed_for(label: &str) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash ^ u64::from(nanos)
}

/// A subscriber that keeps what it is given, and refuses while told to.
#[derive(Debug)]
pub(crate) struct Recorder {
    name: String,
    pub(crate) got: std::sync::Mutex<Vec<wharf::EventRecord>>,
    pub(crate) refuse: std::sync::atomic::AtomicBool,
}

impl Recorder {
    pub(crate) fn new(name: &str) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            name: name.to_owned(),
            got: Default::default(),
            refuse: Default::default(),
        })
    }

    /// What it was given so far, in order.
    pub(crate) fn events(&self) -> Vec<wharf::EventRecord> {
        self.got.lock().unwrap().clone()
    }

    /// The event types it was given, in order.
    pub(crate) fn kinds(&self) -> Vec<&'static str> {
        self.events().iter().map(|r| r.event.kind()).collect()
    }
}

#[async_trait::async_trait]
impl wharf::Subscriber for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, event: &wharf::EventRecord) -> wharf::Result<()> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(wharf::Error::new(
                wharf::ErrorKind::Storage,
                "the receiver is down",
            ));
        }
        self.got.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// Steps `dispatcher` until a step makes no progress; the last report.
pub(crate) async fn drain(dispatcher: &wharf::Dispatcher) -> wharf::DispatchReport {
    loop {
        let report = dispatcher.step().await.unwrap();
        if report.delivered + report.skipped + report.dead_lettered == 0 {
            return report;
        }
    }
}

/// The digests a referrers listing (an OCI image index) names, in its order.
pub(crate) fn referrer_digests(index: &[u8]) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_slice(index).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `work` and returns its result with the requests it sent to `store`.
pub(crate) async fn requests<T>(
    store: &wharf::testing::FaultyStore,
    work: impl Future<Output = T>,
) -> (T, usize) {
    let before = store.operations();
    let out = work.await;
    (out, store.operations() - before)
}
