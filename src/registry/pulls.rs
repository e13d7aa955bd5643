//! Pull times, recorded per manifest and coalesced: within one resolution window a
//! manifest's pull time is written once, however many pulls arrive, so a burst of pulls
//! costs one metadata write rather than one each.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Registry;
use super::schema::{InRepo, PULLS};
use crate::digest::Digest;
use crate::error::Result;
use crate::meta::Expect;
use crate::reference::RepoName;

/// Default resolution of recorded pull times.
pub const DEFAULT_PULL_TIME_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(300);

/// Entries kept in memory before old ones are pruned.
const REMEMBERED: usize = 100_000;

/// When this process last wrote each manifest's pull time.
#[derive(Debug, Default)]
pub(crate) struct PullRecorder {
    written: Mutex<HashMap<(RepoName, Digest), u64>>,
}

impl PullRecorder {
    /// Whether a pull now needs writing, given the window; notes it if so.
    fn claim(&self, repo: &RepoName, digest: &Digest, now: u64, window: u64) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let key = (repo.clone(), digest.clone());
        if written
            .get(&key)
            .is_some_and(|&at| now.saturating_sub(at) < window)
        {
            return false;
        }
        if written.len() >= REMEMBERED {
            written.retain(|_, at| now.saturating_sub(*at) < window);
        }
        written.insert(key, now);
        true
    }

    fn forget(&self, repo: &RepoName, digest: &Digest) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.remove(&(repo.clone(), digest.clone()));
    }
}

impl Registry {
    /// Notes a pull of `digest` in `repo`, writing it at most once per resolution window.
    pub(super) async fn record_pull(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let now = self.now_millis();
        let window = self.inner.pull_time_resolution.as_millis() as u64;
        if !self.inner.pulls.claim(repo, digest, now, window) {
            return Ok(());
        }
        PULLS
            .put(self.meta(), &InRepo::new(repo, digest), &now, Expect::Any)
            .await
            .map(drop)
    }

    pub(super) async fn forget_pulls(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.inner.pulls.forget(repo, digest);
        PULLS
            .delete(self.meta(), &InRepo::new(repo, digest), Expect::Any)
            .await
    }
}
