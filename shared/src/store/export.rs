//! The users of an export, page by page, as a stream: what lets the export
//! function send rows while it is still reading, in memory that does not grow
//! with the account.
//!
//! - Filters (or none): the account's sort index is read in order with
//!   `Query`, [`EXPORT_PAGE`] items per call and no read budget, filters going
//!   to DynamoDB as the list's `FilterExpression`. Each page of the stream is
//!   what one call matched (a call that matched nobody is skipped), so only
//!   one page is held at a time. By `lastSeen` the walk reads the snapshot at
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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::Store;
use super::items::{Item, s};
use super::keys;
use super::list::{index_lookup, sort_index, sort_key_of, walk_filter};
use super::read_ahead::{Sliced, WalkPlan};
use crate::error::ApiError;
use crate::export::{ExportRequest, ExportScope};
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
                    let plan = walk_plan(account, request.sort, filters.clone(), as_of);
                    Source::Resume(plan, start.into_iter().map(|(k, v)| (k, s(v))).collect())
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
    /// A walk of the sort index, to go on after this index key (all of whose
    /// attributes are strings).
    After(BTreeMap<String, String>),
    /// A bounded scope read whole: this many users handed out already.
    Skip(u64),
    /// Every user handed out.
    End,
}

impl ExportPosition {
    pub fn to_json(&self) -> Result<String, ApiError> {
        serde_json::to_string(self)
            .map_err(|e| ApiError::Internal(format!("serialize export position: {e}")))
    }

    pub fn from_json(text: &str) -> Result<Self, ApiError> {
        serde_json::from_str(text)
            .map_err(|e| ApiError::Internal(format!("read export position: {e}")))
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
    /// A walk to go on after this index key.
    Resume(Arc<WalkPlan>, Item),
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
    start: Option<Item>,
}

/// The plan of a walk of the account's index for `sort`. By `lastSeen` it
/// reads the snapshot at `as_of`, as the list's paging does: a profile
/// counts if it had its place by then, a ghost if its place was its user's
/// then; so a user who is active during the export is exported once, at its
/// place when the export began, and users created since are left out.
fn walk_plan(
    account: &AccountId,
    sort: Sort,
    filters: FilterSet,
    as_of: Timestamp,
) -> Arc<WalkPlan> {
    let index = sort_index(sort);
    let mut names = HashMap::from([("#ipk".to_owned(), index.pk.to_owned())]);
    let mut values = HashMap::from([(":ipk".to_owned(), s(keys::users_index_pk(account)))]);
    let filter_text = walk_filter(sort, &filters, Some(as_of), &mut names, &mut values);
    Arc::new(WalkPlan {
        account: account.clone(),
        index,
        ascending: sort.order == SortOrder::Asc,
        filters,
        filter_text,
        names,
        values,
        page_items: EXPORT_PAGE as i32,
    })
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
                Source::Walk(walk) => {
                    let page = self
                        .store
                        .walk_query(&walk.plan, None, walk.start.clone())
                        .await?;
                    self.position = match page.next {
                        Some(next) => {
                            let position = ExportPosition::After(string_key(&next)?);
                            self.source = Source::Resume(walk.plan, next);
                            position
                        }
                        None => ExportPosition::End,
                    };
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
                        if let Some(key) = &page.last_key {
                            self.position = ExportPosition::After(string_key(key)?);
                        }
                        self.source = Source::Sliced(sliced);
                        if !page.users.is_empty() {
                            return Ok(Some(page.users));
                        }
                    }
                    None => self.position = ExportPosition::End,
                },
                Source::Failed(reason) => return Err(ApiError::Internal(reason)),
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
            Source::Walk(_) if skip > 0 => Err(ApiError::Internal(
                "an export that read its scope whole now has to walk it".into(),
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
                Ok(Source::Walk(Box::new(Walk {
                    plan: walk_plan(&self.account, self.sort, filters, self.as_of),
                    start: None,
                })))
            }
        }
    }

    fn loaded(&self, mut users: Vec<User>) -> Source {
        sort_in_memory(&mut users, self.sort);
        Source::Loaded(users.into_iter())
    }
}

/// An index key as strings (every key attribute of the table is one).
fn string_key(key: &Item) -> Result<BTreeMap<String, String>, ApiError> {
    key.iter()
        .map(|(name, value)| match value {
            AttributeValue::S(text) => Ok((name.clone(), text.clone())),
            _ => Err(ApiError::Internal(format!(
                "index key attribute {name} is not a string"
            ))),
        })
        .collect()
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
