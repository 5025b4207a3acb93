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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::sync::mpsc;

use super::Store;
use super::items::{GhostItem, Item, ProfileItem, attr, from_item, s};
use super::keys::{self, Index};
use super::list::Entry;
use super::sdk_error;
use crate::error::ApiError;
use crate::filter::FilterSet;
use crate::model::{AccountId, User};

/// Ranges read at the same time.
pub const READ_AHEAD_SLICES: usize = 4;
/// Pages a range's task may hold ready for the reader.
pub const PAGES_AHEAD: usize = 2;

/// The fixed parts of a walk's `Query`.
#[derive(Debug)]
pub(super) struct WalkPlan {
    pub account: AccountId,
    pub index: Index,
    pub ascending: bool,
    /// The filters, for the users behind ghosts (checked in memory).
    pub filters: FilterSet,
    pub filter_text: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
    /// Items per `Query` call.
    pub page_items: i32,
}

/// Sort keys from `from` to `to`, both included (prefixes of time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRange {
    from: String,
    to: String,
}

/// One `Query` call's result.
pub(super) struct PageRead {
    /// The users it matched (ghosts resolved), in index order.
    pub users: Vec<User>,
    /// The index key of the last item it returned, if any: where a walk
    /// resumes after this page.
    pub last_key: Option<Item>,
    /// Where the next call starts; `None` when the range (or index) is done.
    pub next: Option<Item>,
}

impl Store {
    /// One `Query` call of a walk, within `range` when given.
    pub(super) async fn walk_query(
        &self,
        plan: &WalkPlan,
        range: Option<&KeyRange>,
        start: Option<Item>,
    ) -> Result<PageRead, ApiError> {
        let mut names = plan.names.clone();
        let mut values = plan.values.clone();
        let mut condition = "#ipk = :ipk".to_owned();
        if let Some(range) = range {
            condition.push_str(" AND #isk BETWEEN :from AND :to");
            names.insert("#isk".to_owned(), plan.index.sk.to_owned());
            values.insert(":from".to_owned(), s(&range.from));
            values.insert(":to".to_owned(), s(&range.to));
        }
        let output = self
            .client
            .query()
            .table_name(self.table())
            .index_name(plan.index.name)
            .key_condition_expression(condition)
            .set_filter_expression(plan.filter_text.clone())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(plan.ascending)
            .limit(plan.page_items)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query users for export", e))?;
        let items = output.items.unwrap_or_default();
        let last_key = items.last().map(|item| index_key(item, plan.index));
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            if item.contains_key(attr::GHOST_OF) {
                entries.push(Entry::Ghost(from_item::<GhostItem>(item)?.ghost_of));
            } else {
                entries.push(Entry::User(from_item::<ProfileItem>(item)?.into_user()));
            }
        }
        let users = self
            .resolve_entries(&plan.account, entries, &plan.filters)
            .await?;
        Ok(PageRead {
            users,
            last_key: output.last_evaluated_key.clone().or(last_key),
            next: output.last_evaluated_key,
        })
    }

    /// The sort key at the far end of the index from where a walk is
    /// (the last key for an ascending walk, the first for a descending one).
    async fn far_end(&self, plan: &WalkPlan) -> Result<Option<String>, ApiError> {
        let output = self
            .client
            .query()
            .table_name(self.table())
            .index_name(plan.index.name)
            .key_condition_expression("#ipk = :ipk")
            .expression_attribute_names("#ipk", plan.index.pk)
            .expression_attribute_values(":ipk", plan.values[":ipk"].clone())
            .scan_index_forward(!plan.ascending)
            .limit(1)
            .send()
            .await
            .map_err(|e| sdk_error("Query index end", e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .first()
            .and_then(|item| item.get(plan.index.sk))
            .and_then(|value| value.as_s().ok())
            .cloned())
    }
}

/// The key attributes of an index item (table and index keys): what
/// `ExclusiveStartKey` takes.
fn index_key(item: &Item, index: Index) -> Item {
    [keys::PK, keys::SK, index.pk, index.sk]
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), item.get(*name)?.clone())))
        .collect()
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
    plan: Arc<WalkPlan>,
    /// Ranges being read, in order, with their tasks' channels.
    reading: VecDeque<mpsc::Receiver<Delivery>>,
    /// Ranges not started yet, in order.
    waiting: VecDeque<KeyRange>,
}

impl Sliced {
    /// The walk from after `start` (an index key) to the index's end.
    pub(super) async fn after(
        store: &Store,
        plan: Arc<WalkPlan>,
        start: Item,
    ) -> Result<Self, ApiError> {
        let near = start
            .get(plan.index.sk)
            .and_then(|value| value.as_s().ok())
            .and_then(|key| millis_of(key));
        let far = store.far_end(&plan).await?;
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
            _ => {
                sliced.start_unbounded(start);
            }
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

    fn start_range(&mut self, start: Option<Item>) {
        let Some(range) = self.waiting.pop_front() else {
            return;
        };
        self.spawn(Some(range), start);
    }

    fn start_unbounded(&mut self, start: Item) {
        self.waiting.clear();
        self.spawn(None, Some(start));
    }

    fn spawn(&mut self, range: Option<KeyRange>, start: Option<Item>) {
        let (sender, receiver) = mpsc::channel(PAGES_AHEAD);
        let (store, plan) = (self.store.clone(), self.plan.clone());
        tokio::spawn(async move {
            let mut start = start;
            loop {
                let read = store.walk_query(&plan, range.as_ref(), start.take()).await;
                let next = read.as_ref().ok().and_then(|page| page.next.clone());
                let failed = read.is_err();
                if sender.send(read).await.is_err() || failed {
                    return;
                }
                match next {
                    Some(key) => start = Some(key),
                    None => return,
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
