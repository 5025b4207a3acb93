//! The users of an export, page by page, as a stream: what lets the export
//! function send rows while it is still reading, in memory that does not grow
//! with the account.
//!
//! - Filters (or none): the account's sort index (all its shards, merged) is
//!   read in order, [`EXPORT_PAGE`] entries at a time and no read budget; the
//!   profiles of a page's entries are fetched with `BatchGetItem` and
//!   filtered in memory, as the list does. Each page of the stream is what
//!   one page of entries matched (a page that matched nobody is skipped), so
//!   only one page is held at a time. By `lastSeen` the walk reads the snapshot at
//!   the export's start, ghosts included, exactly as the list pages (see
//!   `list`): activity during the export neither repeats nor drops a user.
//! - Filters an index answers (equality on `userId`, `default_email` or a
//!   segment, as in the list): when the lookup finds at most the list's
//!   `READ_BUDGET` candidates, they are filtered and sorted in memory;
//!   otherwise the sort index is walked as above.
//! - `users`: at most 1000 profiles are read with `BatchGetItem` (unknown ids
//!   and other accounts' ids simply are not found), sorted in memory in the
//!   requested sort, and handed out a page at a time. 1000 users is the
//!   bound the contract puts on the request, so memory stays bounded too.
//!
//! Every key read starts with the account, so an export never reaches another
//! account's users. Nothing is read until the stream is first polled.
//!
//! [`ExportReader`] is the same walk for export jobs, which must stop and go
//! on in another process: after each page it can say where it is
//! ([`ExportPosition`], stored with the job as JSON), and a reader made from
//! that position and the export's snapshot time goes on from there.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::Store;
use super::index_walk::IndexWalk;
use super::keys;
use super::list::{index_lookup, sort_index, sort_key_of};
use super::read_ahead::{Sliced, WalkPlan};
use crate::error::ApiError;
use crate::export::{ExportRequest, ExportScope};
use crate::filter::SortField;
use crate::filter::{FilterSet, Sort, SortOrder};
use crate::model::{AccountId, Timestamp, User};

/// Items read per `Query` call, and most users per page of the stream.
pub const EXPORT_PAGE: usize = 250;

impl Store {
    /// The users an export covers, in the requested sort, one page (at most
    /// [`EXPORT_PAGE`] users, never empty) per item; the stream ends after
    /// the last user or at the first error.
    pub fn export_users(
        &self,
        account: &AccountId,
        request: &ExportRequest,
    ) -> impl Stream<Item = Result<Vec<User>, ApiError>> + Send + 'static {
        let reader = self.export_reader(account, request, Timestamp::now(), ExportPosition::Start);
        futures_util::stream::try_unfold(reader, |mut reader| async move {
            Ok(reader.next_page().await?.map(|page| (page, reader)))
        })
    }

    /// A reader of the export `request` from `position`, reading the
    /// snapshot taken at `as_of` (the time the export began).
    pub fn export_reader(
        &self,
        account: &AccountId,
        request: &ExportRequest,
        as_of: Timestamp,
        position: ExportPosition,
    ) -> ExportReader {
        let source = match position {
            ExportPosition::Start => Source::Start(request.scope.clone(), 0),
            ExportPosition::Skip(skipped) => Source::Start(request.scope.clone(), skipped),
            ExportPosition::After(start) => match &request.scope {
                ExportScope::Filters(filters) => {
                    let plan = self.walk_plan(account, request.sort, filters.clone(), as_of);
                    match start.get(plan.index.sk) {
                        Some(key) => Source::Resume(plan, key.clone()),
                        None => Source::Failed("an export position without its sort key".into()),
                    }
                }
                ExportScope::Users(_) => {
                    Source::Failed("an export of listed users cannot resume inside a walk".into())
                }
            },
            ExportPosition::End => Source::Done,
        };
        ExportReader {
            store: self.clone(),
            account: account.clone(),
            sort: request.sort,
            as_of,
            source,
            emitted: 0,
            position: ExportPosition::Start,
        }
    }
}

/// Where an export stands, as far as the pages handed out so far go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExportPosition {
    /// Nothing handed out yet.
    Start,
    /// A walk of the sort index, to go on after the sort key this map holds
    /// under the index's sort-key attribute (positions saved before the
    /// index was sharded hold the whole index key; only that part is read).
    After(BTreeMap<String, String>),
    /// A bounded scope read whole: this many users handed out already.
    Skip(u64),
    /// Every user handed out.
    End,
}

impl ExportPosition {
    pub fn to_json(&self) -> Result<String, ApiError> {
        serde_json::to_string(self)
            .map_err(|e| ApiError::internal_from("serialize export position", e))
    }

    pub fn from_json(text: &str) -> Result<Self, ApiError> {
        serde_json::from_str(text).map_err(|e| ApiError::internal_from("read export position", e))
    }
}

/// Reads an export page by page and knows where it is.
pub struct ExportReader {
    store: Store,
    account: AccountId,
    sort: Sort,
    as_of: Timestamp,
    source: Source,
    /// Users handed out by a bounded scope (for [`ExportPosition::Skip`]).
    emitted: u64,
    position: ExportPosition,
}

enum Source {
    /// Nothing read yet; for a bounded scope, how many users to skip.
    Start(ExportScope, u64),
    /// The first page of a walk of the sort index.
    Walk(Box<Walk>),
    /// A walk to go on after this sort key.
    Resume(Arc<WalkPlan>, String),
    /// The rest of a walk, read ahead in ranges.
    Sliced(Box<Sliced>),
    /// Users already read and sorted (at most 1000), handed out in pages.
    Loaded(std::vec::IntoIter<User>),
    /// A position that cannot be resumed (the reason, for the log).
    Failed(String),
    Done,
}

/// The first page of a walk: read on its own, so that a small export costs
/// one `Query`; what follows it is read ahead in ranges ([`Sliced`]).
struct Walk {
    plan: Arc<WalkPlan>,
    walk: IndexWalk,
}

/// The plan of a walk of the account's index for `sort`. By `lastSeen` it
/// reads the snapshot at `as_of`, as the list's paging does: a profile
/// counts if it had its place by then, a ghost if its place was its user's
/// then; so a user who is active during the export is exported once, at its
/// place when the export began, and users created since are left out.
impl Store {
    fn walk_plan(
        &self,
        account: &AccountId,
        sort: Sort,
        filters: FilterSet,
        as_of: Timestamp,
    ) -> Arc<WalkPlan> {
        Arc::new(WalkPlan {
            account: account.clone(),
            index: sort_index(sort),
            pks: keys::users_index_pks(account, self.index_shards),
            ascending: sort.order == SortOrder::Asc,
            filters,
            as_of: (sort.field == SortField::LastSeen).then_some(as_of),
            page_items: EXPORT_PAGE,
        })
    }
}

/// Orders users as the sort index would: by the sort's time, ties by id.
fn sort_in_memory(users: &mut [User], sort: Sort) {
    users.sort_by_cached_key(|user| sort_key_of(user, sort));
    if sort.order == SortOrder::Desc {
        users.reverse();
    }
}

impl ExportReader {
    /// The snapshot time the export reads.
    pub fn as_of(&self) -> Timestamp {
        self.as_of
    }

    /// Where the export stands after the pages handed out so far: a reader
    /// made from it hands out the users that come after them.
    pub fn position(&self) -> &ExportPosition {
        &self.position
    }

    /// The next page of users (never empty); `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<User>>, ApiError> {
        loop {
            // Whatever fails leaves the reader done.
            match std::mem::replace(&mut self.source, Source::Done) {
                Source::Start(scope, skip) => self.source = self.open(scope, skip).await?,
                Source::Loaded(mut users) => {
                    let page: Vec<User> = users.by_ref().take(EXPORT_PAGE).collect();
                    if page.is_empty() {
                        self.position = ExportPosition::End;
                        return Ok(None);
                    }
                    self.source = Source::Loaded(users);
                    self.emitted += page.len() as u64;
                    self.position = ExportPosition::Skip(self.emitted);
                    return Ok(Some(page));
                }
                Source::Walk(mut first) => {
                    let Some(page) = self.store.walk_page(&first.plan, &mut first.walk).await?
                    else {
                        self.position = ExportPosition::End;
                        return Ok(None);
                    };
                    if first.walk.finished() {
                        self.position = ExportPosition::End;
                    } else {
                        self.position = position_after(&first.plan, &page.last_key);
                        self.source = Source::Resume(first.plan, page.last_key);
                    }
                    if !page.users.is_empty() {
                        return Ok(Some(page.users));
                    }
                }
                Source::Resume(plan, start) => {
                    let sliced = Sliced::after(&self.store, plan, start).await?;
                    self.source = Source::Sliced(Box::new(sliced));
                }
                Source::Sliced(mut sliced) => match sliced.next().await? {
                    Some(page) => {
                        self.position = position_after(&sliced.plan, &page.last_key);
                        self.source = Source::Sliced(sliced);
                        if !page.users.is_empty() {
                            return Ok(Some(page.users));
                        }
                    }
                    None => self.position = ExportPosition::End,
                },
                Source::Failed(reason) => return Err(ApiError::internal(reason)),
                Source::Done => {
                    self.position = ExportPosition::End;
                    return Ok(None);
                }
            }
        }
    }

    /// Decides how to read the scope, reading everything at once only when
    /// it is bounded (listed users, a narrow index lookup), and skips the
    /// `skip` users handed out before.
    async fn open(&mut self, scope: ExportScope, skip: u64) -> Result<Source, ApiError> {
        let source = self.open_scope(scope).await?;
        self.emitted = skip;
        match source {
            Source::Loaded(mut users) => {
                users.by_ref().take(skip as usize).for_each(drop);
                Ok(Source::Loaded(users))
            }
            Source::Walk(_) if skip > 0 => Err(ApiError::internal(
                "an export that read its scope whole now has to walk it",
            )),
            other => Ok(other),
        }
    }

    async fn open_scope(&self, scope: ExportScope) -> Result<Source, ApiError> {
        match scope {
            ExportScope::Users(ids) => {
                let users = self.store.users_by_id(&self.account, &ids).await?;
                Ok(self.loaded(users))
            }
            ExportScope::Filters(filters) => {
                if let Some(lookup) = index_lookup(&filters)
                    && let Some(candidates) = self.store.candidates(&self.account, lookup).await?
                {
                    let matching: Vec<User> = candidates
                        .into_iter()
                        .filter(|user| filters.matches(user))
                        .collect();
                    return Ok(self.loaded(matching));
                }
                let plan = self
                    .store
                    .walk_plan(&self.account, self.sort, filters, self.as_of);
                let walk = self
                    .store
                    .walk_of(&plan, None, None, plan.first_page_per_shard());
                Ok(Source::Walk(Box::new(Walk { plan, walk })))
            }
        }
    }

    fn loaded(&self, mut users: Vec<User>) -> Source {
        sort_in_memory(&mut users, self.sort);
        Source::Loaded(users.into_iter())
    }
}

/// The position after the sort key `key` of `plan`'s index.
fn position_after(plan: &WalkPlan, key: &str) -> ExportPosition {
    ExportPosition::After(BTreeMap::from([(plan.index.sk.to_owned(), key.to_owned())]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::SortField;
    use crate::model::{ObjectId, sample_user};

    #[test]
    fn in_memory_order_is_the_index_order() {
        let user = |seconds: i64, seen: i64| {
            let mut user = sample_user();
            user.id = ObjectId::at_seconds(seconds);
            user.created_at = Timestamp::from_millis(seconds * 1000);
            user.last_seen = Timestamp::from_millis(seen);
            user
        };
        // Two users created in the same millisecond break the tie by id.
        let (a, b, c, d) = (user(1, 40), user(2, 10), user(2, 30), user(3, 20));
        let ids = |users: &[User]| users.iter().map(|u| u.id).collect::<Vec<_>>();
        let mut users = vec![c.clone(), a.clone(), d.clone(), b.clone()];
        sort_in_memory(
            &mut users,
            Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Asc,
            },
        );
        assert_eq!(ids(&users), [a.id, b.id, c.id, d.id]);
        sort_in_memory(
            &mut users,
            Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Desc,
            },
        );
        assert_eq!(ids(&users), [d.id, c.id, b.id, a.id]);
        sort_in_memory(
            &mut users,
            Sort {
                field: SortField::LastSeen,
                order: SortOrder::Desc,
            },
        );
        assert_eq!(ids(&users), [a.id, c.id, d.id, b.id]);
    }
}
