//! The registry server (`src/bin/wharf-registry`) as a child process, for tests that drive it
//! with real HTTP clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Where a server keeps blobs and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    /// The default: a local directory (filesystem blobs, embedded metadata).
    Local,
    /// Blobs and metadata in the S3 bucket that `scripts/test` starts (moto).
    S3,
}

impl Storage {
    /// Both configurations the real-client tests run against.
    pub(crate) const ALL: [Storage; 2] = [Storage::Local, Storage::S3];
}

/// A running `registry` example. Killed on drop; [`RegistryServer::stop`] stops it
/// gracefully.
pub(crate) struct RegistryServer {
    child: Child,
    /// `http`, or `https` with `--tls-cert`.
    scheme: String,
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    root: PathBuf,
    args: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The server binary that `cargo test` builds next to the test executables.
pub(crate) fn registry_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/wharf-registry
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let binary = profile_dir.join("wharf-registry");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test` builds it (run the tests through cargo)",
        binary.display()
    );
    binary
}

/// The S3 settings `scripts/test` exports, as server flags under a fresh key prefix.
/// `None` when the variables are unset; under CI that is a failure, not a skip.
pub(crate) fn s3_args() -> Option<Vec<String>> {
    let Ok(endpoint) = std::env::var("WHARF_S3_ENDPOINT") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the S3 tests: start the server with scripts/test"
        );
        eprintln!("WHARF_S3_ENDPOINT unset: skipping S3 (run scripts/test to include it)");
        return None;
    };
    let bucket = std::env::var("WHARF_S3_BUCKET").unwrap_or_else(|_| "wharf-test".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("http-{}-{nanos}", std::process::id());
    Some(
        [
            "--s3-endpoint",
            &endpoint,
            "--s3-bucket",
            &bucket,
            "--s3-prefix",
            &prefix,
            "--s3-region",
            "us-east-1",
            "--s3-allow-http",
            "--metadata",
            "s3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
}

impl RegistryServer {
    /// Starts a server on a fresh directory with `storage`, on a free loopback port;
    /// `None` when S3 is asked for and not configured (outside CI).
    pub(crate) fn start(storage: Storage) -> Option<Self> {
        Self::start_with(storage, &[])
    }

    /// [`RegistryServer::start`] with extra flags.
    pub(crate) fn start_with(storage: Storage, extra: &[&str]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = match storage {
            Storage::Local => Vec::new(),
            Storage::S3 => s3_args()?,
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        let root = dir.path().join("data");
        let mut server = Self::spawn(&root, args).expect("server starts");
        server._dir = Some(dir);
        Some(server)
    }

    /// Starts a server on `root` with `args` (besides `--root` and `--listen`); the error
    /// is everything the process printed if it exited before listening.
    pub(crate) fn spawn(root: &Path, args: Vec<String>) -> Result<Self, String> {
        Self::spawn_under(&[], root, args)
    }

    /// [`RegistryServer::spawn`] through `launcher` (a command that runs the one after
    /// it, such as `prlimit --nofile=256:256`), which becomes the server's process.
    pub(crate) fn spawn_under(
        launcher: &[&str],
        root: &Path,
        args: Vec<String>,
    ) -> Result<Self, String> {
        let mut command = match launcher.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(registry_binary());
                command
            }
            None => Command::new(registry_binary()),
        };
        let mut child = command
            .arg("--root")
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the registry server");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("listening on ").nth(1)
                    && let Some((scheme, addr)) = url.trim().split_once("://")
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send((scheme.to_owned(), addr.to_owned()));
                }
                sink.lock().unwrap().push(line);
            }
        });
        match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok((scheme, addr)) => Ok(Self {
                child,
                scheme,
                addr,
                logs,
                root: root.to_owned(),
                args,
                _dir: None,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // Let the reader thread drain what the process printed.
                std::thread::sleep(Duration::from_millis(200));
                Err(logs.lock().unwrap().join("\n"))
            }
        }
    }

    /// `127.0.0.1:PORT`, as registry references name it.
    pub(crate) fn host(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://` with `--tls-cert`.
    pub(crate) fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory the server was started on.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Every line the server has printed so far (one per request, after the first).
    pub(crate) fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The process's peak resident set size in KiB (`VmHWM`).
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the process to exit.
    pub(crate) fn stop_with(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 60 s of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process outright (SIGKILL: no shutdown work at all) and starts a new one
    /// on the same root and flags.
    pub(crate) fn kill_and_restart(mut self) -> Self {
        self.stop_with("KILL");
        let mut next = Self::spawn(&self.root, self.args.clone()).expect("server restarts");
        next._dir = self._dir.take();
        next
    }

    /// Stops gracefully (SIGTERM) and starts a new process on the same root and flags,
    /// keeping the temporary directory alive.
    pub(crate) fn restart(mut self) -> Self {
        let status = self.stop_with("TERM");
        assert!(status.success(), "graceful stop exits 0, got {status}");
        let mut next = Self::spawn(&self.root, self.args.clone()).expect("server restarts");
        next._dir = self._dir.take();
        next
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
