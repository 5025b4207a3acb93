//! Reading a sort index faster than one `Query` after another: the rest of
//! a walk is cut into [`READ_AHEAD_SLICES`] ranges of the sort key (equal
//! spans of time), each range is read by a task of its own, and the pages
//! are handed out strictly in order: all of the first range, then all of the
//! second, and so on. So several `Query` calls (and the work on their
//! items) are in flight at once while the order stays exactly the index's.
//!
//! Memory stays flat: a range's task holds at most [`PAGES_AHEAD`] pages
//! ready (a bounded channel) and waits for the reader to take them, and at
//! most [`READ_AHEAD_SLICES`] ranges are being read at a time; a range is
//! started only when an earlier one is done. A reader that is dropped (the
//! client went away) closes the channels, and the tasks stop at their next
//! page.
//!
//! Sort keys are `{13-digit millis}#{id}` ([`keys::time_sort_key`]), so a
//! range of time is a `BETWEEN` of two key prefixes.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Store;
use super::index_walk::{IndexWalk, KeyRange};
use super::keys::Index;
use crate::error::ApiError;
use crate::filter::FilterSet;
use crate::model::{AccountId, Timestamp, User};

/// Ranges read at the same time.
pub const READ_AHEAD_SLICES: usize = 4;
/// Pages a range's task may hold ready for the reader.
pub const PAGES_AHEAD: usize = 2;

/// The fixed parts of a walk.
#[derive(Debug)]
pub(super) struct WalkPlan {
    pub account: AccountId,
    pub index: Index,
    /// The partitions (shards) of the account's index.
    pub pks: Vec<String>,
    pub ascending: bool,
    /// Applied to the users the walk fetches.
    pub filters: FilterSet,
    /// The snapshot a last-seen walk reads (see `list`).
    pub as_of: Option<Timestamp>,
    /// Index entries per page (and per shard and `Query` call).
    pub page_items: usize,
}

/// One page of a walk.
pub(super) struct PageRead {
    /// The users it matched, in index order.
    pub users: Vec<User>,
    /// The sort key of the last entry it read: where a walk resumes after it.
    pub last_key: String,
}

impl WalkPlan {
    /// Index entries per shard and `Query` for a walk that hands out one
    /// page and is then given up (an export's first page, before the read
    /// ahead takes over): a share of the page per shard, with a margin for
    /// the shards that hold more than their share of it. The merge queries
    /// a shard again when it runs dry, so a page is never short.
    pub(super) fn first_page_per_shard(&self) -> usize {
        (self.page_items + self.page_items / 4).div_ceil(self.pks.len().max(1))
    }
}

impl Store {
    /// A walk of `plan`'s index within `range` and after `after` when
    /// given, reading `per_query` entries per shard and `Query`.
    pub(super) fn walk_of(
        &self,
        plan: &WalkPlan,
        range: Option<&KeyRange>,
        after: Option<&str>,
        per_query: usize,
    ) -> IndexWalk {
        IndexWalk::new(
            self,
            plan.index,
            plan.pks.clone(),
            plan.ascending,
            range,
            after,
            per_query,
        )
        .deciding(&plan.filters)
    }

    /// The next page of `walk`: up to `plan.page_items` entries, the users of
    /// those that count fetched and filtered; `None` at the walk's end.
    pub(super) async fn walk_page(
        &self,
        plan: &WalkPlan,
        walk: &mut IndexWalk,
    ) -> Result<Option<PageRead>, ApiError> {
        let entries = walk.next(plan.page_items).await?;
        let Some(last) = entries.last() else {
            return Ok(None);
        };
        let last_key = last.sort_key.clone();
        let users = self
            .matching_users(&plan.account, entries, plan.as_of, &plan.filters)
            .await?
            .into_iter()
            .filter_map(|(_, user)| user)
            .collect();
        Ok(Some(PageRead { users, last_key }))
    }
}

/// The millis a sort key starts with.
fn millis_of(sort_key: &str) -> Option<i64> {
    sort_key.get(..13)?.parse().ok()
}

/// Cuts the time from `near` to `far` (in the walk's direction) into at
/// most `slices` ranges, in the order they are read.
fn cut(near: i64, far: i64, ascending: bool, slices: usize) -> Vec<KeyRange> {
    let (low, high) = if near <= far {
        (near, far)
    } else {
        (far, near)
    };
    let span = (high - low + 1).max(1);
    let slices = (slices as i64).clamp(1, span);
    let mut bounds: Vec<i64> = (0..=slices).map(|i| low + span * i / slices).collect();
    bounds.dedup();
    let mut ranges: Vec<KeyRange> = bounds
        .windows(2)
        .map(|pair| KeyRange {
            from: format!("{:013}", pair[0]),
            // `~` sorts after every character of `#{id}`.
            to: format!("{:013}~", pair[1] - 1),
        })
        .collect();
    if !ascending {
        ranges.reverse();
    }
    ranges
}

/// A page as a range's task hands it over.
type Delivery = Result<PageRead, ApiError>;

/// The rest of a walk, read ahead in ranges.
pub(super) struct Sliced {
    store: Store,
    pub plan: Arc<WalkPlan>,
    /// Ranges being read, in order, with their tasks' channels.
    reading: VecDeque<mpsc::Receiver<Delivery>>,
    /// Ranges not started yet, in order.
    waiting: VecDeque<KeyRange>,
}

impl Sliced {
    /// The walk from after the sort key `start` to the index's end.
    pub(super) async fn after(
        store: &Store,
        plan: Arc<WalkPlan>,
        start: String,
    ) -> Result<Self, ApiError> {
        let near = millis_of(&start);
        let far = store.far_end(plan.index, &plan.pks, plan.ascending).await?;
        let far = far.as_deref().and_then(millis_of);
        let mut sliced = Self {
            store: store.clone(),
            plan,
            reading: VecDeque::new(),
            waiting: VecDeque::new(),
        };
        match (near, far) {
            (Some(near), Some(far)) => {
                // The first range holds the start key at its near end and
                // reads on from it.
                let ranges = cut(near, far, sliced.plan.ascending, READ_AHEAD_SLICES);
                sliced.waiting.extend(ranges);
                sliced.start_range(Some(start));
            }
            // A key without time, or an index emptied meanwhile: one range
            // of everything after the start.
            _ => sliced.spawn(None, Some(start)),
        }
        while sliced.reading.len() < READ_AHEAD_SLICES && !sliced.waiting.is_empty() {
            sliced.start_range(None);
        }
        Ok(sliced)
    }

    /// The next page, in order; `None` when every range is read.
    pub(super) async fn next(&mut self) -> Result<Option<PageRead>, ApiError> {
        while let Some(receiver) = self.reading.front_mut() {
            match receiver.recv().await {
                Some(delivery) => return delivery.map(Some),
                None => {
                    self.reading.pop_front();
                    if !self.waiting.is_empty() {
                        self.start_range(None);
                    }
                }
            }
        }
        Ok(None)
    }

    fn start_range(&mut self, after: Option<String>) {
        let Some(range) = self.waiting.pop_front() else {
            return;
        };
        self.spawn(Some(range), after);
    }

    fn spawn(&mut self, range: Option<KeyRange>, after: Option<String>) {
        let (sender, receiver) = mpsc::channel(PAGES_AHEAD);
        let (store, plan) = (self.store.clone(), self.plan.clone());
        tokio::spawn(async move {
            let mut walk = store.walk_of(&plan, range.as_ref(), after.as_deref(), plan.page_items);
            loop {
                let read = store.walk_page(&plan, &mut walk).await;
                let (delivery, last) = match read {
                    Ok(Some(page)) => (Ok(page), walk.finished()),
                    Ok(None) => return,
                    Err(error) => (Err(error), true),
                };
                if sender.send(delivery).await.is_err() || last {
                    return;
                }
            }
        });
        self.reading.push_back(receiver);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_span_in_order_without_overlap() {
        let ranges = cut(1_000, 1_999, true, 4);
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0].from, "0000000001000");
        assert_eq!(ranges[0].to, "0000000001249~");
        assert_eq!(ranges[1].from, "0000000001250");
        assert_eq!(ranges[3].to, "0000000001999~");
        // Every key of the span falls in exactly one range.
        for millis in [1_000, 1_249, 1_250, 1_999] {
            let key = format!("{millis:013}#65f1c0de0000000000000000");
            let holding = ranges
                .iter()
                .filter(|r| r.from <= key && key <= r.to)
                .count();
            assert_eq!(holding, 1, "{key}");
        }
        // Descending walks read the latest range first.
        let down = cut(1_999, 1_000, false, 4);
        assert_eq!(down[0].to, "0000000001999~");
        assert_eq!(down[3].from, "0000000001000");
        // A span shorter than the slices gives one range per millisecond.
        assert_eq!(cut(5, 6, true, 4).len(), 2);
        assert_eq!(cut(5, 5, true, 4).len(), 1);
    }
}
