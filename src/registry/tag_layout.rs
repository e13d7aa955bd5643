//! `tag/` holds live tags only, so a page of `tags/list` is one listing of keys and no
//! reads: one `LIST` on an object store, whatever the page size.
//!
//! Stores written before `tag-history/` existed kept deleted tags in `tag/` with no
//! target. The first listing in such a store moves their histories to `tag-history/` and
//! removes them, once, and then marks the store (`tag-layout`); every later listing, in
//! any process, trusts the mark (one read per process).

use serde::{Deserialize, Serialize};

use super::Registry;
use super::schema::{Prefix, TAG_HISTORY, TAG_LAYOUT, TAGS};
use crate::error::{ErrorKind, Result};
use crate::meta::Expect;

/// The mark saying `tag/` holds live tags only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TagLayoutRecord {
    live_only: bool,
}

impl Registry {
    /// Makes sure `tag/` holds live tags only: one read the first time in a process, and
    /// in a store from before `tag-history/`, one walk of its tags, ever.
    pub(super) async fn ensure_live_tags_only(&self) -> Result<()> {
        self.ensure_layout(
            &self.inner.live_tags_only,
            &TAG_LAYOUT,
            TagLayoutRecord { live_only: true },
            |layout| layout.live_only,
            self.move_deleted_tags_out(),
        )
        .await
    }

    /// Moves every deleted tag left in `tag/` to `tag-history/`: its history first (kept
    /// if the tag was deleted again since), then the record, by compare-and-swap so a tag
    /// set again meanwhile stays.
    async fn move_deleted_tags_out(&self) -> Result<()> {
        let mut after = None;
        while let Some(page) = TAGS
            .next_page(self.meta(), &Prefix::all(), &mut after)
            .await?
        {
            for row in page {
                if row.value.digest.is_some() {
                    continue;
                }
                match TAG_HISTORY.create(self.meta(), &row.key, &row.value).await {
                    Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                    _ => {}
                }
                match TAGS
                    .delete(self.meta(), &row.key, Expect::Version(row.version))
                    .await
                {
                    Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
